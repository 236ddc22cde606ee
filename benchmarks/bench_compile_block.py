"""torch.compile on the recurrent block: one compilation for every loop count, timed against eager.

    python benchmarks/bench_compile_block.py [--task parity] [--preset quick] [--batch 64] [--seq 17]
                                             [--repeats 5] [--model rdt --model control]

Issue 28, item 4. Each recurrent block of the run's looped model is compiled on its own
(`nn.Module.compile`), so the graph is one loop iteration and the Python loop over iterations stays
eager: a new loop count reuses the compiled block (the loop index reaches the block as an int, which
dynamo turns into a symbolic one after its second value). A frame dynamo cannot trace runs eagerly
(`suppress_errors`): on CPU at fp32 that is the MoE's grouped matmul, whose fake-tensor rule wants bf16.

Printed per model: the first call (compilation) in seconds, the graphs compiled after the first loop
count and after three more, the largest logit difference from the eager model at the same weights, and
per-repeat speedups (eager seconds / compiled seconds, median [range]) of a training step (forward,
cross-entropy, backward, AdamW) at the training loop count and of the evaluation's loop sweep, one
thread, eager and compiled interleaved. Results: docs/findings.md.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from mythbench.cli import _run_config_and_task
from mythbench.models.model import RecurrentDepthTransformer
from mythbench.training.bench import Variant, _Runner
from mythbench.training.plan import plan_models


def _seconds(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def graphs_compiled() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def measure(model: torch.nn.Module, tokens: torch.Tensor, loops: int, repeats: int) -> dict[str, object]:
    eager = _Runner(Variant("rdt"), model, tokens, loops)
    compiled_model = copy.deepcopy(model)
    for block in compiled_model.recurrent:
        block.compile()
    compiled = _Runner(Variant("rdt"), compiled_model, tokens, loops)
    with torch.no_grad():
        logit_diff = (model(tokens, loops=loops) - compiled_model(tokens, loops=loops)).abs().max().item()
    first_call = _seconds(compiled.train) + _seconds(compiled.sweep)
    graphs_first = graphs_compiled()
    for other in (loops // 2, loops // 4 + 1, loops + 3):
        compiled.loops = other
        compiled.train()
    compiled.loops = loops
    graphs_after = graphs_compiled()
    eager.train(), eager.sweep()  # warm up alike
    times: dict[str, list[float]] = {"train eager": [], "train compiled": [], "sweep eager": [], "sweep compiled": []}
    for _ in range(repeats):
        for kind in ("train", "sweep"):
            times[f"{kind} eager"].append(_seconds(getattr(eager, kind)))
            times[f"{kind} compiled"].append(_seconds(getattr(compiled, kind)))
    speedups = {kind: [e / c for e, c in zip(times[f"{kind} eager"], times[f"{kind} compiled"], strict=True)]
                for kind in ("train", "sweep")}
    return {"first_call_s": first_call, "graphs_first": graphs_first, "graphs_after_3_more_loop_counts": graphs_after,
            "logit_diff": logit_diff,
            **{f"{kind} eager s": statistics.median(times[f"{kind} eager"]) for kind in ("train", "sweep")},
            **{f"{kind} speedup": (statistics.median(r), min(r), max(r)) for kind, r in speedups.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="parity")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=17)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", action="append", help="a looped model of the run (default: all of them)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch._dynamo.config.suppress_errors = True
    cfg, task = _run_config_and_task(args.task, args.preset, None, [])
    for plan in plan_models(cfg, task):
        if plan.twin_of is not None or plan.family != "rdt" or (args.model and plan.name not in args.model):
            continue
        torch.manual_seed(0)
        model = RecurrentDepthTransformer(plan.config)
        tokens = torch.randint(0, plan.config.vocab_size, (args.batch, args.seq),
                               generator=torch.Generator().manual_seed(0))
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        result = measure(model, tokens, plan.config.train_loops, args.repeats)
        print(plan.name, {k: (tuple(round(x, 3) for x in v) if isinstance(v, tuple) else v)
                          for k, v in result.items()}, flush=True)


if __name__ == "__main__":
    main()
