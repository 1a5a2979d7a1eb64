from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def engineer_features(
    dataset: Input[Dataset],
    drift_report: Input[Artifact],
    target_column: str,
    features: dict,
    split: dict,
    engine: str,
    model_name: str,
    notify_webhook_url: str,
    retrain_ticket: str,
    train_data: Output[Dataset],
    test_data: Output[Dataset],
    preprocessor: Output[Model],
    feature_metadata: Output[Artifact],
):
    """Stable hash split, then fit the preprocessing pipeline on the training split only; score features for leakage."""
    from gated_training.config import group_settings
    from gated_training.kubeflow import recorded_step
    from gated_training.steps.engineer_features import engineer_features

    with recorded_step(
        notify_webhook_url=notify_webhook_url,
        retrain_ticket=retrain_ticket,
        model_name=model_name,
        artifact_uri=feature_metadata.uri,
    ):
        outcome = engineer_features(
            dataset_path=dataset.path,
            target=target_column,
            feature_settings=group_settings(group="features", values=features),
            split_settings=group_settings(group="split", values=split),
            train_out=train_data.path,
            test_out=test_data.path,
            preprocessor_out=preprocessor.path,
            metadata_out=feature_metadata.path,
            drift_report_path=drift_report.path,
            engine=engine,
            dataset_uri=dataset.uri,
        )
    fingerprint, source = dataset.metadata.get("sha256", ""), dataset.metadata.get("source_uri", "")
    train_data.metadata.update(
        {"format": "parquet", "rows": outcome.train_rows, "source_sha256": fingerprint, "source_uri": source}
    )
    test_data.metadata.update({"format": "parquet", "rows": outcome.test_rows, "source_sha256": fingerprint})
    preprocessor.metadata.update({"format": "joblib", "engineered_features": outcome.engineered_features})
