"""What the command modules share: exit codes, default paths, ``--set`` and params files (typed by
``kubeflow.parameters``), and the registry options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

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
