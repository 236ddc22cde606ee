"""Consistent results documents built the way `mythbench run` builds them, for a fake task.

Cells hold raw counts drawn from a seeded generator, as results schema 3 stores them (rates, intervals and
summaries are computed when read), so a document from here is exactly what the harness would write.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from mythbench.analysis.stats import with_derived
from mythbench.config import TrainConfig
from mythbench.core.errors import ConfigError
from mythbench.results.leaderboard import TaskIdentity
from mythbench.training.evaluate import rule_loops

TOY = TaskIdentity(name="toy", version=3, fingerprint=hashlib.sha256(b"toy v3 test set").hexdigest(),
                   train_difficulties=(2, 4), test_difficulties=(4, 6, 8, 12))


def fake_lookup(name: str) -> TaskIdentity:
    """Stands in for tasks.get_task: only the toy task exists."""
    if name == TOY.name:
        return TOY
    raise ConfigError(f"unknown task {name!r} (known: {TOY.name})")


def make_cell(rng: np.random.Generator, difficulty: int, loops: int | None, n: int) -> dict[str, Any]:
    correct = int(rng.integers(0, n + 1))
    tokens = 4 * n
    return {"difficulty": difficulty, "loops": loops, "n": n, "correct": correct,
            "token_correct": int(rng.integers(4 * correct, tokens + 1)), "tokens": tokens,
            "loss": float(rng.uniform(0.0, 3.0))}


def _model(name: str, family: str, role: str, seeds: Sequence[int], task: TaskIdentity, n: int,
           train_loops: int, rng: np.random.Generator, diverged: Sequence[int]) -> dict[str, Any]:
    looped = family == "rdt"
    eval_loops = list(range(1, 2 * train_loops + 1)) if looped else None
    difficulties = sorted(set(task.train_difficulties) | set(task.test_difficulties))
    runs = []
    for seed in seeds:
        run: dict[str, Any] = {"seed": seed, "status": "complete",
                               "train": {"steps": 100, "tokens": 12800, "final_loss": 0.25, "wall_time_s": 1.5},
                               "cells": [], "early_exit": [], "diagnostics": {}}
        if seed in diverged:
            run |= {"status": "diverged", "train": {**run["train"], "final_loss": None}}
        else:
            run["cells"] = [make_cell(rng, d, loops, n) for d in difficulties for loops in (eval_loops or [None])]
            if looped:
                exit_cell = make_cell(rng, difficulties[-1], None, n)
                for key in ("loops", "token_correct", "tokens", "loss"):
                    del exit_cell[key]
                run["early_exit"] = [{**exit_cell, "rule": "delta_h", "threshold": 0.01,
                                      "mean_loops": len(eval_loops) / 2 + 0.5}]
                run["diagnostics"] = {"spectral_radius": 0.93, "state_change": {"4": [0.5, 0.1]}}
        runs.append(run)
    entry = {"name": name, "family": family, "role": role, "model_config": {"d_model": 32, "nested": {"a": [1]}},
             "params": {"total": 5000, "unique": 4000, "active": 3500, "once": 2000, "recurrent": 2000},
             "flops_per_token": {"forward": 12000.0, "train": 36000.0},
             "train_loops": train_loops if looped else None, "eval_loops": eval_loops, "runs": runs,
             "loop_rule": None, "twin_of": None if looped else "rdt"}
    if looped:
        loops = rule_loops("difficulty", difficulties, max(task.train_difficulties), train_loops, TrainConfig(),
                           len(eval_loops))
        entry["loop_rule"] = {"name": "difficulty", "loops": {str(d): k for d, k in loops.items()}}
    return entry


def make_results(seeds: Sequence[int] = (0, 1, 2), task: TaskIdentity = TOY, n: int = 32, rng_seed: int = 0,
                 train_loops: int = 2, diverged: Sequence[int] = (), preset: str = "standard") -> dict[str, Any]:
    """A complete, consistent results.json document: an RDT and its iso-param twin."""
    rng = np.random.default_rng(rng_seed)
    models = [_model("rdt", "rdt", "rdt", seeds, task, n, train_loops, rng, diverged),
              _model("std-iso-param", "standard", "iso-param", seeds, task, n, train_loops, rng, diverged)]
    return {
        "schema_version": 3, "kind": "run", "mythbench_version": "0.1.0",
        "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
        "command": f"mythbench run {task.name} --preset {preset}", "created_at": "2026-11-29T06:00:00Z",
        "wall_time_s": 12.5, "status": "complete", "preset": preset, "config": {"task": task.name, "train": {}},
        "task": {"name": task.name, "version": task.version, "fingerprint": task.fingerprint,
                 "train_difficulties": list(task.train_difficulties),
                 "test_difficulties": list(task.test_difficulties), "depth_per_difficulty": 1,
                 "context_length": "fixed"},
        "evaluation": {"loop_rule": "difficulty", "depth_factor": 2.0, "loops_factor": 2,
                       "oracle": "oracle_best: the best loop count chosen on the test labels, not a usable rule"},
        "environment": {"python": "3.11.7", "torch": "2.13.0", "numpy": "2.4.6", "platform": "Linux",
                        "device": "cpu", "cpu_count": 2},
        "seeds": list(seeds), "models": models,
    }


def mutated(doc: dict[str, Any], path: Sequence[str | int], value: Any) -> dict[str, Any]:
    """A deep copy of doc with the value at path replaced (or deleted, if value is DELETE)."""
    out = copy.deepcopy(doc)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


DELETE = object()


def as_version_2(doc: dict[str, Any]) -> dict[str, Any]:
    """The same results as a version 2 file wrote them: rates, intervals and summaries stored beside the counts,
    the per-token accuracy as a rate."""
    old = {**with_derived(doc), "schema_version": 2}
    for m in old["models"]:
        for run in m["runs"]:
            for cell in run["cells"]:
                del cell["token_correct"], cell["tokens"]
    return old
