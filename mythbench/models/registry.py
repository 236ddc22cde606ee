"""Registries: model families and baselines are found by name, never imported by name from the harness.

`mythbench.tasks` and `mythbench.baselines` are plugin packages: importing them registers what they define.
Adding a task or a baseline touches those folders only. Third-party model families plug in the same way,
from a module that calls `register_family` (and `register_model` to be named in a run's `models:`), found
through the `mythbench.plugins` entry-point group of an installed package or named by import path in
the MYTHBENCH_PLUGINS environment variable (comma-separated). `mythbench.baselines.openmythos` is the first.
The one family this module names is the RDT itself, the model the benchmark is about.

Nothing here imports torch: a family is counted from its config (`count`) and its model module is imported
only when a model is built, so listing, describing and validating stay light.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mythbench.core.errors import ConfigError, known_hint
from mythbench.models.param_counts import ParamCounts, transformer_params
from mythbench.models.rdt_config import RDTConfig

if TYPE_CHECKING:
    from torch import nn

PLUGIN_PACKAGES = ("mythbench.tasks", "mythbench.baselines", "mythbench.baselines.openmythos")
PLUGIN_GROUP = "mythbench.plugins"
PLUGIN_ENV = "MYTHBENCH_PLUGINS"
MAX_MODEL_ELEMENTS = 2**30  # parameters and buffers of one model: 4 GiB in fp32


@dataclass(frozen=True)
class ModelFamily:
    """How to rebuild a model of this family from a plain config dict (as stored in a checkpoint), and how
    to count its parameters without building it (None: `accounting` builds it on the meta device)."""

    config_from_dict: Callable[[dict], Any]
    model_class: Callable[[Any], nn.Module]
    looped: bool  # evaluated over the loops axis, or once
    count: Callable[[Any], ParamCounts] | None = None


_FAMILIES: dict[str, ModelFamily] = {}


def register_family(name: str, family: ModelFamily) -> None:
    _FAMILIES[name] = family


def is_looped(name: str) -> bool:
    """The one answer to "is this model looped?": its registered family's `looped` (evaluated over loops)."""
    return get_family(name).looped


def get_family(name: str) -> ModelFamily:
    load_plugins()
    if name not in _FAMILIES:
        raise ConfigError(f"unknown model family {name!r}{known_hint(name, sorted(_FAMILIES))}")
    return _FAMILIES[name]


def size_problem(family: str, cfg: Any) -> str | None:
    """Why a model of `family` with this config is too large to build, or None: counted from the config where
    the family has a count, else on the meta device (which allocates nothing), so a card asking for terabytes
    is refused with the limit named."""
    fam = get_family(family)
    if fam.count is not None:
        counts = fam.count(cfg)
        elements = counts.embedding + counts.once + counts.recurrent
    else:
        import torch  # only for a plugin family without a count

        with torch.device("meta"):
            shape = fam.model_class(cfg)
        elements = sum(t.numel() for t in itertools.chain(shape.parameters(), shape.buffers()))
    if elements > MAX_MODEL_ELEMENTS:
        return f"the {family} model holds {elements:,} parameters; the limit is {MAX_MODEL_ELEMENTS:,}"
    return None


def instantiate(family: str, cfg: Any) -> nn.Module:
    """A model of `family` from its config object, once `size_problem` has no objection."""
    problem = size_problem(family, cfg)
    if problem is not None:
        raise ConfigError(problem)
    return get_family(family).model_class(cfg)


def build_model(family: str, config: dict) -> tuple[nn.Module, Any]:
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


def build_rdt(cfg: RDTConfig) -> nn.Module:
    """The RDT (models.model imports torch, so it is imported here, when a model is first built)."""
    from mythbench.models.model import RecurrentDepthTransformer

    return RecurrentDepthTransformer(cfg)


register_family("rdt", ModelFamily(RDTConfig.from_dict, build_rdt, looped=True, count=transformer_params))
