"""ACT bookkeeping against an independent transcription of Graves (2016)."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mythbench.models.model import ACT


def graves_weights(p: list[float], T: int, threshold: float) -> tuple[list[float], int, float]:
    """Halting weights of one position run for T steps: p_t until the cumulative sum would reach the
    threshold at step N (or T arrives), then the remainder R = 1 - sum_{t<N} p_t at N. Computed in
    float32 like the model, so that a sum within rounding of the threshold halts at the same step."""
    f32 = np.float32
    weights, total = [], f32(0.0)
    for n in range(1, T + 1):
        p_n = f32(p[n - 1])
        if total + p_n >= f32(threshold) or n == T:
            weights.append(float(f32(1.0) - total))
            return weights + [0.0] * (T - n), n, float(f32(1.0) - total)
        weights.append(float(p_n))
        total = f32(total + p_n)
    raise AssertionError("unreachable")


probs = st.lists(st.lists(st.floats(0.0, 1.0, width=32), min_size=8, max_size=8), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(p=probs, threshold=st.sampled_from([0.5, 0.9, 0.99, 1.0]))
def test_act_readout_is_graves_weighted_mean_for_every_truncation(p, threshold):
    P, T = len(p), 8
    ptab = torch.tensor(p, dtype=torch.float32).T  # [T, P]
    act = ACT((1, P), torch.zeros(1, P, T), threshold)
    h = torch.zeros(1, P, T)
    for t in range(T):
        h_new = act.freeze(h, torch.eye(T)[t].expand(1, P, T))  # state after loop t+1 = unit vector e_t
        readout = act.step(h_new, ptab[t][None])
        h = h_new
        for i in range(P):  # readout after loop t+1 equals a run truncated at t+1
            weights, n, r = graves_weights(p[i], t + 1, threshold)
            got = readout[0, i, : t + 1]
            assert torch.allclose(got, torch.tensor(weights), atol=1e-5), (got, weights)
            assert abs(float(readout[0, i].sum()) - 1.0) < 1e-5
            assert torch.all(readout[0, i, t + 1 :] == 0)  # no weight on loops not yet run
        steps_ref = [graves_weights(p[i], t + 1, threshold)[1:] for i in range(P)]
        assert act.steps[0].tolist() == [n for n, _ in steps_ref]
        expected_ponder = sum(n + r for n, r in steps_ref) / P
        assert abs(float(act.ponder_cost()) - expected_ponder) < 1e-4


def test_a_position_whose_probabilities_reach_the_threshold_exactly_halts_there():
    """0.5 + 0.25 is 0.75 exactly in binary: the position halts at loop 2 with remainder 1 - 0.5."""
    act = ACT((1, 1), torch.zeros(1, 1, 3), threshold=0.75)
    for t, p in enumerate((0.5, 0.25, 0.25)):
        readout = act.step(torch.eye(3)[t].reshape(1, 1, 3), torch.tensor([[p]]))
    assert act.halted.tolist() == [[True]] and act.steps.tolist() == [[2.0]] and act.remainder.tolist() == [[0.5]]
    assert readout[0, 0].tolist() == [0.5, 0.5, 0.0]


def test_halted_positions_freeze_their_state():
    act = ACT((1, 2), torch.zeros(1, 2, 3), threshold=0.99)
    h0 = torch.zeros(1, 2, 3)
    h1 = act.freeze(h0, torch.ones(1, 2, 3))
    act.step(h1, torch.tensor([[1.0, 0.1]]))  # position 0 halts at loop 1
    h2 = act.freeze(h1, torch.full((1, 2, 3), 5.0))
    assert torch.equal(h2[0, 0], torch.ones(3)) and torch.equal(h2[0, 1], torch.full((3,), 5.0))
