import json

import joblib
import numpy as np
import pandas as pd
import pytest

from gated_training.config import FeatureSettings, SplitSettings
from gated_training.errors import ConfigError, DataError
from gated_training.steps.engineer_features import engineer_features, infer_column_roles, split_dataset
from tests.conftest import synthetic_frame


def run_step(tmp_path, frame, settings=FeatureSettings(), split=SplitSettings(), target="label"):
    dataset = tmp_path / "data.parquet"
    frame.to_parquet(dataset, index=False)
    outs = {name: str(tmp_path / name) for name in ("train.parquet", "test.parquet", "pre.joblib", "meta.json")}
    outcome = engineer_features(
        dataset_path=str(dataset),
        target=target,
        feature_settings=settings,
        split_settings=split,
        train_out=outs["train.parquet"],
        test_out=outs["test.parquet"],
        preprocessor_out=outs["pre.joblib"],
        metadata_out=outs["meta.json"],
    )
    return outcome, outs


def row_keys(frame):
    return set(map(tuple, frame.drop(columns=["label"]).astype(str).to_numpy()))


def test_the_split_is_stable_a_row_keeps_its_side_whatever_else_is_in_the_batch():
    frame = synthetic_frame(2000, classes=("a", "b", "c"))
    train, test, rule = split_dataset(frame, "label", SplitSettings(test_size=0.2))
    assert abs(len(test) - 400) < 60 and rule.method == "content-hash-v1" and rule.key == ""
    assert rule.columns == ["colour", "flag", "x1", "x2"]  # every feature, never the label
    shares = test["label"].value_counts(normalize=True).sort_index()
    assert np.allclose(shares, frame["label"].value_counts(normalize=True).sort_index(), atol=0.05)
    # A shuffled and grown batch (an appended table), Parquet-typed ints: the same rows, the same sides.
    grown = pd.concat([frame, synthetic_frame(500, seed=9, classes=("a", "b", "c"))]).sample(frac=1, random_state=1)
    train2, test2, _ = split_dataset(grown, "label", SplitSettings(test_size=0.2))
    assert row_keys(test) <= row_keys(test2) and not (row_keys(test) & row_keys(train2))
    assert row_keys(train) <= row_keys(train2)
    # A corrected label does not move its row.
    relabelled = frame.assign(label=frame["label"].map({"a": "b", "b": "c", "c": "a"}))
    _, test3, _ = split_dataset(relabelled, "label", SplitSettings(test_size=0.2))
    assert row_keys(test3) == row_keys(test)


def test_a_key_column_splits_by_key_and_every_class_needs_training_rows():
    frame = synthetic_frame(1000).assign(customer=lambda f: [f"c{i // 2}" for i in range(len(f))])  # two rows a key
    train, test, rule = split_dataset(frame, "label", SplitSettings(split_key="customer"))
    assert rule.columns == ["customer"] and not set(train["customer"]) & set(test["customer"])
    with pytest.raises(DataError, match="split_key='nope': no such column"):
        split_dataset(frame, "label", SplitSettings(split_key="nope"))
    with pytest.raises(DataError, match="is the target column"):
        split_dataset(frame, "label", SplitSettings(split_key="label"))
    tiny = synthetic_frame(12).assign(label=[0] * 10 + [1] * 2)
    # A test split short of a class trains: the model gate's minimum evidence blocks it, saying how many rows.
    train, test, _ = split_dataset(tiny, "label", SplitSettings(test_size=0.05))
    assert set(train["label"]) == {0, 1} and len(test) < 3
    # A class the training split lacks cannot be learnt: that fails, naming it. Keys chosen so that both
    # rows of class 1 hash into the test side.
    from gated_training.data.split import rule_for, unit_positions

    keys = pd.DataFrame({"key": [f"k{i}" for i in range(200)], "label": 0})
    positions = unit_positions(keys, rule_for(keys, "label", 0.5, "key"))
    test_keys, train_keys = keys["key"][positions < 0.5].tolist(), keys["key"][positions >= 0.5].tolist()
    keyed = tiny.assign(key=train_keys[:10] + test_keys[:2])
    with pytest.raises(DataError, match=r"the training split has no rows of class\(es\) \['1'\]"):
        split_dataset(keyed, "label", SplitSettings(test_size=0.5, split_key="key"))


