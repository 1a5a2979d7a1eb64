from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def train_model(
    train_data: Input[Dataset],
    test_data: Input[Dataset],
    preprocessor: Input[Model],
    feature_metadata: Input[Artifact],
    drift_report: Input[Artifact],
    target_column: str,
    training: dict,
    mlflow_tracking_uri: str,
    mlflow_experiment: str,
    pipeline_version: str,
    model_name: str,
    notify_webhook_url: str,
    retrain_ticket: str,
    engine: str,
    model: Output[Model],
    training_report: Output[Artifact],
    feature_importances: Output[Artifact],
    training_metrics: Output[Metrics],
):
    """Cross-validate and fit the estimator; log params, metrics, model, data fingerprint and drift to MLflow."""
    from gated_training.config import group_settings
    from gated_training.kubeflow import recorded_step
    from gated_training.steps.train_model import train_model

    with recorded_step(
        notify_webhook_url=notify_webhook_url,
        retrain_ticket=retrain_ticket,
        model_name=model_name,
        artifact_uri=training_report.uri,
    ) as step:
        outcome = train_model(
            train_path=train_data.path,
            test_path=test_data.path,
            preprocessor_path=preprocessor.path,
            feature_metadata_path=feature_metadata.path,
            target=target_column,
            settings=group_settings(group="training", values=training),
            tracking_uri=mlflow_tracking_uri,
            experiment=mlflow_experiment,
            data_sha256=train_data.metadata.get("source_sha256", ""),
            kfp_run_id=step.run_id,
            data_uri=train_data.metadata.get("source_uri", ""),
            pipeline_version=pipeline_version,
            model_out=model.path,
            report_out=training_report.path,
            importances_out=feature_importances.path,
            drift_report_path=drift_report.path,
            engine=engine,
            train_uri=train_data.uri,
            test_uri=test_data.uri,
        )
    model.metadata.update({"format": "joblib", "framework": "scikit-learn", "mlflow_run_id": outcome.mlflow_run_id})
    training_metrics.log_metric("cv_accuracy_mean", outcome.cv_accuracy_mean)
    training_metrics.log_metric("cv_accuracy_std", outcome.cv_accuracy_std)
    training_metrics.log_metric("cv_rows", outcome.cv_rows)
    training_metrics.log_metric("overfit_gap", outcome.overfit_gap)
    for name, value in outcome.test.items():
        training_metrics.log_metric(f"test_{name}", value)
