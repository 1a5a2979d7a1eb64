import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from gated_training.config import FeatureSettings, ModelSettings
from gated_training.data import synthetic
from gated_training.gate import importance
from gated_training.steps import engineer_features as features
from gated_training.steps import train_model as training


def fitted_model(frame: pd.DataFrame, settings: FeatureSettings, estimator: str = "hist_gradient_boosting") -> Pipeline:
    x, y = frame.drop(columns=synthetic.TARGET), frame[synthetic.TARGET]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the all-missing column's imputer warning
        preprocessor = features.build_preprocessor(features.infer_column_roles(x), settings).fit(x, y)
        model = training.build_estimator(ModelSettings(estimator=estimator, n_estimators=20, max_depth=0))
        model.fit(preprocessor.transform(x), y)
    return Pipeline([("preprocess", preprocessor), ("model", model)])


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    frame = synthetic.generate_wide(1500, 14, seed=5)
    frame["num_1"] = np.nan  # all missing: the imputer drops it, so it has no output columns
    return frame


@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_the_fast_path_gives_exactly_sklearns_importances(table, encoding):
    model = fitted_model(table, FeatureSettings(categorical_encoding=encoding))
    sample = table.drop(columns=synthetic.TARGET).sample(600, random_state=1)
    labels = table[synthetic.TARGET].loc[sample.index]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = permutation_importance(
            model, sample, labels, n_repeats=importance.N_REPEATS, random_state=42, scoring="accuracy"
        ).importances_mean
        assert importance.input_column_blocks(model.named_steps["preprocess"], list(sample.columns)) is not None
        actual = importance.permutation_importances(model, sample, labels, 42)
    np.testing.assert_array_equal(actual, expected)
    assert actual[list(sample.columns).index("num_1")] == 0 and actual.max() > 0.01


def test_blocks_follow_the_one_hot_width_of_each_categorical_column():
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, np.nan, 4.0],
            "colour": ["red", "blue", "red", "green"],
            "flag": [True, False, True, True],
            synthetic.TARGET: [0, 1, 0, 1],
        }
    )
    x = frame.drop(columns=synthetic.TARGET)
    roles = features.infer_column_roles(x)
    preprocessor = features.build_preprocessor(roles, FeatureSettings()).fit(x)
    blocks = importance.input_column_blocks(preprocessor, ["x", "colour", "flag"])
    assert [block.tolist() for block in blocks] == [[0], [1, 2, 3], [4, 5]]
    # colour has more levels than max_categories=2: capped, every level rarer than 5 rows pooled into one column.
    capped_roles = features.infer_column_roles(x, max_categories=2)
    assert capped_roles.capped == ["colour"]
    pooled = features.build_preprocessor(capped_roles, FeatureSettings(max_categories=2)).fit(x)
    assert [block.tolist() for block in importance.input_column_blocks(pooled, ["x", "colour", "flag"])] == [
        [0],
        [3],
        [1, 2],
    ]  # output order: numeric, uncapped (flag), capped (colour)
    capped = features.build_preprocessor(capped_roles, FeatureSettings(max_categories=2, min_category_frequency=0)).fit(
        x
    )
    assert [block.tolist() for block in importance.input_column_blocks(capped, ["x", "colour", "flag"])] == [
        [0],
        [3, 4],
        [1, 2],
    ]  # red, then blue and green pooled


@pytest.mark.parametrize("settings", [FeatureSettings(interaction_features=True), FeatureSettings(select_k_best=5)])
def test_expanded_or_selected_features_fall_back_to_permuting_raw_rows(table, settings):
    model = fitted_model(table, settings)
    sample = table.drop(columns=synthetic.TARGET).sample(300, random_state=2)
    labels = table[synthetic.TARGET].loc[sample.index]
    assert importance.input_column_blocks(model.named_steps["preprocess"], list(sample.columns)) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = permutation_importance(
            model, sample, labels, n_repeats=importance.N_REPEATS, random_state=7, scoring="accuracy"
        ).importances_mean
        np.testing.assert_array_equal(importance.permutation_importances(model, sample, labels, 7), expected)
