"""The results model: one typed, declarative description of results.json, every kind and version.

Each node (mythbench/jsonshape.py) states a field's type and bounds; each object's `doc` states what the type
cannot (meaning and cross-field rules). From this one description:

- the validator checks shapes (mythbench/schema.py adds the semantic checks: Wilson intervals and summaries
  recomputed from the counts; mythbench/scale_schema.py does the same for the scale kind, from its own nodes
  built on PROVENANCE and TRAIN below);
- the writers take their version from here (`RUN_SCHEMA_VERSION`, `SCALE_SCHEMA_VERSION`), the harness checks
  each seed's result against `RUN` before keeping it, and both writers log every schema problem of a file
  before writing it;
- the readers: `mythbench.load` and the report read through mythbench/results_frame.py (safejson, then this
  model's validator unless told not to); the leaderboard validates with `check_submittable` and names the
  statistics it ranks by `HEADLINE_KEY` / `ORACLE_KEY`;
- docs/results-schema.md is generated (`python -m mythbench.results.results_doc --write`; a test keeps it current).

Why frozen dataclass nodes rather than pydantic models: results files arrive from strangers, and the validator
must report *every* problem in one pass with the exact path and wording that the hostile-input tests pin
(`models[0].runs[1].cells[3].accuracy: 1.2 is not in [0, 1]`), never stop or raise on a malformed value, and
keep unknown keys for forward compatibility. Pydantic would need a translation layer for each of those, and a
new dependency, for no less code; the nodes were already the project's typed description, so the model is
them, described once, with the hand-maintained copies (the Markdown reference) generated from it.
"""

from __future__ import annotations

from mythbench.results.jsonshape import Arr, Bool, Enum, Int, Node, Nullable, Num, Obj, Str, ints

RUN_SCHEMA_VERSION = 2  # what `mythbench run` writes
SCALE_SCHEMA_VERSION = 1  # what `mythbench scale` writes
SCHEMA_VERSIONS = (1, 2)
FAMILIES = ("rdt", "standard")
LOOP_RULES = ("difficulty", "train")
TASK_NAME_RE = r"[a-z][a-z0-9_-]{0,63}"
MODEL_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}"
ROLE_RE = r"rdt|control|iso-param|iso-flop|ablation:[a-z0-9][a-z0-9_-]{0,47}"
PARAM_KEYS = ("total", "unique", "active", "once", "recurrent")
# what each version calls the headline statistic (the leaderboard's number) and the oracle, in a summary entry
HEADLINE_KEY = {1: "acc_at_train_loops", 2: "headline"}
ORACLE_KEY = {1: "best", 2: "oracle_best"}
WILSON = ("the 95% Wilson interval of `correct / n` (z = 1.959963984540054), recomputed by the validator, "
          "within 1e-6")

_STAT = {"mean": Num(0, 1), "std": Num(0), "ci_low": Num(0, 1), "ci_high": Num(0, 1)}
_STAT_DOC = {"mean": "mean over complete seeds of the cells' accuracy (within 1e-9)",
             "std": "their standard deviation, ddof = 1 (0 for one seed)",
             "ci_low": "the seeded bootstrap over seeds; one seed: that cell's Wilson interval",
             "ci_high": "as `ci_low`; `ci_low ≤ ci_high`"}
_COUNTS = {"n": Int(1), "correct": Int(0), "accuracy": Num(0, 1), "ci_low": Num(0, 1), "ci_high": Num(0, 1)}
_COUNTS_DOC = {"n": "test instances scored", "correct": "exact-match correct, `correct ≤ n`",
               "accuracy": "`correct / n` within 1e-9", "ci_low": WILSON, "ci_high": WILSON}
CELL = Obj({"difficulty": Int(1), "loops": Nullable(Int(1)), **_COUNTS, "token_accuracy": Num(0, 1),
            "loss": Num(0)},
           doc={"difficulty": "one of the task's train or test difficulties; a (difficulty, loops) pair occurs at "
                              "most once per run",
                "loops": "one of `eval_loops` for `rdt`; null for `standard`", **_COUNTS_DOC,
                "token_accuracy": "per scored position", "loss": "mean cross-entropy per scored position"})
EARLY_EXIT = Obj({"difficulty": Int(1), "rule": Str(r"[a-z][a-z0-9_]{0,31}"), "threshold": Nullable(Num()),
                  **_COUNTS, "mean_loops": Num(0)},
                 doc={"difficulty": "one of the task's difficulties", "rule": "e.g. `act`, `kl`, `confidence`, "
                      "`delta_h`", **_COUNTS_DOC, "mean_loops": "at most the largest eval loop count"})
SUMMARY = Obj({"difficulty": Int(1), "split": Enum(("train", "test")),
               "acc_at_train_loops": Nullable(Obj(_STAT, doc=_STAT_DOC)),
               "best": Obj({**_STAT, "loops": Nullable(Int(1))}, doc=_STAT_DOC),
               "acc_at_max_loops": Nullable(Obj(_STAT, doc=_STAT_DOC)), "overthinking_drop": Num(-1, 1)},
              doc={"best": "version 1's name of `oracle_best`",
                   "overthinking_drop": "`best.mean − acc_at_max_loops.mean` within 1e-9"})
