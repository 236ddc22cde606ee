"""The cost of a scaling ladder's points: training steps and evaluation of its smallest and largest points.

    OMP_NUM_THREADS=1 python benchmarks/bench_ladder_cost.py docs/grids/zipf-ladder.yaml [--task zipf-hops]

Trains the points (narrowest, widest) x (r = 1, largest r) of the ladder config for `--steps` steps at one
thread, then evaluates each as the ladder does, and prints wall and CPU (process) time of both. On a shared
machine the CPU time is what a free core would take; docs/ladder.md turns these four points into the
ladder's cost. Writes only under a temporary directory.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from mythbench.tasks import get_task

from mythbench.config import resolve_run_config
from mythbench.experiments.scale import plan_ladder, point_run_config
from mythbench.training import harness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--task", default="zipf-hops")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = get_task(args.task)
    cfg = resolve_run_config(args.task, "quick", args.config, [f"scale.steps={args.steps}"])
    plans = {plan.name: (plan, w) for plan, w, _ in plan_ladder(cfg, task)}
    widths, loops = (min(cfg.scale.widths), max(cfg.scale.widths)), (1, max(cfg.scale.loop_counts))
    with tempfile.TemporaryDirectory() as out:
        for name in (f"rdt-w{w}-r{r}" for w in widths for r in loops):
            plan, width = plans[name]
            pcfg = point_run_config(cfg, width)[0]
            t0, c0 = time.perf_counter(), time.process_time()
            harness.train_cell(plan, 0, pcfg, task, Path(out))
            t1, c1 = time.perf_counter(), time.process_time()
            harness.train_and_evaluate(plan, 0, pcfg, task, Path(out))  # resumes the finished run: evaluates
            t2, c2 = time.perf_counter(), time.process_time()
            print(f"{name}: {args.steps} steps: wall {t1 - t0:.1f} s, CPU {c1 - c0:.1f} s "
                  f"({(c1 - c0) / args.steps * 1000:.0f} ms/step CPU); evaluation: wall {t2 - t1:.1f} s, "
                  f"CPU {c2 - c1:.1f} s", flush=True)


if __name__ == "__main__":
    main()
