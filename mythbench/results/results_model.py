"""The results model: pydantic models of a `mythbench run` results.json, every schema version.

The harness validates what it writes against these models (nothing invalid is written), `mythbench verify`
and every reader validate what they read, and docs/results-schema.md is generated from them
(mythbench/results/results_doc.py). Types and bounds are declared on the fields; the rules across fields
(a seed listed once, a cell at a declared difficulty, a loop rule that never decreases) are validators
that return every problem at once, as `relative.path: message` lines (mythbench/results/schema.py joins
them to the path pydantic reports).

Version 3 stores raw counts only (`correct`, `n` and the scored tokens per cell): accuracies, intervals and
summaries are computed when read (`analysis.stats.with_derived`). Versions 1 and 2 stored them as well; their
files are read through the same models, and what they stored beside the counts is never used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from mythbench.analysis.metrics import secondary

RUN_SCHEMA_VERSION = 3  # what `mythbench run` writes
TASK_NAME_RE = r"[a-z][a-z0-9_-]{0,63}"
MODEL_NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,63}"
FAMILY_RE = r"[a-z][a-z0-9_-]{0,63}"  # any registered model family (plugins included)
ROLE_RE = r"ablation:[a-z0-9][a-z0-9_-]{0,47}|[a-z][a-z0-9_-]{0,63}"  # rdt, control, iso-param, a plugin's
# the summary statistic each version's leaderboard rows rank by (version 1 had no loop rule)
HEADLINE_KEY = {1: "acc_at_train_loops", 2: "headline", 3: "headline"}


class Model(BaseModel):
    """Strict types (a bool is not a count, "1" is not a number); unknown keys are kept (forward compatibility)."""

    model_config = ConfigDict(strict=True, extra="allow", protected_namespaces=())


def _printable(v: Any) -> Any:
    if isinstance(v, str) and not v.isprintable():
        raise PydanticCustomError("text", "contains control characters")
    return v


def _timestamp(v: Any) -> Any:
    if isinstance(v, str):
        try:
            datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise PydanticCustomError("text", "is not an ISO 8601 timestamp like 2026-11-29T06:00:00Z") from None
    return v


def Text(pattern: str | None = None, max_len: int = 256, doc: str | None = None) -> Any:  # noqa: N802
    """A printable string (no control characters), at most max_len long, matching pattern if given."""
    return Annotated[str, Field(max_length=max_len, pattern=pattern and f"^(?:{pattern})$", description=doc),
                     BeforeValidator(_printable)]


Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
Timestamp = Annotated[str, Field(description="ISO 8601, e.g. `2026-11-29T06:00:00Z`"), BeforeValidator(_timestamp)]
Split = Literal["train", "test"]


def rules(check: Any) -> Any:
    """An after-validator from a method returning problems (`path: message`); raises them all at once."""
    def run(self: Any) -> Any:
        problems = check(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self
    return model_validator(mode="after")(run)


def duplicates(values: list[Any], path: str, what: str) -> list[str]:
    seen: set[Any] = set()
    return [f"{path}: duplicate {what} {x}" for x in values if x in seen or seen.add(x)]  # type: ignore[func-returns-value]


def repeats(keyed: list[tuple[Any, str]], field: str, what: str) -> list[str]:
    """For each (key, path) whose key an earlier entry holds: `path.field: duplicate what key (also first)`."""
    first: dict[Any, str] = {}
    out = []
    for key, path in keyed:
        if key in first:
            out.append(f"{path}.{field}: duplicate {what} {key!r} (also {first[key]})")
        first.setdefault(key, path)
    return out


class Git(Model):
    commit: Text(r"[0-9a-f]{40}|[0-9a-f]{64}", doc="null: not a checkout") | None
    dirty: bool | None = Field(description="uncommitted changes in the tree")


class Environment(Model):
    """Where the run ran; other keys are allowed."""

    python: Text()
    torch: Text()
    device: Text()
    cpu_count: Positive | None = None
    torch_threads: Positive | None = Field(None, description="the intra-op threads of the writing process")


class TaskInfo(Model):
    name: Text(TASK_NAME_RE, 64, doc="it becomes a directory name on the leaderboard")
    version: Positive
    fingerprint: Text(r"[0-9a-f]{64}", doc="sha256 over the test split at every test difficulty")
    train_difficulties: list[Positive] = Field(min_length=1, description="no duplicates")
    test_difficulties: list[Positive] = Field(min_length=1, description="no duplicates")
    check_difficulties = rules(lambda t: duplicates(t.train_difficulties, "train_difficulties", "difficulty")
                   + duplicates(t.test_difficulties, "test_difficulties", "difficulty"))

    def split(self, d: int) -> Split:
        return "train" if d in self.train_difficulties else "test"


class Provenance(Model):
    """The top-level fields every kind of results file carries: what was run, from which code, where."""

    schema_version: int
    kind: str
    mythbench_version: Text(max_len=64)
    git: Git
    command: Text(max_len=4096, doc="the command line")
    created_at: Timestamp
    wall_time_s: NonNegative
    status: Literal["complete", "incomplete"] = Field(description="`incomplete`: some model or seed did not finish")
    preset: Text(max_len=64) | None
    config: dict[str, Any] = Field(description="the resolved run config (free-form)")
    task: TaskInfo
    environment: Environment
    seeds: list[Count] = Field(min_length=1, description="no duplicates")


class Counts(Model):
    """Exact-match counts: `correct` of `n` sequences right at every scored position."""

    n: Positive = Field(description="test instances scored")
    correct: Count = Field(description="exact-match correct, `correct ≤ n`")
    check_counts = rules(lambda c: [f"correct: {c.correct} is more than n = {c.n}"] if c.correct > c.n else [])


class Cell(Counts):
    difficulty: Positive = Field(description="one of the task's difficulties; once per (difficulty, loops) and run")
    loops: Positive | None = Field(description="one of `eval_loops` for a looped model; null otherwise")
    loss: NonNegative = Field(description="mean cross-entropy per scored position")
    token_correct: Count | None = Field(None, description="scored positions predicted right (version 3)")
    tokens: Count | None = Field(None, description="scored positions (version 3)")
    token_accuracy: Fraction | None = Field(None, description="versions 1 and 2: `token_correct / tokens`")

    @property
    def key(self) -> tuple[int, int | None]:
        return self.difficulty, self.loops

    check_metrics = rules(lambda c: metric_count_problems(c))


def metric_count_problems(cell: Cell) -> list[str]:
    """Every registered metric's counts the cell holds (a plugin's are extra keys): counts, `hits ≤ total`."""
    out = []
    for m in secondary():
        hits, total = getattr(cell, m.hits, None), getattr(cell, m.total, None)
        if hits is None or total is None:  # a declared field's absence is its version's rule
            out += [f"{k}: required field is missing ({m.name} counts {m.hits} of {m.total})"
                    for k, v in ((m.hits, hits), (m.total, total))
                    if v is None and (hits, total) != (None, None) and k not in type(cell).model_fields]
            continue
        bad = [f"{k}: expected a count (an integer >= 0), got {v!r}"[:120] for k, v in ((m.hits, hits), (m.total, total))
               if type(v) is not int or v < 0]
        out += bad or ([f"{m.hits}: {hits} is more than {m.total} = {total}"] if hits > total else [])
    return out


class EarlyExit(Counts):
    difficulty: Positive
    rule: Text(r"[a-z][a-z0-9_]{0,31}", doc="e.g. `act`, `kl`, `confidence`, `delta_h`")
    threshold: float | None
    mean_loops: NonNegative = Field(description="at most the largest eval loop count")


class Train(Model):
    """A training outcome; a scale point stores the same one."""

    steps: Count
    tokens: Count
    final_loss: NonNegative | None
    wall_time_s: NonNegative
    torch_threads: Positive | None = Field(None, description="the intra-op threads this seed trained with")


class Run(Model):
    seed: Count = Field(description="listed in the top-level `seeds`; no seed occurs twice in a model")
    status: Literal["complete", "diverged"] = Field(description="`diverged`: the loss became non-finite")
    train: Train
    cells: list[Cell] = Field(description="non-empty for a complete run; one grid for all complete runs")
    early_exit: list[EarlyExit] = Field([], description="empty for a model that does not loop")
    diagnostics: dict[str, Any] = Field({}, description="free-form")
    validation: list[Cell] = Field([], description="cells on the validation split (`eval.validation`)")


class LoopRule(Model):
    name: Literal["difficulty", "train"] = Field(description="as `evaluation.loop_rule`")
    loops: dict[str, Positive] = Field(description="each evaluated difficulty (a decimal string) to its headline "
                                                   "loop count, one of `eval_loops`, never decreasing")


class Params(Model):
    total: Count
    unique: Count
    active: Count
    once: Count
    recurrent: Count


class Flops(Model):
    forward: NonNegative
    train: NonNegative


class ModelEntry(Model):
    name: Text(MODEL_NAME_RE, 64, doc="unique in the file")
    family: Text(FAMILY_RE, 64, doc="the registered model family, e.g. `rdt`, `standard`, `openmythos`")
    role: Text(ROLE_RE, 64)
    model_config_: dict[str, Any] = Field(alias="model_config", description="free-form")
    params: Params
    flops_per_token: Flops
    train_loops: Positive | None = Field(description="set exactly for a looped model; one of `eval_loops`")
    eval_loops: list[Positive] | None = Field(min_length=1, description="looped models only; no duplicates")
    loop_rule: LoopRule | None = Field(None, description="version 2 on: required for a looped model, else null")
    twin_of: Text(MODEL_NAME_RE, 64) | None = Field(None, description="a twin: the looped model it is matched to")
    runs: list[Run] = Field(min_length=1, description="one per seed")
    summary: list[dict[str, Any]] | None = Field(None, description="versions 1 and 2 stored it; never read")

    @property
    def looped(self) -> bool:
        return self.train_loops is not None


class Evaluation(Model):
    loop_rule: Literal["difficulty", "train"] = Field(description="the headline's pre-registered loop rule")
    depth_factor: NonNegative = Field(description="loops swept to at least this times the hardest test depth")
    loops_factor: Positive = Field(description="and to at least this times the training loop count")
    oracle: Text() = Field(description="what `oracle_best` is")


class TunedChoice(Model):
    lr: float = Field(gt=0, description="the chosen learning rate")
    recipe: Text(max_len=64) | None = Field(description="the chosen recipe of the declared list (null: the config's)")
    train: dict[str, Any] = Field(description="the recipe's training keys, as the model trained with them")


class TunedModel(Model):
    chosen: TunedChoice
    trials: list[Any] = Field(min_length=1, description="every trial of the search, the chosen one among them")


class Tuning(Model):
    file: Text(max_len=4096, doc="the tune file passed as `--tuned`")
    sha256: Text(r"[0-9a-f]{64}")
    models: dict[Text(MODEL_NAME_RE), TunedModel] = Field(description="per model: its choice and the trials")


class TaskInfoV2(TaskInfo):
    depth_per_difficulty: Positive = Field(description="sequential steps per unit of difficulty")
    context_length: Literal["fixed", "grows"] = Field(description="whether the difficulty changes the length")


class RunFileV1(Provenance):
    """Schema version 1: no loop rule (the headline is at the training loop count)."""

    models: list[ModelEntry] = Field(min_length=1, description="`name`s unique")
    check_models = rules(lambda doc: run_problems(doc))


class RunFileV2(RunFileV1):
    """Version 2 adds the evaluation protocol, each looped model's pre-registered loop rule and the task's depth."""

    task: TaskInfoV2
    evaluation: Evaluation
    tuning: Tuning | None = Field(None, description="present when the run trained at tuned settings (`--tuned`)")


class RunFileV3(RunFileV2):
    """Version 3 stores raw counts only: every rate, interval and summary is computed when read."""


DERIVED_CELL_KEYS = ("accuracy", "ci_low", "ci_high", "token_accuracy")  # stored by versions 1-2, never read


def run_problems(doc: RunFileV1) -> list[str]:
    """The rules across fields of a run file: every model's, then twins and unique names."""
    out = duplicates(doc.seeds, "seeds", "seed")
    out += repeats([(m.name, f"models[{i}]") for i, m in enumerate(doc.models)], "name", "name")
    for i, m in enumerate(doc.models):
        out += model_problems(m, f"models[{i}]", doc)
    looped = {m.name for m in doc.models if m.looped}
    for i, m in enumerate(doc.models):
        if m.twin_of is not None and m.looped:
            out.append(f"models[{i}].twin_of: a twin does not loop, but this model has train_loops")
        if m.twin_of is not None and m.twin_of not in looped:
            out.append(f"models[{i}].twin_of: {m.twin_of!r} is not the name of a looped model in this file")
    return out


