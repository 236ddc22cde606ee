"""Parameter counts and FLOPs per token of any registered model family, from its config.

Parameters come from the family's analytic count (`ModelFamily.count`; see models/param_counts.py for
the roles), so counting never builds a model or imports torch; a plugin family without one is built on
the meta device and measured. FLOPs are 2 per active matmul parameter per token, plus attention's score
and value products over the context, plus the vocabulary projection. Training FLOPs follow Parcae's
accounting: 6 N_once + 2 N_rec mu_rec + 4 N_rec mu_bwd (same for attention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mythbench.models import registry
from mythbench.models.param_counts import ParamCounts, measure_params
from mythbench.models.rdt_config import A_MAX, LTI_INIT_DECAY, RDTConfig


@dataclass(frozen=True)
class Accounting:
    params_total: int  # every stored parameter, tied tensors once
    params_unique: int  # stored non-embedding parameters: what iso-param matching equalises
    params_active: int  # non-embedding parameters one token touches in one pass through each layer
    params_once: int  # stored non-embedding parameters applied once per token
    params_recurrent: int  # stored parameters of the looped part (0 for a standard transformer)
    flops_forward: float  # per token, at the model's training loop count
    flops_train: float  # per token, forward + backward with truncated backprop

    def params_dict(self) -> dict[str, int]:
        return {"total": self.params_total, "unique": self.params_unique, "active": self.params_active,
                "once": self.params_once, "recurrent": self.params_recurrent}

    def flops_dict(self) -> dict[str, float]:
        return {"forward": self.flops_forward, "train": self.flops_train}


def _attention_flops(cfg: Any, context: int) -> float:
    """Score (q.k) and value (a.v) products per token per layer; causal attention sees half on average."""
    qk_dim = cfg.head_dim + (cfg.rope_head_dim if cfg.attention == "mla" else 0)
    span = context / 2 if cfg.causal else context
    return 2.0 * span * cfg.n_heads * (qk_dim + cfg.head_dim)


def account(params: ParamCounts, cfg: Any, looped: bool, loops: int | None = None, grad_loops: int | None = None,
            context: int | None = None) -> Accounting:
    """Counts and FLOPs per token of a model with these parameters and config, at `loops` (default: its
    train_loops; 1 if not looped), `grad_loops` with gradient in training (truncated backprop; default all),
    attention over `context` positions (default: max_seq_len)."""
    loops = (cfg.train_loops if loops is None else loops) if looped else 1
    grad_loops = loops if grad_loops is None else min(grad_loops, loops)
    attn = _attention_flops(cfg, context or cfg.max_seq_len)
    rec_layers = cfg.recurrent_layers if looped else 0
    once_layers = (cfg.prelude_layers + cfg.coda_layers) if looped else cfg.n_layers
    head = 2.0 * cfg.d_model * cfg.vocab_size
    f_once = 2.0 * params.active_once + once_layers * attn + head
    f_loop = 2.0 * params.active_recurrent + rec_layers * attn
    return Accounting(
        params_total=params.embedding + params.once + params.recurrent,
        params_unique=params.once + params.recurrent,
        params_active=round(params.active_once + params.active_recurrent),
        params_once=params.once, params_recurrent=params.recurrent,
        flops_forward=f_once + loops * f_loop,
        flops_train=3.0 * f_once + f_loop * (loops + 2.0 * grad_loops),
    )


def param_counts(family: str, config: Any) -> ParamCounts:
    """The family's analytic count; a family that registers none is built on the meta device (no memory)."""
    fam = registry.get_family(family)
    if fam.count is not None:
        return fam.count(config)
    import torch  # only for a plugin family without an analytic count

    with torch.device("meta"):
        return measure_params(fam.model_class(config), config, fam.looped)


def count_config(family: str, config: Any, loops: int | None = None, grad_loops: int | None = None,
                 context: int | None = None) -> Accounting:
    """Count a model described by its family and config (see `account` for the keywords)."""
    looped = registry.get_family(family).looped
    return account(param_counts(family, config), config, looped, loops, grad_loops, context)


def spectral_radius_at_init(cfg: RDTConfig) -> float | None:
    """max Ā of a freshly built RDT (models.model.Injection.spectral_radius): A_MAX·exp(-1·LTI_INIT_DECAY)
    for lti, 1.0 (identity carry) for additive and none, None for concat (a random matrix at init)."""
    if cfg.injection == "lti":
        return A_MAX * math.exp(-LTI_INIT_DECAY)
    return None if cfg.injection == "concat" else 1.0

