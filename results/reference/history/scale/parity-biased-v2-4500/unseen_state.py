"""Where a parity-biased version-2 ladder point goes wrong at n = 16, on the validation and the test split
(a diagnosis of the 1e4x gap between them, not a choice of anything): python unseen_state.py
RUN_DIR/models/NAME/seedK. Version 2 (trained at n = 16 only, tested at 16, 24, 32, 48, 64) is rebuilt
from the current spec, whose family and sampler it shares. Checkpoints are not committed; the ladder's
command retrains them, bit for bit at one torch thread."""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from mythbench.tasks import Task, get_task

from mythbench.training.reevaluate import load_checkpoint

torch.set_num_threads(1)
current = get_task("parity-biased")
spec = dataclasses.replace(current.spec, version=2, train_difficulties=[16], test_difficulties=[16, 24, 32, 48, 64])
task = Task(spec, current.family)
model, _ = load_checkpoint(Path(sys.argv[1]))
for split, batch in (("validation", task.validation_batch(16)), ("test", task.test_batch(16))):
    with torch.no_grad():
        logits = model(torch.as_tensor(batch.tokens))
    wrong = ((logits.argmax(-1).numpy() != batch.targets) & batch.mask)[:, 1:]
    ones = (batch.tokens[:, 1:] == task.family.id("1")).sum(axis=1)
    print(f"{split}: wrong positions by prefix length 1..16: {wrong.sum(axis=0).tolist()}")
    by_count = np.bincount(ones[wrong[:, -1]], minlength=17).tolist()
    print(f"{split}: rows wrong at position 16, by their count of ones 0..16: {by_count}; "
          f"all-ones rows {(ones == 16).sum()} of {len(ones)}")
