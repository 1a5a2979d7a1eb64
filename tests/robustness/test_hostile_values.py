"""Markup from the data never survives into an artifact: hostile column names, category values and
labels run through whole pipelines (deploy, model-blocked, data-blocked), and every HTML page,
every Markdown report (rendered with raw HTML allowed) and the webhook's body are parsed for
elements, attributes, links and mentions that came from the data."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from gated_training.validation.suite import draft_suite
from tests.conftest import SAMPLE_DATA
from tests.integration.conftest import DATA_BLOCKED_TASKS, DEPLOYED_TASKS, MODEL_BLOCKED_TASKS, LocalSetup
from tests.kfp_markdown import kfp_elements
from tests.markdown_render import elements, tables
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration

SCRIPT_COLUMN = "<script>alert('col')</script>"
PIPE_COLUMN = "home|owner"
IMG_VALUE = '"><img src=x onerror=alert(1)>'
LINK_VALUE = "[click](javascript:alert(1))"
SLACK_VALUE = "<!channel> <http://evil.example|APPROVE DEPLOY>"
GOOD, BAD = "<b>good</b>", "bad_|_*x*"
HTML_FILES = ("data_docs", "drift_html")
MARKDOWN_FILES = ("gate_report", "summary")


def hostile_frame() -> pd.DataFrame:
    frame = pd.read_csv(SAMPLE_DATA).rename(columns={"purpose": SCRIPT_COLUMN, "housing": PIPE_COLUMN})
    frame["sex"] = frame["sex"].map({"male": IMG_VALUE, "female": LINK_VALUE})
    frame["job"] = frame["job"].map(lambda j: SLACK_VALUE if j == 3 else f"job_{j}")
    frame["risk"] = frame["risk"].map({1: GOOD, 0: BAD})
    return frame


class Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def assert_plot_carries_no_markup_from_the_data(svg: str, path: Path) -> None:
    """A drift plot is an image (a browser runs no script in one), and still carries the data's text as text:
    only the drawing's own elements, no handler, no link, nothing foreign."""
    parser = Markup()
    parser.feed(svg)
    assert {tag for tag, _ in parser.tags} <= {"svg", "defs", "pattern", "path", "rect", "text", "line"}, path
    for tag, attributes in parser.tags:
        assert not any(name.startswith("on") or name.endswith("href") for name in attributes), (path, tag)
    assert "<img src=x" not in svg and "<b>good</b>" not in svg and "<script" not in svg, path


def assert_html_carries_no_markup_from_the_data(path: Path) -> None:
    parser = Markup()
    parser.feed(path.read_text())
    names = {tag for tag, _ in parser.tags}
    assert "script" not in names, path
    for tag, attributes in parser.tags:
        assert not any(name.startswith("on") for name in attributes), (path, tag, attributes)
        assert tag not in ("link", "iframe", "object", "embed", "base"), (path, tag)
        for name in ("href", "src"):
            value = (attributes.get(name) or "").strip().lower()
            assert not value.startswith(("javascript:", "http:", "https:", "//")), (path, tag, attributes)
        if tag == "img":
            source = attributes.get("src", "")
            assert source.startswith("data:image/svg+xml;base64,"), path  # only our own plots
            assert_plot_carries_no_markup_from_the_data(base64.b64decode(source.split(",", 1)[1]).decode(), path)
    text = path.read_text()
    assert "<img src=x" not in text and "<b>good</b>" not in text and "<script>alert" not in text, path
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text), f"{path} loads an external asset"


def assert_markdown_carries_no_markup_from_the_data(path: Path) -> None:
    markdown = path.read_text()
    parsed = elements(markdown)
    names = {tag for tag, _ in parsed.tags}
    assert not names & {"script", "img", "b", "a", "iframe"}, (path, names)
    for table in tables(markdown):
        widths = {len(row) for row in table}
        assert len(widths) == 1, (path, table)  # a '|' from the data never splits a cell
    assert "em" not in names, path  # no italics made from names in the data (our own **bold** verdicts are fine)
    # The same under the KFP UI's own renderer (markdown-to-jsx, raw HTML off), which italicises
    # snake_case outside code spans and splits table rows on unescaped pipes.
    ui = kfp_elements(markdown)
    ui_names = {tag for tag, _ in ui.tags}
    assert not ui_names & {"script", "img", "a", "iframe", "em"}, (path, ui_names)
    for table in ui.tables:
        assert len({len(row) for row in table}) == 1, (path, table)


