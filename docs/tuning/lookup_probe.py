"""Can the control learn a content lookup, and what makes it learnable? A plain training loop (fixed
loops, plain loss, no recipe), printing exact match on held-out instances every 200 steps.

Two sources of instances:
  --task FILE        a chain task spec; scored: the query, and separately the densely supervised
                     statements whose rhs is a variable (each a lookup); evaluated at the largest
                     trained difficulty.
  --recall PAIRS     single-query associative recall: PAIRS key-value statements, then "? key =",
                     written "k = v" (--format assign) or "k v" (--format pairs). --sizes mixed trains
                     on 2..PAIRS statements (a uniform draw per batch); --sizes blank keeps the length
                     and blanks out all but 2..PAIRS of them; evaluation is always at PAIRS live ones.

    python docs/tuning/lookup_probe.py --recall 12 --format pairs --sizes mixed --steps 2000
    python docs/tuning/lookup_probe.py --task docs/tuning/chain-tiny.yaml --difficulties 1 \
        --positional rope --conv-kernel 0 --loops 1 --lr 1e-3 --steps 4000
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from mythbench.tasks.registry import load_task_file

from mythbench.models.model import RDTConfig, RecurrentDepthTransformer

KEYS, VALUES = 16, 10  # recall: pad, bos, keys, values, "=", "?", blank
ASSIGN, QUERY, BLANK = 2 + KEYS + VALUES, 3 + KEYS + VALUES, 4 + KEYS + VALUES


def recall_batch(n: int, pairs: int, live_low: int, assign: bool, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """n instances of `pairs` statements, of which a uniform 2..pairs (live_low..pairs) are live."""
    keys = torch.stack([torch.randperm(KEYS, generator=g)[:pairs] for _ in range(n)]) + 2
    values = torch.randint(0, VALUES, (n, pairs), generator=g) + 2 + KEYS
    live = torch.randint(live_low, pairs + 1, (n, 1), generator=g)
    asked = (torch.rand(n, generator=g) * live[:, 0]).long()
    dead = torch.arange(pairs)[None] >= live
    keys, values = keys.masked_fill(dead, BLANK), values.masked_fill(dead, BLANK)
    parts = [keys, torch.full_like(keys, ASSIGN), values] if assign else [keys, values]
    rows = torch.arange(n)
    x = torch.cat([torch.ones(n, 1, dtype=torch.long), torch.stack(parts, 2).reshape(n, -1),
                   torch.full((n, 1), QUERY), keys[rows, asked][:, None], torch.full((n, 1), ASSIGN)], 1)
    y = torch.zeros_like(x)
    y[:, -1] = values[rows, asked]
    query = torch.zeros_like(x, dtype=torch.bool)
    query[:, -1] = True
    return x, y, query, query, torch.zeros_like(query)


def task_batch(task, difficulty: int, n: int, seed: int, split: str, variables: torch.Tensor):
    b = task.generate(split, difficulty, n, seed)
    x = torch.as_tensor(b.tokens)
    query, supervised = torch.as_tensor(b.mask), torch.as_tensor(b.supervised)
    return x, torch.as_tensor(b.targets), supervised, query, supervised & ~query & torch.isin(x, variables)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--task")
    source.add_argument("--recall", type=int, metavar="PAIRS")
    p.add_argument("--difficulties", default="1,2", help="--task: trained in turn, one per step")
    p.add_argument("--format", choices=("assign", "pairs"), default="assign")
    p.add_argument("--sizes", choices=("fixed", "mixed", "blank"), default="fixed")
    p.add_argument("--positional", default="none")
    p.add_argument("--conv-kernel", type=int, default=3)
    p.add_argument("--loops", type=int, default=1)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    if args.task:
        task = load_task_file(args.task)
        difficulties = [int(d) for d in args.difficulties.split(",")]
        variables = torch.tensor([task.vocab.index(t) for t in task.vocab if t.startswith("x")])
        vocab, max_len = task.vocab_size, task.seq_len(max(difficulties))
        train = lambda step: task_batch(task, difficulties[step % len(difficulties)], args.batch, step,  # noqa: E731
                                        "train", variables)
        held_out = task_batch(task, max(difficulties), 256, 10**6, "test", variables)
    else:
        vocab, max_len, assign, pairs = BLANK + 1, 3 * args.recall + 4, args.format == "assign", args.recall

        def train(step: int) -> tuple[torch.Tensor, ...]:
            if args.sizes == "mixed":  # a shorter context: fewer pairs, nothing blank
                return recall_batch(args.batch, int(torch.randint(2, pairs + 1, (1,), generator=g)), 2, assign, g)
            return recall_batch(args.batch, pairs, 2 if args.sizes == "blank" else pairs, assign, g)
        held_out = recall_batch(512, pairs, pairs, assign, torch.Generator().manual_seed(99))
    cfg = RDTConfig(vocab_size=vocab, max_seq_len=max_len, d_model=64, n_heads=4, attention="mha", ffn="dense",
                    lora_rank=0, conv_kernel=args.conv_kernel, positional=args.positional, causal=False,
                    train_loops=args.loops, injection="lti")
    model = RecurrentDepthTransformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    t0 = time.time()
    for step in range(args.steps):
        x, y, supervised, _, _ = train(step)
        loss = F.cross_entropy(model(x)[supervised], y[supervised])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 200 == 0:
            x, y, _, query, lookup = held_out
            with torch.no_grad():
                hit = model(x).argmax(-1) == y
            lookups = f", lookups {hit[lookup].float().mean().item():.3f}" if lookup.any() else ""
            print(f"step {step + 1}: loss {loss.item():.3f}, query {hit[query].float().mean().item():.3f}"
                  f"{lookups} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
