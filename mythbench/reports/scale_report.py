"""scale.md and the plots of a `mythbench scale` run, built from its results dict alone.

The headline says which comparison a number belongs to (matched tokens or matched training FLOPs), and the
projection to Parcae's sizes is headed as an extrapolation from small CPU models, never as a finding. Tables
are DataFrames written as Markdown (mythbench/tables.py); plots draw the fits, bootstrap bands and replicates
stored in the results (mythbench/fits.py's `to_dict`), so a report never refits (files written before the
bands were stored are drawn without them: `mythbench fit` recomputes them).
"""

from __future__ import annotations

import itertools
from io import BytesIO
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mythbench.analysis import fits
from mythbench.analysis.tables import interval, markdown, num
from mythbench.core.fileio import atomic_write_bytes

PARCAE_RATIO = 1.69  # Parcae: a 1.3B standard transformer matches its 770M RDT (1.3B / 770M)
SCHWETHELM_PHI = 0.46


def _verdict(row: dict) -> str:
    iv = row["ratio_interval"]
    if row["ratio"] is None:
        return "unbounded: below the standard law's floor"
    if iv.get("low") is not None and iv["low"] > 1:
        return "more than it has"
    if iv.get("high") is not None and iv["high"] < 1:
        return "fewer than it has"
    return "undecided (interval spans 1 or is unavailable)"


def points_frame(results: dict, family: str | None = None, loops: Any = "any") -> pd.DataFrame:
    """The complete points with a loss as a DataFrame (one row per point and seed), optionally of one family
    and training loop count."""
    rows = [{"name": p["name"], "family": p["family"], "width": p["width"], "loops": p["loops"], "seed": p["seed"],
             "n_unique": p["params"]["unique"], "train_flops": p["train_flops"], "loss": p["loss"],
             "loss_by_loops": p.get("loss_by_loops")}
            for p in results["points"] if p["status"] == "complete" and p["loss"] is not None
            and (family is None or p["family"] == family) and (loops == "any" or p["loops"] == loops)]
    return pd.DataFrame(rows, columns=["name", "family", "width", "loops", "seed", "n_unique", "train_flops", "loss",
                                       "loss_by_loops"])


def width_trend(points: list[dict]) -> pd.DataFrame:
    """Loss over seeds (mean, min, max) per family, training loop count and width: the ladder the fits read."""
    frame = points_frame({"points": points})
    frame["model"] = [f"rdt r={int(r)}" if f == "rdt" else f for f, r in zip(frame.family, frame.loops, strict=True)]
    frame["order"] = [-1 if f == "standard" else int(r) for f, r in zip(frame.family, frame.loops, strict=True)]
    return (frame.groupby(["order", "model", "width"], sort=True).loss.agg(["mean", "min", "max"]).reset_index()
            .drop(columns="order"))


def standard_monotone(points: list[dict]) -> tuple[bool | None, str]:
    """Whether the standard transformers' seed-mean losses fall at every step up in width, and a sentence
    saying so. A standard law fitted to a ladder that does not fall with width (seed noise, too short a
    training run, one learning rate for every width, or a loss set by rare instances) reads that as N_eq/N,
    so the report puts this check first. None: under two widths."""
    std = width_trend(points).query("model == 'standard'")
    if len(std) < 2:
        return None, "fewer than two standard widths: no trend to check"
    means = [(int(w), float(m)) for w, m in zip(std.width, std["mean"], strict=True)]
    rises = [f"w{w1} {m1:.4g} >= w{w0} {m0:.4g}" for (w0, m0), (w1, m1) in itertools.pairwise(means) if m1 >= m0]
    listed = ", ".join(f"w{w} {m:.4g}" for w, m in means)
    if not rises:
        return True, f"the standard transformers' seed-mean losses fall monotonically with width ({listed})"
    return False, (f"the standard transformers' seed-mean losses do NOT fall monotonically with width "
                   f"({listed}; rises: {'; '.join(rises)}); the standard law is fitted to points that do not fall with "
                   "width, so N_eq/N and φ do not answer the question (causes to rule out: seed noise, too short "
                   "a training run, a learning rate wrong for some widths, a held-out loss set by states the training "
                   "distribution makes rare or never shows)")


def _ladder_section(results: dict) -> list[str]:
    trend = width_trend(results["points"])
    table = trend.assign(loss=[f"{m:.4g} [{lo:.4g}, {hi:.4g}]" for m, lo, hi in
                               zip(trend["mean"], trend["min"], trend["max"], strict=True)])
    table = (table.pivot(index="width", columns="model", values="loss")
             .reindex(columns=list(dict.fromkeys(trend.model))).fillna("—").reset_index())
    _, sentence = standard_monotone(results["points"])
    return ["## Ladder check: held-out loss by width (mean over seeds [min, max])", "",
            f"**{sentence[0].upper()}{sentence[1:]}.**", "", markdown(table, escape=False)]


