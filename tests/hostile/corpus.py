"""A corpus of malformed and hostile results files, generated on the fly (nothing large is committed).

Each case writes one file (or other filesystem object) from a valid base document and names the words the
refusal must contain. The base document is already on the board when the cases run, so an unmodified copy
is the duplicate-submission case.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .factory import make_results


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path, dict], Path]  # (directory to write in, valid base document) -> path to submit
    expect: tuple[str, ...]  # substrings that one of the problems must contain
    name: str | None = None  # the submitter name passed to submit


def _bytes(data: bytes | Callable[[dict], bytes]) -> Callable[[Path, dict], Path]:
    def build(tmp: Path, base: dict) -> Path:
        path = tmp / "results.json"
        path.write_bytes(data(base) if callable(data) else data)
        return path
    return build


def _doc(mutate: Callable[[dict], Any]) -> Callable[[Path, dict], Path]:
    """The base document changed in place by mutate, serialised (NaN/Infinity literals allowed)."""
    def text(base: dict) -> bytes:
        doc = copy.deepcopy(base)
        mutate(doc)
        return json.dumps(doc, allow_nan=True).encode()
    return _bytes(text)


def _text(render: Callable[[str], str]) -> Callable[[Path, dict], Path]:
    """Raw JSON text surgery on the serialised base document (for literals json.dumps cannot write)."""
    return _bytes(lambda base: render(json.dumps(base)).encode("utf-8"))


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """Set a value at a dotted path such as models.0.runs.1.cells.3.accuracy."""
    def mutate(doc: dict) -> None:
        *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
        for key in parents:
            doc = doc[key]
        doc[last] = value
    return mutate


def _delete(path: str) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
        for key in parents:
            doc = doc[key]
        del doc[last]
    return mutate


def _big_file(tmp: Path, base: dict) -> Path:
    path = tmp / "results.json"
    with open(path, "wb") as f:  # 50 MB, sparse: the size is refused before anything is read
        f.write(b'{"schema_version": 1, "pad": "')
        f.seek(50 * 1024 * 1024)
        f.write(b'"}')
    return path


def _fifo(tmp: Path, base: dict) -> Path:
    path = tmp / "results.json"
    os.mkfifo(path)
    return path


def _directory(tmp: Path, base: dict) -> Path:
    path = tmp / "results.json"
    path.mkdir()
    return path


def _seeds(*seeds: int, **kwargs: Any) -> Callable[[Path, dict], Path]:
    return _bytes(lambda base: json.dumps(make_results(seeds=seeds, **kwargs)).encode())


def _duplicate_seed_runs(doc: dict) -> None:
    doc["seeds"] = [0, 0, 1, 2]
    for m in doc["models"]:
        m["runs"].append(copy.deepcopy(m["runs"][0]))


def _duplicate_cell(doc: dict) -> None:
    cells = doc["models"][0]["runs"][0]["cells"]
    cells.append(copy.deepcopy(cells[0]))


def _duplicate_model(doc: dict) -> None:
    doc["models"][1]["name"] = doc["models"][0]["name"]


def _nested_config(doc: dict) -> None:
    node: dict = {}
    doc["config"]["deep"] = node
    for _ in range(70):
        node["x"] = {}
        node = node["x"]


CELL = "models.0.runs.1.cells.3"
OTHER_FINGERPRINT = hashlib.sha256(b"another test set").hexdigest()

CASES: list[Case] = [
    # --- not a JSON document at all
    Case("empty-file", _bytes(b""), ("empty",)),
    Case("whitespace-only", _bytes(b" \n\t\n"), ("empty",)),
    Case("truncated-json", _bytes(lambda b: json.dumps(b).encode()[: len(json.dumps(b)) // 2]), ("not valid JSON",)),
    Case("json-with-comments", _text(lambda t: "// results\n" + t), ("not valid JSON",)),
    Case("trailing-garbage", _text(lambda t: t + " {}"), ("not valid JSON", "Extra data")),
    Case("pickle-disguised-as-json", _bytes(lambda b: pickle.dumps(b)), ("pickle", "never unpickled")),
    Case("pickle-protocol-0", _bytes(lambda b: pickle.dumps({"a": 1}, protocol=0)), ("not valid JSON",)),
    Case("latin-1-text", _bytes(lambda b: json.dumps(b).replace('"cpu"', '"c\u00e9u"').encode("latin-1")),
         ("not UTF-8", "offset")),
    Case("utf-16-json", _bytes(lambda b: json.dumps(b).encode("utf-16")), ("binary", "NUL")),
    Case("random-binary", _bytes(bytes(range(256)) * 64), ("NUL",)),
    Case("fifo-not-a-file", _fifo, ("not a regular file",)),
    Case("directory-not-a-file", _directory, ("not a regular file",)),
    Case("50mb-file", _big_file, ("bytes; the limit for a results file is",)),
    Case("nested-arrays-100k", _bytes(b"[" * 100_000 + b"]" * 100_000), ("nesting is 100000 levels deep",)),
    Case("nested-objects-100k", _bytes(b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
         ("nesting is 100000 levels deep",)),
    Case("nested-config-70", _doc(_nested_config), ("nesting is", "limit is 64")),
    Case("json-array-top", _bytes(b"[1, 2, 3]"), ("top level: expected a JSON object, got an array",)),
    Case("json-string-top", _bytes(b'"results"'), ("top level: expected a JSON object",)),
    Case("json-null-top", _bytes(b"null"), ("top level: expected a JSON object, got null",)),
    # --- numbers that are not finite or not portable
    Case("nan-in-train", _doc(_set("models.0.runs.0.train.final_loss", float("nan"))),
         ("models[0].runs[0].train.final_loss: NaN is not allowed",)),
    Case("nan-literal-path", _doc(_set(f"{CELL}.loss", float("nan"))),
         ("models[0].runs[1].cells[3].loss: NaN is not allowed",)),
    Case("infinity-flops", _doc(_set("models.0.flops_per_token.forward", float("inf"))),
         ("models[0].flops_per_token.forward: Infinity is not allowed",)),
    Case("minus-infinity-loss", _doc(_set(f"{CELL}.loss", float("-inf"))), ("-Infinity is not allowed",)),
    Case("overflowing-float-literal", _text(lambda t: t.replace('"wall_time_s": 12.5', '"wall_time_s": 1e999')),
         ("wall_time_s: inf is not allowed",)),
    Case("5000-digit-integer", _text(lambda t: t.replace('"wall_time_s": 12.5', '"wall_time_s": ' + "9" * 5000)),
         ("not valid JSON", "digits")),
    Case("int-beyond-int64", _doc(_set(f"{CELL}.n", 10**30)), ("out of range",)),
    Case("duplicate-keys", _text(lambda t: t.replace('"status": "complete", "preset"',
                                                     '"status": "complete", "status": "complete", "preset"', 1)),
         ("duplicate key 'status'",)),
    # --- strings that try to reach paths or markup
    Case("name-escapes-results", _doc(lambda d: None), ("name:", "not allowed"), name="../../../etc/passwd"),
    Case("name-with-slash", _doc(lambda d: None), ("name:",), name="alice/../../x"),
    Case("name-with-pipe-newline", _doc(lambda d: None), ("name:",), name="eve | x\n| injected |"),
    Case("name-too-long", _doc(lambda d: None), ("name:",), name="a" * 65),
    Case("name-empty", _doc(lambda d: None), ("name:",), name=""),
    Case("name-dotdot", _doc(lambda d: None), ("name:",), name="a..b"),
    Case("task-name-traversal", _doc(_set("task.name", "../../evil")), ("task.name: '../../evil' does not match",)),
    Case("task-name-absolute", _doc(_set("task.name", "/etc/passwd")), ("task.name",)),
    Case("task-unknown", _doc(_set("task.name", "parity")), ("task.name: unknown task 'parity'",)),
    Case("model-name-pipe", _doc(_set("models.0.name", "rdt|0.99|")), ("models[0].name: 'rdt|0.99|' does not match",)),
    Case("model-name-newline", _doc(_set("models.0.name", "rdt\n| fake |")), ("models[0].name", "control characters")),
    # --- schema
    Case("schema-version-4", _doc(_set("schema_version", 4)), ("schema_version: 4 is not a known schema version",)),
    Case("schema-version-string", _doc(_set("schema_version", "1")), ("schema_version: '1' is not a known",)),
    Case("schema-version-missing", _doc(_delete("schema_version")), ("schema_version: required field is missing",)),
    Case("kind-scale", _doc(lambda doc: [_set("kind", "scale")(doc), _set("schema_version", 1)(doc)]),
         ("kind: 'scale' is a `mythbench scale` results file", "only run results", "points: required field")),
    Case("kind-unknown", _doc(_set("kind", "sweep")), ("kind: 'sweep' is not a known kind", "known: 'run'")),
    Case("kind-missing", _doc(_delete("kind")), ("kind: missing",)),
    Case("status-incomplete", _doc(_set("status", "incomplete")), ("status: 'incomplete'", "complete runs")),
    Case("seeds-wrong-type", _doc(_set("seeds", "0,1,2")), ("seeds: expected an array, got '0,1,2'",)),
    Case("seeds-missing", _doc(_delete("seeds")), ("seeds: required field is missing",)),
    Case("params-wrong-type", _doc(_set("models.0.params.total", "1M")), ("params.total: expected an integer",)),
    Case("bool-as-count", _doc(_set(f"{CELL}.n", True)), ("cells[3].n: expected an integer, got true",)),
    Case("cells-not-array", _doc(_set("models.0.runs.0.cells", {"16": 0.9})), ("cells: expected an array",)),
    Case("created-at-garbage", _doc(_set("created_at", "yesterday")), ("created_at", "ISO 8601")),
    Case("git-commit-not-hex", _doc(_set("git.commit", "HEAD; rm -rf /")), ("git.commit",)),
    Case("tuning-choice-malformed", _doc(_set("tuning", {"file": "tune.json", "sha256": "0" * 64, "models": {
        "rdt": {"chosen": {"lr": "0.003", "recipe": "tied", "train": []}, "trials": []}}})),
         ("tuning.models.rdt.chosen.lr: expected a number", "tuning.models.rdt.chosen.train: expected an object",
          "tuning.models.rdt.trials: has 0 entries")),
    # --- seeds
    Case("one-seed-quick", _seeds(0, preset="quick"), ("--preset standard", "needs at least 3")),
    Case("two-seeds", _seeds(0, 1), ("needs at least 3",)),
    Case("duplicate-seeds", _doc(_duplicate_seed_runs), ("seeds: duplicate seed 0", "runs[3].seed: duplicate seed 0")),
    Case("diverged-leaves-two", _seeds(0, 1, 2, diverged=(1,)), ("complete seed(s)", "diverged")),
    Case("missing-run-for-seed", _doc(lambda d: d["models"][0]["runs"].pop()), ("no run for seed 2",)),
    # --- the current task
    Case("stale-fingerprint", _doc(_set("task.fingerprint", OTHER_FINGERPRINT)),
         ("task.fingerprint", "different test data")),
    Case("wrong-task-version", _doc(_set("task.version", 2)),
         ("task.version: 2, but the current 'toy' task is version 3",)),
    Case("changed-test-difficulties", _doc(_set("task.test_difficulties", [4, 6, 8, 12, 16])),
         ("task.test_difficulties",)),
    # --- counts (version 3 stores nothing else: a stored rate, interval or summary is refused)
    Case("accuracy-stored", _doc(_set(f"{CELL}.accuracy", 1.2)),
         ("models[0].runs[1].cells[3].accuracy: version 3 stores counts only",)),
    Case("correct-above-n", _doc(_set(f"{CELL}.correct", 33)), ("cells[3].correct: 33 is more than n = 32",)),
    Case("n-zero", _doc(_set(f"{CELL}.n", 0)), ("cells[3].n: 0 is not >= 1",)),
    Case("ci-stored", _doc(_set(f"{CELL}.ci_low", 0.0)), ("cells[3].ci_low: version 3 stores counts only",)),
    Case("token-correct-above-tokens", _doc(_set(f"{CELL}.token_correct", 10**6)),
         ("cells[3].token_correct: 1000000 is more than tokens = 128",)),
    Case("tokens-negative", _doc(_set(f"{CELL}.tokens", -1)), ("cells[3].tokens: -1 is not >= 0",)),
    Case("summary-stored", _doc(_set("models.1.summary", [{"difficulty": 2, "headline": {"mean": 0.999}}])),
         ("models[1].summary: version 3 stores counts only; summaries are computed when read",)),
    Case("early-exit-correct-above-n", _doc(_set("models.0.runs.0.early_exit.0.correct", 99)),
         ("early_exit[0].correct: 99 is more than n = 32",)),
    Case("duplicate-cell", _doc(_duplicate_cell), ("duplicate cell for difficulty 2, loops 1",)),
    Case("cell-difficulty-unknown", _doc(_set(f"{CELL}.difficulty", 99)), ("cells[3].difficulty: 99 is not one of",)),
    Case("cell-loops-not-evaluated", _doc(_set(f"{CELL}.loops", 40)), ("cells[3].loops: 40 is not in eval_loops",)),
    Case("duplicate-model-name", _doc(_duplicate_model), ("models[1].name: duplicate name 'rdt' (also models[0])",)),
    # --- already on the board
    Case("already-submitted", _doc(lambda d: None), ("already on the leaderboard",)),
]
