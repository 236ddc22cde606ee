"""One writer per run directory: `run`, `scale` (and anything else that writes one) hold its lock.

The lock is an flock on `RUN_DIR/.lock`, which names its holder (pid, host, command, start time). The
kernel drops an flock when its process dies, however it dies, so a lock left by a killed run is simply
free: the next run takes it over (and says whose it was), with no pid-liveness guess that pid reuse could
fool. While it holds the lock a run also removes the temporary files a killed writer left behind, which is
safe only because no other process writes there.
"""

from __future__ import annotations

import fcntl
import functools
import inspect
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from mythbench.core.errors import ConfigError
from mythbench.core.fileio import remove_stale_temps

LOCK_NAME = ".lock"
log = logging.getLogger("mythbench")
F = TypeVar("F", bound=Callable[..., Any])


def _holder() -> str:
    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"process {os.getpid()} on {socket.gethostname()} since {started}: {' '.join(sys.argv)[:500]}"


def _make_dir(run_dir: Path) -> None:
    """Create `run_dir` (and its parents), or say in a ConfigError why it cannot be a run directory."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{run_dir} is a file, not a directory; pass another --out") from None
    except OSError as exc:
        raise ConfigError(f"{run_dir}: cannot create the run directory ({exc.strerror}); pass another --out") from None


def _open_locked(path: Path) -> int | None:
    """An fd holding the flock on `path` (as it is now on disk), or None if another process holds it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # a holder that had created the directory removed it, empty, on release
            _make_dir(path.parent)
            continue
        except OSError as exc:  # a read-only file system, no permission
            raise ConfigError(f"{path.parent}: cannot write the run directory ({exc.strerror}); "
                              "pass another --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:  # the previous holder may have unlinked the file between our open and our flock
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` for the duration, or raise ConfigError naming the process that holds it. A directory
    this call created is removed again if it is still empty at the end (a run refused before writing)."""
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    _make_dir(run_dir)
    path = run_dir / LOCK_NAME
    fd = _open_locked(path)
    if fd is None:
        try:
            holder = path.read_text(errors="replace").strip() or "another process"
        except OSError:
            holder = "another process"
        raise ConfigError([f"{run_dir} is in use by {holder}",
                           "wait for it to finish, or pass another --out"])
    try:
        previous = os.read(fd, 4096).decode(errors="replace").strip()
        if previous:
            log.warning("%s: taking over the lock left by %s, which is no longer running", run_dir, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (_holder() + "\n").encode(), 0)
        for stale in remove_stale_temps(run_dir):
            log.info("removed %s, left by a writer that was killed", stale)
        yield
    finally:
        path.unlink(missing_ok=True)  # while still holding the flock: see _open_locked
        os.close(fd)
        if created and not any(run_dir.iterdir()):
            run_dir.rmdir()


def holds_run_dir(fn: F) -> F:
    """Decorate a function with a `run_dir` argument so that it runs holding that directory's lock."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with run_dir_lock(signature.bind(*args, **kwargs).arguments["run_dir"]):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
