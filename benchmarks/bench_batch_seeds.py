"""Several seeds as one batched model: one training step of S stacked copies against S solo steps.

    python benchmarks/bench_batch_seeds.py [--task parity] [--preset quick] [--config FILE] [--seeds 5]
                                           [--repeats 5] [--model control --model rdt] [--profile]

Issue 28, item 2. Each model of the run config (`mythbench run TASK --preset PRESET`) is built at seeds
0..S-1, and one training step (forward + backward + gradient clipping + AdamW) is timed two ways, one
after the other in this process, one intra-op thread:

- solo: the step `training.train.train_model` takes, on one model (the time of S seeds is S times this);
- stacked: the S copies' parameters stacked (`torch.func.stack_module_state`), the forward vmapped over
  the copy axis (`functional_call`), one backward, a per-copy clip and one AdamW over the stacked tensors.

A stacked step needs every copy at the same shape, so it is timed at shared (difficulty, loops,
grad_loops) points. In a real run each seed draws its own difficulty (sequence length) and loop counts
every step, so a batched step would have to pad every copy to the largest of them: `utilization` is the
mean over the run's steps of sum_s cost_s / (S * max_s cost_s), cost = sequence length x loops of the
step's forward, from the run's own schedules (`train.difficulty_for_step`, `loop_schedule` and the
progressive term's draws). The per-seed speedup a run could see is at most speedup x utilization.
`max |dw|`: seed 0's largest weight difference, stacked against solo, after the timed steps (float
reduction order). With --config of a scaling ladder, --model names its points (`rdt-w16-r8`). Results and
why batching was not built: docs/findings.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mythbench.tasks import get_task
from torch.func import functional_call, stack_module_state, vmap

from mythbench.config import RunConfig, resolve_run_config
from mythbench.experiments import scale
from mythbench.models import registry
from mythbench.training.plan import plan_models
from mythbench.training.train import difficulty_for_step, loop_schedule, masked_loss, step_rng, tied_loops


class Detailed(torch.nn.Module):
    """`functional_call` calls `forward`; the training loss needs the RDT's `forward_detailed`."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, **kwargs: object) -> object:
        return self.model.forward_detailed(tokens, **kwargs)


def vmappable_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`train.masked_loss` without boolean indexing (a data-dependent shape, which vmap refuses): the same
    mean, summed in another order."""
    per_token = F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten(), reduction="none")
    weights = mask.flatten().float()
    return (per_token * weights).sum() / weights.sum()


def forward_loss(forward: Callable[..., object], batch: tuple, loops: int, grad_loops: int,
                 loss_fn: Callable[..., torch.Tensor]) -> torch.Tensor:
    """One forward pass of the training loss at a fixed loop count (task loss + MoE auxiliary loss); the
    progressive term of `train.training_loss` is such a pass at its drawn (loops, grad_loops)."""
    tokens, targets, mask = batch
    out = forward(tokens, loops=loops, grad_loops=grad_loops)
    return loss_fn(out.logits, targets, mask) + out.aux_loss


def adamw(params: list[torch.Tensor], cfg: RunConfig, copy_axes: int) -> torch.optim.AdamW:
    """`train_model`'s optimizer: weight decay on the matrices only (dim >= 2 before the copy axes)."""
    decay = [p for p in params if p.dim() - copy_axes >= 2]
    no_decay = [p for p in params if p.dim() - copy_axes < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.train.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.train.lr, betas=(0.9, 0.95))


