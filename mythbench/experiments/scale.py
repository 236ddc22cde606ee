"""`mythbench scale`: a width ladder of RDTs and their layer-matched standard transformers, scaling fits and
the parameter-matched comparison (how many standard parameters one RDT parameter is worth).

Every point (family, width, training loops, seed) is one `harness.train_and_evaluate` call stored under
`RUN_DIR/models/<point>/seed<k>/`, so a killed ladder resumes where it stopped (`ladder_order` says in
which order). With several multipliers in scale.lr_grid, every point trains at each and the one of lowest
validation loss is reported (`select_lr`). Both families train on the same batches (same TrainConfig and
seeds). The loss of a point is the token cross-entropy on held-out test instances at the evaluated training
difficulties (an RDT at its training loop count), averaged over them.
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
from mythbench.analysis import fits
from mythbench.config import RunConfig, to_dict
from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_json, atomic_write_text
from mythbench.models import baseline_registry
from mythbench.models.accounting import count_config
from mythbench.reports.scale_report import render_markdown, standard_monotone, write_plots
from mythbench.results.results_model import SCALE_SCHEMA_VERSION
from mythbench.results.scale_schema import check_scale_v1
from mythbench.tasks import get_task
from mythbench.training import harness
from mythbench.training.plan import ModelPlan, task_model_config
from mythbench.training.runlock import holds_run_dir

LEVEL, FIT_SEED = 0.95, 0
PROJECT_TO = (770e6, 1.3e9)  # Parcae's sizes: its 770M RDT matches a 1.3B standard transformer (ratio ~1.69)
log = logging.getLogger("mythbench")



def width_config(base: Any, width: int, head_dim: int, loops: int) -> Any:
    """The base RDT config at `width` and `loops`: n_heads = width // head_dim; FFN, expert and latent widths
    scale with width (FFN widths kept even and >= 2), so every ladder point has the same shape. Per-loop
    tables (LoRA adapters, router loop rows) get one row per training loop: N counts no parameter training
    never reaches, and inference past r reuses the last row."""
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
        lora_max_loops=loops, router_max_loops=loops)


def plan_ladder(cfg: RunConfig, task: Any) -> list[tuple[ModelPlan, int, int | None]]:
    """(plan, width, training loops) for every point: per width the standard transformer with the RDT's
    distinct layers (Parcae pairing, P/R/C against P+R+C layers), then the RDT at each loop count."""
    base = task_model_config(cfg, task)
    out, problems = [], []
    for w in sorted(set(cfg.scale.widths)):
        try:
            rdts = [width_config(base, w, cfg.scale.head_dim, r) for r in sorted(set(cfg.scale.loop_counts))]
        except ConfigError as e:
            problems += [f"scale.widths: width {w}: {p}" for p in e.problems]
            continue
        std_family, std = baseline_registry.matched_standard(rdts[0])
        out.append((ModelPlan(f"standard-w{w}", std_family, "scale", std), w, None))
        out += [(ModelPlan(f"rdt-w{w}-r{c.train_loops}", "rdt", "scale", c), w, c.train_loops) for c in rdts]
    if problems:
        raise ConfigError(problems)
    return out


def grid_ladder(cfg: RunConfig, task: Any) -> list[tuple[ModelPlan, int, int | None, float]]:
    """(plan, width, loops, lr multiplier) for every point of `plan_ladder` at every multiplier of
    scale.lr_grid; with more than one, the point's name says its multiplier (`standard-w32-lrx0.5`)."""
    grid = cfg.scale.lr_grid
    return [(dataclasses.replace(plan, name=f"{plan.name}-lrx{m:g}") if len(grid) > 1 else plan, w, r, m)
            for plan, w, r in plan_ladder(cfg, task) for m in grid]


def ladder_order(cfg: RunConfig, task: Any) -> list[tuple[int, tuple[ModelPlan, int, int | None, float]]]:
    """(seed, point) in training order: the standard transformers of every seed first, since the ladder check
    reads them before any fit, then the RDTs seed by seed, so an interrupted ladder holds whole seeds."""
    ladder = grid_ladder(cfg, task)
    return ([(s, p) for s in cfg.seeds for p in ladder if p[0].family != "rdt"]
            + [(s, p) for s in cfg.seeds for p in ladder if p[0].family == "rdt"])


