"""evaluate-model on Spark against the pandas engine, on test splits engineer-features wrote on Spark as part files:
every model scores the split in Spark's workers, the driver assembles the same per-row answers, and the gate
writes the same decision, bit for bit: every check, value, interval, p-value, slice and segment, the paired
comparison with the sample's champion on the rows its own split rule held out, and the same words when the
champion cannot score today's columns (a forest's probabilities are summed in tree order on both engines:
``gate.metrics._forest_answers``). The registry is byte-identical after each."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from gated_training.config import FeatureSettings, GateThresholds, ModelSettings
from gated_training.data import synthetic
from gated_training.steps.evaluate_model import evaluate_model
from tests.conftest import SAMPLE_DATA
from tests.registry_helpers import registry_bytes
from tests.spark.test_training_parity import engineered, train

pytestmark = pytest.mark.spark

LENIENT = dict(min_accuracy=0.5, max_overfit_gap=0.5, min_balanced_accuracy=0.5)


def candidate(spark, root, frame: pd.DataFrame, target: str) -> dict[str, str]:
    root.mkdir()
    paths = engineered(spark, root, frame, target, FeatureSettings())
    train("pandas", paths, target, ModelSettings(n_estimators=30, cv_folds=3), root / "trained")
    return {
        **paths,
        "model": str(root / "trained" / "model.joblib"),
        "training": str(root / "trained" / "training.json"),
    }


def evaluate(paths, out, engine: str, target: str, thresholds: GateThresholds, registry) -> tuple[dict, str]:
    out.mkdir(exist_ok=True)
    decision = evaluate_model(
        model_path=paths["model"],
        test_path=paths["test"],
        training_report_path=paths["training"],
        target=target,
        thresholds=thresholds,
        registry_uri=str(registry),
        model_name="tabular-classifier",
        decision_out=str(out / f"{engine}.json"),
        report_out=str(out / f"{engine}.md"),
        feature_metadata_path=paths["metadata.json"],
        engine=engine,
    )
    written = json.loads((out / f"{engine}.json").read_text())
    assert decision.to_json() == written
    return written, (out / f"{engine}.md").read_text()


def both(paths, out, target, thresholds, registry) -> dict[str, tuple[dict, str]]:
    before = registry_bytes(registry)
    results = {engine: evaluate(paths, out, engine, target, thresholds, registry) for engine in ("pandas", "spark")}
    assert registry_bytes(registry) == before
    return results


def test_against_the_samples_champion_both_engines_write_the_same_decision(sample_candidate, sample_champion, tmp_path):
    """Binary labels: DeLong's paired AUC test and McNemar on the rows the champion's split rule held out, slices
    by the champion's segment cuts, segment flips, prediction drift."""
    registry = tmp_path / "registry"
    shutil.copytree(sample_champion.registry, registry)
    thresholds = GateThresholds(**LENIENT, slice_by="housing,age", comparison_metric="roc_auc")
    results = both(sample_candidate, tmp_path / "out", "risk", thresholds, registry)
    (pandas_decision, pandas_report), (spark_decision, spark_report) = results["pandas"], results["spark"]
    assert spark_decision == pandas_decision and spark_report == pandas_report
    comparison = spark_decision["champion"]["comparison"]
    assert comparison["rows"] > 0 and "split rule also held out" in comparison["note"]
    names = {check["name"] for check in spark_decision["checks"]}
    assert {"not_worse_than_champion (roc_auc)", "slices_not_worse_than_champion"} <= names
    compared = next(c for c in spark_decision["checks"] if c["name"].startswith("not_worse_than_champion"))
    assert compared["evidence"]["rows"] == comparison["rows"] and "DeLong" in compared["evidence"]["method"]


def test_a_first_run_with_three_text_labels_decides_alike_with_bootstrap_intervals(spark, tmp_path):
    """Three string labels (macro AUC by bootstrap over rows, per-class recall), slices of a text column, no
    champion: the same decision, report and confusion matrix."""
    frame = synthetic.mixed_frame(2_500, seed=4, classes=("low", "mid", "high"))
    paths = candidate(spark, tmp_path / "c", frame, "label")
    thresholds = GateThresholds(**LENIENT, slice_by="colour")
    results = both(paths, tmp_path / "out", "label", thresholds, tmp_path / "registry")
    assert results["spark"] == results["pandas"]
    decision = results["spark"][0]
    assert decision["champion"] is None and sorted(decision["scores"]["labels"]) == ["high", "low", "mid"]
    assert sum(map(sum, decision["scores"]["confusion_matrix"])) == decision["candidate"]["test_rows"]


def test_a_champion_that_cannot_score_todays_columns_is_reported_in_the_same_words(spark, sample_champion, tmp_path):
    """A batch without a column the champion was trained on: the gate names the column (from the champion's
    schema contract) before it scores anything, in the same words on both engines; a slice over a missing column
    names every column of the split on both engines."""
    registry = tmp_path / "registry"
    shutil.copytree(sample_champion.registry, registry)
    paths = candidate(spark, tmp_path / "c", pd.read_csv(SAMPLE_DATA).drop(columns=["purpose"]), "risk")
    thresholds = GateThresholds(**LENIENT, slice_by="purpose")
    results = both(paths, tmp_path / "out", "risk", thresholds, registry)
    assert results["spark"] == results["pandas"]
    decision = results["spark"][0]
    problem = decision["champion"]["comparison"]["note"]
    assert problem == (
        f"champion {decision['champion']['version']} could not be scored on this test split: it was trained on "
        "column(s) purpose, which this split does not have"
    ), problem
    assert decision["decision"] != "deploy"
    slices = next(c for c in decision["checks"] if c["name"] == "slices")
    assert "slice_by names column(s) purpose" in slices["detail"] and "credit_amount" in slices["detail"]


def test_a_champion_that_fails_inside_a_spark_worker_is_reported_in_its_own_words(spark, sample_champion, tmp_path):
    """Every column is there but one holds text where the champion was trained on numbers: the champion fails
    inside a Spark worker, and its own message (not a JVM trace) is the gate's champion_problem, as on pandas."""
    registry = tmp_path / "registry"
    shutil.copytree(sample_champion.registry, registry)
    frame = pd.read_csv(SAMPLE_DATA).assign(credit_amount="unknown")
    paths = candidate(spark, tmp_path / "c", frame, "risk")
    results = both(paths, tmp_path / "out", "risk", GateThresholds(**LENIENT), registry)
    assert results["spark"] == results["pandas"]
    decision = results["spark"][0]
    problem = decision["champion"]["comparison"]["note"]
    assert problem.startswith(f"champion {decision['champion']['version']} could not be scored on this test split: ")
    assert "unknown" in problem and "Py4J" not in problem and "Traceback" not in problem, problem
    assert decision["decision"] != "deploy"
