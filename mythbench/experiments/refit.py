"""`mythbench fit`: the scale tables recomputed from stored results files, pooled across files, with no
training. Files are checked before their points meet: only ladders of one task, test set, token budget and
learning-rate rule can share a fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mythbench.analysis.ladder import compute_fits, ladder_notes
from mythbench.config import run_config_from_dict
from mythbench.core.errors import ConfigError
from mythbench.experiments.scale import point_run_config
from mythbench.reports.scale_report import render_markdown
from mythbench.results.safejson import read_json_file, walk_problems
from mythbench.results.scale_model import SCALE_SCHEMA_VERSION

POINT_KEYS = ("name", "family", "width", "loops", "seed", "status", "params", "train_flops", "loss")


def _check_scale_doc(doc: Any, where: str) -> list[str]:
    """Every reason `doc` is not a usable scale results file, each prefixed with `where`."""
    if not isinstance(doc, dict):
        return [f"{where}: expected a JSON object, got {type(doc).__name__}"]
    if doc.get("kind") != "scale":
        return [f"{where}: kind is {doc.get('kind')!r}, not 'scale' (a results file of `mythbench scale`)"]
    out = [f"{where}: {p}" for p in walk_problems(doc)]
    if doc.get("schema_version") != SCALE_SCHEMA_VERSION:
        out.append(f"{where}: schema_version {doc.get('schema_version')!r} is not {SCALE_SCHEMA_VERSION}")
    scale, task = doc.get("scale"), doc.get("task")
    if not isinstance(scale, dict) or not all(isinstance(scale.get(k), int) for k in ("headline_loops",
                                                                                       "n_bootstrap")):
        out.append(f"{where}: scale.headline_loops and scale.n_bootstrap must be integers")
    if not isinstance(task, dict) or not all(k in task for k in ("name", "version", "fingerprint")):
        out.append(f"{where}: task must name name, version and fingerprint")
    points = doc.get("points")
    if not isinstance(points, list) or not points:
        return out + [f"{where}: points must be a non-empty list"]
    for i, p in enumerate(points):
        missing = [k for k in POINT_KEYS if not isinstance(p, dict) or k not in p]
        if missing:
            out.append(f"{where}: points[{i}]: missing {', '.join(missing)}")
        elif not isinstance(p["params"], dict) or not all(k in p["params"] for k in ("unique", "once",
                                                                                      "recurrent")):
            out.append(f"{where}: points[{i}].params must hold unique, once and recurrent")
        elif p["family"] == "rdt" and p["loss"] is not None and not isinstance(p.get("loss_by_loops"), list):
            out.append(f"{where}: points[{i}]: an rdt point needs loss_by_loops")
    return out


def load_scale_results(paths: list[Path]) -> list[dict]:
    """Read and check scale results files; ConfigError lists every problem in every file."""
    docs, problems = [], [] if paths else ["no results files given"]
    for path in paths:
        if not Path(path).exists():
            problems.append(f"{path}: no such file")
            continue
        try:
            doc = read_json_file(Path(path))
        except ConfigError as e:
            problems += [f"{path}: {p}" for p in e.problems]
            continue
        except OSError as e:
            problems.append(f"{path}: cannot read ({e.strerror or e})")
            continue
        found = _check_scale_doc(doc, str(path))
        problems += found
        if not found:
            docs.append(doc)
    if not problems and docs:
        first = docs[0]
        for path, d in zip(paths[1:], docs[1:], strict=True):
            for key, what in ((("task", "name"), "task"), (("task", "version"), "task version"),
                              (("task", "fingerprint"), "test-set fingerprint"),
                              (("scale", "train"), "training config (token budget)"),
                              (("scale", "reference_loops"), "reference model (the standard or r = 1)")):
                if d[key[0]].get(key[1]) != first[key[0]].get(key[1]):
                    problems.append(f"{path}: {what} differs from {paths[0]}'s; their points cannot share a fit")
            if _lr_exponent(d) != _lr_exponent(first):
                problems.append(f"{path}: scale.lr_width_exponent differs from {paths[0]}'s (another learning "
                                "rate per width); their points cannot share a fit")
    if problems:
        raise ConfigError(problems)
    return docs


def _lr_exponent(doc: dict) -> float:
    """scale.lr_width_exponent of a results file (files written before the key existed used one lr)."""
    config = doc.get("config")
    scale = config.get("scale") if isinstance(config, dict) else None
    return scale.get("lr_width_exponent", 0.0) if isinstance(scale, dict) else 0.0


def refit_results(paths: list[Path]) -> dict:
    """The first file's results with every file's points pooled and the fits recomputed (no training)."""
    docs = load_scale_results(paths)
    points = [p for d in docs for p in d["points"]]
    scale = docs[0]["scale"]
    stored = docs[0].get("config")  # the notes on how the points trained come from the ladder's config
    recipe_notes = point_run_config(run_config_from_dict(stored))[1] if stored is not None else []
    reference = scale.get("reference_loops")  # absent in files written before the dense ladder: the standard
    out = {**docs[0], "points": points,
           "fits": compute_fits(points, scale["n_bootstrap"], scale["headline_loops"], reference),
           "notes": recipe_notes + ladder_notes(points, scale["headline_loops"], reference)}
    if len(docs) > 1:
        out["notes"].append(f"points pooled from {len(docs)} files: {', '.join(map(str, paths))}")
    return out


def refit(paths: list[Path]) -> str:
    """`mythbench fit`: the scale tables recomputed from stored results files."""
    return render_markdown(refit_results(paths))


__all__ = ["load_scale_results", "refit", "refit_results"]
