"""Data-parallel training under torchrun: one training run whose per-step batch is split across ranks.

    torchrun --nproc-per-node 4 -m cli run parity --preset standard

Every rank draws the step's whole batch (batches are a pure function of seed and step), keeps its contiguous
shard, and DDP averages the gradients (gloo on CPU, nccl on GPU), so the run is the single-process run up to
float summation order:
- each rank's loss is weighted by its share of the step's target tokens (times the world size), so the
  averaged gradient is that of the mean over the whole batch even when shards hold unequal token counts;
- the DeepSeek-V3 balance counts (`load_sum` of every MoE layer) are summed over ranks before the bias step;
- the recorded loss is the whole batch's.
Not exact: an auxiliary balance loss (`model.balancing=aux|both`) sees per-shard routing statistics. The
whole training loss is one DDP forward call, so the progressive term's second pass is allowed.

Rank 0 does everything `mythbench run` does; the other ranks only train the same cells in the same order
(`follow`), waiting in the next cell's first collective while rank 0 evaluates. Without torchrun nothing
here is active and training is the plain single-process loop.
"""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from mythbench.config import RunConfig
from mythbench.core.errors import ConfigError

TIMEOUT = datetime.timedelta(hours=2)  # followers wait this long for rank 0 to finish evaluating a model


class _Loss(torch.nn.Module):
    """The whole training loss as one module call. DDP allows one forward per backward, and the loss may
    run the model twice (the progressive term); `forward` is the model's (possibly compiled) forward_detailed."""

    def __init__(self, model: torch.nn.Module, forward: Callable[..., Any], loss_fn: Callable[..., Any]):
        super().__init__()
        self.model, self.run_model, self.loss_fn = model, forward, loss_fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.loss_fn(self.run_model, *args, **kwargs)


@dataclass(frozen=True)
class DataParallel:
    """This process's place in the data-parallel group; rank 0 of 1 outside torchrun."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def loss(self, model: torch.nn.Module, forward: Callable[..., Any],
             loss_fn: Callable[..., Any]) -> Callable[..., Any]:
        """`loss_fn(forward, *args)` as one call, wrapped in DDP when there are several ranks."""
        if self.world == 1:
            return functools.partial(loss_fn, forward)
        # find_unused_parameters: a model may leave some parameter without a gradient in a step; DDP must not wait
        return torch.nn.parallel.DistributedDataParallel(_Loss(model, forward, loss_fn), find_unused_parameters=True)

    def shard(self, arrays: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        """This rank's contiguous slice of the step's batch."""
        if self.world == 1:
            return arrays
        n = len(arrays[0]) // self.world
        return tuple(a[self.rank * n:(self.rank + 1) * n] for a in arrays)

    def loss_weight(self, mask: torch.Tensor) -> float:
        """world * (this shard's target tokens) / (the batch's): the weight that makes DDP's gradient average
        the gradient of the whole batch's mean loss."""
        if self.world == 1:
            return 1.0
        counts = torch.tensor([float(mask.sum())], dtype=torch.float64)
        local = counts.item()
        dist.all_reduce(counts)
        return self.world * local / counts.item()

    def batch_loss(self, loss: torch.Tensor) -> float:
        """The whole batch's loss from each rank's weighted loss (the same number on every rank)."""
        if self.world == 1:
            return loss.item()
        total = loss.detach().double().reshape(1).cpu()
        dist.all_reduce(total)
        return total.item() / self.world

    def sync_balance_counts(self, model: torch.nn.Module) -> None:
        """Sum the MoE routing counts of this step over ranks, so every rank takes the same bias step."""
        if self.world == 1:
            return
        for module in model.modules():
            counts = getattr(module, "load_sum", None)
            if isinstance(counts, torch.Tensor):
                dist.all_reduce(counts)


def current() -> DataParallel:
    """The data-parallel group this process trains in (set up by `init_from_env`), or a single process."""
    if dist.is_available() and dist.is_initialized():
        return DataParallel(dist.get_rank(), dist.get_world_size())
    return DataParallel()


def init_from_env(device: str) -> DataParallel:
    """Join the process group torchrun describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK...); nccl
    with one GPU per local rank for cuda devices, gloo on CPU. Nothing happens outside torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return current()
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=TIMEOUT)
    return current()


def check(cfg: RunConfig, world: int) -> list[str]:
    """Why `cfg` cannot train data-parallel over `world` ranks (empty when it can, or when world is 1)."""
    if world <= 1:
        return []
    problems = []
    if cfg.train.batch_size % world:
        problems.append(f"train.batch_size: {cfg.train.batch_size} does not split evenly over {world} ranks")
    if cfg.device.startswith("cuda:"):
        problems.append(f"device: {cfg.device!r} under torchrun; use cuda (each rank takes its LOCAL_RANK GPU)")
    return problems


def validate(configs: list[RunConfig], parallel: DataParallel) -> None:
    """ConfigError listing every reason any of `configs` cannot train over this group."""
    problems = [f"{cfg.task}: {p}" for cfg in configs for p in check(cfg, parallel.world)]
    if problems:
        raise ConfigError(problems)
