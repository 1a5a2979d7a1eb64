"""Kubeflow Pipelines: the client (upload, submit, schedule, wait), the local runner (kfp.local), the
compiled-spec reader, schedules and the records each step leaves. kfp is imported inside the functions."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.kubeflow.client import (
    Connection,
    PipelinePackage,
    RunRequest,
    ScheduleRequest,
    change_schedule,
    check_pullable,
    connect,
    create_schedule,
    default_version_name,
    describe_trigger,
    find_schedules,
    pipeline_namespace,
    read_package,
    read_token,
    resolve_version,
    submit,
    upload,
    wait_for_run,
)
from gated_training.kubeflow.local_run import run_compiled_pipeline, run_monitoring_pipeline
from gated_training.kubeflow.parameters import (
    RUN_PARAMETERS,
    coerce_parameter,
    form_of,
    markdown_tables,
    resolve_parameters,
    touched,
    validate,
)
from gated_training.kubeflow.records import recorded_step
from gated_training.kubeflow.schedules import parse_interval, validate_cron
from gated_training.kubeflow.spec import component_inputs, missing_pipeline_message

__all__ = [
    "form_of",
    "Connection",
    "RUN_PARAMETERS",
    "coerce_parameter",
    "markdown_tables",
    "resolve_parameters",
    "touched",
    "validate",
    "PipelinePackage",
    "RunRequest",
    "ScheduleRequest",
    "change_schedule",
    "check_pullable",
    "component_inputs",
    "connect",
    "create_schedule",
    "default_version_name",
    "describe_trigger",
    "find_schedules",
    "missing_pipeline_message",
    "parse_interval",
    "pipeline_namespace",
    "read_package",
    "read_token",
    "recorded_step",
    "resolve_version",
    "run_compiled_pipeline",
    "run_monitoring_pipeline",
    "submit",
    "upload",
    "validate_cron",
    "wait_for_run",
]