def test_preprocessor_is_fitted_on_the_training_split_only(tmp_path):
    frame = synthetic_frame(400)
    outcome, outs = run_step(tmp_path, frame)
    train = pd.read_parquet(outs["train.parquet"])
    test = pd.read_parquet(outs["test.parquet"])
    preprocessor = joblib.load(outs["pre.joblib"])
    medians = preprocessor.named_steps["columns"].named_transformers_["numeric"].statistics_
    assert medians[1] == pytest.approx(train["x2"].median())
    assert medians[1] != pytest.approx(frame["x2"].median())  # would be equal if fitted on all rows
    assert (outcome.train_rows, outcome.test_rows) == (len(train), len(test)) and len(train) + len(test) == 400
    assert set(train.columns) == set(frame.columns)  # raw rows: the deployed pipeline starts from these


def test_metadata_describes_inputs_outputs_and_categories(tmp_path):
    _, outs = run_step(tmp_path, synthetic_frame(300))
    metadata = json.loads(open(outs["meta.json"]).read())
    roles = {item["name"]: item["role"] for item in metadata["inputs"]}
    assert roles == {"x1": "numeric", "x2": "numeric", "colour": "categorical", "flag": "categorical"}
    assert metadata["categories"]["colour"] == ["blue", "green", "red"]
    assert "categorical__colour_red" in metadata["engineered_features"]
    assert metadata["classes"] == [0, 1] and sum(metadata["rows"].values()) == 300
    assert metadata["split"] == {
        "method": "content-hash-v1",
        "test_size": 0.2,
        "key": "",
        "columns": ["colour", "flag", "x1", "x2"],
    }
    assert set(metadata["single_feature_scores"]) == {"x1", "x2", "colour", "flag"}
    assert all(0 <= score <= 1 for score in metadata["single_feature_scores"].values())


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


def test_boolean_only_and_high_cardinality_columns_are_encoded(tmp_path):
    """Booleans never reach an imputer (it refuses them); a key column is capped, the others are not."""
    frame = synthetic_frame(400).drop(columns=["colour"])  # numbers and one boolean flag
    frame["account"] = [f"A{i:04d}" for i in range(len(frame))]
    _, outs = run_step(tmp_path, frame, settings=FeatureSettings(max_categories=10))
    metadata = json.loads(open(outs["meta.json"]).read())
    capped = {item["name"] for item in metadata["inputs"] if item.get("capped")}
    assert capped == {"account"}
    names = metadata["engineered_features"]
    assert [n for n in names if n.startswith("capped__account")] == ["capped__account_infrequent_sklearn"]
    assert {"flags__flag_False", "flags__flag_True"} <= set(names)


def test_one_hot_columns_are_built_in_float32_and_the_output_is_the_same_float64(tmp_path):
    """The encoder's own dense matrix is float32 (half the memory while fitting); stacked beside the numbers the
    output is float64 with the very values a float64 encoder gives, so the model does not change."""
    from sklearn.base import clone

    frame = synthetic_frame(300)
    _, outs = run_step(tmp_path, frame, FeatureSettings())
    fitted = joblib.load(outs["pre.joblib"])
    rows = frame.drop(columns="label")
    encoders = [
        t.named_steps["encode"] if hasattr(t, "named_steps") else t
        for name, t, _ in fitted.named_steps["columns"].transformers_
        if name not in ("numeric", "remainder")
    ]
    assert encoders and all(encoder.dtype == np.float32 for encoder in encoders)
    reference = clone(fitted)
    for name, transformer, _ in reference.named_steps["columns"].transformers:
        if name != "numeric":
            (transformer.named_steps["encode"] if hasattr(transformer, "named_steps") else transformer).set_params(
                dtype=np.float64
            )
    reference.fit(pd.read_parquet(outs["train.parquet"]).drop(columns="label"))  # fitted as the step fitted
    ours = fitted.transform(rows)
    assert ours.dtype == np.float64 and (ours == reference.transform(rows)).all()


