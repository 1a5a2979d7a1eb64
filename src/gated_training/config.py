"""Typed run configuration, validated once where it enters (CLI or component).

Every error names the parameter, the value and the rule, so a bad run form or ``--set`` is
fixed in one go. Invalid thresholds fail closed: the run fails, nothing is deployed.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gated_training.errors import ConfigError

ESTIMATORS = ("random_forest", "hist_gradient_boosting", "xgboost")
ENCODINGS = ("onehot", "ordinal", "native")
# Where the data-heavy steps compute: pandas in the step's pod, or Spark (local[N], or a SparkApplication).
ENGINES = ("pandas", "spark")
NATIVE_MAX_CATEGORIES = 254  # HistGradientBoosting bins a categorical feature into at most 255 bins, one for missing
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


def setting(default: Any, doc: str) -> Any:
    """A settings field with its one-line description: the one place a setting's name, default and meaning
    are written. The pipeline's run form, its descriptions and docs/parameters.md are derived from these."""
    return field(default=default, metadata={"doc": doc})


def describe(cls: type, name: str) -> str:
    """A field's one-line description."""
    return str(next(f.metadata.get("doc", "") for f in fields(cls) if f.name == name))


def check_sha256_parameter(name: str, value: str) -> str:
    """Empty (not pinned) or 64 lowercase hex digits."""
    value = (value or "").strip().lower()
    if value and not SHA256_HEX.match(value):
        raise ConfigError(f"parameter {name}={value!r}: must be empty or a SHA-256 (64 hex digits)")
    return value


def max_input_bytes(max_input_mb: float) -> int:
    if (
        isinstance(max_input_mb, bool)
        or not isinstance(max_input_mb, (int, float))
        or not (math.isfinite(max_input_mb) and max_input_mb > 0)
    ):
        raise ConfigError(f"parameter max_input_mb={max_input_mb!r}: must be a number > 0")
    return math.ceil(max_input_mb * 2**20)


def require_fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"parameter {name}={value!r}: must be a number in [0, 1]")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ConfigError(f"parameter {name}={number!r}: must be within [0, 1]")
    return number


