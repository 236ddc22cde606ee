"""scale.md and the plots of a `mythbench scale` run, built from its results dict alone.

The headline says which comparison a number belongs to (matched tokens or matched training FLOPs), and the
projection to Parcae's sizes is headed as an extrapolation from small CPU models, never as a finding.
"""

from __future__ import annotations

from collections import defaultdict
from io import BytesIO
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mythbench.analysis import fits
from mythbench.analysis.fits import _num
from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_bytes

PARCAE_RATIO = 1.69  # Parcae: a 1.3B standard transformer matches its 770M RDT (1.3B / 770M)
SCHWETHELM_PHI = 0.46


def _iv(iv: dict) -> str:
    text = f"[{_num(iv.get('low'))}, {_num(iv.get('high'))}]"
    return text + (f" ({iv['reason']})" if iv.get("reason") else "")


def _verdict(row: dict) -> str:
    iv = row["ratio_interval"]
    if row["ratio"] is None:
        return "unbounded: below the standard law's floor"
    if iv.get("low") is not None and iv["low"] > 1:
        return "more than it has"
    if iv.get("high") is not None and iv["high"] < 1:
        return "fewer than it has"
    return "undecided (interval spans 1 or is unavailable)"


def _ok(results: dict, family: str, loops: Any = "any") -> list[dict]:
    return [p for p in results["points"] if p["status"] == "complete" and p["loss"] is not None
            and p["family"] == family and (loops == "any" or p["loops"] == loops)]


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
    lines += [f"| width | N rdt | loss rdt (mean) | N_eq standard | N_eq/N [{pct}] | worth | C rdt (train FLOPs) "
              f"| C_eq/C [{pct}] |", "|---" * 8 + "|"]
    groups: dict[int, list[dict]] = defaultdict(list)
    for p in _ok(results, "rdt", h):
        groups[p["width"]].append(p)
    for w, pts in sorted(groups.items()):
        n, c = float(pts[0]["params"]["unique"]), float(pts[0]["train_flops"])
        t, f = by_n.get(n), by_c.get(c)
        loss = np.mean([p["loss"] for p in pts])
        lines.append(f"| {w} | {n:.4g} | {loss:.4g} | {_num(t and t['n_eq'])} | {_num(t and t['ratio'])} "
                     f"{_iv(t['ratio_interval']) if t else ''} | {_verdict(t) if t else '—'} | {c:.3g} "
                     f"| {_num(f and f['ratio'])} {_iv(f['ratio_interval']) if f else ''} |")
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
        lines += ["", f"**Loop worth** φ = {lw['params']['phi']:.3g} {_iv(lw['intervals']['phi'])}: r loops of the "
                  f"recurrent block count as r^φ copies of its parameters, L = E + A·(N_once + r^φ·N_rec)^-α "
                  f"(Schwethelm et al. 2026 report φ ≈ {SCHWETHELM_PHI})."]
    proj = tok.get("projections", [])
    if proj:
        top = max(p["params"]["unique"] for p in results["points"])
        lines += ["", "### EXTRAPOLATION to Parcae's sizes (not a measurement)", "",
                  f"From models of at most {top:,} unique parameters trained on CPU for {steps} steps on the "
                  f"synthetic task {results['task']['name']!r}, the fitted laws imply the ratios below at sizes "
                  f"thousands of times larger. Parcae reports 1.3B/770M ≈ {PARCAE_RATIO} for language modelling. "
                  "Nothing here tests whether the laws hold that far out.", "",
                  f"| N rdt | N_eq standard | N_eq/N [{pct}] |", "|---|---|---|"]
        lines += [f"| {r['n_rdt']:.3g} | {_num(r['n_eq'])} | {_num(r['ratio'])} {_iv(r['ratio_interval'])} |"
                  for r in proj]
    return lines


def _points_table(results: dict) -> list[str]:
    diffs = sorted({a["difficulty"] for p in results["points"] for a in p["accuracy"]
                    if a["split"] == "test" or a["difficulty"] == max(results["task"]["train_difficulties"])})
    lines = ["## Points (accuracy: exact match at the training loop count; mean over seeds)", "",
             "| point | seeds | N unique | N once | N rec | train FLOPs | loss | "
             + " | ".join(f"acc@{d}" for d in diffs) + " | status |", "|---" * (8 + len(diffs)) + "|"]
    groups: dict[str, list[dict]] = defaultdict(list)
    for p in results["points"]:
        groups[p["name"]].append(p)
    for name, pts in groups.items():
        done = [p for p in pts if p["loss"] is not None]
        acc = {d: [a["accuracy"] for p in done for a in p["accuracy"] if a["difficulty"] == d] for d in diffs}
        status = ", ".join(sorted({p["status"] for p in pts}))
        par = pts[0]["params"]
        lines.append(f"| {name} | {len(pts)} | {par['unique']:,} | {par['once']:,} | {par['recurrent']:,} "
                     f"| {pts[0]['train_flops']:.3g} | {_num(np.mean([p['loss'] for p in done]) if done else None)} | "
                     + " | ".join(_num(np.mean(acc[d]) if acc[d] else None) for d in diffs) + f" | {status} |")
    return lines


