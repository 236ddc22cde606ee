"""A cell: one (model, seed) of one run directory, the unit of work `mythbench run` does in its loop.

Cells are what the sweep engine ships to worker processes, Ray workers or Slurm jobs. A cell carries the
model plan and config the serial path would use, and a worker calls the very same
`harness.train_and_evaluate` with them (a tuning trial, kind "trial": `trial.train_and_validate`); its
per-seed `result.json` marks it done.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mythbench.config import RunConfig
from mythbench.experiments import scale
from mythbench.tasks import get_task
from mythbench.training import harness
from mythbench.training.harness import ModelPlan
from mythbench.training.trial import train_and_validate
from mythbench.training.tuned import apply_tuning

log = logging.getLogger("mythbench")


@dataclass(frozen=True)
class Cell:
    """One model at one seed of the run in `run_dir`, identified by those three; it carries the planned model
    and the config it trains with, so a worker does not plan (matching twins takes seconds)."""

    run_dir: str
    model: str
    seed: int
    plan: ModelPlan = field(compare=False, repr=False)
    cfg: RunConfig = field(compare=False, repr=False)
    kind: str = field(default="run", compare=False)  # "trial": a tuning trial, scored on validation only

    @property
    def label(self) -> str:
        return f"{self.run_dir}:{self.model}:seed{self.seed}"

    @property
    def result_path(self) -> Path:
        return Path(self.run_dir) / "models" / self.model / f"seed{self.seed}" / "result.json"

    def done(self) -> bool:
        return self.result_path.exists()


def plan_cells(kind: str, cfg: RunConfig, run_dir: Path, task: Any) -> list[Cell]:
    """Every cell of a run, in the order the serial path trains them: the models `mythbench run` plans (kind
    "run"), model by model, seed by seed; or what the width ladder of `mythbench scale` can train now with the
    config each point trains with (kind "scale", `scale.planned_points`: its learning-rate pilot first, when it
    has one, whose outcome sets the rates of the ladder's points)."""
    if kind == "scale":
        return [Cell(str(run_dir), plan.name, seed, plan, pcfg)
                for seed, plan, pcfg in scale.planned_points(cfg, task, Path(run_dir))]
    plans = harness.plan_models(cfg, task)
    configs = apply_tuning(cfg, plans)[0]
    return [Cell(str(run_dir), plan.name, seed, plan, configs[plan.name]) for plan in plans for seed in cfg.seeds]


def run_cell(cell: Cell) -> str:
    """Train and evaluate one cell in this process (any backend's worker); return its status.

    The worker refuses to compute for a run directory prepared by other source code (a cluster node with
    another checkout), since its results would be mixed into a run they do not belong to. Per-step progress
    bars are silenced: parallel cells would interleave them; the engine shows one bar over cells instead."""
    run_dir = Path(cell.run_dir)
    stored = (run_dir / "code.sha256").read_text().strip()
    if stored != harness.code_fingerprint():
        raise RuntimeError(f"{cell.label}: this worker runs other source code than the one that prepared "
                           f"{run_dir} (sha256 {stored[:12]}…); install the same checkout on every worker")
    task = get_task(cell.cfg.task)
    handler = logging.FileHandler(run_dir / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("%s seed %d: cell started in process %d on %s", cell.model, cell.seed, os.getpid(),
                 platform.node())
        with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
            work = train_and_validate if cell.kind == "trial" else harness.train_and_evaluate
            return work(cell.plan, cell.seed, cell.cfg, task, run_dir)["status"]
    finally:
        log.removeHandler(handler)
        handler.close()
