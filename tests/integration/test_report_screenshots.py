"""The reports as people see them: each one a real run writes (the data gate's page, the drift page, the summaries
and the gate report as the KFP UI renders Markdown, a monitoring window's page with a canary) opened in headless
Chromium (Debian's chromium-headless-shell), screenshotted and its DOM dumped after scripts ran.

What a screenshot proves that the text tests do not: the page renders (not blank, not an error page), its verdict is
on the first screen, and nothing the data put in it became markup or ran as a script in a real browser. The
screenshots are kept in the test's folder (and in ``$REPORT_SCREENSHOTS`` when set, to look at them)."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gated_training.monitoring import render_html
from gated_training.reports.summary import build_summary, summary_markdown
from tests.kfp_markdown import render_as_kfp_ui

pytestmark = pytest.mark.integration
HOSTILE = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
WIDTH, HEIGHT = 1280, 900


def chromium() -> str:
    binary = shutil.which("chromium-headless-shell")
    assert binary, "chromium-headless-shell is missing: `make test` installs it (Debian's chromium-headless-shell)"
    return binary


def open_page(page: Path, shot: Path) -> str:
    """Screenshot ``page`` (the first screen) and return its DOM after scripts ran; no network beyond loopback."""
    flags = [chromium(), "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND"]
    subprocess.run(
        [*flags, f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=60,
    )
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    if os.environ.get("REPORT_SCREENSHOTS"):
        Path(os.environ["REPORT_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(os.environ["REPORT_SCREENSHOTS"]) / shot.name)
    return dom


def ink(shot: Path, rows: slice = slice(None)) -> float:
    """The share of the screenshot's pixels (in ``rows``) that are not the page's background."""
    from matplotlib.image import imread

    image = imread(shot)[rows, :, :3]
    assert image.shape[1] == WIDTH, image.shape
    background = np.median(image.reshape(-1, 3), axis=0)
    return float((np.abs(image - background).sum(axis=2) > 0.15).mean())


def kfp_page(markdown: str, path: Path) -> Path:
    """A Markdown artifact as the KFP UI shows it: its own renderer's HTML, in a page."""
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'></head><body>{render_as_kfp_ui(markdown)}</body></html>"
    )
    return path


@pytest.fixture(scope="module")
def reports(sample_champion) -> dict[str, Path]:
    """The reports the sample's deploying run wrote (the data gate's page, the drift page, every Markdown)."""
    folder = sample_champion.root / "champion" / "reports"
    found = {path.name: path for path in folder.iterdir()}
    assert {"validate-data.data_docs.html", "check-drift.drift_html.html", "deploy-model.summary.md"} <= set(found)
    return found


@pytest.mark.parametrize("name", ["validate-data.data_docs.html", "check-drift.drift_html.html"])
def test_the_html_pages_render_with_their_verdict_on_the_first_screen(reports, tmp_path, name):
    shot = tmp_path / f"{name}.png"
    dom = open_page(reports[name], shot)
    assert ink(shot) > 0.01, f"{name} rendered (almost) blank"
    assert ink(shot, slice(0, 200)) > 0.005, f"{name}: nothing in the first 200 pixels: the verdict must lead"
    assert "<script" not in dom.lower() and not re.search(r"""(src|href)=["']https?://""", dom)


@pytest.mark.parametrize(
    "name", ["deploy-model.summary.md", "evaluate-model.gate_report.md", "validate-data.summary.md"]
)
def test_the_markdown_reports_render_in_the_kfp_ui_with_the_verdict_first(reports, tmp_path, name):
    shot = tmp_path / f"{name}.png"
    markdown = reports[name].read_text()
    dom = open_page(kfp_page(markdown, tmp_path / f"{name}.html"), shot)
    assert ink(shot) > 0.01 and ink(shot, slice(0, 150)) > 0.005, name
    if name == "deploy-model.summary.md":
        text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
        # The verdict heads the page, and the model gate's checks come before the data gate's (counted) ones.
        assert text.split()[0] == "Deployed"
        assert text.index("min_accuracy") < text.index("The data gate's other")


def test_hostile_text_in_a_summary_and_a_monitoring_page_never_runs_in_a_real_browser(tmp_path):
    validation = {
        "passed": False,
        "blocking_reasons": [f"column {HOSTILE}: critical rule failed"],
        "quality_score": 0.5,
        "min_quality_score": 0.8,
        "data_sha256": "ab",
        "checks": [
            {"rule": "expect_column_to_exist", "column": HOSTILE, "severity": "critical", "passed": False,
             "observed": HOSTILE, "expected": {"column": HOSTILE}},
        ],
    }  # fmt: skip
    summary = build_summary(validation=validation, kfp_run_id="run-1")
    dom = open_page(kfp_page(summary_markdown(summary), tmp_path / "summary.html"), tmp_path / "hostile-summary.png")
    assert "pwned" not in re.findall(r"<title>(.*?)</title>", dom) and "<img" not in dom and "<script" not in dom
    assert ink(tmp_path / "hostile-summary.png", slice(0, 150)) > 0.005
    window = {
        "outcome": "alert",
        "reasons": [HOSTILE],
        "warnings": [],
        "model_name": "m",
        "service": "m",
        "window_start": "2026-12-03T18:00:00+00:00",
        "window_end": "2026-12-04T18:00:00+00:00",
        "performance_window_start": "2026-11-27T18:00:00+00:00",
        "champion": "v2",
        "versions": [],
        "findings": [{"level": "alert", "code": "canary", "version": "v2", "text": HOSTILE}],
        "log": {},
        "labels": {},
        "canary": {
            "canary": "v2", "stable": HOSTILE, "window_end": "2026-12-04T18:00:00+00:00", "verdict": "worse",
            "evidence": [{"criterion": "errors", "result": "worse", "text": HOSTILE, "numbers": {}}],
            "healthy_windows": 0, "needed_windows": 3, "action": "abort", "action_result": HOSTILE, "source": HOSTILE,
        },
        "retrain": {},
        "settings": {},
    }  # fmt: skip
    page = tmp_path / "monitoring.html"
    page.write_text(render_html(window))
    dom = open_page(page, tmp_path / "hostile-monitoring.png")
    assert "pwned" not in re.findall(r"<title>(.*?)</title>", dom) and "<img" not in dom and "<script" not in dom
    assert "onerror" in html.unescape(dom)  # the text is there, shown as text
    assert ink(tmp_path / "hostile-monitoring.png", slice(0, 150)) > 0.005
