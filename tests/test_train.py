"""The training loop: every recipe learns, checkpoints resume exactly, state loads with weights_only=True."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from mythbench.config import TrainConfig
from mythbench.models.model import RDTConfig, RecurrentDepthTransformer
from mythbench.training.train import TRAIN_STATE, WEIGHTS, load_weights, train_model
from mythbench.training.train_checkpoint import load_latest


def saved_state(ckpt_dir) -> dict:
    """The training state of the newest checkpoint in `ckpt_dir`."""
    files = load_latest(ckpt_dir, {WEIGHTS, TRAIN_STATE}).files
    return torch.load(io.BytesIO(files[TRAIN_STATE]), weights_only=True)


def copy_batches(difficulty: int, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Copy task: the target is the input; every position scored."""
    tokens = np.random.default_rng(seed).integers(1, 6, size=(n, difficulty + 3))
    return tokens, tokens.copy(), np.ones_like(tokens, dtype=bool)


def tiny() -> RecurrentDepthTransformer:
    torch.manual_seed(0)
    return RecurrentDepthTransformer(RDTConfig(vocab_size=6, d_model=16, n_heads=2, ffn_hidden=32, train_loops=3))


@pytest.mark.parametrize("recipe", ["fixed", "parcae", "huginn", "progressive", "tied"])
def test_every_recipe_reduces_the_loss(recipe, tmp_path):
    cfg = TrainConfig(steps=40, batch_size=16, lr=1e-2, warmup_steps=4, recipe=recipe, bwd_loops=2,
                      checkpoint_every=40)
    outcome = train_model(tiny(), copy_batches, [2, 3], cfg, seed=0, ckpt_dir=tmp_path, train_loops=3)
    assert outcome.status == "complete" and outcome.steps == 40
    state = saved_state(tmp_path)
    assert state["losses"][-1] < 0.7 * state["losses"][0]


def test_bf16_autocast_trains(tmp_path):
    cfg = TrainConfig(steps=20, batch_size=8, lr=1e-2, warmup_steps=2, bf16=True, checkpoint_every=20)
    outcome = train_model(tiny(), copy_batches, [2], cfg, seed=0, ckpt_dir=tmp_path, train_loops=3)
    assert outcome.status == "complete" and np.isfinite(outcome.final_loss)


class Crash(Exception):
    pass


def test_resuming_from_a_checkpoint_gives_the_same_weights(tmp_path):
    cfg = TrainConfig(steps=12, batch_size=8, warmup_steps=2, recipe="parcae", checkpoint_every=5)
    train_model(tiny(), copy_batches, [2, 3], cfg, seed=1, ckpt_dir=tmp_path / "straight", train_loops=3)

    def crashing(difficulty: int, n: int, seed: int) -> tuple[np.ndarray, ...]:
        if seed == 1 * 1_000_003 + 7:  # the batch of step 7: after the checkpoint at step 5
            raise Crash
        return copy_batches(difficulty, n, seed)

    with pytest.raises(Crash):
        train_model(tiny(), crashing, [2, 3], cfg, seed=1, ckpt_dir=tmp_path / "resumed", train_loops=3)
    assert saved_state(tmp_path / "resumed")["step"] == 5
    train_model(tiny(), copy_batches, [2, 3], cfg, seed=1, ckpt_dir=tmp_path / "resumed", train_loops=3)
    a, b = tiny(), tiny()
    load_weights(a, tmp_path / "straight" / WEIGHTS)
    load_weights(b, tmp_path / "resumed" / WEIGHTS)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
