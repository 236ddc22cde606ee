"""Registries: model families and baselines are found by name, never imported by name from the harness.

`mythbench.tasks` and `mythbench.baselines` are plugin packages: importing them registers what they define.
Adding a task or a baseline touches those folders only. Third-party model families plug in the same way,
from a module that calls `register_family` (and `register_baseline` to be trained by `mythbench run`), found
through the `mythbench.plugins` entry-point group of an installed package or named by import path in
the MYTHBENCH_PLUGINS environment variable (comma-separated). `mythbench.baselines.openmythos` is the first.
The one family this module names is the RDT itself, the model the benchmark is about.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from mythbench.core.errors import ConfigError
from mythbench.models.model import RecurrentDepthTransformer
from mythbench.models.rdt_config import RDTConfig

PLUGIN_PACKAGES = ("mythbench.tasks", "mythbench.baselines", "mythbench.baselines.openmythos")
PLUGIN_GROUP = "mythbench.plugins"
PLUGIN_ENV = "MYTHBENCH_PLUGINS"
MAX_MODEL_ELEMENTS = 2**30  # parameters and buffers of one model: 4 GiB in fp32


@dataclass(frozen=True)
class ModelFamily:
    """How to rebuild a model of this family from a plain config dict (as stored in a checkpoint)."""

    config_from_dict: Callable[[dict], Any]
    model_class: Callable[[Any], torch.nn.Module]
    looped: bool  # evaluated over the loops axis, or once


_FAMILIES: dict[str, ModelFamily] = {}


def register_family(name: str, family: ModelFamily) -> None:
    _FAMILIES[name] = family


def is_looped(name: str) -> bool:
    """The one answer to "is this model looped?": its registered family's `looped` (evaluated over loops)."""
    return get_family(name).looped


def get_family(name: str) -> ModelFamily:
    load_plugins()
    if name not in _FAMILIES:
        raise ConfigError(f"model family {name!r} is unknown (known: {', '.join(sorted(_FAMILIES))})")
    return _FAMILIES[name]


def family_of(model: torch.nn.Module) -> ModelFamily:
    """The registered family whose model class `model` is an instance of."""
    load_plugins()
    for family in _FAMILIES.values():
        if isinstance(family.model_class, type) and isinstance(model, family.model_class):
            return family
    raise ConfigError(f"{type(model).__name__} is not the model class of a registered family; pass looped=")


def size_problem(family: str, cfg: Any) -> str | None:
    """Why a model of `family` with this config is too large to build, or None. It is counted on the meta
    device, which allocates nothing, so a card asking for terabytes is refused with the limit named."""
    with torch.device("meta"):
        shape = get_family(family).model_class(cfg)
    elements = sum(t.numel() for t in itertools.chain(shape.parameters(), shape.buffers()))
    if elements > MAX_MODEL_ELEMENTS:
        return f"the {family} model holds {elements:,} parameters and buffers; the limit is {MAX_MODEL_ELEMENTS:,}"
    return None


def instantiate(family: str, cfg: Any) -> torch.nn.Module:
    """A model of `family` from its config object, once `size_problem` has no objection."""
    problem = size_problem(family, cfg)
    if problem is not None:
        raise ConfigError(problem)
    return get_family(family).model_class(cfg)


def build_model(family: str, config: dict) -> tuple[torch.nn.Module, Any]:
    cfg = get_family(family).config_from_dict(config)
    return instantiate(family, cfg), cfg


@functools.cache
def _entry_point_modules() -> tuple[str, ...]:
    """Modules of installed packages' `mythbench.plugins` entry points (scanned once: it takes ~5 ms)."""
    from importlib.metadata import entry_points

    return tuple(ep.value.split(":")[0] for ep in entry_points(group=PLUGIN_GROUP))


def plugin_modules() -> list[str]:
    """Import paths of every plugin: the built-in packages, then entry points, then MYTHBENCH_PLUGINS."""
    named = [m.strip() for m in os.environ.get(PLUGIN_ENV, "").split(",") if m.strip()]
    return [*PLUGIN_PACKAGES, *_entry_point_modules(), *named]


def load_plugins() -> None:
    """Import every plugin module (once; Python caches imports); importing one registers what it defines."""
    for module in plugin_modules():
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"plugin {module!r} cannot be imported: {err}") from err


register_family("rdt", ModelFamily(RDTConfig.from_dict, RecurrentDepthTransformer, looped=True))