def headline_table(results: dict) -> list[str]:
    """The matched-token N_eq/N and the matched-FLOPs C_eq/C per RDT width, with the verdict."""
    h = results["scale"]["headline_loops"]
    tok, flo = results["fits"]["matched_tokens"], results["fits"]["matched_flops"]
    lines = [f"## Headline: standard parameters one RDT is worth (RDT trained at r = {h} loops)", ""]
    for f in (tok, flo):
        if "error" in f:
            lines += [f"**No {f['comparison']} fit:**", *(f"- {p}" for p in f["error"]), ""]
    by_n = {r["n_rdt"]: r for r in tok.get("equivalence", [])}
    by_c = {r["n_rdt"]: r for r in flo.get("equivalence", [])}
    pct = f"{results['scale']['level']:.0%}"
    rdt = points_frame(results, "rdt", h)
    rows = []
    for w, pts in rdt.groupby("width", sort=True):
        n, c = float(pts.n_unique.iloc[0]), float(pts.train_flops.iloc[0])
        t, f = by_n.get(n), by_c.get(c)
        rows.append([w, f"{n:.4g}", f"{pts.loss.mean():.4g}", num(t and t["n_eq"]),
                     f"{num(t and t['ratio'])} {interval(t['ratio_interval']) if t else ''}", _verdict(t) if t else "—",
                     f"{c:.3g}", f"{num(f and f['ratio'])} {interval(f['ratio_interval']) if f else ''}"])
    lines.append(markdown(pd.DataFrame(rows, columns=["width", "N rdt", "loss rdt (mean)", "N_eq standard",
                                                      f"N_eq/N [{pct}]", "worth", "C rdt (train FLOPs)",
                                                      f"C_eq/C [{pct}]"]), escape=False))
    steps, batch = results["scale"]["train"]["steps"], results["scale"]["train"]["batch_size"]
    lines += ["", f"- **Matched tokens**: both families trained on the same {steps} steps × {batch} sequences "
              "(identical batches). N = unique non-embedding parameters; N_eq is the standard size whose fitted "
              "L(N) = E + A·N^-α equals the RDT law's loss at N. N_eq/N > 1: one RDT parameter is worth more "
              "than one standard parameter.",
              "- **Matched training FLOPs**: per family, L fitted against training compute C = training FLOPs "
              "per token (Parcae accounting: 6·N_once + 2·N_rec·r + 4·N_rec·r_bwd, plus attention) × training "
              "tokens. C_eq/C = the training compute the fitted standard law needs to reach the RDT's fitted "
              "loss, divided by the RDT's own training compute; > 1: the RDT gets there with less compute.",
              "- An N_eq outside the standard ladder's range is an extrapolation of the standard law "
              "(the fit tables' notes say so)."]
    lw = tok.get("loop_worth")
    if lw:
        phi = f"{lw['params']['phi']:.3g} {interval(lw['intervals']['phi'])}"
        lines += ["", f"**Loop worth** φ = {phi}: r loops of the recurrent block count as r^φ copies of its "
                  "parameters, L = E + A·(N_once + r^φ·N_rec)^-α "
                  f"(Schwethelm et al. 2026 report φ ≈ {SCHWETHELM_PHI})."]
    proj = tok.get("projections", [])
    if proj:
        top = max(p["params"]["unique"] for p in results["points"])
        lines += ["", "### EXTRAPOLATION to Parcae's sizes (not a measurement)", "",
                  f"From models of at most {top:,} unique parameters trained on CPU for {steps} steps on the "
                  f"synthetic task {results['task']['name']!r}, the fitted laws imply the ratios below at sizes "
                  f"thousands of times larger. Parcae reports 1.3B/770M ≈ {PARCAE_RATIO} for language modelling. "
                  "Nothing here tests whether the laws hold that far out.", ""]
        table = pd.DataFrame({"N rdt": [f"{r['n_rdt']:.3g}" for r in proj], "N_eq standard": [num(r["n_eq"])
                              for r in proj], f"N_eq/N [{pct}]": [f"{num(r['ratio'])} {interval(r['ratio_interval'])}"
                                                                 for r in proj]})
        lines.append(markdown(table, escape=False))
    return lines


