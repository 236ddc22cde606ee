"""One tuning trial: train a model briefly, then score it on the validation split at training difficulties.

The test split is out of a trial's reach, not just unused: the trial trains and scores on a `ValidationView`
of the task, which generates training and validation instances at the training difficulties and raises
`ForbiddenSplitRead` on anything else (the test split, a test difficulty, the test-set fingerprint).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from mythbench.config import RunConfig, eval_difficulties
from mythbench.core.fileio import atomic_write_json
from mythbench.models import registry
from mythbench.results.safejson import walk_problems
from mythbench.training import harness
from mythbench.training.evaluate import evaluate_plain, rule_loops


class ForbiddenSplitRead(RuntimeError):
    """Tuning asked for test instances; a bug, never a user error."""


class ValidationView:
    """A task as tuning sees it: its spec, and instances of the train and validation splits at its training
    difficulties. There is no test_batch and no fingerprint (which hashes the test set)."""

    def __init__(self, task: Any):
        self._task = task
        self.spec = task.spec

    def _check(self, split: str, difficulty: int) -> None:
        if split == "test" or difficulty not in self.spec.train_difficulties:
            raise ForbiddenSplitRead(f"tuning asked for {split} instances at difficulty {difficulty}; it may read the "
                                f"train and validation splits at {self.spec.train_difficulties} only")

    def generate(self, split: str, difficulty: int, n: int, seed: int) -> Any:
        self._check(split, difficulty)
        return self._task.generate(split, difficulty, n, seed)

    def validation_batch(self, difficulty: int) -> Any:
        self._check("validation", difficulty)
        return self._task.validation_batch(difficulty)

    def depth(self, difficulty: int) -> int:
        return self._task.depth(difficulty)


def validation_difficulties(cfg: RunConfig, task: Any) -> list[int]:
    """Where a trial is scored: the training difficulties the run evaluates (eval.train_points); those above
    train.max_difficulty are held-out lengths the trial never trained on."""
    return eval_difficulties(task.spec.train_difficulties, [], cfg.eval.train_points)


def validation_fingerprint(view: ValidationView, difficulties: list[int]) -> str:
    """sha256 over the validation instances a search scored on (the counterpart of the test fingerprint)."""
    digest = hashlib.sha256(f"mythbench-validation:{view.spec.name}:v{view.spec.version}".encode())
    for d in difficulties:
        batch = view.validation_batch(d)
        for array in (np.asarray([d, *batch.tokens.shape]), batch.tokens, batch.targets, batch.mask):
            digest.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
    return digest.hexdigest()


def validation_cells(model: Any, looped: bool, train_loops: int, cfg: RunConfig, view: ValidationView) -> list[dict]:
    """Validation cells per difficulty; a looped model runs the loop count its pre-registered rule gives there,
    the count its headline will be read at."""
    difficulties = validation_difficulties(cfg, view)
    hardest = max(cfg.train.trained_difficulties(view.spec.train_difficulties), default=1)
    loops = rule_loops(cfg.eval.loop_rule, difficulties, hardest, train_loops, cfg.train,
                       harness.max_eval_loops(train_loops, cfg, view)) if looped else {}
    return [evaluate_plain(model, lambda d: harness.scored_arrays(view.validation_batch(d)), [d], cfg.eval,
                           cfg.device, loops=loops.get(d))["cells"][0] for d in difficulties]


def train_and_validate(plan: Any, seed: int, cfg: RunConfig, task: Any, run_dir: Path) -> dict:
    """Train one trial (or resume it) and score it on the validation split; its result.json, written
    atomically, holds no test cells (`cells` is empty) and marks it done."""
    done = run_dir / "models" / plan.name / f"seed{seed}" / "result.json"
    if done.exists():
        return harness.stored_result(done)
    view = ValidationView(task)
    model, outcome = harness.train_cell(plan, seed, cfg, view, run_dir)
    result = {"seed": seed, "status": outcome.status, "train": outcome.to_dict(), "cells": []}
    if outcome.status == "complete":
        cells = validation_cells(model, registry.is_looped(plan.family), getattr(plan.config, "train_loops", 1),
                                 cfg, view)
        if walk_problems(cells):  # outputs overflowed: scored as diverged
            result["status"] = "diverged"
        else:
            result["validation"] = cells
    atomic_write_json(done, result)
    return result
