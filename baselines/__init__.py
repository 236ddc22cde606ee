"""Comparison models for an RDT, found by name: matched standard transformers and ablations.

Each entry maps an RDT config to (family, config, role). Adding a baseline means adding one line here
(and, for a new architecture, a model family registered below); nothing in `mythbench/` names them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from baselines.matching import ablation, iso_flop, iso_param
from baselines.standard import StandardTransformer, as_standard
from mythbench.errors import ConfigError
from mythbench.model import RDTConfig
from mythbench.registry import ModelFamily, load_plugins, register_family

register_family("standard", ModelFamily(RDTConfig.from_dict, StandardTransformer, looped=False))

# The positive control differs from the RDT under test in these fields only (same width, layers, injection
# and loop count). Position enters only through a short convolution, which is the same at every length,
# as DT-nets' convolutions; docs/tuning.md has the experiments behind each choice.
CONTROL = {"attention": "mha", "ffn": "dense", "lora_rank": 0, "act": False, "positional": "none", "conv_kernel": 3}

# name -> (family, role, description, builder)
BASELINES: dict[str, tuple[str, str, str, Callable[[RDTConfig], RDTConfig]]] = {
    "iso-param": ("standard", "iso-param", "standard transformer, same unique parameters (within 2%)",
                  iso_param),
    "iso-flop": ("standard", "iso-flop", "standard transformer, same forward FLOPs/token (within 5%)",
                 iso_flop),
    "control": ("rdt", "control", "positive control: a plain looped transformer (MHA, dense FFN, no positions, a "
                "short convolution, LTI injection, no LoRA or ACT), the simplest design expected to extrapolate",
                ablation(**CONTROL)),
    "no-injection": ("rdt", "ablation:no-injection", "RDT without input re-injection (Universal "
                     "Transformer style)", ablation(injection="none", init_state="embedding")),
    "additive": ("rdt", "ablation:additive", "RDT with additive injection h + e (rho = 1)",
                 ablation(injection="additive")),
    "concat": ("rdt", "ablation:concat", "RDT with Huginn's concat adapter Linear([h; e])",
               ablation(injection="concat")),
    "act-no-ponder": ("rdt", "ablation:act-no-ponder", "RDT with ACT halting and no ponder cost",
                      ablation(act=True, ponder_weight=0.0)),
    "no-lora": ("rdt", "ablation:no-lora", "RDT without depth-wise LoRA", ablation(lora_rank=0)),
    "dense": ("rdt", "ablation:dense", "RDT with a dense SwiGLU FFN instead of MoE", ablation(ffn="dense")),
}


def register_baseline(name: str, family: str, role: str, description: str,
                      build: Callable[[RDTConfig], RDTConfig]) -> None:
    """Add a baseline (a plugin's model family at a config derived from the RDT's) to `mythbench run`."""
    BASELINES[name] = (family, role, description, build)


def build_baseline(name: str, rdt_cfg: RDTConfig) -> tuple[str, RDTConfig, str]:
    """(family, config, role) of baseline `name` matched to `rdt_cfg`."""
    load_plugins()  # plugins may add baselines
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})")
    family, role, _, build = BASELINES[name]
    return family, build(rdt_cfg), role


def matched_baseline(cfg: RDTConfig, kind: str) -> RDTConfig:
    """The standard-transformer config matched to `cfg`: kind is "iso-param" or "iso-flop"."""
    if kind not in ("iso-param", "iso-flop"):
        raise ConfigError(f"kind must be 'iso-param' or 'iso-flop', got {kind!r}")
    return build_baseline(kind, cfg)[1]


def all_matched(rdt_cfg: RDTConfig) -> dict[str, tuple[str, Any, str]]:
    """The RDT itself and its two matched standard transformers (what `mythbench describe` shows)."""
    out: dict[str, tuple[str, Any, str]] = {"rdt": ("rdt", rdt_cfg, "rdt")}
    for name in ("iso-param", "iso-flop"):
        out[name] = build_baseline(name, rdt_cfg)
    return out


def describe_baselines() -> list[str]:
    load_plugins()
    return [f"{name:<14} {desc}" for name, (_, _, desc, _) in BASELINES.items()]


__all__ = ["BASELINES", "StandardTransformer", "as_standard", "build_baseline", "register_baseline", "matched_baseline",
           "all_matched", "describe_baselines"]
