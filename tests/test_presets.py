"""Presets set budgets only: every preset trains the same models with the same recipe on every task, and a
preset that tries to set anything else is refused (an earlier full.yaml drifted to another architecture)."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from mythbench.tasks import list_tasks

from mythbench import config
from mythbench.config import BUDGET_KEYS, list_presets, resolve_run_config
from mythbench.core.errors import ConfigError


def what_is_trained(task: str, preset: str) -> dict:
    """Everything about a run that is not a budget."""
    cfg = resolve_run_config(task, preset)
    train_budget, eval_budget = BUDGET_KEYS["train"], BUDGET_KEYS["eval"]
    return {
        "model": {k: v for k, v in dataclasses.asdict(cfg.model).items() if k not in BUDGET_KEYS["model"]},
        "models": cfg.models, "twins": cfg.twins,
        "train": {k: v for k, v in dataclasses.asdict(cfg.train).items() if k not in train_budget},
        "eval": {k: v for k, v in dataclasses.asdict(cfg.eval).items() if k not in eval_budget},
    }


@pytest.mark.parametrize("task", list_tasks())
def test_every_preset_trains_the_same_models_with_the_same_recipe(task):
    reference = what_is_trained(task, "quick")
    assert reference["model"]["attention"] == "mla" and reference["models"] == ["rdt", "control"]
    for preset in list_presets():
        assert what_is_trained(task, preset) == reference, preset


@pytest.mark.parametrize("line", ["model:\n  attention: mha\n", "train:\n  recipe: fixed\n",
                                  "tasks:\n  parity:\n    model: {train_loops: 3}\n", "models: [control]\n",
                                  "tasks:\n  parity:\n    seeds: [4]\n"])
def test_a_preset_that_sets_more_than_budgets_is_refused(line, tmp_path, monkeypatch):
    shutil.copytree(config.PRESET_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "drifted.yaml").write_text("seeds: [0]\n" + line)
    monkeypatch.setattr(config, "PRESET_DIR", tmp_path)
    with pytest.raises(ConfigError, match="is not a budget") as err:
        resolve_run_config("parity", "drifted")
    assert "drifted.yaml" in str(err.value)
    resolve_run_config("parity", "quick")  # the real presets still load from the copied folder
