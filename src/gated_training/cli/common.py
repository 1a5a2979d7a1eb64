"""What the command modules share: exit codes, default paths, and typing parameters from the
command line or a params file as the compiled YAML declares them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from gated_training.errors import ConfigError

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

