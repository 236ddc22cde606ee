"""Data-parallel training under torchrun: 2 gloo processes on CPU train the same run as one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mythbench.config import TrainConfig, resolve_run_config
from mythbench.models.model import RDTConfig, RecurrentDepthTransformer
from mythbench.training import distributed, harness
from mythbench.training.train import recorded_losses, train_model

ROOT = Path(__file__).resolve().parent.parent
# An RDT with the quick preset's MoE FFN (bias balancing), so the summed balance counts are exercised.
TINY = ["model.d_model=16", "model.n_heads=2", "model.ffn_hidden=32", "model.train_loops=2", "train.steps=10",
        "train.batch_size=8", "train.warmup_steps=1", "train.checkpoint_every=5", "eval.loops_factor=1",
        "eval.depth_factor=0",
        "eval.train_points=1", "models=[rdt]", "twins=[]"]
LOSS_TOLERANCE = 1e-5  # absolute, per step; measured differences are ~1e-7 (float summation order)


def _losses(run_dir: Path) -> np.ndarray:
    return np.array(recorded_losses(run_dir / "models/rdt/seed0"))


def _uneven_batches(difficulty: int, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Next-token batches where example i has 2 + i scored positions: the first half of a batch holds far
    fewer target tokens than the second, so a plain average of per-shard means would be wrong."""
    tokens = np.random.default_rng(seed).integers(1, 8, size=(n, 12))
    mask = np.arange(12)[None, :] < (2 + np.arange(n))[:, None]
    return tokens, np.roll(tokens, -1, axis=1), mask


def _train_uneven(ckpt_dir: Path) -> None:
    torch.manual_seed(0)
    model = RecurrentDepthTransformer(RDTConfig(vocab_size=8, d_model=16, n_heads=2, ffn="moe", train_loops=3,
                                                max_seq_len=12))
    cfg = TrainConfig(steps=6, batch_size=8, lr=1e-2, warmup_steps=1, recipe="parcae", bwd_loops=2,
                      checkpoint_every=6)
    train_model(model, _uneven_batches, [1], cfg, seed=0, ckpt_dir=ckpt_dir, train_loops=3)


def _rank(rank: int, port: int, ckpt_dir: Path) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        _train_uneven(ckpt_dir)
    finally:
        dist.destroy_process_group()


def test_configs_that_cannot_split_over_the_ranks_are_refused():
    cfg = resolve_run_config("parity", "quick", None, [*TINY, "train.batch_size=9", "device=cuda:1"])
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
def test_shards_with_unequal_target_counts_still_train_the_single_process_run(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_rank, args=(port, tmp_path / "ddp"), nprocs=2)
    _train_uneven(tmp_path / "single")
    single, ddp = (np.array(recorded_losses(tmp_path / name)) for name in ("single", "ddp"))
    assert len(ddp) == 6 and np.max(np.abs(single - ddp)) < LOSS_TOLERANCE, (single, ddp)


@pytest.mark.slow
def test_two_gloo_processes_train_the_single_process_run(tmp_path):
    cfg = resolve_run_config("parity", "quick", None, TINY)
    harness.run_benchmark(cfg, tmp_path / "single", "single")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "mythbench.cli", "run", "parity", "--out", str(tmp_path / "ddp")]
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
