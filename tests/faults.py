"""Fault injection: stop the process at the k-th file-system step of mythbench.core.fileio, as a kill would.

mythbench.core.fileio makes every durable write through its module-level `os`; `FaultyOs` stands in for it, numbers
each step that changes the disk, and at step `crash_at` dies: a write puts down half its bytes first, and
from then on every step raises without touching the disk, so no cleanup handler can tidy up after the
"crash". `SimulatedCrash` is a BaseException, so nothing in the code under test catches it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mythbench.core.fileio


class SimulatedCrash(BaseException):
    """The process died here."""


class FaultyOs:
    """`os` with its disk-changing calls counted, and fatal from step `crash_at` (1-based) on."""

    def __init__(self, crash_at: int | None = None):
        self.crash_at = crash_at
        self.steps: list[str] = []
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _step(self, name: str) -> bool:
        """Count a step; True when this is the step to die at (raise at once if already dead)."""
        if self.crashed:
            raise SimulatedCrash(f"after step {self.crash_at}")
        self.steps.append(name)
        self.crashed = len(self.steps) == self.crash_at
        return self.crashed

    def _checked(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._step(name):
            raise SimulatedCrash(f"at step {self.crash_at} ({name})")
        return fn(*args, **kwargs)

    def open(self, path: Any, flags: int, *args: Any) -> int:
        if flags & os.O_CREAT:
            return self._checked(f"create {os.fspath(path)}", os.open, path, flags, *args)
        return os.open(path, flags, *args)

    def write(self, fd: int, data: Any) -> int:
        if self._step("write"):
            os.write(fd, bytes(data[: len(data) // 2]))
            raise SimulatedCrash(f"at step {self.crash_at} (write, half done)")
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        return self._checked("fsync", os.fsync, fd)

    def replace(self, src: Any, dst: Any) -> None:
        return self._checked(f"rename {os.fspath(src)} -> {os.fspath(dst)}", os.replace, src, dst)

    def makedirs(self, path: Any, exist_ok: bool = False) -> None:
        return self._checked(f"mkdir {os.fspath(path)}", os.makedirs, path, exist_ok=exist_ok)

    def rmdir(self, path: Any) -> None:
        return self._checked(f"rmdir {os.fspath(path)}", os.rmdir, path)

    def unlink(self, path: Any) -> None:
        return self._checked(f"unlink {os.fspath(path)}", os.unlink, path)


@contextmanager
def faulty_fs(crash_at: int | None = None) -> Iterator[FaultyOs]:
    """Route mythbench.core.fileio through a FaultyOs for the duration (crash_at=None: only count the steps)."""
    fake = FaultyOs(crash_at)
    real = mythbench.core.fileio.os
    mythbench.core.fileio.os = fake  # type: ignore[assignment]
    try:
        yield fake
    finally:
        mythbench.core.fileio.os = real
