"""Speed alone must not change results: fast paths against the eager fp32 reference on a fixed seed.

Tolerances (relative, per training step's loss): torch.compile 1e-4 (the same math, fused and reordered
in fp32); bf16 autocast 5e-3 (8-bit mantissa matmuls; the recurrent state, norms, router and loss stay
fp32). The MoE dispatch is checked exactly against a naive reference in test_moe.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mythbench import RDTConfig, RecurrentDepthTransformer
from mythbench.config import TrainConfig
from mythbench.training.train import recorded_losses, train_model

CFG = RDTConfig(vocab_size=8, d_model=32, n_heads=2, attention="mla", kv_latent_dim=16, rope_head_dim=8,
                ffn="moe", n_experts=4, expert_hidden=16, lora_rank=2, train_loops=3)


def copy_batch(difficulty: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tokens = np.random.default_rng(seed).integers(0, 8, (n, difficulty))
    return tokens, tokens.copy(), np.ones_like(tokens, dtype=bool)


def losses(tmp_path, name: str, **fast: bool) -> list[float]:
    torch.manual_seed(0)
    cfg = TrainConfig(steps=6, batch_size=8, warmup_steps=1, recipe="parcae", bwd_loops=2, **fast)
    out = train_model(RecurrentDepthTransformer(CFG), copy_batch, [6], cfg, 0, tmp_path / name, train_loops=3)
    assert out.status == "complete"
    return recorded_losses(tmp_path / name)


def test_bf16_autocast_losses_track_fp32(tmp_path):
    ref, fast = losses(tmp_path, "ref"), losses(tmp_path, "bf16", bf16=True)
    assert fast != ref  # autocast really ran in bf16
    np.testing.assert_allclose(fast, ref, rtol=5e-3)


@pytest.mark.slow
def test_compiled_losses_match_eager(tmp_path):
    ref, fast = losses(tmp_path, "ref"), losses(tmp_path, "compiled", compile=True)
    np.testing.assert_allclose(fast, ref, rtol=1e-4)
