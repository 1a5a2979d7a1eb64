"""validate → drift → features → train → evaluate → deploy (→ serve), gated by one dsl.If per gate on its string output.

Made for every KFP backend from 2.2 to 2.17 and for the fewest pods a run can start: each gate
step writes the run's summary (and notifies) itself when the run stops at it, so a gate needs
one condition and no report branch; each step posts its own failure before it re-raises, so no
exit handler (``PipelineTaskFinalStatus`` needs backend 2.14) is needed; no task retry policies
(ignored before 2.5, and inside branches before 2.14): network retries happen inside the steps.
On the deploy path a run starts 17 pods (19 when it serves) (a driver per DAG, a driver and an executor per task).
"""

import os

from kfp import dsl

from components.check_drift import check_drift
from components.deploy_model import deploy_model
from components.serve_model import serve_model
from components.engineer_features import engineer_features
from components.evaluate_model import evaluate_model
from components.train_model import train_model
from components.validate_data import validate_data
from gated_training.config import (DEFAULT_MAX_INPUT_MB, DEFAULT_MIN_QUALITY_SCORE, DEFAULT_MLFLOW_EXPERIMENT,
                                   DEFAULT_MODEL_NAME, DEFAULT_REGISTRY_URI, DriftPolicy, FeatureSettings, GateThresholds,
                                   ModelSettings, ServingSettings, SplitSettings)
from gated_training.decisions import DataGate, DeployGate, DriftGate, ModelGate
from pipelines.cluster import ClusterSettings, configure_step

