"""Looped models and their twins: matched standard transformers, ablations, and the accounting they are matched
with."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mythbench.baselines import MODELS, matched_baseline
from mythbench.baselines.standard import as_standard
from mythbench.baselines.standard_model import StandardTransformer

from mythbench.config import resolve_run_config
from mythbench.core.errors import ConfigError
from mythbench.models import baseline_registry
from mythbench.models.accounting import count_config
from mythbench.models.baseline_registry import looped_model, twin_model
from mythbench.models.model import RDTConfig

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


def test_forward_flops_grow_linearly_with_loops():
    cfg = RDTConfig()
    f = [count_config("rdt", cfg, loops=t).flops_forward for t in (1, 2, 3)]
    assert f[2] - f[1] == pytest.approx(f[1] - f[0])
    # truncated backprop costs less to train than full backprop through every loop
    assert count_config("rdt", cfg, loops=8, grad_loops=2).flops_train < count_config("rdt", cfg, loops=8).flops_train


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


BLOCK_FIELDS = ("attention", "ffn", "positional", "conv_kernel", "d_model", "n_heads", "kv_latent_dim",
                "rope_head_dim", "n_experts", "top_k", "router", "causal")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rdt", *MODELS, "control+no-injection"])
@given(width=st.sampled_from([32, 48, 64, 96]), loops=st.sampled_from([2, 6, 16]))
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_looped_model_gets_its_own_matched_twins(name, width, loops):
    """The suite's RDT at several widths and loop counts, changed into each looped model: each twin keeps that
    model's blocks (not the RDT's) and matches its unique parameters within 2% (iso-param, same distinct
    layers) or its forward FLOPs within 5% (iso-flop, the loop unrolled)."""
    rdt = resolve_run_config("parity").model  # MLA, MoE, LoRA: what the control and ablations change
    base = dataclasses.replace(rdt, d_model=width, n_heads=width // 16, train_loops=loops)
    family, looped, _ = looped_model(name, base)
    target = count_config(family, looped)
    for kind, measure, tolerance, layers in (
            ("iso-param", "params_unique", 0.02, looped.n_layers),
            ("iso-flop", "flops_forward", 0.05,
             looped.prelude_layers + looped.recurrent_layers * looped.train_loops + looped.coda_layers)):
        twin_family, twin = twin_model(kind, family, looped)
        assert twin_family == "standard" and twin.n_layers == layers
        assert {f: getattr(twin, f) for f in BLOCK_FIELDS} == {f: getattr(looped, f) for f in BLOCK_FIELDS}
        got = getattr(count_config(twin_family, twin), measure)
        assert abs(got - getattr(target, measure)) / getattr(target, measure) <= tolerance, kind


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_looped_model_builds(name):
    family, cfg, role = looped_model(name, RDTConfig(ffn="moe", lora_rank=2))
    assert family == "rdt" and role
    assert count_config(family, cfg).params_total > 0


def test_a_joined_name_applies_the_second_change_to_the_first_model():
    family, cfg, role = looped_model("control+additive", RDTConfig(attention="mla", ffn="moe"))
    assert (family, role) == ("rdt", "ablation:additive")
    assert (cfg.attention, cfg.ffn, cfg.injection) == ("mha", "dense", "additive")


def test_unknown_models_and_twins_are_clear_errors():
    with pytest.raises(ConfigError) as err:
        looped_model("control+iso-banana+nope", RDTConfig())
    assert len(err.value.problems) == 2 and "unknown model 'iso-banana'" in err.value.problems[0]
    with pytest.raises(ConfigError, match="unknown twin 'iso-banana'"):
        twin_model("iso-banana", "rdt", RDTConfig())
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


def test_an_unknown_model_or_twin_is_refused_with_every_known_name():
    with pytest.raises(ConfigError) as err:
        looped_model("rdt+nope", RDTConfig())
    assert f"(known: {', '.join(baseline_registry._MODELS)}; join two with '+')" in str(err.value)
    with pytest.raises(ConfigError) as err:
        twin_model("nope", "rdt", RDTConfig())
    assert str(err.value).endswith(f"(known: {', '.join(baseline_registry._TWINS)})")


def test_a_registered_twin_is_built_by_its_own_family(monkeypatch):
    monkeypatch.setattr(baseline_registry, "_TWINS", {})
    baseline_registry.register_twin("copy", "standard", "the looped model's config as it is", lambda fam, cfg: cfg)
    cfg = RDTConfig()
    assert twin_model("copy", "rdt", cfg) == ("standard", cfg)
    assert baseline_registry.describe_twins() == [f"{'copy':<14} the looped model's config as it is"]


def test_a_registered_model_and_standard_family_are_built_by_their_own_families(monkeypatch):
    monkeypatch.setattr(baseline_registry, "_MODELS", {})
    monkeypatch.setattr(baseline_registry, "_STANDARD", [])
    wider = lambda cfg: dataclasses.replace(cfg, d_model=2 * cfg.d_model)  # noqa: E731
    baseline_registry.register_model("wide", "rdt", "control", "twice the width", wider)
    baseline_registry.register_standard("standard", wider)
    cfg = RDTConfig(d_model=32, n_heads=2)
    assert looped_model("wide", cfg) == ("rdt", wider(cfg), "control")
    assert baseline_registry.describe_models() == [f"{'wide':<14} twice the width"]
    assert baseline_registry.matched_standard(cfg) == ("standard", wider(cfg))
