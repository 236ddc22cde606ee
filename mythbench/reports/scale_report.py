"""scale.md and the plots of a `mythbench scale` run, built from its results dict alone.

The headline says which comparison a number belongs to (matched tokens or matched training FLOPs), and the
projection to Parcae's sizes is headed as an extrapolation from small CPU models, never as a finding. Tables
are DataFrames written as Markdown (mythbench/tables.py); plots draw the fits, bootstrap bands and replicates
stored in the results (mythbench/fits.py's `to_dict`), so a report never refits (files written before the
bands were stored are drawn without them: `mythbench fit` recomputes them).
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mythbench.analysis import fits
from mythbench.analysis.ladder import complete, excess, gate, reference_label
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
    and training loop count; `excess` is L − H (the loss above the task's floor)."""
    rows = [{"name": p["name"], "family": p["family"], "width": p["width"], "loops": p["loops"], "seed": p["seed"],
             "n_unique": p["params"]["unique"], "train_flops": p["train_flops"], "loss": p["loss"],
             "excess": excess(p), "loss_by_loops": p.get("loss_by_loops")}
            for p in complete(results["points"])
            if (family is None or p["family"] == family) and (loops == "any" or p["loops"] == loops)]
    return pd.DataFrame(rows, columns=["name", "family", "width", "loops", "seed", "n_unique", "train_flops", "loss",
                                       "excess", "loss_by_loops"])


def _model(family: str, loops: Any) -> str:
    return f"rdt r={int(loops)}" if family == "rdt" else family


def width_trend(points: list[dict]) -> pd.DataFrame:
    """Excess loss L − H over seeds (mean, standard error, seeds) and N per model (family and training loop
    count) and width: the ladder the fits read, the standard transformers first."""
    frame = points_frame({"points": points})
    frame["model"] = [_model(f, r) for f, r in zip(frame.family, frame.loops, strict=True)]
    frame["order"] = [-1 if f == "standard" else int(r) for f, r in zip(frame.family, frame.loops, strict=True)]
    return (frame.groupby(["order", "model", "width"], sort=True)
            .agg(mean=("excess", "mean"), se=("excess", "sem"), seeds=("excess", "size"), n=("n_unique", "first"))
            .reset_index().drop(columns="order"))


def _gate(results: dict) -> dict:
    """The stored gate, or for files written before it was stored, the gate recomputed from their points."""
    return results["fits"].get("gate") or gate(results["points"], results["scale"].get("reference_loops"))


def lead_table(results: dict) -> list[str]:
    """scale.md's first table: per width, N and the excess loss of every model (mean ± standard error over
    seeds), the gate's verdict on the step up to that width and N_eq/N at the headline loop count."""
    trend = width_trend(results["points"])
    if trend.empty:
        return ["No point has a loss yet.", ""]
    trend["cell"] = [f"{m:.4g} ± {se:.2g}" if n > 1 else f"{m:.4g} (1 seed)"
                     for m, se, n in zip(trend["mean"], trend["se"], trend["seeds"], strict=True)]
    table = (trend.pivot(index="width", columns="model", values="cell")
             .reindex(columns=list(dict.fromkeys(trend.model))).fillna("—"))
    n_by_width = trend.groupby("width").n.agg(lambda v: "/".join(f"{int(x):,}" for x in sorted(set(v))))
    table.insert(0, "N (non-embedding)", n_by_width)
    steps = {s["to"]: s for s in _gate(results)["steps"]}
    table["gate (step from the previous width)"] = [
        "—" if w not in steps else {True: "passed", False: "FAILED", None: "undecided"}[steps[w]["passed"]]
        for w in table.index]
    eq = {r["n_rdt"]: r for r in results["fits"]["matched_tokens"].get("equivalence", [])}
    h, pct = results["scale"]["headline_loops"], f"{results['scale']['level']:.0%}"
    headline_n = trend[trend.model == _model("rdt", h)].set_index("width").n
    table[f"N_eq/N at r={h} [{pct}]"] = [
        f"{num(eq[headline_n[w]]['ratio'])} {interval(eq[headline_n[w]]['ratio_interval'])}"
        if w in headline_n and headline_n[w] in eq else "—" for w in table.index]
    return [markdown(table.reset_index(), escape=False), ""]


