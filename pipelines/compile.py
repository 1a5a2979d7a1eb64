"""Compile a pipeline to YAML: ``python -m pipelines.compile [OUTPUT]`` (the training pipeline) or
``python -m pipelines.compile --monitoring [OUTPUT]`` (the monitoring pipeline, the training pipeline nested).

Compile-time options come from the environment: ``IMAGE`` (components/image.py), the cluster
options in pipelines/cluster.py (secret names, ``RESOURCES_FILE``, ``ALLOW_POD_LOCAL_STATE``) and
``PARAMS``: a YAML file of run parameters (data, suite, registry, MLflow…) baked in as the run
form's defaults, so a run started from the Kubeflow UI or a schedule made there is right by default
(``MONITORING_PARAMS`` for the monitoring pipeline's form).

The output runs on every KFP backend from 2.2 to 2.17: the Kubernetes platform spec is written in
the form drivers up to 2.4.0 parse strictly (``cluster.for_every_backend``), and
``gated_training.kubeflow.spec.required_backend`` reads the floor back from the YAML.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT = Path("compiled/training_pipeline.yaml")
MONITORING_OUTPUT = Path("compiled/monitoring_pipeline.yaml")


def baked_parameters(params_file: str, declared: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """The parameters of ``params_file``, typed and validated as `submit` would send them."""
    from gated_training.cli.common import load_params_file, resolve_parameters
    from gated_training.errors import ConfigError
    from gated_training.kubeflow import form_of
    from gated_training.kubeflow import validate as validate_run_parameters
    from gated_training.run_context import check_cluster_parameters
    from pipelines.cluster import ClusterConfigError, ClusterSettings

    try:
        given = load_params_file(params_file)
        merged = resolve_parameters(declared, [given])
        validate_run_parameters(merged, form_of(declared))
        check_cluster_parameters(merged, ClusterSettings.from_env(os.environ).allow_pod_local_state)
    except ConfigError as exc:
        raise ClusterConfigError(f"PARAMS={params_file}: {exc}") from exc
    from gated_training.kubeflow import touched

    return {name: merged[name] for name in touched([given], declared)}


def _sorted_default(line: str) -> str:
    """kfp's header comment lists a dict parameter's default in the order protobuf gave it, which varies between
    compiles: keys sorted, so the same pipeline compiles to the same bytes."""
    import ast
    import re

    match = re.match(r"^(#\s+\w+: dict \[Default: )(\{.*\})(\]\s*)$", line)
    if not match:
        return line
    value = ast.literal_eval(match.group(2))
    return f"{match.group(1)}{dict(sorted(value.items()))!r}{match.group(3)}"


def _write_for_every_backend(output: Path) -> None:
    import yaml

    from pipelines.cluster import for_every_backend

    text = output.read_text()
    header = "".join(_sorted_default(line) for line in text.splitlines(keepends=True) if line.startswith("#"))
    documents = list(yaml.safe_load_all(text))
    if len(documents) > 1:
        documents[1] = for_every_backend(documents[1])
    output.write_text(header + yaml.dump_all(documents, sort_keys=True))


def compile_pipeline(output: Path = DEFAULT_OUTPUT, params_file: str | None = None, monitoring: bool = False) -> Path:
    from kfp import compiler

    from gated_training.kubeflow import component_inputs

    if monitoring:
        from pipelines.monitoring_pipeline import monitoring_pipeline as pipeline
    else:
        from pipelines.training_pipeline import training_pipeline as pipeline

    output.parent.mkdir(parents=True, exist_ok=True)
    baked = None
    if params_file:
        with tempfile.TemporaryDirectory() as scratch:
            plain = Path(scratch, "plain.yaml")
            compiler.Compiler().compile(pipeline, str(plain))
            baked = baked_parameters(params_file, component_inputs(plain))
    compiler.Compiler().compile(pipeline, str(output), pipeline_parameters=baked)
    _write_for_every_backend(output)
    return output


def main(argv: list[str]) -> int:
    from pipelines.cluster import ClusterConfigError

    monitoring = "--monitoring" in argv
    paths = [a for a in argv if a != "--monitoring"]
    default = MONITORING_OUTPUT if monitoring else DEFAULT_OUTPUT
    params = os.environ.get("MONITORING_PARAMS" if monitoring else "PARAMS") or None
    try:
        print(compile_pipeline(Path(paths[0]) if paths else default, params, monitoring))
    except ClusterConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
