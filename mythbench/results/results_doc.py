"""docs/results-schema.md, generated from the results model (mythbench/results_model.py, scale_schema.py).

Every field table is rendered from the nodes the validator checks with: the type column from the node (its
bounds, pattern, nullability), the rule column from the owning object's `doc`, and a Ruled node's rule from
its docstring. The prose around the tables (file-level rules, semantic checks, the leaderboard) is kept here,
beside the code it describes. Regenerate after changing the model, and commit the result:

    python -m mythbench.results.results_doc --write      # or --check: exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mythbench.results.board import COLUMNS
from mythbench.results.jsonshape import Arr, Bool, Either, Enum, Int, Node, Nullable, Num, Obj, Open, Pair, Ruled, Str
from mythbench.results.results_model import PROVENANCE, RUN_V1, RUN_V2, SUMMARY
from mythbench.results.safejson import MAX_BYTES, MAX_DEPTH
from mythbench.results.scale_schema import SCALE_V1
from mythbench.results.schema import MIN_SEEDS, VALIDATORS

DOC_PATH = Path("docs") / "results-schema.md"
KINDS = {(2, "run"): ("`mythbench run`", "the current run format; the only kind that can be submitted"),
         (1, "run"): ("`mythbench run` before tasks v2", "still read and verified (the leaderboard keeps such "
                      "entries as history); see [Version 1 runs](#version-1-runs)"),
         (1, "scale"): ("`mythbench scale`", "[Scale results](#scale-results-kind-scale); schema-checked, never "
                        "submitted")}


def _g(x: float) -> str:
    return f"{x:g}"


def type_text(node: Node) -> str:
    """The type column: what the node accepts, in words."""
    if isinstance(node, Ruled):
        return type_text(node.node)
    if isinstance(node, Nullable):
        return f"{type_text(node.node)} \\| null"
    if isinstance(node, Int):
        return "int" + (f" ≥ {node.lo}" if node.lo is not None else "")
    if isinstance(node, Open):
        return f"number > {_g(node.lo)}" if node.hi is None else f"number in ({_g(node.lo)}, {_g(node.hi)})"
    if isinstance(node, Num):
        if node.lo is not None and node.hi is not None:
            return f"number in [{_g(node.lo)}, {_g(node.hi)}]"
        return "number" + (f" ≥ {_g(node.lo)}" if node.lo is not None else "")
    if isinstance(node, Str):
        parts = [f"`{node.pattern}`".replace("|", "\\|")] if node.pattern else []
        parts += ["ISO 8601, e.g. `2026-11-29T06:00:00Z`"] if node.timestamp else []
        parts += [f"≤ {node.max_len} characters"] if node.max_len != 256 else []
        return "string" + (f" ({', '.join(parts)})" if parts else "")
    if isinstance(node, Bool):
        return "bool"
    if isinstance(node, Enum):
        return " or ".join(f'`"{v}"`' for v in node.values)
    if isinstance(node, Arr):
        return f"array of {type_text(node.item)}" + (f", at least {node.min_len}" if node.min_len else "")
    if isinstance(node, Pair):
        return f"[{type_text(node.first)}, {type_text(node.second)}]" + (" (first ≤ second)" if node.ordered else "")
    if isinstance(node, Either):
        return f"object: with `{node.marker}`, the error variant; else the result variant"
    if isinstance(node, Obj):
        return "object" if (node.required or node.optional) else "object (free-form)"
    raise TypeError(f"no documentation for node type {type(node).__name__}")


def _inner(node: Node) -> Node:
    while isinstance(node, (Nullable, Arr, Ruled)):
        node = node.item if isinstance(node, Arr) else node.node
    return node


def _rule_doc(node: Node) -> str | None:
    while isinstance(node, (Nullable, Arr)):
        node = node.item if isinstance(node, Arr) else node.node
    return " ".join(node.rule.__doc__.split()) if isinstance(node, Ruled) and node.rule.__doc__ else None


def _label(path: str, node: Node) -> str:
    return path + ("[]" if isinstance(node, Arr) or (isinstance(node, Nullable) and isinstance(node.node, Arr))
                   else "")


class _Writer:
    """Renders an object node and, below it, every object node under it once (later uses refer back)."""

    def __init__(self, skip: dict[str, Node] | None = None) -> None:
        self.seen: dict[int, str] = {id(_inner(n)): k for k, n in (skip or {}).items()}
        self.lines: list[str] = []

    def table(self, obj: Obj) -> list[str]:
        rows = ["| field | type | required | rule |", "|---|---|---|---|"]
        for fields, req in ((obj.required, "required"), (obj.optional, "optional")):
            for key, node in fields.items():
                inner = _inner(node)
                typ = type_text(node)
                if isinstance(inner, (Obj, Either)) and id(inner) in self.seen:
                    typ += f" (as `{self.seen[id(inner)]}`)"
                rows.append(f"| `{key}` | {typ} | {req} | {obj.doc.get(key, '')} |")
        return rows

    def section(self, path: str, node: Node, level: int = 3) -> None:
        obj = _inner(node)
        if isinstance(obj, Either):
            self.seen[id(obj)] = path
            for variant, sub in (("result", obj.absent), ("error", obj.present)):
                self.section(f"{path} {variant}", sub, level)
            return
        if not isinstance(obj, Obj):
            return
        self.seen[id(obj)] = path or "top level"
        self.lines += [f"{'#' * level} " + (f"`{path}`" if path else "Top level"), "", *self.table(obj), ""]
        rule = _rule_doc(node)
        if rule:
            self.lines += [f"Rule: {rule}", ""]
        todo = [(f"{path}.{k}" if path else k, n) for fields in (obj.required, obj.optional) for k, n in fields.items()
                if id(n) not in self.seen]
        for sub_path, sub in todo:
            inner = _inner(sub)
            if isinstance(inner, (Obj, Either)) and id(inner) not in self.seen and (
                    not isinstance(inner, Obj) or inner.required or inner.optional):
                self.section(_label(sub_path, sub), sub, level)


def _object_sections(root: Obj, name: str, skip: dict[str, Node] | None = None) -> list[str]:
    writer = _Writer(skip)
    writer.section(name, root, 3)
    return writer.lines


INTRO = f"""# results.json — the results model

