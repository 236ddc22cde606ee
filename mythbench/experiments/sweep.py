"""`mythbench sweep GRID.yaml`: a declared grid of runs, their (model, seed) cells run on a backend, and each
run's results.json and tables assembled exactly as `mythbench run` writes them.

A grid file (every key optional but `tasks`):

    tasks: [parity, state]            # one run directory per task x preset x variant x width
    presets: [quick]
    seeds: 3                          # 0..2, or a list [0, 4]; default: the preset's seeds
    models: [rdt, no-lora]            # the looped models each run trains (default: recipes.yaml's)
    twins: [iso-param]                # the twins each looped model gets ([] = none)
    variants:                         # name -> `--set` overrides; default {default: []}
      default: []
      additive: [model.injection=additive]
    widths: [32, 64]                  # model.d_model values (pick n_heads that divide them)
    set: [train.steps=200]            # overrides for every run
    config: base.yaml                 # a run config file, relative to the grid file
    out: runs/sweep/NAME              # default runs/sweep/<grid file name>

Runs land in OUT/<task>/<preset>/<variant>[-w<width>]. The engine runs the cells whose `result.json` does
not exist yet, retries a failed or killed cell up to `retries` times (training resumes from its last
checkpoint), reports the cells that still fail, and assembles every run whose cells are all done by calling
the serial path, which then only reads the stored per-seed results.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mythbench.config import RunConfig, read_yaml, resolve_run_config
from mythbench.core.errors import ConfigError, MythbenchError, known_hint
from mythbench.experiments import backends
from mythbench.experiments.backends import Backend
from mythbench.experiments.cells import Cell, plan_cells
from mythbench.experiments.scale import run_scale
from mythbench.tasks import get_task
from mythbench.training.harness import prepare_run_dir, run_benchmark
from mythbench.training.runlock import run_dir_lock

MAX_WORKERS, MAX_RETRIES = 1024, 100
GRID_KEYS = ("tasks", "presets", "seeds", "models", "twins", "variants", "widths", "set", "config", "out")
log = logging.getLogger("mythbench")


class CellsFailed(MythbenchError):
    """Cells that still failed after their retries; the runs they belong to are not assembled."""

    def __init__(self, failures: dict[Cell, str]):
        self.problems = [f"{c.label} failed: {e}" for c, e in failures.items()]
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Run:
    """One run directory of the grid: what `mythbench run` would compute with `cfg` into `run_dir`."""

    kind: str
    cfg: RunConfig
    run_dir: Path


def _str_list(data: dict, key: str, problems: list[str], default: list) -> list:
    value = data.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{key}: expected a list of strings, got {value!r}")
        return []
    return value


def load_grid(path: Path, out: Path | None = None) -> list[Run]:
    """Read, expand and validate a grid file and every run's config; ConfigError lists every problem. (Model
    and baseline problems are found when `prepare` plans the runs, before any directory is made.)"""
    problems: list[str] = []
    data = read_yaml(path, problems)
    problems += [f"{k}: unknown key{known_hint(str(k), GRID_KEYS)}" for k in data
                 if k not in GRID_KEYS and k != "baselines"]
    if "baselines" in data:
        problems.append("baselines: replaced by `models:` (the looped models each run trains, e.g. [rdt, control]) "
                        "and `twins:` (the standard transformers each gets, e.g. [iso-param, iso-flop])")
    tasks = _str_list(data, "tasks", problems, [])
    if not tasks and isinstance(data.get("tasks", []), list):
        problems.append("tasks: required, a non-empty list of task names")
    presets = _str_list(data, "presets", problems, ["quick"])
    common = _str_list(data, "set", problems, [])
    for key in ("models", "twins"):
        if key in data:
            common = [f"{key}={json.dumps(_str_list(data, key, problems, []))}", *common]
    variants = data.get("variants", {"default": []})
    if not isinstance(variants, dict) or not variants or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in variants.values()):
        problems.append(f"variants: expected a mapping of names to lists of key=value strings, got {variants!r}")
        variants = {}
    problems += [f"variants: {n!r} is not a plain name (letters, digits, '.', '_', '-')"
                 for n in variants if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(n))]
    seeds, widths = data.get("seeds"), data.get("widths", [None])
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0:
        seeds = list(range(seeds))
    elif seeds is not None and not isinstance(seeds, list):
        problems.append(f"seeds: expected a positive count or a list of seeds, got {seeds!r}")
    if not isinstance(widths, list) or not widths or not all(
            w is None or (isinstance(w, int) and not isinstance(w, bool) and w > 0) for w in widths):
        problems.append(f"widths: expected a non-empty list of positive integers, got {widths!r}")
        widths = []
    for key in ("config", "out"):
        if key in data and not isinstance(data[key], str):
            problems.append(f"{key}: expected a path, got {data[key]!r}")
    if problems:  # the axes are wrong: expanding them would only repeat their problems per run
        raise ConfigError(problems)
    config_file = path.parent / data["config"] if "config" in data else None
    root = out or Path(data.get("out", Path("runs") / "sweep" / path.stem))
    runs = []
    for task, preset, (name, sets), width in itertools.product(tasks, presets, variants.items(), widths):
        run_dir = root / task / preset / (name if width is None else f"{name}-w{width}")
        extra = [] if width is None else [f"model.d_model={width}"]
        try:
            cfg = resolve_run_config(task, preset, config_file, [*common, *sets, *extra], seeds=seeds)
        except ConfigError as e:
            problems += [f"{run_dir}: {p}" for p in e.problems]
            continue
        runs.append(Run("run", cfg, run_dir))
    if problems:
        raise ConfigError(problems)
    return runs


def prepare(runs: list[Run]) -> list[Cell]:
    """Plan every run's models, then claim every run directory (same config, same code, or resume); either
    step ends in one ConfigError listing the problems of every run. Returns all their cells."""
    cells, problems = [], []
    for run in runs:
        try:
            cells += plan_cells(run.kind, run.cfg, run.run_dir, get_task(run.cfg.task))
        except ConfigError as e:
            problems += [f"{run.run_dir}: {p}" for p in e.problems]
    for run in [] if problems else runs:
        try:
            prepare_run_dir(run.run_dir, run.cfg)
        except ConfigError as e:
            problems += [f"{run.run_dir}: {p}" for p in e.problems]
    if problems:
        raise ConfigError(problems)
    return cells


def execute(cells: list[Cell], backend: Backend, retries: int = 2) -> dict[Cell, str]:
    """Run every cell not done yet, in rounds: a round's failed cells run again in the next one, up to
    `retries` more times each. Returns the cells that still failed, with their last error."""
    todo = [c for c in cells if not c.done()]
    attempts: Counter[Cell] = Counter()
    failed: dict[Cell, str] = {}
    with tqdm(total=len(cells), initial=len(cells) - len(todo), desc="cells", unit="cell", dynamic_ncols=True) as bar:
        while todo:
            again = []
            for cell, error in backend.run(todo):
                if error is None and cell.done():
                    bar.update(1)
                    continue
                attempts[cell] += 1
                error = error or "finished without writing its result.json"
                if attempts[cell] <= retries:
                    log.warning("%s: attempt %d failed (%s); retrying", cell.label, attempts[cell], error)
                    again.append(cell)
                else:
                    failed[cell] = error
            todo = again
    return failed


def run_grid(runs: list[Run], backend: Backend, command: str, retries: int = 2) -> list[dict]:
    """Every cell of every run on `backend`, then each run's results.json and tables as the serial path
    writes them. Raises CellsFailed (after assembling the runs that are complete) if a cell kept failing."""
    started = time.perf_counter()
    try:  # the sweep holds its run directories while cells run (workers write there on its behalf)
        with contextlib.ExitStack() as held:
            for run in runs:
                held.enter_context(run_dir_lock(run.run_dir))
            failed = execute(prepare(runs), backend, retries)
            # a ladder's pilot sets the rates of its points: plan again until nothing new is left to run
            while not failed and any(not c.done() for c in prepare(runs)):
                failed = execute(prepare(runs), backend, retries)
    finally:
        backend.close()
    broken = {Path(c.run_dir) for c in failed}
    assemble = {"run": run_benchmark, "scale": run_scale}
    results = [assemble[r.kind](r.cfg, r.run_dir, command, started=started) for r in runs
               if r.run_dir not in broken]
    if failed:
        raise CellsFailed(failed)
    return results


def make_backend(name: str, workers: int | None = None, address: str | None = None,
                 slurm: dict[str, Any] | None = None, retries: int = 2, slurm_folder: Path | None = None) -> Backend:
    """The backend the CLI options ask for; ConfigError listing every bad option (one that would do nothing
    with this backend is refused, not ignored), or a missing optional extra. `slurm` holds the `--slurm`
    options given; job logs go to `slurm_folder` unless they name a `folder`."""
    problems = []
    if name not in backends.BACKENDS:
        problems.append(f"--backend {name!r} is not one of {', '.join(backends.BACKENDS)}")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        problems.append(f"--workers {workers}: must be in [1, {MAX_WORKERS}]")
    if not 0 <= retries <= MAX_RETRIES:
        problems.append(f"--retries {retries}: must be in [0, {MAX_RETRIES}]")
    if address is not None and name != "ray":
        problems.append(f"--address names a Ray cluster; it does nothing with --backend {name}")
    if address is not None and workers is not None and name == "ray":
        problems.append("--workers sizes the local Ray cluster; it does nothing with --address (the cluster's own "
                        "CPUs are used)")
    if slurm and name != "slurm":
        problems.append(f"--slurm {', '.join(slurm)}: Slurm options do nothing with --backend {name}")
    if problems:
        raise ConfigError(problems)
    if name == "local":
        return backends.LocalBackend(workers)
    if name == "ray":
        return backends.RayBackend(workers, address=address)
    params: dict[str, Any] = {"folder": slurm_folder, **(slurm or {})}
    if workers is not None:
        params["array_parallelism"] = workers
    return backends.SlurmBackend(**params)


def run_workers(workers: int | None, configs: list[RunConfig], world: int) -> int:
    """How many cells `mythbench run` trains at once (1: one by one, in its own process). By default the cores
    shared among cells of the configs' `threads`, at most one per cell (the RDT and each baseline at each
    seed); one on a GPU (the cells would share it) and under torchrun, where each rank trains the cells one
    by one, data-parallel with the other ranks."""
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers} must be >= 1")
    if world > 1:
        if workers not in (None, 1):
            raise ConfigError(f"--workers {workers}: under torchrun each rank trains the cells one by one")
        return 1
    if workers is not None:
        return workers
    if any(cfg.device != "cpu" for cfg in configs):
        return 1
    cells = sum(len(cfg.seeds) * len(cfg.models) * (1 + len(cfg.twins)) for cfg in configs)
    return min(backends.default_workers(max(cfg.threads for cfg in configs)), cells)
