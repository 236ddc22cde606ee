"""Durable file writes: a killed process never leaves a half-written file behind.

Every write the harness makes to a run directory goes through this module, and every file-system step in
it is a call on the module-level `os`, so a test can stop the process at each step in turn
(tests/faults.py) and check that a resume still gives identical results.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"  # every temporary name is `.<name>.<random>.tmp`: visible, and swept on resume


def temp_path(path: Path) -> Path:
    """A fresh hidden temporary name beside `path` (same directory, so a rename is atomic)."""
    return path.parent / f".{path.name}.{secrets.token_hex(6)}{TMP_SUFFIX}"


def write_file(path: Path, data: bytes) -> None:
    """Create `path` (which must not exist), write and fsync it. Not atomic: the caller renames."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or a removal inside directory `path` survive a power cut, not only a kill."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dir(path: Path) -> None:
    os.makedirs(path, exist_ok=True)


def rename(src: Path, dst: Path) -> None:
    """Atomic replace of a file (or move of a directory to a free name), made durable."""
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)


def remove_tree(path: Path) -> None:
    """Remove a file or a directory tree. A kill half-way leaves a partial tree; readers must verify."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            remove_tree(child)
        os.rmdir(path)
    elif path.exists() or path.is_symlink():
        os.unlink(path)


def remove_stale_temps(root: Path) -> list[Path]:
    """Remove the temporary files and directories a killed writer left under `root`; return them.
    Only safe while no other process writes there (the run directory lock guarantees it)."""
    stale = sorted(p for p in Path(root).rglob(f".*{TMP_SUFFIX}") if p.name.startswith("."))
    for p in stale:
        if p.exists():
            remove_tree(p)
    return stale


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    path = Path(path)
    make_dir(path.parent)
    tmp = temp_path(path)
    try:
        write_file(tmp, data)
        rename(tmp, path)
    except Exception:  # an error, not a kill (BaseException): tidy up; a kill's leftovers are swept on resume
        remove_tree(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """JSON with NaN/inf refused: results must be strict JSON any tool can read."""
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")

