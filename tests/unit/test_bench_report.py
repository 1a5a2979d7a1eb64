"""`make bench` is never run by the tests (it takes ~25 minutes); its report writer is, on fixed numbers."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.report import STEP_ORDER, write_report

DOCS = Path(__file__).resolve().parents[2] / "docs"


def step(wall: float) -> dict:
    return {
        "wall_seconds": wall,
        "cpu_seconds": wall,
        "peak_rss_mib": 300.0,
        "bytes_read": 2**20,
        "bytes_written": 2**21,
    }


def test_report_has_the_ratio_table_per_step_table_and_plot(tmp_path):
    steps = {name: step(2.0) for name in STEP_ORDER}
    baseline = {
        "wall_seconds": 8.0,
        "peak_rss_mib": 400.0,
        "stages": {name: {"wall_seconds": 1.0} for name in [*STEP_ORDER, "imports"]},
    }
    results = {
        "machine": {"cpus": 2, "cpu_model": "test cpu", "memory_gib": 24.0, "python": "3.11", "platform": "linux"},
        "settings": {"estimator": "hist_gradient_boosting"},
        "bench_seconds": 100.0,
        "reference_max_rows": 100000,
        "startup": {
            "imports_seconds": {"pandas": 0.9},
            "steps": {**steps, "train-model": {**steps["train-model"], "ready_seconds": 1.25}},
            "recurring_outcome": "deployed",
            "first_run_steps": {**steps, "train-model": step(7.5)},
        },
        "sizes": [
            {
                "rows": 10000,
                "columns": 30,
                "frame_mib": 2.0,
                "repeat": 2,
                "pipeline": {"wall_seconds": 12.0, "accuracy": 0.8, "steps": steps},
                "baseline": baseline,
                "reference": {"wall_seconds": 24.0, "accuracy": 0.79},
            },
            {
                "rows": 1000000,
                "columns": 30,
                "frame_mib": 200.0,
                "pipeline": {"wall_seconds": 80.0, "accuracy": 0.8, "steps": steps},
                "baseline": {**baseline, "wall_seconds": 64.0},
            },
        ],
    }
    (tmp_path / "benchmarks-findings.md").write_text("## Findings\n\nhand-written\n")
    write_report(results, tmp_path)
    page = (tmp_path / "benchmarks.md").read_text()
    assert "| 10,000 | 2.0 | 12.0 | 8.0 | 1.50 | 24.0 | 2.00 | 0.8000 / 0.7900 |" in page
    assert "| 1,000,000 | 200.0 | 80.0 | 64.0 | 1.25 | not run | — | 0.8000 / — |" in page
    assert "| 1,000,000 | train-model | 2.0 | 2.0 | 300 | 1.5 | 1.0 | 2.0 |" in page
    # A step's first read (its start-up) beside its wall; a record without one (older runs) shows a dash.
    assert "| train-model | 1.2 | 2.0 | 2.0 | 300 | 7.5 |" in page and "outcome deployed" in page
    assert "| validate-data | — | 2.0 | 2.0 | 300 | 2.0 |" in page
    assert "the fastest of 2 alternating first runs" in page
    assert "--rows 10000,1000000 --columns 30 --reference-max-rows 100000 --repeat 2" in page
    assert "hand-written" not in page  # the findings page is linked, not repeated
    assert page.rstrip().endswith("rewrites this page,\nnever that one).") and "](benchmarks-findings.md)" in page
    assert (tmp_path / "benchmarks.png").read_bytes()[:4] == b"\x89PNG"


def test_checked_in_report_is_what_make_bench_writes_from_its_results_and_findings(tmp_path):
    """Edit docs/benchmarks-findings.md, not the Findings in benchmarks.md: the next bench rewrites that page."""
    for name in ("benchmarks-findings.md", "memory-profile.md"):
        shutil.copy(DOCS / name, tmp_path / name)
    write_report(json.loads((DOCS / "benchmarks.json").read_text()), tmp_path)
    assert (tmp_path / "benchmarks.md").read_text() == (DOCS / "benchmarks.md").read_text()


def test_the_single_process_baseline_trains_and_gates_with_the_benchs_settings():
    """The baseline reads the run form's groups as the components do: the bench's estimator and thresholds (it
    once read a flat form's names from a grouped one, and trained the default forest against default gates)."""
    from benchmarks.baseline import step_settings
    from benchmarks.bench import PIPELINE, SETTINGS
    from gated_training.cli.common import resolve_parameters
    from gated_training.kubeflow import component_inputs

    settings = step_settings(resolve_parameters(component_inputs(PIPELINE), [SETTINGS]))
    assert settings["training"].estimator == SETTINGS["estimator"] == "hist_gradient_boosting"
    assert settings["training"].cv_max_rows == int(SETTINGS["cv_max_rows"]) and settings["training"].max_depth == 0
    assert settings["gate"].min_accuracy == float(SETTINGS["min_accuracy"])
    assert settings["gate"].max_overfit_gap == float(SETTINGS["max_overfit_gap"])
    assert set(settings) == {"drift", "features", "split", "training", "gate"}


def test_encoding_study_interval_is_the_corrected_resampled_t_and_its_page_states_each_fit(tmp_path):
    """`make bench-encoding`'s numbers: Nadeau and Bengio's corrected interval (wider than the plain t interval,
    as overlapping folds need), and a page that states the rows, the fits and every seed's paired test."""
    import math

    from scipy import stats

    from benchmarks.encoding_accuracy import corrected_interval, write_page

    differences = [0.01, -0.02, 0.03, 0.0, -0.01]
    mean, low, high = corrected_interval(np.array(differences), train_rows=800, test_rows=200)
    sd = float(np.std(differences, ddof=1))
    half = stats.t.ppf(0.975, 4) * math.sqrt((1 / 5 + 200 / 800) * sd**2)
    assert mean == pytest.approx(0.002)
    assert (low, high) == pytest.approx((0.002 - half, 0.002 + half))
    assert high - low > 2 * stats.t.ppf(0.975, 4) * sd / math.sqrt(5)  # wider than the naive interval

    german = {
        "table": "German credit (bundled sample)",
        "rows": 1000,
        "depth": 10,
        "fits": "20 x 5-fold CV",
        "accuracy": [0.6991, 0.6944],
        "accuracy_difference": (-0.0047, -0.0221, 0.0127),
        "roc_auc": [0.6793, 0.6717],
        "roc_auc_difference": (-0.0075, -0.0225, 0.0074),
    }
    synthetic = {
        "table": "generate_wide (bench table)",
        "rows": 100_000,
        "depth": 0,
        "fits": "2 seeds, one 80/20 split each",
        "runs": [
            {
                "seed": 0,
                "accuracy": [0.77835, 0.7799],
                "roc_auc": [0.80402, 0.80321],
                "discordant": [148, 179],
                "mcnemar_p": 0.097,
            },
            {
                "seed": 1,
                "accuracy": [0.7826, 0.7835],
                "roc_auc": [0.81, 0.81041],
                "discordant": [170, 188],
                "mcnemar_p": 0.369,
            },
        ],
        "accuracy_difference_mean": 0.00122,
        "accuracy_difference_sd": 0.00046,
    }
    page = tmp_path / "encoding.md"
    write_page([german, synthetic], page)
    text = page.read_text()
    assert (
        "| German credit (bundled sample) | 1,000 | 10 | 20 x 5-fold CV | 0.6991 / 0.6944 | -0.47 (-2.21 to +1.27)"
        in text
    )
    assert "| 0.6793 / 0.6717 | -0.75 (-2.25 to +0.74) |" in text
    assert "100,000 rows, 2 seeds, one 80/20 split each (unlimited depth): mean accuracy difference +0.12 pp" in text
    assert "| 0 | 0.77835 / 0.77990 | 0.80402 / 0.80321 | 148 / 179 | 0.097 |" in text
