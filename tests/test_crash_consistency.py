"""A crash at every file-system step of a checkpoint, then a resume: the same training as without the crash.

Each test first counts the steps of an uninterrupted run (tests/faults.py), then, for every step k, crashes
a fresh run at step k, resumes it with the real file system and compares with the uninterrupted run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faults import SimulatedCrash, faulty_fs
from test_train import copy_batches, tiny

from mythbench.config import TrainConfig
from mythbench.train import WEIGHTS, train_model

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

