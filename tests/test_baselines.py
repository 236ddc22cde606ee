"""Baselines: matched standard transformers, ablations, and the accounting they are matched with."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mythbench.baselines import BASELINES, StandardTransformer, build_baseline, matched_baseline
from mythbench.baselines.standard import as_standard

from mythbench.core.errors import ConfigError
from mythbench.models.accounting import count, count_config
from mythbench.models.model import RDTConfig, RecurrentDepthTransformer

configs = st.builds(
    RDTConfig,
    d_model=st.sampled_from([32, 48, 64]),
    n_heads=st.sampled_from([2, 4]),
    prelude_layers=st.integers(0, 2),
    recurrent_layers=st.integers(1, 3),
    coda_layers=st.integers(0, 2),
    attention=st.sampled_from(["mha", "gqa", "mla"]),
    ffn=st.sampled_from(["dense", "moe"]),
    injection=st.sampled_from(["lti", "additive", "concat"]),
    lora_rank=st.sampled_from([0, 2, 4]),
    act=st.booleans(),
    train_loops=st.integers(1, 8),
    max_seq_len=st.sampled_from([16, 64]),
)


@given(configs)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_iso_param_within_2_percent(cfg):
    target = count_config("rdt", cfg).params_unique
    got = count_config("standard", matched_baseline(cfg, "iso-param")).params_unique
    assert abs(got - target) / target <= 0.02


@given(configs)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_iso_flop_within_5_percent_and_unrolled(cfg):
    base = matched_baseline(cfg, "iso-flop")
    assert base.n_layers == cfg.prelude_layers + cfg.recurrent_layers * cfg.train_loops + cfg.coda_layers
    target = count_config("rdt", cfg).flops_forward
    got = count_config("standard", base).flops_forward
    assert abs(got - target) / target <= 0.05


def test_counts_agree_with_the_real_parameters():
    cfg = RDTConfig(ffn="moe", lora_rank=2, act=True, tie_embeddings=False)
    model = RecurrentDepthTransformer(cfg)
    c = count(model)
    assert c.params_total == sum(p.numel() for p in model.parameters())
    embedding = model.embed.tok.weight.numel() + model.head.proj.weight.numel()
    assert c.params_unique == c.params_total - embedding == c.params_once + c.params_recurrent
    # routed experts count top_k / n_experts towards the active parameters
    assert c.params_active < c.params_unique


def test_forward_flops_grow_linearly_with_loops():
    model = RecurrentDepthTransformer(RDTConfig())
    f = [count(model, loops=t).flops_forward for t in (1, 2, 3)]
    assert f[2] - f[1] == pytest.approx(f[1] - f[0])
    # truncated backprop costs less to train than full backprop through every loop
    assert count(model, loops=8, grad_loops=2).flops_train < count(model, loops=8).flops_train


def test_standard_transformer_trains_and_ignores_loops():
    cfg = matched_baseline(RDTConfig(vocab_size=8, ffn="moe"), "iso-param")
    torch.manual_seed(0)
    model = StandardTransformer(cfg)
    tokens = torch.randint(0, 8, (16, 12))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        out = model.forward_detailed(tokens, loops=5)
        loss = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), tokens.flatten()) + out.aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update_balance_bias()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(model(tokens, loops=1), model(tokens, loops=9))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_builds(name):
    family, cfg, role = build_baseline(name, RDTConfig(ffn="moe", lora_rank=2))
    assert family in ("rdt", "standard") and role
    assert count_config(family, cfg).params_total > 0


def test_unknown_baseline_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown baseline 'iso-banana'"):
        build_baseline("iso-banana", RDTConfig())
    with pytest.raises(ConfigError, match="iso-param"):
        matched_baseline(RDTConfig(), "iso-banana")


@given(configs, st.sampled_from(["iso-param", "iso-flop"]))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_matching_takes_the_closest_width_not_the_bracket_below(cfg, name):
    """The matched width's count is at least as close to the RDT's as that of either neighbouring width."""
    base = matched_baseline(cfg, name)
    has_dense = cfg.ffn == "dense" or cfg.prelude_layers + cfg.coda_layers > 0  # the knob matching turns
    knob = "ffn_hidden" if has_dense else "expert_hidden"
    kind = "params_unique" if name == "iso-param" else "flops_forward"
    target = getattr(count_config("rdt", cfg), kind)
    layers = (base.prelude_layers, base.recurrent_layers, base.coda_layers)

    def miss(width: int) -> float:
        return abs(getattr(count_config("standard", as_standard(cfg, *layers, **{knob: width})), kind) - target)

    width = getattr(base, knob)
    assert miss(width) <= min(miss(width + 1), miss(max(1, width - 1)))
