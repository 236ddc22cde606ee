"""Submissions and the leaderboard in results/: submit, verify, render, and the re-scoring comparison.

Layout (paths are built only from a validated task name and a content hash, never from user strings):
    results/leaderboard.csv                        one row per (submission, model); the source of truth
    results/LEADERBOARD.md                         generated from the CSV, never edited by hand
    results/submissions/<task>/<sha256>.json       the accepted results files, canonical content
    results/.leaderboard.lock                      flock'ed around every read-modify-write of the board
A rejected submission writes nothing at all.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mythbench.errors import ConfigError
from mythbench.io import atomic_write_text
from mythbench.jsonshape import is_int, show
from mythbench.safejson import MAX_BYTES, content_hash, read_json_file
from mythbench.schema import TASK_NAME_RE, check_schema, check_submittable, leaderboard_difficulties
from mythbench.stats import wilson_interval

CSV_NAME, MD_NAME, SUBMISSIONS = "leaderboard.csv", "LEADERBOARD.md", "submissions"
LOCK_NAME = ".leaderboard.lock"
POINTS = ("train", "2x", "max")
COLUMNS = ("task", "task_version", "fingerprint", "model", "family", "role", "params_unique", "params_total",
           "params_active", "flops_forward", "train_loops",
           *(f"{c}_{p}" for p in POINTS for c in ("d", "acc", "low", "high")),
           "best_acc_max", "best_loops_max", "seeds", "submitter", "date", "commit", "dirty", "content_hash")
# Columns recomputed from the stored results file; submitter and date exist only on the board.
DERIVED = tuple(c for c in COLUMNS if c not in ("submitter", "date"))
SUBMITTER_RE = re.compile(r"[^\W_](?:[\w .@+-]{0,62}[^\W_])?")
_HASH_FILE = re.compile(r"[0-9a-f]{64}\.json")


@dataclass(frozen=True)
class TaskIdentity:
    """What makes results comparable: the current task's version, test-set fingerprint and difficulties."""

    name: str
    version: int
    fingerprint: str
    train_difficulties: tuple[int, ...]
    test_difficulties: tuple[int, ...]


TaskLookup = Callable[[str], TaskIdentity]


def current_task(name: str) -> TaskIdentity:
    """The real task suite's current identity; tasks/ is imported lazily, never at mythbench import."""
    from tasks import get_task

    task = get_task(name)
    spec = task.spec
    return TaskIdentity(spec.name, spec.version, task.fingerprint(), tuple(spec.train_difficulties),
                        tuple(spec.test_difficulties))


@dataclass(frozen=True)
class SubmitOutcome:
    task: str
    content_hash: str
    submitter: str
    stored: Path
    rows: list[dict[str, str]]


def check_submitter(name: Any) -> list[str]:
    """A submitter name goes into the CSV and the markdown table, so it is short, printable and inert."""
    if not isinstance(name, str):
        return [f"name: expected a string, got {show(name)}"]
    if not SUBMITTER_RE.fullmatch(name) or ".." in name:
        return [f"name: {show(name)} is not allowed; use 1-64 letters, digits, spaces and . _ @ + -, "
                "starting and ending with a letter or digit, without '..' (no path separators or markup)"]
    return []


def check_current_task(doc: dict, lookup: TaskLookup) -> list[str]:
    """Results are comparable only on the current task version and the very same test set."""
    task = doc.get("task") if isinstance(doc.get("task"), dict) else {}
    name = task.get("name")
    if not (isinstance(name, str) and re.fullmatch(TASK_NAME_RE, name)):
        return []  # check_schema has reported it; never look up an unvalidated name
    try:
        cur = lookup(name)
    except ConfigError as e:
        return [f"task.name: {p}" for p in e.problems]
    out = []
    if task.get("version") != cur.version:
        out.append(f"task.version: {show(task.get('version'))}, but the current {name!r} task is version "
                   f"{cur.version}; rerun with the current mythbench to submit")
    if task.get("fingerprint") != cur.fingerprint:
        out.append(f"task.fingerprint: {show(task.get('fingerprint'))} is not the fingerprint of the current "
                   f"{name!r} test set ({cur.fingerprint}); the file was scored on different test data")
    for key in ("train_difficulties", "test_difficulties"):
        want = list(getattr(cur, key))
        if task.get(key) != want:
            out.append(f"task.{key}: {show(task.get(key))} differs from the current task's {want}")
    return out


