"""What the command modules share: exit codes, default paths, and typing parameters from the
command line or a params file as the compiled YAML declares them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from gated_training.data import storage
from gated_training.errors import ConfigError

if TYPE_CHECKING:
    from gated_training.registry.store import ModelRegistry

DEFAULT_PIPELINE = Path("compiled/training_pipeline.yaml")
DEFAULT_WORKDIR = Path(".gated-training")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_RETRAIN_ADVISED = 0, 1, 2, 3


def coerce_parameter(name: str, kfp_type: str, value: Any) -> Any:
    """Cast a value from the command line or a params file to the type the YAML declares."""
    try:
        if kfp_type == "Boolean":
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError("expected true or false")
            return lowered in ("true", "1", "yes")
        if kfp_type == "Integer":
            number = float(value)
            if not number.is_integer():
                raise ValueError("expected a whole number")
            return int(number)
        if kfp_type == "Float":
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        return "" if value is None else str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"parameter {name}={value!r}: {exc}") from exc


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


def resolve_parameters(declared: dict[str, tuple[str, Any]], layers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Defaults from the YAML, overridden layer by layer; unknown names are errors."""
    parameters = {name: coerce_parameter(name, kfp_type, default) for name, (kfp_type, default) in declared.items()}
    for layer in layers:
        for name, value in layer.items():
            if name not in declared:
                raise ConfigError(f"unknown parameter {name!r}; the pipeline's parameters are: {', '.join(sorted(declared))}")
            parameters[name] = coerce_parameter(name, declared[name][0], value)
    return parameters


def registry_from(args: argparse.Namespace) -> "ModelRegistry":
    """The registry the command names: checked as given (no '..'), then made absolute; the local
    signing key is used when no key or unsigned mode is configured."""
    from gated_training.registry.store import check_registry_parameters
    from gated_training.registry.store import ModelRegistry
    from gated_training.registry.signing import ensure_local_key

    check_registry_parameters(args.registry, args.model_name)
    uri = args.registry
    if not storage.is_gcs(uri):
        uri = str(Path(uri).resolve())
    registry = ModelRegistry(uri, args.model_name)
    registry.preflight()
    ensure_local_key()
    return registry


def add_registry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", default=str(DEFAULT_WORKDIR / "registry"),
                        help="registry root: a folder or gs://bucket/prefix (default: .gated-training/registry)")
    parser.add_argument("--model-name", dest="model_name", default="tabular-classifier",
                        help="the model's folder in the registry (the pipeline's model_name; default tabular-classifier)")
