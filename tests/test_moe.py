"""DeepSeekMoE layer: grouped dispatch against a naive reference, routing, and load balancing that works."""

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from mythbench import RDTConfig, RecurrentDepthTransformer
from mythbench.models.ffn import Experts, MoE


def naive_experts(experts: Experts, x: torch.Tensor, idx: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    """Reference: for each expert, a boolean mask over all tokens (what the real dispatch must not do)."""
    out = torch.zeros_like(x)
    for e in range(experts.w_gate.shape[0]):
        rows, slots = (idx == e).nonzero(as_tuple=True)
        xe = x[rows]
        ye = (F.silu(xe @ experts.w_gate[e]) * (xe @ experts.w_up[e])) @ experts.w_down[e]
        out = out.index_add(0, rows, ye * gates[rows, slots, None])
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(1, 3), st.sampled_from([5, 8]), st.booleans(),
       st.integers(0, 10**6))
def test_dropless_dispatch_equals_naive_reference(n_tokens, n_experts, k, hidden, skewed, seed):
    """Outputs and every gradient match. hidden=8 takes the grouped-matmul path, hidden=5 (rows not a
    multiple of 16 bytes) the per-slice path; skewed routing leaves experts empty or overloaded."""
    k = min(k, n_experts)
    g = torch.Generator().manual_seed(seed)
    experts = Experts(n_experts, 8, hidden, std=0.5, out_std=0.5)
    x = torch.randn(n_tokens, 8, generator=g, requires_grad=True)
    scores = torch.rand(n_tokens, n_experts, generator=g)
    if skewed:
        scores[:, 0] += 1.0
    idx = scores.topk(k, dim=-1).indices
    gates = torch.rand(n_tokens, k, generator=g, requires_grad=True)
    got = experts(x, idx, gates)
    ref = naive_experts(experts, x, idx, gates)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    wrt = [x, gates, experts.w_gate, experts.w_up, experts.w_down]
    grad_got = torch.autograd.grad(got.square().sum(), wrt)
    grad_ref = torch.autograd.grad(ref.square().sum(), wrt)
    for a, b in zip(grad_got, grad_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def small(**kw) -> RDTConfig:
    base = dict(d_model=32, n_heads=2, n_experts=8, top_k=2, expert_hidden=16, router_max_loops=4)
    return RDTConfig(**{**base, **kw})


def test_layer_output_is_shared_plus_gated_routed_experts():
    torch.manual_seed(0)
    moe = MoE(small(router="sigmoid"))
    x = torch.randn(3, 5, 32)
    flat = x.reshape(-1, 32)
    idx, gates, _ = moe.route(flat, loop=2)
    torch.testing.assert_close(gates.sum(-1), torch.ones(15))  # sigmoid gates are renormalised over top-k
    ref = naive_experts(moe.experts, flat, idx, gates) + moe.shared(flat)
    torch.testing.assert_close(moe(x, loop=2).reshape(-1, 32), ref, atol=1e-5, rtol=1e-5)


def test_bias_changes_selection_but_not_gate_values():
    torch.manual_seed(0)
    moe = MoE(small(balancing="bias"))
    x = torch.randn(20, 32)
    with torch.no_grad():
        moe.expert_bias[0, 5] = 100.0
    idx, gates, scores = moe.route(x, loop=0)
    assert torch.all((idx == 5).any(-1))  # every token now selects expert 5
    torch.testing.assert_close(gates, scores.gather(-1, idx))  # gates come from the unbiased scores
    assert not torch.all((moe.route(x, loop=1)[0] == 5).any(-1))  # loop 1 has its own bias row


def test_router_sees_the_loop_index():
    torch.manual_seed(0)
    moe = MoE(small())
    x = torch.randn(64, 32)
    assert torch.equal(moe.route(x, 0)[0], moe.route(x, 3)[0])  # loop embeddings start at zero
    with torch.no_grad():
        moe.router_loop.weight[3].normal_(0, 3.0)
    assert not torch.equal(moe.route(x, 0)[0], moe.route(x, 3)[0])
    assert torch.equal(moe.route(x, 3)[0], moe.route(x, 9)[0])  # loops beyond the table use the last row
    with torch.no_grad():
        moe.router_loop.weight[0].normal_(0, 3.0)
        assert torch.equal(moe(x), moe(x, loop=0)) and not torch.equal(moe(x), moe(x, loop=1))  # loop 0 by default


def test_training_tallies_each_loops_assignments_in_its_row_and_later_loops_in_the_last():
    """load_sum accumulates every training forward's assignments per loop index (router_max_loops rows) until
    update_bias reads it; an evaluation forward adds nothing."""
    torch.manual_seed(0)
    moe, x = MoE(small()).train(), torch.randn(64, 32)
    moe(x, loop=0)
    once = moe.load_sum[0].clone()
    assert once.sum() == 64 * 2  # every token's top 2
    moe(x, loop=0)
    moe(x, loop=9)  # beyond the 4 rows: the last one
    assert torch.equal(moe.load_sum, torch.stack([2 * once, torch.zeros(8), torch.zeros(8), once]))
    moe.eval()(x, loop=1)
    assert moe.load_sum[1].sum() == 0


@pytest.mark.parametrize("balancing", ["aux", "both", "bias", "none"])
@pytest.mark.parametrize("router", ["softmax", "sigmoid"])
def test_the_auxiliary_balance_loss_by_hand(balancing, router):
    """weight * E * sum_i f_i P_i (DeepSeekMoE): f_i the share of assignments to expert i, P_i its mean
    score, each token's scores normalised to sum to 1 (sigmoid scores here sum to ~0.3: still normalised);
    no loss for the bias-only and unbalanced routers."""
    torch.manual_seed(0)
    moe = MoE(small(balancing=balancing, router=router, aux_loss_weight=0.3))
    x = 1.0 + 0.1 * torch.randn(64, 32)
    with torch.no_grad():
        moe.router.weight.mul_(0.1).add_(-0.1)  # logits near -3.2
    moe(x)
    if balancing in ("bias", "none"):
        assert moe.aux_loss is None
        return
    idx, _, scores = moe.route(x, 0)
    share = torch.bincount(idx.reshape(-1), minlength=8).float() / idx.numel()
    mean_score = (scores / scores.sum(-1, keepdim=True)).mean(0)
    assert moe.aux_loss.item() == pytest.approx(0.3 * 8 * (share * mean_score).sum().item(), rel=1e-6)


@pytest.mark.parametrize("balancing", ["aux", "both", "bias", "none"])
@pytest.mark.parametrize("router", ["softmax", "sigmoid"])
def test_routing_by_hand(balancing, router):
    """Scores from the router's logits of x plus the loop's embedding (softmax, or sigmoid); the top k chosen on
    the logits plus the loop's balance bias (only when balancing uses the bias); gates are the chosen scores,
    renormalised to sum to 1 for sigmoid."""
    torch.manual_seed(0)
    moe, x = MoE(small(balancing=balancing, router=router)), torch.randn(64, 32)
    with torch.no_grad():
        moe.router_loop.weight.normal_(0, 1.0)
        moe.expert_bias.normal_(0, 2.0)
    logits = (x + moe.router_loop.weight[2]) @ moe.router.weight.T
    scores = logits.softmax(-1) if router == "softmax" else logits.sigmoid()
    chosen = (logits + moe.expert_bias[2] if balancing in ("bias", "both") else logits).topk(2, dim=-1).indices
    gates = scores.gather(-1, chosen)
    if router == "sigmoid":
        gates = gates / gates.sum(-1, keepdim=True)
    idx, got_gates, got_scores = moe.route(x, 2)
    assert torch.equal(idx, chosen)
    torch.testing.assert_close((got_gates, got_scores), (gates, scores))
    assert all(torch.equal(a, b) for a, b in zip(moe.route(x), moe.route(x, 0), strict=True))  # loop 0 by default


def test_balance_buffers_stay_fp32_in_bf16_models():
    moe = MoE(small()).to(torch.bfloat16)
    assert moe.expert_bias.dtype == torch.float32 and moe.load_sum.dtype == torch.float32
    assert moe.router.weight.dtype == torch.bfloat16
    with torch.no_grad():
        moe.expert_bias.fill_(1.0)
    moe(torch.randn(50, 32, dtype=torch.bfloat16))
    moe.update_bias()
    assert not torch.all(moe.expert_bias == 1.0)  # a 1e-2 step on 1.0 survives (in bf16 it could round away)
    assert "expert_bias" in moe.state_dict() and "load_sum" not in moe.state_dict()


def collapsed_toy_run(balancing: str, router: str = "softmax", steps: int = 200, seed: int = 0) -> float:
    """Regress a random linear map with one MoE layer on inputs that share a large common component, the
    setting where an unbalanced router sends every token to the same top-k experts. Returns max/mean
    load on fresh data after training."""
    torch.manual_seed(seed)
    moe = MoE(small(n_shared_experts=0, balancing=balancing, router=router, bias_update_rate=0.03,
                    aux_loss_weight=0.1))  # fmt: skip
    mu, target = torch.randn(32), torch.nn.Linear(32, 32)
    opt = torch.optim.Adam(moe.parameters(), lr=3e-3)
    for _ in range(steps):
        x = torch.randn(256, 32) + mu
        loss = (moe(x) - target(x).detach()).pow(2).mean()
        if moe.aux_loss is not None:
            loss = loss + moe.aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        moe.update_bias()
    with torch.no_grad():
        moe(torch.randn(4096, 32) + mu)
    return float(moe.load.max() / moe.load.mean())


@pytest.mark.parametrize("balancing, router", [("bias", "softmax"), ("bias", "sigmoid"), ("aux", "softmax")])
def test_balancing_fixes_a_collapsed_router(balancing, router):
    unbalanced = collapsed_toy_run("none")
    balanced = collapsed_toy_run(balancing, router)
    print(f"max/mean expert load: none {unbalanced:.2f}, {balancing}/{router} {balanced:.2f}")
    assert unbalanced > 3.0  # 8 experts, top-2: all tokens on two experts gives 4.0
    assert balanced < 1.5


def _worst_expert_load_after_training(balancing: str) -> tuple[float, float]:
    """(worst per-loop max/mean expert load on 512 fresh sequences, final training loss) of a tiny MoE RDT
    trained 200 steps; 512 sequences, not 64, so sampling noise does not decide a 0.1 difference."""
    torch.manual_seed(0)
    cfg = RDTConfig(vocab_size=16, d_model=32, n_heads=2, ffn_hidden=64, ffn="moe", n_experts=8, top_k=2,
                    expert_hidden=16, train_loops=3, balancing=balancing, aux_loss_weight=0.0)  # fmt: skip
    model = RecurrentDepthTransformer(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        x = torch.randint(0, 16, (16, 12))
        loss = F.cross_entropy(model(x).flatten(0, 1), x.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update_balance_bias()
    with torch.no_grad():
        tokens = torch.randint(0, 16, (512, 12), generator=torch.Generator().manual_seed(1))
        load = model.forward_detailed(tokens).expert_load  # [T, E]
    return (load.max(-1).values / load.mean(-1)).max().item(), loss.item()


@pytest.mark.slow
def test_expert_load_balanced_after_training_the_model():
    """The bias step balances: against the same training with no balancing at all (aux weight 0), and
    below 1.5x the mean load on the busiest expert."""
    balanced, loss = _worst_expert_load_after_training("bias")
    unbalanced, _ = _worst_expert_load_after_training("aux")
    print(f"worst per-loop max/mean expert load after training: {balanced:.3f} (no balancing: {unbalanced:.3f})")
    assert balanced < unbalanced
    assert balanced < 1.5
    assert loss < 0.1


def test_model_deepcopies_after_a_forward_with_grad():
    model = RecurrentDepthTransformer(RDTConfig(ffn="moe", balancing="both", d_model=32, n_heads=2))
    model.forward_detailed(torch.randint(0, 32, (2, 6)))
    clone = copy.deepcopy(model)
    assert model.recurrent[0].ffn.load is not None
    assert clone.recurrent[0].ffn.aux_loss is None and clone.recurrent[0].ffn.load is None  # per-call, not state
    torch.testing.assert_close(clone.recurrent[0].ffn.expert_bias, model.recurrent[0].ffn.expert_bias)