def artifacts(root: Path) -> dict[str, list[Path]]:
    """Every report the runs under ``root`` wrote (kfp.local keeps them under <workdir>/kfp-runs)."""
    found: dict[str, list[Path]] = {}
    for path in root.rglob("kfp-runs/*/*/*"):
        if path.name in HTML_FILES + MARKDOWN_FILES:
            found.setdefault(path.name, []).append(path)
    return found


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-values")
    setup = LocalSetup(root)
    frame = hostile_frame()
    data = root / "hostile.csv"
    frame.to_csv(data, index=False)
    suite = root / "hostile.expectations.json"
    suite.write_text(json.dumps(draft_suite(frame, "risk", "hostile")))
    with WebhookReceiver() as receiver:
        hook = ["--set", f"notify_webhook_url={receiver.hook_url}"]
        deployed = setup.run("--suite", str(suite), *hook, data=data, name="deploy")
        blocked = setup.run("--suite", str(suite), "--set", "min_accuracy=0.99", *hook, data=data, name="model-blocked")
        corrupted = frame.copy()
        corrupted.loc[:300, "sex"] = "<script>alert('cell')</script>"
        corrupted.loc[:50, PIPE_COLUMN] = "| --- |"
        bad = root / "corrupted.csv"
        corrupted.to_csv(bad, index=False)
        data_blocked = setup.run("--suite", str(suite), *hook, data=bad, name="data-blocked")
    return root, {"deploy": deployed, "model-blocked": blocked, "data-blocked": data_blocked}, receiver.posts


def test_hostile_values_flow_through_every_path(hostile_runs):
    _, runs, posts = hostile_runs
    assert runs["deploy"].summary["outcome"] == "deployed" and runs["deploy"].tasks == DEPLOYED_TASKS, runs[
        "deploy"
    ].summary["reasons"]
    assert runs["model-blocked"].tasks == MODEL_BLOCKED_TASKS
    assert runs["data-blocked"].tasks == DATA_BLOCKED_TASKS
    assert any("<script>alert('cell')</script>" in reason for reason in runs["data-blocked"].summary["reasons"])
    assert len(posts) == 2  # the two blocked runs


@pytest.mark.parametrize(
    ("kind", "check", "counts"),
    [
        ("html", assert_html_carries_no_markup_from_the_data, {"data_docs": 3, "drift_html": 2}),
        # Every gate writes a summary (the stopping gate the outcome, the others "continued"): 4 + 3 + 1.
        ("markdown", assert_markdown_carries_no_markup_from_the_data, {"gate_report": 2, "summary": 8}),
    ],
)
def test_no_artifact_carries_markup_from_the_data(hostile_runs, kind, check, counts):
    root, _, _ = hostile_runs
    found = artifacts(root)
    assert {name: len(found.get(name, [])) for name in counts} == counts
    for name in counts:
        for path in found[name]:
            check(path)
    blocked = next(p for p in found["data_docs" if kind == "html" else "summary"] if "data-blocked" in str(p))
    if kind == "html":
        assert "&lt;script&gt;alert(&#x27;cell&#x27;)&lt;/script&gt;" in blocked.read_text()  # shown, as text
    else:
        assert "<script>alert('cell')</script>" in "".join(elements(blocked.read_text()).text)


def test_the_webhook_body_carries_no_slack_markup_from_the_data(hostile_runs):
    _, _, posts = hostile_runs
    for post in posts:
        text = post["json"]["text"]
        assert "<!channel>" not in text and "<http://evil" not in text and "<script>" not in text
        assert re.findall(r"<[^>]*>", text) == [], text  # links are only ours, and these runs have none
    assert any("&lt;script&gt;alert('cell')&lt;/script&gt;" in post["json"]["text"] for post in posts)
