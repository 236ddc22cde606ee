"""Reading JSON that strangers wrote: bounded size and depth, text only, no NaN, never executed.

Submissions are data. A results file is checked for size before it is read, refused if binary (a pickle
renamed to .json is named as such, never unpickled), checked for nesting depth before the parser sees it,
and parsed so that NaN/Infinity literals and duplicate keys survive as markers that the validator reports
with their paths, alongside every other problem.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mythbench.core.errors import ConfigError

MAX_BYTES = 20 * 1024 * 1024
MAX_DEPTH = 64
INT_LIMIT = 2**63  # integers beyond int64 are not portable JSON (and overflow float arithmetic)
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")


@dataclass(frozen=True)
class NonFinite:
    """Stands in for a NaN / Infinity / -Infinity literal so that its location can be reported."""

    literal: str


class _DupDict(dict):
    """An object in which some key occurred twice (JSON parsers disagree on which value wins)."""

    duplicates: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    dup = _DupDict(obj)
    dup.duplicates = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    return dup


def json_depth(text: str) -> int:
    """Deepest bracket nesting outside string literals, found without recursion (so without the parser)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int8)
    return int(np.cumsum(steps, dtype=np.int32).max())


def parse_json_bytes(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted bytes as one JSON document, or raise ConfigError saying plainly what they are."""
    if not data.strip():
        raise ConfigError("the file is empty; expected a JSON results document")
    if data[:1] == b"\x80" and len(data) > 1 and data[1] <= 5:
        raise ConfigError(f"this looks like a Python pickle (binary, protocol {data[1]}), not JSON; results "
                          "must be JSON text, and submitted files are never unpickled")
    if b"\x00" in data:
        raise ConfigError("the file contains NUL bytes: it is binary, not JSON text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"the file is not UTF-8 text (invalid byte 0x{data[e.start]:02x} at offset "
                          f"{e.start}); results must be JSON text") from None
    text = text.removeprefix("\ufeff")
    depth = json_depth(text)
    if depth > max_depth:
        raise ConfigError(f"JSON nesting is {depth} levels deep; the limit is {max_depth}")
    try:
        return json.loads(text, parse_constant=NonFinite, object_pairs_hook=_pairs)
    except json.JSONDecodeError as e:
        raise ConfigError(f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except ValueError as e:  # e.g. an integer literal of thousands of digits
        raise ConfigError(f"not valid JSON: {e}") from None


def read_json_file(path: Path, max_bytes: int = MAX_BYTES) -> Any:
    """Read and parse a JSON file, refusing anything but a regular file within max_bytes (checked first)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block us
    except OSError as e:
        raise ConfigError(f"cannot open {path}: {e.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path} is not a regular file")
        if info.st_size > max_bytes:
            raise ConfigError(f"the file is {info.st_size:,} bytes; the limit for a results file is "
                              f"{max_bytes:,} bytes")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ConfigError(f"the file grew beyond the {max_bytes:,}-byte limit while being read")
    return parse_json_bytes(data)


def _child(path: str, key: Any) -> str:
    shown = key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else repr(str(key))[:40]
    return f"{path}.{shown}" if path else shown


def walk_problems(doc: Any, max_depth: int = MAX_DEPTH) -> list[str]:
    """Non-finite numbers, duplicate keys, non-JSON values and excess depth anywhere in a document."""
    out: list[str] = []
    stack: list[tuple[Any, str, int]] = [(doc, "", 0)]
    while stack:
        v, path, depth = stack.pop()
        where = path or "top level"
        if isinstance(v, NonFinite) or (isinstance(v, float) and not math.isfinite(v)):
            shown = v.literal if isinstance(v, NonFinite) else repr(v)
            out.append(f"{where}: {shown} is not allowed; every number must be finite")
        elif isinstance(v, int) and not isinstance(v, bool) and not -INT_LIMIT < v < INT_LIMIT:
            out.append(f"{where}: integer with {len(str(abs(v)))} digits is out of range (limit ±2**63)")
        elif isinstance(v, (dict, list)):
            if depth >= max_depth:
                out.append(f"{where}: nested deeper than {max_depth} levels")
                continue
            out += [f"{where}: duplicate key {k!r}" for k in getattr(v, "duplicates", [])]
            items = v.items() if isinstance(v, dict) else enumerate(v)
            children = [(x, _child(path, k) if isinstance(v, dict) else f"{path}[{k}]", depth + 1)
                        for k, x in items]
            out += [f"{where}: key {k!r} is not a string" for k in (v if isinstance(v, dict) else [])
                    if not isinstance(k, str)]
            stack += reversed(children)
        elif not (v is None or isinstance(v, (str, bool, int, float))):
            out.append(f"{where}: a {type(v).__name__} is not a JSON value")
    return out


def canonical_json(doc: Any) -> bytes:
    """One byte string per document content, whatever its formatting or key order."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def content_hash(doc: Any) -> str:
    """sha256 of the canonical JSON: the identity of a submission, and its file name on the board."""
    return hashlib.sha256(canonical_json(doc)).hexdigest()
