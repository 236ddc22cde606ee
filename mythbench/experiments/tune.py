"""`mythbench tune TASK`: the same search for every model of the run, chosen on the validation split.

The search space is declared in the run config (recipes.yaml): learning rates (tune.lr_grid, multipliers of
train.lr) and named recipes (tune.recipes, from `recipes:`). Every model `mythbench run` would train gets
the same trials (every point, or tune.trials points drawn once with tune.search_seed), each a training of
tune.steps steps at every tune seed, scored by its mean loss on the validation split at the training
difficulties (training/trial.py, which cannot read the test split). Per model, the trial of lowest
seed-mean validation loss is chosen (`scale.lowest_validation`, the ladder's learning-rate rule).

Trials are cells of the sweep engine, so a search runs on any backend and resumes where it stopped. Layout:
    config.yaml, code.sha256      the run config searched and the code (a directory resumes only with both)
    models/<model>.t<i>/seed<k>/  trial i of a model: checkpoints and result.json (validation cells only)
    tune.json                     trials, per-model choice, config, fingerprints, seeds (written atomically)
`mythbench run TASK --tuned DIR/tune.json` trains each model with its choice (training/tuned.py).
"""

from __future__ import annotations

import dataclasses
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import mythbench
from mythbench.analysis.stats import cell_rates
from mythbench.config import LOOP_ONLY_KEYS, RECIPE_KEYS, RunConfig, TrainConfig, to_dict
from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_json
from mythbench.experiments.backends import Backend
from mythbench.experiments.cells import Cell
from mythbench.experiments.scale import lowest_validation
from mythbench.experiments.sweep import CellsFailed, execute
from mythbench.models import registry
from mythbench.tasks import get_task
from mythbench.training import harness
from mythbench.training.runlock import run_dir_lock
from mythbench.training.trial import ValidationView, validation_difficulties, validation_fingerprint
from mythbench.training.tuned import TUNE_KIND

TUNE_SCHEMA_VERSION = 1
CRITERION = ("lowest mean over tune.seeds of the mean cross-entropy per scored token on the validation split, "
             "at the evaluated training difficulties, a looped model at its loop rule's count")


def search_points(cfg: RunConfig) -> list[dict]:
    """The trials every model gets: points of lr_grid x recipes (None: the run's own recipe), all of them or
    tune.trials of them drawn once with tune.search_seed."""
    grid = [{"lr_scale": m, "recipe": r} for r in (cfg.tune.recipes or [None]) for m in cfg.tune.lr_grid]
    if cfg.tune.trials:
        grid = random.Random(cfg.tune.search_seed).sample(grid, cfg.tune.trials)
    return [{"trial": i, "lr": cfg.train.lr * p["lr_scale"], **p} for i, p in enumerate(grid)]


def trial_config(cfg: RunConfig, point: dict) -> RunConfig:
    """The config a trial trains with: the point's recipe and learning rate, tune.steps, the tune seeds."""
    train = cfg.train if point["recipe"] is None else cfg.train.with_recipe(cfg.recipes[point["recipe"]])
    train = dataclasses.replace(train, lr=point["lr"])
    if cfg.tune.steps:
        train = train.with_steps(cfg.tune.steps)
    return dataclasses.replace(cfg, train=train, seeds=list(cfg.tune.seeds))


def trained_alike(plan: harness.ModelPlan, train: TrainConfig) -> TrainConfig:
    """What a model's training depends on: for a model without loops, the train config less the keys that act
    on loops only (loop schedule, progressive term, readout tail; train.py ignores them there)."""
    if registry.is_looped(plan.family):
        return train
    return dataclasses.replace(train, **{k: getattr(TrainConfig, k) for k in LOOP_ONLY_KEYS})


def plan_trials(cfg: RunConfig, tune_dir: Path, task: Any) -> list[tuple[harness.ModelPlan, dict, Cell]]:
    """(model, point, cell) for every model of the run, every point and every tune seed. Points that train a
    model alike (a twin at two recipes that differ in loop keys only) share one cell: the same trials for
    every model, and a twin's duplicates are not trained again (tune.json marks them `same_as`)."""
    if cfg.tune.use:
        raise ConfigError("tune.use: a search starts from the declared space, not from another search's choices")
    out = []
    for plan in harness.plan_models(cfg, task):
        firsts: list[tuple[TrainConfig, int]] = []  # each distinct training and its first trial
        for point in search_points(cfg):
            trial_cfg = trial_config(cfg, point)
            alike = trained_alike(plan, trial_cfg.train)
            shared = next((i for train, i in firsts if train == alike), point["trial"])
            if shared == point["trial"]:
                firsts.append((alike, shared))
            trial = dataclasses.replace(plan, name=f"{plan.name}.t{shared}")
            out += [(plan, point, Cell(str(tune_dir), trial.name, seed, trial, trial_cfg, kind="trial"))
                    for seed in cfg.tune.seeds]
    return out


