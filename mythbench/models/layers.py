"""Transformer pieces shared by the recurrent-depth model and the standard-transformer baselines.

Everything here is an ordinary pre-norm transformer part. What makes the RDT special (the loop, the
injection, ACT, per-loop LoRA) lives in model.py; blocks only take a `loop` index (for the MoE router)
and an optional per-loop `lora` so the same block works inside and outside the loop.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mythbench.models.ffn import MoE, SwiGLU, _linear, resid_std

if TYPE_CHECKING:
    from mythbench.models.rdt_config import RDTConfig


class RMSNorm(nn.Module):
    """RMSNorm computed in fp32. The output takes the weight's dtype, so an fp32 residual stream (the
    recurrent state) can feed bf16 weights without autocast."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.to(self.weight.dtype) * self.weight


class Rotary(nn.Module):
    """Rotary position embedding (half-split layout). Tables are built per call in fp32, so any sequence
    length works and a bf16 model keeps exact angles."""

    def __init__(self, dim: int, theta: float):
        super().__init__()
        self.dim, self.theta = dim, theta

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        """x: [..., S, dim]; position of row s is offset + s."""
        pos = torch.arange(offset, offset + x.shape[-2], device=x.device, dtype=torch.float32)
        inv_freq = self.theta ** (
            -torch.arange(0, self.dim, 2, device=x.device, dtype=torch.float32) / self.dim
        )
        angles = torch.outer(pos, inv_freq)
        cos, sin = angles.cos(), angles.sin()
        x1, x2 = x.float().chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)


class LoRA(nn.Module):
    """Depth-wise LoRA: one rank-r adapter per loop index for each named projection. Loop t uses adapter
    min(t, n_loops - 1), so loops beyond the last adapter share it. B starts at zero: no change at init."""

    def __init__(self, shapes: dict[str, tuple[int, int]], rank: int, n_loops: int):
        super().__init__()
        self.n_loops = n_loops
        self.A = nn.ParameterDict(
            {n: nn.Parameter(torch.randn(n_loops, rank, i) / math.sqrt(i)) for n, (i, _) in shapes.items()}
        )
        self.B = nn.ParameterDict(
            {n: nn.Parameter(torch.zeros(n_loops, o, rank)) for n, (_, o) in shapes.items()}
        )

    def forward(self, name: str, x: Tensor, loop: int) -> Tensor:
        t = min(loop, self.n_loops - 1)
        return (x @ self.A[name][t].T) @ self.B[name][t].T


def _proj(layer: nn.Linear, name: str, x: Tensor, loop: int, lora: LoRA | None) -> Tensor:
    return layer(x) if lora is None else layer(x) + lora(name, x, loop)


