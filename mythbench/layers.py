"""Transformer pieces shared by the recurrent-depth model and the standard-transformer baselines.

Everything here is an ordinary pre-norm transformer part. What makes the RDT special (the loop, the
injection, ACT, per-loop LoRA) lives in model.py; blocks only take a `loop` index (for the MoE router)
and an optional per-loop `lora` so the same block works inside and outside the loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from mythbench.model import RDTConfig


def _linear(d_in: int, d_out: int, std: float) -> nn.Linear:
    """Bias-free linear layer with nanoGPT's N(0, std) init, done here so no global init pass is needed."""
    layer = nn.Linear(d_in, d_out, bias=False)
    nn.init.normal_(layer.weight, std=std)
    return layer


def resid_std(cfg: RDTConfig) -> float:
    """GPT-2 init for projections that write into the residual stream: std / sqrt(2 * layers)."""
    return cfg.init_std / math.sqrt(2 * cfg.n_layers)


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


class SwiGLU(nn.Module):
    """Dense gated FFN (Shazeer 2020)."""

    def __init__(self, d: int, hidden: int, std: float, out_std: float):
        super().__init__()
        self.gate, self.up, self.down = (
            _linear(d, hidden, std),
            _linear(d, hidden, std),
            _linear(hidden, d, out_std),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Experts(nn.Module):
    """n routed SwiGLU experts stored as stacked weights [n_experts, ...]. Dispatch is dropless: the (token,
    expert) assignments are sorted by expert and each expert multiplies exactly its own contiguous slice
    (one grouped matmul per weight), so no FLOPs go to padding and there is no Python loop over experts."""

    def __init__(self, n: int, d: int, hidden: int, std: float, out_std: float):
        super().__init__()
        self.w_gate = nn.Parameter(torch.randn(n, d, hidden) * std)
        self.w_up = nn.Parameter(torch.randn(n, d, hidden) * std)
        self.w_down = nn.Parameter(torch.randn(n, hidden, d) * out_std)

    def forward(self, x: Tensor, idx: Tensor, gates: Tensor, counts: Tensor | None = None) -> Tensor:
        """x [N, d]; idx, gates [N, k] -> sum_j gates[:, j] * expert_{idx[:, j]}(x), shape [N, d].
        counts: assignments per expert (bincount of idx), if the caller has it already."""
        n_exp, k = self.w_gate.shape[0], idx.shape[1]
        flat = idx.reshape(-1)
        order = torch.argsort(flat, stable=True)  # assignments sorted by expert: contiguous segments
        token = order // k
        if counts is None:
            counts = torch.bincount(flat, minlength=n_exp)
        xs, w_gate, w_up, w_down = _autocast(x[token], self.w_gate, self.w_up, self.w_down)
        mm = _grouped_mm if _grouped_mm_works(xs, w_gate) else _sliced_mm
        hidden = F.silu(mm(xs, w_gate, counts)) * mm(xs, w_up, counts)
        y = mm(hidden, w_down, counts) * gates.reshape(-1)[order, None].to(hidden.dtype)
        return x.new_zeros(x.shape).index_add(0, token, y.to(x.dtype))  # sum over k in x's dtype


def _grouped_mm_works(xs: Tensor, w: Tensor) -> bool:
    """PyTorch's grouped matmul runs on CPU in fp32, bf16 and fp16, not fp64 (on CUDA it wants bf16 and recent
    GPUs, so CUDA takes the sliced path), and needs rows that are multiples of 16 bytes."""
    return (xs.device.type == "cpu" and xs.dtype in (torch.float32, torch.bfloat16, torch.float16)
            and all(n * xs.element_size() % 16 == 0 for n in (xs.shape[1], w.shape[2])))


def _grouped_mm(xs: Tensor, w: Tensor, counts: Tensor) -> Tensor:
    """xs [M, d] in contiguous per-expert segments of `counts` rows; segment e times w[e]. No host sync."""
    return F.grouped_mm(xs, w, offs=torch.cumsum(counts, 0, dtype=torch.int32))


def _sliced_mm(xs: Tensor, w: Tensor, counts: Tensor) -> Tensor:
    """The same product as one matmul per expert on its exact slice (one host sync for the sizes)."""
    return torch.cat([seg @ w[e] for e, seg in enumerate(xs.split(counts.tolist()))])


def _autocast(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Cast to the autocast dtype when autocast is on: grouped_mm is not on autocast's op list, unlike bmm."""
    device = tensors[0].device.type
    if not torch.is_autocast_enabled(device):
        return tensors
    dtype = torch.get_autocast_dtype(device)
    return tuple(t.to(dtype) for t in tensors)


class MoE(nn.Module):
    """DeepSeekMoE FFN: n_shared_experts always-on experts (fused into one SwiGLU) plus top_k of n_experts
    fine-grained routed experts. The router input gets a learned per-loop embedding so each loop can pick
    different experts. Balance: a per-loop selection bias that never touches the gate values (DeepSeek-V3
    aux-loss-free, stepped by update_bias after each optimizer step) and/or an auxiliary loss. Unlike V3 the
    bias is added to the router logits, not the scores: a saturated softmax leaves the losing experts' scores
    all near 0, and a bias on scores then moves them in lockstep so every token herds to one of them.

    After every call `aux_loss` (already weighted, or None) and `load` ([n_experts] fraction of routed
    assignments) describe that call; the caller reads them right away."""

    _FP32_BUFFERS = ("expert_bias", "load_sum")

    def __init__(self, cfg: RDTConfig):
        super().__init__()
        d, self.n_experts, self.top_k = cfg.d_model, cfg.n_experts, cfg.top_k
        self.router_act, self.balancing, self.rate = cfg.router, cfg.balancing, cfg.bias_update_rate
        self.aux_weight = cfg.aux_loss_weight
        h, out_std = cfg.expert_hidden, resid_std(cfg)
        self.shared = (
            SwiGLU(d, cfg.n_shared_experts * h, cfg.init_std, out_std) if cfg.n_shared_experts else None
        )
        self.experts = Experts(cfg.n_experts, d, h, cfg.init_std, out_std)
        self.router = _linear(d, cfg.n_experts, cfg.init_std)
        self.router_loop = nn.Embedding(cfg.router_max_loops, d)
        nn.init.zeros_(self.router_loop.weight)
        self.register_buffer("expert_bias", torch.zeros(cfg.router_max_loops, cfg.n_experts))
        self.register_buffer("load_sum", torch.zeros(cfg.router_max_loops, cfg.n_experts), persistent=False)
        self.aux_loss: Tensor | None = None
        self.load: Tensor | None = None

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> MoE:
        """Keep the balance buffers fp32 through model.to(bfloat16): 1e-3 bias steps vanish in bf16."""
        kept = {n: self._buffers[n] for n in self._FP32_BUFFERS}
        super()._apply(fn, recurse)
        for n, b in kept.items():
            self._buffers[n] = b.to(device=self._buffers[n].device, dtype=torch.float32)
        return self

    def __getstate__(self) -> dict:
        """Per-call stats are not state; dropping them lets deepcopy/pickle work right after a forward."""
        return {**self.__dict__, "aux_loss": None, "load": None}

    def route(self, x: Tensor, loop: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """x [N, d] -> (idx [N, k], gates [N, k], scores [N, E]); router math in fp32 whatever the dtype."""
        t = min(loop, self.expert_bias.shape[0] - 1)
        logits = F.linear((x + self.router_loop.weight[t]).float(), self.router.weight.float())
        scores = logits.softmax(-1) if self.router_act == "softmax" else logits.sigmoid()
        select = logits + self.expert_bias[t] if self.balancing in ("bias", "both") else logits
        idx = select.topk(self.top_k, dim=-1).indices
        gates = scores.gather(-1, idx)
        if self.router_act == "sigmoid":  # DeepSeek-V3 normalises sigmoid gates; V2 keeps raw softmax gates
            gates = gates / gates.sum(-1, keepdim=True).clamp_min(1e-9)
        return idx, gates, scores

    def forward(self, x: Tensor, loop: int = 0) -> Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        idx, gates, scores = self.route(x, loop)
        counts = torch.bincount(idx.reshape(-1), minlength=self.n_experts)
        y = self.experts(x, idx, gates.to(x.dtype), counts)
        if self.shared is not None:
            y = y + self.shared(x)
        counts = counts.float()
        self.load = counts / idx.numel()
        if self.training:
            with torch.no_grad():
                self.load_sum[min(loop, self.load_sum.shape[0] - 1)] += counts
        self.aux_loss = None
        if self.balancing in ("aux", "both"):  # E * sum_i f_i P_i: 1 when balanced (DeepSeekMoE)
            probs = (scores / scores.sum(-1, keepdim=True).clamp_min(1e-9)).mean(0)
            self.aux_loss = self.aux_weight * self.n_experts * (self.load * probs).sum()
        return y.view(shape)

    @torch.no_grad()
    def update_bias(self) -> None:
        """One aux-loss-free step per loop index: raise under-loaded experts' bias, lower over-loaded ones."""
        if self.balancing in ("bias", "both"):
            seen = (self.load_sum.sum(-1, keepdim=True) > 0).float()
            error = self.load_sum.mean(-1, keepdim=True) - self.load_sum
            self.expert_bias += self.rate * error.sign() * seen
        self.load_sum.zero_()


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
