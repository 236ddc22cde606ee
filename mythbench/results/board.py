"""The leaderboard table: its rows, computed from a submittable results document, as CSV and as markdown.

leaderboard.csv is the source of truth (floats written with repr, so it reproduces the stored numbers
exactly); LEADERBOARD.md is generated from it, with every string escaped whatever the CSV holds.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pandas as pd

from mythbench.analysis.metrics import Metric, secondary
from mythbench.analysis.stats import LEARNED, seed_verdict, seeds_learned, with_derived
from mythbench.analysis.tables import csv_text, markdown
from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_text
from mythbench.results.results_frame import training_settings, twin_of
from mythbench.results.results_model import HEADLINE_KEY
from mythbench.results.safejson import MAX_BYTES
from mythbench.results.schema import leaderboard_difficulties

CSV_NAME, MD_NAME = "leaderboard.csv", "LEADERBOARD.md"
POINTS = ("train", "2x", "max")
# a table ranks only rows that agree on these: the same test set, trained at the same preset and budget
TABLE_KEYS = ["task", "task_version", "fingerprint", "preset", "budget"]
BOARD_ONLY = ("submitter", "date")  # every other column is recomputed from the stored results file


def columns() -> tuple[str, ...]:
    """The CSV's columns: at each point exact match with its interval, then every other registered metric (by
    its short name; plugin metrics too: a board written before one was registered reads it as blank)."""
    per_point = ("d", "acc", "low", "high", *(m.short for m in secondary()), "per_seed")
    return (*TABLE_KEYS, "model", "twin_of", "family", "role", "params_unique", "params_total", "params_active",
            "flops_forward", "train_loops", "loop_rule", "training",
            *(f"{c}_{p}" for p in POINTS for c in per_point),
            "oracle_acc_max", "oracle_loops_max", "seeds", "in_distribution", *BOARD_ONLY, "commit", "dirty",
            "content_hash")


def _text(v: Any) -> str:
    """One CSV cell; floats as repr so the board round-trips exactly and verify can compare strings."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def budget(config: Any) -> str:
    """What a run spent training each model, from its stored config: steps x batch at a width. Runs at
    different budgets are never ranked together, whatever their preset is called."""
    train = config.get("train") if isinstance(config, dict) else None
    model = config.get("model") if isinstance(config, dict) else None
    values = [section.get(key) if isinstance(section, dict) else None
              for section, key in ((train, "steps"), (train, "batch_size"), (model, "d_model"))]
    if not all(type(v) is int for v in values):
        return "unrecorded"
    return "{} steps x {} batch, d_model {}".format(*values)


def _per_seed(model: dict, difficulty: int, loops: int | None) -> str:
    """Every complete seed's headline accuracy at one difficulty, in seed order (as the `seeds` column)."""
    runs = sorted((r for r in model["runs"] if r["status"] == "complete"), key=lambda r: r["seed"])
    cells = [next((c for c in r["cells"] if c["difficulty"] == difficulty and c.get("loops") == loops), None)
             for r in runs]
    return " ".join(repr(float(c["accuracy"])) if c is not None else "-" for c in cells)


def board_rows(doc: dict, digest: str, submitter: str, date: str) -> list[dict[str, str]]:
    """The leaderboard rows of one submittable results document, one per model.

    Accuracy is the headline: under the run's pre-registered loop rule (schema 2), or at the training loop
    count for schema 1 files, whose runs had no other rule, with every seed's value beside it. The oracle (best
    loop count chosen on the test labels) is its own, labelled column.
    """
    doc = with_derived(doc)
    task = doc["task"]
    points = leaderboard_difficulties(task["train_difficulties"], task["test_difficulties"])
    v1 = doc["schema_version"] == 1
    headline = HEADLINE_KEY[doc["schema_version"]]
    rows = []
    for m in doc["models"]:
        summary = {s["difficulty"]: s for s in m["summary"]}
        row: dict[str, Any] = {
            "task": task["name"], "task_version": task["version"], "fingerprint": task["fingerprint"],
            "preset": doc.get("preset"), "budget": budget(doc.get("config")),
            "model": m["name"], "twin_of": twin_of(m, doc["models"]), "family": m["family"], "role": m["role"],
            "params_unique": m["params"]["unique"], "params_total": m["params"]["total"],
            "params_active": m["params"]["active"],
            "flops_forward": m["flops_per_token"]["forward"], "train_loops": m["train_loops"],
            "loop_rule": "train" if v1 else doc["evaluation"]["loop_rule"],
            "training": training_settings(doc, m["name"])}
        for tag, d in zip(POINTS, points, strict=True):
            stat = summary[d][headline]
            loops = stat.get("loops") if not v1 else m["train_loops"]
            row |= {f"d_{tag}": d, f"acc_{tag}": stat["mean"], f"low_{tag}": stat["ci_low"],
                    f"high_{tag}": stat["ci_high"], f"per_seed_{tag}": _per_seed(m, d, loops)}
            row |= {f"{m.short}_{tag}": None if v1 else stat.get(m.name) for m in secondary()}
        best = summary[points[2]]["oracle_best"]
        seeds = sorted(r["seed"] for r in m["runs"] if r["status"] == "complete")
        row |= {"oracle_acc_max": best["mean"], "oracle_loops_max": best["loops"],
                "seeds": " ".join(map(str, seeds)),
                "in_distribution": seed_verdict(seeds_learned(m, task["train_difficulties"])),
                "submitter": submitter, "date": date,
                "commit": doc["git"]["commit"], "dirty": doc["git"]["dirty"], "content_hash": digest}
        rows.append({c: _text(row[c]) for c in columns()})
    return rows


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#!~])")