<!-- Generated by `python -m mythbench.results.results_doc --write` from mythbench/results_model.py and
mythbench/scale_schema.py; do not edit by hand (tests/test_results_model.py checks it is current). -->

`mythbench run` writes `results.json` into every run directory; `mythbench report`, `mythbench submit`,
`mythbench verify` and `mythbench.load(path)` (a pandas DataFrame of the cells) read it. `mythbench scale`
writes a `results.json` of another kind (see [Scale results](#scale-results-kind-scale)), which
`mythbench fit` and `mythbench verify` read. Every table below is generated from the typed description the
validator checks with (`mythbench/results_model.py`; the scale kind in `mythbench/scale_schema.py`). The
validator (`check_schema`, `check_submittable` in `mythbench/schema.py`) reports **every** problem in one
pass, each with its path, such as

    models[0].runs[1].cells[3].accuracy: 1.2 is not in [0, 1]

## Versioning and kinds

Every file carries `schema_version` (an integer) and `kind`. The validator dispatches on the pair:

| schema_version | kind | written by | status |
|---|---|---|---|
{{kinds}}

An unknown `schema_version` or `kind` is rejected with a message listing the known ones. A change that
removes or re-types a field, or changes what a number means, bumps `schema_version`; adding an optional
field does not. Unknown extra fields are allowed (and ignored), but they are subject to the file-level rules.

## File-level rules (hostile-input safety)

Results files are data written by strangers. They are never executed or unpickled.

- at most {MAX_BYTES // 2**20} MiB (checked from the file's size before it is read); a regular file only;
- UTF-8 JSON text: binary files are refused (a pickle renamed to `.json` is named as such), a leading BOM
  is ignored;
- nesting at most {MAX_DEPTH} levels (checked before the parser runs);
- every number finite: `NaN`, `Infinity`, `-Infinity` and literals that overflow (`1e999`) are refused,
  each with its path; integers within ±2^63;
- no duplicate keys in an object (JSON parsers disagree on which one wins);
- the top level is an object.

## Types

`int` is a JSON integer (not `true`/`false`), `number` an int or a finite float, `string` a printable
string (no control characters) of at most 256 characters unless stated. *Required* keys must be present,
*optional* ones may be absent; `T \\| null` means the value may be `null`. A `[]` after a path is an array's
items.

## Run results (schema_version 2, kind `run`)
"""

RUN_RULES = """### Rules across fields

The validator recomputes what the shapes cannot show:

- seeds: each run's `seed` is listed in the top-level `seeds`, no seed occurs twice in a model, and when
  `status` is `"complete"` every top-level seed has a run in every model;
- every cell and early-exit entry: `correct ≤ n`, `accuracy = correct / n` (within 1e-9), and `ci_low`,
  `ci_high` the 95% Wilson interval of `correct / n` recomputed from the counts (within 1e-6);
- family `rdt`: `train_loops` and `eval_loops` present, `train_loops` one of `eval_loops`, every cell's
  `loops` one of `eval_loops`, `loop_rule` present; family `standard`: those null and no early exit;
- summaries are derived data, recomputed from the cells of the complete runs at each (difficulty, loops):
  each statistic's `mean` is the mean of their accuracies and `token_accuracy` of theirs (within 1e-9),
  `std` their standard deviation (ddof = 1, 0 for one seed); `ci_low ≤ ci_high`, and with two or more
  seeds the interval is the seeded bootstrap of their mean (`analysis.stats.bootstrap_mean_interval`,
  within 1e-9), with one seed it is that seed's cell interval; the oracle's `loops` is a best loop count,
  the headline's the model's `loop_rule`.
"""

SUBMISSIONS = f"""## Reference results and submissions

- **Reference results** that the project produced itself (`results/reference/**/results.json`, e.g. quick
  one-seed runs with their provenance, or scale ladders) must pass `check_schema` only.
- **Submissions** (`mythbench submit`) must pass `check_submittable`: the schema, plus `kind: "run"` (a
  scale file is refused: only run results go on the leaderboard), `status: "complete"`, at least
  **{MIN_SEEDS} distinct seeds** (and {MIN_SEEDS} complete runs per model), and summary entries with `headline`
  (version 1: `acc_at_train_loops`) at the three leaderboard difficulties. `submit` also requires
  `task.version`, `task.fingerprint` and the difficulties to equal the current task's, and refuses a file
  whose content is already on the board.

## Version 1 runs

Written before tasks v2 (task versions 1): the same as version 2 without `evaluation`,
`task.depth_per_difficulty`, `task.context_length`, `loop_rule`, `headline` and the stats' `token_accuracy`,
and with the oracle named `best` instead of `oracle_best`. Its accuracy at the training loop count is its only
rule, so the leaderboard shows it under loop rule `train`. It can no longer be submitted, but stored ones
still verify. Its summary entry:
"""

SCALE = """## Scale results (kind `scale`)

`mythbench scale` trains a width ladder of RDTs (one per width and training loop count) and standard
transformers with the RDT's distinct layers, then fits scaling laws to the points. Its `results.json` has
`kind: "scale"` and the provenance fields of a run file, the very same nodes: {provenance}. In place of
`models` it has the fields below. The fits are derived from the points and checked for shape (a file whose
fits are malformed is still rejected: `mythbench fit` recomputes them). Each fit stores its bootstrap
`replicates` and, for a power law, its `band`, so reports draw them without refitting; files written before
they were stored omit them.
"""

BOARD = """## The leaderboard (`results/`)

| path | content |
|---|---|
| `leaderboard.csv` | one row per (submission, model): the source of truth |
| `LEADERBOARD.md` | generated from the CSV (one table per task version, test set, preset and budget); never edited by hand |
| `submissions/<task>/<sha256>.json` | each accepted file, named by the sha256 of its canonical JSON |
| `.leaderboard.lock` | the lock file taken (`flock`) around every read-modify-write |

The canonical JSON has sorted keys, no whitespace and is UTF-8.

CSV columns (mythbench/board.py): {columns}. The points are `train` (the largest train difficulty), `2x`
(the test difficulty nearest twice that; ties go to the harder) and `max` (the largest test difficulty);
`acc`, `low`, `high`, `tok` are the headline mean, interval and token accuracy there, `per_seed` each complete
seed's headline accuracy (in the order of `seeds`); `oracle_*` the best loop count at the largest test
difficulty. `budget` is the run's `train.steps` x `train.batch_size` at `model.d_model` (from its `config`;
`unrecorded` where one is not an integer): rows of different presets or budgets are never ranked in one
table. `twin_of` is the looped model a twin is matched to (files before twins: the `rdt`-role model for
`iso-param` and `iso-flop`); `in_distribution` says how many seeds reached 0.9 at the largest training
difficulty, `seed-fragile` when some did and others did not. Floats are written with `repr`, so the CSV
reproduces the stored numbers exactly.

`mythbench verify [PATH]` checks every `results.json` under PATH against the schema of its kind, every stored
submission against the submission rules (its name must be its content hash and its directory its task), and
the board: every CSV row must equal the row recomputed from its stored file (only `submitter` and `date`
live on the board alone), every stored file must be on the board, and `LEADERBOARD.md` must equal the table
generated from the CSV. A directory without a board verifies clean.

## Re-scoring

`compare_rescore(submitted_cells, rescored_cells)` (in `mythbench/leaderboard.py`) compares cells
re-scored on a sample of the test set with the submitted ones: a cell fails where the sample's 95% Wilson
interval does not overlap the submitted cell's.
"""


def render() -> str:
    """The whole reference, from the model."""
    if set(KINDS) != set(VALIDATORS):
        raise RuntimeError(f"KINDS {sorted(KINDS)} does not describe the validators {sorted(VALIDATORS)}")
    kinds = "\n".join(f"| {v} | `{k}` | {by} | {status} |" for (v, k), (by, status) in KINDS.items())
    summary_v1 = _Writer()
    summary_v1.lines += ["### `models[].summary[]` (version 1)", "", *summary_v1.table(SUMMARY), ""]
    assert RUN_V1.required["models"].item.required["summary"].item is SUMMARY  # type: ignore[attr-defined]
    scale_only = Obj({k: v for k, v in SCALE_V1.required.items() if k not in PROVENANCE},
                     optional=SCALE_V1.optional, doc=SCALE_V1.doc)
    parts = [INTRO.replace("{kinds}", kinds), *_object_sections(RUN_V2, ""), RUN_RULES, SUBMISSIONS,
             *summary_v1.lines,
             SCALE.format(provenance=", ".join(f"`{k}`" for k in PROVENANCE)),
             *_object_sections(scale_only, "", skip=PROVENANCE),
             BOARD.format(columns=", ".join(f"`{c}`" for c in COLUMNS))]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {DOC_PATH}")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if {DOC_PATH} is not current")
    parser.add_argument("--path", type=Path, default=DOC_PATH)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.path.is_file() and args.path.read_text(encoding="utf-8") == text
        print(f"{args.path}: {'current' if current else 'stale; run python -m mythbench.results.results_doc --write'}")
        return 0 if current else 1
    if args.write:
        args.path.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
