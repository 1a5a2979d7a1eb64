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
    pipeline_version: str,
    serving: dict,
    notify_webhook_url: str,
    retrain_ticket: str,
    deployment: Output[Artifact],
    run_summary: Output[Artifact],
    summary: Output[Markdown],
) -> str:
    """Publish an immutable version, smoke-test it, move the champion pointer, mirror to MLflow; write the run's
    summary (a champion that changed during the run blocks, and notifies). Returns "serve" when serve-model
    follows (promoted, and a serving namespace is set), else "done"."""
    from gated_training.config import group_settings
    from gated_training.decisions import DeployGate
    from gated_training.kubeflow import recorded_step
    from gated_training.reports import RunRecords, record_gate
    from gated_training.steps.deploy_model import deploy_model
    from gated_training.tracking import outcome_failed_on_error

    with (
        recorded_step(
            notify_webhook_url=notify_webhook_url,
            retrain_ticket=retrain_ticket,
            model_name=model_name,
            artifact_uri=run_summary.uri,
        ) as step,
        outcome_failed_on_error(training_report_path=training_report.path),
    ):
        settings = group_settings(group="serving", values=serving)
        outcome = deploy_model(
            model_path=model.path,
            test_path=test_data.path,
            feature_metadata_path=feature_metadata.path,
            training_report_path=training_report.path,
            gate_decision_path=gate_decision.path,
            target=target_column,
            registry_uri=registry_uri,
            model_name=model_name,
            data_sha256=test_data.metadata.get("source_sha256", ""),
            kfp_run_id=step.run_id,
            deployment_out=deployment.path,
            pipeline_version=pipeline_version,
            train_path=train_data.path,
            validation_report_path=validation_report.path,
        )
        serve = outcome.promoted and bool(settings.serving_namespace)
        record_gate(
            step=step,
            stopped=not serve,
            records=RunRecords(
                validation_report=validation_report.path,
                drift_report=drift_report.path,
                gate_decision=gate_decision.path,
                deployment=deployment.path,
            ),
            summary_json_out=run_summary.path,
            markdown_out=summary.path,
            webhook_url=notify_webhook_url,
        )
    deployment.metadata.update({"version": outcome.version, "uri": outcome.version_uri, "promoted": outcome.promoted})
    return DeployGate.SERVE if serve else DeployGate.DONE
