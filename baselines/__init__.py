"""Comparison models for an RDT, found by name: matched standard transformers and ablations.

Each entry maps an RDT config to (family, config, role). Adding a baseline means adding one line here
(and, for a new architecture, a model family registered below); they are registered in
`mythbench.models.registry`, and nothing else in `mythbench/` names them.
"""

from __future__ import annotations

from collections.abc import Callable

from mythbench.baselines.matching import ablation, iso_flop, iso_param
from mythbench.baselines.standard import as_standard, build_standard, standard_params

from mythbench.core.errors import ConfigError
from mythbench.models.baseline_registry import (
    build_baseline,
    describe_baselines,
    register_baseline,
    register_standard,
)
from mythbench.models.rdt_config import RDTConfig
from mythbench.models.registry import ModelFamily, register_family

register_family("standard", ModelFamily(RDTConfig.from_dict, build_standard, looped=False, count=standard_params))

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


# The matched standard transformers: what `mythbench describe` counts next to the RDT.
MATCHED = ("iso-param", "iso-flop")

for _name, (_family, _role, _description, _build) in BASELINES.items():
    register_baseline(_name, _family, _role, _description, _build, matched=_name in MATCHED)
# The scaling ladder's comparison model: the standard transformer with the RDT's distinct layers.
register_standard("standard", lambda rdt: as_standard(rdt, rdt.prelude_layers, rdt.recurrent_layers,
                                                       rdt.coda_layers))


def matched_baseline(cfg: RDTConfig, kind: str) -> RDTConfig:
    """The standard-transformer config matched to `cfg`: kind is "iso-param" or "iso-flop"."""
    if kind not in MATCHED:
        raise ConfigError(f"kind must be 'iso-param' or 'iso-flop', got {kind!r}")
    return build_baseline(kind, cfg)[1]


__all__ = ["BASELINES", "as_standard", "build_baseline", "register_baseline", "matched_baseline",
           "describe_baselines"]
