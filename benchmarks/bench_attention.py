"""MLA attention: zero-padded values (fused SDPA kernel) against unpadded values (math fallback).

    python benchmarks/bench_attention.py [--threads 2] [--repeats 10]

MLA's queries and keys carry extra rope dims that the values lack. PyTorch's fused SDPA kernels need
one head dim for q, k and v, so unequal widths fall back to the math path, which materialises the
[B, H, L, L] score matrix. `sdpa_narrow_values` pads v with zeros instead (exact). Both variants are
timed one after the other in one process, forward and forward+backward, at the quick preset's MLA shapes
(4 heads, head dim 16 + rope 8) and the sequence lengths of parity (16, 64) and chain (195).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mythbench.models.layers import sdpa_narrow_values


def seconds(fn: Callable[[], None], repeats: int) -> float:
    """Median wall time of `fn` over `repeats` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def bench_length(length: int, batch: int, heads: int, qk_dim: int, v_dim: int, repeats: int) -> None:
    """One table row per pass at one sequence length."""
    q, k = (torch.randn(batch, heads, length, qk_dim, requires_grad=True) for _ in range(2))
    v = torch.randn(batch, heads, length, v_dim, requires_grad=True)
    variants = {"unpadded": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                "padded": lambda: sdpa_narrow_values(q, k, v, is_causal=True)}
    with torch.no_grad():
        diff = (variants["unpadded"]() - variants["padded"]()).abs().max().item()
    passes = {"forward": lambda f: f(), "fwd+bwd": lambda f: f().sum().backward()}
    for label, run in passes.items():
        ms = {name: 1e3 * seconds(lambda f=f, run=run: run(f), repeats) for name, f in variants.items()}
        print(f"{length:>5} {label:>9} {ms['unpadded']:>12.2f} {ms['padded']:>10.2f} "
              f"{ms['unpadded'] / ms['padded']:>7.1f}x {diff:>11.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    heads, qk_dim, v_dim, batch = 4, 24, 16, 128
    print(f"threads={args.threads}, batch={batch}, heads={heads}, q/k dim {qk_dim}, v dim {v_dim}")
    print(f"{'len':>5} {'pass':>9} {'unpadded ms':>12} {'padded ms':>10} {'speedup':>8} {'max |diff|':>11}")
    for length in (16, 64, 195):
        bench_length(length, batch, heads, qk_dim, v_dim, args.repeats)


if __name__ == "__main__":
    main()
