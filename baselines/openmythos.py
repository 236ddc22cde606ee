"""OpenMythos as a plugin: model family `openmythos` and baseline `openmythos` (the same sizes as the RDT).

    pip install --no-deps open-mythos        # optional; it pins an older torch, --no-deps keeps yours
    mythbench run parity --set 'baselines=[iso-param,iso-flop,openmythos]'
    mythbench bench --family rdt --family openmythos --set ...

The package is imported only when a model is built, so everything else works without it. The family
takes an RDT config whose switches are at the values OpenMythos hard-codes (FIXED; building it lists any
that differ); the baseline is the RDT's config with those switches set so, every size kept.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from baselines import register_baseline
from mythbench.errors import ConfigError
from mythbench.model import RDTConfig
from mythbench.registry import ModelFamily, register_family

INSTALL = "pip install --no-deps open-mythos"
# RDT switches with the one value OpenMythos supports (it starts the loop from the prelude output)
FIXED = {"recurrent_layers": 1, "ffn": "moe", "injection": "lti", "router": "softmax", "positional": "rope",
         "init_state": "embedding", "tie_embeddings": True}


def build_openmythos(cfg: RDTConfig) -> nn.Module:
    try:
        from baselines.openmythos_model import OpenMythosRDT
    except ImportError as err:
        raise ConfigError(f"model family openmythos needs the open-mythos package ({err}); {INSTALL}") from err
    return OpenMythosRDT(cfg)


def _same_sizes(cfg: RDTConfig) -> RDTConfig:
    """The RDT's sizes; an uncompressed query (q_latent_dim 0) becomes a latent as wide as the model."""
    return dataclasses.replace(cfg, **FIXED, q_latent_dim=cfg.q_latent_dim or cfg.d_model)


register_family("openmythos", ModelFamily(RDTConfig.from_dict, build_openmythos, looped=True))
register_baseline("openmythos", "openmythos", "openmythos",
                  f"OpenMythos' own model at the RDT's sizes (needs: {INSTALL})", _same_sizes)
