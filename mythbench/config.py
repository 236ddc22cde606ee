"""Run configuration: dataclasses, presets, YAML files and `--set` overrides, validated in one place.

Resolution order (later wins): recipes.yaml (the models and per-task recipes) -> its section for the
task -> preset file -> the preset's per-task section -> `--config FILE` -> `--set key=value`. Presets set
budgets only (BUDGET_KEYS), so every preset trains the same architecture with the same recipe. Every
problem (unknown key, wrong type, out-of-range value, malformed YAML, missing file) is collected and
raised together as one ConfigError.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mythbench.core.errors import ConfigError, known_hint
from mythbench.core.fielddocs import field_docs
from mythbench.core.yamlio import load_yaml, parse_yaml
from mythbench.models.rdt_config import RDTConfig
from mythbench.tune_config import TuneConfig

PRESET_DIR = Path(__file__).parent / "presets"
RECIPES_FILE = Path(__file__).parent / "recipes.yaml"
# what a preset may set (also in its per-task sections): how much to spend, never what to train
BUDGET_KEYS = {
    "seeds": None, "device": None,
    "model": {"d_model", "n_heads"},  # width: the same architecture family at another size
    "train": {"steps", "batch_size", "lr", "warmup_steps", "min_lr_ratio", "checkpoint_every", "bf16", "compile"},
    "eval": {"chunk_size", "train_points"},
    "scale": None,  # the ladder is a budget
    "tune": {"steps", "seeds", "trials"},  # how much a search spends, never its space
}
RECIPES = ("fixed", "parcae", "huginn", "progressive", "tied")  # loop schedules; "progressive" = fixed + DT-nets term
READOUT_LOSSES = ("last", "tail")
EXIT_RULES = ("act", "delta_h", "kl", "confidence")
LOOP_RULES = ("difficulty", "train")  # the headline's loop count per difficulty, fixed before any test label
# what a named recipe (a train.* bundle of `recipes:`) sets; the rest of train.* is budget, shared by every recipe
LOOP_ONLY_KEYS = ("recipe", "bwd_loops", "huginn_sigma", "progressive", "progressive_alpha", "loops_per_difficulty",
                  "loop_jitter", "readout_loss")  # recipe keys that a model without loops ignores (train.py)
RECIPE_KEYS = (*LOOP_ONLY_KEYS, "curriculum_fraction")


@dataclass
class TrainConfig:
    """How each model is trained. RDT and baselines share steps, batches and data seed."""

    steps: int = 400  # optimizer steps per model
    batch_size: int = 32  # sequences per step
    lr: float = 3e-3  # peak learning rate (AdamW): linear warmup to it, then cosine decay
    weight_decay: float = 0.1  # AdamW weight decay
    warmup_steps: int = 40  # steps of linear warmup
    min_lr_ratio: float = 0.1  # the cosine decay ends at min_lr_ratio * lr
    grad_clip: float = 1.0  # largest global gradient norm; larger gradients are scaled down to it
    recipe: str = "fixed"  # loop schedule, the loops a training step runs: fixed | parcae | huginn | progressive | tied
    bwd_loops: int = 4  # truncated backprop depth for the random-loop recipes (Parcae mu_bwd)
    huginn_sigma: float = 0.5  # `huginn`: sigma of the lognormal rate of its Poisson loop count
    progressive_alpha: float = 0.5  # DT-nets weight of the progressive term
    progressive: bool = False  # add the DT-nets progressive term under any loop schedule (Bansal et al. 2022)
    loops_per_difficulty: float = 1.0  # `tied` recipe: loops = ceil(this * difficulty) (Fan et al.)
    # `tied`: loops drawn uniformly from [base, ceil(base * (1 + loop_jitter))], base = the tied count, so
    # the model also trains at loop counts above the depth the instance needs
    loop_jitter: float = 0.0
    # "last": loss on the readout after the last loop; "tail" (`tied` only): mean loss over the readouts
    # after every loop from the tied count to the last, so extra loops are trained to hold the answer
    # (Yang et al. 2023 average the last loops' losses)
    readout_loss: str = "last"
    curriculum_fraction: float = 0.0  # share of steps over which the max train difficulty ramps up
    # train only on training difficulties <= this (0 = all): a tuning run holds the larger training
    # difficulties out as a validation set for extrapolation, so no test difficulty is ever used to choose
    max_difficulty: int = 0
    checkpoint_every: int = 100  # steps between resumable training checkpoints
    bf16: bool = False  # train under bfloat16 autocast
    compile: bool = False  # train a torch.compile-d model

    def problems(self) -> list[str]:
        p = _positive(self, ["steps", "batch_size", "lr", "bwd_loops", "checkpoint_every",
                             "loops_per_difficulty", "grad_clip"])
        p += _in_range(self, {"lr": (0, 10), "weight_decay": (0, 10), "min_lr_ratio": (0, 1), "huginn_sigma": (0, 5),
                              "progressive_alpha": (0, 1), "curriculum_fraction": (0, 1),
                              "loop_jitter": (0, 16)})
        if self.max_difficulty < 0:
            p.append(f"train.max_difficulty: {self.max_difficulty} must be >= 0 (0 = every training difficulty)")
        if self.readout_loss not in READOUT_LOSSES:
            p.append(f"train.readout_loss: {self.readout_loss!r} is not one of {', '.join(READOUT_LOSSES)}")
        elif self.readout_loss == "tail" and self.recipe != "tied":
            p.append("train.readout_loss: 'tail' needs train.recipe 'tied' (the tail starts at the tied count)")
        elif self.readout_loss == "tail" and self.uses_progressive and self.progressive_alpha == 1:
            p.append("train.readout_loss: 'tail' has no effect at train.progressive_alpha 1 (the loss is the "
                     "progressive term alone)")
        if self.loop_jitter and self.recipe != "tied":
            p.append("train.loop_jitter: only the 'tied' recipe samples loops around its tied count")
        if not 0 <= self.warmup_steps < max(self.steps, 1):
            p.append(f"train.warmup_steps: {self.warmup_steps} must be in [0, train.steps)")
        if self.recipe not in RECIPES:
            p.append(f"train.recipe: {self.recipe!r} is not one of {', '.join(RECIPES)}")
        return p

    def trained_difficulties(self, difficulties: list[int]) -> list[int]:
        """The training difficulties this config trains on (all, or those <= max_difficulty)."""
        return sorted(d for d in difficulties if not self.max_difficulty or d <= self.max_difficulty)

    @property
    def uses_progressive(self) -> bool:
        return self.progressive or self.recipe == "progressive"

    def with_recipe(self, bundle: dict[str, Any]) -> TrainConfig:
        """This config with its recipe replaced by `bundle`: every RECIPE_KEYS field the bundle leaves out takes
        its default, so no part of the task's own recipe (its progressive term, say) leaks into another."""
        defaults = TrainConfig()
        return dataclasses.replace(self, **{k: bundle.get(k, getattr(defaults, k)) for k in RECIPE_KEYS})

    def with_steps(self, steps: int) -> TrainConfig:
        """This config at another step count, warmup scaled alike (and kept below the steps)."""
        warmup = min(steps - 1, round(self.warmup_steps * steps / self.steps))
        return dataclasses.replace(self, steps=steps, warmup_steps=warmup)