def point_run_config(cfg: RunConfig, width: int | None = None, lr_scale: float = 1.0) -> tuple[RunConfig, list[str]]:
    """The config a point of `width` trains with (None: the ladder's base, before the per-width learning
    rate): scale.steps (warmup scaled alike), lr scaled by (min width / width) ** scale.lr_width_exponent and
    by the point's multiplier of scale.lr_grid, the `tied` recipe replaced by `fixed`, since the loop-worth
    law's r must be the loop count a model trained at, not the difficulty, and the validation split scored."""
    train, notes = cfg.train, []
    if cfg.scale.steps:
        train = train.with_steps(cfg.scale.steps)
        notes.append(f"every point trains {cfg.scale.steps} steps (scale.steps; warmup {train.warmup_steps})")
    if train.recipe == "tied":
        train = dataclasses.replace(train, recipe="fixed")
        notes.append("the task's `tied` recipe (loops = difficulty) is replaced by `fixed` (loops = r), so that "
                     "r in the loop sweep is the number of loops each RDT trained with")
    if cfg.scale.lr_width_exponent:
        rates = ", ".join(f"w{w} {width_lr(cfg, w):.3g}" for w in sorted(set(cfg.scale.widths)))
        notes.append(f"learning rate per width, train.lr x (min width / width)^{cfg.scale.lr_width_exponent:g} "
                     f"(scale.lr_width_exponent), the same for both families: {rates}")
    if len(cfg.scale.lr_grid) > 1:
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
    losses = [c["loss"] for d, c in trained.items() if d in train_d]
    point["loss"] = float(np.mean(losses)) if losses else None
    last = at(max(c["loops"] for c in cells)) if loops is not None else {}
    if loops is not None:
        point["loss_by_loops"] = [[t, float(np.mean([c["loss"] for d, c in at(t).items() if d in train_d]))]
                                  for t in sorted({c["loops"] for c in cells})]
    for d, c in sorted(trained.items()):
        entry = {"difficulty": d, "split": "train" if d in train_d else "test", "accuracy": c["accuracy"],
                 "ci_low": c["ci_low"], "ci_high": c["ci_high"]}
        if d in last:
            entry["accuracy_max_loops"] = last[d]["accuracy"]
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


def _fit_or_error(points: list[dict], **kw: Any) -> dict:
    try:
        return fits.fit_results(points, level=LEVEL, seed=FIT_SEED, **kw)
    except ConfigError as e:
        return {"comparison": kw["comparison"], "error": e.problems}


def _test_time(pts: list[dict], n_bootstrap: int) -> dict:
    """The saturating test-time law fitted over the falling part of the loss-vs-inference-loops curve (T up to
    the loop count of lowest mean loss, at least 3 points): past it the loss may rise again (overthinking),
    which the law cannot describe, so that rise is reported beside the fit instead of bending it."""
    loops = [t for t, _ in pts[0]["loss_by_loops"]]
    mean = np.mean([[v for _, v in p["loss_by_loops"]] for p in pts], axis=0)
    best = int(np.argmin(mean))
    t_fit = loops[min(max(best, 2), len(loops) - 1)]
    entry = {"width": pts[0]["width"], "params": pts[0]["params"]["unique"], "train_loops": pts[0]["loops"],
             "fit_loops": [loops[0], t_fit], "best_loops": loops[best], "loss_best": float(mean[best]),
             "max_loops": loops[-1], "loss_max_loops": float(mean[-1])}
    keep = [(t, v) for p in pts for t, v in p["loss_by_loops"] if t <= t_fit]
    try:
        entry["fit"] = fits.fit_test_time([t for t, _ in keep], [v for _, v in keep], n_bootstrap=n_bootstrap,
                                          level=LEVEL, seed=FIT_SEED).to_dict()
    except ConfigError as e:
        entry["error"] = e.problems
    return entry


def compute_fits(points: list[dict], n_bootstrap: int, headline: int) -> dict:
    """Both comparisons and the test-time curves from stored points alone (what `mythbench fit` reruns)."""
    ok = [p for p in points if p["status"] == "complete" and p["loss"] is not None]
    rdt = lambda p: p["family"] == "rdt"  # noqa: E731
    tokens = [{"family": p["family"], "params": p["params"]["unique"], "loops": p["loops"], "seed": p["seed"],
               "loss": p["loss"], **({"n_once": p["params"]["once"], "n_rec": p["params"]["recurrent"]}
                                     if rdt(p) else {})} for p in ok]
    flops = [{"family": p["family"], "params": p["train_flops"], "loops": p["loops"], "seed": p["seed"],
              "loss": p["loss"]} for p in ok if not rdt(p) or p["loops"] == headline]
    test_time = [_test_time([p for p in ok if rdt(p) and p["loops"] == headline and p["width"] == w], n_bootstrap)
                 for w in sorted({p["width"] for p in ok if rdt(p) and p["loops"] == headline})]
    return {"matched_tokens": _fit_or_error(tokens, n_bootstrap=n_bootstrap, comparison="matched-tokens",
                                            rdt_loops=headline, project_to=PROJECT_TO),
            "matched_flops": _fit_or_error(flops, n_bootstrap=n_bootstrap, comparison="matched-FLOPs",
                                           rdt_loops=headline, project_to=()),
            "test_time": test_time}


