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
    loops_run: int | None = None  # loops computed by sweep_loops (fewer than T after a fixed point)


@dataclass
class _LoopStats:
    """What one loop adds to the output besides its readout."""

    change: Tensor  # [B] relative state change (see _relative_change)
    load: Tensor | None  # [n_experts] routed fraction, mean over the MoE layers; None without MoE
    auxes: list[Tensor]  # the MoE layers' weighted balance losses


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

    def carried(self) -> tuple[Tensor, ...]:
        """Everything a loop passes to the next besides the state (`step` replaces, never mutates, these)."""
        return self.halted, self.cum, self.acc, self.steps, self.remainder


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
        h, act, inject = self._start(tokens)
        stats, readouts = [], []
        for t in range(T):
            with torch.set_grad_enabled(torch.is_grad_enabled() and t >= no_grad_loops):
                h, readout, loop_stats = self._loop(h, t, inject, act)
            stats.append(loop_stats)
            if all_loops or t == T - 1:
                readouts.append(readout)
        logits = self._coda(readouts)
        return self._output(logits if all_loops else logits[0], stats, act)

    def _start(self, tokens: Tensor) -> tuple[Tensor, ACT | None, Callable[[Tensor], Tensor]]:
        """What every pass starts from: the initial state, ACT's bookkeeping (or None) and the bound injection."""
        e = self._prelude(tokens)
        h = self._init_state(e)
        act = ACT(tokens.shape, h, self.cfg.act_threshold) if self.act is not None else None
        return h, act, self.injection.bind(e)

    @torch.inference_mode()
    def sweep_loops(self, tokens: Tensor, loops: int) -> RDTOutput:
        """Evaluation's loop sweep: forward_detailed(tokens, loops, all_loops=True), but each readout goes
        through the coda on its own, so logits[t - 1] is computed with exactly the operations and shapes of
        forward(tokens, loops=t): bit-identical to it.

        Exact shortcut: once a loop leaves everything it carries to the next loop bit-identical (the state h
        at every position of every sequence, and with ACT its bookkeeping, which stays put only when every
        position has halted), and the loop step no longer depends on the loop index (from
        `loop_invariant_from` on), every later loop recomputes the same bits. Its outputs (readout, logits,
        state change, expert load, aux loss) are then repeated rather than recomputed; `loops_run` says how
        many loops ran."""
        if loops < 1:
            raise ValueError(f"need loops >= 1, got {loops}")
        h, act, inject = self._start(tokens)
        stats, logits = [], []
        for t in range(loops):
            carried = (h, *act.carried()) if act is not None else (h,)
            h, readout, loop_stats = self._loop(h, t, inject, act)
            stats.append(loop_stats)
            logits.append(self._coda([readout])[0])
            after = (h, *act.carried()) if act is not None else (h,)
            if t >= self.loop_invariant_from() and all(map(_same_bits, carried, after)):
                break
        loops_run = len(stats)
        stats += [stats[-1]] * (loops - loops_run)
        logits += [logits[-1]] * (loops - loops_run)
        out = self._output(torch.stack(logits), stats, act)
        out.loops_run = loops_run
        return out

    def loop_invariant_from(self) -> int:
        """The first loop index from which the loop step is one and the same function of the carried state.
        Per-loop parts are indexed by min(loop, count - 1): the LoRA adapters (lora_max_loops) and, in an
        MoE recurrent block, the router's loop embedding and balance bias (router_max_loops). Injection,
        attention, ACT and the coda do not see the loop index."""
        first = 0
        if self.lora is not None:
            first = max(first, self.cfg.lora_max_loops - 1)
        if any(isinstance(block.ffn, MoE) for block in self.recurrent):
            first = max(first, self.cfg.router_max_loops - 1)
        return first

    def _prelude(self, tokens: Tensor) -> Tensor:
        e = self.embed(tokens)
        for block in self.prelude:
            e = block(e)
        return e

    def _loop(self, h: Tensor, t: int, inject: Callable[[Tensor], Tensor],
              act: ACT | None) -> tuple[Tensor, Tensor, _LoopStats]:
        """Loop t from state h: the next state (frozen where ACT halted), the coda's input after it, and
        the loop's statistics."""
        x = inject(h)
        layer_loads, auxes = [], []
        for i, block in enumerate(self.recurrent):
            x = block(x, loop=t, lora=None if self.lora is None else self.lora[i])
            if isinstance(block.ffn, MoE):
                layer_loads.append(block.ffn.load)
                if block.ffn.aux_loss is not None:
                    auxes.append(block.ffn.aux_loss)
        h_new = x.to(h.dtype)
        readout = h_new
        if act is not None:
            h_new = act.freeze(h, h_new)
            readout = act.step(h_new, torch.sigmoid(self.act(h_new.to(self.act.weight.dtype)).float())[..., 0])
        load = torch.stack(layer_loads).mean(0) if layer_loads else None
        return h_new, readout, _LoopStats(_relative_change(h, h_new), load, auxes)

    def _coda(self, readouts: list[Tensor]) -> Tensor:
        """[n, B, S, V] logits: one batched coda pass over n readouts of [B, S, d]."""
        x = torch.stack(readouts).flatten(0, 1)
        for block in self.coda:
            x = block(x)
        return self.head(x).unflatten(0, (len(readouts), readouts[0].shape[0]))

    @staticmethod
    def _output(logits: Tensor, stats: list[_LoopStats], act: ACT | None) -> RDTOutput:
        auxes = [aux for loop in stats for aux in loop.auxes]
        loads = [loop.load for loop in stats if loop.load is not None]
        changes = torch.stack([loop.change for loop in stats])
        zero = torch.zeros((), device=logits.device)
        return RDTOutput(
            logits=logits,
            aux_loss=torch.stack(auxes).mean() if auxes else zero,
            ponder_cost=act.ponder_cost() if act is not None else zero,
            halt_steps=act.steps if act is not None else None,
            state_change=changes.mean(1),
            seq_state_change=changes,
            expert_load=torch.stack(loads).detach() if loads else None,
        )

    def spectral_radius(self) -> float:
        """See Injection.spectral_radius: max Ā (< 1) for lti; 1.0 additive/none; ρ(W_h) for concat."""
        return self.injection.spectral_radius()

    def update_balance_bias(self) -> None:
        """DeepSeek-V3 aux-loss-free bias step for every MoE layer; call after optimizer.step()."""
        _update_balance_bias(self)


def _same_bits(a: Tensor, b: Tensor) -> bool:
    """Bit-identical tensors: torch.equal compares values, and -0.0 == 0.0 while nan != nan."""
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(
        a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


@torch.no_grad()
def _relative_change(h_old: Tensor, h_new: Tensor) -> Tensor:
    """[B]: ||h_new - h_old|| / ||h_old|| per sequence (norms over positions and width); from zero, 1.0."""
    diff = (h_new - h_old).flatten(1).norm(dim=1)
    base = h_old.flatten(1).norm(dim=1)
    base = torch.where(base > 0, base, h_new.flatten(1).norm(dim=1)).clamp_min(1e-12)
    return (diff / base).float()
