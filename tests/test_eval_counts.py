"""What the evaluation counts, against counts made by hand: the headline loop count of every loop rule
(rounded up, never down) and the per-cell metrics of hand-written predictions and masks."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mythbench.config import EvalConfig, TrainConfig
from mythbench.training.evaluate import evaluate_plain, exit_indices, rule_loops
from mythbench.training.train import tied_loops


def _ceil_div(a: Fraction, b: Fraction) -> int:
    return math.ceil(a / b)


@given(eighths=st.integers(1, 24), hardest=st.integers(1, 40), train_loops=st.integers(1, 20),
       tied=st.booleans(), max_loops=st.integers(1, 200), extra=st.lists(st.integers(1, 80), max_size=5))
def test_every_loop_rule_rounds_up_and_reproduces_the_training_count_at_the_hardest_difficulty(
        eighths, hardest, train_loops, tied, max_loops, extra):
    """loops_per_difficulty = k/8 is exact in binary, so every product below is exact and its ceiling known."""
    train = TrainConfig(recipe="tied" if tied else "fixed", loops_per_difficulty=eighths / 8)
    difficulties = sorted({hardest, *extra})
    at_hardest = _ceil_div(Fraction(eighths * hardest), Fraction(8)) if tied else train_loops
    if tied:
        assert tied_loops(hardest, train) == at_hardest  # what the tied recipe trained with
    by_rule = rule_loops("difficulty", difficulties, hardest, train_loops, train, max_loops)
    for d in difficulties:
        assert by_rule[d] == min(max_loops, max(1, _ceil_div(Fraction(at_hardest * d), Fraction(hardest)))), d
    assert by_rule[hardest] == min(max_loops, at_hardest)
    assert rule_loops("train", difficulties, hardest, train_loops, train, max_loops) == {
        d: min(train_loops, max_loops) for d in difficulties}


# three sequences of four positions over a vocabulary of three; `mask` marks the scored positions
PREDICTED = [[0, 1, 2, 0], [1, 1, 1, 1], [2, 0, 1, 0]]
TARGETS = [[0, 1, 0, 0], [1, 0, 1, 1], [2, 0, 2, 1]]
MASK = [[1, 1, 0, 1], [1, 0, 0, 1], [0, 1, 1, 0]]
# by hand: row 0 scores 3 positions, all right (its wrong position 2 is unscored); row 1 scores 2, both right;
# row 2 scores 2, one right. So 2 of 3 sequences exactly right and 6 of 7 scored tokens right.


class _Predicts(torch.nn.Module):
    """Logits 2 on the predicted token of the sequence whose index is its first token, 0 elsewhere."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.nn.functional.one_hot(torch.tensor(PREDICTED)[tokens[:, 0]], 3).float()


def test_cell_metrics_count_the_scored_positions_only():
    tokens = np.repeat(np.arange(3)[:, None], 4, axis=1)
    arrays = (tokens, np.array(TARGETS), np.array(MASK, dtype=bool))
    for chunk_size in (1, 2, 3):  # the counts add up across chunks
        (cell,) = evaluate_plain(_Predicts(), lambda d: arrays, [5], EvalConfig(chunk_size=chunk_size))["cells"]
        assert (cell["n"], cell["correct"]) == (3, 2) and (cell["tokens"], cell["token_correct"]) == (7, 6)
        right, wrong = -math.log(math.exp(2) / (math.exp(2) + 2)), -math.log(1 / (math.exp(2) + 2))
        assert math.isclose(cell["loss"], (6 * right + wrong) / 7, rel_tol=1e-6)
    one = np.zeros((3, 4), dtype=bool)
    one[2, 2] = True  # a single scored position, predicted wrong: the loss is that position's
    (cell,) = evaluate_plain(_Predicts(), lambda d: (tokens, np.array(TARGETS), one), [5], EvalConfig())["cells"]
    assert (cell["tokens"], cell["token_correct"]) == (1, 0) and math.isclose(cell["loss"], wrong, rel_tol=1e-6)


