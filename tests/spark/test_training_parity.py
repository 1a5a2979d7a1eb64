"""train-model on Spark (xgboost.spark) against the pandas engine (xgboost.train), on splits engineer-features
wrote on Spark as part files: the same cross-validation sample and scores, the same pair-leakage scores, and
with one xgboost.spark worker the same booster bit for bit (the same train and test scores); with two workers
each sketches its own quantiles, and the scores agree within the tolerance stated below. The deployed artifact is
the pandas engine's kind: the fitted preprocessor, then ``BoostedTrees``. Refusals name the parameter."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest

from gated_training.boosted import BoostedTrees
from gated_training.config import FeatureSettings, ModelSettings, SplitSettings
from gated_training.data import synthetic
from gated_training.errors import ConfigError
from gated_training.spark.training import WORKERS_ENV
from gated_training.steps.engineer_features import engineer_features
from gated_training.steps.train_model import train_model
from tests.conftest import SAMPLE_DATA
from tests.spark.test_features_parity import batch_folder, wide_table

pytestmark = pytest.mark.spark

# Two workers against one: each worker's own quantile sketch moves split points a little.
SCORE_TOLERANCE = 0.02

CASES = {
    # The sample: every training row cross-validated (below cv_max_rows).
    "sample": (lambda: pd.read_csv(SAMPLE_DATA), "risk", FeatureSettings(), ModelSettings(estimator="xgboost")),
    # 12,000 rows, cross-validation on a 3,000-row stratified sample, a capped key and a leaking column.
    "wide-sampled-cv": (
        lambda: wide_table(12_000, seed=1),
        synthetic.TARGET,
        FeatureSettings(),
        ModelSettings(estimator="xgboost", n_estimators=40, max_depth=4, cv_folds=3, cv_max_rows=3_000),
    ),
    # Native category codes: xgboost's categorical splits on both engines.
    "native": (
        lambda: wide_table(5_000, seed=2),
        synthetic.TARGET,
        FeatureSettings(categorical_encoding="native"),
        ModelSettings(estimator="xgboost", n_estimators=30, cv_folds=3),
    ),
}


def engineered(spark, tmp_path, frame: pd.DataFrame, target: str, features: FeatureSettings) -> dict[str, str]:
    folder = tmp_path / "features"
    folder.mkdir()
    paths = {name: str(folder / name) for name in ("train", "test", "preprocessor.joblib", "metadata.json")}
    engineer_features(
        dataset_path=batch_folder(spark, tmp_path, frame),
        target=target,
        feature_settings=features,
        split_settings=SplitSettings(),
        train_out=paths["train"],
        test_out=paths["test"],
        preprocessor_out=paths["preprocessor.joblib"],
        metadata_out=paths["metadata.json"],
        engine="spark",
    )
    return paths


def train(engine: str, paths: dict[str, str], target: str, settings: ModelSettings, out) -> dict:
    out.mkdir()
    outcome = train_model(
        train_path=paths["train"],
        test_path=paths["test"],
        preprocessor_path=paths["preprocessor.joblib"],
        feature_metadata_path=paths["metadata.json"],
        target=target,
        settings=settings,
        tracking_uri=f"sqlite:///{out / 'mlflow.db'}",
        experiment="parity",
        data_sha256="a" * 64,
        kfp_run_id="run",
        model_out=str(out / "model.joblib"),
        report_out=str(out / "training.json"),
        importances_out=str(out / "importances.json"),
        engine=engine,
    )
    return {
        "outcome": outcome,
        "model": joblib.load(out / "model.joblib"),
        "importances": json.loads((out / "importances.json").read_text()),
    }


# CI trains the sample on both engines; the native and the wide cases run in make test-slow (make test-all).
@pytest.mark.parametrize("case", [c if c == "sample" else pytest.param(c, marks=pytest.mark.slow) for c in CASES])
def test_one_worker_trains_the_pandas_engines_booster_bit_for_bit(spark, tmp_path, monkeypatch, case):
    make, target, features, settings = CASES[case]
    paths = engineered(spark, tmp_path, make(), target, features)
    monkeypatch.setenv(WORKERS_ENV, "1")
    on = {engine: train(engine, paths, target, settings, tmp_path / engine) for engine in ("pandas", "spark")}
    pandas_outcome, spark_outcome = on["pandas"]["outcome"], on["spark"]["outcome"]
    assert spark_outcome.cv_rows == pandas_outcome.cv_rows
    if case == "wide-sampled-cv":
        assert spark_outcome.cv_rows == 3_000  # the stratified sample, the same rows
    assert spark_outcome.cv_accuracy_mean == pandas_outcome.cv_accuracy_mean
    assert spark_outcome.cv_accuracy_std == pandas_outcome.cv_accuracy_std
    assert spark_outcome.train == pandas_outcome.train and spark_outcome.test == pandas_outcome.test
    assert spark_outcome.pair_feature_scores == pandas_outcome.pair_feature_scores
    assert spark_outcome.pair_scored_rows == pandas_outcome.pair_scored_rows
    models = {engine: on[engine]["model"] for engine in on}
    assert [name for name, _ in models["spark"].steps] == ["preprocess", "model"]
    assert isinstance(models["spark"].named_steps["model"], BoostedTrees)
    assert models["spark"].named_steps["model"].booster_raw_ == models["pandas"].named_steps["model"].booster_raw_
    assert on["spark"]["importances"] == on["pandas"]["importances"]
    rows = pd.read_parquet(paths["test"]).drop(columns=[target])
    assert np.array_equal(models["spark"].predict_proba(rows), models["pandas"].predict_proba(rows))


@pytest.mark.slow  # make test-slow (make test-all), not CI's make test-spark: see tests/spark/conftest.py
def test_two_workers_train_one_booster_within_the_stated_tolerance(spark, tmp_path, monkeypatch):
    make, target, features, settings = CASES["wide-sampled-cv"]
    paths = engineered(spark, tmp_path, make(), target, features)
    monkeypatch.setenv(WORKERS_ENV, "2")
    on = {engine: train(engine, paths, target, settings, tmp_path / engine) for engine in ("pandas", "spark")}
    pandas_outcome, spark_outcome = on["pandas"]["outcome"], on["spark"]["outcome"]
    assert spark_outcome.cv_accuracy_mean == pandas_outcome.cv_accuracy_mean  # the same sample, trained locally
    for side in ("train", "test"):
        for metric, value in getattr(pandas_outcome, side).items():
            assert getattr(spark_outcome, side)[metric] == pytest.approx(value, abs=SCORE_TOLERANCE), (side, metric)
    rows = pd.read_parquet(paths["test"]).drop(columns=[target])
    agreement = (on["spark"]["model"].predict(rows) == on["pandas"]["model"].predict(rows)).mean()
    assert agreement > 0.95


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (ModelSettings(), "parameter estimator=random_forest: engine=spark trains estimator=xgboost"),
        (ModelSettings(estimator="xgboost", cv_max_rows=0), "parameter cv_max_rows=0: engine=spark cross-validates"),
    ],
)
def test_what_spark_does_not_train_is_refused_by_name_before_any_work(tmp_path, settings, words):
    paths = {name: str(tmp_path / name) for name in ("train", "test", "preprocessor.joblib", "metadata.json")}
    with pytest.raises(ConfigError, match=words):
        train("spark", paths, "label", settings, tmp_path / "out")  # no file exists: refused before any read


def test_bad_workers_setting_is_refused(spark, tmp_path, monkeypatch):
    from gated_training.spark.training import training_workers

    for bad in ("0", "two", "-1", "100000"):
        monkeypatch.setenv(WORKERS_ENV, bad)
        with pytest.raises(ConfigError, match=f"{WORKERS_ENV}={bad!r}: a whole number of workers from 1 to 10000"):
            training_workers(spark)
    monkeypatch.delenv(WORKERS_ENV)
    assert training_workers(spark) == 2  # local[2]