def _statistics_cases():
    """Frames whose fitted preprocessor the statistics fit must reproduce byte for byte."""
    rng = np.random.default_rng(11)
    rows = 3_000
    wide = synthetic_frame(rows, classes=("a", "b", "c"))
    wide["key"] = np.array([f"k{r:03d}" for r in np.minimum(rng.zipf(1.4, size=rows), 300)], dtype=object)
    wide.loc[rng.random(rows) < 0.05, "key"] = None  # a capped column with missing values: filled, then pooled
    wide["visits"] = np.where(rng.random(rows) < 0.1, np.nan, rng.integers(0, 7, size=rows).astype(float))
    wide["small"] = rng.normal(size=rows).astype(np.float32)  # float32 beside float64: the imputer's dtype
    wide["count"] = rng.integers(-5, 5, size=rows)  # int64: no missing value
    wide["empty"] = np.nan  # every value missing: the imputer drops it
    wide.loc[rng.random(rows) < 0.04, "colour"] = None
    even = synthetic_frame(200).iloc[:200]  # an even count of values: the median is the mean of two middles
    tie = pd.DataFrame(
        {"x1": [1.0, 2.0, 3.0, 4.0] * 25, "colour": ["b", "a"] * 50, "label": ["p", "q", "q", "p"] * 25}
    )  # a tie between the two most frequent levels: the smaller one is imputed
    return {
        "wide-onehot": (wide, FeatureSettings(max_categories=20)),
        "wide-native": (wide, FeatureSettings(categorical_encoding="native", max_categories=20)),
        "wide-ordinal-uncapped": (wide, FeatureSettings(categorical_encoding="ordinal", max_categories=0)),
        "select-k-best": (wide, FeatureSettings(max_categories=20, select_k_best=9)),
        "interactions": (synthetic_frame(600), FeatureSettings(interaction_features=True)),
        "polynomials-select": (synthetic_frame(600), FeatureSettings(polynomial_degree=2, select_k_best=5)),
        "even-count": (even, FeatureSettings()),
        "tie": (tie, FeatureSettings()),
        # not fully described by statistics: fitted on the rows (the same object either way)
        "categorical-dtype": (synthetic_frame(500).astype({"colour": "category"}), FeatureSettings()),
        "nullable-integers": (
            synthetic_frame(500).assign(n=pd.array([1, None, 3, 4, 5] * 100, "Int64")),
            FeatureSettings(),
        ),
        "integer-objects": (
            synthetic_frame(500).assign(m=np.array([1, 2, 3, 2, 2] * 100, dtype=object)),
            FeatureSettings(),
        ),
    }


@pytest.mark.parametrize("case", list(_statistics_cases()))
def test_the_preprocessor_fitted_from_column_statistics_is_the_one_a_fit_on_every_row_gives(case):
    """engineer-features fits from each column's statistics (no engineered matrix is built to be dropped): the
    pickled preprocessor is byte for byte the one ``Pipeline.fit`` on the rows gives, and so is its output."""
    import pickle

    from gated_training.data import summarisable
    from gated_training.steps.engineer_features import build_preprocessor, fit_preprocessor

    frame, settings = _statistics_cases()[case]
    features, labels = frame.drop(columns="label"), frame["label"]
    roles = infer_column_roles(features, settings.max_categories)
    expected = build_preprocessor(roles, settings).fit(features, labels)
    fitted = fit_preprocessor(build_preprocessor(roles, settings), roles, features, labels)
    assert summarisable(features) == (case not in ("categorical-dtype", "nullable-integers", "integer-objects"))
    assert pickle.dumps(fitted) == pickle.dumps(expected)
    assert np.array_equal(fitted.transform(features), expected.transform(features), equal_nan=True)
    if case == "wide-onehot":
        assert "capped__key_infrequent_sklearn" in fitted.get_feature_names_out()


def test_the_split_moves_the_batch_a_column_at_a_time_into_the_rows_a_mask_selects():
    """engineer-features' split consumes the batch (each column freed as it moves): the splits are exactly the
    rows boolean indexing selects, in order, dtypes kept, each with a fresh index."""
    from gated_training.data import in_test_split

    frame = synthetic_frame(2_000, classes=("a", "b", "c")).assign(small=lambda f: f["x1"].astype(np.float32))
    original = frame.copy()
    train, test, rule = split_dataset(frame, "label", SplitSettings(test_size=0.25), consume=True)
    assert frame.shape[1] == 0  # consumed
    in_test = in_test_split(original, rule)
    pd.testing.assert_frame_equal(train, original[~in_test].reset_index(drop=True))
    pd.testing.assert_frame_equal(test, original[in_test].reset_index(drop=True))