def solo_step(model: torch.nn.Module, batch: tuple, loops: int, grad_loops: int,
              cfg: RunConfig) -> Callable[[], None]:
    """The body of `train_model`'s loop for one model (lr schedule and bookkeeping left out)."""
    opt = adamw(list(model.parameters()), cfg, copy_axes=0)

    def step() -> None:
        loss = forward_loss(model.forward_detailed, batch, loops, grad_loops, masked_loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
    return step


def stacked_step(models: list[torch.nn.Module], batch: tuple, loops: int, grad_loops: int,
                 cfg: RunConfig) -> tuple[Callable[[], None], dict[str, torch.Tensor]]:
    """One step of S copies (vmapped forward, one backward, a per-copy gradient norm clip, one AdamW), and
    the stacked parameters it trains."""
    params, buffers = stack_module_state(models)
    template = Detailed(copy.deepcopy(models[0]))
    opt = adamw(list(params.values()), cfg, copy_axes=1)
    tokens, targets, mask = (torch.stack([t] * len(models)) for t in batch)

    def copy_loss(p: dict, b: dict, tok: torch.Tensor, tgt: torch.Tensor, msk: torch.Tensor) -> torch.Tensor:
        def forward(x: torch.Tensor, **kwargs: object) -> object:
            return functional_call(template, ({f"model.{k}": v for k, v in p.items()},
                                              {f"model.{k}": v for k, v in b.items()}), (x,), kwargs)
        return forward_loss(forward, (tok, tgt, msk), loops, grad_loops, vmappable_loss)

    batched_loss = vmap(copy_loss, randomness="different")

    def step() -> None:
        losses = batched_loss(params, buffers, tokens, targets, mask)
        for p in params.values():
            p.grad = None
        losses.sum().backward()
        norms = torch.stack([p.grad.flatten(1).norm(dim=1) for p in params.values()]).norm(dim=0)
        scale = (cfg.train.grad_clip / (norms + 1e-6)).clamp(max=1.0)
        for p in params.values():
            p.grad.mul_(scale.view(-1, *[1] * (p.dim() - 1)))
        opt.step()
    return step, params


def timed_points(cfg: RunConfig, difficulties: list[int], train_loops: int,
                 looped: bool) -> list[tuple[int, int, int]]:
    """(difficulty, loops, grad_loops) of the timed steps: the smallest, middle and largest training
    difficulty, at the loops the recipe runs there; with the progressive term, gradient through half of
    them (its typical draw); with a truncated recipe, through its last bwd_loops."""
    points = []
    for difficulty in sorted({difficulties[0], difficulties[len(difficulties) // 2], difficulties[-1]}):
        loops = 1
        if looped:
            loops = tied_loops(difficulty, cfg.train) if cfg.train.recipe == "tied" else train_loops
        grad_loops = loops
        if looped and cfg.train.uses_progressive:
            grad_loops = (loops + 1) // 2
        elif looped and cfg.train.recipe in ("parcae", "huginn"):
            grad_loops = min(cfg.train.bwd_loops, loops)
        points.append((difficulty, loops, grad_loops))
    return points


def interleaved(solo: Callable[[], None], stacked: Callable[[], None], n_seeds: int,
                repeats: int) -> tuple[float, float, list[float]]:
    """Median solo and stacked step seconds, and the per-seed speedup (n_seeds x solo / stacked) of each
    repeat: the two run back to back in every repeat, after one warm-up call each, so load from other
    processes on the machine falls on both alike."""
    solo(), stacked()
    solo_times, stacked_times = [], []
    for _ in range(repeats):
        for fn, times in ((solo, solo_times), (stacked, stacked_times)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    ratios = [n_seeds * a / b for a, b in zip(solo_times, stacked_times, strict=True)]
    return statistics.median(solo_times), statistics.median(stacked_times), ratios


def profile(steps: dict[str, Callable[[], None]], rows: int = 12) -> None:
    """The ops that take the time in one call of each step (after a warm-up call), by self CPU time."""
    for label, step in steps.items():
        step()
        with torch.profiler.profile() as prof:
            step()
        print(f"{label}:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def step_cost(step: int, seed: int, cfg: RunConfig, lengths: dict[int, int], train_loops: int,
              looped: bool) -> int:
    """Sequence length x loops of one seed's forward at one step (the progressive term's when it has one)."""
    difficulty = difficulty_for_step(step, sorted(lengths), cfg.train, seed)
    loops, _ = loop_schedule(step, difficulty, train_loops, cfg.train, seed) if looped else (1, None)
    if looped and cfg.train.uses_progressive and loops > 1:
        rng = step_rng(seed, step, 2)
        n = int(rng.integers(0, loops))
        loops = n + int(rng.integers(1, loops - n + 1))
    return lengths[difficulty] * loops


def utilization(cfg: RunConfig, task: Any, train_loops: int, looped: bool, n_seeds: int) -> float:
    """Mean over the run's steps of the useful fraction of a step padded to the largest copy."""
    difficulties = cfg.train.trained_difficulties(task.spec.train_difficulties)
    lengths = {d: task.generate("train", d, 1, 0).tokens.shape[1] for d in difficulties}
    fractions = []
    for step in range(cfg.train.steps):
        costs = [step_cost(step, seed, cfg, lengths, train_loops, looped) for seed in range(n_seeds)]
        fractions.append(sum(costs) / (n_seeds * max(costs)))
    return float(np.mean(fractions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="parity")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--config", type=Path, help="a run config file, as `mythbench run --config`")
    parser.add_argument("--profile", action="store_true",
                        help="print the ops of one solo and one stacked step at each point (torch.profiler)")
    parser.add_argument("--model", action="append",
                        help="models of the run, or with --config of a ladder its points (default: control, rdt)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = resolve_run_config(args.task, args.preset, args.config)
    task = get_task(args.task)
    plans = {plan.name: plan for plan in plan_models(cfg, task)}
    if args.config:  # a ladder's points train with its per-point config
        plans.update((plan.name, plan) for plan, _, _ in scale.plan_ladder(cfg, task))
        cfg = scale.point_run_config(cfg)[0]
    batch_size = cfg.train.batch_size
    print(f"{args.task} --preset {args.preset}: batch {batch_size}, 1 thread, S = {args.seeds}, "
          f"median of {args.repeats}")
    print(f"{'model':>17} {'n':>3} {'loops':>5} {'grad':>4} {'solo ms':>8} {'stacked ms':>10} "
          f"{'per seed ms':>11} {'speedup (range)':>17} {'utilization':>11} {'max |dw|':>8}")
    for name in args.model or ["control", "rdt"]:
        plan = plans[name]
        looped = registry.is_looped(plan.family)
        train_loops = getattr(plan.config, "train_loops", 1) if looped else 1
        use = utilization(cfg, task, train_loops, looped, args.seeds)
        models = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            models.append(registry.instantiate(plan.family, plan.config))
        difficulties = cfg.train.trained_difficulties(task.spec.train_difficulties)
        for n, loops, grad_loops in timed_points(cfg, difficulties, train_loops, looped):
            data = task.generate("train", n, batch_size, 0)
            batch = tuple(torch.as_tensor(a) for a in (data.tokens, data.targets, data.supervised))
            solo_model = copy.deepcopy(models[0])
            step, stacked_params = stacked_step(models, batch, loops, grad_loops, cfg)
            solo, stacked, ratios = interleaved(solo_step(solo_model, batch, loops, grad_loops, cfg), step,
                                                args.seeds, args.repeats)
            if args.profile:
                profile({"solo": solo_step(copy.deepcopy(models[0]), batch, loops, grad_loops, cfg),
                         "stacked": stacked_step(models, batch, loops, grad_loops, cfg)[0]})
            drift = max(float((w - stacked_params[k][0]).abs().max()) for k, w in solo_model.named_parameters())
            spread = f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
            print(f"{name:>17} {n:>3} {loops:>5} {grad_loops:>4} {1e3 * solo:>8.1f} {1e3 * stacked:>10.1f} "
                  f"{1e3 * stacked / args.seeds:>11.1f} {spread:>17} {use:>11.2f} {drift:>8.1e}")


if __name__ == "__main__":
    main()
