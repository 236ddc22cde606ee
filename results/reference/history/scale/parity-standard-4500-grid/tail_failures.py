"""Which parity prefixes a trained ladder point gets wrong on the official n = 16 test set, by the number of
ones in the prefix: python tail_failures.py RUN_DIR/models/NAME/seedK ... (checkpoints are not committed;
the ladder's command retrains them, bit for bit at one torch thread)."""

import sys
from pathlib import Path

import torch
from mythbench.tasks import get_task

from mythbench.training.reevaluate import load_checkpoint

torch.set_num_threads(1)
task = get_task("parity")
batch = task.test_batch(16)
ones = (batch.tokens[:, 1:] == task.family.id("1")).cumsum(1)  # ones among bits 1..i, at token i
print("point                       exact@16  wrong prefixes / prefixes with k ones (all positions)")
for ckpt in sys.argv[1:]:
    model, _ = load_checkpoint(Path(ckpt))
    with torch.no_grad():
        pred = model(torch.as_tensor(batch.tokens)).argmax(-1).numpy()
    wrong = ((pred != batch.targets) & batch.mask)[:, 1:]
    exact = 1 - wrong.any(1).mean()
    by_k = {k: (int(wrong[ones == k].sum()), int((ones == k).sum())) for k in range(9, 17) if (ones == k).any()}
    counts = "  ".join(f"k={k}: {w}/{n}" for k, (w, n) in by_k.items())
    print(f"{'/'.join(Path(ckpt).parts[-2:]):27s} {exact:.3f}    {counts}")
