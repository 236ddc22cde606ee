"""Where the held-out loss of one parity-biased ladder point comes from, on the validation and the test split
at n = 21: the token cross-entropy summed over all scored positions, the wrong positions, and the positions
of largest loss with their prefix and count of ones. A diagnosis, not a choice of anything:
python loss_sources.py RUN_DIR/models/NAME/seedK [TOP]. Needs the point's checkpoint (not committed; the
ladder's command, or train_point.py for a probe, retrains it bit for bit at one torch thread)."""

import sys
from pathlib import Path

import numpy as np
import torch
from mythbench.tasks import get_task

from mythbench.training.reevaluate import load_checkpoint

torch.set_num_threads(1)
task, n = get_task("parity-biased"), 21
one = task.family.id("1")
model, _ = load_checkpoint(Path(sys.argv[1]))
top = int(sys.argv[2]) if len(sys.argv) > 2 else 8
for split, batch in (("validation", task.validation_batch(n)), ("test", task.test_batch(n))):
    with torch.no_grad():
        logits = model(torch.as_tensor(batch.tokens)).float()
    log_probs = torch.log_softmax(logits, -1).numpy()
    targets = np.where(batch.mask, batch.targets, 0)
    nll = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0] * batch.mask
    wrong = (logits.argmax(-1).numpy() != batch.targets) & batch.mask
    ones = np.cumsum(batch.tokens == one, axis=1)
    print(f"{split}: {len(batch.tokens)} rows, {int(wrong.sum())} wrong positions, loss summed {nll.sum():.3f}")
    for flat in np.argsort(nll.ravel())[::-1][:top]:
        row, pos = divmod(int(flat), nll.shape[1])
        prefix = "".join("1" if t == one else "0" for t in batch.tokens[row, 1:pos + 1])
        print(f"  row {row:3d} position {pos:2d}: {ones[row, pos]:2d} ones, loss {nll[row, pos]:.3f}, prefix {prefix}")
