"""Evaluation of the difficulty x loops grid, early exit and diagnostics, and `mythbench.evaluate`.

A looped model is run once per chunk to the largest loop count; every loop count's readout comes out of
that single pass (`loop_sweep`), and the RDT's sweep stops computing once the state is at a fixed point,
exactly (`RecurrentDepthTransformer.sweep_loops`). Chunks bound memory at the largest difficulty. Any other
model, a user's `nn.Module` or plain function included, is scored by `evaluate_plain`, one call per chunk
and loop count. A progress bar with an ETA goes to stderr when it is a terminal.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mythbench.analysis.metrics import METRICS
from mythbench.analysis.stats import cell_rates
from mythbench.config import EvalConfig, TrainConfig
from mythbench.core.errors import ConfigError
from mythbench.results.results_frame import typed
from mythbench.tasks import TEST_SEED, get_task

NOT_APPLICABLE = {"kl": "not applicable: compares consecutive loops, and only one loop was evaluated"}


def sweep_max_loops(train_loops: int, hardest_test_depth: int, cfg: EvalConfig) -> int:
    """The largest loop count evaluated: loops_factor x the training count, and at least depth_factor x what
    the hardest test difficulty needs, so a model doing one step per loop can be seen to get there."""
    return max(cfg.loops_factor * train_loops, math.ceil(cfg.depth_factor * hardest_test_depth))


def rule_loops(rule: str, difficulties: list[int], hardest_train: int, train_loops: int, train: TrainConfig,
               max_loops: int) -> dict[int, int]:
    """The headline loop count per difficulty under a pre-registered rule (EvalConfig.loop_rule).

    "difficulty": the loop count the model trained with at its hardest training difficulty (the tied
    recipe's ceil(loops_per_difficulty * d), otherwise its training loop count), scaled in proportion to d.
    "train": the training loop count everywhere. Clamped to the evaluated range 1..max_loops.
    """
    if rule == "train":
        return {d: min(train_loops, max_loops) for d in difficulties}
    at_hardest = math.ceil(train.loops_per_difficulty * hardest_train) if train.recipe == "tied" else train_loops
    return {d: min(max_loops, max(1, math.ceil(at_hardest * d / hardest_train))) for d in difficulties}


@dataclass
class _Tally:
    """Running sums for one (difficulty, loops) cell: every registered metric's counts, and the loss."""

    counts: dict[str, int] = field(default_factory=dict)
    loss_sum: float = 0.0
    scored: int = 0

    def add(self, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Accumulate one chunk; return per-sequence exact-match (for early-exit bookkeeping)."""
        pred = logits.argmax(-1)
        for metric in METRICS.values():
            hits, total = metric.count(pred, targets, mask)
            self.counts[metric.hits] = self.counts.get(metric.hits, 0) + hits
            self.counts[metric.total] = self.counts.get(metric.total, 0) + total
        self.loss_sum += float(F.cross_entropy(logits[mask].float(), targets[mask], reduction="sum"))
        self.scored += int(mask.sum())
        return ((pred == targets) | ~mask).all(-1)

    def cell(self, difficulty: int, loops: int | None) -> dict:
        """The raw counts results.json stores; rates and intervals are computed when read (stats.cell_rates)."""
        return {"difficulty": difficulty, "loops": loops, **self.counts,
                "loss": self.loss_sum / max(1, self.scored)}


@dataclass
class _ExitTally:
    correct: int = 0
    n: int = 0
    loops_sum: float = 0.0

    def add(self, exact: torch.Tensor, loops_used: torch.Tensor) -> None:
        self.correct += int(exact.sum())
        self.n += exact.numel()
        self.loops_sum += float(loops_used.float().sum())


@dataclass
class _Diagnostics:
    state_change: list[np.ndarray] = field(default_factory=list)
    expert_load: list[np.ndarray] = field(default_factory=list)
    halt_steps: list[np.ndarray] = field(default_factory=list)


def first_below(values: torch.Tensor, threshold: float) -> torch.Tensor:
    """Index (0-based, over the loop axis 0) of the first value below threshold; the last index if none."""
    below = values < threshold
    last = torch.full(values.shape[1:], values.shape[0] - 1, dtype=torch.long)
    hit = below.any(0)
    return torch.where(hit, below.float().argmax(0), last)


def exit_indices(logits: torch.Tensor, mask: torch.Tensor, state_change: torch.Tensor | None,
                 cfg: EvalConfig) -> dict[str, torch.Tensor]:
    """Per-sequence loop index at which each early-exit rule stops, from the per-loop readouts.

    logits [T, B, S, V]; state_change [T, B] (relative ||h_t - h_{t-1}|| / ||h_{t-1}||).
    Thresholds come from the config: fixed in advance, never chosen on test difficulties.
    """
    logp = logits.float().log_softmax(-1)
    m = mask.float()

    def per_seq(x: torch.Tensor) -> torch.Tensor:  # mean over each sequence's scored positions
        return (x * m).sum(-1) / m.sum(-1).clamp_min(1)

    rules: dict[str, torch.Tensor] = {}
    if len(logits) >= 2:  # KL compares consecutive loops: not applicable to one loop (see NOT_APPLICABLE)
        kl = (logp[1:].exp() * (logp[1:] - logp[:-1])).sum(-1)  # KL(p_t || p_{t-1}) per position
        kl_seq = torch.cat([torch.full_like(per_seq(kl[:1]), float("inf")), per_seq(kl)])
        rules["kl"] = first_below(kl_seq, cfg.kl_threshold)
    confidence = logp.exp().amax(-1)
    min_conf = torch.where(mask, confidence, torch.ones_like(confidence)).amin(-1)  # [T, B]
    rules["confidence"] = first_below(-min_conf, -cfg.confidence_threshold)
    if state_change is not None:
        rules["delta_h"] = first_below(state_change, cfg.delta_h_threshold)
    return rules


def loop_sweep(model: torch.nn.Module, tokens: torch.Tensor, loops: int) -> Any:
    """The outputs (an RDTOutput) of every loop count 1..loops from one pass: the model's `sweep_loops`
    where it has one (exact shortcuts), otherwise `forward_detailed` with all_loops."""
    sweep = getattr(model, "sweep_loops", None)
    if sweep is not None:
        return sweep(tokens, loops)
    return model.forward_detailed(tokens, loops=loops, all_loops=True)


def _chunks(batches: Callable[[int], tuple[np.ndarray, ...]], difficulties: list[int], chunk_size: int,
            desc: str) -> Iterator[tuple[int, list[tuple[torch.Tensor, ...]]]]:
    """(difficulty, its chunks of (tokens, targets, mask)) per difficulty, with a progress bar (on stderr,
    only when it is a terminal) whose ETA weighs every chunk by its tokens."""
    data = {d: [torch.as_tensor(a) for a in batches(d)] for d in difficulties}
    with tqdm(total=sum(tokens.numel() for tokens, _, _ in data.values()), desc=desc, unit="tok",
              unit_scale=True, leave=False, disable=None, dynamic_ncols=True, mininterval=1.0) as bar:
        for d, arrays in data.items():
            chunks = list(zip(*(a.split(chunk_size) for a in arrays), strict=True))
            yield d, _counted(chunks, bar)


def _counted(chunks: list[tuple[torch.Tensor, ...]], bar: tqdm) -> Iterator[tuple[torch.Tensor, ...]]:
    for chunk in chunks:
        yield chunk
        bar.update(chunk[0].numel())


@torch.inference_mode()
def evaluate_looped(model: torch.nn.Module, batches: Callable[[int], tuple[np.ndarray, ...]],
                    difficulties: list[int], max_loops: int, cfg: EvalConfig,
                    device: str = "cpu", desc: str = "evaluate") -> dict:
    """Cells for every (difficulty, loops in 1..max_loops), early exit per difficulty, diagnostics."""
    model.eval()
    cells, exits, diag = [], [], {"state_change": {}, "halting": {}, "expert_load": None}
    load_sum: np.ndarray | None = None
    act = bool(getattr(model.cfg, "act", False))
    for d, chunks in _chunks(batches, difficulties, cfg.chunk_size, desc):
        tallies = [_Tally() for _ in range(max_loops)]
        exit_tallies: dict[str, _ExitTally] = {}
        per_diff = _Diagnostics()
        for tok, tgt, msk in chunks:
            out = loop_sweep(model, tok.to(device), max_loops)
            logits = out.logits.cpu()
            exact = torch.stack([tallies[t].add(logits[t], tgt, msk) for t in range(max_loops)])  # [T, B]
            rules = exit_indices(logits, msk, out.seq_state_change.cpu(), cfg)
            if act:  # ACT's own readout is the last one (halted positions are frozen); loops = halting step
                rules_used = {"act": (torch.full_like(rules["confidence"], max_loops - 1),
                                      out.halt_steps.float().mean(-1).cpu())}
            else:
                rules_used = {}
            rules_used.update({r: (idx, idx + 1) for r, idx in rules.items()})
            for rule, (idx, loops_used) in rules_used.items():
                chosen = exact.gather(0, idx[None]).squeeze(0)
                exit_tallies.setdefault(rule, _ExitTally()).add(chosen, loops_used)
            per_diff.state_change.append(out.seq_state_change.cpu().numpy())
            if out.halt_steps is not None:
                per_diff.halt_steps.append(out.halt_steps.float().mean(-1).cpu().numpy())
            if out.expert_load is not None:
                chunk_load = out.expert_load.cpu().numpy() * len(tok)
                load_sum = chunk_load if load_sum is None else load_sum + chunk_load
        cells += [t.cell(d, i + 1) for i, t in enumerate(tallies)]
        thresholds = {"act": getattr(model.cfg, "act_threshold", None), "kl": cfg.kl_threshold,
                      "confidence": cfg.confidence_threshold, "delta_h": cfg.delta_h_threshold}
        for rule, et in exit_tallies.items():
            exits.append({"difficulty": d, "rule": rule, "threshold": thresholds[rule], "n": et.n,
                          "correct": et.correct, "mean_loops": et.loops_sum / et.n})
        diag["state_change"][str(d)] = np.concatenate(per_diff.state_change, 1).mean(1).tolist()
        if per_diff.halt_steps:
            steps = np.concatenate(per_diff.halt_steps)
            hist = np.histogram(steps, bins=max_loops, range=(0.5, max_loops + 0.5))[0]
            diag["halting"][str(d)] = {"mean": float(steps.mean()), "hist": hist.tolist()}
    if load_sum is not None:
        diag["expert_load"] = (load_sum / load_sum.sum(-1, keepdims=True)).tolist()
    if max_loops < 2:
        diag["early_exit_not_applicable"] = NOT_APPLICABLE
    return {"cells": cells, "early_exit": exits, "diagnostics": diag}


def _checked_logits(output: Any, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A model's output as CPU logits [batch, seq, vocab], or a ConfigError saying what came back instead."""
    logits = torch.as_tensor(output).cpu()
    vocab = int(targets.max()) + 1
    if logits.ndim != 3 or logits.shape[:2] != tokens.shape or logits.shape[2] < vocab:
        raise ConfigError(f"the model returned shape {tuple(logits.shape)} for tokens of shape {tuple(tokens.shape)}: "
                          f"expected logits [batch, seq, vocab] with vocab >= {vocab}")
    return logits


@torch.inference_mode()
def evaluate_plain(model: Callable[..., Any], batches: Callable[[int], tuple[np.ndarray, ...]],
                   difficulties: list[int], cfg: EvalConfig, device: str = "cpu", loops: int | None = None,
                   desc: str = "evaluate") -> dict:
    """Cells for a model without loops (standard transformer baselines), or for a looped one at `loops` only:
    any callable from tokens [batch, seq] (and `loops=`) to logits [batch, seq, vocab]."""
    if isinstance(model, torch.nn.Module):
        model.eval()
    cells = []
    for d, chunks in _chunks(batches, difficulties, cfg.chunk_size, desc):
        tally = _Tally()
        for tok, tgt, msk in chunks:
            chunk = tok.to(device)
            output = model(chunk) if loops is None else model(chunk, loops=loops)
            tally.add(_checked_logits(output, tok, tgt), tgt, msk)
        cells.append(tally.cell(d, loops))
    return {"cells": cells, "early_exit": [], "diagnostics": {}}


def evaluate(model: Callable[..., Any], task: str, difficulties: Sequence[int] | None = None,
             loops: int | Sequence[int] | None = None, n: int | None = None, seed: int = TEST_SEED,
             chunk_size: int = 128, device: str = "cpu") -> pd.DataFrame:
    """Score any model on a task, as lm-evaluation-harness's `simple_evaluate` does for language models:
    one row per difficulty x loop count with exact match (`accuracy`, its Wilson interval `ci_low`..`ci_high`),
    per-token accuracy and loss, scored like every run's cells.

    `model` is an `nn.Module` or any callable from tokens [batch, seq] (int64 ids of the task's vocabulary) to
    logits [batch, seq, vocab]; with `loops` (one count or several) it is called as `model(tokens, loops=L)`.
    Difficulties default to the task's test difficulties, instances to its official test set; `n` and `seed`
    draw another sample of the test split.
    """
    scored = get_task(task)
    cfg = EvalConfig(chunk_size=chunk_size)
    loop_counts = [None] if loops is None else [loops] if isinstance(loops, int) else list(loops)
    problems = cfg.problems() + ([] if callable(model) else [f"model: {type(model).__name__} is not callable"])
    if loops is not None and not (loop_counts and all(isinstance(t, int) and t >= 1 for t in loop_counts)):
        problems.append(f"loops: {loops!r} is not a positive integer or a list of them")
    if problems:
        raise ConfigError(problems)

    @functools.cache  # one draw per difficulty, scored at every loop count
    def batches(difficulty: int) -> tuple[np.ndarray, ...]:
        batch = scored.generate("test", difficulty, scored.spec.examples["test"] if n is None else n, seed)
        return batch.tokens, batch.targets, batch.mask

    chosen = scored.spec.test_difficulties if difficulties is None else list(difficulties)
    cells = [cell for count in loop_counts
             for cell in evaluate_plain(model, batches, chosen, cfg, device, count)["cells"]]
    frame = pd.DataFrame([{"task": scored.name, **cell, **cell_rates(cell)} for cell in cells])
    return typed(frame.sort_values(["difficulty", "loops"], ignore_index=True))
