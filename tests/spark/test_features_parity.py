"""engineer-features on Spark against pandas, on one batch folder written by Spark in several part files of
different sizes (so the row order both engines read is tested): the same outcome, metadata (classes and their
counts, categories, medians, the split rule, the single-feature leakage scores), the same splits row for row
in the same order, and a preprocessor that transforms the test split to the same numbers bit for bit. The
cases: the sample; a 30,000-row table (its training split beyond the leakage sample's 20,000 rows) with a
capped high-cardinality key (levels pooled as infrequent), integers with gaps and a leaking column; an
imbalanced one; native encoding; and the errors both engines raise alike."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest

from gated_training.config import FeatureSettings, SplitSettings
from gated_training.data import synthetic
from gated_training.errors import ConfigError, DataError
from gated_training.steps.engineer_features import engineer_features
from tests.conftest import SAMPLE_DATA

pytestmark = pytest.mark.spark


def wide_table(rows: int, seed: int = 0) -> pd.DataFrame:
    frame = synthetic.generate_wide(rows, columns=14, seed=seed)
    rng = np.random.default_rng(seed + 7)
    ranks = np.minimum(rng.zipf(1.3, size=rows), 400)  # a key: hundreds of levels, most of them rare
    frame["key"] = np.array([f"k{r:03d}" for r in ranks], dtype=object)
    gaps = rng.integers(0, 9, size=rows).astype(float)
    gaps[rng.random(rows) < 0.03] = np.nan  # integers with gaps: float64 in pandas
    frame["visits"] = gaps
    leak = frame[synthetic.TARGET].astype(int).to_numpy().copy()
    flip = rng.random(rows) < 0.05
    leak[flip] = 1 - leak[flip]
    frame["leak"] = leak  # the label with 5 % noise: a leaking column
    return frame


def imbalanced_table(rows: int = 3_000) -> pd.DataFrame:
    frame = synthetic.mixed_frame(rows, seed=3, classes=("no", "yes"))
    rng = np.random.default_rng(3)
    frame["label"] = np.where(rng.random(rows) < 0.04, "yes", "no")
    return frame


CASES = {
    "sample": (lambda: pd.read_csv(SAMPLE_DATA), "risk", FeatureSettings()),
    "wide-capped-leaking": (lambda: wide_table(30_000), synthetic.TARGET, FeatureSettings()),
    "imbalanced": (imbalanced_table, "label", FeatureSettings(min_category_frequency=0)),
    "native": (lambda: wide_table(8_000, seed=2), synthetic.TARGET, FeatureSettings(categorical_encoding="native")),
    # SelectKBest's ANOVA F from per-class sums in Spark: the same 12 of the engineered features kept
    "select-k-best": (lambda: wide_table(8_000, seed=3), synthetic.TARGET, FeatureSettings(select_k_best=12)),
    # ... after interactions (the selector sees the expanded features), with three text labels
    "select-after-interactions": (
        lambda: synthetic.mixed_frame(3_000, seed=5, classes=("low", "mid", "high")),
        "label",
        FeatureSettings(interaction_features=True, select_k_best=6),
    ),
}
# Spark adds the sums in another order than numpy: the F scores agree to this relative tolerance, and the
# selection (by those scores) exactly.
F_RELATIVE = 1e-9


def batch_folder(spark, tmp_path, frame: pd.DataFrame) -> str:
    """The batch as validate-data on Spark writes it: a folder of part files (here three, of unequal sizes)."""
    folder = tmp_path / "batch"
    first, second = int(0.5 * len(frame)), int(0.2 * len(frame))
    part = np.repeat([0, 1, 2], [first, second, len(frame) - first - second])
    spark.createDataFrame(frame.assign(__part=part)).repartition(3, "__part").drop("__part").write.parquet(str(folder))
    return str(folder)


def run(engine: str, dataset: str, target: str, settings: FeatureSettings, out) -> dict:
    out.mkdir()
    paths = {name: str(out / name) for name in ("train", "test", "preprocessor.joblib", "metadata.json")}
    try:
        outcome = engineer_features(
            dataset_path=dataset,
            target=target,
            feature_settings=settings,
            split_settings=SplitSettings(),
            train_out=paths["train"],
            test_out=paths["test"],
            preprocessor_out=paths["preprocessor.joblib"],
            metadata_out=paths["metadata.json"],
            engine=engine,
        )
    except (DataError, ConfigError) as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"outcome": outcome, "paths": paths, "metadata": json.loads(open(paths["metadata.json"]).read())}


@pytest.mark.parametrize("case", list(CASES))
def test_engineer_features_on_spark_fits_the_pandas_engines_preprocessor_and_splits(spark, tmp_path, case):
    make, target, settings = CASES[case]
    dataset = batch_folder(spark, tmp_path, make())
    on = {engine: run(engine, dataset, target, settings, tmp_path / engine) for engine in ("pandas", "spark")}
    assert on["spark"]["outcome"] == on["pandas"]["outcome"]
    assert on["spark"]["metadata"] == on["pandas"]["metadata"]
    if case == "wide-capped-leaking":
        assert on["spark"]["metadata"]["single_feature_scores"]["leak"] > 0.9  # the leak is seen alike
        assert any(name.endswith("infrequent_sklearn") for name in on["spark"]["metadata"]["engineered_features"])
    splits = {}
    for engine in on:
        for side in ("train", "test"):
            splits[engine, side] = pd.read_parquet(on[engine]["paths"][side])
    for side in ("train", "test"):
        pd.testing.assert_frame_equal(splits["spark", side], splits["pandas", side])
    fitted = {engine: joblib.load(on[engine]["paths"]["preprocessor.joblib"]) for engine in on}
    features = splits["pandas", "test"].drop(columns=[target])
    assert list(fitted["spark"].get_feature_names_out()) == list(fitted["pandas"].get_feature_names_out())
    assert np.array_equal(
        np.asarray(fitted["spark"].transform(features)),
        np.asarray(fitted["pandas"].transform(features)),
        equal_nan=True,
    )
    if settings.select_k_best:
        selectors = {engine: fitted[engine].named_steps["select"] for engine in fitted}
        assert np.array_equal(selectors["spark"].get_support(), selectors["pandas"].get_support())
        assert selectors["spark"].get_support().sum() == settings.select_k_best
        np.testing.assert_allclose(selectors["spark"].scores_, selectors["pandas"].scores_, rtol=F_RELATIVE)
        np.testing.assert_allclose(selectors["spark"].pvalues_, selectors["pandas"].pvalues_, rtol=1e-6, atol=1e-300)


@pytest.mark.parametrize(
    ("frame", "settings", "error", "words"),
    [
        (
            pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "a", "b"]}),
            FeatureSettings(),
            "DataError",
            "have fewer than 2 rows",
        ),
        (
            pd.DataFrame({"x": [1.0, 2.0, 3.0], "z": [0, 1, 0]}),
            FeatureSettings(),
            "DataError",
            "target column 'y' is not",
        ),
        (
            pd.DataFrame({"x": np.arange(40.0), "y": ["a", "b"] * 20}),
            FeatureSettings(select_k_best=50),
            "ConfigError",
            "parameter select_k_best=50: only 1 engineered features exist",
        ),
    ],
)
def test_a_batch_that_cannot_be_split_fails_alike_on_both_engines(spark, tmp_path, frame, settings, error, words):
    dataset = batch_folder(spark, tmp_path, frame)
    on = {engine: run(engine, dataset, "y", settings, tmp_path / engine) for engine in ("pandas", "spark")}
    assert on["spark"]["error"] == error and words in on["spark"]["message"], on["spark"]
    assert on["spark"] == on["pandas"]