def require_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, float) and value.is_integer()):
        raise ConfigError(f"parameter {name}={value!r}: must be a whole number")
    whole = int(value)
    if whole < minimum or (maximum is not None and whole > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"parameter {name}={whole}: must be {bound}")
    return whole


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

    min_accuracy: float = setting(0.85, "minimum test accuracy, in [0, 1]")
    # Imbalance-aware floor: mean recall over the classes (a constant guess scores 1/K whatever the imbalance).
    min_balanced_accuracy: float = setting(
        0.55,
        "minimum balanced accuracy (mean recall over the classes; a constant guess scores 1/K whatever the "
        "imbalance); 0 switches it off",
    )
    min_f1: float = setting(0.0, "minimum macro F1 on the test split; 0 switches it off")
    min_roc_auc: float = setting(
        0.0, "minimum ROC AUC on the test split (one-vs-rest for multiclass); 0 switches it off"
    )
    min_class_recall: float = setting(0.0, "every class's recall at least this; 0 switches it off")
    # The candidate's balanced accuracy must be shown above the prior predictor's (always the majority class).
    beat_prior_predictor: bool = setting(
        True,
        "the candidate's balanced accuracy must be shown above the prior predictor's (always the training split's "
        "most common class): the paired interval above 0",
    )
    # point: the estimate must reach each absolute threshold; lower_bound: the lower end of its interval must.
    threshold_rule: str = setting(
        "point",
        "point (each absolute threshold against the estimate) or lower_bound (against the lower end of its interval)",
    )
    max_overfit_gap: float = setting(0.15, "maximum train accuracy minus test accuracy")
    max_regression: float = setting(
        0.01,
        "the margin below the champion on the same test rows: non_inferiority needs the interval's lower bound above "
        "minus this; no_significant_regression warns when the estimate falls below it without significance",
    )
    comparison_metric: str = setting(
        "accuracy", "the metric compared with the champion: accuracy, balanced_accuracy, f1 or roc_auc"
    )
    # no_significant_regression: block a candidate the rows show worse (a point estimate below -max_regression
    # that is noise is a warning); non_inferiority: the interval's lower bound must clear -max_regression.
    comparison_rule: str = setting(
        "no_significant_regression",
        "no_significant_regression (block a candidate the rows show worse, p < gate_alpha) or non_inferiority (the "
        "difference's interval lower bound at least -max_regression)",
    )
    gate_alpha: float = setting(
        0.05, "the model gate's significance level, in (0, 0.2]; intervals are at 1 - gate_alpha"
    )
    # Minimum evidence: a test split (and a comparison) with fewer rows, or fewer of a class, decides nothing.
    min_test_rows: int = setting(
        30, "minimum test (and comparison) rows for any decision; fewer blocks and says how many are needed"
    )
    min_test_rows_per_class: int = setting(5, "minimum test rows of every class for any decision")
    first_run_policy: str = setting(
        "deploy_if_thresholds_pass", "with no champion yet: deploy_if_thresholds_pass, or block"
    )
    # PSI between the candidate's and the champion's predictions on the same test split, tolerated
    # unless the candidate is shown better (its interval above 0); 0 switches it off.
    max_prediction_psi: float = setting(
        0.2,
        "maximum PSI between the candidate's and the champion's predictions on the same rows, unless the candidate is "
        "shown better; 0 switches it off",
    )
    # Leakage: any one feature predicting the label this well alone (balanced accuracy) blocks; 0 switches it off.
    max_single_feature_score: float = setting(
        0.95,
        "leakage: block when one feature alone predicts the label (balanced test accuracy) above this; 0 switches it "
        "off",
    )
    # Leakage: a pair of columns that predicts the label this well together (and clearly better than either alone).
    max_pair_feature_score: float = setting(
        0.95,
        "leakage: block when a pair of the model's most important columns predicts the label above this together and "
        "clearly beyond what they add up to; 0 switches it off",
    )
    # A candidate beating the champion by more than this, with nothing to explain it, blocks; 0 switches it off.
    max_unexplained_gain: float = setting(
        0.15,
        "leakage: block a candidate that beats the champion by more than this (not when the batch drifted); 0 "
        "switches it off",
    )
    # The candidate's Brier score may exceed the champion's by at most this; 0 switches the check off.
    max_calibration_regression: float = setting(
        0.0, "the candidate's Brier score may exceed the champion's by at most this, paired per row; 0 switches it off"
    )
    # Sliced checks: comma-separated columns; each slice with min_slice_rows rows is compared with the champion.
    slice_by: str = setting(
        "",
        "comma-separated columns; every slice with min_slice_rows comparison rows is compared with the champion "
        "(Holm-corrected). Empty: no slices",
    )
    min_slice_rows: int = setting(30, "slices with fewer comparison rows are not judged")
    min_slice_score: float = setting(0.0, "a floor on comparison_metric in every judged slice; 0 switches it off")
    # Disagreements between champion and candidate concentrated in one small segment: warn or block.
    segment_flip_action: str = setting(
        "warn", "disagreements between champion and candidate concentrated in one small segment: warn or block"
    )

    def __post_init__(self) -> None:
        for name in (
            "min_accuracy",
            "min_balanced_accuracy",
            "min_f1",
            "min_roc_auc",
            "min_class_recall",
            "max_overfit_gap",
            "max_regression",
            "max_single_feature_score",
            "max_pair_feature_score",
            "max_unexplained_gain",
            "max_calibration_regression",
            "min_slice_score",
        ):
            object.__setattr__(self, name, require_fraction(name, getattr(self, name)))
        require_choice("comparison_metric", self.comparison_metric, COMPARISON_METRICS)
        require_choice("first_run_policy", self.first_run_policy, FIRST_RUN_POLICIES)
        require_choice("threshold_rule", self.threshold_rule, THRESHOLD_RULES)
        require_choice("comparison_rule", self.comparison_rule, COMPARISON_RULES)
        require_choice("segment_flip_action", self.segment_flip_action, FLIP_ACTIONS)
        object.__setattr__(
            self, "max_prediction_psi", require_non_negative("max_prediction_psi", self.max_prediction_psi)
        )
        alpha = require_fraction("gate_alpha", self.gate_alpha)
        if not 0 < alpha <= 0.2:
            raise ConfigError(f"parameter gate_alpha={alpha}: must be in (0, 0.2] (0.05 is usual)")
        object.__setattr__(self, "gate_alpha", alpha)
        object.__setattr__(self, "min_test_rows", require_int("min_test_rows", self.min_test_rows, 1))
        object.__setattr__(
            self, "min_test_rows_per_class", require_int("min_test_rows_per_class", self.min_test_rows_per_class, 1)
        )
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

    drift_action: str = setting(
        "block",
        "what a drifted batch does: block (stop before training), warn (report, go on) or retrain_only (train and "
        "evaluate, never deploy)",
    )
    drift_psi_threshold: float = setting(
        0.2,
        "a feature drifts when its PSI exceeds this (or its KS / chi-squared test is significant with a material "
        "effect)",
    )
    drift_max_drifted_share: float = setting(0.3, "the batch drifts when this share of features drifted, in (0, 1]")
    drift_critical_features: str = setting("", "comma-separated columns; any of them drifting drifts the batch")
    force_retrain: bool = setting(
        False,
        "train even when the batch is the champion's own training data (otherwise the run is skipped: no_new_data)",
    )
    # One feature this far off drifts the batch whatever the share (0 switches each off).
    drift_severe_psi: float = setting(
        1.0, "one feature with a PSI at or above this drifts the batch whatever the share; 0 switches it off"
    )
    drift_severe_out_of_range: float = setting(
        0.1,
        "one feature with this share of values outside the champion's range (or unseen categories) drifts the batch; "
        "0 switches it off",
    )
    # The schema contract: a column the champion was not trained on blocks, or is dropped with a warning.
    new_columns: str = setting(
        "block",
        "the schema contract: block (a column the champion was not trained on blocks) or ignore (dropped, with a "
        "warning); a missing feature always blocks",
    )
    # Label shift: a segment whose label shares moved far beyond sampling noise (Holm-corrected tests at
    # drift_alpha, and a class's share moved by at least label_shift_min_difference) blocks, or warns.
    label_shift_action: str = setting(
        "block",
        "a segment whose label shares moved far beyond sampling noise since the champion's training rows: block or "
        "warn",
    )
    label_shift_min_difference: float = setting(
        0.2,
        "label shift: a class's share must move by at least this (and the Holm-corrected test be significant) to count",
    )
    # Statistical tests (not pipeline parameters): a feature also drifts when its KS / chi-squared test
    # is significant at drift_alpha with a material effect (KS statistic / Cramér's V at least these).
    drift_alpha: float = setting(0.01, "the drift and label-shift tests' significance level")
    drift_min_ks_statistic: float = setting(0.1, "a numeric feature's KS test counts only with at least this statistic")
    drift_min_cramers_v: float = setting(
        0.1, "a categorical feature's chi-squared test counts only with at least this Cramér's V"
    )

    def __post_init__(self) -> None:
        require_choice("drift_action", self.drift_action, DRIFT_ACTIONS)
        require_choice("new_columns", self.new_columns, NEW_COLUMN_POLICIES)
        require_choice("label_shift_action", self.label_shift_action, LABEL_SHIFT_ACTIONS)
        shift = require_fraction("label_shift_min_difference", self.label_shift_min_difference)
        if shift == 0:
            raise ConfigError("parameter label_shift_min_difference=0: must be > 0 (0 would flag every segment)")
        object.__setattr__(self, "label_shift_min_difference", shift)
        object.__setattr__(self, "drift_severe_psi", require_non_negative("drift_severe_psi", self.drift_severe_psi))
        object.__setattr__(
            self,
            "drift_severe_out_of_range",
            require_fraction("drift_severe_out_of_range", self.drift_severe_out_of_range),
        )
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
            raise ConfigError(
                f"parameter drift_critical_features={self.drift_critical_features!r}: "
                "must be a comma-separated string of column names"
            )

    @property
    def critical_features(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.drift_critical_features.split(",") if name.strip())


