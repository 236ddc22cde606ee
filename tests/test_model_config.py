"""RDTConfig: one place of validation that reports every problem at once."""

import dataclasses

import pytest

from mythbench import RDTConfig
from mythbench.core.errors import ConfigError


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
        ({"injection": "none"}, "init_state='embedding'"),
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


def test_valid_combinations_pass():
    RDTConfig(attention="mla", positional="none", rope_head_dim=0)  # no rope, no decoupled key needed
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
