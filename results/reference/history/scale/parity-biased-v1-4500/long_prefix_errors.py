"""Where parity-biased ladder points go wrong on the validation split at n = 16 (no test labels read):
python long_prefix_errors.py RUN_DIR/models/NAME/seedK ... Checkpoints are not committed; the ladder's
command retrains them, bit for bit at one torch thread. The n = 16 validation batch is the same in
parity-biased versions 1 and 2 (only the training difficulties differ)."""

import sys
from pathlib import Path

import numpy as np
import torch
from mythbench.tasks import get_task

from mythbench.training.reevaluate import load_checkpoint

torch.set_num_threads(1)
task = get_task("parity-biased")
batch = task.validation_batch(16)
ones = (batch.tokens[:, 1:] == task.family.id("1")).cumsum(1)  # ones among bits 1..i, at token i
length = np.broadcast_to(np.arange(1, 17), ones.shape)  # the prefix length at token i
for ckpt in sys.argv[1:]:
    model, _ = load_checkpoint(Path(ckpt))
    with torch.no_grad():
        pred = model(torch.as_tensor(batch.tokens)).argmax(-1).numpy()
    wrong = ((pred != batch.targets) & batch.mask)[:, 1:]
    name = "/".join(Path(ckpt).parts[-2:])
    if not wrong.any():
        print(f"{name:22s} wrong    0")
        continue
    print(f"{name:22s} wrong {int(wrong.sum()):4d}  shortest wrong prefix {length[wrong].min()}  "
          f"fewest ones {ones[wrong].min()}  share at length >= 13 {(length[wrong] >= 13).mean():.2f}")
