import json

import joblib
import numpy as np
import pandas as pd
import pytest

from gated_training.config import FeatureSettings, SplitSettings
from gated_training.errors import ConfigError, DataError
from gated_training.features import engineer_features, infer_column_roles, split_dataset
from tests.conftest import synthetic_frame


def run_step(tmp_path, frame, settings=FeatureSettings(), split=SplitSettings(), target="label"):
    dataset = tmp_path / "data.parquet"
    frame.to_parquet(dataset, index=False)
    outs = {name: str(tmp_path / name) for name in ("train.parquet", "test.parquet", "pre.joblib", "meta.json")}
    outcome = engineer_features(str(dataset), target, settings, split, *outs.values())
    return outcome, outs


def test_split_is_stratified_and_deterministic():
    frame = synthetic_frame(500, classes=("a", "b", "c"))
    train, test = split_dataset(frame, "label", SplitSettings(0.2, 7))
    again_train, _ = split_dataset(frame, "label", SplitSettings(0.2, 7))
    pd.testing.assert_frame_equal(train, again_train)
    assert len(test) == 100
    shares = test["label"].value_counts(normalize=True)
    assert np.allclose(shares.sort_index(), frame["label"].value_counts(normalize=True).sort_index(), atol=0.02)


def test_preprocessor_is_fitted_on_the_training_split_only(tmp_path):
    frame = synthetic_frame(400)
    outcome, outs = run_step(tmp_path, frame)
    train = pd.read_parquet(outs["train.parquet"])
    test = pd.read_parquet(outs["test.parquet"])
    preprocessor = joblib.load(outs["pre.joblib"])
    medians = preprocessor.named_steps["columns"].named_transformers_["numeric"].statistics_
    assert medians[1] == pytest.approx(train["x2"].median())
    assert medians[1] != pytest.approx(frame["x2"].median())  # would be equal if fitted on all rows
    assert (outcome.train_rows, outcome.test_rows) == (len(train), len(test)) == (320, 80)
    assert set(train.columns) == set(frame.columns)  # raw rows: the deployed pipeline starts from these


def test_metadata_describes_inputs_outputs_and_categories(tmp_path):
    _, outs = run_step(tmp_path, synthetic_frame(300))
    metadata = json.loads(open(outs["meta.json"]).read())
    roles = {item["name"]: item["role"] for item in metadata["inputs"]}
    assert roles == {"x1": "numeric", "x2": "numeric", "colour": "categorical", "flag": "categorical"}
    assert metadata["categories"]["colour"] == ["blue", "green", "red"]
    assert "categorical__colour_red" in metadata["engineered_features"]
    assert metadata["classes"] == [0, 1] and metadata["rows"] == {"train": 240, "test": 60}


def test_unseen_categories_and_missing_values_are_tolerated(tmp_path):
    _, outs = run_step(tmp_path, synthetic_frame(300))
    preprocessor = joblib.load(outs["pre.joblib"])
    rows = pd.DataFrame({"x1": [0.1, np.nan], "x2": [np.nan, 3.0], "colour": ["purple", None], "flag": [True, False]})
    transformed = preprocessor.transform(rows)
    assert transformed.shape[0] == 2 and np.isfinite(transformed).all()


def test_ordinal_encoding_tolerates_unseen_categories(tmp_path):
    _, outs = run_step(tmp_path, synthetic_frame(300), FeatureSettings(categorical_encoding="ordinal"))
    preprocessor = joblib.load(outs["pre.joblib"])
    rows = pd.DataFrame({"x1": [0.1], "x2": [1.0], "colour": ["purple"], "flag": [True]})
    assert preprocessor.transform(rows)[0, 2] == -1


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (FeatureSettings(), lambda n: n),
        (FeatureSettings(interaction_features=True), lambda n: n + n * (n - 1) // 2),
        (FeatureSettings(polynomial_degree=2), lambda n: n + n * (n + 1) // 2),
        (FeatureSettings(polynomial_degree=2, select_k_best=4), lambda n: 4),
    ],
    ids=["plain", "interactions", "polynomial", "select-k-best"],
)
def test_optional_interactions_polynomials_and_selection(tmp_path, settings, expected):
    plain_features = 7  # x1, x2, three colours, two flags
    outcome, _ = run_step(tmp_path, synthetic_frame(300), settings)
    assert outcome.engineered_features == expected(plain_features)


def test_select_k_best_larger_than_features_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="select_k_best=500: only 7 engineered features exist"):
        run_step(tmp_path, synthetic_frame(200), FeatureSettings(select_k_best=500))


def test_a_class_with_one_row_cannot_be_stratified(tmp_path):
    frame = synthetic_frame(200)
    frame.loc[0, "label"] = 7
    with pytest.raises(DataError, match=r"classes \[7\] have fewer than 2 rows"):
        run_step(tmp_path, frame)


def test_booleans_and_text_are_categorical():
    roles = infer_column_roles(synthetic_frame(50).drop(columns="label"))
    assert roles.numeric == ["x1", "x2"] and roles.categorical == ["colour", "flag"]