def _trial_row(point: dict, cell: Cell) -> dict:
    """One trial at one seed as tune.json stores it; a cell that never finished has status `missing`."""
    row = {**point, "seed": cell.seed, "status": "missing"}
    shared = int(cell.model.rsplit(".t", 1)[1])
    if shared != point["trial"]:
        row["same_as"] = shared  # trained alike (loop-only keys on a model without loops): one cell
    if cell.done():
        result = harness.stored_result(cell.result_path)
        row.update(status=result["status"], final_train_loss=result["train"]["final_loss"])
        if result.get("validation"):
            row.update(validation_loss=float(np.mean([c["loss"] for c in result["validation"]])),
                       validation_accuracy=float(np.mean([cell_rates(c)["accuracy"] for c in result["validation"]])),
                       validation=result["validation"])
    return row


def tune_document(cfg: RunConfig, tune_dir: Path, trials: list, task: Any, command: str, started: float) -> dict:
    """tune.json: the search, every trial, and per model the chosen trial (None where a trial is missing)."""
    points = search_points(cfg)
    rows = [(plan, _trial_row(point, cell)) for plan, point, cell in trials]
    scored = [{**row, "model": plan.name} for plan, row in rows if row["status"] != "missing"]
    choice = lowest_validation(scored, lambda r: r["model"], lambda r: r["trial"], len(points))
    models = []
    for plan in {plan.name: plan for plan, _, _ in trials}.values():
        best, seeds, score = choice.get(plan.name, (None, [], {}))
        chosen = None
        if best is not None:
            train = trial_config(cfg, points[best]).train
            chosen = {"trial": best, "lr": train.lr, "recipe": points[best]["recipe"],
                      "train": {k: getattr(train, k) for k in RECIPE_KEYS}, "seeds": seeds,
                      "validation_loss": score[best] if np.isfinite(score[best]) else None}
        models.append({"name": plan.name, "family": plan.family, "role": plan.role,
                       "model_config": dataclasses.asdict(plan.config),
                       "trials": [row for p, row in rows if p is plan], "chosen": chosen})
    difficulties = validation_difficulties(cfg, task)
    return {
        "schema_version": TUNE_SCHEMA_VERSION, "kind": TUNE_KIND, "mythbench_version": mythbench.__version__,
        "git": harness.git_state(), "command": command,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "status": "complete" if all(m["chosen"] for m in models) else "incomplete",
        "preset": cfg.preset, "config": to_dict(cfg), "code_sha256": (tune_dir / "code.sha256").read_text().strip(),
        "task": {"name": task.spec.name, "version": task.spec.version,
                 "train_difficulties": task.spec.train_difficulties, "validation_difficulties": difficulties,
                 "validation_fingerprint": validation_fingerprint(ValidationView(task), difficulties)},
        "environment": harness.environment(cfg.device),
        "search": {"points": points, "steps": trial_config(cfg, points[0]).train.steps, "seeds": cfg.tune.seeds,
                   "search_seed": cfg.tune.search_seed, "recipes": {r: cfg.recipes[r] for r in cfg.tune.recipes},
                   "criterion": CRITERION},
        "models": models,
    }


def run_tune(cfg: RunConfig, tune_dir: Path, command: str, backend: Backend, retries: int = 2) -> dict:
    """Run every trial not done yet on `backend`, then write tune.json (also when some trial kept failing:
    status `incomplete`, no choice for its model, and CellsFailed raised after writing)."""
    started = time.perf_counter()
    task = get_task(cfg.task)
    trials = plan_trials(cfg, tune_dir, task)
    try:
        with run_dir_lock(tune_dir):
            harness.prepare_run_dir(tune_dir, cfg)
            failed = execute(list(dict.fromkeys(cell for _, _, cell in trials)), backend, retries)
    finally:
        backend.close()
    doc = tune_document(cfg, tune_dir, trials, task, command, started)
    atomic_write_json(tune_dir / "tune.json", doc)
    if failed:
        raise CellsFailed(failed)
    return doc


def format_choices(doc: dict) -> str:
    """Per model, the chosen learning rate and recipe, and its validation loss: the terminal's summary."""
    lines = [f"{'model':<22} {'lr':>9} {'recipe':<24} validation loss"]
    for m in doc["models"]:
        c = m["chosen"]
        lines.append(f"{m['name']:<22} " + ("(not chosen: a trial is missing)" if c is None else
                     f"{c['lr']:>9.3g} {c['recipe'] or '(run config)':<24} {c['validation_loss']}"))
    return "\n".join(lines)