@dataclass
class EvalConfig:
    """The evaluation grid and its pre-registered rules: the headline loop rule and the early-exit
    thresholds are fixed in advance, never tuned on test difficulties."""

    loops_factor: int = 4  # RDT loops swept from 1 to max(loops_factor * train_loops, depth_factor * depth)
    depth_factor: float = 2.0  # see loops_factor; depth = the steps the hardest test difficulty needs (task spec)
    # headline loops at difficulty d: "difficulty" = the loops per unit of difficulty the model trained with
    # at its hardest training difficulty, kept (tied recipe: ceil(loops_per_difficulty * d)); "train" = the
    # training loop count at every d
    loop_rule: str = "difficulty"
    chunk_size: int = 128  # sequences per forward pass: bounds memory at the largest difficulty
    train_points: int = 4  # training difficulties evaluated (evenly spaced, always the largest); 0 = all
    delta_h_threshold: float = 1e-2  # early exit `delta_h`: at the first loop whose relative state change is below this
    kl_threshold: float = 1e-3  # early exit `kl`: at the first loop whose readout is this close (KL) to the previous
    confidence_threshold: float = 0.99  # early exit `confidence`: once every scored token is this sure
    # also score the model on the task's validation split at its evaluated training difficulties and training
    # loop count (result["validation"]): what a hyperparameter is chosen on, never the test instances
    validation: bool = False

    def problems(self) -> list[str]:
        p = _positive(self, ["loops_factor", "chunk_size", "delta_h_threshold", "kl_threshold"])
        if self.train_points < 0:
            p.append(f"eval.train_points: {self.train_points} must be >= 0")
        if not 0 <= self.depth_factor <= 64:
            p.append(f"eval.depth_factor: {self.depth_factor} must be in [0, 64]")
        if self.loop_rule not in LOOP_RULES:
            p.append(f"eval.loop_rule: {self.loop_rule!r} is not one of {', '.join(LOOP_RULES)}")
        return p + _in_range(self, {"confidence_threshold": (0, 1)})


