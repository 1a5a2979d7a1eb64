"""Render Markdown exactly as the Kubeflow Pipelines UI does: markdown-to-jsx 7.7.17 with raw HTML
off, through React's server renderer (tests/js/render_markdown.mjs; `make test` installs
tests/js/node_modules with `npm ci`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.markdown_render import _Elements

JS = Path(__file__).parent / "js"


def render_as_kfp_ui(markdown: str) -> str:
    if not (JS / "node_modules" / "markdown-to-jsx").is_dir():
        raise RuntimeError("tests/js/node_modules is missing: `make test` installs it (npm ci in tests/js)")
    result = subprocess.run(
        ["node", str(JS / "render_markdown.mjs")],
        input=markdown,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def kfp_elements(markdown: str) -> _Elements:
    parser = _Elements()
    parser.feed(render_as_kfp_ui(markdown))
    return parser
