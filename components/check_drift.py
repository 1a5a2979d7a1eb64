from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def check_drift(
    dataset: Input[Dataset],
    validation_report: Input[Artifact],
    target_column: str,
    registry_uri: str,
    model_name: str,
    drift_action: str,
    drift_psi_threshold: float,
    drift_max_drifted_share: float,
    drift_critical_features: str,
    force_retrain: bool,
    drift_severe_psi: float,
    drift_severe_out_of_range: float,
    new_columns: str,
    drift_report: Output[Artifact],
    drift_html: Output[HTML],
    drift_metrics: Output[Metrics],
) -> str:
    """Drift gate: no-new-data trigger, the schema contract, then the batch against the champion's reference profile.

    Returns "train", "skip" (no new data) or "block" (schema broken, or drifted under drift_action=block).
    """
    from gated_training.config import DriftPolicy
    from gated_training.steps.check_drift import check_drift
    from gated_training.step_records import recorded_step

    with recorded_step("check-drift"):
        policy = DriftPolicy(drift_action=drift_action, drift_psi_threshold=drift_psi_threshold,
                             drift_max_drifted_share=drift_max_drifted_share,
                             drift_critical_features=drift_critical_features, force_retrain=force_retrain,
                             drift_severe_psi=drift_severe_psi, drift_severe_out_of_range=drift_severe_out_of_range,
                             new_columns=new_columns)
        outcome = check_drift(dataset_path=dataset.path, validation_report_path=validation_report.path, target=target_column, registry_uri=registry_uri, model_name=model_name,
                                 policy=policy, report_out=drift_report.path, html_out=drift_html.path)
    report = outcome.report
    if report is not None:
        drift_metrics.log_metric("drifted_share", report["drifted_share"])
        drift_metrics.log_metric("max_psi", min(report["max_psi"], 1e6))  # a missing feature has infinite PSI
        drift_metrics.log_metric("drifted_features", sum(f["drifted"] for f in report["features"]))
    drift_report.metadata.update({"decision": outcome.decision, "champion": outcome.champion or ""})
    return outcome.decision
