from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def serve_model(
    deployment: Input[Artifact],
    validation_report: Input[Artifact],
    gate_decision: Input[Artifact],
    drift_report: Input[Artifact],
    registry_uri: str,
    model_name: str,
    serving_namespace: str,
    serving_mode: str,
    canary_traffic_percent: int,
    serving_ready_timeout_seconds: int,
    serving_service_account: str,
    notify_webhook_url: str,
    serving: Output[Artifact],
    run_summary: Output[Artifact],
    summary: Output[Markdown],
):
    """Serve the new champion with KServe (a canary at canary_traffic_percent), wait for Ready; a canary that never
    becomes Ready gets no traffic and the champion goes back. Writes the run's summary."""
    import os

    from gated_training.config import ServingSettings
    from gated_training.run_context import run_id_from_uri
    from gated_training.kubeflow.records import recorded_step
    from gated_training.steps.serve_model import secret_reference, serve_model
    from gated_training.reports.summary import record_and_notify

    kfp_run_id = run_id_from_uri(artifact_uri=run_summary.uri, task="serve-model")
    with recorded_step(step="serve-model", notify_webhook_url=notify_webhook_url, artifact_uri=run_summary.uri):
        settings = ServingSettings(serving_namespace=serving_namespace, serving_mode=serving_mode,
                                   canary_traffic_percent=canary_traffic_percent,
                                   serving_ready_timeout_seconds=serving_ready_timeout_seconds,
                                   serving_service_account=serving_service_account)
        outcome = serve_model(
            deployment_path=deployment.path, registry_uri=registry_uri, model_name=model_name, settings=settings,
            registry_key_secret=secret_reference(os.environ.get("GATED_TRAINING_SERVING_REGISTRY_KEY_SECRET", "")),
            gcs_key_secret=secret_reference(os.environ.get("GATED_TRAINING_SERVING_GCS_KEY_SECRET", "")),
            kube_api_url=os.environ.get("GATED_TRAINING_KUBE_API", ""), serving_out=serving.path,
        )
        record_and_notify(validation_report_path=validation_report.path, gate_decision_path=gate_decision.path,
                          deployment_path=deployment.path, serving_path=serving.path, kfp_run_id=kfp_run_id,
                          summary_json_out=run_summary.path, markdown_out=summary.path,
                          drift_report_path=drift_report.path, webhook_url=notify_webhook_url)
    serving.metadata.update({"service": outcome.service, "namespace": outcome.namespace, "served": outcome.served,
                             "mode": outcome.mode, "canary_percent": outcome.canary_percent})
