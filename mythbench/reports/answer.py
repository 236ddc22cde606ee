"""The answer table: does a looped model trained on difficulties up to D solve 1.5D, 2D and 4D by looping more,
and do its non-looped twins? Built from committed reference results only (`SOURCES`), so README.md's copy
(a generated block, tests/test_answer.py) changes only when those files or this list do.

Per task, every looped model a standard run trains (`models:` of `recipes.yaml`) and each one's twins
(`twins:`): exact match at the largest training difficulty and at 1.5x, 2x and 4x of it (those that are
difficulties of the task), under the pre-registered loop rule and under the adaptive early-exit rule
`ADAPTIVE_RULE`, as mean [95% interval] (per seed). A model no source holds is named in the notes under
the table, never silently left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mythbench.analysis.stats import summarize_seeds
from mythbench.analysis.tables import DASH, markdown
from mythbench.config import resolve_run_config
from mythbench.core.errors import ConfigError
from mythbench.reports.reference_index import budget_text
from mythbench.results.results_frame import load

REFERENCE_DIR = Path("results/reference")
MULTIPLES = (1.0, 1.5, 2.0, 4.0)  # of the largest training difficulty
# The early-exit rule shown as "adaptive": stop once every scored token's top probability is above
# `eval.confidence_threshold` (0.99). Fixed before any result was read (issue 30's example of a usable rule);
# the `kl` and `delta_h` exits are in each run's report.md.
ADAPTIVE_RULE = "confidence"


@dataclass(frozen=True)
class Source:
    """One committed reference folder the table reads, and how its models are named in the table."""

    folder: str  # under results/reference/
    only: tuple[str, ...] = ()  # the models (names in the file) to take; empty: all of them
    names: Mapping[str, str] = field(default_factory=dict)  # file name -> table name, where a run trained a
    # looped model under another's name (the control trained as a run's main model is `rdt` in its files)


# Task -> its references, newest first within a task. New 5-seed references replace these entries.
SOURCES: dict[str, tuple[Source, ...]] = {
    "parity": (Source("standard/parity"),),
    "chain-grows": (Source("control/chain-grows-standard", names={"rdt": "control"}),
                    Source("control/chain-grows-standard-isoparam-seed0", only=("iso-param",),
                           names={"rdt": "control"})),
}


@dataclass
class ModelResult:
    """One model of one source: its per-seed accuracy at each difficulty, by rule."""

    name: str
    twin_of: str | None
    source: str
    budget: str
    seeds: list[int]
    legacy_twin: bool  # a file from before `twin_of`: the twin's owner is inferred from its role
    loop_rule: str | None  # a looped model's pre-registered rule (`eval.loop_rule`)
    threshold: float | None  # the adaptive rule's threshold, as stored
    fixed: dict[int, list[tuple[int, int]]]  # difficulty -> (correct, n) per seed, at the rule's loop count
    adaptive: dict[int, list[tuple[int, int, float]]]  # difficulty -> (correct, n, mean loops) per seed


def _raw(root: Path, folder: str) -> dict[str, Any]:
    """The provenance and early exits of a reference, as plain JSON (the cells come through `load`)."""
    path = root / REFERENCE_DIR / folder / "results.json"
    if not path.is_file():
        raise ConfigError(f"{path}: not found (a reference folder named in mythbench.reports.answer.SOURCES)")
    return json.loads(path.read_text())


def read_source(root: Path, source: Source) -> tuple[dict[str, Any], list[ModelResult]]:
    """The task block of a source's document and its models, renamed to the table's names."""
    doc = _raw(root, source.folder)
    cells = load(root / REFERENCE_DIR / source.folder)
    models = []
    for entry in doc["models"]:
        if source.only and entry["name"] not in source.only:
            continue
        rows = cells[cells.model == entry["name"]]
        owner = rows.twin_of.iloc[0] if len(rows) else None
        owner = None if pd.isna(owner) else source.names.get(owner, owner)
        legacy = owner is not None and "twin_of" not in entry
        name = f"{owner}-{entry['role']}" if legacy else source.names.get(entry["name"], entry["name"])
        headline = rows[rows.headline]
        fixed = {int(d): [(int(r.correct), int(r.n)) for r in g.sort_values("seed").itertuples()]
                 for d, g in headline.groupby("difficulty")}
        adaptive: dict[int, list[tuple[int, int, float]]] = {}
        thresholds = set()
        for run in sorted(entry["runs"], key=lambda r: r["seed"]):
            for exit_ in run.get("early_exit") or []:
                if run.get("status") == "complete" and exit_["rule"] == ADAPTIVE_RULE:
                    thresholds.add(exit_["threshold"])
                    adaptive.setdefault(exit_["difficulty"], []).append(
                        (exit_["correct"], exit_["n"], exit_["mean_loops"]))
        seeds = sorted(int(s) for s in rows.seed.unique())
        rule = (entry.get("loop_rule") or {}).get("name")
        if len(thresholds) > 1:
            raise ConfigError(f"{source.folder}: {entry['name']} has several {ADAPTIVE_RULE} thresholds {thresholds}")
        threshold = thresholds.pop() if thresholds else None
        models.append(ModelResult(name, owner, source.folder, budget_text(doc), seeds, legacy, rule, threshold,
                                  fixed, adaptive))
    return doc["task"], models


def target_difficulties(task: Mapping[str, Any]) -> dict[float, int | None]:
    """Multiple of the largest training difficulty D -> that difficulty, or None where the task has none."""
    largest = max(task["train_difficulties"])
    known = set(task["train_difficulties"]) | set(task["test_difficulties"])
    targets = {m: round(m * largest) for m in MULTIPLES}
    return {m: d if d in known and d == m * largest else None for m, d in targets.items()}


def accuracy_text(per_seed: Sequence[tuple[int, int]], mean_loops: Sequence[float] = ()) -> str:
    """`mean [low, high] (seed / seed / ...)`, the interval over seeds (one seed: Wilson), and the adaptive
    rule's mean loop count."""
    accuracies = [c / n for c, n in per_seed]
    stats = summarize_seeds(accuracies, per_seed if len(per_seed) == 1 else [])
    text = f"{stats['mean']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"
    if len(accuracies) > 1:
        text += " (" + " / ".join(f"{a:.2f}" for a in accuracies) + ")"
    if mean_loops:
        text += f" @{sum(mean_loops) / len(mean_loops):.1f} loops"
    return text


