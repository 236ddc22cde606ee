"""The built-in looped models (the positive control and the ablations) and the twins (matched standard
transformers), found by name.

A looped model maps the run's `model:` config to (family, config, role); a twin maps a looped model's
(family, config) to a standard transformer's config. Adding one means adding one line here (and, for a new
architecture, a model family registered below); they are registered in `mythbench.models.baseline_registry`,
and nothing else in `mythbench/` names them.
"""

from __future__ import annotations

from collections.abc import Callable

from mythbench.baselines.matching import ablation, iso_flop, iso_param
from mythbench.baselines.standard import as_standard, build_standard, standard_params

from mythbench.core.errors import ConfigError
from mythbench.models.baseline_registry import register_model, register_standard, register_twin, twin_model
from mythbench.models.rdt_config import RDTConfig
from mythbench.models.registry import ModelFamily, register_family

register_family("standard", ModelFamily(RDTConfig.from_dict, build_standard, looped=False, count=standard_params))

# The positive control differs from the RDT under test in these fields only (same width, layers, injection
# and loop count). Position enters only through a short convolution, which is the same at every length,
# as DT-nets' convolutions; docs/tuning.md has the experiments behind each choice.
CONTROL = {"attention": "mha", "ffn": "dense", "lora_rank": 0, "act": False, "positional": "none", "conv_kernel": 3}

# name -> (family, role, description, builder from the config it changes)
MODELS: dict[str, tuple[str, str, str, Callable[[RDTConfig], RDTConfig]]] = {
    "control": ("rdt", "control", "positive control: a plain looped transformer (MHA, dense FFN, no positions, a "
                "short convolution, LTI injection, no LoRA or ACT), the simplest design expected to extrapolate",
                ablation(**CONTROL)),
    "no-injection": ("rdt", "ablation:no-injection", "without input re-injection (Universal Transformer style)",
                     ablation(injection="none", init_state="embedding")),
    "additive": ("rdt", "ablation:additive", "additive injection h + e (rho = 1)", ablation(injection="additive")),
    "concat": ("rdt", "ablation:concat", "Huginn's concat adapter Linear([h; e])", ablation(injection="concat")),
    "act-no-ponder": ("rdt", "ablation:act-no-ponder", "ACT halting and no ponder cost",
                      ablation(act=True, ponder_weight=0.0)),
    "no-lora": ("rdt", "ablation:no-lora", "without depth-wise LoRA", ablation(lora_rank=0)),
    "dense": ("rdt", "ablation:dense", "a dense SwiGLU FFN instead of MoE", ablation(ffn="dense")),
}
# kind -> (description, builder from the looped model's family and config)
TWINS: dict[str, tuple[str, Callable[[str, RDTConfig], RDTConfig]]] = {
    "iso-param": ("standard transformer, the looped model's blocks and distinct layers, same unique parameters "
                  "(within 2%)", iso_param),
    "iso-flop": ("standard transformer, the looped model's blocks, its loop unrolled, same forward FLOPs/token "
                 "(within 5%)", iso_flop),
}

for _name, (_family, _role, _description, _build) in MODELS.items():
    register_model(_name, _family, _role, _description, _build)
for _kind, (_description, _twin) in TWINS.items():
    register_twin(_kind, "standard", _description, _twin)
# The scaling ladder's comparison model: the standard transformer with the RDT's distinct layers.
register_standard("standard", lambda rdt: as_standard(rdt, rdt.prelude_layers, rdt.recurrent_layers,
                                                       rdt.coda_layers))


def matched_baseline(cfg: RDTConfig, kind: str, family: str = "rdt") -> RDTConfig:
    """The twin of the looped model (`family` at `cfg`): kind is "iso-param" or "iso-flop"."""
    if kind not in TWINS:
        raise ConfigError(f"kind must be one of {', '.join(TWINS)}, got {kind!r}")
    return twin_model(kind, family, cfg)[1]


__all__ = ["CONTROL", "MODELS", "TWINS", "as_standard", "matched_baseline"]
