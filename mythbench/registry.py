"""Registries: model families are found by name, never imported by name from the harness.

`tasks/` and `baselines/` are plugin packages: importing them registers what they define. Adding a task
or a baseline touches those folders only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from mythbench.errors import ConfigError

PLUGIN_PACKAGES = ("tasks", "baselines")


@dataclass(frozen=True)
class ModelFamily:
    """How to rebuild a model of this family from a plain config dict (as stored in a checkpoint)."""

    config_from_dict: Callable[[dict], Any]
    model_class: Callable[[Any], torch.nn.Module]
    looped: bool  # evaluated over the loops axis, or once


_FAMILIES: dict[str, ModelFamily] = {}


def register_family(name: str, family: ModelFamily) -> None:
    _FAMILIES[name] = family


def get_family(name: str) -> ModelFamily:
    load_plugins()
    if name not in _FAMILIES:
        raise ConfigError(f"model family {name!r} is unknown (known: {', '.join(sorted(_FAMILIES))})")
    return _FAMILIES[name]


def build_model(family: str, config: dict) -> tuple[torch.nn.Module, Any]:
    fam = get_family(family)
    cfg = fam.config_from_dict(config)
    return fam.model_class(cfg), cfg


def load_plugins() -> None:
    """Import the plugin packages once; they register their tasks, baselines and model families."""
    for package in PLUGIN_PACKAGES:
        importlib.import_module(package)


def _register_rdt() -> None:
    from mythbench.model import RDTConfig, RecurrentDepthTransformer

    register_family("rdt", ModelFamily(RDTConfig.from_dict, RecurrentDepthTransformer, looped=True))


_register_rdt()
