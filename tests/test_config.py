"""Run configuration: layering, overrides, and errors that name every problem."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mythbench.config import TrainConfig, parse_overrides, resolve_run_config, run_config_from_dict, to_dict
from mythbench.core.errors import ConfigError
from mythbench.core.fielddocs import field_docs
from mythbench.training.train import difficulty_for_step, loop_schedule, lr_at


def test_quick_preset_resolves_with_overrides(tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("train:\n  steps: 123\nmodel:\n  d_model: 32\n")
    cfg = resolve_run_config("parity", "quick", cfg_file, ["train.lr=0.01", "model.n_heads=2"])
    assert cfg.train.steps == 123 and cfg.train.lr == 0.01
    assert cfg.model.d_model == 32 and cfg.model.n_heads == 2
    assert cfg.task == "parity" and cfg.preset == "quick"


def test_every_problem_is_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as err:
        resolve_run_config("parity", "quick", None,
                           ["train.steps=-1", "train.bogus=3", "eval.loops_factor=abc", "train.recipe=magic"])
    text = "\n".join(err.value.problems)
    assert "train.bogus: unknown key" in text
    assert "eval.loops_factor: expected int" in text
    # out-of-range checks run only once the types are right; the type errors come first and all together
    assert len(err.value.problems) >= 2


def test_range_problems_are_listed_together():
    with pytest.raises(ConfigError) as err:
        resolve_run_config("parity", "quick", None, ["train.steps=0", "train.recipe=magic", "seeds=[1,1]"])
    text = "\n".join(err.value.problems)
    assert "train.steps" in text and "train.recipe" in text and "seeds" in text


def test_a_config_that_names_baselines_is_told_what_replaces_them(tmp_path):
    cfg_file = tmp_path / "old.yaml"
    cfg_file.write_text("baselines: [control, iso-param]\nmodels: []\ntwins: [iso-flop, iso-flop]\n")
    with pytest.raises(ConfigError) as err:
        resolve_run_config("parity", "quick", cfg_file)
    assert sorted(err.value.problems) == sorted([
        "models: at least one looped model is needed, e.g. [rdt] or [rdt, control]",
        "twins: ['iso-flop', 'iso-flop'] has duplicates",
        "baselines: replaced by `models:` (the looped models trained) and `twins:` (the standard transformers each "
        "gets); for baselines: ['control', 'iso-param'] write models: [rdt, control] and twins: [iso-param]"])


def test_a_stored_config_from_before_models_reads_as_the_models_it_trained():
    stored = to_dict(resolve_run_config("parity"))
    del stored["models"], stored["twins"]
    cfg = run_config_from_dict({**stored, "baselines": ["iso-param", "control", "iso-flop"]})
    assert (cfg.models, cfg.twins) == (["rdt", "control"], ["iso-param", "iso-flop"])


def test_malformed_and_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        resolve_run_config("parity", "quick", bad)
    with pytest.raises(ConfigError, match="no such file"):
        resolve_run_config("parity", "quick", tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="preset"):
        resolve_run_config("parity", "nope")


def test_parse_overrides_types():
    problems: list[str] = []
    out = parse_overrides(["a.b=3", "a.c=0.5", "d=true", "e=[1, 2]", "f=text", "broken"], problems)
    assert out == {"a": {"b": 3, "c": 0.5}, "d": True, "e": [1, 2], "f": "text"}
    assert problems == ["--set 'broken': expected key=value"]


@given(st.integers(1, 2000), st.integers(0, 500), st.floats(1e-5, 1.0))
@settings(max_examples=50, deadline=None)
def test_lr_schedule_bounded_and_warm(steps, warmup, lr):
    cfg = TrainConfig(steps=steps, warmup_steps=min(warmup, steps - 1), lr=lr)
    values = [lr_at(s, cfg) for s in range(steps)]
    assert all(0 < v <= lr * (1 + 1e-12) for v in values)
    assert all(v >= cfg.min_lr_ratio * lr * (1 - 1e-12) for v in values[cfg.warmup_steps:])
    if cfg.warmup_steps > 1:
        assert values[0] < values[cfg.warmup_steps - 1]


@pytest.mark.parametrize("recipe", ["fixed", "parcae", "huginn", "tied", "progressive"])
def test_loop_schedule_is_a_function_of_seed_and_step(recipe):
    cfg = TrainConfig(recipe=recipe, bwd_loops=3)
    draws = [loop_schedule(s, 8, 6, cfg, seed=1) for s in range(200)]
    assert draws == [loop_schedule(s, 8, 6, cfg, seed=1) for s in range(200)]
    loops = [t for t, _ in draws]
    assert min(loops) >= 1
    if recipe in ("parcae", "huginn"):
        assert all(g == min(3, t) for t, g in draws)
        assert abs(sum(loops) / len(loops) - 6) < 1.0  # both samplers have mean train_loops
    if recipe == "tied":
        assert set(loops) == {math.ceil(cfg.loops_per_difficulty * 8)}


def test_curriculum_starts_easy():
    cfg = TrainConfig(steps=100, curriculum_fraction=0.5)
    early = {difficulty_for_step(s, [2, 4, 8, 16], cfg, 0) for s in range(10)}
    late = {difficulty_for_step(s, [2, 4, 8, 16], cfg, 0) for s in range(60, 100)}
    assert early <= {2, 4} and 16 in late


@dataclasses.dataclass
class _Documented:
    beside: int = 1  # the comment on its line
    # the comment block
    # right above it
    above: str = "#"  # the line's own comment wins
    # a comment a blank line away documents nothing

    bare: float = 0.0


def test_field_docs_read_the_comment_beside_a_field_or_the_block_above_it():
    assert field_docs(_Documented) == {"beside": "the comment on its line", "above": "the line's own comment wins",
                                       "bare": ""}
    assert field_docs(TrainConfig)["loop_jitter"].startswith("`tied`: loops drawn uniformly from")


def test_a_mistyped_task_preset_and_keys_are_named_at_once_with_their_fix(tmp_path):
    with pytest.raises(ConfigError) as caught:
        resolve_run_config("parit", "quik", None, ["train.step=3", "d_model=8", "modle.n_heads=2"])
    assert caught.value.problems == [
        "unknown task 'parit' (did you mean 'parity'?); or give a task file (.yaml)",
        "unknown preset 'quik' (did you mean 'quick'?)",
        "d_model: unknown key (did you mean 'model.d_model'?)",  # the key of that name in a section
        "modle: unknown key (did you mean 'model'?)",
        "train.step: unknown key (did you mean 'train.steps'?)",
    ]
