"""Feed-forward parts shared by the RDT and the standard transformer: the dense SwiGLU, the dropless
DeepSeekMoE layer with its routed experts, and the init helpers every layer uses."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from mythbench.models.rdt_config import RDTConfig


def _linear(d_in: int, d_out: int, std: float) -> nn.Linear:
    """Bias-free linear layer with nanoGPT's N(0, std) init, done here so no global init pass is needed."""
    layer = nn.Linear(d_in, d_out, bias=False)
    nn.init.normal_(layer.weight, std=std)
    return layer


def resid_std(cfg: RDTConfig) -> float:
    """GPT-2 init for projections that write into the residual stream: std / sqrt(2 * layers)."""
    return cfg.init_std / math.sqrt(2 * cfg.n_layers)


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



def update_balance_bias(model: nn.Module) -> None:
    """DeepSeek-V3 aux-loss-free bias step for every MoE layer of `model`; call after optimizer.step()."""
    for m in model.modules():
        if isinstance(m, MoE):
            m.update_bias()
