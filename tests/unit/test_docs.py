"""The docs that are derived from the code say what the code says, and every page renders whole."""

import re

import pytest

from pipelines.docs import PAGE, render
from tests.conftest import REPO_ROOT
from tests.markdown_render import tables


def test_the_generated_parts_of_the_parameters_page_are_current():
    """The CLI synopsis (argparse) and the run form's tables (the settings classes): `make docs` rewrites them."""
    text = PAGE.read_text()
    assert render(text) == text, "docs/parameters.md is stale: run `make docs`"


PAGES = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "DEVELOPERS.md",
    REPO_ROOT / "CHANGELOG.md",
    *sorted((REPO_ROOT / "docs").glob("*.md")),
]


def source_tables(text: str) -> list[list[str]]:
    """The pipe tables as written: runs of lines starting with ``|`` outside code fences."""
    found: list[list[str]] = []
    current: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("|"):
            current.append(line)
            continue
        if current:
            found.append(current)
            current = []
    return found + ([current] if current else [])


def cells(row: str) -> int:
    """A row's cells as GFM splits them: on pipes outside code spans that are not escaped."""
    outside_code = re.sub(r"`[^`]*`", "code", row)
    return len(re.findall(r"(?<!\\)\|", outside_code)) - 1


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_table_renders_whole(page):
    """Each table written in a page renders as a table with every row and cell: a stray pipe, a missing
    separator or a blank line inside a table makes a renderer (mistune, GFM) drop or shift cells."""
    text = page.read_text()
    written, rendered = source_tables(text), tables(text)
    assert len(rendered) == len(written), f"{page.name}: {len(written)} tables written, {len(rendered)} rendered"
    for source, table in zip(written, rendered):
        header = cells(source[0])
        assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", source[1].strip()), f"{page.name}: no separator row: {source[0]}"
        for row in source:
            assert cells(row) == header, f"{page.name}: {cells(row)} cells where the header has {header}: {row}"
        assert len(table) == len(source) - 1 and all(len(r) == header for r in table), (page.name, source[0])


def test_links_between_pages_resolve():
    """Every relative link in the README and the docs names a file that exists, and its #anchor a heading there."""
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#") and not target[1:]:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.exists(), f"{page.name}: link to {target}: no such file"
            if anchor and file.suffix == ".md":
                slugs = {
                    re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
                    for heading in re.findall(r"^#+ (.*)$", file.read_text(), re.M)
                }
                assert anchor in slugs, f"{page.name}: link to {target}: no such heading in {file.name}"
