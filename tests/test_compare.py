"""`mythbench compare`: every seed is shown next to the mean, failed seeds are named, runs of different
task versions or without the asked difficulty are refused."""

from __future__ import annotations

import json

import pytest

from mythbench.analysis.stats import wilson_interval
from mythbench.core.errors import ConfigError
from mythbench.reports.compare import compare


def _cell(difficulty: int, loops: int, accuracy: float) -> dict:
    correct = round(accuracy * 20)
    low, high = wilson_interval(correct, 20)
    return {"difficulty": difficulty, "loops": loops, "n": 20, "correct": correct, "accuracy": correct / 20,
            "ci_low": low, "ci_high": high, "token_accuracy": accuracy}


def write_run(path, accuracy_by_seed: dict[int, float | None], version: int = 2, act: float | None = None):
    runs = []
    for seed, acc in accuracy_by_seed.items():
        if acc is None:
            runs.append({"seed": seed, "status": "diverged", "cells": [], "diagnostics": {}})
            continue
        cells = [_cell(d, loops, acc if loops == d else acc / 2) for d in (4, 8) for loops in (4, 8, 16)]
        halting = {"8": {"mean": act}} if act is not None else {}
        runs.append({"seed": seed, "status": "complete", "cells": cells, "diagnostics": {"halting": halting}})
    model = {"name": "control", "role": "control", "eval_loops": [1, 4, 8, 16], "train_loops": 4,
             "loop_rule": {"name": "difficulty", "loops": {"4": 4, "8": 8}}, "runs": runs}
    results = {"schema_version": 2, "kind": "run",
               "task": {"name": "parity", "version": version, "train_difficulties": [4], "test_difficulties": [8]},
               "config": {"train": {"recipe": "tied", "progressive": True}}, "models": [model]}
    path.mkdir()
    (path / "results.json").write_text(json.dumps(results))
    return path


def test_every_seed_is_shown_and_a_failed_seed_is_named(tmp_path):
    a = write_run(tmp_path / "a", {0: 1.0, 1: 0.5, 2: None}, act=3.5)
    table = compare([a], [8])
    row = next(line for line in table.splitlines() if line.startswith("| a |"))
    assert "0.75 [0.50, 1.00] @8 (1.00 / 0.50)" in row and "0.50 / 0.25 @4" in row and "0.50 / 0.25 @16" in row
    assert "3.50" in row
    assert "s2 diverged" in row and "tied + progressive" in row
    # seed 0 learned n = 4 (the largest training length), seed 1 did not, seed 2 diverged
    assert "| seed-fragile (1 of 3 seeds learned) |" in row
    every = compare([write_run(tmp_path / "b", {0: 1.0, 1: 0.95})], [8])
    assert "| every seed learned |" in every and "seed-fragile" not in every.split("\n\n")[1]


def test_runs_of_different_task_versions_or_difficulties_are_refused(tmp_path):
    a, b = write_run(tmp_path / "a", {0: 1.0}), write_run(tmp_path / "b", {0: 1.0}, version=1)
    with pytest.raises(ConfigError, match="one task version"):
        compare([a, b])
    with pytest.raises(ConfigError, match=r"\[32\] are not evaluated"):
        compare([a], [8, 32])