def ladder_notes(points: list[dict], headline: int) -> list[str]:
    bad = [f"{p['name']} seed {p['seed']}" for p in points if p["status"] != "complete" or p["loss"] is None]
    notes = [f"the RDT law and both comparisons use the RDT at r = {headline} training loops (the largest "
             "of scale.loop_counts); model.train_loops is replaced by each r of the loop sweep",
             "the 'L(T)' rows of the matched-token fits are loss against *training* loops at fixed N (points "
             "of the loop sweep); the test-time curve against *inference* loops is the separate table"]
    if bad:
        notes.append(f"diverged, recorded and excluded from every fit: {', '.join(bad)}")
    return [*notes, f"ladder check: {standard_monotone(points)[1]}"]


def _stored_points(cfg: RunConfig, run_dir: Path, ladder: list, task: Any) -> tuple[list, list]:
    """The ladder's points already trained in `run_dir` (by whatever code prepared it; nothing is trained),
    and the names of those still missing. Refuses a directory that holds no ladder or another config."""
    problems = harness.run_dir_problems(run_dir, cfg, code=None)
    if not (run_dir / "config.yaml").exists():
        problems.append(f"{run_dir} holds no ladder (no config.yaml): nothing to assemble")
    if problems:
        raise ConfigError(problems)
    points, missing = [], []
    for s, (plan, w, r, m) in ladder:
        path = run_dir / "models" / plan.name / f"seed{s}" / "result.json"
        if path.exists():
            points.append(_point(plan, w, r, s, harness.stored_result(path), point_run_config(cfg, w, m)[0], task))
        else:
            missing.append(f"{plan.name} seed {s}")
    return points, missing


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
    ladder = ladder_order(cfg, task)
    pcfg, notes = point_run_config(cfg)
    missing: list[str] = []
    if train:
        harness.prepare_run_dir(run_dir, cfg)
    else:
        points, missing = _stored_points(cfg, run_dir, ladder, task)
        if not select_lr(points, cfg.scale.lr_grid)[0]:
            raise ConfigError(f"{run_dir}: no ladder point is trained yet (with scale.lr_grid: at every candidate "
                              "rate of one family, width and loop count); nothing to assemble")
        if missing:
            code_file = run_dir / "code.sha256"
            code = code_file.read_text().strip()[:12] + "…" if code_file.exists() else "unknown"
            notes.append(f"incomplete: {len(points)} of {len(points) + len(missing)} points trained, computed by "
                         f"source sha256 {code}; not trained yet: {', '.join(missing)}; the same command "
                         "without --partial, from a checkout of that code, trains them")
    handler = logging.FileHandler(run_dir / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    try:
        log.info("command: %s", command)
        if train:
            points = []
            for s, (plan, w, r, m) in ladder:
                wcfg = point_run_config(cfg, w, m)[0]
                points.append(_point(plan, w, r, s, harness.train_and_evaluate(plan, s, wcfg, task, run_dir), wcfg,
                                     task))
    finally:
        log.removeHandler(handler)
        handler.close()
    headline = max(cfg.scale.loop_counts)
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
        "scale": {"headline_loops": headline, "n_bootstrap": cfg.scale.n_bootstrap, "level": LEVEL,
                  "train": to_dict(pcfg.train), "eval": to_dict(pcfg.eval)},
        "points": points, "fits": compute_fits(points, cfg.scale.n_bootstrap, headline),
        "notes": notes + ladder_notes(points, headline), **({"lr_selection": selection} if selection else {}),
    }
    results["wall_time_s"] = round(time.perf_counter() - started, 3)
    for problem in check_scale_v1(results):  # the results model checks the writer too
        log.warning("results.json does not validate: %s", problem)
    atomic_write_json(run_dir / "results.json", results)
    atomic_write_text(run_dir / "scale.md", render_markdown(results))
    write_plots(results, run_dir)
    return results


__all__ = ["compute_fits", "grid_ladder", "ladder_order", "lowest_validation", "plan_ladder",
           "run_scale", "select_lr", "width_config", "width_lr"]
