"""OpenMythos as a plugin: model family `openmythos` and looped model `openmythos` (the RDT's sizes).

    pip install --no-deps open-mythos        # optional; it pins an older torch, --no-deps keeps yours
    mythbench run parity --set 'models=[rdt,openmythos]'
    mythbench bench parity --family rdt --family openmythos --set ...

The package is imported only when a model is built, so everything else works without it. The family
takes an RDT config whose switches are at the values OpenMythos hard-codes (FIXED; building it lists any
that differ); the model `openmythos` is the RDT's config with those switches set so, every size kept.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from mythbench.core.errors import ConfigError
from mythbench.models.baseline_registry import register_model
from mythbench.models.param_counts import ParamCounts, attention_params
from mythbench.models.rdt_config import RDTConfig
from mythbench.models.registry import ModelFamily, register_family

if TYPE_CHECKING:
    from torch import nn

INSTALL = "pip install --no-deps open-mythos"
# RDT switches with the one value OpenMythos supports (it starts the loop from the prelude output)
FIXED = {"recurrent_layers": 1, "ffn": "moe", "injection": "lti", "router": "softmax", "positional": "rope",
         "init_state": "embedding", "tie_embeddings": True}


def problems(cfg: RDTConfig) -> list[str]:
    """Why OpenMythos cannot build a model at `cfg` (empty if it can)."""
    out = [f"openmythos: {k} must be {v!r}, got {getattr(cfg, k)!r}" for k, v in FIXED.items()
           if getattr(cfg, k) != v]
    if cfg.attention not in ("mla", "gqa"):
        out.append(f"openmythos: attention must be mla or gqa, got {cfg.attention!r}")
    if cfg.attention == "mla" and cfg.q_latent_dim == 0:
        out.append("openmythos: q_latent_dim must be > 0 (its MLA always compresses the query)")
    return out


def build_openmythos(cfg: RDTConfig) -> nn.Module:
    try:  # the optional package, imported only here
        from mythbench.baselines.openmythos_model import OpenMythosRDT
    except ImportError as err:
        raise ConfigError(f"model family openmythos needs the open-mythos package ({err}); {INSTALL}") from err
    if problems(cfg):
        raise ConfigError(problems(cfg))
    return OpenMythosRDT(cfg)


def openmythos_params(cfg: RDTConfig) -> ParamCounts:
    """OpenMythos' parameters at `cfg` (open_mythos.main, as `mythos_config` sets it up), counted without the
    package. Its attention is ours (MLA always with a query latent); its dense FFN is 4/3 d wide, its shared
    experts top_k routed experts wide, its LoRA one shared pair with a per-loop scale; the loop's norm,
    injection, ACT head and LoRA are under `recurrent.`, the head is tied to the embedding."""
    if problems(cfg):
        raise ConfigError(problems(cfg))
    d, rank = cfg.d_model, max(cfg.lora_rank, 1)
    common = 2 * d + attention_params(cfg)  # a block: two norms and attention
    dense = common + 3 * d * (d * 4 // 3)
    expert = 3 * d * cfg.expert_hidden
    moe = common + d * cfg.n_experts + cfg.n_shared_experts * cfg.top_k * expert  # router, shared experts
    loop_parts = d + (2 * d + 1) + (d + 1) + (2 * d * rank + cfg.lora_max_loops * rank)  # norm, LTI, ACT, LoRA
    outer = (cfg.prelude_layers + cfg.coda_layers) * dense + d  # the final norm
    recurrent = moe + cfg.n_experts * expert + loop_parts
    return ParamCounts(cfg.vocab_size * d, outer, recurrent, outer, moe + cfg.top_k * expert + loop_parts)


def _same_sizes(cfg: RDTConfig) -> RDTConfig:
    """The RDT's sizes; an uncompressed query (q_latent_dim 0) becomes a latent as wide as the model."""
    return dataclasses.replace(cfg, **FIXED, q_latent_dim=cfg.q_latent_dim or cfg.d_model)


register_family("openmythos", ModelFamily(RDTConfig.from_dict, build_openmythos, looped=True,
                                          count=openmythos_params))
register_model("openmythos", "openmythos", "openmythos",
                  f"OpenMythos' own model at the RDT's sizes (needs: {INSTALL})", _same_sizes)
