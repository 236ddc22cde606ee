"""`mythbench bench`: training and inference speed of one model config, side by side across variants.

A variant is a model family (rdt, openmythos, any plugin) with a dtype (fp32, or bf16 autocast) and
eager or torch.compile. Within each repeat every variant runs one training step and one inference pass
in turn (interleaved), so a slow spell on a shared machine hits all variants alike; a variant's ratio to
the first is the median over repeats of the ratio within each repeat, with its range.

  train      forward + cross-entropy + backward + AdamW step (+ the MoE balance-bias step)
  inference  one forward pass under inference_mode
  FLOP/s     the project's FLOPs/token (`accounting.count` at the benchmark's sequence length) x tokens/s,
             as a fraction of the dense matmul peak measured on the spot at the same threads and dtype
  sweep      the evaluation's loop sweep (`evaluate_looped`, accuracy at every loop count 1..T) over one
             T-loop inference pass on the same batch (fp32 eager variants of looped families)
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mythbench.config import EvalConfig
from mythbench.core.errors import ConfigError
from mythbench.models import accounting, registry
from mythbench.models.model import RDTConfig
from mythbench.training.evaluate import evaluate_looped
from mythbench.training.fastpath import autocast, maybe_compile

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Variant:
    family: str
    dtype: str = "fp32"
    compile: bool = False

    @property
    def name(self) -> str:
        return "+".join([self.family, *([self.dtype] if self.dtype != "fp32" else []),
                         *(["compile"] if self.compile else [])])


@dataclass
class _Runner:
    """One variant's model, optimizer and timed closures."""

    variant: Variant
    model: torch.nn.Module
    tokens: torch.Tensor
    loops: int
    seconds: dict[str, list[float]] = field(default_factory=lambda: {"train": [], "infer": [], "sweep": [],
                                                                       "one": []})

    def __post_init__(self) -> None:
        self.forward = maybe_compile(self.model, self.variant.compile)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.targets = self.tokens.roll(-1, dims=1)

    def train(self) -> None:
        self.model.train()
        with autocast("cpu", self.variant.dtype == "bf16"):
            logits = self.forward(self.tokens, loops=self.loops)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), self.targets.flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if hasattr(self.model, "update_balance_bias"):
            self.model.update_balance_bias()

    def infer(self) -> None:
        self.model.eval()
        with torch.inference_mode(), autocast("cpu", self.variant.dtype == "bf16"):
            self.forward(self.tokens, loops=self.loops)

    def sweep(self) -> None:
        arrays = (self.tokens.numpy(), self.targets.numpy(), np.ones(tuple(self.tokens.shape), dtype=bool))
        evaluate_looped(self.model, lambda d: arrays, [0], self.loops, EvalConfig(chunk_size=len(self.tokens)))

    def timed_passes(self, sweep: bool) -> dict[str, Callable[[], None]]:
        passes = {"train": self.train, "infer": self.infer}
        return {**passes, "sweep": self.sweep, "one": self.infer} if sweep else passes