LADDERS = ("rdt", "dense")  # what a width ladder trains: see ScaleConfig.ladder


@dataclass
class ScaleConfig:
    """`mythbench scale`: a width ladder of looped models at several training loop counts r."""

    # "rdt": the RDT under test (recipes.yaml; its per-loop tables sized for the largest r at every r) beside
    # the standard transformer of its distinct layers; "dense": a dense looped transformer (MHA, SwiGLU, LTI
    # injection; no MoE, no LoRA), whose unique parameters do not depend on r and whose r = 1 point is the
    # standard comparison with the same unique layers (so scale.loop_counts must hold 1)
    ladder: str = "rdt"
    widths: list[int] = field(default_factory=lambda: [16, 24, 32, 48, 64])  # d_model of each point, 5 or more
    head_dim: int = 8  # n_heads = width // head_dim, so attention shape scales with width
    loop_counts: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # RDT training loops (loop-worth law)
    n_bootstrap: int = 200  # bootstrap resamples for the fits' intervals
    steps: int = 0  # training steps per ladder point; 0 = train.steps (a CPU ladder needs fewer)
    # gamma: a point of width w trains at lr = train.lr * (min(widths) / w) ** gamma. 0 = one lr for every
    # width; 1 = muP's Adam rule (hidden-layer updates shrink as 1/width), so wide points are not over-stepped
    lr_width_exponent: float = 0.0
    # multipliers of each width's learning rate: with more than one, every point trains at each, and the one of
    # lowest seed-mean validation loss (the task's validation split, never its test instances) is reported,
    # per family, width and loop count
    lr_grid: list[float] = field(default_factory=lambda: [1.0])
    # > 0: the grid is tried in a short pilot instead: the reference model (r = 1, or the standard transformer)
    # of each width trains this many steps at every multiplier (first seed), and the multiplier of lowest
    # validation loss trains every point of that width
    pilot_steps: int = 0

    def problems(self) -> list[str]:
        p = []
        if len(set(self.widths)) < 4:
            p.append(f"scale.widths: need at least 4 distinct widths for the fits, got {self.widths}")
        if self.ladder not in LADDERS:
            p.append(f"scale.ladder: {self.ladder!r} is not one of {', '.join(LADDERS)}")
        elif self.ladder == "dense" and 1 not in self.loop_counts:
            p.append(f"scale.loop_counts: the dense ladder's reference is its r = 1 point; got {self.loop_counts}")
        if self.pilot_steps < 0:
            p.append(f"scale.pilot_steps: {self.pilot_steps} must be >= 0 (0 = no pilot)")
        elif self.pilot_steps and len(self.lr_grid) < 2:
            p.append("scale.pilot_steps: a pilot chooses among the multipliers of scale.lr_grid; give it at least 2")
        p += [f"scale.widths: {w} is not a positive multiple of scale.head_dim ({self.head_dim})"
              for w in self.widths if self.head_dim <= 0 or w <= 0 or w % self.head_dim]
        if not self.loop_counts or min(self.loop_counts) < 1:
            p.append(f"scale.loop_counts: need positive loop counts, got {self.loop_counts}")
        if self.n_bootstrap < 20:
            p.append(f"scale.n_bootstrap: {self.n_bootstrap} must be >= 20")
        if self.steps < 0:
            p.append(f"scale.steps: {self.steps} must be >= 0 (0 = use train.steps)")
        if not 0 <= self.lr_width_exponent <= 2:
            p.append(f"scale.lr_width_exponent: {self.lr_width_exponent} must be in [0, 2] (1 = lr ~ 1/width)")
        if not self.lr_grid or len(set(self.lr_grid)) < len(self.lr_grid) or not all(
                0 < m <= 10 for m in self.lr_grid):
            p.append(f"scale.lr_grid: need distinct learning-rate multipliers in (0, 10], got {self.lr_grid}")
        return p


