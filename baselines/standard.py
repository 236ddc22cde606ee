"""The standard transformer's layer plan: the RDT's building blocks as distinct layers, each run once, no loop.

Its config is an `RDTConfig` read as a layer plan: `prelude_layers` dense blocks, then `recurrent_layers`
blocks with the RDT's FFN choice (so an MoE RDT is compared with an MoE transformer), then `coda_layers`
dense blocks. Loop-only switches (injection, ACT, LoRA, loop counts) are ignored; `as_standard` sets them
to neutral values so a stored config says what the model is. The model itself (torch) is in
`standard_model.py`, imported when one is built.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from mythbench.models.param_counts import ParamCounts, transformer_params
from mythbench.models.rdt_config import RDTConfig

if TYPE_CHECKING:
    from mythbench.baselines.standard_model import StandardTransformer


def as_standard(cfg: RDTConfig, prelude: int, middle: int, coda: int, **changes: object) -> RDTConfig:
    """A standard-transformer plan with the given layer counts and the RDT's block hyper-parameters."""
    return dataclasses.replace(cfg, prelude_layers=prelude, recurrent_layers=middle, coda_layers=coda,
                               injection="lti", act=False, lora_rank=0, train_loops=1,
                               init_state="zeros", **changes)


def standard_params(cfg: RDTConfig) -> ParamCounts:
    """Every block once, none of the RDT's loop-only parts."""
    return transformer_params(cfg, looped=False)


def build_standard(cfg: RDTConfig) -> StandardTransformer:
    """The model (torch), imported when one is first built."""
    from mythbench.baselines.standard_model import StandardTransformer

    return StandardTransformer(cfg)
