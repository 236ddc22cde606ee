"""Generated blocks of the repository's Markdown pages: the text between `<!-- BEGIN generated: NAME -->` and
`<!-- END generated: NAME -->` is written by code from committed results (`mythbench answer --write`), and
tests/test_answer.py fails when a page's block differs from what the code makes now, so a page cannot drift
from the files it summarizes. Hand-written prose stays outside the markers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mythbench.core.errors import ConfigError
from mythbench.core.fileio import atomic_write_text
from mythbench.reports.answer import answer_markdown
from mythbench.reports.reference_index import index_markdown

# page (relative to the repository root) -> (block name, its generator from the root)
GENERATED: dict[str, tuple[str, Callable[[Path], str]]] = {
    "README.md": ("answer", answer_markdown),
    "results/README.md": ("reference-index", index_markdown),
}


def markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN generated: {name} -->", f"<!-- END generated: {name} -->"


def _span(text: str, name: str, page: str) -> tuple[int, int]:
    """Start and end offsets of the block's content (between the marker lines)."""
    begin, end = markers(name)
    problems = [f"{page}: needs exactly one line {marker!r}, found {text.count(marker)}"
                for marker in (begin, end) if text.count(marker) != 1]
    if not problems and text.index(end) < text.index(begin):
        problems.append(f"{page}: {end!r} comes before {begin!r}")
    if problems:
        raise ConfigError(problems)
    return text.index(begin) + len(begin) + 1, text.index(end)


def read_block(text: str, name: str, page: str = "page") -> str:
    """The content of block `name` in `text`."""
    start, stop = _span(text, name, page)
    return text[start:stop]


def replace_block(text: str, name: str, content: str, page: str = "page") -> str:
    """`text` with block `name`'s content replaced by `content` (which ends in a newline)."""
    start, stop = _span(text, name, page)
    return text[:start] + content + text[stop:]


def _page_text(root: Path, page: str) -> str:
    path = root / page
    if not path.is_file():
        raise ConfigError(f"{path}: not found; run from the repository's root or give --root")
    return path.read_text()


def stale_pages(root: Path) -> list[str]:
    """The pages whose generated block differs from what the committed results give now."""
    return [page for page, (name, generate) in GENERATED.items()
            if read_block(_page_text(root, page), name, page) != generate(root)]


def write_pages(root: Path) -> list[Path]:
    """Regenerate every page's block; the paths rewritten. Every block is made before any page is written, so
    a generator's error leaves every page as it was."""
    old = {page: _page_text(root, page) for page in GENERATED}
    new = {page: replace_block(old[page], name, generate(root), page) for page, (name, generate) in GENERATED.items()}
    changed = [page for page in GENERATED if new[page] != old[page]]
    for page in changed:
        atomic_write_text(root / page, new[page])
    return [root / page for page in changed]
