"""The training loop: one model, one seed, resumable from its last checkpoint.

Every batch and every sampled loop count is a pure function of (data seed, step), so a run killed at any
point and resumed from its checkpoint sees exactly the batches an uninterrupted run sees, and the RDT and
its baselines train on identical examples.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from tqdm import tqdm

from mythbench.config import TrainConfig
from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_bytes, atomic_write_json
from mythbench.training import distributed
from mythbench.training.fastpath import maybe_compile
from mythbench.training.train_checkpoint import Checkpoint, load_latest, save_checkpoint

TRAIN_STATE = "train_state.pt"
WEIGHTS = "model.safetensors"
WEIGHTS_DIGEST = WEIGHTS + ".sha256"  # the final weights' content hash, checked before every use
DIGEST_BYTES = 100  # a sha256 hex digest and a newline; no more of the digest file is read


@dataclass
class TrainOutcome:
    status: str  # "complete" | "diverged"
    steps: int
    tokens: int
    final_loss: float | None
    wall_time_s: float
    # the intra-op threads it trained with (the config's `threads`): float summation order depends on it
    torch_threads: int = field(default_factory=torch.get_num_threads)

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "tokens": self.tokens, "final_loss": self.final_loss,
                "wall_time_s": round(self.wall_time_s, 3), "torch_threads": self.torch_threads}


def step_rng(seed: int, step: int, stream: int) -> np.random.Generator:
    """Independent, reproducible randomness per (seed, step, purpose)."""
    return np.random.default_rng([seed, step, stream])


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to min_lr_ratio * lr."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def difficulty_for_step(step: int, difficulties: list[int], cfg: TrainConfig, seed: int) -> int:
    """Uniform over the training difficulties; with a curriculum, the easiest ones first."""
    ordered = sorted(difficulties)
    if cfg.curriculum_fraction > 0:
        ramp = min(1.0, (step + 1) / (cfg.curriculum_fraction * cfg.steps))
        ordered = ordered[: max(1, math.ceil(ramp * len(ordered)))]
    return int(step_rng(seed, step, 0).choice(ordered))


def loop_schedule(step: int, difficulty: int, train_loops: int, cfg: TrainConfig,
                  seed: int) -> tuple[int, int | None]:
    """(loops, grad_loops) for this step; grad_loops=None means backprop through every loop."""
    rng = step_rng(seed, step, 1)
    if cfg.recipe == "parcae":  # Poisson(mu_rec), gradient through the last mu_bwd (Prairie et al.)
        loops = max(1, int(rng.poisson(train_loops)))
        return loops, min(cfg.bwd_loops, loops)
    if cfg.recipe == "huginn":  # Poisson-lognormal with mean train_loops (Geiping et al.)
        rate = rng.lognormal(math.log(train_loops) - cfg.huginn_sigma**2 / 2, cfg.huginn_sigma)
        loops = max(1, int(rng.poisson(rate)))
        return loops, min(cfg.bwd_loops, loops)
    if cfg.recipe == "tied":  # loops grow with the instance (Fan et al.), optionally jittered upwards
        base = tied_loops(difficulty, cfg)
        return int(rng.integers(base, math.ceil(base * (1 + cfg.loop_jitter)) + 1)), None
    return train_loops, None


def tied_loops(difficulty: int, cfg: TrainConfig) -> int:
    """The tied recipe's loop count for an instance of this difficulty: the depth it is trained to need."""
    return max(1, math.ceil(cfg.loops_per_difficulty * difficulty))


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits[mask].float(), targets[mask])


def readout_task_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, first: int) -> torch.Tensor:
    """Mean task loss over the readouts after loops first..T of an all-loops pass ([T, B, S, V] logits)."""
    return torch.stack([masked_loss(r, targets, mask) for r in logits[first - 1:]]).mean()