def _points_table(results: dict) -> list[str]:
    diffs = sorted({a["difficulty"] for p in results["points"] for a in p["accuracy"]
                    if a["split"] == "test" or a["difficulty"] == max(results["task"]["train_difficulties"])})
    rows = []
    for name in dict.fromkeys(p["name"] for p in results["points"]):
        pts = [p for p in results["points"] if p["name"] == name]
        done = [p for p in pts if p["loss"] is not None]
        acc = {d: [a["accuracy"] for p in done for a in p["accuracy"] if a["difficulty"] == d] for d in diffs}
        par = pts[0]["params"]
        rows.append([name, len(pts), f"{par['unique']:,}", f"{par['once']:,}", f"{par['recurrent']:,}",
                     f"{pts[0]['train_flops']:.3g}", num(np.mean([p["loss"] for p in done]) if done else None),
                     *(num(np.mean(acc[d]) if acc[d] else None) for d in diffs),
                     ", ".join(sorted({p["status"] for p in pts}))])
    columns = ["point", "seeds", "N unique", "N once", "N rec", "train FLOPs", "loss", *(f"acc@{d}" for d in diffs),
               "status"]
    return ["## Points (accuracy: exact match at the training loop count; mean over seeds)", "",
            markdown(pd.DataFrame(rows, columns=columns), escape=False)]


def _test_time_frame(results: dict) -> pd.DataFrame:
    rows = []
    for t in results["fits"]["test_time"]:
        f = t.get("fit")
        cols = [f"{f['params'][k]:.4g} {interval(f['intervals'][k])}" for k in ("L_inf", "L_0", "tau")] if f else [
            f"no fit: {'; '.join(t['error'])}", "", ""]
        rows.append([t["width"], f"{t['params']:,}", f"{t['fit_loops'][0]}–{t['fit_loops'][1]}", *cols,
                     f"{f['rmse_log']:.3g}" if f else "", f"{t['loss_best']:.4g} (T={t['best_loops']})",
                     f"{t['loss_max_loops']:.4g} (T={t['max_loops']})"])
    return pd.DataFrame(rows, columns=["width", "N", "fitted T", "L_inf", "L_0", "τ", "RMSE log L",
                                       "lowest loss (at T)", "loss at T max"])


def _lr_selection_table(results: dict) -> list[str]:
    """Every candidate learning rate of `scale.lr_grid` and its validation loss; empty without a grid."""
    rows = results.get("lr_selection")
    if not rows:
        return []
    frame = pd.DataFrame([{"model": "standard" if r["family"] == "standard" else f"rdt r={r['loops']}",
                           "width": r["width"], "lr": f"{r['lr']:.3g}", "seeds": len(r["seeds"]),
                           "validation loss": "diverged" if r["validation_loss"] is None
                           else f"{r['validation_loss']:.4g}", "chosen": "yes" if r["chosen"] else ""}
                          for r in rows])
    return ["## Learning rate chosen on the validation split", "",
            "Every point trained at each candidate; the candidate of lowest seed-mean loss on the task's "
            "validation split (training difficulties, instances apart from the test ones) is the one reported.",
            "", markdown(frame, escape=False), ""]


def render_markdown(results: dict) -> str:
    """scale.md: provenance, headline, test-time curve, points, fit details and notes."""
    git = results.get("git") or {}
    trained = sum((p.get("train") or {}).get("wall_time_s") or 0.0 for p in results["points"])
    lines = [f"# Scaling: {results['task']['name']} ({results.get('preset')} preset)", "",
             f"`{results.get('command')}` — {results.get('created_at')}, commit {git.get('commit')} "
             f"(dirty: {git.get('dirty')}), wall time of this command {results.get('wall_time_s')} s (training "
             f"of the points, summed over them, wherever and whenever they ran: {trained:.0f} s), "
             f"seeds {results.get('seeds')}",
             "", *_ladder_section(results), "", *headline_table(results), "",
             f"## Test-time curve: loss against inference loops (RDT at r = {results['scale']['headline_loops']})",
             "", "L(T) = L_inf + (L_0 − L_inf)·exp(−T/τ), fitted over the falling part of the curve (T up to the "
             "loop count of lowest loss, at least 3 points); past it the loss may rise again (overthinking), "
             "which the law does not describe: the last columns show it.", "",
             markdown(_test_time_frame(results), escape=False)]
    lines += ["", *_lr_selection_table(results), *_points_table(results), "", "## Fit details", ""]
    for key in ("matched_tokens", "matched_flops"):
        f = results["fits"][key]
        if key == "matched_flops":
            lines += ["In the matched-FLOPs tables, N is training compute C in FLOPs and N_eq/N is C_eq/C.", ""]
        lines.append(fits.format_fit_table(f) if "error" not in f else f"No {key} fit: {'; '.join(f['error'])}\n")
    lines += ["## Notes", "", *(f"- {n}" for n in results.get("notes", []))]
    return "\n".join(lines) + "\n"


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())
    return path