def md_escape(text: str) -> str:
    """Inert table-cell text: markup characters backslash-escaped, and no line break can end the row."""
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", text))


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _acc(row: pd.Series, tag: str) -> str:
    """Mean [interval] (each other metric recorded, by its short name), then each seed."""
    vals = [_float(row[f"{k}_{tag}"]) for k in ("acc", "low", "high")]
    if any(v is None for v in vals):
        return md_escape(row[f"acc_{tag}"])
    others = [(m.short, _float(row.get(f"{m.short}_{tag}", ""))) for m in secondary()]
    others_text = ", ".join(f"{short} {v:.3f}" for short, v in others if v is not None)
    seeds = [_float(v) for v in row[f"per_seed_{tag}"].split()]
    shown = " / ".join("-" if v is None else f"{v:.2f}" for v in seeds)
    return (f"{vals[0]:.3f} [{vals[1]:.3f}, {vals[2]:.3f}]" + (f" ({others_text})" if others_text else "")
            + (f"; seeds {shown}" if len(seeds) > 1 else ""))


def _number(text: str, fmt: str) -> str:
    value = _float(text)
    return format(value, fmt) if value is not None else md_escape(text)


def _display(row: pd.Series) -> list[str]:
    """The markdown cells of one board row, every string escaped."""
    oracle = _number(row["oracle_acc_max"], ".3f") + (
        f" ({md_escape(row['oracle_loops_max'])})" if row["oracle_loops_max"] else "")
    commit = md_escape(row["commit"][:12] or "-") + (" (dirty)" if row["dirty"] == "true" else "")
    return [md_escape(row["model"]), md_escape(row["twin_of"] or "-"), md_escape(row["role"]),
            _number(row["params_unique"], ",.0f"), _number(row["flops_forward"], ".3g"), md_escape(row["loop_rule"]),
            md_escape(row["training"]),
            *(_acc(row, tag) for tag in POINTS), oracle, md_escape(row["seeds"]), md_escape(row["in_distribution"]),
            md_escape(row["submitter"]), md_escape(row["date"]), commit]


def board_frame(rows: list[dict[str, str]]) -> pd.DataFrame:
    """The board as a DataFrame of strings in columns() order (the CSV's exact text, nothing parsed)."""
    return pd.DataFrame(rows, columns=pd.Index(columns(), dtype=object), dtype=object)


def _metric_columns(metric: Metric) -> set[str]:
    return {f"{metric.short}_{p}" for p in POINTS}


def _recorded(rows: list[dict[str, str]]) -> list[Metric]:
    """The secondary metrics some row has a value of: the page describes what it shows, so registering a
    plugin metric does not change a board none of whose files counted it."""
    return [m for m in secondary() if any(row.get(c) for row in rows for c in _metric_columns(m))]


