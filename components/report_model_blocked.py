from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def report_model_blocked(
    validation_report: Input[Artifact],
    gate_decision: Input[Artifact],
    kfp_run_id: str,
    run_summary: Output[Artifact],
    summary: Output[Markdown],
):
    """Record a run blocked by the model gate: each failed check with its value and threshold."""
    from gated_training.step_records import recorded_step
    from gated_training.summary import record_outcome

    with recorded_step("report-model-blocked"):
        record_outcome(validation_report.path, gate_decision.path, None, kfp_run_id, run_summary.path, summary.path)
