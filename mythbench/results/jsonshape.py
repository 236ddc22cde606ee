"""Shape checks for JSON documents: small composable nodes that report every problem with its path.

A node never stops at the first problem and never raises on a malformed value, so one pass over a hostile
document lists everything wrong with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mythbench.results.safejson import INT_LIMIT, NonFinite


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def is_int(v: Any) -> bool:
    """A JSON integer within int64 (a bool is an int in Python, not in JSON; larger ones are unportable)."""
    return isinstance(v, int) and not isinstance(v, bool) and -INT_LIMIT < v < INT_LIMIT


def is_num(v: Any) -> bool:
    """A finite JSON number."""
    return is_int(v) or (isinstance(v, float) and math.isfinite(v))


def _reported(v: Any) -> bool:
    """Values the walk over the whole document already reports (non-finite numbers, oversized integers)."""
    return isinstance(v, NonFinite) or (isinstance(v, float) and not math.isfinite(v)) or (
        isinstance(v, int) and not isinstance(v, bool) and not is_int(v))


def show(v: Any) -> str:
    """A value as a message may show it: JSON type words, bounded length, control characters escaped."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, NonFinite):
        return v.literal
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


class Node:
    """A schema node: checks the shape of one JSON value and appends path-qualified problems."""

    def check(self, v: Any, path: str, out: list[str]) -> None:
        raise NotImplementedError


def _range(v: float, lo: float | None, hi: float | None, path: str, out: list[str]) -> None:
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        bounds = f"in [{lo:g}, {hi:g}]" if lo is not None and hi is not None else (
            f">= {lo:g}" if lo is not None else f"<= {hi:g}")
        out.append(f"{path}: {show(v)} is not {bounds}")


@dataclass(frozen=True)
class Int(Node):
    lo: int | None = None

    def check(self, v: Any, path: str, out: list[str]) -> None:
        if _reported(v):
            return
        if not is_int(v):
            out.append(f"{path}: expected an integer, got {show(v)}")
        else:
            _range(v, self.lo, None, path, out)


@dataclass(frozen=True)
class Num(Node):
    lo: float | None = None
    hi: float | None = None

    def check(self, v: Any, path: str, out: list[str]) -> None:
        if _reported(v):
            return
        if not is_num(v):
            out.append(f"{path}: expected a number, got {show(v)}")
        else:
            _range(v, self.lo, self.hi, path, out)


@dataclass(frozen=True)
class Str(Node):
    pattern: str | None = None
    max_len: int = 256
    timestamp: bool = False  # ISO 8601, e.g. 2026-11-29T06:00:00Z

    def check(self, v: Any, path: str, out: list[str]) -> None:
        if not isinstance(v, str):
            out.append(f"{path}: expected a string, got {show(v)}")
        elif len(v) > self.max_len:
            out.append(f"{path}: string of {len(v)} characters is longer than {self.max_len}")
        elif not v.isprintable():
            out.append(f"{path}: {show(v)} contains control characters")
        elif self.pattern is not None and not re.fullmatch(self.pattern, v):
            out.append(f"{path}: {show(v)} does not match {self.pattern}")
        elif self.timestamp and not _is_timestamp(v):
            out.append(f"{path}: {show(v)} is not an ISO 8601 timestamp like 2026-11-29T06:00:00Z")


def _is_timestamp(v: str) -> bool:
    try:
        datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Bool(Node):
    def check(self, v: Any, path: str, out: list[str]) -> None:
        if not isinstance(v, bool):
            out.append(f"{path}: expected true or false, got {show(v)}")


@dataclass(frozen=True)
class Enum(Node):
    values: tuple[str, ...]

    def check(self, v: Any, path: str, out: list[str]) -> None:
        if not isinstance(v, str) or v not in self.values:
            out.append(f"{path}: {show(v)} is not one of {', '.join(map(repr, self.values))}")


@dataclass(frozen=True)
class Nullable(Node):
    node: Node

    def check(self, v: Any, path: str, out: list[str]) -> None:
        if v is not None:
            self.node.check(v, path, out)