def render_markdown(rows: list[dict[str, str]], current_versions: dict[str, int]) -> str:
    """LEADERBOARD.md from the CSV rows: one table per (task, version, test set, preset, budget), best headline
    accuracy at the largest test difficulty first; results of different task versions or budgets are never
    ranked together, and a table of a version that is not the task's current one is marked stale (kept as
    history). Every string is escaped, whatever the CSV holds."""
    lines = ["# mythbench leaderboard", "",
             "Generated from `leaderboard.csv` by `mythbench submit`; do not edit it by hand "
             "(`mythbench verify` checks it).",
             "Accuracy is exact match under the run's pre-registered loop rule (*train*: the model's training "
             "loop count; *difficulty*: loops in proportion to the difficulty, as trained): mean over seeds "
             "[95% bootstrap interval over seeds] (every other metric recorded, by its short name: "
             + ", ".join(f"*{m.short}* {m.description}" for m in _recorded(rows)) + "), then each seed. "
             "The *oracle* column is the best loop count at the largest test difficulty chosen on the test labels "
             "themselves: an upper bound, not a result. Each table holds one preset and training budget (steps x "
             "batch at a width): runs at different budgets are never ranked together. A twin (iso-param, "
             "iso-flop) is matched to the looped model in its *twin of* column; *training* gives its learning rate "
             "and recipe, and whether a tuning search chose them on the validation split (`mythbench tune`, "
             "with its trial count) or they are the run config's own; *in distribution* says how many "
             f"seeds reached {LEARNED} at the largest training difficulty, and flags a model on which some did "
             "and others did not as *seed-fragile*.", ""]
    board = board_frame(rows)
    # ranking: best headline at the largest test difficulty, then at 2x; ties by submission and model
    board["_max"], board["_2x"] = (-board[c].map(lambda t: _float(t) or 0.0) for c in ("acc_max", "acc_2x"))
    board = board.sort_values([*TABLE_KEYS, "_max", "_2x", "content_hash", "model"])  # several columns: a stable lexsort
    for (task, version, fingerprint, preset, spent), group in board.groupby(TABLE_KEYS, sort=False):
        first = group.iloc[0]
        heads = [f"d={md_escape(first['d_train'])} (train)", f"d={md_escape(first['d_2x'])}",
                 f"d={md_escape(first['d_max'])}"]
        header = ["model", "twin of", "role", "params", "FLOPs/token", "loop rule", "training", *heads,
                  f"oracle @ {heads[2]} (loops)", "seeds", "in distribution", "submitter", "date", "commit"]
        current = current_versions.get(task)
        stale = [] if str(current) == version else [
            f"**Stale, kept as history:** the current {md_escape(task)} task is "
            + (f"version {current}" if current is not None else "no longer in the suite")
            + "; these results were scored on another test set and are not comparable with it.", ""]
        table = pd.DataFrame([_display(row) for _, row in group.iterrows()],
                             columns=pd.Index(header, dtype=object), dtype=object)
        lines += [f"## {md_escape(task)} v{md_escape(version)}, preset {md_escape(preset or '-')}: "
                  f"{md_escape(spent)}", "", *stale,
                  f"Test set fingerprint {md_escape(fingerprint[:16])}.", "", markdown(table, escape=False), ""]
    return "\n".join(lines)


def read_board(results_dir: Path) -> list[dict[str, str]]:
    """The leaderboard rows, or ConfigError listing what is wrong with leaderboard.csv. Parsed with the csv
    module rather than pandas.read_csv: a hostile board must be refused with the line of each bad record, and
    every field kept as its exact text."""
    path = Path(results_dir) / CSV_NAME
    if not path.exists():
        return []
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{CSV_NAME}: cannot be read as UTF-8 text ({e})") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{CSV_NAME}: larger than {MAX_BYTES:,} bytes")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        records = list(reader)
    except csv.Error as e:  # a field over the csv module's limit, or a NUL byte
        raise ConfigError(f"{CSV_NAME}: line {reader.line_num}: {e}") from None
    expected = columns()
    header = tuple(records[0]) if records else ()
    unrecorded = _unrecorded_columns(header)
    if header != tuple(c for c in expected if c not in unrecorded):
        missing, extra = [c for c in expected if c not in header], [c for c in header if c not in expected]
        raise ConfigError(f"{CSV_NAME}: the header is not the expected columns {', '.join(expected)}"
                          + (f"; missing {', '.join(missing)}" if missing else "")
                          + (f"; unexpected {', '.join(map(repr, extra))[:200]}" if extra else ""))
    bad = [f"{CSV_NAME}: line {i}: {len(r)} fields, expected {len(header)}"
           for i, r in enumerate(records[1:], 2) if len(r) != len(header)]
    if bad:
        raise ConfigError(bad)
    # rows written before the metric existed hold no value of it: blank, as board_rows writes a missing count
    return [dict.fromkeys(unrecorded, "") | dict(zip(header, r, strict=True)) for r in records[1:]]


def _unrecorded_columns(header: tuple[str, ...]) -> set[str]:
    """The columns of every metric beside exact match that `header` has none of: registered since the board
    was written."""
    return set().union(*(cols for cols in map(_metric_columns, secondary()) if not cols & set(header)))


def write_board(results_dir: Path, rows: list[dict[str, str]], current_versions: dict[str, int]) -> None:
    atomic_write_text(results_dir / CSV_NAME, csv_text(board_frame(rows)))
    atomic_write_text(results_dir / MD_NAME, render_markdown(rows, current_versions))
