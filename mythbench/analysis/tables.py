"""Every table the project writes is a pandas DataFrame; this writes one as CSV, Markdown or terminal text.

Markdown without `DataFrame.to_markdown`: that needs the `tabulate` package, which would be a new dependency
for a dozen lines, pads cells to aligned columns (noisy diffs of generated files) and cannot leave cells
that the caller has already escaped alone (the leaderboard escapes hostile strings itself). The cells here
are written as the caller formatted them, in GitHub's pipe syntax.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

DASH = "—"  # a missing number in a rendered table


def _cell(v: Any, escape: bool) -> str:
    text = "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
    return text.replace("|", "\\|") if escape else text


def markdown(df: pd.DataFrame, escape: bool = True) -> str:
    """A pipe table: the header, a `|---|` rule and one line per row; `|` in a cell is escaped unless the
    caller escaped the cells already (escape=False)."""
    rows = [[_cell(c, escape) for c in df.columns], *([_cell(v, escape) for v in r] for r in df.itertuples(False))]
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join([lines[0], "|" + "---|" * len(df.columns), *lines[1:]])


def csv_text(df: pd.DataFrame) -> str:
    """CSV with a header and Unix line ends; floats in full precision (Python's repr), None as empty."""
    return df.to_csv(index=False, lineterminator="\n")


def plain(df: pd.DataFrame) -> str:
    """Left-aligned columns two spaces apart with a rule under the header, for the terminal."""
    table = [[str(c) for c in df.columns], *([_cell(v, False) for v in r] for r in df.itertuples(False))]
    widths = [max(len(r[i]) for r in table) for i in range(len(df.columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def num(v: float | None, spec: str = ".4g") -> str:
    """A number as a table shows it, or a dash when there is none."""
    return DASH if v is None else format(v, spec)


def interval(iv: dict[str, Any]) -> str:
    """`[low, high]` of a stored interval, with the reason when an end is unavailable."""
    return f"[{num(iv.get('low'))}, {num(iv.get('high'))}]" + (f" ({iv['reason']})" if iv.get("reason") else "")