def _text(v: Any) -> str:
    """One CSV cell; floats as repr so the board round-trips exactly and verify can compare strings."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def board_rows(doc: dict, digest: str, submitter: str, date: str) -> list[dict[str, str]]:
    """The leaderboard rows of one submittable results document, one per model."""
    task = doc["task"]
    points = leaderboard_difficulties(task["train_difficulties"], task["test_difficulties"])
    rows = []
    for m in doc["models"]:
        summary = {s["difficulty"]: s for s in m["summary"]}
        row: dict[str, Any] = {
            "task": task["name"], "task_version": task["version"], "fingerprint": task["fingerprint"],
            "model": m["name"], "family": m["family"], "role": m["role"],
            "params_unique": m["params"]["unique"], "params_total": m["params"]["total"],
            "params_active": m["params"]["active"],
            "flops_forward": m["flops_per_token"]["forward"], "train_loops": m["train_loops"]}
        for tag, d in zip(POINTS, points, strict=True):
            stat = summary[d]["acc_at_train_loops"]
            row |= {f"d_{tag}": d, f"acc_{tag}": stat["mean"], f"low_{tag}": stat["ci_low"],
                    f"high_{tag}": stat["ci_high"]}
        best = summary[points[2]]["best"]
        seeds = sorted(r["seed"] for r in m["runs"] if r["status"] == "complete")
        row |= {"best_acc_max": best["mean"], "best_loops_max": best["loops"],
                "seeds": " ".join(map(str, seeds)), "submitter": submitter, "date": date,
                "commit": doc["git"]["commit"], "dirty": doc["git"]["dirty"], "content_hash": digest}
        rows.append({c: _text(row[c]) for c in COLUMNS})
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


def _acc(row: dict[str, str], tag: str) -> str:
    vals = [_float(row[f"{k}_{tag}"]) for k in ("acc", "low", "high")]
    if any(v is None for v in vals):
        return md_escape(row[f"acc_{tag}"])
    return f"{vals[0]:.3f} [{vals[1]:.3f}, {vals[2]:.3f}]"


def _sort_key(row: dict[str, str]) -> tuple:
    acc_max, acc_2x = _float(row["acc_max"]) or 0.0, _float(row["acc_2x"]) or 0.0
    return (-acc_max, -acc_2x, row["content_hash"], row["model"])


def render_markdown(rows: list[dict[str, str]]) -> str:
    """LEADERBOARD.md from the CSV rows: one table per (task, version, test set), best at the largest
    test difficulty first. Every string is escaped, whatever the CSV holds."""
    lines = ["# mythbench leaderboard", "",
             "Generated from `leaderboard.csv` by `mythbench submit`; do not edit it by hand "
             "(`mythbench verify` checks it).",
             "Accuracy is exact match at the model's training loop count: mean over seeds [95% bootstrap "
             "interval over seeds]. *best* is the best loop count at the largest test difficulty.", ""]
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["task_version"], row["fingerprint"]), []).append(row)
    for (task, version, fingerprint), group in sorted(groups.items()):
        first = group[0]
        heads = [f"d={md_escape(first['d_train'])} (train)", f"d={md_escape(first['d_2x'])}",
                 f"d={md_escape(first['d_max'])}"]
        header = ["model", "role", "params", "FLOPs/token", *heads, f"best @ {heads[2]} (loops)", "seeds",
                  "submitter", "date", "commit"]
        lines += [f"## {md_escape(task)} v{md_escape(version)}", "",
                  f"Test set fingerprint {md_escape(fingerprint[:16])}.", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in sorted(group, key=_sort_key):
            params, flops = _float(row["params_unique"]), _float(row["flops_forward"])
            best = _float(row["best_acc_max"])
            cells = [md_escape(row["model"]), md_escape(row["role"]),
                     f"{params:,.0f}" if params is not None else md_escape(row["params_unique"]),
                     f"{flops:.3g}" if flops is not None else md_escape(row["flops_forward"]),
                     *(_acc(row, tag) for tag in POINTS),
                     (f"{best:.3f}" if best is not None else md_escape(row["best_acc_max"]))
                     + (f" ({md_escape(row['best_loops_max'])})" if row["best_loops_max"] else ""),
                     md_escape(row["seeds"]), md_escape(row["submitter"]), md_escape(row["date"]),
                     md_escape(row["commit"][:12] or "-") + (" (dirty)" if row["dirty"] == "true" else "")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def read_board(results_dir: Path) -> list[dict[str, str]]:
    """The leaderboard rows, or ConfigError listing what is wrong with leaderboard.csv."""
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
    records = list(csv.reader(io.StringIO(text, newline="")))
    if not records or tuple(records[0]) != COLUMNS:
        raise ConfigError(f"{CSV_NAME}: the header is not the expected columns {', '.join(COLUMNS)}")
    bad = [f"{CSV_NAME}: line {i}: {len(r)} fields, expected {len(COLUMNS)}"
           for i, r in enumerate(records[1:], 2) if len(r) != len(COLUMNS)]
    if bad:
        raise ConfigError(bad)
    return [dict(zip(COLUMNS, r, strict=True)) for r in records[1:]]


def _write_board(results_dir: Path, rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([row[c] for c in COLUMNS] for row in rows)
    atomic_write_text(results_dir / CSV_NAME, buf.getvalue())
    atomic_write_text(results_dir / MD_NAME, render_markdown(rows))


@contextmanager
def _board_lock(results_dir: Path) -> Iterator[None]:
    """Exclusive across processes (and threads: each open() is its own lock), so concurrent submits
    each see the other's rows."""
    results_dir.mkdir(parents=True, exist_ok=True)
    with open(results_dir / LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _duplicate(board: list[dict[str, str]], digest: str) -> list[str]:
    for row in board:
        if row["content_hash"] == digest:
            return [f"this results file is already on the leaderboard (submission {digest[:12]}, "
                    f"submitted by {show(row['submitter'])} on {show(row['date'])})"]
    return []


def submit(results_path: Path, results_dir: Path = Path("results"), name: str | None = None,
           current_task_lookup: TaskLookup | None = None) -> SubmitOutcome:
    """Validate a results file and add it to the leaderboard; ConfigError listing every problem, and nothing
    written, if anything is wrong."""
    results_dir = Path(results_dir)
    submitter = "anonymous" if name is None else name
    problems = check_submitter(submitter)
    try:
        doc = read_json_file(Path(results_path))
    except ConfigError as e:
        raise ConfigError(problems + e.problems) from None
    problems += check_submittable(doc)
    if isinstance(doc, dict):
        problems += check_current_task(doc, current_task_lookup or current_task)
    try:
        board = read_board(results_dir)
    except ConfigError as e:
        problems += [f"{p} (run `mythbench verify`)" for p in e.problems]
        board = []
    if problems:
        raise ConfigError(problems)
    digest = content_hash(doc)
    task = doc["task"]["name"]
    rows = board_rows(doc, digest, submitter, datetime.now(timezone.utc).strftime("%Y-%m-%d"))
    stored = results_dir / SUBMISSIONS / task / f"{digest}.json"
    dup = _duplicate(board, digest)
    if dup:
        raise ConfigError(dup)
    with _board_lock(results_dir):
        board = read_board(results_dir)  # again: another submit may have finished since the first read
        dup = _duplicate(board, digest)
        if dup:
            raise ConfigError(dup)
        atomic_write_text(stored, json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        _write_board(results_dir, board + rows)
    return SubmitOutcome(task, digest, submitter, stored, rows)


def _load(path: Path, rel: str) -> tuple[Any, list[str]]:
    try:
        return read_json_file(path), []
    except ConfigError as e:
        return None, [f"{rel}: {p}" for p in e.problems]


def _verify_submissions(root: Path) -> tuple[dict[str, dict], list[str]]:
    """The valid stored submissions by content hash, and every problem with the stored files."""
    docs: dict[str, dict] = {}
    out: list[str] = []
    for path in sorted((root / SUBMISSIONS).rglob("*")):
        rel = path.relative_to(root).as_posix()
        parts = path.relative_to(root / SUBMISSIONS).parts
        if path.is_dir() and len(parts) == 1 and re.fullmatch(TASK_NAME_RE, parts[0]):
            continue
        if path.is_symlink() or not (len(parts) == 2 and re.fullmatch(TASK_NAME_RE, parts[0])
                                     and _HASH_FILE.fullmatch(parts[1]) and path.is_file()):
            out.append(f"{rel}: unexpected entry; submissions/ holds only <task>/<sha256>.json files")
            continue
        doc, problems = _load(path, rel)
        problems += [f"{rel}: {p}" for p in check_submittable(doc)] if doc is not None else []
        if not problems and doc["task"]["name"] != parts[0]:
            problems.append(f"{rel}: task.name is {doc['task']['name']!r}, not the directory {parts[0]!r}")
        if not problems and content_hash(doc) != path.stem:
            problems.append(f"{rel}: content hash is {content_hash(doc)}, not the file name")
        out += problems
        if not problems:
            docs[path.stem] = doc
    return docs, out


def _verify_board(root: Path, docs: dict[str, dict]) -> list[str]:
    """The CSV rows must be exactly the rows recomputed from the stored files; the markdown is regenerated."""
    try:
        rows = read_board(root)
    except ConfigError as e:
        return e.problems
    out: list[str] = []
    by_hash: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_hash.setdefault(row["content_hash"], []).append(row)
    for digest, group in by_hash.items():
        label = f"{CSV_NAME}: submission {show(digest[:12])}"
        if digest not in docs:
            out.append(f"{label}: no valid submissions/<task>/{show(digest)}.json behind these rows")
            continue
        first = group[0]
        out += [f"{label}: {p}" for p in check_submitter(first["submitter"])]
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", first["date"]):
            out.append(f"{label}: date {show(first['date'])} is not YYYY-MM-DD")
        if any((r["submitter"], r["date"]) != (first["submitter"], first["date"]) for r in group):
            out.append(f"{label}: rows disagree on submitter or date")
        want = {r["model"]: r for r in board_rows(docs[digest], digest, "", "")}
        have = {r["model"]: r for r in group}
        if len(have) != len(group):
            out.append(f"{label}: a model appears in more than one row")
        for model in sorted(want.keys() | have.keys()):
            if model not in have or model not in want:
                where = "in the stored file but not on" if model in want else "on the board but not in"
                out.append(f"{label}: model {show(model)} is {where} the other")
                continue
            cols = [c for c in DERIVED if want[model][c] != have[model][c]]
            if cols:
                out.append(f"{label}, model {show(model)}: {', '.join(cols)} disagree with the stored file")
    out += [f"submissions/{doc['task']['name']}/{digest}.json: not on the leaderboard"
            for digest, doc in docs.items() if digest not in by_hash]
    md = root / MD_NAME
    if rows or (root / CSV_NAME).exists():
        if not md.exists() or md.read_text(encoding="utf-8", errors="replace") != render_markdown(rows):
            out.append(f"{MD_NAME}: differs from the table generated from {CSV_NAME} (it is generated; "
                       "do not edit it by hand)")
    elif md.exists():
        out.append(f"{MD_NAME}: exists without {CSV_NAME}")
    return out


def verify(path: Path = Path("results")) -> list[str]:
    """Every problem with the results under path: each results.json against the schema (reference results
    need not be submittable), each stored submission against the submission rules, and the leaderboard
    against the one recomputed from the stored submissions. A directory without a board verifies clean."""
    path = Path(path)
    if path.is_file():
        doc, problems = _load(path, path.name)
        return problems or [f"{path.name}: {p}" for p in check_schema(doc)]
    if not path.is_dir():
        return [f"{path}: no such file or directory"]
    out: list[str] = []
    for file in sorted(path.rglob("results.json")):
        rel = file.relative_to(path)
        if rel.parts[0] != SUBMISSIONS:
            doc, problems = _load(file, rel.as_posix())
            out += problems or [f"{rel.as_posix()}: {p}" for p in check_schema(doc)]
    docs, problems = _verify_submissions(path)
    return out + problems + _verify_board(path, docs)


def compare_rescore(submitted_cells: list[dict], rescored_cells: list[dict]) -> list[str]:
    """Cells where re-scoring a sample disagrees with the submission beyond the uncertainty of both: the
    sample's 95% Wilson interval must overlap the submitted one (equivalently, the sample's accuracy lies in
    the submitted interval widened by the sample's own interval)."""
    submitted = {(c["difficulty"], c["loops"]): c for c in submitted_cells}
    out = []
    for r in rescored_cells:
        key = (r.get("difficulty"), r.get("loops"))
        label = f"difficulty {show(key[0])}, loops {show(key[1])}"
        n, k = r.get("n"), r.get("correct")
        if not (is_int(n) and is_int(k) and 0 <= k <= n and n >= 1):
            out.append(f"{label}: re-scored counts correct={show(k)}, n={show(n)} are not valid")
            continue
        sub = submitted.get(key) if all(x is None or is_int(x) for x in key) else None
        if sub is None:
            out.append(f"{label}: re-scored, but the submission has no such cell")
            continue
        lo, hi = wilson_interval(k, n)
        s_lo, s_hi = wilson_interval(sub["correct"], sub["n"])
        if lo > s_hi or hi < s_lo:
            out.append(f"{label}: re-scored {k}/{n} = {k / n:.4f} (95% CI [{lo:.4f}, {hi:.4f}]) does not "
                       f"overlap the submitted {sub['correct']}/{sub['n']} = {sub['correct'] / sub['n']:.4f} "
                       f"(95% CI [{s_lo:.4f}, {s_hi:.4f}])")
    return out
