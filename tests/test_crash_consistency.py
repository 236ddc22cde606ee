"""A crash at every file-system step of a checkpoint or of the final results write, then a resume: the same
results as without the crash.

Each test first counts the steps of an uninterrupted run (tests/faults.py), then, for every step k, crashes
a fresh run at step k, resumes it with the real file system and compares with the uninterrupted run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from faults import SimulatedCrash, faulty_fs
from test_harness import TINY
from test_train import copy_batches, tiny

from mythbench.config import TrainConfig, resolve_run_config
from mythbench.results.schema import check_schema
from mythbench.training import harness
from mythbench.training.train import WEIGHTS, train_model

CFG = TrainConfig(steps=6, batch_size=8, warmup_steps=1, recipe="parcae", checkpoint_every=2)


def _train(ckpt_dir: Path) -> dict:
    """Train (or resume) the tiny model; what must not depend on crashes: outcome and final weights."""
    outcome = train_model(tiny(), copy_batches, [2, 3], CFG, seed=1, ckpt_dir=ckpt_dir, train_loops=3)
    return {"status": outcome.status, "steps": outcome.steps, "tokens": outcome.tokens,
            "final_loss": outcome.final_loss, "weights": (ckpt_dir / WEIGHTS).read_bytes()}


def test_a_crash_at_any_step_of_any_checkpoint_resumes_to_identical_training(tmp_path):
    with faulty_fs() as counter:
        reference = _train(tmp_path / "reference")
    steps = counter.steps
    assert len(steps) >= 3 * 4, steps  # three checkpoints, each several steps
    for k in range(1, len(steps) + 1):
        run = tmp_path / f"crash{k}"
        with pytest.raises(SimulatedCrash), faulty_fs(crash_at=k):
            _train(run)
        resumed = _train(run)
        assert resumed == reference, f"crash at step {k} ({steps[k - 1]}) changed the result"
        assert not list(run.rglob("*.tmp")), f"crash at step {k}: temporary files left after the resume"


def _comparable(run_dir: Path) -> dict:
    """results.json without the fields that differ between any two runs (times, wall clocks)."""
    doc = json.loads((run_dir / "results.json").read_text())
    assert check_schema(doc) == []
    for key in ("created_at", "wall_time_s"):
        doc.pop(key)
    for model in doc["models"]:
        for run in model["runs"]:
            run["train"].pop("wall_time_s")
    return doc


@pytest.mark.slow
def test_a_crash_at_any_step_of_the_final_results_write_resumes_to_the_same_results(tmp_path):
    cfg = resolve_run_config("parity", "quick", None, [*TINY, "train.steps=4", "eval.train_points=1"])
    harness.run_benchmark(cfg, tmp_path / "reference", "test")
    reference = _comparable(tmp_path / "reference")
    before_final = tmp_path / "trained"  # every model trained and evaluated, nothing written about the run
    shutil.copytree(tmp_path / "reference" / "models", before_final / "models")
    with faulty_fs() as counter:
        harness.run_benchmark(cfg, before_final, "test")
    steps = counter.steps
    assert any("report.md" in s for s in steps)
    # every step up to the results.json rename and its directory fsync; after it come the report files,
    # each written by the same atomic write: crash at each one's commit point (its rename)
    last = max(i for i, s in enumerate(steps, 1) if s.startswith("rename") and s.endswith("/results.json")) + 1
    points = [*range(1, last + 1), *(i for i, s in enumerate(steps, 1) if i > last and s.startswith("rename"))]
    for k in points:
        run = tmp_path / f"crash{k}"
        shutil.copytree(before_final / "models", run / "models")
        with pytest.raises(SimulatedCrash), faulty_fs(crash_at=k):
            harness.run_benchmark(cfg, run, "test")
        harness.run_benchmark(cfg, run, "test")
        assert _comparable(run) == reference, f"crash at step {k} ({steps[k - 1]}) changed the results"
        assert not list(run.rglob("*.tmp")), f"crash at step {k}: temporary files left after the resume"
        assert (run / "report.md").exists()