class Attention(nn.Module):
    """Multi-head attention; with attention='gqa' each of n_kv_heads K/V heads serves a group of queries."""

    def __init__(self, cfg: RDTConfig):
        super().__init__()
        d, self.n_heads, self.head_dim = cfg.d_model, cfg.n_heads, cfg.head_dim
        self.n_kv = cfg.n_kv_heads if cfg.attention == "gqa" else cfg.n_heads
        self.causal = cfg.causal
        self.q = _linear(d, self.n_heads * self.head_dim, cfg.init_std)
        self.k = _linear(d, self.n_kv * self.head_dim, cfg.init_std)
        self.v = _linear(d, self.n_kv * self.head_dim, cfg.init_std)
        self.o = _linear(self.n_heads * self.head_dim, d, resid_std(cfg))
        self.rope = Rotary(self.head_dim, cfg.rope_theta) if cfg.positional == "rope" else None

    def lora_shapes(self) -> dict[str, tuple[int, int]]:
        return {
            n: (m.in_features, m.out_features)
            for n, m in [("q", self.q), ("k", self.k), ("v", self.v), ("o", self.o)]
        }

    def forward(self, x: Tensor, loop: int = 0, lora: LoRA | None = None) -> Tensor:
        B, S, _ = x.shape
        q = _proj(self.q, "q", x, loop, lora).view(B, S, self.n_heads, self.head_dim).transpose(1, 2)
        k = _proj(self.k, "k", x, loop, lora).view(B, S, self.n_kv, self.head_dim).transpose(1, 2)
        v = _proj(self.v, "v", x, loop, lora).view(B, S, self.n_kv, self.head_dim).transpose(1, 2)
        if self.rope is not None:
            q, k = self.rope(q), self.rope(k)
        if self.n_kv != self.n_heads:
            k = k.repeat_interleave(self.n_heads // self.n_kv, dim=1)
            v = v.repeat_interleave(self.n_heads // self.n_kv, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return _proj(self.o, "o", y.transpose(1, 2).reshape(B, S, -1), loop, lora)


def sdpa_narrow_values(q: Tensor, k: Tensor, v: Tensor, **kwargs: Any) -> Tensor:
    """Attention whose values are narrower than its queries and keys (MLA's rope dims are on q and k only).
    PyTorch's fused SDPA kernels need one head dim for q, k and v; otherwise it falls back to the math path,
    which materialises the score matrix (`benchmarks/bench_attention.py` measures the difference).
    Zero-padding v to the q/k width is exact: the padded output columns are 0 and are sliced off."""
    pad = q.shape[-1] - v.shape[-1]
    if pad <= 0:
        return F.scaled_dot_product_attention(q, k, v, **kwargs)
    return F.scaled_dot_product_attention(q, k, F.pad(v, (0, pad)), **kwargs)[..., : v.shape[-1]]


class MLAttention(nn.Module):
    """Multi-head latent attention (DeepSeek-V2). Keys and values are up-projected from a low-rank latent
    c_kv; position enters only through a decoupled rope key of rope_head_dim computed from the input and
    shared by all heads. A decode cache therefore holds (c_kv, k_rope) per position, not per-head K/V.
    With q_latent_dim > 0 the query goes through its own low-rank latent too. The rope parts are rotated
    only when positional='rope'."""

    def __init__(self, cfg: RDTConfig):
        super().__init__()
        d, self.n_heads, self.head_dim, self.rope_dim = (
            cfg.d_model,
            cfg.n_heads,
            cfg.head_dim,
            cfg.rope_head_dim,
        )
        self.latent, self.causal = cfg.kv_latent_dim, cfg.causal
        q_out = self.n_heads * (self.head_dim + self.rope_dim)
        if cfg.q_latent_dim > 0:
            self.q = _linear(d, cfg.q_latent_dim, cfg.init_std)
            self.q_norm: nn.Module = RMSNorm(cfg.q_latent_dim, cfg.norm_eps)
            self.q_up: nn.Module = _linear(cfg.q_latent_dim, q_out, cfg.init_std)
        else:
            self.q = _linear(d, q_out, cfg.init_std)
            self.q_norm = self.q_up = nn.Identity()
        self.kv_down = _linear(d, self.latent + self.rope_dim, cfg.init_std)
        self.kv_norm = RMSNorm(self.latent, cfg.norm_eps)
        self.kv_up = _linear(self.latent, self.n_heads * 2 * self.head_dim, cfg.init_std)
        self.o = _linear(self.n_heads * self.head_dim, d, resid_std(cfg))
        self.rope = Rotary(self.rope_dim, cfg.rope_theta) if cfg.positional == "rope" else None

    def lora_shapes(self) -> dict[str, tuple[int, int]]:
        """Adapters go on the input projections (query, KV down-projection) and the output."""
        pairs = [("q", self.q), ("kv_down", self.kv_down), ("o", self.o)]
        return {n: (m.in_features, m.out_features) for n, m in pairs}

    def latent_kv(
        self, x: Tensor, loop: int = 0, lora: LoRA | None = None, offset: int = 0
    ) -> tuple[Tensor, Tensor]:
        """What a decode cache stores: c_kv [B, S, kv_latent_dim] and the shared rotated key [B, S, rope]."""
        c_kv, k_rope = _proj(self.kv_down, "kv_down", x, loop, lora).split(
            [self.latent, self.rope_dim], dim=-1
        )
        return c_kv, (k_rope if self.rope is None else self.rope(k_rope, offset))

    def attend(
        self,
        x: Tensor,
        c_kv: Tensor,
        k_rope: Tensor,
        loop: int = 0,
        lora: LoRA | None = None,
        offset: int = 0,
    ) -> Tensor:
        """Queries from x (positions offset..offset+S-1) attend over the latent cache (positions 0..)."""
        B, S, _ = x.shape
        H, hd, L = self.n_heads, self.head_dim, c_kv.shape[1]
        q = self.q_up(self.q_norm(_proj(self.q, "q", x, loop, lora)))
        q_nope, q_rope = (
            q.view(B, S, H, hd + self.rope_dim).transpose(1, 2).split([hd, self.rope_dim], dim=-1)
        )
        if self.rope is not None:
            q_rope = self.rope(q_rope, offset)
        k_nope, v = (
            self.kv_up(self.kv_norm(c_kv)).view(B, L, H, 2 * hd).transpose(1, 2).split([hd, hd], dim=-1)
        )
        k = torch.cat([k_nope, k_rope.unsqueeze(1).expand(B, H, L, self.rope_dim)], dim=-1)
        q = torch.cat([q_nope, q_rope], dim=-1)
        if self.causal and (offset or S != L):  # decoding: query offset+i sees keys 0..offset+i
            mask = torch.ones(S, L, dtype=torch.bool, device=x.device).tril(diagonal=offset)
            y = sdpa_narrow_values(q, k, v, attn_mask=mask)
        else:
            y = sdpa_narrow_values(q, k, v, is_causal=self.causal)
        return _proj(self.o, "o", y.transpose(1, 2).reshape(B, S, -1), loop, lora)

    def forward(self, x: Tensor, loop: int = 0, lora: LoRA | None = None) -> Tensor:
        c_kv, k_rope = self.latent_kv(x, loop, lora)
        return self.attend(x, c_kv, k_rope, loop, lora)


class ShortConv(nn.Module):
    """Depthwise convolution over positions, then a linear map: each position reads its neighbours'
    states with the same weights at every position and length (causal: the kernel - 1 previous ones;
    bidirectional: centred). Padding is zeros, so the first positions see nothing before them."""

    def __init__(self, cfg: RDTConfig):
        super().__init__()
        k = cfg.conv_kernel
        self.pad = (k - 1, 0) if cfg.causal else ((k - 1) // 2, k // 2)
        self.weight = nn.Parameter(torch.randn(cfg.d_model, 1, k) / math.sqrt(k))
        self.proj = _linear(cfg.d_model, cfg.d_model, resid_std(cfg))

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv1d(F.pad(x.transpose(1, 2), self.pad), self.weight.to(x.dtype), groups=x.shape[-1])
        return self.proj(y.transpose(1, 2))


class TransformerBlock(nn.Module):
    """Pre-norm [short convolution +] attention + FFN. `loop` picks the router's loop embedding; `lora`
    adds per-loop adapters."""

    def __init__(self, cfg: RDTConfig, moe: bool = False):
        super().__init__()
        self.conv = ShortConv(cfg) if cfg.conv_kernel else None
        self.conv_norm = RMSNorm(cfg.d_model, cfg.norm_eps) if cfg.conv_kernel else None
        self.attn_norm, self.ffn_norm = RMSNorm(cfg.d_model, cfg.norm_eps), RMSNorm(cfg.d_model, cfg.norm_eps)
        self.attn: Attention | MLAttention = MLAttention(cfg) if cfg.attention == "mla" else Attention(cfg)
        self.ffn: MoE | SwiGLU = (
            MoE(cfg) if moe else SwiGLU(cfg.d_model, cfg.ffn_hidden, cfg.init_std, resid_std(cfg))
        )

    def forward(self, x: Tensor, loop: int = 0, lora: LoRA | None = None) -> Tensor:
        if self.conv is not None:
            x = x + self.conv(self.conv_norm(x))
        x = x + self.attn(self.attn_norm(x), loop, lora)
        h = self.ffn_norm(x)
        return x + (self.ffn(h, loop) if isinstance(self.ffn, MoE) else self.ffn(h))


class Embedder(nn.Module):
    """Token embedding, plus learned absolute positions if positional='learned' (rope lives in attention)."""

    def __init__(self, cfg: RDTConfig):
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.normal_(self.tok.weight, std=cfg.init_std)
        self.pos = nn.Embedding(cfg.max_seq_len, cfg.d_model) if cfg.positional == "learned" else None
        if self.pos is not None:
            nn.init.normal_(self.pos.weight, std=cfg.init_std)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.tok(tokens)
        if self.pos is not None:
            if tokens.shape[1] > self.pos.num_embeddings:
                n = self.pos.num_embeddings
                raise ValueError(f"sequence length {tokens.shape[1]} > max_seq_len {n} (learned positions)")
            x = x + self.pos.weight[: tokens.shape[1]]
        return x


class LMHead(nn.Module):
    """Final norm + vocabulary projection. Tie by assigning head.proj.weight = embedder.tok.weight."""

    def __init__(self, cfg: RDTConfig):
        super().__init__()
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.proj = _linear(cfg.d_model, cfg.vocab_size, cfg.init_std)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.norm(x))