def render_markdown(results: dict) -> str:
    """scale.md: provenance, headline, test-time curve, points, fit details and notes."""
    git = results.get("git") or {}
    lines = [f"# Scaling: {results['task']['name']} ({results.get('preset')} preset)", "",
             f"`{results.get('command')}` — {results.get('created_at')}, commit {git.get('commit')} "
             f"(dirty: {git.get('dirty')}), wall time {results.get('wall_time_s')} s, seeds {results.get('seeds')}",
             "", *headline_table(results), "",
             f"## Test-time curve: loss against inference loops (RDT at r = {results['scale']['headline_loops']})",
             "", "L(T) = L_inf + (L_0 − L_inf)·exp(−T/τ), fitted over the falling part of the curve (T up to the "
             "loop count of lowest loss, at least 3 points); past it the loss may rise again (overthinking), "
             "which the law does not describe: the last columns show it.", "",
             "| width | N | fitted T | L_inf | L_0 | τ | RMSE log L | lowest loss (at T) | loss at T max |",
             "|---" * 9 + "|"]
    for t in results["fits"]["test_time"]:
        tail = (f"| {t['loss_best']:.4g} (T={t['best_loops']}) | {t['loss_max_loops']:.4g} (T={t['max_loops']}) |")
        head = f"| {t['width']} | {t['params']:,} | {t['fit_loops'][0]}–{t['fit_loops'][1]} "
        if "error" in t:
            lines.append(head + f"| no fit: {'; '.join(t['error'])} | | | | " + tail)
            continue
        f = t["fit"]
        cols = " | ".join(f"{f['params'][k]:.4g} {_iv(f['intervals'][k])}" for k in ("L_inf", "L_0", "tau"))
        lines.append(head + f"| {cols} | {f['rmse_log']:.3g} " + tail)
    lines += ["", *_points_table(results), "", "## Fit details", ""]
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


def _band(ax: Any, fit: fits.FitResult, x: np.ndarray, color: Any, label: str) -> None:
    """The fitted power law and its pointwise bootstrap band (percentiles of the replicate curves)."""
    grid = np.geomspace(x.min() / 1.5, x.max() * 1.5, 100)
    p = fit.params
    ax.plot(grid, p["E"] + p["A"] * grid ** -p["alpha"], color=color, label=label)
    if len(fit.replicates):
        r = fit.replicates
        curves = r[:, :1] + r[:, 1:2] * grid[None, :] ** -r[:, 2:3]
        q = (1 - fit.level) / 2
        ax.fill_between(grid, *np.quantile(curves, [q, 1 - q], axis=0), color=color, alpha=0.2)


def write_plots(results: dict, run_dir: Path) -> list[Path]:
    """scaling.png (loss vs N and vs C), test_time.png, exponents.png (bootstrap distributions)."""
    from mythbench.experiments.scale import FIT_SEED

    h, nb, level = (results["scale"][k] for k in ("headline_loops", "n_bootstrap", "level"))
    kw = {"n_bootstrap": nb, "level": level, "seed": FIT_SEED}  # as in compute_fits: the same replicates
    colors = {"rdt": "tab:blue", "standard": "tab:orange"}
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    alphas: dict[str, np.ndarray] = {}
    for ax, (axis, xlabel) in zip(fig.subplots(1, 2), (("N", "unique non-embedding parameters N"),
                                                       ("C", "training compute C (FLOPs)")), strict=True):
        for fam in ("standard", "rdt"):
            pts = _ok(results, fam, h if fam == "rdt" else None)
            if fam == "rdt" and axis == "N":
                other = [p for p in _ok(results, "rdt") if p["loops"] != h]
                ax.scatter([p["params"]["unique"] for p in other], [p["loss"] for p in other], s=10,
                           color=colors[fam], alpha=0.3, label="rdt, other r")
            x = np.array([p["params"]["unique"] if axis == "N" else p["train_flops"] for p in pts], float)
            y = np.array([p["loss"] for p in pts], float)
            label = f"rdt r={h}" if fam == "rdt" else fam
            ax.scatter(x, y, color=colors[fam], s=22, label=label)
            try:
                fit = fits.fit_power_law(x, y, **kw)
            except ConfigError:
                continue
            _band(ax, fit, x, colors[fam], f"fit α={fit.params['alpha']:.2f}")
            if axis == "N":
                alphas[fam] = fit.replicates[:, 2]
        ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="validation loss (train difficulties)",
               title=f"matched {'tokens' if axis == 'N' else 'training FLOPs'} ({level:.0%} bootstrap band)")
        ax.legend(fontsize=7)
    paths = [_save(fig, run_dir / "scaling.png")]

    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    fitted = {t["width"]: t.get("fit") for t in results["fits"]["test_time"]}
    fitted_range = {t["width"]: t["fit_loops"] for t in results["fits"]["test_time"]}
    widths = sorted({p["width"] for p in _ok(results, "rdt", h)})
    for i, w in enumerate(widths):
        span = fitted_range.get(w, (0, 0))
        color = matplotlib.colormaps["viridis"](i / max(1, len(widths) - 1))
        curves = [p["loss_by_loops"] for p in _ok(results, "rdt", h) if p["width"] == w]
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

    rdt = _ok(results, "rdt")
    if len({p["loops"] for p in rdt}) > 1:
        try:
            lw = fits.fit_loop_worth(*([p["params"][k] for p in rdt] for k in ("once", "recurrent")),
                                     [p["loops"] for p in rdt], [p["loss"] for p in rdt], **kw)
            alphas["φ (loop worth)"] = lw.replicates[:, 3]
        except ConfigError:
            pass
    fig = Figure(figsize=(4 * max(1, len(alphas)), 3.6), layout="constrained")
    for ax, (name, reps) in zip(np.atleast_1d(fig.subplots(1, max(1, len(alphas)))), alphas.items(),
                                strict=False):
        ax.hist(reps, bins=30, color="tab:gray")
        ax.set(xlabel=name if "φ" in name else f"α ({name})", ylabel="bootstrap replicates",
               title=f"{len(reps)} bootstrap fits")
    paths.append(_save(fig, run_dir / "exponents.png"))
    return paths
