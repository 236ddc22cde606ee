"""Extrapolation recipes: loops jittered above the tied count, the loss on the tail of readouts, the
DT-nets progressive term under any loop schedule, and tuning runs that hold large difficulties out."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mythbench.config import TrainConfig
from mythbench.core.errors import ConfigError
from mythbench.models.model import RDTConfig, RecurrentDepthTransformer
from mythbench.training.train import difficulty_for_step, loop_schedule, masked_loss, train_model, training_loss


@settings(max_examples=60, deadline=None)
@given(difficulty=st.integers(1, 64), jitter=st.floats(0, 2), lpd=st.floats(0.25, 2), step=st.integers(0, 10**6))
def test_tied_loops_lie_between_the_tied_count_and_its_jittered_bound(difficulty, jitter, lpd, step):
    cfg = TrainConfig(recipe="tied", loop_jitter=jitter, loops_per_difficulty=lpd)
    base = max(1, math.ceil(lpd * difficulty))
    loops, grad_loops = loop_schedule(step, difficulty, 4, cfg, seed=0)
    assert base <= loops <= math.ceil(base * (1 + jitter)) and grad_loops is None
    if jitter == 0:
        assert loops == base


def test_jitter_reaches_its_upper_bound():
    cfg = TrainConfig(recipe="tied", loop_jitter=1.0)
    assert {loop_schedule(s, 5, 4, cfg, seed=0)[0] for s in range(200)} == set(range(5, 11))


def test_the_tail_loss_is_the_mean_over_separate_runs_at_each_loop_count():
    torch.manual_seed(0)
    model = RecurrentDepthTransformer(RDTConfig(vocab_size=6, d_model=16, n_heads=2, ffn_hidden=32))
    tokens = torch.randint(0, 6, (3, 7))
    targets, mask = torch.randint(0, 6, (3, 7)), torch.rand(3, 7) > 0.3
    cfg = TrainConfig(recipe="tied", readout_loss="tail", loop_jitter=1.0)
    with torch.no_grad():
        tail = training_loss(model.forward_detailed, tokens, targets, mask, loops=7, grad_loops=None, cfg=cfg,
                             step=0, seed=0, ponder_weight=0.0, difficulty=4)  # tied count 4: loops 4..7
        separate = [masked_loss(model(tokens, loops=t), targets, mask) for t in range(4, 8)]
    torch.testing.assert_close(tail, torch.stack(separate).mean())


def test_recipe_switches_that_need_the_tied_schedule_are_refused_without_it():
    problems = TrainConfig(recipe="parcae", readout_loss="tail", loop_jitter=0.5).problems()
    assert any("readout_loss" in p for p in problems) and any("loop_jitter" in p for p in problems)
    assert any("'middle'" in p for p in TrainConfig(readout_loss="middle").problems())
    ignored = TrainConfig(recipe="tied", readout_loss="tail", progressive=True, progressive_alpha=1.0).problems()
    assert any("no effect" in p for p in ignored)


@pytest.mark.parametrize("recipe", ["tied", "parcae"])
def test_the_progressive_term_trains_under_any_loop_schedule(recipe, tmp_path):
    def copy_batches(difficulty: int, n: int, seed: int) -> tuple[np.ndarray, ...]:
        tokens = np.random.default_rng(seed).integers(1, 6, size=(n, difficulty + 3))
        return tokens, tokens.copy(), np.ones_like(tokens, dtype=bool)

    torch.manual_seed(0)
    model = RecurrentDepthTransformer(RDTConfig(vocab_size=6, d_model=16, n_heads=2, ffn_hidden=32, train_loops=3))
    cfg = TrainConfig(steps=40, batch_size=16, lr=1e-2, warmup_steps=4, recipe=recipe, progressive=True,
                      readout_loss="tail" if recipe == "tied" else "last", checkpoint_every=40)
    outcome = train_model(model, copy_batches, [2, 3], cfg, seed=0, ckpt_dir=tmp_path, train_loops=3)
    assert outcome.status == "complete" and outcome.final_loss < 0.7 * math.log(6)


@settings(max_examples=30, deadline=None)
@given(cap=st.integers(2, 16), step=st.integers(0, 10**5))
def test_a_tuning_run_never_trains_above_its_max_difficulty(cap, step):
    cfg = TrainConfig(max_difficulty=cap)
    assert difficulty_for_step(step, cfg.trained_difficulties(list(range(2, 17))), cfg, seed=0) <= cap


def test_a_max_difficulty_below_every_training_difficulty_is_refused(tmp_path):
    model = RecurrentDepthTransformer(RDTConfig(vocab_size=6, d_model=16, n_heads=2, ffn_hidden=32))
    with pytest.raises(ConfigError, match="max_difficulty"):
        train_model(model, lambda d, n, s: None, [4, 5], TrainConfig(max_difficulty=3), 0, tmp_path)


def counted_model():
    """A tiny RDT, one batch, and its forward_detailed wrapped to record the keyword arguments of every call."""
    torch.manual_seed(0)
    model = RecurrentDepthTransformer(RDTConfig(vocab_size=6, d_model=16, n_heads=2, ffn_hidden=32))
    tokens, targets, mask = torch.randint(0, 6, (3, 7)), torch.randint(0, 6, (3, 7)), torch.ones(3, 7, dtype=torch.bool)
    calls: list[dict] = []

    def forward(*args, **kwargs):
        calls.append(kwargs)
        return model.forward_detailed(*args, **kwargs)

    return model, tokens, targets, mask, forward, calls


def test_a_model_without_loops_gets_no_loop_terms_and_one_pass():
    model, tokens, targets, mask, forward, calls = counted_model()

    cfg = TrainConfig(recipe="tied", progressive=True, readout_loss="tail")
    with torch.no_grad():
        loss = training_loss(forward, tokens, targets, mask, loops=5, grad_loops=None, cfg=cfg, step=0, seed=0,
                             ponder_weight=0.0, difficulty=5, looped=False)
        torch.testing.assert_close(loss, masked_loss(model(tokens, loops=5), targets, mask))
    assert len(calls) == 1 and "all_loops" not in calls[0]


def test_the_progressive_term_at_weight_one_is_the_whole_loss_in_one_pass():
    model, tokens, targets, mask, forward, calls = counted_model()

    args = dict(loops=6, grad_loops=None, step=3, seed=0, ponder_weight=0.0, difficulty=6)
    with torch.no_grad():
        whole = training_loss(forward, tokens, targets, mask, cfg=TrainConfig(progressive=True, progressive_alpha=1.0),
                              **args)
        (prog,) = calls
        half = training_loss(model.forward_detailed, tokens, targets, mask,
                             cfg=TrainConfig(progressive=True, progressive_alpha=0.5), **args)
        plain = masked_loss(model(tokens, loops=6), targets, mask)
    torch.testing.assert_close(whole, masked_loss(model(tokens, loops=prog["loops"]), targets, mask))
    torch.testing.assert_close(half, 0.5 * plain + 0.5 * whole)
