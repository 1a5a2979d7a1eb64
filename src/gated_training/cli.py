"""``gated-training``: run the compiled pipeline locally, draft expectation suites.

Exit codes: 0 deployed or blocked (a blocked run is a successful run that deployed nothing),
1 failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from gated_training import storage
from gated_training.errors import ConfigError, GatedTrainingError

DEFAULT_PIPELINE = Path("compiled/training_pipeline.yaml")
DEFAULT_WORKDIR = Path(".gated-training")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LOCAL_PATH_PARAMETERS = ("data_uri", "suite_uri", "registry_uri")


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
    try:
        document = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"params file {path}: no such file") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file {path}: not valid YAML/JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"params file {path}: expected a mapping of parameter names to values")
    return document


def resolve_parameters(declared: dict[str, tuple[str, Any]], layers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Defaults from the YAML, overridden layer by layer; unknown names are errors."""
    parameters = {name: coerce_parameter(name, kfp_type, default) for name, (kfp_type, default) in declared.items()}
    for layer in layers:
        for name, value in layer.items():
            if name not in declared:
                raise ConfigError(f"unknown parameter {name!r}; the pipeline's parameters are: {', '.join(sorted(declared))}")
            parameters[name] = coerce_parameter(name, declared[name][0], value)
    return parameters


def absolutise_local_paths(parameters: dict[str, Any]) -> dict[str, Any]:
    """Local paths become absolute, so the summary and the registry manifest say where things are."""
    result = dict(parameters)
    for name in LOCAL_PATH_PARAMETERS:
        value = result.get(name)
        if value and not storage.is_gcs(value) and "://" not in value:
            result[name] = str(Path(value).resolve())
    tracking = result.get("mlflow_tracking_uri") or ""
    if tracking.startswith("sqlite:///") and not tracking.startswith("sqlite:////"):
        result["mlflow_tracking_uri"] = "sqlite:///" + str(Path(tracking[len("sqlite:///"):]).resolve())
    return result


def print_summary(summary: dict[str, Any], summary_path: Path) -> None:
    outcome = summary["outcome"].upper()
    headline = f"{outcome}" + (f" by the {summary['blocked_by']} gate" if summary.get("blocked_by") else "")
    print(f"\n=== {headline} ===")
    for reason in summary["reasons"]:
        print(f"  - {reason}")
    if summary.get("candidate_metrics"):
        print("  candidate: " + ", ".join(f"{k}={v:.4f}" for k, v in summary["candidate_metrics"].items()))
    if summary.get("champion"):
        metrics = summary["champion"]["metrics"] or {}
        print(f"  champion {summary['champion']['version']}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    if summary.get("deployed"):
        print(f"  deployed version {summary['deployed']['version']} → {summary['deployed']['uri']}")
        print(f"  MLflow mirror: {summary['deployed']['mlflow_mirror']}")
    if summary.get("mlflow_run_id"):
        print(f"  MLflow run: {summary['mlflow_run_id']}")
    print(f"  steps run: {', '.join(summary.get('tasks_ran', [])) or 'none'}")
    print(f"  summary: {summary_path}")


def write_summary_file(workdir: Path, summary: dict[str, Any]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def command_run(args: argparse.Namespace) -> int:
    from gated_training.config import validate_run_parameters
    from gated_training.local_run import component_inputs, run_compiled_pipeline
    from gated_training.summary import build_summary

    workdir = Path(args.workdir)
    try:
        pipeline_yaml = Path(args.pipeline)
        if not pipeline_yaml.is_file():
            raise ConfigError(f"compiled pipeline {pipeline_yaml} not found: run `make compile` first")
        declared = component_inputs(pipeline_yaml)
        named = {
            "data_uri": args.data, "target_column": args.target, "suite_uri": args.suite,
            "min_accuracy": args.min_accuracy, "registry_uri": args.registry, "mlflow_tracking_uri": args.tracking_uri,
        }
        defaults_for_workdir = {
            "registry_uri": str(workdir / "registry"),
            "mlflow_tracking_uri": os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workdir / 'mlflow.db'}",
        }
        layers = [defaults_for_workdir, *(load_params_file(p) for p in args.params),
                  {k: v for k, v in named.items() if v is not None}, parse_assignments(args.set)]
        parameters = absolutise_local_paths(resolve_parameters(declared, layers))
        validate_run_parameters(parameters)
    except GatedTrainingError as exc:
        summary = build_summary(validation=None, error=str(exc), failed_step="configuration")
        summary["tasks_ran"] = []
        write_summary_file(workdir, summary)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    print(f"Running {pipeline_yaml} locally on {parameters['data_uri']} (target {parameters['target_column']!r})")
    result = run_compiled_pipeline(pipeline_yaml, parameters, workdir,
                                   progress=lambda line: print(f"  {line}", flush=True), verbose=args.verbose)
    summary = result.summary
    summary["parameters"] = parameters
    summary_path = write_summary_file(workdir, summary)
    print_summary(summary, summary_path)
    if summary["outcome"] == "failed":
        print(f"error: {summary['reasons'][0]}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def command_suite_init(args: argparse.Namespace) -> int:
    from gated_training.data import load_table
    from gated_training.suite import default_suite_uri, draft_suite

    output = args.output or default_suite_uri(args.data)
    if storage.exists(output) and not args.force:
        print(f"error: {output} exists; pass --force to overwrite it", file=sys.stderr)
        return EXIT_USAGE
    table = load_table(args.data)
    name = Path(args.data).stem
    document = draft_suite(table.frame, args.target, name)
    storage.write_bytes(output, (json.dumps(document, indent=2) + "\n").encode())
    print(f"wrote {len(document['expectations'])} expectations to {output}; review the ranges, sets and severities")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gated-training", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the compiled pipeline locally through kfp.local")
    run.add_argument("--data", help="CSV or Parquet: a path or gs://bucket/key")
    run.add_argument("--target", help="the label column")
    run.add_argument("--suite", help="GX suite JSON (default: <data name>.expectations.json beside the data)")
    run.add_argument("--min-accuracy", type=float, dest="min_accuracy")
    run.add_argument("--registry", help="model registry: a folder or gs://bucket/prefix (default: WORKDIR/registry)")
    run.add_argument("--tracking-uri", dest="tracking_uri",
                     help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///WORKDIR/mlflow.db)")
    run.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="where summary.json, logs and outputs go")
    run.add_argument("--params", action="append", default=[], metavar="FILE", help="YAML/JSON file of parameters")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="any pipeline parameter")
    run.add_argument("--pipeline", default=str(DEFAULT_PIPELINE), help="the compiled pipeline YAML to run")
    run.add_argument("--verbose", action="store_true", help="stream every step's full log")
    run.set_defaults(handler=command_run)

    suite = commands.add_parser("suite", help="expectation suite tools")
    suite_commands = suite.add_subparsers(dest="suite_command", required=True)
    init = suite_commands.add_parser("init", help="draft a suite from a reference dataset")
    init.add_argument("--data", required=True)
    init.add_argument("--target", required=True)
    init.add_argument("--output", help="default: <data name>.expectations.json beside the data")
    init.add_argument("--force", action="store_true", help="overwrite an existing suite")
    init.set_defaults(handler=command_suite_init)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except GatedTrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
