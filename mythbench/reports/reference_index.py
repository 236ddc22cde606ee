"""The index of results/reference/: one row per folder holding a results.json or a tune.json (a `mythbench
tune` search), history included, with the provenance that file records: command, commit, seeds, budget,
wall time, and the summed training time of its cells. results/README.md's copy is a generated block
(tests/test_answer.py); a field a file does not record is written as such, never guessed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mythbench.analysis.tables import markdown

NOT_RECORDED = "not recorded"


def _field(value: Any) -> str:
    return NOT_RECORDED if value is None or value == "" else str(value)


def _commit(git: Mapping[str, Any] | None) -> str:
    commit = (git or {}).get("commit")
    if not commit:
        return NOT_RECORDED
    return f"{commit[:7]}" + (" (uncommitted changes)" if (git or {}).get("dirty") else "")


def budget_text(doc: Mapping[str, Any]) -> str:
    """Preset and training steps x batch; a scaling ladder's points train `scale.steps` steps."""
    config = doc.get("config") or {}
    train = config.get("train") or {}
    own_steps = {"scale": (config.get("scale") or {}).get("steps"), "tune": (doc.get("search") or {}).get("steps")}
    steps = own_steps.get(doc.get("kind")) or train.get("steps")
    preset = _field(doc.get("preset"))
    if steps is None or train.get("batch_size") is None:
        return f"{preset}, steps {NOT_RECORDED}"
    return f"{preset}, {steps} x {train['batch_size']}"


def _wall_time(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return NOT_RECORDED
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _cell_training(doc: Mapping[str, Any]) -> str:
    """The summed training time of the cells a run (or ladder) holds: its compute, which a resumed command's
    own wall time does not show (one that reused finished cells took seconds)."""
    models = [m for m in doc.get("models") or [] if isinstance(m, Mapping)]
    trained = [*(doc.get("points") or []), *(run for model in models for run in model.get("runs") or [])]
    times = [t for cell in trained if isinstance(cell, Mapping)
             for t in [(cell.get("train") or {}).get("wall_time_s")] if isinstance(t, (int, float))]
    return _wall_time(sum(times)) if times else NOT_RECORDED


def index_row(folder: str, doc: Mapping[str, Any]) -> dict[str, str]:
    """One folder's row, from its results.json's (or tune.json's) provenance fields."""
    seeds = doc.get("seeds") or (doc.get("search") or {}).get("seeds")
    command = doc.get("command")
    return {"folder": f"[{folder}]({folder}/)", "kind": _field(doc.get("kind")),
            "task": _field((doc.get("task") or {}).get("name")), "status": _field(doc.get("status")),
            "command": f"`{command}`" if command else NOT_RECORDED, "commit": _commit(doc.get("git")),
            "seeds": ", ".join(map(str, seeds)) if seeds else NOT_RECORDED, "budget": budget_text(doc),
            "wall time": _wall_time(doc.get("wall_time_s")), "cells' training": _cell_training(doc)}


def reference_index(reference_dir: Path) -> pd.DataFrame:
    """Every folder under `reference_dir` with a results.json or tune.json, in path order, relative to results/."""
    rows = []
    for path in sorted([*reference_dir.rglob("results.json"), *reference_dir.rglob("tune.json")]):
        folder = path.parent.relative_to(reference_dir.parent).as_posix()
        rows.append(index_row(folder, json.loads(path.read_text())))
    return pd.DataFrame(rows)


def index_markdown(root: Path) -> str:
    """results/README.md's generated block: the index table."""
    return markdown(reference_index(root / "results" / "reference")) + "\n"
