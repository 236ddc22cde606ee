"""The leaderboard as one self-contained HTML page (`mythbench report results --html`).

The page is LEADERBOARD.md as `mythbench submit` renders it from leaderboard.csv (so it ranks, groups and
escapes exactly as the Markdown does), then one plot per table: every model's headline accuracy at the
board's three difficulties, on a numeric axis, each looped model in its own colour with its twins beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_text
from mythbench.reports.html_page import render_page
from mythbench.reports.report_plots import PLAIN_TEXT, Plot, png
from mythbench.results.board import CSV_NAME, POINTS, TABLE_KEYS, board_frame, md_escape, read_board, render_markdown
from mythbench.results.leaderboard import current_task, current_versions

PAGE_NAME = "leaderboard.html"
MEMBER_STYLES = ("o-", "s--", "^:", "d-.")  # a looped model, then its twins, in one colour


def _table_plot(file: str, caption: str, table: pd.DataFrame) -> Plot:
    """Headline accuracy (bars: 95% interval) against difficulty, one line per row of one board table."""
    owner = table["twin_of"].where(table["twin_of"] != "", table["model"])
    groups = list(dict.fromkeys(zip(table["content_hash"], owner, strict=True)))
    several = table["content_hash"].nunique() > 1
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    members: dict[tuple[str, str], int] = {}
    difficulties: set[float] = set()
    for (_, row), row_owner in zip(table.iterrows(), owner, strict=True):
        values = {c: pd.to_numeric(pd.Series([row[f"{c}_{tag}"] for tag in POINTS]), errors="coerce").to_numpy()
                  for c in ("d", "acc", "low", "high")}
        shown = np.isfinite(values["d"]) & np.isfinite(values["acc"])
        if not shown.any():
            continue
        difficulties.update(values["d"][shown])
        group = (row["content_hash"], row_owner)
        member = members[group] = members.get(group, -1) + 1
        err = np.clip(np.nan_to_num([values["acc"] - values["low"], values["high"] - values["acc"]], posinf=0,
                                    neginf=0), 0, None)
        label = row["model"] + (f" (twin of {row['twin_of']})" if row["twin_of"] else "") + (
            f", {row['submitter']} {row['date']} {row['content_hash'][:8]}" if several else "")
        ax.errorbar(values["d"][shown], values["acc"][shown], yerr=err[:, shown], capsize=3, ms=4, label=label,
                    fmt=MEMBER_STYLES[member % len(MEMBER_STYLES)], color=f"C{groups.index(group) % 10}")
    ax.set_xticks(sorted(difficulties))
    ax.set(xlabel="difficulty (the board's training, 2x and largest test difficulty)",
           ylabel="exact-match accuracy (headline)", ylim=(-0.02, 1.02))
    ax.set_title(f"Headline accuracy by difficulty (bars: 95% interval)\n{caption}", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return Plot(file, caption, png(fig))


def build_leaderboard_page(results_dir: Path) -> Path:
    """Write results_dir/leaderboard.html from leaderboard.csv; ConfigError if there is no board."""
    results_dir = Path(results_dir)
    rows = read_board(results_dir)
    if not rows:
        raise ConfigError(f"{results_dir}: no leaderboard ({CSV_NAME} is missing or holds no row)")
    board = board_frame(rows)
    with rc_context(PLAIN_TEXT):
        plots = [_table_plot(f"table_{i}.png", f"{task} v{version}, preset {preset or '-'}: {spent}", table)
                 for i, ((task, version, _, preset, spent), table) in enumerate(board.groupby(TABLE_KEYS))]
    figures = "\n".join(f"![{md_escape(plot.caption)}]({plot.file})\n" for plot in plots)
    markdown_text = (render_markdown(rows, current_versions(rows, current_task))
                     + "\n## Plots\n\nOne plot per table above, in the same order.\n\n" + figures)
    path = results_dir / PAGE_NAME
    atomic_write_text(path, render_page("mythbench leaderboard", markdown_text, {p.file: p.png for p in plots}))
    return path