@dataclass
class RunConfig:
    """Everything `mythbench run` needs; written resolved into the run directory."""

    task: str = "parity"  # a task of `mythbench ls`, or a task file (.yaml)
    preset: str = "quick"  # the budgets layered over recipes.yaml: quick | standard | full
    seeds: list[int] = field(default_factory=lambda: [0])  # every model trains once per seed
    device: str = "cpu"  # cpu, cuda or cuda:N
    # torch's intra-op threads in every process that trains or evaluates a cell: float summation order, so
    # every number, depends on it; a run uses more cores by running cells in parallel (`--workers`)
    threads: int = 1
    # the RDT under test; vocab_size, max_seq_len and causal are set from the task when models are planned
    model: RDTConfig = field(default_factory=RDTConfig)
    # the looped models trained, each derived from `model` (`rdt` is `model` itself, `control`, an ablation,
    # `a+b`: b's change applied to a), and the twins each of them gets (non-looped, matched to it; [] = none)
    models: list[str] = field(default_factory=lambda: ["rdt"])
    twins: list[str] = field(default_factory=lambda: ["iso-param", "iso-flop"])  # each looped model's; [] = none
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    # named recipes: train.* bundles (RECIPE_KEYS only) that tune.recipes chooses among
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tune: TuneConfig = field(default_factory=TuneConfig)

    def problems(self) -> list[str]:
        p = self.train.problems() + self.eval.problems() + self.scale.problems() + self.tune.problems(self.recipes)
        for name, bundle in self.recipes.items():
            unknown = sorted(set(bundle) - set(RECIPE_KEYS)) if isinstance(bundle, dict) else ["(not a mapping)"]
            if unknown:
                p.append(f"recipes.{name}: {', '.join(unknown)} not recipe keys (known: {', '.join(RECIPE_KEYS)})")
            else:
                p += [f"recipes.{name}: {q}" for q in _recipe_problems(bundle, self.train)]
        if not self.seeds:
            p.append("seeds: at least one seed is needed")
        if not self.models:
            p.append("models: at least one looped model is needed, e.g. [rdt] or [rdt, control]")
        for key in ("models", "twins"):
            names = getattr(self, key)
            if len(set(names)) != len(names):
                p.append(f"{key}: {names} has duplicates")
        if len(set(self.seeds)) != len(self.seeds):
            p.append(f"seeds: {self.seeds} has duplicates")
        if any(not 0 <= s < 2**31 for s in self.seeds):  # torch.manual_seed takes 64 bits; keep room for offsets
            p.append("seeds: must be in [0, 2**31)")
        if self.threads < 1:
            p.append(f"threads: {self.threads} must be >= 1")
        p += device_problems(self.device, "device")
        return p


def device_problems(device: str, where: str) -> list[str]:
    """A device name torch would reject only after the model is built (or, for cuda:N, a typo) named up front."""
    index = device.removeprefix("cuda:")
    if device in ("cpu", "cuda") or (device.startswith("cuda:") and index.isdigit()):
        return []
    return [f"{where}: {device!r} is not cpu, cuda or cuda:N"]


def _recipe_problems(bundle: dict, base: TrainConfig) -> list[str]:
    """What is wrong with `base` under the recipe `bundle` (`with_recipe`): wrong types, then its own checks."""
    defaults = to_dict(TrainConfig())
    problems: list[str] = []
    built = _build(TrainConfig, {**to_dict(base), **{k: defaults[k] for k in RECIPE_KEYS}, **bundle}, "train",
                   problems)
    return problems or built.problems()


# before `models:` and `twins:`, a run trained the RDT and `baselines:`, a list of its twins and ablations
LEGACY_TWINS = ("iso-param", "iso-flop")


def _legacy_baselines(data: dict, problems: list[str]) -> None:
    """`baselines:` is refused, with the lines that replace it."""
    if "baselines" in data:
        old = data.pop("baselines")
        models, twins = _migrated(old if isinstance(old, list) else [])
        problems.append(f"baselines: replaced by `models:` (the looped models trained) and `twins:` (the "
                        f"standard transformers each gets); for baselines: {old!r} write models: [{', '.join(models)}] "
                        f"and twins: [{', '.join(twins)}]")


