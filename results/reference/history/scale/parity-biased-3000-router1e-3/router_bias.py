"""The standard points of two parity-biased ladders that differ in model.bias_update_rate (the MoE router's
aux-loss-free balance step), paired by width and seed: held-out and validation loss at n = 21 and, where a
seed directory still holds its checkpoint, the largest rise of the 150-step mean training loss above its
running minimum (a loss spike). A diagnosis, not a choice of anything:
python router_bias.py RUN_DIR_A RUN_DIR_B. Checkpoints are not committed; the ladders' commands retrain
them, bit for bit at one torch thread. With an lr grid, the x1 points are read."""

import json
import sys
from pathlib import Path

import numpy as np
import yaml

from mythbench.training.train import recorded_losses


def seed_dirs(run: Path, width: int) -> dict[str, Path]:
    """seed name -> directory of the standard point at `width` (its x1 point where the ladder has an lr grid)."""
    point = next(p for name in (f"standard-w{width}", f"standard-w{width}-lrx1")
                 if (p := run / "models" / name).exists())
    return {d.name: d for d in point.glob("seed*") if (d / "result.json").exists()}


def losses(seed_dir: Path) -> tuple[float, float, float | None]:
    """(held-out loss, validation loss, largest training-loss rise or None without a checkpoint)."""
    result = json.loads((seed_dir / "result.json").read_text())
    val = result["validation"][0]
    test = next(c["loss"] for c in result["cells"] if c["difficulty"] == val["difficulty"])
    if not any(p.name.startswith("ckpt-") for p in seed_dir.iterdir()):
        return test, val["loss"], None
    train = np.asarray(recorded_losses(seed_dir))
    blocks = train[: len(train) // 150 * 150].reshape(-1, 150).mean(axis=1)
    return test, val["loss"], float((blocks - np.minimum.accumulate(blocks)).max())


runs = [Path(a) for a in sys.argv[1:3]]
rates = [yaml.safe_load((r / "config.yaml").read_text())["model"]["bias_update_rate"] for r in runs]
print(f"A: bias_update_rate {rates[0]}, B: {rates[1]}")
print("width seed   held-out A / B      validation A / B    rise A / B")
for width in yaml.safe_load((runs[0] / "config.yaml").read_text())["scale"]["widths"]:
    a_dirs, b_dirs = seed_dirs(runs[0], width), seed_dirs(runs[1], width)
    pairs = []
    for s in sorted(a_dirs.keys() & b_dirs.keys()):
        a, b = losses(a_dirs[s]), losses(b_dirs[s])
        pairs.append((a, b))
        rise = " / ".join("-" if x[2] is None else f"{x[2]:.3f}" for x in (a, b))
        print(f"w{width:<4d} {s[4:]:>4s}   {a[0]:.4f} / {b[0]:.4f}    {a[1]:.4f} / {b[1]:.4f}    {rise}")
    if pairs:
        mean_a, mean_b = (np.mean([p[i][0] for p in pairs]) for i in (0, 1))
        print(f"w{width:<4d} mean   {mean_a:.4f} / {mean_b:.4f}    (held-out, {len(pairs)} seeds)")
