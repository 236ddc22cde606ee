"""RecurrentDepthTransformer: the loop, per-loop readouts, injection stability, LoRA, truncated backprop."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mythbench import RDTConfig, RecurrentDepthTransformer

INJECTIONS = ["lti", "additive", "concat", "none"]


def tiny(**kw) -> RDTConfig:
    base = dict(vocab_size=11, d_model=16, n_heads=2, n_kv_heads=1, ffn_hidden=32, n_experts=4, top_k=2,
                expert_hidden=8, kv_latent_dim=8, rope_head_dim=4, train_loops=3, lora_max_loops=4,
                router_max_loops=4)  # fmt: skip
    base.update(kw)
    if base.get("injection") == "none":
        base.setdefault("init_state", "embedding")
    return RDTConfig(**base)


def tokens(batch: int = 2, seq: int = 7, vocab: int = 11, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


def perturb(model: RecurrentDepthTransformer) -> None:
    """Move the zero/constant-initialised parts (LoRA B, halting unit, router loop embeddings) off init,
    so the properties below are tested on a model where they matter."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("lora.") or "router_loop" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        if model.act is not None:
            model.act.weight.copy_(torch.randn(model.act.weight.shape, generator=g) * 20)
            model.act.bias.fill_(-1.0)


def test_output_shapes_and_fields():
    model = RecurrentDepthTransformer(tiny(ffn="moe", act=True)).eval()
    x = tokens()
    assert model(x).shape == (2, 7, 11)
    assert model(x, loops=5, all_loops=True).shape == (5, 2, 7, 11)
    out = model.forward_detailed(x, loops=5)
    assert out.logits.shape == (2, 7, 11)
    assert out.halt_steps.shape == (2, 7) and out.state_change.shape == (5,)
    assert out.expert_load.shape == (5, 4)
    torch.testing.assert_close(out.expert_load.sum(-1), torch.ones(5))
    assert out.aux_loss.shape == () and out.ponder_cost.shape == ()
    assert out.seq_state_change.shape == (5, 2)
    torch.testing.assert_close(out.state_change, out.seq_state_change.mean(1))
    assert out.state_change[0] == 1.0  # first loop starts from the zero state
    assert torch.all(out.state_change >= 0)
    plain = RecurrentDepthTransformer(tiny()).forward_detailed(x)
    assert plain.halt_steps is None and plain.expert_load is None
    assert plain.aux_loss.item() == 0 and plain.ponder_cost.item() == 0


def test_parameter_prefixes_and_tied_head():
    model = RecurrentDepthTransformer(tiny(ffn="moe", act=True, lora_rank=2))
    names = [n for n, _ in model.named_parameters()]
    prefixes = {n.split(".")[0] for n in names}
    assert prefixes == {"embed", "prelude", "recurrent", "coda", "head", "injection", "lora", "act"}
    experts = [n for n in names if "experts" in n]
    assert experts and all(n.startswith("recurrent.") for n in experts)
    assert all(dict(model.named_parameters())[n].shape[0] == 4 for n in experts)
    assert model.head.proj.weight is model.embed.tok.weight
    assert "head.proj.weight" not in names
    untied = RecurrentDepthTransformer(tiny(tie_embeddings=False))
    assert "head.proj.weight" in dict(untied.named_parameters())


ALL_LOOPS_CASES = {
    "plain": {},
    "act": {"act": True},
    "moe": {"ffn": "moe"},
    "lora": {"lora_rank": 2},
    "everything": {"attention": "mla", "q_latent_dim": 8, "ffn": "moe", "act": True, "lora_rank": 2,
                   "injection": "concat", "router": "sigmoid", "balancing": "both"},  # fmt: skip
    "bidirectional_gqa_act": {"attention": "gqa", "causal": False, "act": True, "positional": "learned"},
    "random_state": {"init_state": "random", "injection": "additive"},
}