# a training outcome; a scale point stores the same one
TRAIN = Obj({"steps": Int(0), "tokens": Int(0), "final_loss": Nullable(Num(0)), "wall_time_s": Num(0)},
            optional={"torch_threads": Int(1)},
            doc={"torch_threads": "the intra-op threads this seed trained with: the config's `threads`"})
RUN = Obj({"seed": Int(0), "status": Enum(("complete", "diverged")), "train": TRAIN, "cells": Arr(CELL)},
          optional={"early_exit": Arr(EARLY_EXIT),
                    "diagnostics": Obj(optional={"spectral_radius": Nullable(Num(0, None))}),
                    "validation": Arr(CELL)},
          doc={"seed": "listed in the top-level `seeds`; no seed occurs twice in a model",
               "status": "`diverged`: the loss became non-finite; no numbers",
               "cells": "non-empty for a complete run; all complete runs of a model cover the same (difficulty, "
                        "loops) grid",
               "early_exit": "empty for `standard`", "diagnostics": "free-form beside `spectral_radius`",
               "validation": "`eval.validation`: cells on the validation split at the evaluated training "
                             "difficulties, at the training loop count (null loops for `standard`)"})
MODEL = Obj({"name": Str(MODEL_NAME_RE, 64), "family": Enum(FAMILIES), "role": Str(ROLE_RE),
             "model_config": Obj(), "params": Obj({k: Int(0) for k in PARAM_KEYS}),
             "flops_per_token": Obj({"forward": Num(0), "train": Num(0)}),
             "train_loops": Nullable(Int(1)), "eval_loops": Nullable(Arr(Int(1), 1)),
             "runs": Arr(RUN, 1), "summary": Arr(SUMMARY)},
            doc={"name": "unique in the file", "model_config": "free-form",
                 "train_loops": "required (non-null) for `rdt` and one of `eval_loops`; null for `standard`",
                 "eval_loops": "no duplicates; required for `rdt`, null for `standard`",
                 "runs": "one per seed; when `status` is `complete`, every top-level seed has a run",
                 "summary": "per difficulty, over complete runs"})
TASK = Obj({"name": Str(TASK_NAME_RE, 64), "version": Int(1), "fingerprint": Str(r"[0-9a-f]{64}"),
            "train_difficulties": Arr(Int(1), 1), "test_difficulties": Arr(Int(1), 1)},
           doc={"name": "it becomes a directory name on the leaderboard",
                "fingerprint": "sha256 over the test split at every test difficulty",
                "train_difficulties": "no duplicates", "test_difficulties": "no duplicates"})
# The top-level fields every kind of results file carries: what was run, from which code, where and on what.
PROVENANCE: dict[str, Node] = {
    "schema_version": Int(), "kind": Str(), "mythbench_version": Str(max_len=64),
    "git": Obj({"commit": Nullable(Str(r"[0-9a-f]{40}|[0-9a-f]{64}")), "dirty": Nullable(Bool())},
               doc={"commit": "null: not a checkout", "dirty": "uncommitted changes in the tree"}),
    "command": Str(max_len=4096), "created_at": Str(timestamp=True), "wall_time_s": Num(0),
    "status": Enum(("complete", "incomplete")), "preset": Nullable(Str(max_len=64)), "config": Obj(),
    "task": TASK,
    "environment": Obj({"python": Str(), "torch": Str(), "device": Str()},
                       optional={"numpy": Str(), "platform": Str(), "cpu_count": Nullable(Int(1)),
                                 "torch_threads": Int(1)},
                       doc={"device": "other keys are allowed",
                            "torch_threads": "the intra-op threads of the writing process: the config's `threads`"}),
    "seeds": Arr(Int(0), 1),
}
PROVENANCE_DOC = {"schema_version": "see [Versioning and kinds](#versioning-and-kinds)",
                  "kind": "`run`, or `scale` (see [Scale results](#scale-results-kind-scale))",
                  "command": "the command line", "status": "`incomplete`: some model or seed did not finish",
                  "config": "the resolved run config (free-form)", "seeds": "no duplicates"}
RUN_V1 = Obj({**PROVENANCE, "models": Arr(MODEL, 1)}, doc={**PROVENANCE_DOC, "models": "`name`s unique"})

# Version 2 (tasks v2, evaluation protocol v2): every statistic carries the mean token accuracy; each summary
# entry has the headline (the loop count of the model's pre-registered rule) and calls the best loop count
# chosen on test labels `oracle_best`; looped models record their rule; the task records its depth and
# whether its context grows; the run records its evaluation protocol.
_STAT_V2 = {**_STAT, "token_accuracy": Num(0, 1)}
_STAT_V2_DOC = {**_STAT_DOC, "token_accuracy": "mean over complete seeds of the cells' `token_accuracy` "
                                               "(within 1e-9)"}
