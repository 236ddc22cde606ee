"""`mythbench.evaluate`: any user model (an nn.Module or a plain function) scored on a task, one row per
difficulty x loop count, by the same scoring as every run's cells."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mythbench.tasks import get_task, list_tasks

import mythbench
from mythbench.core.errors import ConfigError

ZERO, ONE = 2, 3  # parity's ids of "0" and "1"


class ParityByHand(torch.nn.Module):
    """Prefix parity with hand-set weights: an embedding that marks "1", a running sum, and a readout that puts
    the sum's parity on "0" or "1"."""

    def __init__(self) -> None:
        super().__init__()
        self.is_one = torch.nn.Embedding(4, 1, _weight=torch.tensor([[0.0], [0.0], [0.0], [1.0]]))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        odd = self.is_one(tokens)[..., 0].cumsum(1) % 2
        return torch.nn.functional.one_hot(odd.long() + ZERO, 4).float()


def oracle(task_name: str):
    """A plain function answering with the task's reference solver: logits one-hot on the solver's tokens."""
    task = get_task(task_name)

    def answer(tokens: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*tokens.shape, task.vocab_size)
        for row, ids in enumerate(tokens.tolist()):
            for position, token in enumerate(task.solve(task.decode(ids)).targets):
                logits[row, position, task.vocab.index(token or "<pad>")] = 1.0
        return logits

    return answer


def constant(token: int, vocab: int = 4):
    return lambda tokens: torch.nn.functional.one_hot(torch.full_like(tokens, token), vocab).float()


def test_a_hand_set_parity_module_is_right_at_every_test_difficulty():
    frame = mythbench.evaluate(ParityByHand(), "parity")
    assert frame["difficulty"].tolist() == get_task("parity").spec.test_difficulties
    assert frame["loops"].isna().all() and (frame["n"] == get_task("parity").spec.examples["test"]).all()
    assert (frame["accuracy"] == 1.0).all() and (frame["token_accuracy"] == 1.0).all()
    assert {"task", "correct", "ci_low", "ci_high", "loss"} <= set(frame.columns)


@pytest.mark.parametrize("name", list_tasks())
def test_the_reference_solver_scores_1_on_every_task(name):
    difficulty = min(get_task(name).spec.test_difficulties)
    frame = mythbench.evaluate(oracle(name), name, difficulties=[difficulty], n=8)
    assert frame["accuracy"].tolist() == [1.0] and frame["token_accuracy"].tolist() == [1.0]


def test_a_constant_model_gets_the_chance_rate():
    frame = mythbench.evaluate(constant(ZERO), "parity")
    assert (abs(frame["token_accuracy"] - 0.5) < 0.03).all(), frame  # prefix parities are fair coins
    assert (frame["accuracy"] < 0.01).all()  # all-even prefixes: 2^-16 at the shortest test length


@settings(max_examples=10, deadline=None)
@given(token=st.sampled_from([ZERO, ONE]), difficulty=st.integers(2, 40), n=st.integers(1, 40),
       seed=st.integers(0, 2**20))
def test_per_token_accuracy_is_the_share_of_scored_targets_predicted(token, difficulty, n, seed):
    """Checked against the instances themselves (counted with numpy, not the scorer)."""
    frame = mythbench.evaluate(constant(token), "parity", difficulties=[difficulty], n=n, seed=seed)
    batch = get_task("parity").generate("test", difficulty, n, seed)
    hits = (batch.targets == token) & batch.mask
    assert frame["token_accuracy"].item() == pytest.approx(hits.sum() / batch.mask.sum())
    assert frame["correct"].item() == int(np.all(hits | ~batch.mask, axis=1).sum())


def test_a_looped_callable_is_scored_at_every_loop_count():
    """Right once it may take a step per bit, wrong on every bit before: the rows follow the loop count."""
    by_hand = ParityByHand()

    def looped(tokens: torch.Tensor, loops: int) -> torch.Tensor:
        logits = by_hand(tokens)
        return logits if loops >= tokens.shape[1] - 1 else logits[..., [0, 1, ONE, ZERO]]  # "0" and "1" swapped

    frame = mythbench.evaluate(looped, "parity", difficulties=[4, 16], loops=[1, 4, 16], n=32)
    grid = {(row.difficulty, row.loops): row.accuracy for row in frame.itertuples()}
    assert grid == {(d, t): float(t >= d) for d in (4, 16) for t in (1, 4, 16)}
    assert frame.loc[frame["accuracy"] == 0, "token_accuracy"].eq(0).all()
    assert list(frame.index) == list(range(len(frame)))  # sorted by difficulty and loops, a fresh index
    one = mythbench.evaluate(looped, "parity", difficulties=[16, 4], loops=16, n=32)  # one loop count: an int
    assert list(zip(one["difficulty"], one["loops"], one["accuracy"], strict=True)) == [(4, 16, 1.0), (16, 16, 1.0)]
    assert list(one.index) == [0, 1]


def test_bad_arguments_are_named_together():
    with pytest.raises(ConfigError) as caught:
        mythbench.evaluate("not a model", "parity", loops=[0], chunk_size=0)
    assert len(caught.value.problems) == 3, caught.value.problems
    with pytest.raises(ConfigError, match="did you mean 'parity'"):
        mythbench.evaluate(ParityByHand(), "parit")
    with pytest.raises(ConfigError) as caught:
        mythbench.evaluate(5, "parity")
    assert caught.value.problems == ["model: int is not callable"]


def test_logits_of_the_wrong_shape_are_refused_by_shape():
    with pytest.raises(ConfigError, match=r"returned shape \(8, 5, 2\) for tokens of shape \(8, 5\)"):
        mythbench.evaluate(constant(0, vocab=2), "parity", difficulties=[4], n=8)
    extra_axis = lambda tokens: constant(0)(tokens)[..., None]  # noqa: E731  [batch, seq, vocab, 1]
    with pytest.raises(ConfigError, match=r"returned shape \(8, 5, 4, 1\)"):
        mythbench.evaluate(extra_axis, "parity", difficulties=[4], n=8)
