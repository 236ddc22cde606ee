"""Where sweep cells run: local processes, a Ray cluster, or Slurm through submitit.

A backend runs a batch of cells and yields each one as it finishes, with None or the error that ended it
(an exception in the cell, or its worker process dying). Retrying is the engine's business, not the
backend's, so every backend is asked for exactly one attempt per cell. Ray and submitit are optional
extras (`pip install -e ".[sweep]"`), imported only when their backend is asked for.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

import mythbench
from mythbench.core.errors import ConfigError
from mythbench.experiments.cells import Cell, run_cell

BACKENDS = ("local", "ray", "slurm")
PR_SET_PDEATHSIG = 1  # prctl(2) option: the signal this process gets when its parent dies
Outcome = tuple[Cell, "str | None"]


class Backend(Protocol):
    def run(self, cells: list[Cell]) -> Iterator[Outcome]: ...

    def close(self) -> None: ...


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def default_workers(threads: int) -> int:
    """Cells run at once when no count is given: the cores this process may use, shared among cells of
    `threads` intra-op threads each."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // threads)


def cell_threads(cells: list[Cell]) -> int:
    """The most intra-op threads any of `cells` runs with (its config's `threads`): what a worker must offer."""
    return max(c.cfg.threads for c in cells)


def _die_with_parent() -> None:
    """On Linux, ask the kernel to SIGKILL this worker when the process that started it dies, so that a killed
    run or sweep leaves no orphan training on (which a resumed one would race)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class InProcessBackend:
    """Cells one after another in this process: the serial path, which also lets a test watch what a cell reads."""

    def run(self, cells: list[Cell]) -> Iterator[Outcome]:
        for cell in cells:
            try:
                run_cell(cell)
            except Exception as e:  # the cell's own failure; the engine retries it or reports it
                yield cell, _error(e)
            else:
                yield cell, None

    def close(self) -> None:
        pass


@dataclass
class LocalBackend:
    """A pool of `workers` spawned processes on this machine (default: `default_workers` for the cells'
    threads); each cell sets its own threads from its config. A worker that dies (killed, out of memory)
    breaks the pool: every cell it had not finished is reported failed and the engine's next round starts
    a fresh pool, where finished cells are skipped."""

    workers: int | None = None

    def run(self, cells: list[Cell]) -> Iterator[Outcome]:
        workers = min(self.workers or default_workers(cell_threads(cells)), len(cells))
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_die_with_parent) as pool:
            futures: dict[Future, Cell] = {pool.submit(run_cell, c): c for c in cells}
            for future in as_completed(futures):
                exc = future.exception()
                yield futures[future], None if exc is None else _error(exc)

    def close(self) -> None:
        pass


@dataclass
class RayBackend:
    """Cells as Ray tasks, each asking for as many CPUs as its config's `threads` (and `gpus` GPUs on a GPU
    cluster). Without an address a local cluster with CPUs for `workers` cells (default: `default_workers`)
    is started at the first batch (and stopped at close); with one, cells go to that existing cluster, whose
    workers must run the same checkout (a cell checks it)."""

    workers: int | None = None
    address: str | None = None
    gpus: float = 0
    _started: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        _import("ray", "ray")

    def run(self, cells: list[Cell]) -> Iterator[Outcome]:
        import ray

        if not ray.is_initialized():
            local, threads = self.address is None, cell_threads(cells)
            env = {"PYTHONPATH": os.pathsep.join(_source_roots())} if local else {}
            cpus = (self.workers or default_workers(threads)) * threads if local else None
            ray.init(address=self.address, num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env} if env else None)
            self._started = True
        remote = ray.remote(num_gpus=self.gpus, max_retries=0)(run_cell)
        refs = {remote.options(num_cpus=c.cfg.threads).remote(c): c for c in cells}
        pending = list(refs)
        while pending:
            (ready,), pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(ready)
                yield refs[ready], None
            except Exception as e:  # a cell's exception, or the worker process died (WorkerCrashedError)
                yield refs[ready], _error(e)

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()


@dataclass
class SlurmBackend:
    """One Slurm job per cell through submitit, submitted as one job array (`array_parallelism` at a time),
    each with `cpus_per_task` CPUs (default: the cells' threads); job logs and pickles go to `folder`.
    cluster="local" is submitit's local executor (tests, no Slurm)."""

    folder: Path
    partition: str | None = None
    timeout_min: int = 60
    cpus_per_task: int | None = None
    gpus_per_node: int = 0
    array_parallelism: int = 64
    cluster: str = "slurm"
    poll_s: float = 1.0
    _executor: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        submitit = _import("submitit", "slurm")
        params: dict[str, Any] = {"timeout_min": self.timeout_min, "gpus_per_node": self.gpus_per_node,
                                  "slurm_array_parallelism": self.array_parallelism}
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.cpus_per_task is not None:
            params["cpus_per_task"] = self.cpus_per_task
        try:
            self._executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
            self._executor.update_parameters(**params)
        except (RuntimeError, ValueError, TypeError) as e:  # no sbatch/srun here, or a bad --slurm value
            raise ConfigError(f"--backend slurm: {e}") from None

    def run(self, cells: list[Cell]) -> Iterator[Outcome]:
        executor = self._executor
        if self.cpus_per_task is None:
            executor.update_parameters(cpus_per_task=cell_threads(cells))
        jobs = dict(zip(executor.map_array(run_cell, cells), cells, strict=True))
        while jobs:
            for job in [j for j in jobs if j.done()]:
                cell = jobs.pop(job)
                try:
                    job.result()
                    yield cell, None
                except Exception as e:  # the cell's exception, or the job failed/was cancelled/timed out
                    yield cell, _error(e).splitlines()[0]
            time.sleep(self.poll_s if jobs else 0)

    def close(self) -> None:
        pass


def _import(module: str, extra: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"--backend {extra} needs {module}: pip install -e \".[sweep]\"") from None


def _source_roots() -> list[str]:
    """Where this process imports mythbench, tasks and baselines from, for workers of a local Ray cluster
    (they would otherwise import whatever mythbench their environment has installed)."""
    root = str(Path(mythbench.__file__).resolve().parent.parent)
    return [root, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]]