@dataclass(frozen=True, kw_only=True)
class FeatureSettings:
    """Preprocessing. Interactions, polynomials and SelectKBest are off by default."""

    categorical_encoding: str = setting(
        "onehot",
        "onehot, ordinal or native (ordinal codes that hist_gradient_boosting splits as categories: a third of "
        "the width); all tolerate categories unseen in training",
    )
    interaction_features: bool = setting(False, "add pairwise interaction features")
    polynomial_degree: int = setting(1, "polynomial feature degree; 1 switches polynomial features off")
    select_k_best: int = setting(0, "keep the k best engineered features (ANOVA F); 0 keeps all")
    # Bounded memory on any table: at most this many levels per categorical column (0: no cap),
    # and levels rarer than min_category_frequency training rows are pooled.
    max_categories: int = setting(
        50, "at most this many encoded levels per categorical column (the rest pooled as infrequent); 0: no cap"
    )
    min_category_frequency: int = setting(
        5, "levels seen in fewer training rows are pooled as infrequent; 0 keeps every level"
    )

    def __post_init__(self) -> None:
        require_choice("categorical_encoding", self.categorical_encoding, ENCODINGS)
        object.__setattr__(self, "max_categories", require_int("max_categories", self.max_categories, 0, 10_000))
        if self.max_categories == 1:
            raise ConfigError("parameter max_categories=1: must be 0 (no cap) or at least 2")
        object.__setattr__(
            self, "min_category_frequency", require_int("min_category_frequency", self.min_category_frequency, 0)
        )
        if not isinstance(self.interaction_features, bool):
            raise ConfigError(f"parameter interaction_features={self.interaction_features!r}: must be true or false")
        object.__setattr__(self, "polynomial_degree", require_int("polynomial_degree", self.polynomial_degree, 1, 3))
        object.__setattr__(self, "select_k_best", require_int("select_k_best", self.select_k_best, 0))
        if self.categorical_encoding == "native":
            if not 2 <= self.max_categories <= NATIVE_MAX_CATEGORIES:
                raise ConfigError(
                    f"parameter max_categories={self.max_categories}: categorical_encoding=native needs a cap from 2 "
                    f"to {NATIVE_MAX_CATEGORIES} (HistGradientBoosting splits at most that many levels per column)"
                )
            if self.interaction_features or self.polynomial_degree > 1:
                raise ConfigError(
                    "parameter categorical_encoding=native: interaction_features and polynomial_degree multiply "
                    "category codes, which then mean nothing; use onehot with them"
                )


