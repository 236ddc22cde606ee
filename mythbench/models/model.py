"""The Recurrent-Depth Transformer: prelude (once) -> recurrent block (looped T times) -> coda (once).

One loop step, with e the prelude output and R the recurrent stack of residual blocks:

    u_t     = inject(h_t, e)        lti: Ā·h_t + B̄·e   additive: h_t + e   concat: W[h_t; e]   none: h_t
    h_{t+1} = R_t(u_t) = u_t + f_t(u_t)

so the block sees the injected state, and h_{t+1} = Ā·h_t + B̄·e + Block_t(h_t, e) with Block_t = f_t∘inject.
The state h is kept in fp32 (or wider) whatever the weights' dtype, and Ā is computed in fp32 from the
parameters and bounded by 1 - 1e-4, so ρ(Ā) < 1 holds in every dtype. The readout after loop t (the coda's
input) is h_t, or with ACT the halting-weighted mean of h_1..h_t.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mythbench.models.ffn import update_balance_bias as _update_balance_bias
from mythbench.models.layers import Embedder, LMHead, LoRA, MoE, TransformerBlock
from mythbench.models.rdt_config import A_MAX, LTI_INIT_DECAY, RDTConfig


@dataclass
class RDTOutput:
    logits: Tensor  # [B, S, V], or [T, B, S, V] with all_loops
    aux_loss: Tensor  # scalar, MoE balance loss already multiplied by aux_loss_weight (0 if none)
    ponder_cost: Tensor  # scalar, unweighted mean over positions of N + R (0 if ACT off)
    halt_steps: Tensor | None  # [B, S] loop (1-based) at which each position halted, T if never; None w/o ACT
    state_change: Tensor  # [T] mean over batch of ||h_t - h_{t-1}|| / ||h_{t-1}|| (1.0 from a zero state)
    expert_load: Tensor | None  # [T, n_experts] routed-assignment fraction per loop, mean over MoE layers
    seq_state_change: Tensor | None = None  # [T, B] the same per sequence (per-instance early exit)


class Injection(nn.Module):
    """Mixes the state with the prelude output before the recurrent block (see the module docstring).

    lti: Ā = (1 - 1e-4)·exp(-Δ·exp(A_log)), Δ = softplus(dt), B̄ = Δ·B, all diagonal (B a vector, init ones =
    identity). Computed in fp32 from the parameters whatever their dtype; exp(A_log) is capped at e^30 so
    extreme parameters give Ā in [0, 1 - 1e-4] and never NaN. Init: Δ = 1, Ā = exp(-0.5) ≈ 0.61."""

    def __init__(self, cfg: RDTConfig):
        super().__init__()
        self.kind, d = cfg.injection, cfg.d_model
        if self.kind == "lti":
            self.A_log = nn.Parameter(torch.full((d,), math.log(LTI_INIT_DECAY)))
            self.dt = nn.Parameter(torch.full((d,), math.log(math.e - 1)))  # softplus(dt) = 1
            self.B = nn.Parameter(torch.ones(d))
        elif self.kind == "concat":  # Huginn's adapter; default init keeps the h -> h map contractive at init
            self.proj = nn.Linear(2 * d, d, bias=False)

    def lti(self) -> tuple[Tensor, Tensor]:
        """(Ā, B̄) in fp32."""
        delta = F.softplus(self.dt.float())
        a_bar = A_MAX * torch.exp(-delta * torch.exp(self.A_log.float().clamp(max=30.0)))
        return a_bar, delta * self.B.float()

    def bind(self, e: Tensor) -> Callable[[Tensor], Tensor]:
        """h -> forward(h, e) for a fixed e, with the loop-invariant part (Ā, B̄·e) computed once per pass
        and one fused op per loop for lti."""
        if self.kind != "lti":
            return lambda h: self(h, e)
        a_bar, b_bar = self.lti()
        b_e = b_bar * e
        return lambda h: torch.addcmul(b_e, a_bar, h)

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        if self.kind == "lti":
            a_bar, b_bar = self.lti()
            return a_bar * h + b_bar * e
        if self.kind == "additive":
            return h + e
        if self.kind == "concat":
            w = self.proj.weight
            return self.proj(torch.cat([h.to(w.dtype), e.to(w.dtype)], dim=-1)).to(h.dtype)
        return h

    def spectral_radius(self) -> float:
        """Spectral radius of the linear part of h_t -> u_t, the carry the residual stack passes on:
        lti: max Ā (< 1 by construction); additive and none: 1.0 (identity carry, u_t = h_t (+ e));
        concat: max |eigenvalue| of the h-half of W, a learned matrix NOT bounded below 1."""
        if self.kind == "lti":
            return float(self.lti()[0].detach().max())
        if self.kind == "concat":
            w_h = self.proj.weight.detach().float()[:, : self.proj.in_features // 2]
            return float(torch.linalg.eigvals(w_h).abs().max())
        return 1.0


class ACT:
    """Adaptive computation time bookkeeping (Graves 2016) for one forward pass.

    p_t is the halting probability at loop t. A position halts at the first N with sum_{t<=N} p_t >=
    threshold; its weights are p_t for t < N and the remainder R = 1 - sum_{t<N} p_t at N. A run truncated
    at T puts the remainder on T, so the weights sum to 1 for every T, and the readout after loop t
    (`step`'s return) is exactly what a run of t loops would produce. Halted positions freeze (`freeze`)."""

    def __init__(self, shape: tuple[int, int], like: Tensor, threshold: float):
        self.threshold = threshold
        self.halted = torch.zeros(shape, dtype=torch.bool, device=like.device)
        self.cum = torch.zeros(shape, dtype=torch.float32, device=like.device)  # sum of weights so far
        self.acc = torch.zeros_like(like)  # sum of weight * state so far
        self.steps = torch.zeros(shape, dtype=torch.float32, device=like.device)  # N
        self.remainder = torch.zeros(shape, dtype=torch.float32, device=like.device)  # R

    def freeze(self, h_old: Tensor, h_new: Tensor) -> Tensor:
        return torch.where(self.halted[..., None], h_old, h_new)

    def step(self, h: Tensor, p: Tensor) -> Tensor:
        """Take the (frozen) state after this loop and its halting probability; return the readout."""
        running = ~self.halted
        rest = 1.0 - self.cum
        readout = torch.where(running[..., None], self.acc + rest[..., None] * h, self.acc)
        stop = running & (self.cum + p >= self.threshold)
        weight = torch.where(stop, rest, p) * running
        self.acc = self.acc + weight[..., None] * h
        self.cum = self.cum + weight
        self.remainder = torch.where(running, rest, self.remainder)  # last step's remainder if truncated here
        self.steps = self.steps + running.float()
        self.halted = self.halted | stop
        return readout

    def ponder_cost(self) -> Tensor:
        return (self.steps + self.remainder).mean()


class RecurrentDepthTransformer(nn.Module):
    """Parameter prefixes: embed., prelude., recurrent., coda., head., injection., lora., act.
    Routed expert weights are `recurrent.<i>.ffn.experts.w_*`, stacked with leading dim n_experts."""

    def __init__(self, cfg: RDTConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = Embedder(cfg)
        self.prelude = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.prelude_layers))
        self.recurrent = nn.ModuleList(
            TransformerBlock(cfg, moe=cfg.ffn == "moe") for _ in range(cfg.recurrent_layers)
        )
        self.coda = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.coda_layers))
        self.head = LMHead(cfg)
        if cfg.tie_embeddings:
            self.head.proj.weight = self.embed.tok.weight
        self.injection = Injection(cfg)
        self.lora = (
            nn.ModuleList(
                LoRA(b.attn.lora_shapes(), cfg.lora_rank, cfg.lora_max_loops) for b in self.recurrent
            )
            if cfg.lora_rank
            else None
        )
        self.act = None
        if cfg.act:  # zero weight; bias so that every position halts at loop train_loops + 1 at init
            self.act = nn.Linear(cfg.d_model, 1)
            nn.init.zeros_(self.act.weight)
            nn.init.constant_(self.act.bias, -math.log(cfg.train_loops))  # sigmoid = 1 / (train_loops + 1)

    def forward(self, tokens: Tensor, loops: int | None = None, all_loops: bool = False) -> Tensor:
        return self.forward_detailed(tokens, loops, all_loops).logits

    def _init_state(self, e: Tensor) -> Tensor:
        dtype = torch.promote_types(e.dtype, torch.float32)
        if self.cfg.init_state == "embedding":
            return e.to(dtype)
        if (
            self.cfg.init_state == "random"
        ):  # Huginn-style; draws from the global RNG at the embedding's scale
            return torch.randn(e.shape, dtype=dtype, device=e.device) * self.cfg.init_std
        return torch.zeros(e.shape, dtype=dtype, device=e.device)

    def forward_detailed(
        self, tokens: Tensor, loops: int | None = None, all_loops: bool = False, grad_loops: int | None = None
    ) -> RDTOutput:
        """Run T = loops (default train_loops) loops. all_loops: apply coda + head to the readout after every
        loop in this one pass. grad_loops=k: the first T - k loops run under no_grad (truncated backprop)."""
        T = self.cfg.train_loops if loops is None else loops
        if T < 1 or (grad_loops is not None and grad_loops < 0):
            raise ValueError(f"need loops >= 1 and grad_loops >= 0, got loops={T}, grad_loops={grad_loops}")
        no_grad_loops = 0 if grad_loops is None else max(T - grad_loops, 0)
        e = self.embed(tokens)
        for block in self.prelude:
            e = block(e)
        h = self._init_state(e)
        act = ACT(tokens.shape, h, self.cfg.act_threshold) if self.act is not None else None
        readouts, changes, loads, auxes = [], [], [], []
        inject = self.injection.bind(e)
        for t in range(T):
            with torch.set_grad_enabled(torch.is_grad_enabled() and t >= no_grad_loops):
                x = inject(h)
                layer_loads = []
                for i, block in enumerate(self.recurrent):
                    x = block(x, loop=t, lora=None if self.lora is None else self.lora[i])
                    if isinstance(block.ffn, MoE):
                        layer_loads.append(block.ffn.load)
                        if block.ffn.aux_loss is not None:
                            auxes.append(block.ffn.aux_loss)
                if layer_loads:
                    loads.append(torch.stack(layer_loads).mean(0))
                h_new = x.to(h.dtype)
                if act is not None:
                    h_new = act.freeze(h, h_new)
                    readout = act.step(
                        h_new, torch.sigmoid(self.act(h_new.to(self.act.weight.dtype)).float())[..., 0]
                    )
                else:
                    readout = h_new
                changes.append(_relative_change(h, h_new))
                h = h_new
                if all_loops or t == T - 1:
                    readouts.append(readout)
        x = torch.stack(readouts).flatten(0, 1)  # [n * B, S, d]: one batched coda pass for every readout
        for block in self.coda:
            x = block(x)
        logits = self.head(x).unflatten(0, (len(readouts), tokens.shape[0]))
        zero = torch.zeros((), device=tokens.device)
        return RDTOutput(
            logits=logits if all_loops else logits[0],
            aux_loss=torch.stack(auxes).mean() if auxes else zero,
            ponder_cost=act.ponder_cost() if act is not None else zero,
            halt_steps=act.steps if act is not None else None,
            state_change=torch.stack(changes).mean(1),
            seq_state_change=torch.stack(changes),
            expert_load=torch.stack(loads).detach() if loads else None,
        )

    def spectral_radius(self) -> float:
        """See Injection.spectral_radius: max Ā (< 1) for lti; 1.0 additive/none; ρ(W_h) for concat."""
        return self.injection.spectral_radius()

    def update_balance_bias(self) -> None:
        """DeepSeek-V3 aux-loss-free bias step for every MoE layer; call after optimizer.step()."""
        _update_balance_bias(self)


@torch.no_grad()
def _relative_change(h_old: Tensor, h_new: Tensor) -> Tensor:
    """[B]: ||h_new - h_old|| / ||h_old|| per sequence (norms over positions and width); from zero, 1.0."""
    diff = (h_new - h_old).flatten(1).norm(dim=1)
    base = h_old.flatten(1).norm(dim=1)
    base = torch.where(base > 0, base, h_new.flatten(1).norm(dim=1)).clamp_min(1e-12)
    return (diff / base).float()
