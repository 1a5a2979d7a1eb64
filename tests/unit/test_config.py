import math

import pytest

from gated_training.config import FeatureSettings, GateThresholds, ModelSettings, SplitSettings
from gated_training.errors import ConfigError
from gated_training.kubeflow import validate as validate_run_parameters


def test_defaults_follow_the_reference_design():
    assert GateThresholds().min_accuracy == 0.85
    model = ModelSettings()
    assert (
        model.estimator,
        model.n_estimators,
        model.max_depth,
        model.min_samples_split,
        model.random_state,
        model.cv_folds,
    ) == ("random_forest", 100, 10, 5, 42, 5)
    assert FeatureSettings() == FeatureSettings(
        categorical_encoding="onehot", interaction_features=False, polynomial_degree=1, select_k_best=0
    )  # expansions and selection off


@pytest.mark.parametrize("name", ["min_accuracy", "min_f1", "min_roc_auc", "max_overfit_gap", "max_regression"])
@pytest.mark.parametrize("value", [-0.01, 1.01, math.nan, math.inf, "0.9", None, True])
def test_thresholds_outside_unit_interval_fail_closed(name, value):
    with pytest.raises(ConfigError, match=rf"parameter {name}="):
        GateThresholds(**{name: value})


def test_choices_are_checked():
    with pytest.raises(
        ConfigError, match="comparison_metric='precision': must be one of accuracy, balanced_accuracy, f1, roc_auc"
    ):
        GateThresholds(comparison_metric="precision")
    with pytest.raises(ConfigError, match="first_run_policy"):
        GateThresholds(first_run_policy="yolo")
    with pytest.raises(
        ConfigError, match="estimator='lightgbm': must be one of random_forest, hist_gradient_boosting, xgboost"
    ):
        ModelSettings(estimator="lightgbm")
    with pytest.raises(ConfigError, match="categorical_encoding"):
        FeatureSettings(categorical_encoding="label")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_estimators": 0}, "n_estimators=0: must be between 1 and 100000"),
        ({"cv_folds": 1}, "cv_folds=1: must be between 2 and 20"),
        ({"min_samples_split": 1}, "min_samples_split=1: must be >= 2"),
        ({"max_depth": 2.5}, "max_depth=2.5: must be a whole number"),
        ({"learning_rate": 0}, "learning_rate=0: must be in"),
        ({"cv_max_rows": -1}, "cv_max_rows=-1: must be >= 0"),
    ],
)
def test_model_settings_are_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ModelSettings(**kwargs)


def test_split_and_feature_settings_are_checked():
    with pytest.raises(ConfigError, match="test_size=0.9: must be between 0.05 and 0.5"):
        SplitSettings(test_size=0.9)
    with pytest.raises(ConfigError, match="polynomial_degree=4"):
        FeatureSettings(polynomial_degree=4)
    with pytest.raises(ConfigError, match="select_k_best=-1"):
        FeatureSettings(select_k_best=-1)
    assert ModelSettings(max_depth=3.0).max_depth == 3  # whole floats from the YAML are accepted


def test_validate_run_parameters_checks_every_section():
    valid = {
        "data_uri": "d.csv",
        "target_column": "y",
        "gate": {"min_accuracy": 0.5},
        "training": {"cv_folds": 3},
        "min_quality_score": 0.8,
    }
    checked = validate_run_parameters(valid)
    assert checked["gate"]["min_accuracy"] == 0.5 and checked["training"]["cv_folds"] == 3
    assert checked["gate"]["max_regression"] == GateThresholds.max_regression  # the rest of a group: its defaults
    with pytest.raises(ConfigError, match="parameter target_column is required"):
        validate_run_parameters({**valid, "target_column": " "})
    with pytest.raises(ConfigError, match="min_quality_score=1.5"):
        validate_run_parameters({**valid, "min_quality_score": 1.5})
    with pytest.raises(ConfigError, match="min_accuracy=2.0"):
        validate_run_parameters({**valid, "gate": {"min_accuracy": 2.0}})
    with pytest.raises(ConfigError, match="parameter gate: unknown setting\\(s\\) 'min_acuracy'"):
        validate_run_parameters({**valid, "gate": {"min_acuracy": 0.5}})


def test_validate_run_parameters_checks_the_drift_section_and_the_webhook():
    valid = {
        "data_uri": "d.csv",
        "target_column": "y",
        "drift": {"drift_action": "warn", "drift_critical_features": "a, b"},
    }
    assert validate_run_parameters(valid)["drift"]["drift_action"] == "warn"
    with pytest.raises(ConfigError, match="parameter drift_action='stop': must be one of block, warn, retrain_only"):
        validate_run_parameters({**valid, "drift": {"drift_action": "stop"}})
    with pytest.raises(ConfigError, match="parameter max_prediction_psi=-0.1: must be a finite number >= 0"):
        validate_run_parameters({**valid, "gate": {"max_prediction_psi": -0.1}})
    with pytest.raises(ConfigError, match="notify_webhook_url: 'ftp://h/…' is not an http"):
        validate_run_parameters({**valid, "notify_webhook_url": "ftp://h/secret"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_categories": 0}, "max_categories=0: categorical_encoding=native needs a cap from 2 to 254"),
        ({"max_categories": 300}, "max_categories=300: categorical_encoding=native needs a cap from 2 to 254"),
        ({"interaction_features": True}, "interaction_features and polynomial_degree multiply category codes"),
        ({"polynomial_degree": 2}, "interaction_features and polynomial_degree multiply category codes"),
    ],
)
def test_native_categories_refuse_settings_that_break_them(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        FeatureSettings(categorical_encoding="native", **kwargs)
    FeatureSettings(categorical_encoding="native", max_categories=254, select_k_best=3)


def test_group_settings_builds_each_group_with_its_class_and_refuses_what_is_not_a_group():
    """One table (config.GROUPS) maps the run form's groups to their classes, for the Spark driver's request
    checks and the bench's single process alike."""
    from gated_training.config import GROUPS, DriftPolicy, group_settings

    built = group_settings("training", {"estimator": "xgboost", "max_depth": 3})
    assert isinstance(built, ModelSettings)
    assert (built.estimator, built.max_depth) == ("xgboost", 3)
    assert isinstance(group_settings("drift", {}), DriftPolicy)
    assert group_settings("gate", {"min_accuracy": 0.9}) == GateThresholds(min_accuracy=0.9)
    assert {name: type(group_settings(name, {})) for name in GROUPS} == GROUPS
    with pytest.raises(ConfigError, match="parameter training: unknown setting\\(s\\) 'min_accuracy'"):
        group_settings("training", {"min_accuracy": 0.9})
    with pytest.raises(ConfigError, match="no run form group 'model'; the groups are: gate, drift, features"):
        group_settings("model", {})