@dataclass(frozen=True)
class Arr(Node):
    item: Node
    min_len: int = 0

    def check(self, v: Any, path: str, out: list[str]) -> None:
        if not isinstance(v, list):
            out.append(f"{path}: expected an array, got {show(v)}")
            return
        if len(v) < self.min_len:
            out.append(f"{path}: has {len(v)} entries, needs at least {self.min_len}")
        for i, x in enumerate(v):
            self.item.check(x, f"{path}[{i}]", out)


@dataclass(frozen=True)
class Obj(Node):
    """An object with required and optional fields; other keys are allowed (forward compatibility).

    `doc` says, per field, what the shape alone does not (meaning, cross-field rules): the generated reference
    docs/results-schema.md prints it beside the type the node gives (mythbench/results_doc.py)."""

    required: dict[str, Node] = field(default_factory=dict)
    optional: dict[str, Node] = field(default_factory=dict)
    doc: dict[str, str] = field(default_factory=dict, compare=False)

    def check(self, v: Any, path: str, out: list[str]) -> None:
        if not isinstance(v, dict):
            out.append(f"{path or 'top level'}: expected an object, got {show(v)}")
            return
        for key, node in self.required.items():
            if key not in v:
                out.append(f"{join(path, key)}: required field is missing")
            else:
                node.check(v[key], join(path, key), out)
        for key, node in self.optional.items():
            if key in v:
                node.check(v[key], join(path, key), out)


def dicts(v: Any, path: str) -> Iterator[tuple[str, dict]]:
    """(path, item) for the object items of an array; the shape check has already reported the rest."""
    if isinstance(v, list):
        for i, x in enumerate(v):
            if isinstance(x, dict):
                yield f"{path}[{i}]", x


def ints(v: Any) -> list[int]:
    return [x for x in v if is_int(x)] if isinstance(v, list) else []


@dataclass(frozen=True)
class Open(Node):
    """A finite number strictly above lo (and below hi): losses, whose log the fits take, and levels."""

    lo: float
    hi: float | None = None

    def check(self, v: Any, path: str, out: list[str]) -> None:
        Num().check(v, path, out)
        if is_num(v) and (v <= self.lo or (self.hi is not None and v >= self.hi)):
            bound = f"> {self.lo:g}" if self.hi is None else f"in ({self.lo:g}, {self.hi:g})"
            out.append(f"{path}: {show(v)} is not {bound}")


@dataclass(frozen=True)
class Pair(Node):
    """A two-element array such as [loops, loss] or a [low, high] range (ordered: first <= second)."""

    first: Node
    second: Node
    ordered: bool = False

    def check(self, v: Any, path: str, out: list[str]) -> None:
        if not isinstance(v, list) or len(v) != 2:
            got = f"{len(v)} entries" if isinstance(v, list) else show(v)
            out.append(f"{path}: expected an array of 2 entries, got {got}")
            return
        self.first.check(v[0], f"{path}[0]", out)
        self.second.check(v[1], f"{path}[1]", out)
        if self.ordered and is_num(v[0]) and is_num(v[1]) and v[0] > v[1]:
            out.append(f"{path}: {show(v[0])} is above {show(v[1])}")


@dataclass(frozen=True)
class Ruled(Node):
    """A node plus a rule across the fields of the object it checks (run when the value is an object); the
    rule's docstring is its documentation."""

    node: Node
    rule: Callable[[dict, str, list[str]], None]

    def check(self, v: Any, path: str, out: list[str]) -> None:
        self.node.check(v, path, out)
        if isinstance(v, dict):
            self.rule(v, path, out)


@dataclass(frozen=True)
class Either(Node):
    """`present` for an object holding the `marker` key, `absent` otherwise: a fit or the error it raised."""

    marker: str
    present: Node
    absent: Node

    def check(self, v: Any, path: str, out: list[str]) -> None:
        (self.present if isinstance(v, dict) and self.marker in v else self.absent).check(v, path, out)