def model_problems(m: ModelEntry, path: str, doc: RunFileV1) -> list[str]:
    """One model's loops, runs and cells against the task, the seeds and each other."""
    version, task = doc.schema_version, doc.task
    difficulties = set(task.train_difficulties) | set(task.test_difficulties)
    out = _loop_problems(m, path, difficulties, version)
    out += repeats([(run.seed, f"{path}.runs[{i}]") for i, run in enumerate(m.runs)], "seed", "seed")
    grid: tuple[str, set] | None = None
    for i, run in enumerate(m.runs):
        rp = f"{path}.runs[{i}]"
        if run.seed not in doc.seeds:
            out.append(f"{rp}.seed: {run.seed} is not listed in the top-level seeds")
        keys = _cell_problems(run.cells, f"{rp}.cells", m, difficulties, version, out)
        for j, e in enumerate(run.early_exit):
            ep = f"{rp}.early_exit[{j}]"
            if e.difficulty not in difficulties:
                out.append(f"{ep}.difficulty: {e.difficulty} is not one of the task's difficulties")
            if m.eval_loops and e.mean_loops > max(m.eval_loops):
                out.append(f"{ep}.mean_loops: {e.mean_loops!r} exceeds the largest eval loop count")
        if run.early_exit and not m.looped:
            out.append(f"{rp}.early_exit: must be empty for a model that does not loop")
        if run.status != "complete":
            continue
        if not run.cells:
            out.append(f"{rp}.cells: a complete run has no cells")
        elif grid is None:
            grid = (rp, keys)
        elif keys != grid[1]:
            diff = sorted(grid[1] ^ keys, key=repr)[:3]
            out.append(f"{rp}.cells: evaluated on a different (difficulty, loops) grid than {grid[0]}, "
                       f"e.g. {', '.join(map(str, diff))}")
    if doc.status == "complete":
        out += [f"{path}.runs: no run for seed {s} although status is 'complete'" for s in sorted(set(doc.seeds) - {run.seed for run in m.runs})]
    if version >= 3 and m.summary is not None:
        out.append(f"{path}.summary: version 3 stores counts only; summaries are computed when read")
    return out


