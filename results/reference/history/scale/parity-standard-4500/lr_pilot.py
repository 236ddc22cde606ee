"""Pilot: one ladder point (standard-w64) of the 4500-step parity ladder retrained at another learning rate.
Usage: OMP_NUM_THREADS=1 python lr_pilot.py LR SEED OUT_DIR"""
import sys
from pathlib import Path

import numpy as np
from mythbench.tasks import get_task

from mythbench.config import resolve_run_config
from mythbench.experiments.scale import plan_ladder, point_run_config
from mythbench.training import harness

lr, seed, out = float(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
cfg = resolve_run_config("parity", "standard", None, ["scale.loop_counts=[2,8]", "scale.steps=4500",
                                                       "eval.depth_factor=0", f"train.lr={lr}"])
task = get_task("parity")
plan = next(p for p, _, _ in plan_ladder(cfg, task) if p.name == "standard-w64")
pcfg = point_run_config(cfg)[0]
harness.prepare_run_dir(out, cfg)
result = harness.train_and_evaluate(plan, seed, pcfg, task, out)
train_d = set(task.spec.train_difficulties)
loss = np.mean([c["loss"] for c in result["cells"] if c["difficulty"] in train_d])
print(f"standard-w64 seed {seed} lr {lr}: held-out loss at the training lengths {loss:.5f}, "
      f"acc@16 {[c['accuracy'] for c in result['cells'] if c['difficulty'] == 16][0]:.3f}")
