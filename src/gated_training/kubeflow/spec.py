"""Reading a compiled pipeline YAML: the one reader the local runner, the CLI and the Kubeflow
client share (kfp is imported inside the function)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def component_inputs(pipeline_yaml: Path) -> dict[str, tuple[str, Any]]:
    """The pipeline's parameters as declared in the YAML: name → (KFP type, default)."""
    from kfp import components

    spec = components.load_component_from_file(str(pipeline_yaml)).component_spec
    return {name: (param.type, param.default) for name, param in (spec.inputs or {}).items()}


# ---- which KFP backend a compiled YAML needs --------------------------------------------------
# Each control-flow, placeholder or platform feature a YAML can use, and the oldest KFP backend
# that runs it correctly, read from kubeflow/pipelines (backend/src/v2/compiler/argocompiler,
# backend/src/v2/driver, backend/src/v2/cmd/driver). The default compile uses none of them, so
# its floor is SUPPORT_FLOOR; `connect()` refuses a backend older than what a YAML needs.
SUPPORT_FLOOR: tuple[int, ...] = (2, 2)
FEATURE_FLOOR: dict[str, tuple[tuple[int, ...], str]] = {
    "task_final_status": (
        (2, 14),
        'dsl.PipelineTaskFinalStatus in an exit handler (refused before 2.14: "task final status not supported yet")',
    ),
    "retry_in_root": ((2, 5), "task retry policies (ignored before 2.5)"),
    "retry_in_sub_dag": ((2, 14), "task retry policies inside condition branches (ignored before 2.14)"),
    "pipeline_job_placeholder": (
        (2, 5),
        "{{$.pipeline_job_*}} and {{$.pipeline_task_*}} placeholders (passed through as literal text before 2.5)",
    ),
    "time_placeholder": ((2, 17), "{{$.pipeline_job_create_time_utc}} / schedule_time placeholders"),
    "secret_name_parameter": (
        (2, 4, 1),
        "secretNameParameter or optional in the Kubernetes platform spec (drivers "
        "up to 2.4.0 parse it strictly and fail)",
    ),
    "unknown_platform_field": (
        (2, 4, 1),
        "Kubernetes platform features beyond secrets as env/volume (drivers up "
        "to 2.4.0 parse strictly and lack most of them)",
    ),
}
PLACEHOLDERS = (
    "{{$.pipeline_job_name}}",
    "{{$.pipeline_job_resource_name}}",
    "{{$.pipeline_job_uuid}}",
    "{{$.pipeline_task_name}}",
    "{{$.pipeline_task_uuid}}",
)
TIME_PLACEHOLDERS = ("{{$.pipeline_job_create_time_utc}}", "{{$.pipeline_job_schedule_time_utc}}")


def features_used(documents: list[dict[str, Any]]) -> set[str]:
    """The FEATURE_FLOOR features a compiled YAML (its PipelineSpec and platform spec) uses."""
    import json

    spec = documents[0]
    used: set[str] = set()
    text = json.dumps(spec)
    if any(placeholder in text for placeholder in PLACEHOLDERS):
        used.add("pipeline_job_placeholder")
    if any(placeholder in text for placeholder in TIME_PLACEHOLDERS):
        used.add("time_placeholder")
    for name, component in [("root", spec.get("root", {})), *spec.get("components", {}).items()]:
        for parameter in component.get("inputDefinitions", {}).get("parameters", {}).values():
            if parameter.get("parameterType") == "TASK_FINAL_STATUS":
                used.add("task_final_status")
        for task in component.get("dag", {}).get("tasks", {}).values():
            if "retryPolicy" in task:
                used.add("retry_in_root" if name == "root" else "retry_in_sub_dag")
    platform = documents[1] if len(documents) > 1 else {}
    executors = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    for config in executors.values():
        if set(config) - {"secretAsEnv", "secretAsVolume"}:
            used.add("unknown_platform_field")
        for entry in [*config.get("secretAsEnv", []), *config.get("secretAsVolume", [])]:
            if "secretNameParameter" in entry or "optional" in entry:
                used.add("secret_name_parameter")
    return used


def required_backend(pipeline_yaml: Path) -> tuple[tuple[int, ...], list[str]]:
    """(the oldest KFP backend this YAML runs on, the features that raise it above the support floor)."""
    import yaml

    return backend_floor([d for d in yaml.safe_load_all(Path(pipeline_yaml).read_text()) if d])


def backend_floor(documents: list[dict[str, Any]]) -> tuple[tuple[int, ...], list[str]]:
    """``required_backend`` of already parsed documents (the PipelineSpec, then the platform spec)."""
    used = features_used(documents)
    floor = max([SUPPORT_FLOOR, *(FEATURE_FLOOR[f][0] for f in used)])
    reasons = [FEATURE_FLOOR[f][1] for f in sorted(used) if FEATURE_FLOOR[f][0] > SUPPORT_FLOOR]
    return floor, reasons


def parse_version(tag: str) -> tuple[int, ...] | None:
    """A backend tag (``2.4.1``, ``v2.5.0``, ``2.5.0-rc.1``) as numbers; None when it is not one (``unknown``)."""
    import re

    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", (tag or "").strip())
    if not match:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def missing_pipeline_message(path: Path) -> str:
    """Where a compiled pipeline was expected, and what to do, whether or not this is the checkout."""
    resolved = path.resolve()
    in_checkout = (Path.cwd() / "Makefile").is_file() and (Path.cwd() / "pipelines" / "training_pipeline.py").is_file()
    if in_checkout:
        return f"compiled pipeline {resolved} not found: run `make compile` first"
    return (
        f"compiled pipeline {resolved} not found: run this from the kfp-gated-training checkout (where "
        "`make compile` writes compiled/training_pipeline.yaml), or pass --pipeline PATH to a compiled YAML"
    )