STAT_V2 = Obj(_STAT_V2, doc=_STAT_V2_DOC)
STAT_AT_V2 = Obj({**_STAT_V2, "loops": Nullable(Int(1))}, doc={**_STAT_V2_DOC, "loops": "null for `standard`"})
SUMMARY_V2 = Obj({"difficulty": Int(1), "split": Enum(("train", "test")),
                  "headline": Nullable(STAT_AT_V2), "acc_at_train_loops": Nullable(STAT_V2),
                  "oracle_best": STAT_AT_V2, "acc_at_max_loops": Nullable(STAT_V2), "overthinking_drop": Num(-1, 1)},
                 doc={"difficulty": "at most one entry per difficulty; complete runs have cells there",
                      "split": "the difficulty is one of the task's difficulties of that split",
                      "headline": "the result: at the model's `loop_rule.loops` for this difficulty (`rdt`; `loops` "
                                  "must equal it) or the only cell (`standard`, `loops` null)",
                      "acc_at_train_loops": "at loops = `train_loops` (`rdt`) or the only cell (`standard`); null "
                                            "only where that cell does not exist",
                      "oracle_best": "the best loop count chosen on the test labels (ties: any loop count within "
                                     "1e-9 of the best mean). An upper bound for diagnosis, never a result",
                      "acc_at_max_loops": "at the largest loop count evaluated there; required for `rdt`",
                      "overthinking_drop": "`oracle_best.mean − acc_at_max_loops.mean` within 1e-9 (0 for "
                                           "`standard`)"})
LOOP_RULE = Obj({"name": Enum(LOOP_RULES), "loops": Obj()},
                doc={"name": "as `evaluation.loop_rule`",
                     "loops": "from each evaluated difficulty (a decimal string) to its headline loop count, one of "
                              "`eval_loops`, never decreasing with the difficulty (all `train_loops` for rule "
                              "`train`)"})
MODEL_V2 = Obj({**MODEL.required, "loop_rule": Nullable(LOOP_RULE), "summary": Arr(SUMMARY_V2)},
               optional={"twin_of": Nullable(Str(MODEL_NAME_RE, 64))},
               doc={**MODEL.doc, "loop_rule": "required for `rdt`, null for `standard`",
                    "twin_of": "a twin (a `standard` model matched to a looped one): the `name` of that looped "
                               "model in this file; null for a looped model. Files written before twins "
                               "lack it: their `iso-param` and `iso-flop` are the twins of the `rdt`-role model"})
TASK_V2 = Obj({**TASK.required, "depth_per_difficulty": Int(1), "context_length": Enum(("fixed", "grows"))},
              doc={**TASK.doc, "depth_per_difficulty": "sequential steps per unit of difficulty",
                   "context_length": "whether the difficulty changes the sequence length"})
EVALUATION = Obj({"loop_rule": Enum(LOOP_RULES), "depth_factor": Num(0), "loops_factor": Int(1),
                  "oracle": Str(max_len=256)},
                 doc={"loop_rule": "the headline's pre-registered loop rule",
                      "depth_factor": "loops were swept to at least this times the depth of the hardest test "
                                      "difficulty",
                      "loops_factor": "and to at least this times the training loop count",
                      "oracle": "what `oracle_best` is"})
TUNING = Obj({"file": Str(max_len=4096), "sha256": Str(r"[0-9a-f]{64}"), "models": Obj()},
             doc={"file": "the tune file (`mythbench tune`) passed as `--tuned`",
                  "sha256": "its sha256, as `config.tune.use_sha256`",
                  "models": "per model name: `chosen` (the trial, `lr`, `recipe`, and `train`: the recipe keys the "
                            "model trained with) and `trials` (every trial of the search with its validation loss)"})
RUN_V2 = Obj({**PROVENANCE, "task": TASK_V2, "evaluation": EVALUATION, "models": Arr(MODEL_V2, 1)},
             optional={"tuning": TUNING},
             doc={**PROVENANCE_DOC, "evaluation": "the evaluation protocol", "models": "`name`s unique",
                  "tuning": "present when the run trained each model at its tuned settings (`--tuned`)"})


def duplicates(values: list[int], path: str, what: str, out: list[str]) -> None:
    seen: set[int] = set()
    for x in values:
        if x in seen:
            out.append(f"{path}: duplicate {what} {x}")
        seen.add(x)


def check_provenance(doc: dict, out: list[str]) -> None:
    """The rules on PROVENANCE beyond its shape, for every kind: no seed or difficulty listed twice."""
    duplicates(ints(doc.get("seeds")), "seeds", "seed", out)
    task = doc.get("task")
    if isinstance(task, dict):
        for key in ("train_difficulties", "test_difficulties"):
            duplicates(ints(task.get(key)), f"task.{key}", "difficulty", out)