def _seconds(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_peak(dtype: torch.dtype, size: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of the fastest of `repeats` square matmuls: what this machine's BLAS reaches right now."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    return 2.0 * size**3 / min(_seconds(lambda: a @ b) for _ in range(repeats))


def variants(families: list[str], dtypes: list[str], compile_modes: list[bool]) -> list[Variant]:
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        raise ConfigError(f"dtype {bad[0]!r} is not one of {', '.join(DTYPES)}")
    return [Variant(f, d, c) for f, d, c in itertools.product(families, dtypes, compile_modes)]


def _ratios(times: dict[Variant, list[float]], first: Variant) -> dict[Variant, list[float]]:
    """Per-repeat speed ratio of each variant to the first (>1: faster), from the same repeat's times."""
    return {v: [a / b for a, b in zip(times[first], t, strict=True)] for v, t in times.items()}


def run_bench(cfg: RDTConfig, variant_list: list[Variant], batch: int, seq: int, loops: int | None = None,
              threads: int = 2, repeats: int = 10, warmup: int = 2, sweep: bool = True) -> dict[str, Any]:
    """Time every variant interleaved; return plain data (what `--json` writes)."""
    if seq > cfg.max_seq_len:
        raise ConfigError(f"--seq {seq} > max_seq_len {cfg.max_seq_len} (set max_seq_len)")
    torch.set_num_threads(threads)
    loops = loops or cfg.train_loops
    tokens = torch.randint(0, cfg.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))
    runners = []
    for v in variant_list:
        torch.manual_seed(0)
        family = registry.get_family(v.family)
        runners.append(_Runner(v, registry.instantiate(v.family, family.config_from_dict(cfg.to_dict())), tokens,
                               loops))
    looped = {r.variant: registry.is_looped(r.variant.family) for r in runners}  # a loop sweep needs loops
    first_call = {r.variant: _seconds(r.train) + _seconds(r.infer) for r in runners}  # includes compiling
    for rep in range(warmup + repeats):
        for r in runners:
            timed_sweep = sweep and looped[r.variant] and not r.variant.compile and r.variant.dtype == "fp32"
            for kind, fn in r.timed_passes(timed_sweep).items():
                t = _seconds(fn)
                if rep >= warmup:
                    r.seconds[kind].append(t)
    peaks = {d: matmul_peak(DTYPES[d]) for d in sorted({v.dtype for v in variant_list})}
    first = runners[0].variant
    ratios = {kind: _ratios({r.variant: r.seconds[kind] for r in runners}, first) for kind in ("train", "infer")}
    rows = []
    for r in runners:
        count = accounting.count_config(r.variant.family, cfg, loops=loops, context=seq)
        row: dict[str, Any] = {**dataclasses.asdict(r.variant), "name": r.variant.name,
                               "params": count.params_total, "first_call_s": first_call[r.variant]}
        for kind, flops in (("train", count.flops_train), ("infer", count.flops_forward)):
            tok_s = batch * seq / statistics.median(r.seconds[kind])
            row[kind] = {"tok_s": tok_s, "flops_per_token": flops, "flop_s": flops * tok_s,
                         "peak_fraction": flops * tok_s / peaks[r.variant.dtype],
                         "ratio_to_first": statistics.median(ratios[kind][r.variant]),
                         "ratio_range": [min(ratios[kind][r.variant]), max(ratios[kind][r.variant])]}
        row["sweep_over_one_pass"] = (statistics.median(a / b for a, b in zip(r.seconds["sweep"], r.seconds["one"],
                                                                                strict=True))
                                      if r.seconds["sweep"] else None)
        rows.append(row)
    return {"config": cfg.to_dict(), "batch": batch, "seq": seq, "loops": loops, "threads": threads,
            "repeats": repeats, "torch": torch.__version__, "matmul_peak_flop_s": peaks, "rows": rows}


def format_table(result: dict[str, Any]) -> str:
    peaks = ", ".join(f"{d} {p / 1e9:.0f} GFLOP/s" for d, p in result["matmul_peak_flop_s"].items())
    lines = [f"batch {result['batch']}x{result['seq']}, {result['loops']} loops, {result['threads']} threads, "
             f"median of {result['repeats']} interleaved repeats; matmul peak {peaks}",
             f"{'variant':<24} {'params':>9} {'train tok/s':>11} {'x first':>16} {'GFLOP/s':>7} {'%peak':>5} "
             f"{'infer tok/s':>11} {'x first':>16} {'GFLOP/s':>7} {'%peak':>5} {'sweep/1 pass':>12} {'1st call s':>10}"]
    for row in result["rows"]:
        cols = [f"{row['name']:<24} {row['params']:>9,}"]
        for kind in ("train", "infer"):
            k = row[kind]
            spread = f"{k['ratio_to_first']:.2f} [{k['ratio_range'][0]:.2f}-{k['ratio_range'][1]:.2f}]"
            cols.append(f"{k['tok_s']:>11,.0f} {spread:>16} {k['flop_s'] / 1e9:>7.1f} {k['peak_fraction']:>5.0%}")
        sweep = row["sweep_over_one_pass"]
        cols.append(f"{'-' if sweep is None else f'{sweep:.2f}x':>12} {row['first_call_s']:>10.1f}")
        lines.append(" ".join(cols))
    return "\n".join(lines)
