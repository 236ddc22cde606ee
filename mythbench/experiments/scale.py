"""`mythbench scale`: a width ladder of looped models at several training loop counts r, the gate, the scaling
fits of the excess loss and the parameter-matched comparison (how many reference parameters one looped
parameter is worth).

Two ladders (`scale.ladder`): "dense", a dense looped transformer whose r = 1 point is the reference (the
standard comparison with the same unique layers), and "rdt", the RDT under test beside the standard
transformer of its distinct layers. Every point (model, width, training loops, seed) is one
`harness.train_and_evaluate` call stored under `RUN_DIR/models/<point>/seed<k>/`, so a killed ladder resumes
where it stopped (`ladder_order` says in which order). With several multipliers in scale.lr_grid, every
point trains at each and the one of lowest validation loss is reported (`select_lr`), or, with
scale.pilot_steps, a short pilot of each width's reference model chooses one multiplier per width
(`pilot_choice`). All points train on the same batches (same TrainConfig and seeds). The loss of a point is
the token cross-entropy on held-out test instances at the evaluated training difficulties (an RDT at its
training loop count), averaged over them; `loss_floor` is the task's exact floor over the same difficulties.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Hashable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import mythbench
from mythbench.analysis.ladder import LEVEL, compute_fits, ladder_notes
from mythbench.analysis.stats import cell_rates
from mythbench.config import RunConfig, to_dict
from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_json, atomic_write_text
from mythbench.models import baseline_registry
from mythbench.models.accounting import count_config
from mythbench.reports.scale_report import render_markdown, write_plots
from mythbench.results.scale_model import SCALE_SCHEMA_VERSION
from mythbench.results.schema import check_schema
from mythbench.tasks import get_task
from mythbench.training import harness
from mythbench.training.plan import ModelPlan, task_model_config
from mythbench.training.runlock import holds_run_dir

log = logging.getLogger("mythbench")
# the dense ladder's model: the RDT's prelude / recurrent block / coda and LTI injection with MHA and SwiGLU
# everywhere, and nothing whose size depends on r (no depth-wise LoRA, no router loop table)
DENSE = {"attention": "mha", "ffn": "dense", "injection": "lti", "lora_rank": 0, "act": False}
Point = tuple[ModelPlan, int, "int | None", float]  # plan, width, training loops (None: standard), lr multiplier


def width_config(base: Any, width: int, head_dim: int, loops: int, table_loops: int) -> Any:
    """The base RDT config at `width` and `loops`: n_heads = width // head_dim; FFN, expert and latent widths
    scale with width (FFN widths kept even and >= 2), so every ladder point has the same shape. Per-loop
    tables (LoRA adapters, router loop rows) have `table_loops` rows at every r (the ladder's largest r), so
    a point's unique parameters do not grow with r; a point trained at r < table_loops leaves the later rows
    at their initial values."""
    f = width / base.d_model
    even = lambda x: max(2, 2 * round(x * f / 2))  # noqa: E731
    n_heads = max(1, width // head_dim)
    kv_heads = max(1, round(base.n_kv_heads * n_heads / base.n_heads))
    while n_heads % kv_heads:
        kv_heads -= 1
    return dataclasses.replace(
        base, d_model=width, n_heads=n_heads, n_kv_heads=kv_heads if base.attention == "gqa" else base.n_kv_heads,
        ffn_hidden=even(base.ffn_hidden), expert_hidden=even(base.expert_hidden),
        kv_latent_dim=max(1, round(base.kv_latent_dim * f)),
        q_latent_dim=max(1, round(base.q_latent_dim * f)) if base.q_latent_dim else 0, train_loops=loops,
        lora_max_loops=table_loops, router_max_loops=table_loops)


def reference_loops(cfg: RunConfig) -> int | None:
    """The training loop count of the model N_eq is counted in: 1 on the dense ladder; None (the standard
    transformer) on the rdt ladder."""
    return 1 if cfg.scale.ladder == "dense" else None


def plan_ladder(cfg: RunConfig, task: Any) -> list[tuple[ModelPlan, int, int | None]]:
    """(plan, width, training loops) for every point: per width, on the rdt ladder the standard transformer
    with the RDT's distinct layers (Parcae pairing, P/R/C against P+R+C layers), then the looped model at each
    loop count."""
    base = task_model_config(cfg, task)
    if cfg.scale.ladder == "dense":
        base = dataclasses.replace(base, **DENSE)
    loop_counts = sorted(set(cfg.scale.loop_counts))
    out, problems = [], []
    for w in sorted(set(cfg.scale.widths)):
        try:
            rdts = [width_config(base, w, cfg.scale.head_dim, r, loop_counts[-1]) for r in loop_counts]
        except ConfigError as e:
            problems += [f"scale.widths: width {w}: {p}" for p in e.problems]
            continue
        if reference_loops(cfg) is None:
            std_family, std = baseline_registry.matched_standard(rdts[0])
            out.append((ModelPlan(f"standard-w{w}", std_family, "scale", std), w, None))
        out += [(ModelPlan(f"rdt-w{w}-r{c.train_loops}", "rdt", "scale", c), w, c.train_loops) for c in rdts]
    if problems:
        raise ConfigError(problems)
    return out


def grid_ladder(cfg: RunConfig, task: Any, chosen: dict[int, float] | None = None) -> list[Point]:
    """Every point of `plan_ladder` with its learning-rate multiplier: at `chosen[width]` (a pilot's choice),
    or at every multiplier of scale.lr_grid; with more than one, the point's name says its multiplier
    (`standard-w32-lrx0.5`)."""
    if chosen is not None:
        return [(plan, w, r, chosen[w]) for plan, w, r in plan_ladder(cfg, task)]
    grid = cfg.scale.lr_grid
    return [(dataclasses.replace(plan, name=f"{plan.name}-lrx{m:g}") if len(grid) > 1 else plan, w, r, m)
            for plan, w, r in plan_ladder(cfg, task) for m in grid]


def ladder_order(cfg: RunConfig, task: Any, chosen: dict[int, float] | None = None) -> list[tuple[int, Point]]:
    """(seed, point) in training order: the reference models of every seed first, since the gate reads them
    before any fit, then the other looped points seed by seed, so an interrupted ladder holds whole seeds."""
    ladder = grid_ladder(cfg, task, chosen)
    first = [p for p in ladder if p[2] == reference_loops(cfg)]
    return ([(s, p) for s in cfg.seeds for p in first]
            + [(s, p) for s in cfg.seeds for p in ladder if p not in first])


def pilot_points(cfg: RunConfig, task: Any) -> list[tuple[int, Point]]:
    """(seed, point) of the learning-rate pilot: each width's reference model at every multiplier of
    scale.lr_grid, first seed only, named `pilot-<point>-lrx<m>`; none without scale.pilot_steps."""
    if not cfg.scale.pilot_steps:
        return []
    return [(cfg.seeds[0], (dataclasses.replace(plan, name=f"pilot-{plan.name}-lrx{m:g}"), w, r, m))
            for plan, w, r in plan_ladder(cfg, task) if r == reference_loops(cfg) for m in cfg.scale.lr_grid]


def pilot_config(cfg: RunConfig, width: int, lr_scale: float) -> RunConfig:
    """A pilot point's config: the ladder point's, trained scale.pilot_steps steps (warmup scaled alike)."""
    pcfg = point_run_config(cfg, width, lr_scale)[0]
    steps = cfg.scale.pilot_steps
    warmup = min(steps - 1, round(pcfg.train.warmup_steps * steps / pcfg.train.steps))
    return dataclasses.replace(pcfg, train=dataclasses.replace(pcfg.train, steps=steps, warmup_steps=warmup))


def pilot_choice(cfg: RunConfig, task: Any, run_dir: Path) -> tuple[dict[int, float] | None, list[dict]]:
    """The multiplier the pilot chose per width (lowest validation loss) and the table of every candidate;
    (None, []) while a pilot point is not trained yet (or without a pilot)."""
    pilots = pilot_points(cfg, task)
    paths = [run_dir / "models" / plan.name / f"seed{s}" / "result.json" for s, (plan, *_) in pilots]
    if not pilots or not all(path.exists() for path in paths):
        return None, []
    points = [_point(plan, w, r, s, harness.stored_result(path), pilot_config(cfg, w, m), task)
              for (s, (plan, w, r, m)), path in zip(pilots, paths, strict=True)]
    chosen, table = select_lr(points, cfg.scale.lr_grid)
    by_width = {p["width"]: p["lr"] for p in chosen}
    multipliers = {w: next(m for m in cfg.scale.lr_grid if point_run_config(cfg, w, m)[0].train.lr == lr)
                   for w, lr in by_width.items()}
    return multipliers, table


def planned_points(cfg: RunConfig, task: Any, run_dir: Path) -> list[tuple[int, ModelPlan, RunConfig]]:
    """(seed, plan, config) of what the ladder in `run_dir` can train now: the pilot's points while any is
    missing (the ladder's learning rates depend on them), then every ladder point (the sweep engine's cells)."""
    chosen = pilot_choice(cfg, task, run_dir)[0]
    if cfg.scale.pilot_steps and chosen is None:
        return [(s, plan, pilot_config(cfg, w, m)) for s, (plan, w, _, m) in pilot_points(cfg, task)]
    return [(s, plan, point_run_config(cfg, w, m)[0]) for s, (plan, w, _, m) in ladder_order(cfg, task, chosen)]


def point_run_config(cfg: RunConfig, width: int | None = None, lr_scale: float = 1.0) -> tuple[RunConfig, list[str]]:
    """The config a point of `width` trains with (None: the ladder's base, before the per-width learning
    rate): scale.steps (warmup scaled alike), lr scaled by (min width / width) ** scale.lr_width_exponent and
    by the point's multiplier of scale.lr_grid, a loop schedule that draws or ties loops replaced by `fixed`,
    since the loop-worth law's r must be the loop count every step of a model trained at, and the validation
    split scored."""
    train, notes = cfg.train, []
    if cfg.scale.steps:
        train = train.with_steps(cfg.scale.steps)
        notes.append(f"every point trains {cfg.scale.steps} steps (scale.steps; warmup {train.warmup_steps})")
    if train.recipe not in ("fixed", "progressive"):
        notes.append(f"the task's `{train.recipe}` recipe is replaced by `fixed` (r loops at every step), so that "
                     "r in the loop sweep is the number of loops each looped model trained with")
        train = dataclasses.replace(train, recipe="fixed")
    if cfg.scale.ladder == "dense":
        notes.append(f"dense ladder: the RDT's layers with {', '.join(f'{k}={v}' for k, v in DENSE.items())}; "
                     "its unique parameters are the same at every r, and r = 1 is the reference N_eq is counted in")
    if cfg.scale.lr_width_exponent:
        rates = ", ".join(f"w{w} {width_lr(cfg, w):.3g}" for w in sorted(set(cfg.scale.widths)))
        notes.append(f"learning rate per width, train.lr x (min width / width)^{cfg.scale.lr_width_exponent:g} "
                     f"(scale.lr_width_exponent), the same for every model: {rates}")
    if cfg.scale.pilot_steps:
        notes.append(f"learning-rate pilot: each width's reference model trained {cfg.scale.pilot_steps} steps "
                     f"(seed {cfg.seeds[0]}) at each multiplier of scale.lr_grid "
                     f"({', '.join(f'{m:g}' for m in cfg.scale.lr_grid)}); the one of lowest loss on the task's "
                     "validation split trains every point of that width (table `lr_selection`)")
    elif len(cfg.scale.lr_grid) > 1:
        notes.append("every point trains at each learning-rate multiplier of scale.lr_grid "
                     f"({', '.join(f'{m:g}' for m in cfg.scale.lr_grid)}); per family, width and loop count the "
                     "one of lowest seed-mean loss on the task's validation split is reported and fitted (table "
                     "`lr_selection`), so no choice reads the test instances a point's loss comes from")
    if width is not None:
        train = dataclasses.replace(train, lr=width_lr(cfg, width) * lr_scale)
    return dataclasses.replace(cfg, train=train, eval=dataclasses.replace(cfg.eval, validation=True)), notes


def width_lr(cfg: RunConfig, width: int) -> float:
    """The peak learning rate of the ladder's points at `width`."""
    return cfg.train.lr * (min(cfg.scale.widths) / width) ** cfg.scale.lr_width_exponent


def _point(plan: ModelPlan, width: int, loops: int | None, seed: int, result: dict, cfg: RunConfig,
           task: Any) -> dict:
    """One ladder point as stored in results.json: counts, compute, learning rate, loss and accuracies; `cfg`
    is the config the point trained with."""
    train_d = set(task.spec.train_difficulties)
    context = float(np.mean([task.seq_len(d) for d in train_d]))
    grad = cfg.train.bwd_loops if cfg.train.recipe in ("parcae", "huginn") else None
    acc = count_config(plan.family, plan.config, grad_loops=grad, context=round(context))
    tokens = int(result["train"]["tokens"])
    cells = result["cells"]
    at = lambda t: {c["difficulty"]: c for c in cells if c["loops"] == t}  # noqa: E731
    trained = at(loops)
    point = {"name": plan.name, "family": plan.family, "width": width, "loops": loops, "seed": seed,
             "status": result["status"], "n_heads": plan.config.n_heads,
             "params": {"unique": acc.params_unique, "once": acc.params_once, "recurrent": acc.params_recurrent},
             "flops_train_per_token": acc.flops_train, "tokens": tokens, "train_flops": acc.flops_train * tokens,
             "lr": cfg.train.lr, "train": result["train"], "loss": None, "loss_by_loops": None, "accuracy": []}
    if result["status"] != "complete" or not cells:
        return point
    if result.get("validation"):
        point["validation_loss"] = float(np.mean([c["loss"] for c in result["validation"]]))
    scored = [d for d in trained if d in train_d]
    point["loss"] = float(np.mean([trained[d]["loss"] for d in scored])) if scored else None
    point["loss_floor"] = float(np.mean([task.loss_floor(d) for d in scored])) if scored else 0.0
    last = at(max(c["loops"] for c in cells)) if loops is not None else {}
    if loops is not None and scored:
        point["loss_by_loops"] = [[t, float(np.mean([c["loss"] for d, c in at(t).items() if d in train_d]))]
                                  for t in sorted({c["loops"] for c in cells})]
    for d, c in sorted(trained.items()):
        entry = {"difficulty": d, "split": "train" if d in train_d else "test",
                 **{k: v for k, v in cell_rates(c).items() if k in ("accuracy", "ci_low", "ci_high")}}
        if d in last:
            entry["accuracy_max_loops"] = cell_rates(last[d])["accuracy"]
        point["accuracy"].append(entry)
    return point


def lowest_validation(points: list[dict], group: Callable[[dict], Hashable], candidate: Callable[[dict], Hashable],
                      n_candidates: int) -> dict[Hashable, tuple[Hashable | None, list[int], dict[Hashable, float]]]:
    """Per group of points, the candidate of lowest seed-mean `validation_loss`, the seeds compared and every
    candidate's score. Candidates are compared on the seeds all of them have trained (an interrupted search);
    a group missing a candidate, or with no seed in common, chooses None. A diverged point (no
    validation_loss) scores infinity, so a candidate that diverges is chosen only if every one does."""
    groups: dict[Hashable, dict[Hashable, list[dict]]] = {}
    for p in points:
        groups.setdefault(group(p), {}).setdefault(candidate(p), []).append(p)
    out = {}
    for key, by_candidate in groups.items():
        seeds = set.intersection(*({p["seed"] for p in pts} for pts in by_candidate.values()))
        score = {c: float(np.mean([p.get("validation_loss", np.inf) for p in pts if p["seed"] in seeds]))
                 if seeds else np.inf for c, pts in by_candidate.items()}
        best = min(score, key=score.__getitem__) if seeds and len(by_candidate) == n_candidates else None
        out[key] = best, sorted(seeds), score
    return out


def select_lr(points: list[dict], grid: list[float]) -> tuple[list[dict], list[dict]]:
    """The points at the learning rate of lowest seed-mean validation loss per (family, width, loops)
    (`lowest_validation`), and the table of every candidate."""
    if len(grid) < 2:
        return points, []
    key = lambda p: (p["family"], p["width"], p["loops"])  # noqa: E731
    chosen, table = [], []
    for (family, width, loops), (best, seeds, score) in lowest_validation(points, key, lambda p: p["lr"],
                                                                          len(grid)).items():
        chosen += [p for p in points if key(p) == (family, width, loops) and p["lr"] == best]
        table += [{"family": family, "width": width, "loops": loops, "lr": lr, "seeds": seeds,
                   "validation_loss": score[lr] if np.isfinite(score[lr]) else None, "chosen": lr == best}
                  for lr in sorted(score)]
    return chosen, sorted(table, key=lambda c: (c["family"] == "rdt", c["loops"] or 0, c["width"], c["lr"]))


def _check_ladder_dir(cfg: RunConfig, run_dir: Path) -> None:
    """Refuse to assemble a directory that holds no ladder, or one of another config."""
    problems = harness.run_dir_problems(run_dir, cfg, code=None)
    if not (run_dir / "config.yaml").exists():
        problems.append(f"{run_dir} holds no ladder (no config.yaml): nothing to assemble")
    if problems:
        raise ConfigError(problems)


def _stored_points(cfg: RunConfig, run_dir: Path, ladder: list, task: Any) -> tuple[list, list]:
    """The ladder's points already trained in `run_dir` (by whatever code prepared it; nothing is trained),
    and the names of those still missing."""
    points, missing = [], []
    for s, (plan, w, r, m) in ladder:
        path = run_dir / "models" / plan.name / f"seed{s}" / "result.json"
        if path.exists():
            points.append(_point(plan, w, r, s, harness.stored_result(path), point_run_config(cfg, w, m)[0], task))
        else:
            missing.append(f"{plan.name} seed {s}")
    return points, missing


def _train_points(cfg: RunConfig, run_dir: Path, task: Any) -> list[dict]:
    """Train (or reuse) the pilot, then every ladder point at the learning rates it chose."""
    for s, (plan, w, _, m) in pilot_points(cfg, task):
        harness.train_and_evaluate(plan, s, pilot_config(cfg, w, m), task, run_dir)
    points = []
    for s, (plan, w, r, m) in ladder_order(cfg, task, pilot_choice(cfg, task, run_dir)[0]):
        wcfg = point_run_config(cfg, w, m)[0]
        points.append(_point(plan, w, r, s, harness.train_and_evaluate(plan, s, wcfg, task, run_dir), wcfg, task))
    return points


def _partial_points(cfg: RunConfig, run_dir: Path, task: Any) -> tuple[list[dict], list[str]]:
    """The points stored so far and a note naming those missing; ConfigError when there is nothing to assemble."""
    chosen = pilot_choice(cfg, task, run_dir)[0]
    if cfg.scale.pilot_steps and chosen is None:
        raise ConfigError(f"{run_dir}: the learning-rate pilot is not finished, so no ladder point has its rate "
                          "yet; nothing to assemble")
    points, missing = _stored_points(cfg, run_dir, ladder_order(cfg, task, chosen), task)
    if not (points if chosen else select_lr(points, cfg.scale.lr_grid)[0]):
        raise ConfigError(f"{run_dir}: no ladder point is trained yet (with scale.lr_grid: at every candidate "
                          "rate of one family, width and loop count); nothing to assemble")
    if not missing:
        return points, []
    code_file = run_dir / "code.sha256"
    code = code_file.read_text().strip()[:12] + "…" if code_file.exists() else "unknown"
    return points, [f"incomplete: {len(points)} of {len(points) + len(missing)} points trained, computed by "
                    f"source sha256 {code}; not trained yet: {', '.join(missing)}; the same command without "
                    "--partial, from a checkout of that code, trains them"]


@holds_run_dir
def run_scale(cfg: RunConfig, run_dir: Path, command: str, started: float | None = None,
              train: bool = True) -> dict:
    """Train (or reuse) every ladder point at every seed, fit, write results.json, scale.md and plots. On the
    sweep engine (`--backend`) the points are trained as cells first; this then only reads them. With
    `train=False` (`--partial`) nothing is trained: the files cover the points stored so far (an interrupted
    ladder's report), with status `incomplete` and the missing points named in the notes."""
    started = time.perf_counter() if started is None else started
    harness.use_threads(cfg)
    task = get_task(cfg.task)
    pcfg, notes = point_run_config(cfg)
    missing: list[str] = []
    if train:
        harness.prepare_run_dir(run_dir, cfg)
    else:
        _check_ladder_dir(cfg, run_dir)
        points, missing = _partial_points(cfg, run_dir, task)
        notes += missing
    handler = logging.FileHandler(run_dir / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    try:
        log.info("command: %s", command)
        if train:
            points = _train_points(cfg, run_dir, task)
    finally:
        log.removeHandler(handler)
        handler.close()
    headline, reference = max(cfg.scale.loop_counts), reference_loops(cfg)
    if cfg.scale.pilot_steps:
        selection = pilot_choice(cfg, task, run_dir)[1]
    else:
        points, selection = select_lr(points, cfg.scale.lr_grid)
    results = {
        "schema_version": SCALE_SCHEMA_VERSION, "kind": "scale", "mythbench_version": mythbench.__version__,
        "git": harness.git_state(), "command": command,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "wall_time_s": None,
        "status": "incomplete" if missing else "complete", "preset": cfg.preset, "config": to_dict(cfg),
        "task": {"name": task.spec.name, "version": task.spec.version, "fingerprint": task.fingerprint(),
                 "train_difficulties": task.spec.train_difficulties,
                 "test_difficulties": task.spec.test_difficulties},
        "environment": harness.environment(cfg.device), "seeds": list(cfg.seeds),
        "scale": {"headline_loops": headline, "reference_loops": reference, "n_bootstrap": cfg.scale.n_bootstrap,
                  "level": LEVEL, "train": to_dict(pcfg.train), "eval": to_dict(pcfg.eval)},
        "points": points, "fits": compute_fits(points, cfg.scale.n_bootstrap, headline, reference),
        "notes": notes + ladder_notes(points, headline, reference),
        **({"lr_selection": selection} if selection else {}),
    }
    results["wall_time_s"] = round(time.perf_counter() - started, 3)
    problems = check_schema(results)  # the results model checks the writer too: nothing invalid is written
    if problems:
        raise ConfigError([f"{run_dir / 'results.json'} would not validate: {p}" for p in problems])
    atomic_write_json(run_dir / "results.json", results)
    atomic_write_text(run_dir / "scale.md", render_markdown(results))
    write_plots(results, run_dir)
    return results


__all__ = ["DENSE", "grid_ladder", "ladder_order", "lowest_validation", "pilot_choice", "pilot_points", "plan_ladder",
           "planned_points", "point_run_config", "reference_loops", "run_scale", "select_lr", "width_config",
           "width_lr"]
