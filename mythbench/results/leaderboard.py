"""Submissions and the leaderboard in results/: submit, verify, render, and the re-scoring comparison.

Layout (paths are built only from a validated task name and a content hash, never from user strings;
the table itself is mythbench/results/board.py):
    results/leaderboard.csv                        one row per (submission, model); the source of truth
    results/LEADERBOARD.md                         generated from the CSV, never edited by hand
    results/submissions/<task>/<sha256>.json       the accepted results files, canonical content
    results/.leaderboard.lock                      flock'ed around every read-modify-write of the board
A rejected submission writes nothing at all.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mythbench.results.board import (
    BOARD_ONLY,
    CSV_NAME,
    MD_NAME,
    board_rows,
    columns,
    read_board,
    render_markdown,
    write_board,
)
from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_text
from mythbench.results.safejson import content_hash, read_json_file
from mythbench.results.schema import TASK_NAME_RE, check_schema, check_submittable, show
from mythbench.analysis.stats import wilson_interval

SUBMISSIONS, LOCK_NAME = "submissions", ".leaderboard.lock"
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
    from mythbench.tasks import get_task

    task = get_task(name)
    spec = task.spec
    return TaskIdentity(spec.name, spec.version, task.fingerprint(), tuple(spec.train_difficulties),
                        tuple(spec.test_difficulties))


def current_versions(rows: list[dict[str, str]], lookup: TaskLookup) -> dict[str, int]:
    """The current version of every task on the board that the suite still has, so the board can mark the
    tables of other versions stale."""
    versions = {}
    for name in sorted({row["task"] for row in rows}):
        try:
            versions[name] = lookup(name).version
        except ConfigError:
            continue
    return versions


@dataclass(frozen=True)
class SubmitOutcome:
    """What an accepted submission added, for the CLI to report."""

    task: str
    content_hash: str
    submitter: str
    stored: Path
    rows: list[dict[str, str]]

    def describe(self) -> str:
        """What `mythbench submit` prints: where the file went and one line per leaderboard row it added."""
        lines = [f"accepted: {self.task} results from {self.submitter} (content hash {self.content_hash[:12]}…), "
                 f"stored as {self.stored}; {len(self.rows)} leaderboard rows added:"]
        lines += [f"  {r['model']} ({r['role']}, {r['family']}): {r['params_unique']} parameters, seeds {r['seeds']}"
                  for r in self.rows]
        return "\n".join(lines)


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
        got = task.get(key)
        if got != want:
            plain = isinstance(got, list) and len(got) <= 32 and all(type(x) is int for x in got)
            shown = str(got) if plain else show(got)
            out.append(f"task.{key}: {shown} differs from the current task's {want}")
    return out


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
    doc_problems = check_submittable(doc)  # refuses any kind but "run" (a scale file: never a submission)
    if isinstance(doc, dict) and doc.get("kind") == "run":
        doc_problems += check_current_task(doc, current_task_lookup or current_task)
    problems += doc_problems
    try:
        board = read_board(results_dir)
    except ConfigError as e:
        problems += [f"{p} (run `mythbench verify`)" for p in e.problems]
        board = []
    digest = "" if doc_problems else content_hash(doc)  # only a valid document has a canonical form
    problems += _duplicate(board, digest) if digest else []
    if problems:
        raise ConfigError(problems)
    task = doc["task"]["name"]
    rows = board_rows(doc, digest, submitter, datetime.now(timezone.utc).strftime("%Y-%m-%d"))
    lookup = current_task_lookup or current_task
    stored = results_dir / SUBMISSIONS / task / f"{digest}.json"
    with _board_lock(results_dir):
        board = read_board(results_dir)  # again: another submit may have finished since the first read
        dup = _duplicate(board, digest)
        if dup:
            raise ConfigError(dup)
        atomic_write_text(stored, json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        write_board(results_dir, board + rows, current_versions(board + rows, lookup))
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
        task_dir = len(parts) == 1 and re.fullmatch(TASK_NAME_RE, parts[0])
        if task_dir and path.is_dir() and not path.is_symlink():
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


def _verify_board(root: Path, docs: dict[str, dict], lookup: TaskLookup) -> list[str]:
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
        shown = digest[:12] if re.fullmatch(r"[0-9a-f]{64}", digest) else show(digest)
        label = f"{CSV_NAME}: submission {shown}"
        if digest not in docs:
            out.append(f"{label}: no valid submissions/<task>/<hash>.json behind these rows")
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
            cols = [c for c in columns() if c not in BOARD_ONLY and want[model][c] != have[model][c]]
            if cols:
                out.append(f"{label}, model {show(model)}: {', '.join(cols)} disagree with the stored file")
    out += [f"submissions/{doc['task']['name']}/{digest}.json: not on the leaderboard"
            for digest, doc in docs.items() if digest not in by_hash]
    md = root / MD_NAME
    if rows or (root / CSV_NAME).exists():
        if not md.exists() or md.read_text(encoding="utf-8", errors="replace") != render_markdown(
                rows, current_versions(rows, lookup)):
            out.append(f"{MD_NAME}: differs from the table generated from {CSV_NAME} (it is generated; "
                       "do not edit it by hand)")
    elif md.exists():
        out.append(f"{MD_NAME}: exists without {CSV_NAME}")
    return out


def verify(path: Path = Path("results"), lookup: TaskLookup = current_task) -> list[str]:
    """Every problem with the results under path: each results.json against the schema of its kind (reference
    results, run or scale, need not be submittable), each stored submission against the submission rules (run
    results only), and the leaderboard against the one recomputed from the stored submissions. A directory
    without a board verifies clean."""
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
    return out + problems + _verify_board(path, docs, lookup)


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
        if not (type(n) is int and type(k) is int and 0 <= k <= n and n >= 1):
            out.append(f"{label}: re-scored counts correct={show(k)}, n={show(n)} are not valid")
            continue
        sub = submitted.get(key) if all(x is None or type(x) is int for x in key) else None
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
