"""Reading results.json into pandas: the one reader behind `mythbench.load`, the report and the tables.

`load(path)` takes a run directory or a results.json and returns a tidy DataFrame of cells, one row per
model x seed x difficulty x loops, with the provenance that tells results apart (task, version, test-set
fingerprint, commit, preset, schema version). Files are read as untrusted data (mythbench/safejson.py: bounded
size and depth, no NaN) and, by default, validated against the results model before any number is used; every
rate, interval and summary is then computed from the stored counts (`analysis.stats.with_derived`).
Importing this module pulls in pandas and scipy (the validator), never torch or matplotlib.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mythbench.core.errors import ConfigError
from mythbench.analysis.metrics import secondary
from mythbench.analysis.stats import with_derived
from mythbench.results.safejson import read_json_file
from mythbench.results.schema import check_schema

EARLY_EXIT_COLUMNS = ["model", "role", "seed", "difficulty", "rule", "threshold", "n", "correct", "accuracy",
                      "ci_low", "ci_high", "mean_loops"]
SUMMARY_BLOCKS = [("headline", "headline"), ("acc_train", "acc_at_train_loops"), ("oracle", "oracle_best"),
                  ("acc_max", "acc_at_max_loops")]


def cell_columns() -> list[str]:
    """A cell row: exact match with its interval, then every other registered metric's rate (plugins too)."""
    return ["model", "role", "seed", "difficulty", "loops", "n", "correct", "accuracy", "ci_low", "ci_high",
            *(m.name for m in secondary()), "loss"]


def stat_fields() -> list[str]:
    return ["mean", "std", "ci_low", "ci_high", *(m.name for m in secondary())]


def summary_columns() -> list[str]:
    return (["model", "role", "difficulty", "split", "headline_loops"]
            + [f"{p}_{s}" for p, _ in SUMMARY_BLOCKS for s in stat_fields()] + ["oracle_loops", "overthinking_drop"])
PROVENANCE_COLUMNS = ["task", "task_version", "fingerprint", "schema_version", "preset", "commit", "dirty"]
INT_COLUMNS = ("seed", "difficulty", "loops", "n", "correct", "train_loops", "task_version", "schema_version",
               "headline_loops", "oracle_loops")


def results_path(path: Path | str) -> Path:
    """`path` itself if it is a file, else the results.json inside the run directory `path`."""
    path = Path(path)
    return path / "results.json" if path.is_dir() else path


def read_results(path: Path | str, validate: bool = True) -> dict[str, Any]:
    """A results document from a run directory or file; ConfigError if missing, unreadable or (validate)
    not valid under its schema, with every problem listed. A validated run's derived numbers are computed from
    its counts."""
    file = results_path(path)
    if not file.is_file():
        raise ConfigError(f"{file} not found: is {Path(path)} a run directory or a results.json?")
    doc = read_json_file(file)
    if validate:
        problems = check_schema(doc)
        if problems:
            raise ConfigError([f"{file}: {p}" for p in problems])
    return with_derived(doc) if validate and doc.get("kind") == "run" else doc


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """Integer columns as pandas' nullable Int64 (a standard model's loops stay missing, not 4.0)."""
    for col in INT_COLUMNS:
        if col in df.columns:
            df[col] = pd.array([None if v is None or v != v else int(v) for v in df[col]], dtype="Int64")
    return df