def _law_curve(ax: Any, fit: dict, x: np.ndarray, color: Any, label: str) -> None:
    """A stored power-law fit and its stored pointwise bootstrap band (no refit: both are in the results)."""
    band = fit.get("band")
    grid = np.asarray(band["x"]) if band else np.geomspace(x.min() / 1.5, x.max() * 1.5, 100)
    p = fit["params"]
    ax.plot(grid, p["E"] + p["A"] * grid ** -p["alpha"], color=color, label=label)
    if band:
        ax.fill_between(grid, band["low"], band["high"], color=color, alpha=0.2)


def _replicates(fit: dict | None, name: str) -> np.ndarray | None:
    values = ((fit or {}).get("replicates") or {}).get(name)
    return np.asarray(values) if values else None


def write_plots(results: dict, run_dir: Path) -> list[Path]:
    """scaling.png (loss vs N and vs C), test_time.png, exponents.png (bootstrap distributions), all drawn
    from the fits stored in `results`."""
    h, level = results["scale"]["headline_loops"], results["scale"]["level"]
    colors = {"rdt": "tab:blue", "standard": "tab:orange"}
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    alphas: dict[str, np.ndarray] = {}
    panels = (("N", "matched_tokens", "unique non-embedding parameters N"),
              ("C", "matched_flops", "training compute C (FLOPs)"))
    for ax, (axis, key, xlabel) in zip(fig.subplots(1, 2), panels, strict=True):
        families = results["fits"][key].get("families") or {}
        for fam in ("standard", "rdt"):
            pts = points_frame(results, fam, h if fam == "rdt" else None)
            if fam == "rdt" and axis == "N":
                other = points_frame(results, "rdt").query("loops != @h")
                ax.scatter(other.n_unique, other.loss, s=10, color=colors[fam], alpha=0.3, label="rdt, other r")
            x = (pts.n_unique if axis == "N" else pts.train_flops).to_numpy(float)
            label = f"rdt r={h}" if fam == "rdt" else fam
            ax.scatter(x, pts.loss.to_numpy(float), color=colors[fam], s=22, label=label)
            fit = families.get(fam)
            if fit is None or not len(x):
                continue
            _law_curve(ax, fit, x, colors[fam], f"fit α={fit['params']['alpha']:.2f}")
            if axis == "N" and _replicates(fit, "alpha") is not None:
                alphas[fam] = _replicates(fit, "alpha")
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="validation loss (train difficulties)",
               title=f"matched {'tokens' if axis == 'N' else 'training FLOPs'} ({level:.0%} bootstrap band)")
        ax.legend(fontsize=7)
    paths = [_save(fig, run_dir / "scaling.png")]

    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    fitted = {t["width"]: t.get("fit") for t in results["fits"]["test_time"]}
    fitted_range = {t["width"]: t["fit_loops"] for t in results["fits"]["test_time"]}
    rdt = points_frame(results, "rdt", h)
    widths = sorted(set(rdt.width))
    for i, w in enumerate(widths):
        span = fitted_range.get(w, (0, 0))
        color = matplotlib.colormaps["viridis"](i / max(1, len(widths) - 1))
        curves = list(rdt[rdt.width == w].loss_by_loops)
        t = np.array([c[0] for c in curves[0]], float)
        ax.plot(t, np.mean([[c[1] for c in cur] for cur in curves], axis=0), "o", ms=3, color=color,
                label=f"width {w}")
        if fitted.get(w):
            p, tf = fitted[w]["params"], t[(t >= span[0]) & (t <= span[1])]
            ax.plot(tf, p["L_inf"] + (p["L_0"] - p["L_inf"]) * np.exp(-tf / p["tau"]), "-", color=color)
    ax.axvline(h, ls=":", color="grey", label=f"training loops r={h}")
    ax.set(yscale="log", xlabel="inference loops T", ylabel="loss (train difficulties)",
           title="RDT test-time curve (markers: measured; lines: fit over the falling part)")
    ax.legend(fontsize=7)
    paths.append(_save(fig, run_dir / "test_time.png"))

    phi = _replicates(results["fits"]["matched_tokens"].get("loop_worth"), "phi")
    if phi is not None:
        alphas["φ (loop worth)"] = phi
    fig = Figure(figsize=(4 * max(1, len(alphas)), 3.6), layout="constrained")
    for ax, (name, reps) in zip(np.atleast_1d(fig.subplots(1, max(1, len(alphas)))), alphas.items(),
                                strict=False):
        ax.hist(reps, bins=30, color="tab:gray")
        ax.set(xlabel=name if "φ" in name else f"α ({name})", ylabel="bootstrap replicates",
               title=f"{len(reps)} bootstrap fits")
    paths.append(_save(fig, run_dir / "exponents.png"))
    return paths
