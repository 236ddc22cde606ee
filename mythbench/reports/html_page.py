"""Self-contained HTML pages (`mythbench report --html`) from the Markdown the reports already write.

A page is a report's Markdown (report.md, or the leaderboard's) rendered by markdown-it-py, with the report's
figures embedded as base64 PNG, in one file that opens from disk with no server and no network. Rendering the
same Markdown keeps the page and the .md from ever disagreeing. Strings in a results file are data, so nothing
in them can reach the network: raw HTML in the Markdown is shown as text, an image is kept only when it
names one of the page's own figures (any other is shown as its alt text), and the page's
Content-Security-Policy lets the browser load data: images alone.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from jinja2 import Environment, PackageLoader
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markupsafe import Markup

_TEMPLATES = Environment(loader=PackageLoader("mythbench.reports"), autoescape=True)


def _renderer(figures: dict[str, bytes]) -> MarkdownIt:
    """CommonMark with tables and without raw HTML ("js-default"), whose images are the figures, inlined."""

    def image(self: RendererHTML, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
        token = tokens[idx]
        data = figures.get(str(token.attrGet("src")))
        if data is None:
            return escapeHtml(token.content)
        token.attrSet("src", "data:image/png;base64," + base64.b64encode(data).decode("ascii"))
        return RendererHTML.image(self, tokens, idx, options, env)

    markdown = MarkdownIt("js-default")
    markdown.add_render_rule("image", image)
    return markdown


def render_page(title: str, markdown_text: str, figures: dict[str, bytes]) -> str:
    """One HTML document: `markdown_text` rendered, every `![alt](name)` of a name in `figures` embedded."""
    body = _renderer(figures).render(markdown_text)
    return _TEMPLATES.get_template("page.html").render(title=title, body=Markup(body))
