"""Render the Markdown artifacts as a permissive renderer would (raw HTML allowed, GFM tables,
autolinks: mistune), so tests assert what a reader sees and what markup it contains."""

from __future__ import annotations

import html
from html.parser import HTMLParser

import mistune

_RENDER = mistune.create_markdown(escape=False, plugins=["table", "strikethrough", "url"])


def render(markdown: str) -> str:
    return str(_RENDER(markdown))


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def elements(markdown: str) -> _Elements:
    parser = _Elements()
    parser.feed(render(markdown))
    return parser


def visible_text(markdown: str) -> str:
    return html.unescape("".join(elements(markdown).text))


def tables(markdown: str) -> list[list[list[str]]]:
    return elements(markdown).tables


def tag_names(markdown: str) -> set[str]:
    return {tag for tag, _ in elements(markdown).tags}