def test_arrays_of_different_lengths_are_refused_not_cut_to_the_shortest():
    """A batch function whose targets miss a sequence: one chunk per sequence must not pair up silently."""
    tokens = np.repeat(np.arange(3)[:, None], 4, axis=1)
    arrays = (tokens, np.array(TARGETS[:2]), np.array(MASK[:2], dtype=bool))
    with pytest.raises(ValueError, match="shorter"):
        evaluate_plain(_Predicts(), lambda d: arrays, [5], EvalConfig(chunk_size=1))


def _first(flags: list[bool]) -> int:
    return flags.index(True) if True in flags else len(flags) - 1


def _reference_signals(logits: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per loop and sequence [T, B], as EvalConfig documents them, one sequence at a time in numpy: the KL
    between consecutive loops' readouts (mean over scored positions; inf at the first loop) and the least
    confidence of a scored token."""
    kl, sure = np.full(logits.shape[:2], math.inf), np.ones(logits.shape[:2])
    for b in range(logits.shape[1]):
        z = logits[:, b].astype(np.float64)
        p = np.exp(z - z.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        scored = mask[b]
        for t in range(len(p)):
            if t:
                kl[t, b] = np.mean((p[t] * np.log(p[t] / p[t - 1])).sum(-1)[scored]) if scored.any() else 0.0
            if scored.any():
                sure[t, b] = p[t].max(-1)[scored].min()
    return kl, sure


def _reference_exits(kl: np.ndarray, sure: np.ndarray, change: np.ndarray, cfg: EvalConfig) -> dict:
    """Each rule's first loop past its threshold, else the last loop, per sequence."""
    out = {"kl": [_first(list(kl[:, b] < cfg.kl_threshold)) for b in range(kl.shape[1])],
           "confidence": [_first(list(sure[:, b] > cfg.confidence_threshold)) for b in range(kl.shape[1])],
           "delta_h": [_first(list(change[:, b] < cfg.delta_h_threshold)) for b in range(kl.shape[1])]}
    return out if len(kl) > 1 else {k: v for k, v in out.items() if k != "kl"}


def _between_middle_values(x: np.ndarray, default: float) -> float:
    """A threshold between the two middle distinct values of a signal, clear of both (no tie that float32
    and float64 could break differently); `default` when there is no such gap."""
    values = np.unique(x[np.isfinite(x)])
    gaps = [(a + b) / 2 for a, b in zip(values[:-1], values[1:], strict=True) if b - a > 1e-3 * b + 1e-6]
    return float(gaps[len(gaps) // 2]) if gaps else default


@given(st.data())
def test_early_exit_rules_match_their_definitions(data) -> None:
    """KL between consecutive loops' readouts (mean over scored positions), every scored token's confidence,
    and the state's change: each rule stops at its first loop past its threshold, else at the last loop.
    Thresholds sit between the middle values of each signal, so a signal scaled wrongly (a mean over the wrong
    positions) moves some sequence across its threshold."""
    t, b, s, v = (data.draw(st.integers(lo, hi)) for lo, hi in ((1, 5), (1, 3), (1, 4), (2, 5)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    logits = rng.normal(0, 3, (t, b, s, v))
    for i in range(1, t):  # some loops repeat the previous readout or come close to it
        logits[i] = logits[i - 1] + rng.choice([0.0, 0.01, 1.0]) * rng.normal(0, 1, (b, s, v))
    mask = rng.random((b, s)) < data.draw(st.sampled_from([0.3, 0.7]))
    change = rng.random((t, b))
    kl, sure = _reference_signals(logits, mask)
    kl_at, sure_at, change_at = (_between_middle_values(x, default) for x, default in
                                 ((kl, 1e-3), (sure, 0.9), (change, 0.5)))
    cfg = EvalConfig(kl_threshold=kl_at, confidence_threshold=min(sure_at, 0.999), delta_h_threshold=change_at)
    got = exit_indices(torch.tensor(logits, dtype=torch.float32), torch.tensor(mask), torch.tensor(change), cfg)
    assert {rule: idx.tolist() for rule, idx in got.items()} == _reference_exits(kl, sure, change, cfg)