def _rows(model: ModelResult, targets: dict[float, int | None]) -> list[dict[str, str]]:
    """A twin's one row; a looped model's rows under the fixed and the adaptive rule."""
    where = f"`{model.source}` ({model.budget}, {len(model.seeds)} seed{'s' * (len(model.seeds) > 1)})"
    base = {"model": model.name, "twin of": model.twin_of or DASH, "reference": where}
    points = {_column(d, targets): d for d in targets.values() if d is not None}
    fixed = {col: accuracy_text(model.fixed[d]) if d in model.fixed else "not evaluated" for col, d in points.items()}
    if model.twin_of is not None:
        return [base | {"rule": "one pass"} | fixed]
    adaptive = {col: accuracy_text([(c, n) for c, n, _ in model.adaptive[d]], [x for _, _, x in model.adaptive[d]])
                if d in model.adaptive else "not stored" for col, d in points.items()}
    label = ADAPTIVE_RULE if model.threshold is None else f"{ADAPTIVE_RULE} > {model.threshold:g}"
    return [base | {"rule": f"fixed (`{model.loop_rule}`)"} | fixed, base | {"rule": f"adaptive ({label})"} | adaptive]


def _column(difficulty: int, targets: dict[float, int | None]) -> str:
    multiple = next(m for m, d in targets.items() if d == difficulty)
    return f"d = {difficulty} ({multiple:g}x)"


def task_table(task_name: str, root: Path) -> tuple[pd.DataFrame, list[str]]:
    """The table of one task and its notes: what was inferred, renamed, missing or not a difficulty."""
    task: dict[str, Any] = {}
    found: dict[str, ModelResult] = {}
    renamed: dict[tuple[str, str], list[str]] = {}
    for source in SOURCES[task_name]:
        task, models = read_source(root, source)
        for model in models:
            found.setdefault(model.name, model)
        for file_name, table_name in source.names.items():
            renamed.setdefault((file_name, table_name), []).append(f"`{source.folder}`")
    notes = [f"{' and '.join(folders)} trained the {table_name} as the run's main model, named `{file_name}` in "
             f"{'their' if len(folders) > 1 else 'its'} files" for (file_name, table_name), folders in renamed.items()]
    targets = target_difficulties(task)
    missing = [f"{m:g}x = {m * max(task['train_difficulties']):g}" for m, d in targets.items() if d is None]
    if missing:
        notes.append(f"not a difficulty of {task_name} v{task['version']}: {', '.join(missing)}")
    if any(m.legacy_twin for m in found.values()):
        notes.append("these references predate `twin_of`: a twin belongs to its file's `rdt`-role model, the "
                     "looped model its file trained")
    rows, absent = [], []
    expected = resolve_run_config(task_name, "standard")
    for looped in expected.models:
        for name in (looped, *(f"{looped}-{kind}" for kind in expected.twins)):
            if name in found:
                rows += _rows(found[name], targets)
            else:
                absent.append(f"`{name}`")
    if absent:
        notes.append(f"no committed reference holds {', '.join(absent)} on {task_name}")
    return pd.DataFrame(rows).fillna(DASH), notes


LEGEND = ("Exact match at the largest training difficulty D and at 1.5x, 2x and 4x of it: mean over seeds [95% "
          "interval: bootstrap over seeds; one seed: Wilson over its test instances] (each seed). `fixed`: the "
          "pre-registered loop rule (`eval.loop_rule`); `adaptive`: each sequence stops at the first loop where "
          "every scored token's top probability is above `eval.confidence_threshold` (the last evaluated loop if "
          f"none; the `{ADAPTIVE_RULE}` early exit), with its mean loop count; twins run once. Reference: its "
          "folder under `results/reference/` (preset, training steps x batch, seeds).\n")


def answer_markdown(root: Path) -> str:
    """README.md's generated answer block: one table per task of `SOURCES`, each with its notes."""
    parts = [LEGEND]
    for task_name in SOURCES:
        table, notes = task_table(task_name, root)
        parts.append(f"**{task_name}**\n\n{markdown(table)}\n\n" + "".join(f"- {n}.\n" for n in notes))
    return "\n".join(parts).rstrip("\n") + "\n"
