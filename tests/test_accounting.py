"""Analytic parameter and FLOP counts: every family and every baseline, counted from its config alone, agrees
with the model it builds (its parameters, and the FLOPs the same formula gives from them)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math

import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from mythbench.baselines import MODELS, TWINS
from mythbench.baselines.openmythos import FIXED, problems

from mythbench.core.errors import ConfigError
from mythbench.models import baseline_registry, registry
from mythbench.models.accounting import Accounting, account, count_config, param_counts, spectral_radius_at_init
from mythbench.models.param_counts import ParamCounts, measure_params
from mythbench.models.rdt_config import RDTConfig
from mythbench.results.results_model import Flops, Params

HAS_OPEN_MYTHOS = importlib.util.find_spec("open_mythos") is not None
FAMILIES = ["rdt", "standard", *(["openmythos"] if HAS_OPEN_MYTHOS else [])]


@st.composite
def configs(draw: st.DrawFn) -> RDTConfig:
    """Small RDT configs over every switch that changes the parameter count."""
    n_heads = draw(st.sampled_from([1, 2, 4]))
    attention = draw(st.sampled_from(["mha", "gqa", "mla"]))
    injection = draw(st.sampled_from(["lti", "additive", "concat", "none"]))
    return RDTConfig(
        vocab_size=draw(st.integers(2, 40)), max_seq_len=draw(st.integers(1, 48)),
        d_model=n_heads * draw(st.sampled_from([4, 6, 8])), n_heads=n_heads,
        n_kv_heads=draw(st.sampled_from([h for h in (1, 2, 4) if n_heads % h == 0])),
        prelude_layers=draw(st.integers(0, 2)), recurrent_layers=draw(st.integers(1, 3)),
        coda_layers=draw(st.integers(0, 2)), attention=attention,
        kv_latent_dim=draw(st.integers(1, 12)), q_latent_dim=draw(st.sampled_from([0, 1, 5, 16])),
        rope_head_dim=draw(st.sampled_from([2, 4])), positional=draw(st.sampled_from(["rope", "learned", "none"])),
        conv_kernel=draw(st.integers(0, 4)), causal=draw(st.booleans()), ffn=draw(st.sampled_from(["dense", "moe"])),
        ffn_hidden=draw(st.integers(1, 40)), n_experts=(n_experts := draw(st.integers(1, 6))),
        n_shared_experts=draw(st.integers(0, 2)), expert_hidden=draw(st.integers(1, 12)),
        top_k=draw(st.integers(1, n_experts)), router_max_loops=draw(st.integers(1, 5)), injection=injection,
        init_state="embedding" if injection == "none" else draw(st.sampled_from(["zeros", "embedding"])),
        act=draw(st.booleans()), lora_rank=draw(st.sampled_from([0, 1, 3])), lora_max_loops=draw(st.integers(1, 5)),
        train_loops=draw(st.integers(1, 6)), tie_embeddings=draw(st.booleans()))


def _openmythos_config(cfg: RDTConfig) -> RDTConfig:
    """The nearest config OpenMythos can build (its fixed switches, and the sizes it supports)."""
    return dataclasses.replace(cfg, **FIXED, attention="gqa" if cfg.attention == "mha" else cfg.attention,
                               q_latent_dim=cfg.q_latent_dim or cfg.d_model, conv_kernel=0)


def _check_against_built_model(family: str, cfg: RDTConfig, loops: int, grad_loops: int, context: int) -> None:
    fam = registry.get_family(family)
    with torch.device("meta"):
        model = fam.model_class(cfg)
    analytic, measured = param_counts(family, cfg), measure_params(model, cfg, fam.looped)
    assert (analytic.embedding, analytic.once, analytic.recurrent) == (
        measured.embedding, measured.once, measured.recurrent), family
    assert analytic.active_once == pytest.approx(measured.active_once, rel=1e-12)
    assert analytic.active_recurrent == pytest.approx(measured.active_recurrent, rel=1e-12)
    counted = count_config(family, cfg, loops=loops, grad_loops=grad_loops, context=context)
    assert counted.params_total == sum(p.numel() for p in model.parameters())
    expected = account(measured, cfg, fam.looped, loops, grad_loops, context)
    assert counted.params_dict() == expected.params_dict()
    assert counted.flops_forward == pytest.approx(expected.flops_forward, rel=1e-12)
    assert counted.flops_train == pytest.approx(expected.flops_train, rel=1e-12)


@given(configs(), st.sampled_from(FAMILIES), st.integers(1, 9), st.integers(0, 9), st.integers(1, 64))
@example(RDTConfig(attention="gqa", n_heads=4, n_kv_heads=2, lora_rank=2), "rdt", 3, 3, 8)  # narrower k, v
@example(RDTConfig(attention="mla", q_latent_dim=0, lora_rank=2), "rdt", 3, 3, 8)  # full-width query
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_family_counts_what_it_builds(cfg, family, loops, grad_loops, context):
    if family == "openmythos":
        cfg = _openmythos_config(cfg)
    _check_against_built_model(family, cfg, loops, grad_loops, context)


@given(configs(), st.sampled_from(["rdt", *MODELS, "openmythos"]), st.sampled_from([None, *TWINS]))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_model_and_twin_counts_what_it_builds(cfg, name, twin):
    try:
        family, baseline, _ = baseline_registry.looped_model(name, cfg)
        if twin is not None:
            family, baseline = baseline_registry.twin_model(twin, family, baseline)
    except ConfigError:  # no standard transformer matches within tolerance by its FFN width alone
        assume(False)
    if family == "openmythos":  # only where the package is installed and supports the RDT's switches
        assume(HAS_OPEN_MYTHOS and not problems(baseline))
    _check_against_built_model(family, baseline, baseline.train_loops, baseline.train_loops, baseline.max_seq_len)


@pytest.mark.parametrize("injection", ["lti", "additive", "none", "concat"])
def test_spectral_radius_at_init_is_the_built_models(injection):
    cfg = RDTConfig(injection=injection, init_state="embedding")
    model = registry.build_model("rdt", cfg.to_dict())[0]
    expected = spectral_radius_at_init(cfg)
    if injection == "concat":  # a random matrix: not known before the model is built
        assert expected is None
    else:
        assert model.spectral_radius() == pytest.approx(expected, rel=1e-6)
        assert math.isfinite(expected)


def test_the_size_check_counts_every_role_of_a_family_with_a_count(monkeypatch):
    cfg = RDTConfig(d_model=32, n_heads=2)
    counts = registry.get_family("rdt").count(cfg)
    elements = counts.embedding + counts.once + counts.recurrent
    assert counts.once and counts.recurrent and counts.embedding
    monkeypatch.setattr(registry, "MAX_MODEL_ELEMENTS", elements - 1)
    problem = f"the rdt model holds {elements:,} parameters; the limit is {elements - 1:,}"
    assert registry.size_problem("rdt", cfg) == problem
    with pytest.raises(ConfigError, match=problem):
        registry.instantiate("rdt", cfg)
    monkeypatch.setattr(registry, "MAX_MODEL_ELEMENTS", elements)
    assert registry.size_problem("rdt", cfg) is None


def test_a_family_without_a_count_is_sized_on_the_meta_device(monkeypatch):
    """Its parameters and buffers are counted from a model built on the meta device, which allocates nothing."""
    built_on: list[str] = []

    def build(width: int) -> torch.nn.Module:
        model = torch.nn.Linear(width, 3)
        model.register_buffer("scale", torch.ones(width))
        built_on.append(model.weight.device.type)
        return model

    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    registry.register_family("linear", registry.ModelFamily(dict, build, looped=False))
    monkeypatch.setattr(registry, "MAX_MODEL_ELEMENTS", 0)
    assert registry.size_problem("linear", 5) == "the linear model holds 23 parameters; the limit is 0"
    assert built_on == ["meta"]


def test_without_a_standard_family_the_ladder_s_comparison_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(baseline_registry, "_STANDARD", [])
    with pytest.raises(ConfigError, match=r"^no standard-transformer family is registered \(the baselines plugin "
                                          r"provides it\)$"):
        baseline_registry.matched_standard(RDTConfig())


def test_plugins_named_in_the_environment_come_last_and_an_unimportable_one_is_refused(monkeypatch):
    monkeypatch.setenv(registry.PLUGIN_ENV, " no_such_plugin_module , ,")
    modules = registry.plugin_modules()
    assert modules[:len(registry.PLUGIN_PACKAGES)] == list(registry.PLUGIN_PACKAGES)
    assert modules[-1] == "no_such_plugin_module" and "" not in modules
    with pytest.raises(ConfigError, match="^plugin 'no_such_plugin_module' cannot be imported: No module named"):
        registry.load_plugins()
    monkeypatch.delenv(registry.PLUGIN_ENV)
    with pytest.raises(ConfigError, match="^unknown model family 'rdx'.*rdt"):
        registry.get_family("rdx")


def test_the_per_token_flops_a_results_file_stores_are_the_counts():
    count = count_config("rdt", RDTConfig(d_model=32, n_heads=2), loops=4, context=16)
    assert count.flops_dict() == {"forward": count.flops_forward, "train": count.flops_train}
    assert 0 < count.flops_forward < count.flops_train


def test_each_count_is_stored_under_its_name_in_the_results_file():
    counts = Accounting(params_total=1, params_unique=2, params_active=3, params_once=4, params_recurrent=5,
                        flops_forward=6.0, flops_train=7.0)
    assert Params.model_validate(counts.params_dict()).model_dump() == {
        "total": 1, "unique": 2, "active": 3, "once": 4, "recurrent": 5}
    assert Flops.model_validate(counts.flops_dict()).model_dump() == {"forward": 6.0, "train": 7.0}


@pytest.mark.parametrize("attention", ["mha", "gqa", "mla"])
@pytest.mark.parametrize("causal", [True, False])
def test_attention_flops_grow_with_the_context_by_the_score_and_value_products(attention, causal):
    """Two more positions of context add, per attention layer a token passes through, 2 FLOPs per score
    (query.key: head_dim wide, plus MLA's shared rope part) and per value (head_dim), per head, over the
    positions it sees: all of them, or on average half with a causal mask."""
    cfg = RDTConfig(attention=attention, causal=causal, d_model=32, n_heads=4, n_kv_heads=2, rope_head_dim=6,
                    prelude_layers=1, recurrent_layers=2, coda_layers=3)
    qk_dim = cfg.head_dim + (6 if attention == "mla" else 0)
    layer_passes = 1 + 2 * 5 + 3  # prelude, the recurrent block at 5 loops, coda
    seen = 1 if causal else 2  # of the two added positions, on average
    grown = [count_config("rdt", cfg, loops=5, context=c).flops_forward for c in (10, 12)]
    assert grown[1] - grown[0] == pytest.approx(layer_passes * 2 * seen * cfg.n_heads * (qk_dim + cfg.head_dim))


@pytest.mark.parametrize("looped", [True, False])
def test_the_counts_and_flops_per_token_by_hand(looped):
    """The module's formulas on made-up counts: 2 FLOPs per active matmul parameter, attention's products over
    the context (causal: half of max_seq_len 10 on average), the vocabulary projection; prelude and coda once,
    the recurrent block once per loop (a standard transformer: its n_layers once); training a forward, then
    twice the forward of what the gradient flows through (the once-run layers and the gradient loops)."""
    counts = ParamCounts(embedding=100, once=1000, recurrent=500, active_once=800.4, active_recurrent=300.3)
    cfg = RDTConfig(attention="mha", d_model=32, n_heads=4, vocab_size=11, max_seq_len=10, train_loops=7,
                    prelude_layers=1, recurrent_layers=2, coda_layers=3)
    attention = 2 * 5 * 4 * (8 + 8)  # per layer: 2 FLOPs x 5 positions seen x 4 heads x (score + value widths)
    head = 2 * 32 * 11
    acc = account(counts, cfg, looped, loops=5, grad_loops=2)
    if looped:
        once, per_loop, loops, grad_loops = 2 * 800.4 + 4 * attention + head, 2 * 300.3 + 2 * attention, 5, 2
    else:  # a standard transformer: one pass through all its layers, whatever loops are asked for
        once, per_loop, loops, grad_loops = 2 * 800.4 + 6 * attention + head, 2 * 300.3, 1, 1
    assert acc.flops_forward == pytest.approx(once + loops * per_loop, rel=1e-12)
    assert acc.flops_train == pytest.approx(3 * once + per_loop * (loops + 2 * grad_loops), rel=1e-12)
    assert acc.params_dict() == {"total": 1600, "unique": 1500, "active": 1101, "once": 1000, "recurrent": 500}
    default = account(counts, cfg, looped)  # the config's train_loops, the gradient through every loop
    assert default.flops_train == pytest.approx(3 * default.flops_forward, rel=1e-12)
    assert default.flops_forward == pytest.approx(once + (7 if looped else 1) * per_loop, rel=1e-12)
