"""The registry of what a run trains: looped models derived from the run's `model:` config, and the twins
every looped model gets.

A *looped model* is a registered model family at a config derived from the run's `model:` config: `rdt` (the
config itself, the model under test), the positive control, each ablation, a plugin's model. A run names
them in `models:`; `a+b` applies b's change to a's model (`control+no-injection`: the control without
re-injection). A *twin* is a non-looped model built from one looped model's own config (its attention, FFN,
positions and convolution), matched to it (iso-param, iso-FLOP); a run gives each looped model the twins in
`twins:`, named `<model>-<kind>`. `mythbench.baselines` registers the built-in ones; plugins add theirs with
`register_model` and `register_twin` (see `mythbench.models.registry` for how plugins are found). The harness
builds them by name only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mythbench.core.errors import ConfigError, known_hint
from mythbench.models.rdt_config import RDTConfig
from mythbench.models.registry import load_plugins

Builder = Callable[[RDTConfig], Any]
TwinBuilder = Callable[[str, Any], Any]  # (the looped model's family, its config) -> the twin's config


@dataclass(frozen=True)
class LoopedModel:
    """A looped model a run may name: `build(model_cfg)` is its family's config."""

    family: str
    role: str
    description: str
    build: Builder


@dataclass(frozen=True)
class Twin:
    """A non-looped model matched to a looped one: `build(family, cfg)` is its family's config."""

    family: str
    description: str
    build: TwinBuilder


# name -> entry, in registration order (the order `mythbench ls` lists them)
_MODELS: dict[str, LoopedModel] = {}
_TWINS: dict[str, Twin] = {}
_STANDARD: list[tuple[str, Builder]] = []  # the registered matched-standard builder (at most one)


def register_model(name: str, family: str, role: str, description: str, build: Builder) -> None:
    """Add a looped model (a family at a config derived from the run's `model:`) that `models:` may name."""
    _MODELS[name] = LoopedModel(family, role, description, build)


def register_twin(kind: str, family: str, description: str, build: TwinBuilder) -> None:
    """Add a kind of twin that `twins:` may name, built for every looped model of a run."""
    _TWINS[kind] = Twin(family, description, build)


def looped_model(name: str, model_cfg: RDTConfig) -> tuple[str, Any, str]:
    """(family, config, role) of the looped model `name` (`a+b`: b's change applied to a's model)."""
    load_plugins()  # plugins may add models
    parts = name.split("+")
    unknown = [p for p in parts if p not in _MODELS]
    if unknown:
        raise ConfigError([f"unknown model {p!r}{known_hint(p, _MODELS)} (known: {', '.join(_MODELS)}; "
                           "join two with '+')" for p in unknown])
    family, config, role = "rdt", model_cfg, "rdt"
    for part in parts:
        entry = _MODELS[part]
        family, config, role = entry.family, entry.build(config), entry.role
    return family, config, role


def twin_kinds() -> list[str]:
    load_plugins()
    return list(_TWINS)


def twin_model(kind: str, family: str, config: Any) -> tuple[str, Any]:
    """(family, config) of the `kind` twin of the looped model (`family`, `config`)."""
    load_plugins()
    if kind not in _TWINS:
        raise ConfigError(f"unknown twin {kind!r}{known_hint(kind, _TWINS)} (known: {', '.join(_TWINS)})")
    twin = _TWINS[kind]
    return twin.family, twin.build(family, config)


def twin_name(model: str, kind: str) -> str:
    """What a twin is called in run directories, results, tables and plots."""
    return f"{model}-{kind}"


def describe_models() -> list[str]:
    load_plugins()
    return [f"{name:<14} {m.description}" for name, m in _MODELS.items()]


def describe_twins() -> list[str]:
    load_plugins()
    return [f"{kind:<14} {t.description}" for kind, t in _TWINS.items()]


def register_standard(family: str, build: Builder) -> None:
    """Register how to build the standard transformer with an RDT's distinct layers (the scaling ladder's
    comparison model, Parcae's pairing): `build(rdt_cfg)` is that family's config."""
    _STANDARD[:] = [(family, build)]


def matched_standard(rdt_cfg: RDTConfig) -> tuple[str, Any]:
    """(family, config) of the standard transformer with `rdt_cfg`'s distinct layers, from its plugin."""
    load_plugins()
    if not _STANDARD:
        raise ConfigError("no standard-transformer family is registered (the baselines plugin provides it)")
    family, build = _STANDARD[0]
    return family, build(rdt_cfg)


register_model("rdt", "rdt", "rdt", "the RDT under test: the run's `model:` config itself", lambda cfg: cfg)