def _gate_section(results: dict) -> list[str]:
    g = _gate(results)
    rows = pd.DataFrame([{"step": f"w{s['from']} → w{s['to']}", "drop in excess loss": f"{s['drop']:.4g}",
                          "2 SE": "—" if s["se"] is None else f"{2 * s['se']:.3g}",
                          "passed": {True: "yes", False: "NO", None: "undecided"}[s["passed"]]} for s in g["steps"]],
                        columns=["step", "drop in excess loss", "2 SE", "passed"])
    return [f"## Gate: does the {g['reference']} excess {g['loss']} loss fall with width?", "",
            f"**{g['summary'][0].upper()}{g['summary'][1:]}.**", "", markdown(rows, escape=False)]


def headline_table(results: dict) -> list[str]:
    """The matched-token N_eq/N and the matched-FLOPs C_eq/C per RDT width, with the verdict."""
    h = results["scale"]["headline_loops"]
    tok, flo = results["fits"]["matched_tokens"], results["fits"]["matched_flops"]
    reference = reference_label(results["scale"].get("reference_loops"))
    lines = [f"## Headline: {reference} parameters one RDT parameter is worth (RDT trained at r = {h} loops)", ""]
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
        rows.append([w, f"{n:.4g}", f"{pts.excess.mean():.4g}", num(t and t["n_eq"]),
                     f"{num(t and t['ratio'])} {interval(t['ratio_interval']) if t else ''}", _verdict(t) if t else "—",
                     f"{c:.3g}", f"{num(f and f['ratio'])} {interval(f['ratio_interval']) if f else ''}"])
    lines.append(markdown(pd.DataFrame(rows, columns=["width", "N rdt", "L − H rdt (mean)", f"N_eq {reference}",
                                                      f"N_eq/N [{pct}]", "worth", "C rdt (train FLOPs)",
                                                      f"C_eq/C [{pct}]"]), escape=False))
    steps, batch = results["scale"]["train"]["steps"], results["scale"]["train"]["batch_size"]
    lines += ["", f"- **Matched tokens**: every model trained on the same {steps} steps × {batch} sequences "
              "(identical batches). N = unique non-embedding parameters; L − H the loss above the task's exact "
              f"floor H; N_eq is the {reference} size whose fitted L − H = E + A·N^-α equals the RDT law's at N. "
              f"N_eq/N > 1: one RDT parameter is worth more than one {reference} parameter.",
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
        rows.append([t["train_loops"], t["width"], f"{t['params']:,}", f"{t['fit_loops'][0]}–{t['fit_loops'][1]}",
                     *cols,
                     f"{f['rmse_log']:.3g}" if f else "", f"{t['loss_best']:.4g} (T={t['best_loops']})",
                     f"{t['loss_max_loops']:.4g} (T={t['max_loops']})"])
    return pd.DataFrame(rows, columns=["r", "width", "N", "fitted T", "L_inf", "L_0", "τ", "RMSE log L",
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
    scale = (results.get("config") or {}).get("scale") or {}
    how = (f"A pilot trained each width's reference model {scale['pilot_steps']} steps at each candidate (first "
           "seed); the candidate of lowest loss on the task's validation split (training difficulties, instances "
           "apart from the test ones) trains every point of that width." if scale.get("pilot_steps") else
           "Every point trained at each candidate; the candidate of lowest seed-mean loss on the task's "
           "validation split (training difficulties, instances apart from the test ones) is the one reported.")
    return ["## Learning rate chosen on the validation split", "", how,
            "", markdown(frame, escape=False), ""]


def render_markdown(results: dict) -> str:
    """scale.md: provenance, then the one table and the one plot a reader needs (excess loss by width and
    model, the gate, N_eq/N), then the gate's steps, the headline, the test-time curves, the points, the fit
    details and the notes."""
    git = results.get("git") or {}
    trained = sum((p.get("train") or {}).get("wall_time_s") or 0.0 for p in results["points"])
    lines = [f"# Scaling: {results['task']['name']} ({results.get('preset')} preset)", "",
             f"`{results.get('command')}` — {results.get('created_at')}, commit {git.get('commit')} "
             f"(dirty: {git.get('dirty')}), wall time of this command {results.get('wall_time_s')} s (training "
             f"of the points, summed over them, wherever and whenever they ran: {trained:.0f} s), "
             f"seeds {results.get('seeds')}", "",
             "## Excess loss L − H by width (mean ± standard error over seeds)", "", *lead_table(results),
             "![excess loss against non-embedding parameters](scaling.png)", "", *_gate_section(results), "",
             *headline_table(results), "",
             "## Test-time curves: loss against inference loops, per training loop count r", "",
             "L(T) = L_inf + (L_0 − L_inf)·exp(−T/τ), fitted over the falling part of each curve (T up to the "
             "loop count of lowest loss, at least 3 points); past it the loss may rise again (overthinking), "
             "which the law does not describe: the last columns show it.", "",
             markdown(_test_time_frame(results), escape=False), "", "![test-time curves](test_time.png)"]
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


def _model_colors(results: dict) -> dict[str, Any]:
    """One colour per model: the standard transformer orange, the loop counts along viridis."""
    loops = sorted({p["loops"] for p in results["points"] if p["family"] == "rdt"})
    shade = matplotlib.colormaps["viridis"]
    colors = {_model("rdt", r): shade(i / max(1, len(loops) - 1)) for i, r in enumerate(loops)}
    return {"standard": "tab:orange", **colors}


def write_plots(results: dict, run_dir: Path) -> list[Path]:
    """scaling.png (excess loss against N and against training compute C, every model, the fitted laws),
    test_time.png (one panel per training loop count), exponents.png (bootstrap distributions), all drawn
    from the fits stored in `results`."""
    h, level = results["scale"]["headline_loops"], results["scale"]["level"]
    reference = reference_label(results["scale"].get("reference_loops"))
    colors = _model_colors(results)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    alphas: dict[str, np.ndarray] = {}
    panels = (("N", "matched_tokens", "unique non-embedding parameters N"),
              ("C", "matched_flops", "training compute C (FLOPs)"))
    for ax, (axis, key, xlabel) in zip(fig.subplots(1, 2), panels, strict=True):
        families = results["fits"][key].get("families") or {}
        frame = points_frame(results)
        for model in colors:
            pts = frame[[_model(f, r) == model for f, r in zip(frame.family, frame.loops, strict=True)]]
            if pts.empty or (axis == "C" and model not in (reference, _model("rdt", h))):
                continue
            x = (pts.n_unique if axis == "N" else pts.train_flops).to_numpy(float)
            ax.scatter(x, pts.excess.to_numpy(float), color=colors[model], s=18, label=model)
        for fam, model, label in (("standard", reference, f"fit {reference}"), ("rdt", _model("rdt", h), f"fit r={h}")):
            fit = families.get(fam)
            x = (frame.n_unique if axis == "N" else frame.train_flops).to_numpy(float)
            if fit is None or not len(x):
                continue
            _law_curve(ax, fit, x, colors[model], f"{label}, α={fit['params']['alpha']:.2f}")
            if axis == "N" and _replicates(fit, "alpha") is not None:
                alphas[label.removeprefix("fit ")] = _replicates(fit, "alpha")
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="excess loss L − H (train difficulties)",
               title=f"matched {'tokens' if axis == 'N' else 'training FLOPs'} ({level:.0%} bootstrap band)")
        ax.legend(fontsize=7)
    paths = [_save(fig, run_dir / "scaling.png")]

    curves = {(t["train_loops"], t["width"]): t for t in results["fits"]["test_time"]}
    rdt = points_frame(results, "rdt")
    loops, widths = sorted(set(rdt.loops.astype(int))), sorted(set(rdt.width))
    fig = Figure(figsize=(4 * max(1, len(loops)), 3.8), layout="constrained")
    for ax, r in zip(np.atleast_1d(fig.subplots(1, max(1, len(loops)), sharey=True)), loops, strict=False):
        for i, w in enumerate(widths):
            series = list(rdt[(rdt.width == w) & (rdt.loops == r)].loss_by_loops)
            if not series:
                continue
            color = matplotlib.colormaps["plasma"](i / max(1, len(widths) - 1))
            t = np.array([c[0] for c in series[0]], float)
            ax.plot(t, np.mean([[c[1] for c in cur] for cur in series], axis=0), "o", ms=3, color=color,
                    label=f"width {w}")
            fitted = curves.get((r, w), {})
            if fitted.get("fit"):
                p, lo, hi = fitted["fit"]["params"], *fitted["fit_loops"]
                tf = t[(t >= lo) & (t <= hi)]
                ax.plot(tf, p["L_inf"] + (p["L_0"] - p["L_inf"]) * np.exp(-tf / p["tau"]), "-", color=color)
        ax.axvline(r, ls=":", color="grey")
        ax.set(yscale="log", xlabel="inference loops T", title=f"trained at r = {r} (dotted)")
        ax.legend(fontsize=6)
    fig.supylabel("loss (train difficulties)")
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
