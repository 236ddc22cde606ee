"""Generator throughput on one core: tokens/s per task at its largest test difficulty.

    python benchmarks/bench_tasks.py [--batch 1024] [--seconds 1.0] [--target 200000]

Data generation must never be what a CPU training run waits for; the target is 200k tokens/s per
generator. "raw" is the family's sampler alone; "train"/"test" go through Task.generate, which at a
test difficulty also hashes every instance and drops the half that belongs to the other split (about
2x the raw cost). Exits 1 if a split falls below the target.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy (and torch, via mythbench) is imported

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
from mythbench.tasks import get_task, list_tasks  # noqa: E402


def rate(make: Callable[[int], np.ndarray], seconds: float) -> float:
    """Tokens per second of `make(i)` (returns a token array), after one warm-up call."""
    make(0)
    start, calls, tokens = time.perf_counter(), 0, 0
    while time.perf_counter() - start < seconds:
        tokens += make(calls + 1).size
        calls += 1
    return tokens / (time.perf_counter() - start)


def bench_task(name: str, batch: int, seconds: float) -> tuple[int, int, dict[str, float]]:
    """(difficulty, sequence length, tokens/s of raw / train / test) at the task's largest test difficulty."""
    task = get_task(name)
    d = max(task.spec.test_difficulties)
    rng = np.random.default_rng(0)
    rates = {"raw": rate(lambda _: task.family.sample(rng, d, batch).tokens, seconds)}
    for split in ("train", "test"):
        rates[split] = rate(lambda i, s=split: task.generate(s, d, batch, i).tokens, seconds)
    return d, task.seq_len(d), rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--target", type=float, default=200_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass

    print(f"one core, batch {args.batch}, numpy {np.__version__}; tokens/s at the largest test difficulty")
    print(f"{'task':<8} {'d':>4} {'len':>5} {'raw':>12} {'train':>12} {'test':>12}")
    slow = []
    for name in list_tasks():
        d, length, rates = bench_task(name, args.batch, args.seconds)
        print(f"{name:<8} {d:>4} {length:>5} " + " ".join(f"{rates[k]:>12,.0f}" for k in ("raw", "train", "test")))
        slow += [f"{name}/{s}" for s in ("train", "test") if rates[s] < args.target]
    if slow:
        print(f"below the target of {args.target:,.0f} tokens/s: {', '.join(slow)}")
        return 1
    print(f"all generators above {args.target:,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