@pytest.mark.parametrize("case", ALL_LOOPS_CASES)
def test_all_loops_equals_separate_runs(case):
    model = RecurrentDepthTransformer(tiny(**ALL_LOOPS_CASES[case])).eval()
    perturb(model)
    x, T = tokens(batch=3, seq=9), 6  # T > lora_max_loops and router_max_loops: clamped indices too
    torch.manual_seed(5)
    every = model.forward_detailed(x, loops=T, all_loops=True)
    for t in range(1, T + 1):
        torch.manual_seed(5)
        single = model.forward_detailed(x, loops=t)
        torch.testing.assert_close(every.logits[t - 1], single.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(every.state_change, single.state_change)
    if model.act is not None:  # the case is only meaningful if positions halt at different loops
        assert len(every.halt_steps.unique()) > 1 and every.halt_steps.min() < T
        torch.testing.assert_close(every.halt_steps, single.halt_steps)
        torch.testing.assert_close(every.ponder_cost, single.ponder_cost)


def test_act_halts_early_and_readouts_freeze():
    """With the halting unit forced high (no ponder cost needed) every position halts at loop 1; the
    per-loop readout exposes it: all later readouts equal the first."""
    model = RecurrentDepthTransformer(tiny(act=True, ponder_weight=0.0)).eval()
    with torch.no_grad():
        model.act.bias.fill_(10.0)
    out = model.forward_detailed(tokens(), loops=8, all_loops=True)
    assert torch.all(out.halt_steps == 1)
    for t in range(1, 8):
        torch.testing.assert_close(out.logits[t], out.logits[0], atol=0, rtol=0)
    assert out.ponder_cost.item() == pytest.approx(2.0)  # N + R = 1 + 1
    assert torch.all(out.state_change[1:] == 0)


def test_act_default_init_halts_after_train_loops():
    out = RecurrentDepthTransformer(tiny(act=True, train_loops=3)).forward_detailed(tokens(), loops=10)
    assert torch.all(out.halt_steps == 4)


def test_act_ponder_cost_has_gradient_towards_halting():
    model = RecurrentDepthTransformer(tiny(act=True))
    model.forward_detailed(tokens(), loops=3).ponder_cost.backward()
    assert model.act.bias.grad.item() < 0  # gradient descent raises the halting probability


@pytest.mark.parametrize("injection", INJECTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_64_loops_stay_finite_at_init(injection, dtype):
    model = RecurrentDepthTransformer(tiny(injection=injection, ffn="moe", act=True)).to(dtype)
    out = model.forward_detailed(tokens(), loops=64, all_loops=True)
    assert torch.isfinite(out.logits.float()).all() and torch.isfinite(out.state_change).all()


EXTREMES = [-1e4, -100.0, -30.0, -1.0, 0.0, 1e-3, 1.0, 30.0, 100.0, 1e4]
values = st.lists(st.sampled_from(EXTREMES) | st.floats(-1e4, 1e4), min_size=16, max_size=16)


@settings(max_examples=25, deadline=None)
@given(a_log=values, dt=values, b=values)
def test_lti_spectral_radius_below_one_for_any_parameters(a_log, dt, b):
    model = RecurrentDepthTransformer(tiny(prelude_layers=0, recurrent_layers=1, coda_layers=0)).eval()
    with torch.no_grad():
        model.injection.A_log.copy_(torch.tensor(a_log))
        model.injection.dt.copy_(torch.tensor(dt))
        model.injection.B.copy_(torch.tensor(b))
    for dtype in (torch.float32, torch.bfloat16):
        model = model.to(dtype)
        a_bar, b_bar = model.injection.lti()
        assert a_bar.dtype == torch.float32 and b_bar.dtype == torch.float32
        assert torch.all(a_bar >= 0) and torch.all(a_bar < 1)
        assert model.spectral_radius() < 1.0
        with torch.no_grad():
            out = model.forward_detailed(tokens(batch=1, seq=5), loops=64, all_loops=True)
        assert torch.isfinite(out.logits.float()).all()


def test_spectral_radius_per_injection():
    assert RecurrentDepthTransformer(tiny()).spectral_radius() == pytest.approx(math.exp(-0.5) * (1 - 1e-4))
    assert RecurrentDepthTransformer(tiny(injection="additive")).spectral_radius() == 1.0
    assert RecurrentDepthTransformer(tiny(injection="none")).spectral_radius() == 1.0
    model = RecurrentDepthTransformer(tiny(injection="concat"))
    with torch.no_grad():
        model.injection.proj.weight.zero_()
        model.injection.proj.weight[:, :16] = 2.0 * torch.eye(16)  # h-half = 2I
    assert model.spectral_radius() == pytest.approx(2.0)  # honest: concat is not bounded


@pytest.mark.parametrize("attention", ["mha", "gqa", "mla"])
def test_lora_at_init_changes_nothing(attention):
    x = tokens()
    base = RecurrentDepthTransformer(tiny(attention=attention)).eval()
    adapted = RecurrentDepthTransformer(tiny(attention=attention, lora_rank=4)).eval()
    missing, unexpected = adapted.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("lora.") for k in missing)
    same = adapted(x, loops=6, all_loops=True), base(x, loops=6, all_loops=True)
    torch.testing.assert_close(*same, atol=0, rtol=0)
    perturb(adapted)
    assert not torch.allclose(adapted(x, loops=6), base(x, loops=6))


def test_truncated_backprop_only_reaches_the_last_loops():
    model = RecurrentDepthTransformer(tiny())
    x = tokens()
    full = model.forward_detailed(x, loops=4)
    for k in (0, 1, 4, 10):
        torch.testing.assert_close(model.forward_detailed(x, loops=4, grad_loops=k).logits, full.logits)
    grads = {}
    for k in (None, 0, 1):
        model.zero_grad(set_to_none=True)
        model.forward_detailed(x, loops=4, grad_loops=k).logits.square().mean().backward()
        grads[k] = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    upstream = ("recurrent.", "prelude.", "injection.")
    assert all(g is None for n, g in grads[0].items() if n.startswith(upstream))
    assert grads[0]["coda.0.attn.q.weight"] is not None
    q = "recurrent.0.attn.q.weight"
    assert grads[1][q] is not None and not torch.allclose(grads[1][q], grads[None][q])
    with pytest.raises(ValueError):
        model(x, loops=0)


def test_learned_positions_reject_longer_sequences():
    model = RecurrentDepthTransformer(tiny(positional="learned", max_seq_len=8))
    model(tokens(seq=8))
    with pytest.raises(ValueError, match="max_seq_len"):
        model(tokens(seq=9))


COMBOS = list(itertools.product(["mha", "gqa", "mla"], ["dense", "moe"], INJECTIONS))


@pytest.mark.parametrize("attention, ffn, injection", COMBOS)
def test_training_reduces_loss_on_copy_task(attention, ffn, injection):
    torch.manual_seed(0)
    cfg = tiny(attention=attention, ffn=ffn, injection=injection, train_loops=2, balancing="both")
    model = RecurrentDepthTransformer(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = tokens(batch=8, seq=8)

    def loss_fn() -> torch.Tensor:
        out = model.forward_detailed(x)
        return F.cross_entropy(out.logits.flatten(0, 1), x.flatten()) + out.aux_loss

    first = loss_fn().item()
    for _ in range(15):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
        model.update_balance_bias()
    assert loss_fn().item() < 0.5 * first