def _loop_problems(m: ModelEntry, path: str, difficulties: set[int], version: int) -> list[str]:
    """A looped model (train_loops set) names its loop counts and, from version 2, a headline loop count per
    difficulty by a rule that cannot have looked at the labels (constant, or growing with d)."""
    if not m.looped:
        return [f"{path}.{key}: must be null for a model that does not loop (train_loops is null)"
                for key in ("eval_loops", "loop_rule") if getattr(m, key) is not None]
    if m.eval_loops is None:
        return [f"{path}.eval_loops: required for a looped model (train_loops is set), got null"]
    out = duplicates(m.eval_loops, f"{path}.eval_loops", "loop count")
    if m.train_loops not in m.eval_loops:
        out.append(f"{path}.train_loops: {m.train_loops} is not in eval_loops")
    if version >= 2 and m.loop_rule is None:
        got = "got null" if "loop_rule" in m.model_fields_set else "the field is missing"
        out.append(f"{path}.loop_rule: required for a looped model, {got}")
    if version < 2 or m.loop_rule is None:
        return out
    loops: dict[int, int] = {}
    for key, value in m.loop_rule.loops.items():
        where = f"{path}.loop_rule.loops.{key}"
        if not (key.isdigit() and len(key) <= 6 and int(key) in difficulties):
            out.append(f"{where}: {key!r} is not one of the task's difficulties")
        elif value not in m.eval_loops:
            out.append(f"{where}: {value} is not an evaluated loop count")
        else:
            loops[int(key)] = value
    ordered = [loops[d] for d in sorted(loops)]
    if m.loop_rule.name == "train" and set(ordered) - {m.train_loops}:
        out.append(f"{path}.loop_rule: rule 'train' must give train_loops = {m.train_loops} everywhere")
    if any(b < a for a, b in zip(ordered, ordered[1:], strict=False)):
        out.append(f"{path}.loop_rule.loops: must not decrease as the difficulty grows, got {ordered}")
    return out


