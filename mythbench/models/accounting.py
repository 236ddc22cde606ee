"""Parameter counts and FLOPs per token, for any model, by one function.

Parameters are classified by name (the models' documented prefixes):
  embedding  embed.*, head.proj.*         (lookups and the vocabulary projection)
  recurrent  recurrent.*, injection.*, act.*, lora.*   (applied on every loop of an RDT)
  once       everything else               (prelude, coda, final norm; every layer of a standard model)
Active counts scale routed experts (`experts.w_*`) by top_k / n_experts, and per-loop tables (depth-wise
LoRA adapters, router loop embeddings) by one row per loop. FLOPs are 2 per active matmul parameter per
token, plus attention's score and value products over the context, plus the vocabulary projection.
Training FLOPs follow Parcae's accounting: 6 N_once + 2 N_rec mu_rec + 4 N_rec mu_bwd (same for attention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mythbench.models import registry

RECURRENT_PREFIXES = ("recurrent.", "injection.", "act.", "lora.")
EMBEDDING_PREFIXES = ("embed.", "head.proj.")


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


def _active_fraction(name: str, cfg: Any) -> float:
    if ".experts.w_" in name or ".routed_experts." in name:  # stacked (mythbench) or one module per expert
        return cfg.top_k / cfg.n_experts
    if name.startswith("lora."):
        return 1.0 / cfg.lora_max_loops
    if ".router_loop." in name:
        return 1.0 / cfg.router_max_loops
    return 1.0


def _attention_flops(cfg: Any, context: int) -> float:
    """Score (q.k) and value (a.v) products per token per layer; causal attention sees half on average."""
    qk_dim = cfg.head_dim + (cfg.rope_head_dim if cfg.attention == "mla" else 0)
    span = context / 2 if cfg.causal else context
    return 2.0 * span * cfg.n_heads * (qk_dim + cfg.head_dim)


def count(model: nn.Module, loops: int | None = None, grad_loops: int | None = None,
          context: int | None = None, cfg: Any = None, looped: bool | None = None) -> Accounting:
    """Count `model` (an RDT or a standard transformer) at `loops` (default: its train_loops).

    grad_loops: loops with gradient in training (truncated backprop); default all of them.
    context: sequence length for attention FLOPs; default the model's max_seq_len.
    cfg, looped: the model's RDTConfig and whether it loops, for a plugin family's model (default:
    model.cfg, and its registered family's `looped`).
    """
    cfg = model.cfg if cfg is None else cfg
    looped = registry.family_of(model).looped if looped is None else looped
    loops = (cfg.train_loops if loops is None else loops) if looped else 1
    grad_loops = loops if grad_loops is None else min(grad_loops, loops)
    seen: set[int] = set()
    total = embedding = once = recurrent = 0
    active_once = active_rec = 0.0
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel()
        total += n
        if name.startswith(EMBEDDING_PREFIXES):
            embedding += n
        elif looped and name.startswith(RECURRENT_PREFIXES):
            recurrent += n
            active_rec += n * _active_fraction(name, cfg)
        else:
            once += n
            active_once += n * _active_fraction(name, cfg)
    attn = _attention_flops(cfg, context or cfg.max_seq_len)
    rec_layers = cfg.recurrent_layers if looped else 0
    once_layers = (cfg.prelude_layers + cfg.coda_layers) if looped else cfg.n_layers
    head = 2.0 * cfg.d_model * cfg.vocab_size
    f_once = 2.0 * active_once + once_layers * attn + head
    f_loop = 2.0 * active_rec + rec_layers * attn
    return Accounting(
        params_total=total, params_unique=total - embedding, params_active=round(active_once + active_rec),
        params_once=once, params_recurrent=recurrent,
        flops_forward=f_once + loops * f_loop,
        flops_train=3.0 * f_once + f_loop * (loops + 2.0 * grad_loops),
    )


def count_config(family: str, config: Any, **kwargs: Any) -> Accounting:
    """Count a model described by its family and config (builds it on the meta device: no memory)."""
    fam = registry.get_family(family)
    with torch.device("meta"):
        model = fam.model_class(config)
    return count(model, cfg=config, looped=fam.looped, **kwargs)

