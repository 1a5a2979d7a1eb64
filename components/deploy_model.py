from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def deploy_model(
    model: Input[Model],
    train_data: Input[Dataset],
    test_data: Input[Dataset],
    feature_metadata: Input[Artifact],
    training_report: Input[Artifact],
    gate_decision: Input[Artifact],
    validation_report: Input[Artifact],
    drift_report: Input[Artifact],
    target_column: str,
    registry_uri: str,
    model_name: str,
    kfp_run_id: str,
    pipeline_version: str,
    deployment: Output[Artifact],
    run_summary: Output[Artifact],
    summary: Output[Markdown],
):
    """Publish an immutable version, smoke-test it, move the champion pointer, mirror to MLflow."""
    from gated_training.steps.deploy_model import deploy_model
    from gated_training.step_records import recorded_step
    from gated_training.summary import record_and_notify

    with recorded_step("deploy-model"):
        outcome = deploy_model(
            model_path=model.path, test_path=test_data.path, feature_metadata_path=feature_metadata.path, training_report_path=training_report.path, gate_decision_path=gate_decision.path,
            target=target_column, registry_uri=registry_uri, model_name=model_name, data_sha256=test_data.metadata.get("source_sha256", ""), kfp_run_id=kfp_run_id,
            deployment_out=deployment.path, pipeline_version=pipeline_version, train_path=train_data.path, validation_report_path=validation_report.path,
        )
        record_and_notify(validation_report_path=validation_report.path, gate_decision_path=gate_decision.path, deployment_path=deployment.path, kfp_run_id=kfp_run_id,
                       summary_json_out=run_summary.path, markdown_out=summary.path, drift_report_path=drift_report.path)
    deployment.metadata.update({"version": outcome.version, "uri": outcome.version_uri, "promoted": outcome.promoted})