PIPELINE_NAME = "gated-training"
# Compile-time cluster options (secrets, resources) from the environment; see pipelines/cluster.py.
CLUSTER = ClusterSettings.from_env(os.environ)


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Tabular classification: GX data gate, drift gate against the champion's reference profile, "
    "MLflow-tracked training, model gate against thresholds and the champion, then an immutable registry deploy.",
)
def training_pipeline(
    data_uri: str = "data/german_credit.csv",
    target_column: str = "risk",
    suite_uri: str = "",
    suite_sha256: str = "",
    max_input_mb: float = DEFAULT_MAX_INPUT_MB,
    min_quality_score: float = DEFAULT_MIN_QUALITY_SCORE,
    min_accuracy: float = GateThresholds.min_accuracy,
    min_balanced_accuracy: float = GateThresholds.min_balanced_accuracy,
    min_f1: float = GateThresholds.min_f1,
    min_roc_auc: float = GateThresholds.min_roc_auc,
    min_class_recall: float = GateThresholds.min_class_recall,
    beat_prior_predictor: bool = GateThresholds.beat_prior_predictor,
    threshold_rule: str = GateThresholds.threshold_rule,
    max_overfit_gap: float = GateThresholds.max_overfit_gap,
    max_regression: float = GateThresholds.max_regression,
    comparison_metric: str = GateThresholds.comparison_metric,
    comparison_rule: str = GateThresholds.comparison_rule,
    gate_alpha: float = GateThresholds.gate_alpha,
    min_test_rows: int = GateThresholds.min_test_rows,
    min_test_rows_per_class: int = GateThresholds.min_test_rows_per_class,
    first_run_policy: str = GateThresholds.first_run_policy,
    max_prediction_psi: float = GateThresholds.max_prediction_psi,
    max_single_feature_score: float = GateThresholds.max_single_feature_score,
    max_pair_feature_score: float = GateThresholds.max_pair_feature_score,
    max_unexplained_gain: float = GateThresholds.max_unexplained_gain,
    max_calibration_regression: float = GateThresholds.max_calibration_regression,
    slice_by: str = GateThresholds.slice_by,
    min_slice_rows: int = GateThresholds.min_slice_rows,
    min_slice_score: float = GateThresholds.min_slice_score,
    segment_flip_action: str = GateThresholds.segment_flip_action,
    drift_action: str = DriftPolicy.drift_action,
    drift_psi_threshold: float = DriftPolicy.drift_psi_threshold,
    drift_max_drifted_share: float = DriftPolicy.drift_max_drifted_share,
    drift_critical_features: str = DriftPolicy.drift_critical_features,
    force_retrain: bool = DriftPolicy.force_retrain,
    drift_severe_psi: float = DriftPolicy.drift_severe_psi,
    drift_severe_out_of_range: float = DriftPolicy.drift_severe_out_of_range,
    new_columns: str = DriftPolicy.new_columns,
    label_shift_action: str = DriftPolicy.label_shift_action,
    label_shift_min_difference: float = DriftPolicy.label_shift_min_difference,
    test_size: float = SplitSettings.test_size,
    random_state: int = ModelSettings.random_state,
    split_key: str = SplitSettings.split_key,
    categorical_encoding: str = FeatureSettings.categorical_encoding,
    interaction_features: bool = FeatureSettings.interaction_features,
    polynomial_degree: int = FeatureSettings.polynomial_degree,
    select_k_best: int = FeatureSettings.select_k_best,
    max_categories: int = FeatureSettings.max_categories,
    min_category_frequency: int = FeatureSettings.min_category_frequency,
    estimator: str = ModelSettings.estimator,
    n_estimators: int = ModelSettings.n_estimators,
    max_depth: int = ModelSettings.max_depth,
    min_samples_split: int = ModelSettings.min_samples_split,
    learning_rate: float = ModelSettings.learning_rate,
    cv_folds: int = ModelSettings.cv_folds,
    cv_max_rows: int = ModelSettings.cv_max_rows,
    mlflow_tracking_uri: str = "",
    mlflow_experiment: str = DEFAULT_MLFLOW_EXPERIMENT,
    registry_uri: str = DEFAULT_REGISTRY_URI,
    model_name: str = DEFAULT_MODEL_NAME,
    pipeline_version: str = "",
    notify_webhook_url: str = "",
    serving_namespace: str = ServingSettings.serving_namespace,
    serving_mode: str = ServingSettings.serving_mode,
    canary_traffic_percent: int = ServingSettings.canary_traffic_percent,
    serving_ready_timeout_seconds: int = ServingSettings.serving_ready_timeout_seconds,
    serving_service_account: str = ServingSettings.serving_service_account,
):
    """Train a classifier and deploy it only when the data gate and the model gate pass.

    Args:
        data_uri: The incoming batch, CSV or Parquet: a path (inside the image on a cluster) or gs://bucket/key.
        target_column: The label column. String or integer labels, two classes or more.
        suite_uri: Great Expectations suite JSON (path or gs://). Empty: <data name>.expectations.json beside the data. Only allowlisted expectation types and arguments load; row conditions only in GX's structured or great_expectations form (never pandas/python).
        suite_sha256: Pin the suite: a run whose suite has another SHA-256 is blocked without running it. Empty: not pinned (the digest is still recorded in the manifest).
        max_input_mb: Largest data file accepted, in MiB (also once decompressed); inputs must be regular files or gs:// objects.
        min_quality_score: Data gate: minimum share of passed expectations, in [0, 1]. Critical failures block regardless.
        min_accuracy: Model gate: minimum test accuracy, in [0, 1].
        min_balanced_accuracy: Model gate: minimum balanced accuracy (mean recall over the classes; a constant guess scores 1/K whatever the imbalance); 0 switches the check off.
        min_f1: Model gate: minimum macro F1 on the test split; 0 switches the check off.
        min_roc_auc: Model gate: minimum ROC AUC on the test split; 0 switches the check off.
        min_class_recall: Model gate: every class's recall at least this; 0 switches the check off.
        beat_prior_predictor: Model gate: the candidate's balanced accuracy must be shown above the prior predictor's (always the training split's most common class), its interval above 0.
        threshold_rule: How absolute thresholds are judged: point (the estimate must reach them) or lower_bound (the lower end of its interval must).
        max_overfit_gap: Model gate: maximum train accuracy minus test accuracy.
        max_regression: Model gate: the margin below the champion on the same test rows: non_inferiority requires the interval's lower bound above minus this; no_significant_regression warns when the estimate falls below it without significance.
        comparison_metric: Metric compared with the champion: accuracy, balanced_accuracy, f1 or roc_auc.
        comparison_rule: no_significant_regression (block a candidate the rows show worse than the champion, p < gate_alpha) or non_inferiority (the difference's interval lower bound at least -max_regression).
        gate_alpha: Significance level of the model gate's tests; intervals are at 1 - gate_alpha.
        min_test_rows: Minimum test rows (and comparison rows) for any decision; fewer blocks the run and says how many are needed.
        min_test_rows_per_class: Minimum test rows of every class for any decision.
        first_run_policy: With no champion yet: deploy_if_thresholds_pass, or block.
        max_prediction_psi: Model gate: maximum PSI between the candidate's and the champion's predictions on the test split, unless the candidate is shown better (its interval above 0); 0 switches the check off.
        max_single_feature_score: Model gate (leakage): block when any one feature alone predicts the label with a balanced test accuracy above this; 0 switches the check off.
        max_pair_feature_score: Model gate (leakage): block when a pair of the most important columns predicts the label above this together while neither does alone; 0 switches the check off.
        max_unexplained_gain: Model gate (leakage): block a candidate that beats the champion by more than this on the comparison metric; 0 switches the check off.
        max_calibration_regression: Model gate: the candidate's Brier score may exceed the champion's by at most this; 0 switches the check off.
        slice_by: Model gate: comma-separated columns; each slice with min_slice_rows rows is compared with the champion (Holm-corrected). Empty: no slices.
        min_slice_rows: Slices with fewer comparison rows are not judged.
        min_slice_score: Floor on comparison_metric in every judged slice; 0 switches it off.
        segment_flip_action: Disagreements between champion and candidate concentrated in one small segment: warn or block.
        drift_action: What a drifted batch does: block (stop before training), warn (report, go on), or retrain_only (train and evaluate, never deploy).
        drift_psi_threshold: Drift gate: a feature drifts when its PSI exceeds this (or its KS / chi-squared test is significant with a material effect size).
        drift_max_drifted_share: Drift gate: the batch drifts when this share of features drifted, in (0, 1].
        drift_critical_features: Drift gate: comma-separated columns; any of them drifting drifts the batch.
        force_retrain: Train even when the batch is the champion's own training data (otherwise the run is skipped: no_new_data).
        drift_severe_psi: Drift gate: one feature with a PSI at or above this drifts the batch whatever the share; 0 switches it off.
        drift_severe_out_of_range: Drift gate: one feature with this share of values outside the champion's training range (or unseen categories) drifts the batch; 0 switches it off.
        new_columns: Schema contract against the champion's features: block (a new column blocks the run) or ignore (new columns are dropped, with a warning). A missing feature always blocks.
        label_shift_action: A segment whose label shares moved far beyond sampling noise since the champion's training rows: block or warn.
        label_shift_min_difference: Label shift: a class's share must move by at least this (and the Holm-corrected test be significant) to count.
        test_size: Share of rows held out for testing, in [0.05, 0.5]. The split is stable: a row is a test row when the hash of its features (or of split_key) falls below test_size, in every run.
        random_state: Seed for the folds and the estimator (the split is by hash, not by seed).
        split_key: A key column to hash for the split instead of the whole row (e.g. a customer id). Empty: the row's features.
        categorical_encoding: onehot or ordinal; both tolerate categories unseen in training.
        interaction_features: Add pairwise interaction features.
        polynomial_degree: Polynomial feature degree; 1 switches polynomial features off.
        select_k_best: Keep the k best engineered features (ANOVA F); 0 keeps all.
        max_categories: At most this many encoded levels per categorical column (the rest pooled as infrequent), bounding memory for ID-like columns; 0: no cap.
        min_category_frequency: Levels seen in fewer training rows are pooled as infrequent; 0 keeps every level.
        estimator: random_forest or hist_gradient_boosting.
        n_estimators: Trees (random_forest) or boosting iterations (hist_gradient_boosting).
        max_depth: Maximum tree depth; 0 means unlimited.
        min_samples_split: random_forest only: minimum rows to split a node.
        learning_rate: hist_gradient_boosting only.
        cv_folds: Stratified folds for cross-validation on the training split.
        cv_max_rows: Above this many training rows, cross-validation runs on a stratified sample of this size (recorded as cv_rows); 0 always uses every row. The final model is always fitted on the whole training split.
        mlflow_tracking_uri: MLflow tracking URI. Empty: MLFLOW_TRACKING_URI, else sqlite:///.gated-training/mlflow.db.
        mlflow_experiment: MLflow experiment name.
        registry_uri: Model registry root: a folder or gs://bucket/prefix. Use gs:// on a cluster.
        model_name: Name of the model in the registry and in MLflow's model registry.
        pipeline_version: The pipeline version this run executes, recorded in the registry manifest. `gated-training submit` and `schedule` set it; leave it empty in the UI unless you want to record one.
        notify_webhook_url: Slack-compatible webhook posted when a run ends blocked, skipped or failed (a failing step posts once). Empty: the GATED_TRAINING_WEBHOOK_URL environment variable (WEBHOOK_SECRET at compile time), else no notifications.
        serving_namespace: Serve the new champion with KServe in this namespace (serve-model, after deploy-model). Empty: no serving.
        serving_mode: KServe deployment mode: Knative (Serverless) or Standard (RawDeployment; canaries need KServe 0.20+).
        canary_traffic_percent: Share of traffic the new version gets as a canary (1-100; 100 rolls out at once). `gated-training serving promote` moves it to 100.
        serving_ready_timeout_seconds: How long the new InferenceService generation has to become Ready before its canary is aborted and the champion restored.
        serving_service_account: Service account of the serving pods (reads the gs:// registry). Empty: the namespace default.
    """
    validation = validate_data(
        data_uri=data_uri, suite_uri=suite_uri, target_column=target_column, min_quality_score=min_quality_score,
        suite_sha256=suite_sha256, max_input_mb=max_input_mb, notify_webhook_url=notify_webhook_url,
    )
    configure_step(validation, "validate-data", CLUSTER)

    with dsl.If(validation.outputs["Output"] == DataGate.PASSED, name="data-gate-passed"):
        drift = check_drift(
            dataset=validation.outputs["dataset"], validation_report=validation.outputs["validation_report"],
            target_column=target_column, registry_uri=registry_uri, model_name=model_name,
            drift_action=drift_action, drift_psi_threshold=drift_psi_threshold,
            drift_max_drifted_share=drift_max_drifted_share, drift_critical_features=drift_critical_features,
            force_retrain=force_retrain, drift_severe_psi=drift_severe_psi,
            drift_severe_out_of_range=drift_severe_out_of_range, new_columns=new_columns,
            label_shift_action=label_shift_action, label_shift_min_difference=label_shift_min_difference,
            notify_webhook_url=notify_webhook_url,
        )
        configure_step(drift, "check-drift", CLUSTER)

        with dsl.If(drift.outputs["Output"] == DriftGate.TRAIN, name="drift-gate-passed"):
            features = engineer_features(
                dataset=validation.outputs["dataset"], drift_report=drift.outputs["drift_report"],
                target_column=target_column, test_size=test_size, categorical_encoding=categorical_encoding,
                interaction_features=interaction_features, polynomial_degree=polynomial_degree,
                select_k_best=select_k_best, max_categories=max_categories,
                min_category_frequency=min_category_frequency, split_key=split_key,
                notify_webhook_url=notify_webhook_url,
            )
            configure_step(features, "engineer-features", CLUSTER)
            training = train_model(
                train_data=features.outputs["train_data"], test_data=features.outputs["test_data"],
                preprocessor=features.outputs["preprocessor"], feature_metadata=features.outputs["feature_metadata"],
                drift_report=drift.outputs["drift_report"], target_column=target_column, estimator=estimator,
                n_estimators=n_estimators, max_depth=max_depth, min_samples_split=min_samples_split,
                learning_rate=learning_rate, random_state=random_state, cv_folds=cv_folds, cv_max_rows=cv_max_rows,
                mlflow_tracking_uri=mlflow_tracking_uri, mlflow_experiment=mlflow_experiment,
                pipeline_version=pipeline_version, notify_webhook_url=notify_webhook_url,
            )
            configure_step(training, "train-model", CLUSTER)
            evaluation = evaluate_model(
                model=training.outputs["model"], test_data=features.outputs["test_data"],
                training_report=training.outputs["training_report"], drift_report=drift.outputs["drift_report"],
                feature_metadata=features.outputs["feature_metadata"],
                validation_report=validation.outputs["validation_report"], drift_html=drift.outputs["drift_html"],
                target_column=target_column, min_accuracy=min_accuracy, min_balanced_accuracy=min_balanced_accuracy,
                min_f1=min_f1, min_roc_auc=min_roc_auc, min_class_recall=min_class_recall,
                beat_prior_predictor=beat_prior_predictor, threshold_rule=threshold_rule,
                max_overfit_gap=max_overfit_gap, max_regression=max_regression, comparison_metric=comparison_metric,
                comparison_rule=comparison_rule, gate_alpha=gate_alpha, min_test_rows=min_test_rows,
                min_test_rows_per_class=min_test_rows_per_class,
                first_run_policy=first_run_policy, max_prediction_psi=max_prediction_psi,
                max_single_feature_score=max_single_feature_score, max_pair_feature_score=max_pair_feature_score,
                max_unexplained_gain=max_unexplained_gain, max_calibration_regression=max_calibration_regression,
                slice_by=slice_by, min_slice_rows=min_slice_rows, min_slice_score=min_slice_score,
                segment_flip_action=segment_flip_action,
                registry_uri=registry_uri, model_name=model_name, notify_webhook_url=notify_webhook_url,
            )
            configure_step(evaluation, "evaluate-model", CLUSTER)

            with dsl.If(evaluation.outputs["Output"] == ModelGate.DEPLOY, name="model-gate-passed"):
                deployment = deploy_model(
                    model=training.outputs["model"], train_data=features.outputs["train_data"],
                    test_data=features.outputs["test_data"], feature_metadata=features.outputs["feature_metadata"],
                    training_report=training.outputs["training_report"], gate_decision=evaluation.outputs["gate_decision"],
                    validation_report=validation.outputs["validation_report"], drift_report=drift.outputs["drift_report"],
                    target_column=target_column, registry_uri=registry_uri, model_name=model_name,
                    pipeline_version=pipeline_version, serving_namespace=serving_namespace,
                    notify_webhook_url=notify_webhook_url,
                )
                configure_step(deployment, "deploy-model", CLUSTER)

                with dsl.If(deployment.outputs["Output"] == DeployGate.SERVE, name="serving-namespace-set"):
                    served = serve_model(
                        deployment=deployment.outputs["deployment"], validation_report=validation.outputs["validation_report"],
                        gate_decision=evaluation.outputs["gate_decision"], drift_report=drift.outputs["drift_report"],
                        registry_uri=registry_uri, model_name=model_name, serving_namespace=serving_namespace,
                        serving_mode=serving_mode, canary_traffic_percent=canary_traffic_percent,
                        serving_ready_timeout_seconds=serving_ready_timeout_seconds,
                        serving_service_account=serving_service_account, notify_webhook_url=notify_webhook_url,
                    )
                    configure_step(served, "serve-model", CLUSTER)
