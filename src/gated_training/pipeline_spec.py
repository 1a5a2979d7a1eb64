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
