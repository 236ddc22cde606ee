"""Data-parallel training under torchrun: 2 gloo processes on CPU train the same run as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mythbench import distributed, harness
from mythbench.config import resolve_run_config

ROOT = Path(__file__).resolve().parent.parent
# An RDT with the quick preset's MoE FFN (bias balancing), so the summed balance counts are exercised.
TINY = ["model.d_model=16", "model.n_heads=2", "model.ffn_hidden=32", "model.train_loops=2", "train.steps=10",
        "train.batch_size=8", "train.warmup_steps=1", "train.checkpoint_every=5", "eval.loops_factor=1",
        "eval.train_points=1", "baselines=[]"]
LOSS_TOLERANCE = 1e-5  # absolute, per step; measured differences are ~1e-7 (float summation order)


def _losses(run_dir: Path) -> np.ndarray:
    return np.array(torch.load(run_dir / "models/rdt/seed0/train_state.pt", weights_only=True)["losses"])


def test_configs_that_cannot_split_over_the_ranks_are_refused():
    cfg = resolve_run_config("parity", "quick", None, [*TINY, "train.batch_size=9", "train.recipe=progressive"])
    problems = distributed.check(cfg, world=2)
    assert len(problems) == 2 and "does not split evenly over 2 ranks" in problems[0]
    assert distributed.check(cfg, world=1) == []
    assert distributed.current() == distributed.DataParallel(0, 1)  # no torchrun: a single process


def test_a_single_process_keeps_the_whole_batch_and_its_loss():
    single = distributed.DataParallel()
    arrays = (np.arange(8), np.arange(8))
    assert single.shard(arrays) is arrays and single.loss_weight(torch.ones(8, dtype=torch.bool)) == 1.0
    assert distributed.DataParallel(1, 2).shard(arrays)[0].tolist() == [4, 5, 6, 7]


@pytest.mark.slow
def test_two_gloo_processes_train_the_single_process_run(tmp_path):
    cfg = resolve_run_config("parity", "quick", None, TINY)
    harness.run_benchmark(cfg, tmp_path / "single", "single")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "cli",
           "run", "parity", "--out", str(tmp_path / "ddp")]
    for s in TINY:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    single, ddp = _losses(tmp_path / "single"), _losses(tmp_path / "ddp")
    assert len(single) == len(ddp) == 10
    assert np.max(np.abs(single - ddp)) < LOSS_TOLERANCE, (single, ddp)
    result = json.loads((tmp_path / "ddp" / "results.json").read_text())
    run = result["models"][0]["runs"][0]
    reference = json.loads((tmp_path / "single" / "results.json").read_text())["models"][0]["runs"][0]
    assert run["status"] == "complete" and run["train"]["tokens"] == reference["train"]["tokens"]
    assert done.stdout.count("run directory:") == 1, "only rank 0 reports"
