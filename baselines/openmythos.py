"""OpenMythos as a plugin: model family `openmythos` and looped model `openmythos` (the RDT's sizes).

    pip install --no-deps open-mythos        # optional; it pins an older torch, --no-deps keeps yours
    mythbench run parity --set 'models=[rdt,openmythos]'
    mythbench bench --family rdt --family openmythos --set ...

The package is imported only when a model is built, so everything else works without it. The family
takes an RDT config whose switches are at the values OpenMythos hard-codes (FIXED; building it lists any
that differ); the model `openmythos` is the RDT's config with those switches set so, every size kept.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from mythbench.core.errors import ConfigError
from mythbench.models.baseline_registry import register_model
from mythbench.models.model import RDTConfig
from mythbench.models.registry import ModelFamily, register_family

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


def _same_sizes(cfg: RDTConfig) -> RDTConfig:
    """The RDT's sizes; an uncompressed query (q_latent_dim 0) becomes a latent as wide as the model."""
    return dataclasses.replace(cfg, **FIXED, q_latent_dim=cfg.q_latent_dim or cfg.d_model)


register_family("openmythos", ModelFamily(RDTConfig.from_dict, build_openmythos, looped=True))
register_model("openmythos", "openmythos", "openmythos",
                  f"OpenMythos' own model at the RDT's sizes (needs: {INSTALL})", _same_sizes)