def training_loss(forward: Callable[..., Any], tokens: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                  loops: int, grad_loops: int | None, cfg: TrainConfig, step: int, seed: int,
                  ponder_weight: float, difficulty: int = 0, looped: bool = True) -> torch.Tensor:
    """Task loss + MoE auxiliary loss + ACT ponder cost, plus the DT-nets progressive term if asked. The
    terms over loops (tail of readouts, progressive) apply to looped models only: a model without a loop
    axis would compute the same loss twice."""
    progressive = looped and cfg.uses_progressive and loops > 1
    weight = cfg.progressive_alpha if progressive else 0.0
    loss = torch.zeros((), device=tokens.device)
    if weight < 1:  # at weight 1 the plain pass would not count: skip it
        if cfg.readout_loss == "tail" and looped:
            out = forward(tokens, loops=loops, grad_loops=grad_loops, all_loops=True)
            task_loss = readout_task_loss(out.logits, targets, mask, min(loops, tied_loops(difficulty, cfg)))
        else:
            out = forward(tokens, loops=loops, grad_loops=grad_loops)
            task_loss = masked_loss(out.logits, targets, mask)
        loss = (1 - weight) * (task_loss + out.aux_loss + ponder_weight * out.ponder_cost)
    if progressive:
        # Bansal et al.: n loops without gradient, then k with; the loss is on the output after n + k.
        rng = step_rng(seed, step, 2)
        n = int(rng.integers(0, loops))
        k = int(rng.integers(1, loops - n + 1))
        prog = forward(tokens, loops=n + k, grad_loops=k)
        loss = loss + weight * (masked_loss(prog.logits, targets, mask) + prog.aux_loss
                                + ponder_weight * prog.ponder_cost)
    return loss


def weights_bytes(model: torch.nn.Module) -> bytes:
    # clone: safetensors refuses tensors that share storage (tied embeddings)
    return save_safetensors({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()})


def load_weights(model: torch.nn.Module, path: Path, data: bytes | None = None) -> None:
    """Load safetensors weights (from `data` if given); anything else is reported as what it is."""
    try:
        model.load_state_dict(load_safetensors(Path(path).read_bytes() if data is None else data))
    except SafetensorError as e:
        raise ConfigError(f"{path}: not a valid safetensors file ({e})") from None
    except RuntimeError as e:  # a valid file whose tensors do not fit this model
        raise ConfigError(f"{path}: weights do not fit the model in config.json "
                          f"({str(e).splitlines()[0]})") from None


def save_final_weights(ckpt_dir: Path, model: torch.nn.Module) -> None:
    """The trained model, for `mythbench eval` and re-scoring, with its sha256 beside it. The digest is written
    first: a kill between the two leaves weights that do not match it, which are refused, never trusted."""
    data = weights_bytes(model)
    atomic_write_bytes(ckpt_dir / WEIGHTS_DIGEST, (hashlib.sha256(data).hexdigest() + "\n").encode())
    atomic_write_bytes(ckpt_dir / WEIGHTS, data)


def read_final_weights(ckpt_dir: Path) -> bytes:
    """The final weights of `ckpt_dir`, once they match their sha256; ConfigError naming the file if not."""
    path, digest_path = ckpt_dir / WEIGHTS, ckpt_dir / WEIGHTS_DIGEST
    try:
        with open(digest_path, "rb") as f:
            want = f.read(DIGEST_BYTES).decode(errors="replace").strip()
    except FileNotFoundError:
        raise ConfigError(f"{digest_path}: missing, so {WEIGHTS} cannot be checked (weights written before "
                          "checksums, or not by mythbench: retrain)") from None
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != want:
        raise ConfigError(f"{path}: does not match its checksum in {WEIGHTS_DIGEST} (damaged or replaced)")
    return data


def _save_state(ckpt_dir: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int,
                tokens: int, losses: list[float], elapsed: float) -> None:
    buf = io.BytesIO()
    torch.save({"step": step, "tokens": tokens, "losses": losses, "elapsed": elapsed,
                "optimizer": opt.state_dict()}, buf)
    save_checkpoint(ckpt_dir, step, {WEIGHTS: weights_bytes(model), TRAIN_STATE: buf.getvalue()})