def _migrated(baselines: list) -> tuple[list, list]:
    """The `models:` and `twins:` of a legacy `baselines:` list (its RDT trained first, as it was)."""
    return ["rdt", *(b for b in baselines if b not in LEGACY_TWINS)], [b for b in baselines if b in LEGACY_TWINS]


def _positive(obj: Any, names: list[str]) -> list[str]:
    section = type(obj).__name__.removesuffix("Config").lower()
    return [f"{section}.{n}: {getattr(obj, n)} must be > 0" for n in names if not getattr(obj, n) > 0]


def _in_range(obj: Any, ranges: dict[str, tuple[float, float]]) -> list[str]:
    section = type(obj).__name__.removesuffix("Config").lower()
    return [f"{section}.{n}: {getattr(obj, n)} must be in [{lo}, {hi}]"
            for n, (lo, hi) in ranges.items() if not lo <= getattr(obj, n) <= hi]


def _coerce(value: Any, annotation: Any, where: str, problems: list[str]) -> Any:
    """Check `value` against a dataclass field type; nested dataclasses are built recursively."""
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, where, problems)
    origin = typing.get_origin(annotation)
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {value!r}")
            return None
        (item,) = typing.get_args(annotation)
        return [_coerce(v, item, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        return value
    ok = {bool: isinstance(value, bool), str: isinstance(value, str),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool)}.get(annotation, True)
    if not ok:
        problems.append(f"{where}: expected {annotation.__name__}, got {value!r}")
        return None
    if annotation is float and not math.isfinite(value):  # inf passes every `> 0` check and breaks JSON
        problems.append(f"{where}: {value!r} is not a finite number")
        return None
    return float(value) if annotation is float else value


def _build(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"{where or 'config'}: expected a mapping, got {data!r}")
        return cls()
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in names:
            known = _key_paths(cls(), sections=isinstance(data[key], dict))
            in_a_section = [k for k in known if k.rpartition(".")[2] == key]  # `d_model` for `model.d_model`
            hint = (f" (did you mean {' or '.join(repr(prefix + k) for k in in_a_section)}?)" if in_a_section
                    else known_hint(str(key), known, prefix))
            problems.append(f"{prefix}{key}: unknown key{hint}")
    kwargs = {}
    for key in names & data.keys():
        n_before = len(problems)
        value = _coerce(data[key], hints[key], f"{where}{'.' if where else ''}{key}", problems)
        if len(problems) == n_before:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except ConfigError as err:  # a config class that validates itself (RDTConfig): every problem, with its path
        problems += [f"{where}.{p}" if where else p for p in err.problems]
        return cls()


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: Path, problems: list[str]) -> dict:
    """Parse a YAML mapping (with `load_yaml`); problems are collected, never raised mid-way."""
    try:
        data = load_yaml(path)
    except ConfigError as e:
        problems += e.problems
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return {}
    return data


def parse_overrides(pairs: list[str], problems: list[str]) -> dict:
    """`a.b=v` strings into a nested dict; values are parsed as YAML scalars (so 3, 0.1, true, [1,2])."""
    out: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            problems.append(f"--set {pair!r}: expected key=value")
            continue
        try:
            value = parse_yaml(raw)
        except yaml.YAMLError:
            value = raw
        node = out
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                problems.append(f"--set {pair!r}: {part} is already set to a value")
                break
        else:
            node[leaf] = value
    return out


def eval_difficulties(train: list[int], test: list[int], train_points: int) -> list[int]:
    """Every test difficulty plus `train_points` evenly spaced training ones (the largest always among them)."""
    ordered = sorted(set(train))
    if 0 < train_points < len(ordered):
        step = (len(ordered) - 1) / (train_points - 1) if train_points > 1 else 0
        ordered = sorted({ordered[len(ordered) - 1 - round(i * step)] for i in range(train_points)})
    return sorted(set(ordered) | set(test))


