"""Train one standard point of the 3000-step parity-biased ladder outside the ladder, with extra overrides:
the probes its README and the session note quote (dense FFN, 6000 steps). A probe, not a ladder point:
python train_point.py OUT_DIR WIDTH SEED [KEY=VALUE ...], e.g. `... /tmp/dense 24 1 model.ffn=dense
model.bias_update_rate=0.001`. With no override it trains exactly the ladder's point (same config, same
batches), which is how two of this ladder's points were trained first."""

import sys
from pathlib import Path

from mythbench.tasks import get_task

from mythbench.config import resolve_run_config
from mythbench.experiments.scale import grid_ladder, point_run_config
from mythbench.training import harness

LADDER = ["scale.loop_counts=[2,8]", "scale.head_dim=4", "scale.widths=[4,8,12,16,24]", "scale.steps=3000",
          "eval.depth_factor=0"]

out, width, seed, overrides = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
cfg = resolve_run_config("parity-biased", "standard", None, LADDER + overrides)
task = get_task(cfg.task)
plan, _, _, lr_scale = next(p for p in grid_ladder(cfg, task) if p[1] == width and p[0].family == "standard")
harness.prepare_run_dir(out, cfg)
result = harness.train_and_evaluate(plan, seed, point_run_config(cfg, width, lr_scale)[0], task, out)
held_out = next(c["loss"] for c in result["cells"] if c["difficulty"] == result["validation"][0]["difficulty"])
print(f"{plan.name} seed {seed}: validation loss {result['validation'][0]['loss']:.4g}, held-out {held_out:.4g}")