def _cell_problems(cells: list[Cell], path: str, m: ModelEntry, difficulties: set[int], version: int,
                   out: list[str]) -> set[tuple[int, int | None]]:
    """Cells at declared difficulties and evaluated loop counts, once each, with the counts of their version;
    returns the (difficulty, loops) grid."""
    first: dict[tuple[int, int | None], str] = {}
    for i, c in enumerate(cells):
        cp = f"{path}[{i}]"
        if c.difficulty not in difficulties:
            out.append(f"{cp}.difficulty: {c.difficulty} is not one of the task's difficulties")
        if not m.looped and c.loops is not None:
            out.append(f"{cp}.loops: must be null for a model that does not loop")
        elif m.looped and c.loops not in (m.eval_loops or []):
            out.append(f"{cp}.loops: {c.loops} is not in eval_loops")
        if c.key in first:
            out.append(f"{cp}: duplicate cell for difficulty {c.difficulty}, loops {c.loops} (also {first[c.key]})")
        first.setdefault(c.key, cp)
        if version >= 3:
            out += [f"{cp}.{k}: version 3 stores counts only; it is computed when read"
                    for k in dict.fromkeys([*DERIVED_CELL_KEYS, *(m.name for m in secondary())])
                    if k in (c.model_extra or {}) or getattr(c, k, None) is not None]
            out += [f"{cp}.{k}: required field is missing" for k in ("token_correct", "tokens") if getattr(c, k) is None]
        elif c.token_accuracy is None:
            out.append(f"{cp}.token_accuracy: required field is missing")
    return set(first)