def _restore(found: Checkpoint, model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[int, int, list, float]:
    """Load a checkpoint into model and optimiser; (step, tokens, losses, elapsed). Its files match their
    checksums, so one that does not load was not written by this code: refuse it, never guess."""
    load_weights(model, found.path / WEIGHTS, found.files[WEIGHTS])
    where = found.path / TRAIN_STATE
    try:
        state = torch.load(io.BytesIO(found.files[TRAIN_STATE]), weights_only=True)
        opt.load_state_dict(state["optimizer"])
        out = int(state["step"]), int(state["tokens"]), [float(x) for x in state["losses"]], float(state["elapsed"])
    except Exception as e:  # untrusted bytes: any failure (an unpickling refusal included) means the same
        raise ConfigError([f"{where}: not a training state mythbench wrote, refused "
                           f"({type(e).__name__}: {' '.join(str(e).split())[:200]})",
                           f"delete {found.path} to resume from an earlier checkpoint or start over"]) from None
    if out[0] != found.step:
        raise ConfigError(f"{where}: holds step {out[0]}, but its checkpoint is step {found.step}")
    return out


def train_model(model: torch.nn.Module, sample_batch: Callable[[int, int, int], tuple[np.ndarray, ...]],
                difficulties: list[int], cfg: TrainConfig, seed: int, ckpt_dir: Path,
                device: str = "cpu", train_loops: int = 1, ponder_weight: float = 0.0,
                desc: str = "train", looped: bool = True) -> TrainOutcome:
    """Train (or resume training) `model`; `sample_batch(difficulty, n, seed)` gives tokens, targets, mask.
    Under torchrun each rank trains on its shard of every batch (see mythbench.training.distributed); rank 0 saves."""
    parallel = distributed.current()
    difficulties = cfg.trained_difficulties(difficulties)
    if not difficulties:
        raise ConfigError(f"train.max_difficulty: {cfg.max_difficulty} is below every training difficulty")
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    start, tokens, losses, elapsed = 0, 0, [], 0.0
    found = load_latest(ckpt_dir, {WEIGHTS, TRAIN_STATE})
    if found is not None:
        start, tokens, losses, elapsed = _restore(found, model, opt)
    # compile the method the loss calls (torch.compile(model) would only wrap `forward`)
    compute_loss = parallel.loss(model, maybe_compile(model.forward_detailed, cfg.compile),
                                 functools.partial(training_loss, looped=looped))
    t0 = time.perf_counter() - elapsed
    model.train()
    bar = tqdm(range(start, cfg.steps), desc=desc, initial=start, total=cfg.steps, leave=False,
               mininterval=1.0, dynamic_ncols=True)
    for step in bar:
        difficulty = difficulty_for_step(step, difficulties, cfg, seed)
        batch = sample_batch(difficulty, cfg.batch_size, seed * 1_000_003 + step)
        tok, tgt, msk = (torch.as_tensor(a, device=device) for a in parallel.shard(batch))
        loops, grad_loops = loop_schedule(step, difficulty, train_loops, cfg, seed)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = compute_loss(tok, tgt, msk, loops, grad_loops, cfg, step, seed, ponder_weight, difficulty)
            loss = loss * parallel.loss_weight(msk)
        batch_loss = parallel.batch_loss(loss)
        if not math.isfinite(batch_loss):
            return TrainOutcome("diverged", step, tokens, None, time.perf_counter() - t0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if hasattr(model, "update_balance_bias"):
            parallel.sync_balance_counts(model)
            model.update_balance_bias()
        tokens += tok.numel() * parallel.world  # the shards are equal (distributed.check)
        losses.append(batch_loss)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", tok_s=f"{tokens / (time.perf_counter() - t0):.0f}",
                        refresh=False)
        if parallel.is_main and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
            _save_state(ckpt_dir, model, opt, step + 1, tokens, losses, time.perf_counter() - t0)
    if not all(torch.isfinite(p).all() for p in model.parameters()):  # the last step can diverge too
        return TrainOutcome("diverged", cfg.steps, tokens, None, time.perf_counter() - t0)
    save_final_weights(ckpt_dir, model)
    final = float(np.mean(losses[-20:])) if losses else None
    return TrainOutcome("complete", cfg.steps, tokens, final, time.perf_counter() - t0)


def recorded_losses(ckpt_dir: Path) -> list[float]:
    """The per-step training losses stored with the latest complete checkpoint in `ckpt_dir`."""
    found = load_latest(ckpt_dir, {WEIGHTS, TRAIN_STATE})
    if found is None:
        raise ConfigError(f"{ckpt_dir}: no complete checkpoint")
    return [float(x) for x in torch.load(io.BytesIO(found.files[TRAIN_STATE]), weights_only=True)["losses"]]


def write_model_card(ckpt_dir: Path, family: str, model_config: dict, extra: dict) -> None:
    """`config.json` beside the weights: enough to rebuild the model for `mythbench eval`."""
    atomic_write_json(ckpt_dir / "config.json", {"family": family, "model_config": model_config, **extra})

