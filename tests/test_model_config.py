"""RDTConfig: one place of validation that reports every problem at once."""

import dataclasses

import pytest

from mythbench import RDTConfig
from mythbench.core.errors import ConfigError
from mythbench.models.rdt_config import UPPER_BOUNDS


def test_default_is_valid_and_small():
    cfg = RDTConfig()
    assert (cfg.vocab_size, cfg.d_model, cfg.n_heads) == (32, 64, 4)
    assert (cfg.prelude_layers, cfg.recurrent_layers, cfg.coda_layers, cfg.train_loops) == (1, 2, 1, 4)


def test_every_problem_is_reported_together():
    with pytest.raises(ConfigError) as err:
        RDTConfig(
            vocab_size="32",
            d_model=30,
            attention="sparse",
            n_experts=4,
            top_k=5,
            act_threshold=1.5,
            recurrent_layers=0,
            norm_eps=float("nan"),
            causal=1,
        )
    text = "\n".join(err.value.problems)
    assert len(err.value.problems) == 8, text
    for needle in ["vocab_size: expected int", "d_model (30) must be divisible by n_heads (4)", "sparse",
                   "top_k (5) must be <= n_experts (4)", "act_threshold", "recurrent_layers: must be >= 1",
                   "norm_eps: must be finite", "causal: expected bool"]:  # fmt: skip
        assert needle in text


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"attention": "gqa", "n_heads": 4, "n_kv_heads": 3}, "divisible by n_kv_heads"),
        ({"attention": "mla", "rope_head_dim": 3}, "even rope_head_dim"),
        ({"attention": "mla", "rope_head_dim": 0}, "even rope_head_dim"),
        ({"d_model": 12, "n_heads": 4}, "even head dim"),
        ({"ffn": "moe", "balancing": "sometimes"}, "balancing"),
        ({"positional": "alibi"}, "positional"),
        ({"lora_rank": -1}, "lora_rank"),
        ({"ponder_weight": -0.1}, "ponder_weight"),
    ],
)
def test_incompatible_or_out_of_range(kwargs, needle):
    with pytest.raises(ConfigError) as err:
        RDTConfig(**kwargs)
    assert any(needle in p for p in err.value.problems), err.value.problems


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"d_model": "64"}, "d_model: expected int, got str '64'"),
        ({"n_heads": "4"}, "n_heads: expected int, got str '4'"),  # not also divided by
        ({"n_heads": 0}, "n_heads: must be >= 1, got 0"),
        ({"attention": "gqa", "n_kv_heads": "2"}, "n_kv_heads: expected int, got str '2'"),
        ({"attention": "gqa", "n_heads": 0}, "n_heads: must be >= 1, got 0"),
        ({"attention": "gqa", "n_heads": "4"}, "n_heads: expected int, got str '4'"),
        ({"attention": "sparse"}, "attention: 'sparse' is not one of mha, gqa, mla"),
        ({"injection": "none"}, "injection='none' never sees the prelude output unless init_state='embedding'"),
        ({"attention": "mla", "rope_head_dim": "8"}, "rope_head_dim: expected int, got str '8'"),
        ({"ffn": "moe", "n_experts": 0}, "n_experts: must be >= 1, got 0"),  # not also top_k > n_experts
        ({"ffn": "moe", "top_k": "2"}, "top_k: expected int, got str '2'"),
        ({"d_model": 2**16 + 1}, "d_model: must be <= 65536, got 65537"),  # not also indivisible by n_heads
        ({"norm_eps": 0.0}, "norm_eps: must be > 0, got 0.0"),
        ({"init_std": "0.02"}, "init_std: expected float, got str '0.02'"),
        ({"ponder_weight": float("-inf")}, "ponder_weight: must be finite, got -inf"),  # not also below 0
        ({"act_threshold": float("nan")}, "act_threshold: must be finite, got nan"),  # not also outside (0, 1]
        ({"act_threshold": "0.5"}, "act_threshold: expected float, got str '0.5'"),
        ({"act_threshold": 0.0}, "act_threshold: must be in (0, 1], got 0.0"),
    ],
)
def test_each_bad_field_is_one_problem_with_its_value_and_no_check_reads_it_again(kwargs, problem):
    """A field already reported (wrong type, not finite, out of range) is left out of the checks that combine
    fields, which would otherwise fail on it (a str divided, a zero divisor) or report it twice."""
    with pytest.raises(ConfigError) as err:
        RDTConfig(**kwargs)
    assert err.value.problems == [problem]


@pytest.mark.parametrize("name", sorted(UPPER_BOUNDS))
def test_every_upper_bound_is_inclusive(name):
    high = UPPER_BOUNDS[name]
    try:
        RDTConfig(**{name: high})
    except ConfigError as err:  # at its bound a field may break a combined rule, never its own bound
        assert not [p for p in err.problems if p.startswith(f"{name}: ")], err.problems
    with pytest.raises(ConfigError) as err:
        RDTConfig(**{name: high + 1})
    assert f"{name}: must be <= {high}, got {high + 1}" in err.value.problems


def test_valid_combinations_pass():
    RDTConfig(attention="mla", positional="none", rope_head_dim=0)  # no rope, no decoupled key needed
    RDTConfig(attention="mla", rope_head_dim=6, d_model=12, n_heads=4)  # odd head dim: MLA ropes its own part
    RDTConfig(ffn="moe", n_experts=4, top_k=4)  # every expert active
    RDTConfig(attention="gqa", n_heads=4, n_kv_heads=1)
    RDTConfig(injection="none", init_state="embedding", prelude_layers=0, coda_layers=0)
    assert RDTConfig(act_threshold=1).act_threshold == 1.0  # ints are fine for float fields


def test_from_dict_reports_unknown_keys_with_type_errors_and_round_trips():
    with pytest.raises(ConfigError) as err:
        RDTConfig.from_dict({"d_model": "big", "n_layer": 3, "top_k": 9, "n_experts": 4})
    problems = err.value.problems
    assert any("unknown key 'n_layer'" in p for p in problems)
    assert any("d_model: expected int" in p for p in problems)
    assert any("top_k (9)" in p for p in problems)
    with pytest.raises(ConfigError):
        RDTConfig.from_dict(["not", "a", "mapping"])
    cfg = RDTConfig(ffn="moe", act=True, lora_rank=2)
    assert RDTConfig.from_dict(cfg.to_dict()) == cfg


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RDTConfig().d_model = 8  # type: ignore[misc]


def test_from_dict_names_what_it_got_and_the_key_it_likely_meant():
    with pytest.raises(ConfigError) as err:
        RDTConfig.from_dict([1])
    assert err.value.problems == ["model config must be a mapping, got list"]
    with pytest.raises(ConfigError) as err:
        RDTConfig.from_dict({"d_modle": 8})
    assert err.value.problems == ["unknown key 'd_modle' (did you mean 'd_model'?)"]
