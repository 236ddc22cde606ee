"""Human-facing views of the suite for the CLI: one line per task, and decoded instances to look at."""

from __future__ import annotations

from typing import Any

from mythbench.tasks.registry import get_task, list_tasks

UNSCORED = "."


def _span(values: list[int]) -> str:
    """[2..16] for a contiguous run, the list itself otherwise: keeps `mythbench ls` lines short."""
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"[{values[0]}..{values[-1]}]"
    return "[" + ", ".join(map(str, values)) + "]"


def describe_tasks() -> list[str]:
    """One line per packaged task: name, family, train -> test difficulties, vocabulary, attention."""
    lines = []
    tasks = [get_task(name) for name in list_tasks()]
    width = max((len(t.name) for t in tasks), default=0)
    for task in tasks:
        s = task.spec
        summary = s.description.split(":")[0].split(". ")[0].rstrip(".")
        if len(summary) > 80:
            summary = summary[:77] + "..."
        lines.append(
            f"{s.name:<{width}}  v{s.version}  train {_span(s.train_difficulties)} -> test "
            f"{_span(s.test_difficulties)}  vocab {task.vocab_size}  {s.attention}  {summary}"
        )
    return lines


def sample_instances(
    name: str, difficulty: int, n: int = 3, split: str = "test", seed: int = 0
) -> list[dict[str, Any]]:
    """Decoded instances: input tokens, the targets scored at test and the training targets (None
    elsewhere; chain trains on more positions than it scores), and the solver's hints."""
    task = get_task(name)
    batch = task.generate(split, difficulty, n, seed)
    out = []
    for i in range(len(batch)):
        tokens = task.decode(batch.tokens[i])
        targets = task.decode(batch.targets[i])
        solution = task.solve(tokens)
        out.append(
            {
                "task": task.name,
                "split": split,
                "difficulty": difficulty,
                "seed": seed,
                "index": i,
                "attention": task.spec.attention,
                "input": tokens,
                "target": [t if scored else None for t, scored in zip(targets, batch.mask[i], strict=True)],
                "training_target": [t if trained else None
                                    for t, trained in zip(targets, batch.supervised[i], strict=True)],
                "hints": solution.hints,
            }
        )
    return out


def format_instances(instances: list[dict[str, Any]], width: int = 100) -> str:
    """Each instance as aligned rows, the input token above its target ('.' where not scored), wrapped."""
    blocks = []
    for inst in instances:
        head = f"{inst['task']}  split={inst['split']}  difficulty={inst['difficulty']}  #{inst['index']}"
        lines = [head]
        cells = [
            (tok, UNSCORED if tgt is None else tgt) for tok, tgt in zip(inst["input"], inst["target"], strict=True)
        ]
        row_in, row_out = "  in  ", "  out "
        for tok, tgt in cells:
            w = max(len(tok), len(tgt))
            if len(row_in) + w + 1 > width and row_in.strip() != "in":
                lines += [row_in.rstrip(), row_out.rstrip()]
                row_in, row_out = "  in  ", "  out "
            row_in += tok.rjust(w) + " "
            row_out += tgt.rjust(w) + " "
        lines += [row_in.rstrip(), row_out.rstrip()]
        scored = [t for t in inst["target"] if t is not None]
        if inst["hints"] != scored:  # parity/state: the hints are the targets, already shown
            for step, hint in enumerate(inst["hints"]):
                text = f"  hint {step}: {hint}"
                lines.append(text if len(text) <= width else text[: width - 3] + "...")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
