"""The model's documented formulas, each checked against numbers computed here by hand rather than against
another path through the same code: the LTI injection's (Ā, B̄), the ACT readout after every loop, and the
depth-wise LoRA's one adapter per loop."""

import itertools
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_model import tiny, tokens

from mythbench import RecurrentDepthTransformer
from mythbench.models.layers import LoRA
from mythbench.models.model import ACT, Injection

finite = st.floats(-8.0, 8.0)


@settings(max_examples=40, deadline=None)
@given(a_log=st.lists(finite, min_size=4, max_size=4), dt=st.lists(finite, min_size=4, max_size=4),
       b=st.lists(finite, min_size=4, max_size=4))
def test_lti_injection_follows_its_documented_discretisation(a_log, dt, b):
    """Ā = (1 - 1e-4)·exp(-Δ·exp(A_log)), B̄ = Δ·B with Δ = softplus(dt), and h -> Ā·h + B̄·e."""
    model = RecurrentDepthTransformer(tiny(d_model=4, n_heads=1, prelude_layers=0, coda_layers=0))
    with torch.no_grad():
        for name, values in (("A_log", a_log), ("dt", dt), ("B", b)):
            getattr(model.injection, name).copy_(torch.tensor(values))
    delta = [math.log1p(math.exp(x)) for x in dt]
    a_bar = [(1 - 1e-4) * math.exp(-d * math.exp(a)) for d, a in zip(delta, a_log, strict=True)]
    b_bar = [d * x for d, x in zip(delta, b, strict=True)]
    got_a, got_b = model.injection.lti()
    torch.testing.assert_close(got_a, torch.tensor(a_bar), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got_b, torch.tensor(b_bar), rtol=1e-5, atol=1e-6)
    h, e = torch.randn(3, 4), torch.randn(3, 4)
    expected = torch.tensor(a_bar) * h + torch.tensor(b_bar) * e
    torch.testing.assert_close(model.injection(h, e), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.injection.bind(e)(h), expected, rtol=1e-5, atol=1e-5)


def test_act_readouts_of_a_hand_computed_example():
    """States 1, 2, 4, 8 with halting probabilities 0.3, 0.5, 0.9, 0.9 (threshold 0.99): the position halts
    at loop 3 (0.3 + 0.5 + 0.9 >= 0.99) with remainder 0.2, so the readouts after loops 1..4 are
    1, 0.3·1 + 0.7·2 = 1.7, 0.3·1 + 0.5·2 + 0.2·4 = 2.1, and 2.1 again (halted), and the ponder cost is 3.2."""
    act = ACT((1, 1), torch.zeros(1, 1, 1), threshold=0.99)
    readouts = [act.step(torch.full((1, 1, 1), h), torch.full((1, 1), p)).item()
                for h, p in ((1.0, 0.3), (2.0, 0.5), (4.0, 0.9), (8.0, 0.9))]
    torch.testing.assert_close(torch.tensor(readouts), torch.tensor([1.0, 1.7, 2.1, 2.1]))
    assert act.steps.item() == 3 and math.isclose(act.ponder_cost().item(), 3.2, rel_tol=1e-6)


def test_the_model_reads_out_the_act_weighted_state_after_every_loop():
    """With the recurrent block an identity (its output projections zeroed) and a constant halting
    probability p = 0.4, the state after loop t is h_t = Ā·h_{t-1} + B̄·e, every position halts at loop 3
    (0.4 + 0.4 + 0.4 >= 0.99) with remainder 0.2, and the readouts are h_1, 0.4·h_1 + 0.6·h_2 and then
    0.4·h_1 + 0.4·h_2 + 0.2·h_3 for loops 3 and 4. The logits after every loop are the coda and head of
    those readouts, not of the raw states."""
    model = RecurrentDepthTransformer(tiny(act=True, act_threshold=0.99, prelude_layers=1, coda_layers=1)).eval()
    with torch.no_grad():
        for block in model.recurrent:
            block.attn.o.weight.zero_()
            block.ffn.down.weight.zero_()
        model.act.weight.zero_()
        model.act.bias.fill_(math.log(0.4 / 0.6))  # sigmoid = 0.4
        model.injection.A_log.copy_(torch.linspace(-2, 1, 16))
        x = tokens()
        e = model.embed(x)
        for block in model.prelude:
            e = block(e)
        a_bar, b_bar = model.injection.lti()
        h1 = b_bar * e
        h2 = a_bar * h1 + b_bar * e
        h3 = a_bar * h2 + b_bar * e
        by_hand = [h1, 0.4 * h1 + 0.6 * h2, 0.4 * h1 + 0.4 * h2 + 0.2 * h3, 0.4 * h1 + 0.4 * h2 + 0.2 * h3]
        logits = []
        for readout in by_hand:
            for block in model.coda:
                readout = block(readout)
            logits.append(model.head(readout))
        out = model.forward_detailed(x, loops=4, all_loops=True)
    torch.testing.assert_close(out.logits, torch.stack(logits), rtol=1e-4, atol=1e-5)
    assert (out.halt_steps == 3).all()


def test_every_loop_below_the_last_adapter_has_its_own_and_later_loops_share_the_last():
    n_loops = 4
    lora = LoRA({"q": (6, 5)}, rank=2, n_loops=n_loops)
    with torch.no_grad():
        lora.B["q"].normal_(generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    for i, j in itertools.combinations(range(n_loops + 3), 2):
        same = torch.allclose(lora("q", x, i), lora("q", x, j))
        assert same == (min(i, n_loops - 1) == min(j, n_loops - 1)), (i, j)


def test_concat_injection_is_its_projection_of_h_and_e_computed_in_the_weights_dtype():
    """Huginn's adapter: W [h; e], with states of another dtype cast to the weights' and the result back to h's."""
    injection = Injection(tiny(injection="concat"))
    h, e = (torch.randn(2, 3, 16, dtype=torch.float64) for _ in range(2))
    out = injection(h, e)
    expected = (torch.cat([h, e], dim=-1).float() @ injection.proj.weight.T).double()
    assert out.dtype == torch.float64 and torch.allclose(out, expected)
