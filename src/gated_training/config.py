"""Typed run configuration, validated once where it enters (CLI or component).

Every error names the parameter, the value and the rule, so a bad run form or ``--set`` is
fixed in one go. Invalid thresholds fail closed: the run fails, nothing is deployed.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from gated_training.errors import ConfigError

ESTIMATORS = ("random_forest", "hist_gradient_boosting")
ENCODINGS = ("onehot", "ordinal")
COMPARISON_METRICS = ("accuracy", "balanced_accuracy", "f1", "roc_auc")
THRESHOLD_RULES = ("point", "lower_bound")
COMPARISON_RULES = ("no_significant_regression", "non_inferiority")
FLIP_ACTIONS = ("warn", "block")
LABEL_SHIFT_ACTIONS = ("block", "warn")
FIRST_RUN_POLICIES = ("deploy_if_thresholds_pass", "block")
DRIFT_ACTIONS = ("block", "warn", "retrain_only")
NEW_COLUMN_POLICIES = ("block", "ignore")
SERVING_MODES = ("Knative", "Standard", "Serverless", "RawDeployment")
# Run-level defaults that no settings class holds (the pipeline's signature reads them from here).
DEFAULT_MIN_QUALITY_SCORE = 0.8  # the data gate, as in the reference design
DEFAULT_MAX_INPUT_MB = 2048.0
DEFAULT_REGISTRY_URI = ".gated-training/registry"
DEFAULT_MODEL_NAME = "tabular-classifier"
DEFAULT_MLFLOW_EXPERIMENT = "gated-training"


SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def check_sha256_parameter(name: str, value: str) -> str:
    """Empty (not pinned) or 64 lowercase hex digits."""
    value = (value or "").strip().lower()
    if value and not SHA256_HEX.match(value):
        raise ConfigError(f"parameter {name}={value!r}: must be empty or a SHA-256 (64 hex digits)")
    return value


def max_input_bytes(max_input_mb: float) -> int:
    if isinstance(max_input_mb, bool) or not isinstance(max_input_mb, (int, float)) or not (
        math.isfinite(max_input_mb) and max_input_mb > 0
    ):
        raise ConfigError(f"parameter max_input_mb={max_input_mb!r}: must be a number > 0")
    return math.ceil(max_input_mb * 2**20)


def require_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"parameter {name}={value!r}: must be a number in [0, 1]")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"parameter {name}={value!r}: must be within [0, 1]")
    return value


def require_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not (
        isinstance(value, float) and value.is_integer()
    ):
        raise ConfigError(f"parameter {name}={value!r}: must be a whole number")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"parameter {name}={value}: must be {bound}")
    return value


def require_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"parameter {name}={value!r}: must be one of {', '.join(choices)}")
    return str(value)


def require_non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"parameter {name}={value!r}: must be a finite number >= 0")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class GateThresholds:
    """The model gate (docs/gate.md). A minimum of 0.0 switches that check off (min_f1, min_roc_auc, ...)."""

    min_accuracy: float = 0.85
    # Imbalance-aware floor: mean recall over the classes (a constant guess scores 1/K whatever the imbalance).
    min_balanced_accuracy: float = 0.55
    min_f1: float = 0.0
    min_roc_auc: float = 0.0
    min_class_recall: float = 0.0  # every class's recall at least this; 0 switches it off
    # The candidate's balanced accuracy must be shown above the prior predictor's (always the majority class).
    beat_prior_predictor: bool = True
    # point: the estimate must reach each absolute threshold; lower_bound: the lower end of its interval must.
    threshold_rule: str = "point"
    max_overfit_gap: float = 0.15
    max_regression: float = 0.01
    comparison_metric: str = "accuracy"
    # no_significant_regression: block a candidate the rows show worse (a point estimate below -max_regression
    # that is noise is a warning); non_inferiority: the interval's lower bound must clear -max_regression.
    comparison_rule: str = "no_significant_regression"
    gate_alpha: float = 0.05  # the tests' significance level; intervals are at 1 - gate_alpha
    # Minimum evidence: a test split (and a comparison) with fewer rows, or fewer of a class, decides nothing.
    min_test_rows: int = 30
    min_test_rows_per_class: int = 5
    first_run_policy: str = "deploy_if_thresholds_pass"
    # PSI between the candidate's and the champion's predictions on the same test split, tolerated
    # unless the candidate is shown better (its interval above 0); 0 switches it off.
    max_prediction_psi: float = 0.2
    # Leakage: any one feature predicting the label this well alone (balanced accuracy) blocks; 0 switches it off.
    max_single_feature_score: float = 0.95
    # Leakage: a pair of columns that predicts the label this well together (and clearly better than either alone).
    max_pair_feature_score: float = 0.95
    # A candidate beating the champion by more than this, with nothing to explain it, blocks; 0 switches it off.
    max_unexplained_gain: float = 0.15
    # The candidate's Brier score may exceed the champion's by at most this; 0 switches the check off.
    max_calibration_regression: float = 0.0
    # Sliced checks: comma-separated columns; each slice with min_slice_rows rows is compared with the champion.
    slice_by: str = ""
    min_slice_rows: int = 30
    min_slice_score: float = 0.0  # a floor on comparison_metric in every slice; 0 switches it off
    # Disagreements between champion and candidate concentrated in one small segment: warn or block.
    segment_flip_action: str = "warn"

    def __post_init__(self) -> None:
        for name in ("min_accuracy", "min_balanced_accuracy", "min_f1", "min_roc_auc", "min_class_recall",
                     "max_overfit_gap", "max_regression", "max_single_feature_score", "max_pair_feature_score",
                     "max_unexplained_gain", "max_calibration_regression", "min_slice_score"):
            object.__setattr__(self, name, require_fraction(name, getattr(self, name)))
        require_choice("comparison_metric", self.comparison_metric, COMPARISON_METRICS)
        require_choice("first_run_policy", self.first_run_policy, FIRST_RUN_POLICIES)
        require_choice("threshold_rule", self.threshold_rule, THRESHOLD_RULES)
        require_choice("comparison_rule", self.comparison_rule, COMPARISON_RULES)
        require_choice("segment_flip_action", self.segment_flip_action, FLIP_ACTIONS)
        object.__setattr__(self, "max_prediction_psi", require_non_negative("max_prediction_psi", self.max_prediction_psi))
        alpha = require_fraction("gate_alpha", self.gate_alpha)
        if not 0 < alpha <= 0.2:
            raise ConfigError(f"parameter gate_alpha={alpha}: must be in (0, 0.2] (0.05 is usual)")
        object.__setattr__(self, "gate_alpha", alpha)
        object.__setattr__(self, "min_test_rows", require_int("min_test_rows", self.min_test_rows, 1))
        object.__setattr__(self, "min_test_rows_per_class",
                           require_int("min_test_rows_per_class", self.min_test_rows_per_class, 1))
        object.__setattr__(self, "min_slice_rows", require_int("min_slice_rows", self.min_slice_rows, 5))
        if not isinstance(self.beat_prior_predictor, bool):
            raise ConfigError(f"parameter beat_prior_predictor={self.beat_prior_predictor!r}: must be true or false")
        if not isinstance(self.slice_by, str):
            raise ConfigError(f"parameter slice_by={self.slice_by!r}: must be a comma-separated string of column names")


@dataclass(frozen=True, kw_only=True)
class DriftPolicy:
    """The drift gate, the schema contract and the no-new-data trigger (docs/drift.md).

    ``drift_action``: ``block`` stops a drifted run before training; ``warn`` reports and goes on;
    ``retrain_only`` trains and evaluates a candidate on the drifted batch but never deploys it.
    """

    drift_action: str = "block"
    drift_psi_threshold: float = 0.2
    drift_max_drifted_share: float = 0.3
    drift_critical_features: str = ""  # comma-separated: any of these drifting drifts the dataset
    force_retrain: bool = False  # train even on the champion's own training data (e.g. new hyperparameters)
    # One feature this far off drifts the batch whatever the share (0 switches each off).
    drift_severe_psi: float = 1.0
    drift_severe_out_of_range: float = 0.1
    # The schema contract: a column the champion was not trained on blocks, or is dropped with a warning.
    new_columns: str = "block"
    # Label shift: a segment whose label shares moved far beyond sampling noise (Holm-corrected tests at
    # drift_alpha, and a class's share moved by at least label_shift_min_difference) blocks, or warns.
    label_shift_action: str = "block"
    label_shift_min_difference: float = 0.2
    # Statistical tests (not pipeline parameters): a feature also drifts when its KS / chi-squared test
    # is significant at drift_alpha with a material effect (KS statistic / Cramér's V at least these).
    drift_alpha: float = 0.01
    drift_min_ks_statistic: float = 0.1
    drift_min_cramers_v: float = 0.1

    def __post_init__(self) -> None:
        require_choice("drift_action", self.drift_action, DRIFT_ACTIONS)
        require_choice("new_columns", self.new_columns, NEW_COLUMN_POLICIES)
        require_choice("label_shift_action", self.label_shift_action, LABEL_SHIFT_ACTIONS)
        shift = require_fraction("label_shift_min_difference", self.label_shift_min_difference)
        if shift == 0:
            raise ConfigError("parameter label_shift_min_difference=0: must be > 0 (0 would flag every segment)")
        object.__setattr__(self, "label_shift_min_difference", shift)
        object.__setattr__(self, "drift_severe_psi", require_non_negative("drift_severe_psi", self.drift_severe_psi))
        object.__setattr__(self, "drift_severe_out_of_range",
                           require_fraction("drift_severe_out_of_range", self.drift_severe_out_of_range))
        psi = require_non_negative("drift_psi_threshold", self.drift_psi_threshold)
        if psi == 0:
            raise ConfigError("parameter drift_psi_threshold=0: must be > 0 (0 would flag every feature)")
        object.__setattr__(self, "drift_psi_threshold", psi)
        share = require_fraction("drift_max_drifted_share", self.drift_max_drifted_share)
        if share == 0:
            raise ConfigError("parameter drift_max_drifted_share=0: must be > 0 (0 would flag every batch)")
        object.__setattr__(self, "drift_max_drifted_share", share)
        if not isinstance(self.force_retrain, bool):
            raise ConfigError(f"parameter force_retrain={self.force_retrain!r}: must be true or false")
        if not isinstance(self.drift_critical_features, str):
            raise ConfigError(f"parameter drift_critical_features={self.drift_critical_features!r}: "
                              "must be a comma-separated string of column names")

    @property
    def critical_features(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.drift_critical_features.split(",") if name.strip())


@dataclass(frozen=True, kw_only=True)
class FeatureSettings:
    """Preprocessing. Interactions, polynomials and SelectKBest are off by default."""

    categorical_encoding: str = "onehot"
    interaction_features: bool = False
    polynomial_degree: int = 1
    select_k_best: int = 0  # 0 keeps every engineered feature
    # Bounded memory on any table: at most this many levels per categorical column (0: no cap),
    # and levels rarer than min_category_frequency training rows are pooled.
    max_categories: int = 50
    min_category_frequency: int = 5

    def __post_init__(self) -> None:
        require_choice("categorical_encoding", self.categorical_encoding, ENCODINGS)
        object.__setattr__(self, "max_categories", require_int("max_categories", self.max_categories, 0, 10_000))
        if self.max_categories == 1:
            raise ConfigError("parameter max_categories=1: must be 0 (no cap) or at least 2")
        object.__setattr__(self, "min_category_frequency",
                           require_int("min_category_frequency", self.min_category_frequency, 0))
        if not isinstance(self.interaction_features, bool):
            raise ConfigError(f"parameter interaction_features={self.interaction_features!r}: must be true or false")
        object.__setattr__(self, "polynomial_degree", require_int("polynomial_degree", self.polynomial_degree, 1, 3))
        object.__setattr__(self, "select_k_best", require_int("select_k_best", self.select_k_best, 0))


@dataclass(frozen=True, kw_only=True)
class SplitSettings:
    """The stable split: a row is a test row when the hash of its features (or of ``split_key``)
    falls below ``test_size``. No seed: ``ModelSettings.random_state`` seeds the folds and the estimator."""

    test_size: float = 0.2
    split_key: str = ""  # a key column to hash instead of the whole row

    def __post_init__(self) -> None:
        if not isinstance(self.split_key, str):
            raise ConfigError(f"parameter split_key={self.split_key!r}: must be a column name or empty")
        test_size = require_fraction("test_size", self.test_size)
        if not 0.05 <= test_size <= 0.5:
            raise ConfigError(f"parameter test_size={test_size}: must be between 0.05 and 0.5")
        object.__setattr__(self, "test_size", test_size)


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    """The estimator. The defaults are the reference design's random forest.

    For ``hist_gradient_boosting``, ``n_estimators`` is its ``max_iter``; ``max_depth=0`` means
    unlimited for both. Above ``cv_max_rows`` training rows, cross-validation runs on a stratified
    sample of that many rows (0: always every row); the final model always sees the whole split.
    """

    estimator: str = "random_forest"
    n_estimators: int = 100
    max_depth: int = 10
    min_samples_split: int = 5
    learning_rate: float = 0.1
    random_state: int = 42
    cv_folds: int = 5
    cv_max_rows: int = 200_000

    def __post_init__(self) -> None:
        require_choice("estimator", self.estimator, ESTIMATORS)
        object.__setattr__(self, "n_estimators", require_int("n_estimators", self.n_estimators, 1, 100_000))
        object.__setattr__(self, "max_depth", require_int("max_depth", self.max_depth, 0))
        object.__setattr__(self, "min_samples_split", require_int("min_samples_split", self.min_samples_split, 2))
        object.__setattr__(self, "random_state", require_int("random_state", self.random_state, 0))
        object.__setattr__(self, "cv_folds", require_int("cv_folds", self.cv_folds, 2, 20))
        object.__setattr__(self, "cv_max_rows", require_int("cv_max_rows", self.cv_max_rows, 0))
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float)) or not (
            math.isfinite(self.learning_rate) and 0 < self.learning_rate <= 1
        ):
            raise ConfigError(f"parameter learning_rate={self.learning_rate!r}: must be in (0, 1]")


@dataclass(frozen=True, kw_only=True)
class ServingSettings:
    """Serving the new champion with KServe (the serve-model step), only when ``serving_namespace`` is set.

    ``serving_mode``: Knative (KServe's Serverless) or Standard (RawDeployment; canaries there need
    KServe >= 0.20). ``canary_traffic_percent``: the new version's share until `gated-training serving
    promote` (100: all traffic at once). ``serving_service_account``: the predictor's service account,
    which reads the registry (empty: the namespace's default)."""

    serving_namespace: str = ""
    serving_mode: str = "Knative"
    canary_traffic_percent: int = 10
    serving_ready_timeout_seconds: int = 600
    serving_service_account: str = ""

    def __post_init__(self) -> None:
        import re

        dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        for name in ("serving_namespace", "serving_service_account"):
            value = getattr(self, name)
            if not isinstance(value, str) or (value and (not dns_label.match(value) or len(value) > 63)):
                raise ConfigError(f"parameter {name}={value!r}: a Kubernetes name (DNS-1123 label) or empty")
        require_choice("serving_mode", self.serving_mode, SERVING_MODES)
        object.__setattr__(self, "canary_traffic_percent",
                           require_int("canary_traffic_percent", self.canary_traffic_percent, 1, 100))
        object.__setattr__(self, "serving_ready_timeout_seconds",
                           require_int("serving_ready_timeout_seconds", self.serving_ready_timeout_seconds, 1, 86_400))


def settings_from(cls: type, params: dict[str, Any]) -> Any:
    """Build ``cls`` from the subset of ``params`` that names its fields."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in params.items() if k in names})


def read_yaml_mapping(path: str | Path, label: str) -> dict[str, Any]:
    """A YAML (or JSON) file holding one mapping; ConfigError names the file and what is wrong."""
    import yaml

    try:
        document = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{label} {path}: no such file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label} {path}: not valid YAML/JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{label} {path}: expected a mapping, not {type(document).__name__}")
    return document


def validate_run_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Validate every typed section of a run's parameters; return them as plain dicts."""
    for required in ("data_uri", "target_column"):
        if not str(params.get(required) or "").strip():
            raise ConfigError(f"parameter {required} is required")
    require_fraction("min_quality_score", params.get("min_quality_score", DEFAULT_MIN_QUALITY_SCORE))
    max_input_bytes(params.get("max_input_mb", DEFAULT_MAX_INPUT_MB))
    check_sha256_parameter("suite_sha256", str(params.get("suite_sha256") or ""))
    from gated_training.registry.store import check_registry_parameters

    check_registry_parameters(str(params.get("registry_uri", DEFAULT_REGISTRY_URI)),
                              str(params.get("model_name", DEFAULT_MODEL_NAME)))
    from gated_training.reports.notify import check_webhook_url

    check_webhook_url(str(params.get("notify_webhook_url") or ""))
    split_params = {"test_size": params.get("test_size", SplitSettings.test_size),
                    "split_key": params.get("split_key", SplitSettings.split_key)}
    return {
        "thresholds": asdict(settings_from(GateThresholds, params)),
        "features": asdict(settings_from(FeatureSettings, params)),
        "split": asdict(SplitSettings(**split_params)),
        "model": asdict(settings_from(ModelSettings, params)),
        "drift": asdict(settings_from(DriftPolicy, params)),
        "serving": asdict(settings_from(ServingSettings, params)),
    }
