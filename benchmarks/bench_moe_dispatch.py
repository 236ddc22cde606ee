"""MoE expert dispatch: padded batched matmul (the dispatch before the dropless one) against dropless.

    python benchmarks/bench_moe_dispatch.py [--threads 1] [--repeats 10] [--skew 1.0]

Padded: assignments scattered into an [n_experts, most loaded expert's count, d] buffer and one bmm per
weight, so the padding rows are multiplied too. Dropless (`mythbench.models.ffn.Experts`): assignments sorted
by expert and each expert's exact slice multiplied (torch's grouped matmul). Shapes are issue 12's config:
32 x 64 tokens, 8 experts of width 128, top-2, d_model 128; --skew adds to one expert's router score so
its load grows, as an unbalanced router's does. Variants alternate within each repeat; the speedup is the
median of per-repeat ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from mythbench.models.ffn import Experts


def padded(experts: Experts, x: torch.Tensor, idx: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    n_exp, (n, k) = experts.w_gate.shape[0], idx.shape
    flat = idx.reshape(-1)
    order = torch.argsort(flat, stable=True)
    expert, token = flat[order], order // k
    counts = torch.bincount(flat, minlength=n_exp)
    slot = torch.arange(n * k) - (torch.cumsum(counts, 0) - counts)[expert]
    buf = x.new_zeros(n_exp, int(counts.max()), x.shape[1])
    buf[expert, slot] = x[token]
    hidden = F.silu(torch.bmm(buf, experts.w_gate)) * torch.bmm(buf, experts.w_up)
    y = torch.bmm(hidden, experts.w_down)[expert, slot] * gates.reshape(-1)[order, None]
    return x.new_zeros(n, x.shape[1]).index_add(0, token, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skew", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    experts = Experts(8, 128, 128, std=0.02, out_std=0.02)
    x = torch.randn(32 * 64, 128, requires_grad=True)
    scores = torch.randn(len(x), 8)
    scores[:, 0] += args.skew
    idx, gates = scores.topk(2, dim=-1).indices, torch.rand(len(x), 2)
    variants = {"padded": lambda: padded(experts, x, idx, gates), "dropless": lambda: experts(x, idx, gates)}
    load = torch.bincount(idx.reshape(-1), minlength=8)
    with torch.no_grad():
        diff = float((variants["padded"]() - variants["dropless"]()).abs().max())
    print(f"threads={args.threads}; expert loads {load.tolist()}: padding fills {8 * int(load.max())} rows "
          f"for {int(load.sum())} assignments; max |diff| {diff:.1e}")
    passes = {"forward": lambda f: f(), "fwd+bwd": lambda f: f().square().sum().backward()}
    for label, run in passes.items():
        ratios = []
        for _ in range(args.repeats + 1):
            t = {}
            for name, f in variants.items():
                start = time.perf_counter()
                run(f)
                t[name] = time.perf_counter() - start
            ratios.append(t["padded"] / t["dropless"])
        rs = ratios[1:]  # the first repeat warms up
        print(f"{label:>8}: dropless {statistics.median(rs):.2f}x faster than padded [{min(rs):.2f}-{max(rs):.2f}]")


if __name__ == "__main__":
    main()
