"""The registry of baselines: comparison models for an RDT, each a registered model family at a config derived
from the RDT's. `mythbench.baselines` registers the built-in ones; plugins add theirs with `register_baseline`
(see `mythbench.models.registry` for how plugins are found). The harness builds them by name only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mythbench.core.errors import ConfigError, known_hint
from mythbench.models.rdt_config import RDTConfig
from mythbench.models.registry import load_plugins

Builder = Callable[[RDTConfig], RDTConfig]


@dataclass(frozen=True)
class Baseline:
    """A comparison model: a family at a config derived from the RDT's. `matched` baselines are the ones
    `mythbench describe` counts next to the RDT (the matched standard transformers)."""

    family: str
    role: str
    description: str
    build: Builder
    matched: bool = False


# name -> Baseline, in registration order (the order `mythbench describe` lists them)
_BASELINES: dict[str, Baseline] = {}
_STANDARD: list[tuple[str, Builder]] = []  # the registered matched-standard builder (at most one)


def register_baseline(name: str, family: str, role: str, description: str, build: Builder,
                      matched: bool = False) -> None:
    """Add a baseline (a plugin's model family at a config derived from the RDT's) to `mythbench run`."""
    _BASELINES[name] = Baseline(family, role, description, build, matched)


def build_baseline(name: str, rdt_cfg: RDTConfig) -> tuple[str, Any, str]:
    """(family, config, role) of baseline `name` matched to `rdt_cfg`."""
    load_plugins()  # plugins may add baselines
    if name not in _BASELINES:
        raise ConfigError(f"unknown baseline {name!r}{known_hint(name, _BASELINES)}")
    b = _BASELINES[name]
    return b.family, b.build(rdt_cfg), b.role


def matched_names() -> list[str]:
    load_plugins()
    return [name for name, b in _BASELINES.items() if b.matched]


def describe_baselines() -> list[str]:
    load_plugins()
    return [f"{name:<14} {b.description}" for name, b in _BASELINES.items()]


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
