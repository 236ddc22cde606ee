"""Parameter counts by role, from a config alone (no model is built, torch is never imported).

Roles follow the models' documented parameter-name prefixes:
  embedding  embed.*, head.proj.*         (lookups and the vocabulary projection)
  recurrent  recurrent.*, injection.*, act.*, lora.*   (applied on every loop of an RDT)
  once       everything else               (prelude, coda, final norm; every layer of a standard model)
Active counts take routed experts (`experts.w_*`) at top_k / n_experts, and per-loop tables (depth-wise
LoRA adapters, router loop embeddings) at one row per loop.

`transformer_params` is the count of the RDT and of the standard transformer (the same blocks, run once);
`measure_params` classifies a built model's parameters by those prefixes: the count of a plugin family
that registers no analytic one, and the reference the tests hold every analytic count to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mythbench.models.rdt_config import RDTConfig

RECURRENT_PREFIXES = ("recurrent.", "injection.", "act.", "lora.")
EMBEDDING_PREFIXES = ("embed.", "head.proj.")


@dataclass(frozen=True)
class ParamCounts:
    """Stored parameters by role (tied tensors once), and how many of them one token touches per pass."""

    embedding: int
    once: int
    recurrent: int
    active_once: float
    active_recurrent: float


def attention_params(cfg: RDTConfig) -> int:
    """One attention layer (models.layers.Attention or MLAttention)."""
    d, inner = cfg.d_model, cfg.n_heads * cfg.head_dim
    if cfg.attention == "mla":
        q_out = cfg.n_heads * (cfg.head_dim + cfg.rope_head_dim)
        ql = cfg.q_latent_dim
        query = d * ql + ql + ql * q_out if ql else d * q_out  # down, norm, up; or one projection
        latent = cfg.kv_latent_dim
        key_value = d * (latent + cfg.rope_head_dim) + latent + latent * 2 * inner  # down, norm, up
        return query + key_value + inner * d
    kv_heads = cfg.n_kv_heads if cfg.attention == "gqa" else cfg.n_heads
    return 2 * d * inner + 2 * d * kv_heads * cfg.head_dim


def _lora_shapes(cfg: RDTConfig) -> list[tuple[int, int]]:
    """(in, out) of the projections a recurrent block's depth-wise LoRA adapts (`lora_shapes` of its attention)."""
    d, inner = cfg.d_model, cfg.n_heads * cfg.head_dim
    if cfg.attention == "mla":
        query = cfg.q_latent_dim or cfg.n_heads * (cfg.head_dim + cfg.rope_head_dim)
        return [(d, query), (d, cfg.kv_latent_dim + cfg.rope_head_dim), (inner, d)]
    kv = (cfg.n_kv_heads if cfg.attention == "gqa" else cfg.n_heads) * cfg.head_dim
    return [(d, inner), (d, kv), (d, kv), (inner, d)]


def block_params(cfg: RDTConfig, moe: bool) -> tuple[int, int]:
    """(stored, active) of one TransformerBlock: norms, [short convolution,] attention, FFN."""
    d = cfg.d_model
    conv = d * cfg.conv_kernel + d * d + d if cfg.conv_kernel else 0  # depthwise kernel, projection, norm
    common = 2 * d + conv + attention_params(cfg)
    if not moe:
        dense = common + 3 * d * cfg.ffn_hidden
        return dense, dense
    expert = 3 * d * cfg.expert_hidden
    always = common + cfg.n_shared_experts * expert + d * cfg.n_experts  # shared experts, router
    return always + cfg.n_experts * expert + cfg.router_max_loops * d, always + cfg.top_k * expert + d


def transformer_params(cfg: RDTConfig, looped: bool = True) -> ParamCounts:
    """The RDT (looped) or the standard transformer (not looped: every block once, no loop-only parts)."""
    d = cfg.d_model
    embedding = cfg.vocab_size * d * (1 if cfg.tie_embeddings else 2)
    embedding += cfg.max_seq_len * d if cfg.positional == "learned" else 0
    dense, _ = block_params(cfg, moe=False)
    middle, middle_active = block_params(cfg, moe=cfg.ffn == "moe")
    outer = (cfg.prelude_layers + cfg.coda_layers) * dense + d  # the final norm
    stored, active = cfg.recurrent_layers * middle, cfg.recurrent_layers * middle_active
    if not looped:
        return ParamCounts(embedding, outer + stored, 0, outer + active, 0)
    injection = {"lti": 3 * d, "concat": 2 * d * d}.get(cfg.injection, 0)  # Ā, Δ, B vectors; or W[h; e]
    act = d + 1 if cfg.act else 0  # the halting head's weight and bias
    lora_one_loop = cfg.recurrent_layers * sum(cfg.lora_rank * (i + o) for i, o in _lora_shapes(cfg))
    return ParamCounts(embedding, outer, stored + injection + act + cfg.lora_max_loops * lora_one_loop,
                       outer, active + injection + act + lora_one_loop)


def _active_fraction(name: str, cfg: Any) -> float:
    if ".experts.w_" in name or ".routed_experts." in name:  # stacked (mythbench) or one module per expert
        return cfg.top_k / cfg.n_experts
    if name.startswith("lora."):
        return 1.0 / cfg.lora_max_loops
    if ".router_loop." in name:
        return 1.0 / cfg.router_max_loops
    return 1.0


def measure_params(model: Any, cfg: Any, looped: bool) -> ParamCounts:
    """Classify a built model's parameters by name (`named_parameters` yields a tied tensor once);
    `cfg` gives the active fractions."""
    embedding = once = recurrent = 0
    active_once = active_recurrent = 0.0
    for name, p in model.named_parameters():
        n = p.numel()
        if name.startswith(EMBEDDING_PREFIXES):
            embedding += n
        elif looped and name.startswith(RECURRENT_PREFIXES):
            recurrent += n
            active_recurrent += n * _active_fraction(name, cfg)
        else:
            once += n
            active_once += n * _active_fraction(name, cfg)
    return ParamCounts(embedding, once, recurrent, active_once, active_recurrent)