def complete_runs(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs with numbers worth showing, in seed order; diverged runs carry none."""
    return sorted((r for r in model.get("runs", []) if r.get("status") == "complete"), key=lambda r: r["seed"])


def cells_frame(doc: dict[str, Any], provenance: bool = False) -> pd.DataFrame:
    """The cells of every complete run (cell_columns()), plus with `provenance` the family, the looped model a twin
    belongs to (`twin_of`), split, training loop count, whether the cell is the headline (the model's pre-registered loop count there; schema 1: the
    training loop count) and the file's provenance columns."""
    task, git = doc.get("task") or {}, doc.get("git") or {}
    train = set(task.get("train_difficulties") or [])
    rows = []
    for m in doc["models"]:
        rule = (m.get("loop_rule") or {}).get("loops") or {}
        if doc.get("schema_version") == 1:  # version 1's only rule: the training loop count
            rule = {str(c["difficulty"]): m.get("train_loops") for r in m.get("runs", []) for c in r.get("cells", [])}
        for run in complete_runs(m):
            for cell in run.get("cells", []):
                row = {"model": m["name"], "role": m.get("role"), "seed": run["seed"], **cell}
                if provenance:
                    d, loops = cell["difficulty"], cell["loops"]
                    row |= {"family": m.get("family"), "twin_of": twin_of(m, doc["models"]),
                            "split": "train" if d in train else "test",
                            "train_loops": m.get("train_loops"),
                            "headline": loops is None or rule.get(str(d)) == loops,
                            "task": task.get("name"), "task_version": task.get("version"),
                            "fingerprint": task.get("fingerprint"), "schema_version": doc.get("schema_version"),
                            "preset": doc.get("preset"), "commit": git.get("commit"), "dirty": git.get("dirty")}
                rows.append(row)
    extra = ["family", "twin_of", "split", "train_loops", "headline", *PROVENANCE_COLUMNS] if provenance else []
    return typed(pd.DataFrame(rows, columns=cell_columns() + extra))


def early_exit_frame(doc: dict[str, Any]) -> pd.DataFrame:
    rows = [{"model": m["name"], "role": m.get("role"), "seed": run["seed"], **e}
            for m in doc["models"] for run in complete_runs(m) for e in run.get("early_exit") or []]
    return typed(pd.DataFrame(rows, columns=EARLY_EXIT_COLUMNS))


def summary_frame(doc: dict[str, Any], summaries: dict[str, list[dict[str, Any]]]) -> pd.DataFrame:
    """One row per model and difficulty: the headline, train-loop, oracle and max-loop statistics side by side.
    `summaries` maps model name to its summary entries (stored, or recomputed by the report)."""
    rows = []
    for m in doc["models"]:
        for entry in summaries[m["name"]]:
            row = {"model": m["name"], "role": m.get("role"), "difficulty": entry["difficulty"],
                   "split": entry["split"], "headline_loops": (entry.get("headline") or {}).get("loops"),
                   "oracle_loops": entry["oracle_best"].get("loops"), "overthinking_drop": entry["overthinking_drop"]}
            for prefix, key in SUMMARY_BLOCKS:
                stats = entry.get(key) or {}
                row |= {f"{prefix}_{s}": stats.get(s) for s in stat_fields()}
            rows.append(row)
    return typed(pd.DataFrame(rows, columns=summary_columns()))


def load(path: Path | str, validate: bool = True) -> pd.DataFrame:
    """The cells of a run directory or results.json as a tidy DataFrame: one row per model x seed x difficulty
    x loops (complete runs only), with family, twin_of, split, train_loops, `headline` (the cell is at the model's
    pre-registered loop count) and the provenance columns task, task_version, fingerprint, schema_version,
    preset, commit and dirty. For example, the headline accuracy per model and difficulty:

        df = mythbench.load("results/reference/quick/parity")
        df[df.headline].groupby(["model", "difficulty"]).accuracy.mean()
    """
    doc = read_results(path, validate=validate)
    if doc.get("kind") != "run":
        raise ConfigError(f"{results_path(path)}: kind {doc.get('kind')!r}; load() reads run results "
                          "(a scale file's points are under doc['points'])")
    return cells_frame(doc, provenance=True)


def is_looped(model: dict[str, Any]) -> bool:
    """Looped (recurrent-depth) models carry train_loops; single-pass baselines carry null."""
    return model.get("train_loops") is not None


LEGACY_TWIN_ROLES = ("iso-param", "iso-flop")  # before `twin_of`, these were matched to the `rdt`-role model


def twin_of(model: dict[str, Any], models: list[dict[str, Any]]) -> str | None:
    """The name of the looped model `model` is a twin of: its `twin_of`, or in a file written before twins, the
    `rdt`-role model for an iso-param or iso-FLOP transformer; None for a looped model."""
    if "twin_of" in model or is_looped(model) or model.get("role") not in LEGACY_TWIN_ROLES:
        return model.get("twin_of")
    return next((m["name"] for m in models if m.get("role") == "rdt"), None)


def twin_groups(doc: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Each looped model followed by its own twins, in file order; a model that is neither stands alone."""
    models = doc["models"]
    owners = {m["name"]: twin_of(m, models) for m in models}
    names = {m["name"] for m in models if owners[m["name"]] is None}
    return [[m, *(t for t in models if owners[t["name"]] == m["name"])] for m in models
            if owners[m["name"]] is None or owners[m["name"]] not in names]


def recipe_text(train: Any) -> str:
    """A training recipe in words (`tied + progressive`), from a stored config's or tuning choice's train keys;
    keys of the wrong type are left out, so any validated file can be shown."""
    train = train if isinstance(train, dict) else {}
    parts = [str(train["recipe"])] if "recipe" in train else []
    if train.get("progressive") is True and "progressive" not in parts:  # the `progressive` recipe names it
        parts.append("progressive")
    jitter = train.get("loop_jitter")
    if isinstance(jitter, (int, float)) and not isinstance(jitter, bool) and jitter:
        parts.append(f"jitter {jitter:g}")
    if train.get("readout_loss", "last") != "last":
        parts.append(f"{train['readout_loss']} loss")
    return " + ".join(parts)


def model_train(doc: dict[str, Any], model: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The train keys `model` trained with (its tuned choice's over the run's) and its tuning record, if any."""
    config = doc.get("config")
    train = config.get("train") if isinstance(config, dict) else None
    train = train if isinstance(train, dict) else {}
    tuned = (doc.get("tuning") or {}).get("models", {}).get(model)
    if tuned is None:
        return train, None
    return train | tuned["chosen"]["train"] | {"lr": tuned["chosen"]["lr"]}, tuned


def training_settings(doc: dict[str, Any], model: str) -> str:
    """How `model`'s learning rate and recipe were set: chosen on validation by a tuning search (with how many
    trials it ran) or the run config's own, so a tuned row and an untuned one can be told apart."""
    train, tuned = model_train(doc, model)
    lr = train.get("lr")
    settings = [f"lr {lr:g}"] if isinstance(lr, (int, float)) and not isinstance(lr, bool) else []
    settings += [recipe_text(train)] if "recipe" in train else []
    how = f"tuned, best of {len(tuned['trials'])} trials" if tuned else "not tuned"
    return f"{', '.join(settings)}; {how}" if settings else how
