"""What the command modules share: exit codes, default paths, ``--set`` and params files (typed by
``kubeflow.parameters``), and the registry options."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from gated_training import logs
from gated_training.data import storage
from gated_training.errors import ConfigError

if TYPE_CHECKING:
    from gated_training.registry import ModelRegistry

DEFAULT_PIPELINE = Path("compiled/training_pipeline.yaml")
DEFAULT_WORKDIR = Path(".gated-training")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_RETRAIN_ADVISED = 0, 1, 2, 3


def parse_assignments(assignments: Sequence[str]) -> dict[str, str]:
    parsed = {}
    for item in assignments:
        name, separator, value = item.partition("=")
        if not separator or not name.strip():
            raise ConfigError(f"--set {item!r}: expected name=value")
        parsed[name.strip()] = value
    return parsed


def load_params_file(path: str) -> dict[str, Any]:
    from gated_training.config import read_yaml_mapping

    return read_yaml_mapping(path, "params file")


def registry_from(args: argparse.Namespace) -> "ModelRegistry":
    """The registry the command names: checked as given (no '..'), then made absolute; the local
    signing key is used when no key or unsigned mode is configured."""
    from gated_training.registry import ModelRegistry, check_registry_parameters, ensure_local_key

    check_registry_parameters(args.registry, args.model_name)
    uri = args.registry
    if not storage.is_gcs(uri):
        uri = str(Path(uri).resolve())
    registry = ModelRegistry(uri, args.model_name)
    registry.preflight()
    ensure_local_key()
    return registry


def add_registry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        default=str(DEFAULT_WORKDIR / "registry"),
        help="registry root: a folder or gs://bucket/prefix (default: .gated-training/registry)",
    )
    parser.add_argument(
        "--model-name",
        dest="model_name",
        default="tabular-classifier",
        help="the model's folder in the registry (the pipeline's model_name; default tabular-classifier)",
    )


def resolve_parameters(declared: dict[str, tuple[str, Any]], layers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The run's parameters: the YAML's defaults overridden layer by layer (``kubeflow.parameters``)."""
    from gated_training.kubeflow import resolve_parameters as resolve

    return resolve(declared, layers)


LOCAL_PATH_PARAMETERS = ("data_uri", "suite_uri", "registry_uri")


def absolutise_local_paths(
    parameters: dict[str, Any], names: tuple[str, ...] = LOCAL_PATH_PARAMETERS
) -> dict[str, Any]:
    """Local paths become absolute, so the summary and the registry manifest say where things are."""
    result = dict(parameters)
    for name in names:
        value = result.get(name)
        if value and not storage.is_gcs(value) and "://" not in value:
            result[name] = str(Path(value).resolve())
    tracking = result.get("mlflow_tracking_uri") or ""
    if tracking.startswith("sqlite:///") and not tracking.startswith("sqlite:////"):
        result["mlflow_tracking_uri"] = "sqlite:///" + str(Path(tracking[len("sqlite:///") :]).resolve())
    return result


def write_summary_file(workdir: Path, summary: dict[str, Any]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def layered_parameters(
    pipeline_yaml: Path,
    *,
    workdir_defaults: dict[str, Any],
    params_files: Sequence[str],
    named: dict[str, Any],
    assignments: Sequence[str],
    path_parameters: tuple[str, ...] = LOCAL_PATH_PARAMETERS,
    form: Any = None,
    required: str = "",
    kind: str = "training",
) -> dict[str, Any]:
    """A local run's parameters, layer over layer: the compiled YAML's defaults, the workdir's defaults, each
    params file, the named options, then ``--set``; the registry path checked as given (no '..'), local paths
    made absolute, and the whole form validated. ``required`` names an input the YAML must declare (the
    monitoring pipeline's ``prediction_log_uri``)."""
    from gated_training.kubeflow import component_inputs, missing_pipeline_message
    from gated_training.kubeflow import validate as validate_run_parameters
    from gated_training.registry import check_registry_parameters

    if not pipeline_yaml.is_file():
        raise ConfigError(missing_pipeline_message(pipeline_yaml))
    declared = component_inputs(pipeline_yaml)
    if required and required not in declared:
        raise ConfigError(f"{pipeline_yaml} is not the {kind} pipeline (it has no {required})")
    layers = [
        workdir_defaults,
        *(load_params_file(p) for p in params_files),
        {k: v for k, v in named.items() if v is not None},
        parse_assignments(assignments),
    ]
    resolved = resolve_parameters(declared, layers)
    check_registry_parameters(str(resolved["registry_uri"]), str(resolved["model_name"]))  # '..' before resolving
    parameters = absolutise_local_paths(resolved, path_parameters)
    if form is None:
        validate_run_parameters(parameters)
    else:
        validate_run_parameters(parameters, form)
    return parameters


def say(event: str, message: str, *, severity: str = "INFO", stream: TextIO | None = None, **fields: Any) -> None:
    """What a command tells its user: the line as written on a terminal, one JSON event with
    ``GATED_TRAINING_LOG_FORMAT=json`` (leading spaces, which indent a terminal's lines, dropped)."""
    if logs.log_format() == "json":
        message = message.strip()
    logs.event(event, message, severity=severity, stream=stream or sys.stdout, **fields)