def non_budget_keys(name: str, layer: dict, per_task: dict) -> list[str]:
    """Keys of a preset (and of its per-task sections) that are not budgets."""
    out = []
    sections = [("", layer)] + [(f"tasks.{t}.", v) for t, v in per_task.items() if isinstance(v, dict)]
    for prefix, section in sections:
        for key, value in section.items():
            allowed = BUDGET_KEYS.get(key, set())
            if key not in BUDGET_KEYS or (prefix and key in ("seeds", "device", "scale")):
                out.append(f"{name}: {prefix}{key} is not a budget; models and recipes live in {RECIPES_FILE.name}")
            elif allowed is not None and isinstance(value, dict):
                out += [f"{name}: {prefix}{key}.{k} is not a budget; models and recipes live in "
                        f"{RECIPES_FILE.name}" for k in value if k not in allowed]
    return out


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def resolve_run_config(task: str, preset: str = "quick", config_file: Path | None = None,
                       overrides: list[str] | None = None, **cli: Any) -> RunConfig:
    """Layer preset, per-task preset section, config file, CLI flags and --set into one validated config."""
    from mythbench.tasks import get_task  # a task's name is checked here; the task suite loads only then

    problems: list[str] = []
    try:
        get_task(task)
    except ConfigError as err:
        problems += err.problems
    layers = [(RECIPES_FILE, False)]
    if preset in list_presets():
        layers.append((PRESET_DIR / f"{preset}.yaml", True))
    else:
        problems.append(f"unknown preset {preset!r}{known_hint(preset, list_presets())}")
    data: dict = {}
    for path, budgets_only in layers:
        layer = read_yaml(path, problems)
        per_task = layer.pop("tasks", {}) or {}
        if not isinstance(per_task, dict):
            problems.append(f"{path.name}: tasks: expected a mapping of task name to settings")
            per_task = {}
        if budgets_only:
            problems += non_budget_keys(path.name, layer, per_task)
        data = _deep_merge(_deep_merge(data, layer), per_task.get(task) or {})
    if config_file is not None:
        data = _deep_merge(data, read_yaml(config_file, problems))
    data = _deep_merge(data, {k: v for k, v in cli.items() if v is not None})
    data = _deep_merge(data, parse_overrides(overrides or [], problems))
    data.update(task=task, preset=preset)
    _legacy_baselines(data, problems)
    config = _build(RunConfig, data, "", problems)
    problems += config.problems()  # fields that failed above kept their defaults: nothing is reported twice
    if problems:
        raise ConfigError(problems)
    return config


def run_config_from_dict(data: Any) -> RunConfig:
    """A stored config (a run's or a ladder's `config`) rebuilt and validated; ConfigError names every problem.
    A config stored before `models:` existed has its `baselines:` read as the models and twins it trained."""
    problems: list[str] = []
    if isinstance(data, dict) and isinstance(data.get("baselines"), list) and "models" not in data:
        models, twins = _migrated(data["baselines"])
        data = {k: v for k, v in data.items() if k != "baselines"} | {"models": models, "twins": twins}
    config = _build(RunConfig, data, "", problems)
    problems += config.problems()
    if problems:
        raise ConfigError(problems)
    return config


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def _keys(config: Any, prefix: str = "") -> Iterator[tuple[str, Any, type]]:
    """(dotted key, value, the dataclass declaring it) for every key of a config, section by section."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            yield from _keys(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value, type(config)


def _key_paths(config: Any, sections: bool) -> list[str]:
    """The dotted keys of `config`, or its sections if it has any: what a mistyped key (or section, when its
    value is a mapping) is compared with."""
    keys = [key for key, _, _ in _keys(config)]
    groups = sorted({key.rpartition(".")[0] for key in keys if "." in key})
    return groups if sections and groups else keys


def describe_config(config: RunConfig) -> list[dict[str, Any]]:
    """Every key of a resolved config with its value, its built-in default and its help (the comment it is
    declared with): `mythbench config show`."""
    defaults = {key: value for key, value, _ in _keys(RunConfig())}
    return [{"key": key, "value": value, "default": defaults[key], "help": field_docs(owner)[key.rpartition(".")[2]]}
            for key, value, owner in _keys(config)]


def format_config(rows: list[dict[str, Any]]) -> str:
    """`describe_config`'s rows as aligned columns; values are spelled as `--set` takes them."""

    def spell(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    table = [("key", "value", "default", "help")]
    table += [(r["key"], spell(r["value"]), spell(r["default"]), r["help"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, [*widths, 0], strict=True)).rstrip()
                     for row in table)