@dataclass(frozen=True, kw_only=True)
class SplitSettings:
    """The stable split: a row is a test row when the hash of its features (or of ``split_key``)
    falls below ``test_size``. No seed: ``ModelSettings.random_state`` seeds the folds and the estimator."""

    test_size: float = setting(
        0.2,
        "share of rows held out for testing, in [0.05, 0.5]; a row is a test row when the hash of its features (or of "
        "split_key) falls below it, in every run",
    )
    split_key: str = setting(
        "",
        "a key column to hash for the split instead of the whole row (e.g. a customer id). Empty: the row's features",
    )

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
    unlimited for both. ``xgboost`` (``boosted.BoostedTrees``: XGBoost's hist booster, the learner engine=spark
    trains with ``xgboost.spark``) boosts ``n_estimators`` rounds; its ``max_depth=0`` is XGBoost's default of 6.
    Above ``cv_max_rows`` training rows, cross-validation runs on a stratified sample of that many rows
    (0: always every row); the final model always sees the whole split.
    """

    estimator: str = setting(
        "random_forest", "random_forest, hist_gradient_boosting or xgboost (the one engine=spark trains)"
    )
    n_estimators: int = setting(100, "trees (random_forest) or boosting iterations (hist_gradient_boosting, xgboost)")
    max_depth: int = setting(10, "maximum tree depth; 0 means unlimited (xgboost: its default, 6)")
    min_samples_split: int = setting(5, "random_forest only: minimum rows to split a node")
    learning_rate: float = setting(0.1, "hist_gradient_boosting and xgboost only, in (0, 1]")
    random_state: int = setting(42, "seed for the folds and the estimator (the split is by hash, not by seed)")
    cv_folds: int = setting(5, "stratified folds for cross-validation on the training split")
    cv_max_rows: int = setting(
        200_000,
        "above this many training rows, cross-validation runs on a stratified sample of this size; 0 always uses "
        "every row",
    )

    def __post_init__(self) -> None:
        require_choice("estimator", self.estimator, ESTIMATORS)
        object.__setattr__(self, "n_estimators", require_int("n_estimators", self.n_estimators, 1, 100_000))
        object.__setattr__(self, "max_depth", require_int("max_depth", self.max_depth, 0))
        object.__setattr__(self, "min_samples_split", require_int("min_samples_split", self.min_samples_split, 2))
        object.__setattr__(self, "random_state", require_int("random_state", self.random_state, 0))
        object.__setattr__(self, "cv_folds", require_int("cv_folds", self.cv_folds, 2, 20))
        object.__setattr__(self, "cv_max_rows", require_int("cv_max_rows", self.cv_max_rows, 0))
        if (
            isinstance(self.learning_rate, bool)
            or not isinstance(self.learning_rate, (int, float))
            or not (math.isfinite(self.learning_rate) and 0 < self.learning_rate <= 1)
        ):
            raise ConfigError(f"parameter learning_rate={self.learning_rate!r}: must be in (0, 1]")


def check_spark_training(settings: ModelSettings) -> None:
    """What engine=spark trains: estimator=xgboost (xgboost.spark), cross-validated on a sample the driver holds.
    Checked by the run form (``kubeflow.parameters.validate``) and again by train-model."""
    if settings.estimator != "xgboost":
        raise ConfigError(
            f"parameter estimator={settings.estimator}: engine=spark trains estimator=xgboost (xgboost.spark, the "
            "same booster the pandas engine trains); set estimator=xgboost or engine=pandas"
        )
    if not settings.cv_max_rows:
        raise ConfigError(
            "parameter cv_max_rows=0: engine=spark cross-validates on a stratified sample the driver holds; "
            "set cv_max_rows above 0 (200000 by default) or engine=pandas"
        )


@dataclass(frozen=True, kw_only=True)
class ServingSettings:
    """Serving the new champion with KServe (the serve-model step), only when ``serving_namespace`` is set.

    ``serving_mode``: Knative (KServe's Serverless) or Standard (RawDeployment; canaries there need
    KServe >= 0.20). ``canary_traffic_percent``: the new version's share until `gated-training serving
    promote` (100: all traffic at once). ``serving_service_account``: the predictor's service account,
    which reads the registry (empty: the namespace's default)."""

    serving_namespace: str = setting(
        "", "serve the new champion with KServe in this namespace (serve-model). Empty: no serving"
    )
    serving_mode: str = setting(
        "Knative",
        "KServe deployment mode: Knative (Serverless) or Standard (RawDeployment; canaries need KServe 0.20+)",
    )
    canary_traffic_percent: int = setting(
        10, "the new version's share of the traffic as a canary, 1-100 (100 rolls out at once)"
    )
    serving_ready_timeout_seconds: int = setting(
        600, "how long the new generation has to become Ready before its canary is aborted and the champion restored"
    )
    serving_service_account: str = setting(
        "",
        "the serving pods' service account (reads the gs:// registry; the prediction-log sink writes with it). "
        "Empty: the namespace default",
    )
    prediction_log_uri: str = setting(
        "",
        "gs:// prefix for the prediction log: serve-model turns KServe's payload logger on and runs the sink that "
        "writes every call there (monitoring reads it). Empty: no prediction log",
    )
    prediction_log_headers: str = setting(
        "",
        "comma-separated request headers kept with each logged call (KServe's metadataHeaders), e.g. X-Request-Id",
    )
    canary_analysis_windows: int = setting(
        3,
        "monitoring windows in a row (none overlapping) that must find the canary healthy before it gets all the "
        "traffic; a window with evidence that it is worse aborts it. 0: judged and reported, traffic moved by hand",
    )
    canary_min_calls: int = setting(100, "fewest calls each of canary and stable must answer in a window to judge it")
    canary_max_error_rate_increase: float = setting(
        0.01, "canary − stable refusal rate above which (and significantly above 0) the canary is worse"
    )
    canary_max_latency_ratio: float = setting(
        1.25, "canary p95 answer time above this × the stable p95 makes the canary worse (read from Prometheus)"
    )

    def __post_init__(self) -> None:
        from gated_training.kubernetes_names import is_dns1123_label

        for name in ("serving_namespace", "serving_service_account"):
            value = getattr(self, name)
            if not isinstance(value, str) or (value and not is_dns1123_label(value)):
                raise ConfigError(f"parameter {name}={value!r}: a Kubernetes name (DNS-1123 label) or empty")
        require_choice("serving_mode", self.serving_mode, SERVING_MODES)
        if not isinstance(self.prediction_log_uri, str) or (
            self.prediction_log_uri and not self.prediction_log_uri.startswith("gs://")
        ):
            raise ConfigError(
                f"parameter prediction_log_uri={self.prediction_log_uri!r}: a gs://bucket/prefix the sink can write "
                "from the cluster, or empty"
            )
        if not isinstance(self.prediction_log_headers, str) or any(
            not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}", name) for name in self.metadata_headers
        ):
            raise ConfigError(
                f"parameter prediction_log_headers={self.prediction_log_headers!r}: comma-separated HTTP header names"
            )
        object.__setattr__(
            self, "canary_traffic_percent", require_int("canary_traffic_percent", self.canary_traffic_percent, 1, 100)
        )
        object.__setattr__(
            self,
            "serving_ready_timeout_seconds",
            require_int("serving_ready_timeout_seconds", self.serving_ready_timeout_seconds, 1, 86_400),
        )
        object.__setattr__(
            self,
            "canary_analysis_windows",
            require_int("canary_analysis_windows", self.canary_analysis_windows, 0, 100),
        )
        object.__setattr__(self, "canary_min_calls", require_int("canary_min_calls", self.canary_min_calls, 1))
        object.__setattr__(
            self,
            "canary_max_error_rate_increase",
            require_fraction("canary_max_error_rate_increase", self.canary_max_error_rate_increase),
        )
        ratio = require_non_negative("canary_max_latency_ratio", self.canary_max_latency_ratio)
        if ratio < 1:
            raise ConfigError(f"parameter canary_max_latency_ratio={ratio!r}: at least 1 (the stable p95 itself)")
        object.__setattr__(self, "canary_max_latency_ratio", ratio)

    @property
    def metadata_headers(self) -> tuple[str, ...]:
        """The header names as KServe's agent compares them: Go's canonical spelling (``x-request-id`` →
        ``X-Request-Id``); the agent matches names exactly, so another spelling would never match."""
        from gated_training.kubernetes_names import go_header_name

        names = str(self.prediction_log_headers) if isinstance(self.prediction_log_headers, str) else ""
        return tuple(go_header_name(name.strip()) for name in names.split(",") if name.strip())


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """What a run reads and writes: the data, its suite, the registry, MLflow and the webhook (flat in the run form)."""

    data_uri: str = setting(
        "data/german_credit.csv",
        "the incoming batch, CSV or Parquet: a path (inside the image on a cluster) or gs://bucket/key",
    )
    target_column: str = setting("risk", "the label column; string or integer labels, two classes or more")
    suite_uri: str = setting(
        "",
        "Great Expectations suite JSON (path or gs://). Empty: <data name>.expectations.json "
        "beside the data. Only allowlisted expectations load; row conditions only in GX's "
        "structured or great_expectations form",
    )
    suite_sha256: str = setting(
        "",
        "pin the suite: a run whose suite has another SHA-256 is blocked without running it. "
        "Empty: not pinned (the digest is recorded in the manifest)",
    )
    max_input_mb: float = setting(
        DEFAULT_MAX_INPUT_MB,
        "largest data file accepted, in MiB (also once decompressed); inputs must be regular files or gs:// objects",
    )
    engine: str = setting(
        "pandas",
        "where validate-data and check-drift compute: pandas (the batch in the step's pod) or spark (read, typed, "
        "fingerprinted, validated and compared with the champion's profile in Spark: the same checks, counts and "
        "decisions; needs pyspark and Java: make spark-venv). The later steps run on pandas (docs/scaling.md)",
    )
    min_quality_score: float = setting(
        DEFAULT_MIN_QUALITY_SCORE,
        "data gate: minimum share of passed expectations, in [0, 1]; critical failures block regardless",
    )
    registry_uri: str = setting(
        DEFAULT_REGISTRY_URI, "model registry root: a folder or gs://bucket/prefix (gs:// on a cluster)"
    )
    model_name: str = setting(DEFAULT_MODEL_NAME, "name of the model in the registry and in MLflow's model registry")
    mlflow_tracking_uri: str = setting(
        "", "MLflow tracking URI. Empty: MLFLOW_TRACKING_URI, else sqlite:///.gated-training/mlflow.db"
    )
    mlflow_experiment: str = setting(DEFAULT_MLFLOW_EXPERIMENT, "MLflow experiment name")
    pipeline_version: str = setting(
        "", "the pipeline version this run executes, recorded in the manifest; submit and schedule set it"
    )
    notify_webhook_url: str = setting(
        "",
        "Slack-compatible webhook posted when a run ends blocked, skipped or failed. "
        "Empty: GATED_TRAINING_WEBHOOK_URL (a secret), else none",
    )
    retrain_ticket: str = setting(
        "",
        "set by the monitoring pipeline on the retrains it starts: where this run writes how it ended. Empty: none",
    )


MONITOR_ACTIONS = ("retrain", "alert")


@dataclass(frozen=True, kw_only=True)
class MonitoringSettings:
    """What a monitoring run reads from the prediction log and how it decides (docs/monitoring.md).

    Each run reads the calls of one window (``window_hours`` before ``window_end``) per served version, checks
    them against the version's own contract (its suite without the label's expectations, its features, its
    reference profile, the predictions its gate recorded), joins the labels that arrived within
    ``label_delay_hours`` of their call, and ends ``ok``, ``warn``, ``alert``, ``retrain``, ``no_traffic`` or
    ``no_labels_yet``. A retrain runs the training pipeline, every gate included, on the window's labelled calls
    (or ``retrain_data_uri``)."""

    window_hours: int = setting(24, "the window a run reads: the calls logged in the last N hours before window_end")
    performance_window_hours: int = setting(
        168, "realized performance is measured on the labelled calls of the last N hours (labels come late)"
    )
    label_delay_hours: int = setting(
        72, "a label counts when it arrives within N hours of its call; older calls without one lower label coverage"
    )
    label_key_header: str = setting(
        "", "the request header whose value labels are keyed by (in prediction_log_headers). Empty: the call's Ce-Id"
    )
    min_rows: int = setting(100, "fewest calls of a version for the contract and drift verdicts (fewer: reported)")
    min_labelled_rows: int = setting(100, "fewest labelled calls of a version for a realized-performance verdict")
    min_label_coverage: float = setting(
        0.5, "labelled share of the calls old enough to be labelled, below which the run warns"
    )
    max_accuracy_drop: float = setting(
        0.05,
        "accuracy below the gate's test accuracy by more than this, with the drop significant (95%), acts "
        "(on_performance_drop); a larger drop within noise warns",
    )
    max_calibration_error: float = setting(
        0.05,
        "the accuracy estimated from served probabilities is trusted only when the gate measured an expected "
        "calibration error at most this",
    )
    min_calibration_rows: int = setting(200, "... on at least this many test rows")
    prediction_psi_threshold: float = setting(
        0.2, "PSI of the predicted classes against the gate's own test predictions above which the run alerts"
    )
    on_drift: str = setting("retrain", "what drift of the champion's live inputs does: retrain or alert")
    on_performance_drop: str = setting("retrain", "what a significant drop of realized accuracy does: retrain or alert")
    retrain_cooldown_hours: int = setting(
        72, "after a retrain that deployed nothing, no new retrain for N hours (the run alerts, naming it)"
    )
    retrain_timeout_hours: int = setting(
        24, "a retrain still without an outcome after N hours is reported as lost and no longer holds the next"
    )
    retrain_data_uri: str = setting(
        "", "the table a retrain trains on. Empty: the window's labelled calls, written under the prediction log"
    )
    max_window_rows: int = setting(2_000_000, "calls read per window at most; a larger window fails naming the limit")
    prometheus_url: str = setting(
        "",
        "Prometheus' HTTP API (http://prometheus.monitoring:9090): a canary's error rate and p95 latency are read "
        "there. Empty: the canary is judged on the logs and labels alone",
    )

    def __post_init__(self) -> None:
        for name, low, high in (
            ("window_hours", 1, 24 * 90),
            ("performance_window_hours", 1, 24 * 365),
            ("label_delay_hours", 0, 24 * 365),
            ("min_rows", 1, None),
            ("min_labelled_rows", 1, None),
            ("min_calibration_rows", 1, None),
            ("retrain_cooldown_hours", 0, 24 * 365),
            ("retrain_timeout_hours", 1, 24 * 30),
            ("max_window_rows", 1, 100_000_000),
        ):
            object.__setattr__(self, name, require_int(name, getattr(self, name), low, high))
        for name in ("min_label_coverage", "max_accuracy_drop", "max_calibration_error"):
            object.__setattr__(self, name, require_fraction(name, getattr(self, name)))
        object.__setattr__(
            self,
            "prediction_psi_threshold",
            require_non_negative("prediction_psi_threshold", self.prediction_psi_threshold),
        )
        require_choice("on_drift", self.on_drift, MONITOR_ACTIONS)
        require_choice("on_performance_drop", self.on_performance_drop, MONITOR_ACTIONS)
        if not isinstance(self.label_key_header, str) or (
            self.label_key_header and not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}", self.label_key_header)
        ):
            raise ConfigError(f"parameter label_key_header={self.label_key_header!r}: an HTTP header name, or empty")
        if not isinstance(self.retrain_data_uri, str):
            raise ConfigError(f"parameter retrain_data_uri={self.retrain_data_uri!r}: a path or gs:// URI, or empty")
        if not isinstance(self.prometheus_url, str) or (
            self.prometheus_url
            and (not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", self.prometheus_url) or "@" in self.prometheus_url)
        ):
            raise ConfigError(
                f"parameter prometheus_url={self.prometheus_url!r}: an http(s) URL without credentials, or empty"
            )


@dataclass(frozen=True, kw_only=True)
class MonitoringRunSettings:
    """What a monitoring run reads and writes (flat in the monitoring pipeline's run form)."""

    prediction_log_uri: str = setting(
        ".gated-training/prediction-log", "the prediction log the sink writes: a folder or gs://bucket/prefix"
    )
    labels_uri: str = setting(
        "",
        "the label tables: a folder or gs:// prefix of CSV/Parquet files with request_id, label, event_time "
        "(and row, for batch requests). Empty: no labels; realized performance is not measured",
    )
    window_end: str = setting(
        "", "the end of the window, ISO 8601 UTC (2026-12-04T18:00:00Z). Empty: the time the run starts"
    )
    registry_uri: str = setting(DEFAULT_REGISTRY_URI, "model registry root: a folder or gs://bucket/prefix")
    model_name: str = setting(DEFAULT_MODEL_NAME, "name of the model in the registry")
    mlflow_tracking_uri: str = setting(
        "",
        "MLflow tracking URI for the window's metrics. Empty: MLFLOW_TRACKING_URI, else sqlite:///.gated-training/mlflow.db",
    )
    mlflow_experiment: str = setting("gated-training-monitoring", "MLflow experiment of the monitoring runs")
    notify_webhook_url: str = setting(
        "", "Slack-compatible webhook posted on alert and retrain. Empty: GATED_TRAINING_WEBHOOK_URL, else none"
    )


# The run form's groups: one JSON object per settings class, any subset of its keys (docs/parameters.md).
GROUPS: dict[str, type] = {}


def _groups() -> dict[str, type]:
    return {
        "gate": GateThresholds,
        "drift": DriftPolicy,
        "features": FeatureSettings,
        "split": SplitSettings,
        "training": ModelSettings,
        "serving": ServingSettings,
        "monitoring": MonitoringSettings,
    }


def group_of(name: str) -> str | None:
    """The group a setting's flat name belongs to (``min_accuracy`` → ``gate``), or None."""
    return next((group for group, cls in GROUPS.items() if name in {f.name for f in fields(cls)}), None)


def group_defaults(cls: type) -> dict[str, Any]:
    """Every setting of a group with its default: the run form's default for the group."""
    return asdict(cls())


def from_group(cls: type, values: Any, group: str) -> Any:
    """Build ``cls`` from a run form group: a mapping of any of its settings (the rest take their
    defaults); a name it does not know, or anything but a mapping, is a ConfigError naming it."""
    if not isinstance(values, dict):
        raise ConfigError(f"parameter {group}: expected a JSON object of settings, not {type(values).__name__}")
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"parameter {group}: unknown setting(s) {', '.join(map(repr, unknown))}; "
            f"{group}'s settings are: {', '.join(names)}"
        )
    return cls(**values)


def group_settings(group: str, values: Any) -> Any:
    """The settings of the run form's group ``group`` (its class in ``GROUPS``) from ``values``, as
    :func:`from_group` builds them; a group that is not the run form's is a ConfigError."""
    if group not in GROUPS:
        raise ConfigError(f"no run form group {group!r}; the groups are: {', '.join(GROUPS)}")
    return from_group(GROUPS[group], values, group)


def field_kind(cls: type, name: str) -> str:
    """``bool``, ``int``, ``float`` or ``str``: how a setting given as text is read."""
    annotation = next(f.type for f in fields(cls) if f.name == name)
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return next((kind for kind in ("bool", "int", "float") if text == kind), "str")


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


GROUPS.update(_groups())


@dataclass(frozen=True)
class RunForm:
    """A pipeline's run form: its run-level settings (flat) and the groups it takes (one JSON object each)."""

    name: str
    run: type
    groups: tuple[str, ...]

    def group_classes(self) -> dict[str, type]:
        return {group: GROUPS[group] for group in self.groups}


TRAINING_GROUPS = ("gate", "drift", "features", "split", "training", "serving")
TRAINING_FORM = RunForm("training", RunSettings, TRAINING_GROUPS)
# The monitoring pipeline's retrain is the training pipeline, nested: it takes the training groups too.
MONITORING_FORM = RunForm("monitoring", MonitoringRunSettings, ("monitoring", *TRAINING_GROUPS))
FORMS = {form.name: form for form in (TRAINING_FORM, MONITORING_FORM)}
