from kfp import dsl
from kfp.dsl import HTML, Artifact, Markdown, Metrics, Output, OutputPath

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def monitor_window(
    prediction_log_uri: str,
    labels_uri: str,
    window_end: str,
    registry_uri: str,
    model_name: str,
    mlflow_tracking_uri: str,
    mlflow_experiment: str,
    notify_webhook_url: str,
    monitoring: dict,
    drift: dict,
    serving: dict,
    monitoring_report: Output[Artifact],
    monitoring_metrics: Output[Metrics],
    report: Output[Markdown],
    report_html: Output[HTML],
    retrain_data_uri: OutputPath(str),
    retrain_suite_uri: OutputPath(str),
    retrain_suite_sha256: OutputPath(str),
    retrain_target_column: OutputPath(str),
    retrain_ticket: OutputPath(str),
) -> str:
    """One window of the prediction log, per served version, against the version's own contract and its late labels.

    Returns the outcome (ok, warn, alert, retrain, no_traffic or no_labels_yet); on retrain, the retrain_* outputs
    are what the nested training run is started with: the labelled batch and its suite (or retrain_data_uri), and
    the ticket it writes its outcome to. (Output parameters, not a NamedTuple: kfp.local resolves a condition on a
    task's output only when it is the single return value.) Notifies the webhook on alert and retrain; logs the
    window to MLflow per served version. While a canary serves (serving_namespace: the InferenceService says so),
    judges it against the stable version on the window and promotes it after canary_analysis_windows healthy windows,
    or aborts it (and rolls the registry back) on evidence that it is worse.
    """
    import os

    from gated_training.config import MonitoringRunSettings, group_settings
    from gated_training.kubeflow import recorded_step
    from gated_training.run_context import parse_window_end
    from gated_training.steps.monitor_window import finish_window, monitor_window

    with recorded_step(notify_webhook_url=notify_webhook_url, artifact_uri=monitoring_report.uri) as step:
        run = MonitoringRunSettings(
            prediction_log_uri=prediction_log_uri,
            labels_uri=labels_uri,
            window_end=window_end,
            registry_uri=registry_uri,
            model_name=model_name,
            mlflow_tracking_uri=mlflow_tracking_uri,
            mlflow_experiment=mlflow_experiment,
            notify_webhook_url=notify_webhook_url,
        )
        outcome, retrain = monitor_window(
            run=run,
            settings=group_settings(group="monitoring", values=monitoring),
            policy=group_settings(group="drift", values=drift),
            end=parse_window_end(window_end),
            result_out=monitoring_report.path,
            markdown_out=report.path,
            html_out=report_html.path,
            kfp_run_id=step.run_id,
            serving=group_settings(group="serving", values=serving),
            kube_api_url=os.environ.get("GATED_TRAINING_KUBE_API", ""),
        )
        metrics = finish_window(
            run=run,
            outcome=outcome,
            result_path=monitoring_report.path,
            markdown_path=report.path,
            html_path=report_html.path,
            links={"report": report_html.uri},
        )
    for name, number in metrics.items():
        monitoring_metrics.log_metric(name, number)
    monitoring_report.metadata.update({"outcome": outcome.outcome, "champion": outcome.champion or ""})
    for path, text in (
        (retrain_data_uri, retrain.data_uri),
        (retrain_suite_uri, retrain.suite_uri),
        (retrain_suite_sha256, retrain.suite_sha256),
        (retrain_target_column, retrain.target_column),
        (retrain_ticket, retrain.ticket),
    ):
        with open(path, "w") as handle:
            handle.write(text)
    return outcome.outcome
