"""``gated-training``: run the compiled pipeline locally or on Kubeflow, draft expectation suites.

Exit codes: 0 deployed, blocked or skipped (a blocked run is a successful run that deployed
nothing), 1 failed (or the backend refused a request), 2 bad usage or configuration;
``check-drift`` exits 3 when retraining is advised.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from gated_training import storage
from gated_training.errors import ConfigError, GatedTrainingError
from gated_training.summary import drift_line

if TYPE_CHECKING:
    from gated_training.kubeflow import Connection, PipelinePackage
    from gated_training.registry import ModelRegistry

DEFAULT_PIPELINE = Path("compiled/training_pipeline.yaml")
DEFAULT_WORKDIR = Path(".gated-training")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_RETRAIN_ADVISED = 0, 1, 2, 3
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
    for warning in summary.get("warnings") or []:
        print(f"  warning: {warning}")
    line = drift_line(summary["drift"]) if summary.get("drift") else None
    if line:
        print(f"  {line}")
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
    usage = summary.get("step_usage") or {}
    if usage:
        print("  step usage (wall s / peak RSS MiB): " + ", ".join(
            f"{step} {u['wall_seconds']:.1f}/{u['peak_rss_mib']:.0f}" for step, u in usage.items()))
    print(f"  summary: {summary_path}")


def write_summary_file(workdir: Path, summary: dict[str, Any]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def command_run(args: argparse.Namespace) -> int:
    from gated_training.config import check_registry_parameters, validate_run_parameters
    from gated_training.local_run import run_compiled_pipeline
    from gated_training.pipeline_spec import component_inputs
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
            "pipeline_version": f"local:{pipeline_yaml}",
            "registry_uri": str(workdir / "registry"),
            "mlflow_tracking_uri": os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workdir / 'mlflow.db'}",
        }
        layers = [defaults_for_workdir, *(load_params_file(p) for p in args.params),
                  {k: v for k, v in named.items() if v is not None}, parse_assignments(args.set)]
        resolved = resolve_parameters(declared, layers)
        check_registry_parameters(str(resolved["registry_uri"]), str(resolved["model_name"]))  # '..' before resolving
        parameters = absolutise_local_paths(resolved)
        validate_run_parameters(parameters)
        from gated_training.registry import ModelRegistry
        from gated_training.signing import ensure_local_key

        ModelRegistry(parameters["registry_uri"], parameters["model_name"]).preflight()
        key_file = ensure_local_key()
        if key_file:
            print(f"registry versions are signed with the local key {key_file}")
    except GatedTrainingError as exc:
        summary = build_summary(validation=None, error=str(exc), failed_step="configuration")
        summary["tasks_ran"] = []
        summary["notification"] = "not sent: the run did not start"
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


# ---- the registry: history, rollback, promote, sync-mlflow, cleanup ------------------------------

def registry_from(args: argparse.Namespace) -> "ModelRegistry":
    """The registry the command names: checked as given (no '..'), then made absolute; the local
    signing key is used when no key or unsigned mode is configured."""
    from gated_training.config import check_registry_parameters
    from gated_training.registry import ModelRegistry
    from gated_training.signing import ensure_local_key

    check_registry_parameters(args.registry, args.model_name)
    uri = args.registry
    if not storage.is_gcs(uri):
        uri = str(Path(uri).resolve())
    registry = ModelRegistry(uri, args.model_name)
    registry.preflight()
    ensure_local_key()
    return registry


def command_history(args: argparse.Namespace) -> int:
    from gated_training.registry_ops import history

    registry = registry_from(args)
    rows, problems = history(registry)
    if not rows:
        print(f"no versions in {registry.root}")
    for row in rows:
        marker = "*" if row.champion else " "
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in row.metrics.items() if isinstance(v, (int, float)))
        print(f"{marker} {row.version}  {row.created_at or '-':20}  gate {row.gate or '-':8}  {metrics}")
        for event in row.promotions:
            print(f"      {event['action']} {event['at']} by {event['by']}: {event['reason']}"
                  + (f" (from {event['previous_version']})" if event.get("previous_version") else ""))
    champion = next((row.version for row in rows if row.champion), None)
    print(f"champion: {champion or 'none'}  (* marks it)")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


def command_move_champion(args: argparse.Namespace) -> int:
    from gated_training.registry_ops import move_champion, rollback

    registry = registry_from(args)
    if args.command == "rollback":
        pointer = rollback(registry, args.to, args.reason)
    else:
        pointer = move_champion(registry, args.version, args.reason, "manual_promote")
    print(f"champion: {pointer['version']} (was {pointer['previous_version'] or 'none'}); "
          f"{pointer['action']} by {pointer['promoted_by']} at {pointer['promoted_at']}: {pointer['reason']}")
    print("MLflow's champion alias is not moved by this command: run `gated-training sync-mlflow` to mirror it")
    return EXIT_OK


def command_sync_mlflow(args: argparse.Namespace) -> int:
    from gated_training.registry_ops import sync_mlflow
    from gated_training.tracking import resolve_tracking_uri

    print(sync_mlflow(registry_from(args), resolve_tracking_uri(args.tracking_uri or "")))
    return EXIT_OK


def command_cleanup(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from gated_training.registry_ops import cleanup

    results = cleanup(registry_from(args), args.delete, timedelta(minutes=args.older_than_minutes))
    if not results:
        print("no incomplete versions")
    for version, state in results:
        print(f"{version}  {state}")
    return EXIT_OK


def command_check_drift(args: argparse.Namespace) -> int:
    """The drift comparison alone, for a cron job or sensor deciding whether to trigger the pipeline."""
    from gated_training.config import DriftPolicy
    from gated_training.data import load_table
    from gated_training.steps.check_drift import check_batch

    policy = DriftPolicy(drift_psi_threshold=args.psi_threshold, drift_max_drifted_share=args.max_drifted_share,
                         drift_critical_features=args.critical_features, drift_severe_psi=args.severe_psi,
                         drift_severe_out_of_range=args.severe_out_of_range, new_columns=args.new_columns)
    registry = registry_from(args)
    table = load_table(args.data)
    outcome = check_batch(lambda: table.frame, table.sha256, args.target, registry.uri, registry.model_name, policy)
    record = {**outcome.to_json(), "retraining_advised": outcome.retraining_advised, "data_uri": args.data}
    if args.json:
        storage.write_bytes(args.json, (json.dumps(record, indent=2) + "\n").encode())
    if args.report:
        from gated_training.drift_report import render_drift_html

        storage.write_bytes(args.report, render_drift_html(outcome.to_json()).encode())
    report = outcome.report
    verdict = "retraining advised" if outcome.retraining_advised else "no retraining needed"
    print(f"{args.data} against champion {outcome.champion or '(none)'}: {verdict}")
    for line in outcome.reasons + outcome.notes:
        print(f"  - {line}")
    if report:
        drifted = [f["feature"] for f in report["features"] if f["drifted"]]
        print(f"  {report['drifted_share']:.0%} of {len(report['features'])} features drifted, max PSI "
              f"{report['max_psi']:.3f}" + (f": {', '.join(drifted)}" if drifted else ""))
    return EXIT_RETRAIN_ADVISED if outcome.retraining_advised else EXIT_OK


def add_registry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", default=str(DEFAULT_WORKDIR / "registry"),
                        help="registry root: a folder or gs://bucket/prefix (default: .gated-training/registry)")
    parser.add_argument("--model-name", dest="model_name", default="tabular-classifier")


# ---- Kubeflow: upload, submit, schedule -------------------------------------------------------

def connection_from(args: argparse.Namespace) -> "Connection":
    from gated_training.kubeflow import Connection, read_token

    return Connection(host=args.host, namespace=args.namespace, token=read_token(args.token_file),
                      sa_token_path=args.sa_token_path, kube_context=args.kube_context, ca_cert=args.ca_cert,
                      ui_host=args.ui_host)


def cluster_parameters(args: argparse.Namespace, package: "PipelinePackage") -> dict[str, Any]:
    """The parameters given (params files, then --set), typed by the YAML and validated with the defaults.

    Only what was given is sent: the run form in the UI shows the compiled defaults for the rest.
    """
    from gated_training.config import validate_run_parameters

    given: dict[str, Any] = {}
    for layer in [*(load_params_file(p) for p in args.params), parse_assignments(args.set)]:
        given.update(layer)
    merged = resolve_parameters(package.parameters, [given])  # types every value, rejects unknown names
    validate_run_parameters(merged)
    if not args.allow_pod_local_state:
        registry, tracking = str(merged.get("registry_uri") or ""), str(merged.get("mlflow_tracking_uri") or "")
        if not registry.startswith("gs://"):
            raise ConfigError(f"registry_uri={registry!r} is a path inside the pod and is lost when the pod ends: "
                              "set registry_uri=gs://bucket/prefix (or --allow-pod-local-state for a mounted volume)")
        if not tracking.startswith(("http://", "https://", "databricks")):
            raise ConfigError(f"mlflow_tracking_uri={tracking!r} would track into the pod's own file system: "
                              "set mlflow_tracking_uri=https://your-mlflow-server (or --allow-pod-local-state)")
    return {name: merged[name] for name in given}


def run_name_for(package_name: str) -> str:
    from datetime import datetime, timezone

    return f"{package_name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def command_upload(args: argparse.Namespace) -> int:
    from gated_training.kubeflow import connect, default_version_name, read_package, upload

    package = read_package(Path(args.pipeline))
    version = args.version_name or default_version_name(package)
    connection = connection_from(args)
    client = connect(connection)
    result = upload(client, connection, package, version, pipeline_name=args.pipeline_name,
                    description=args.description)
    name = args.pipeline_name or package.name
    if result.created_pipeline:
        print(f"created pipeline {name!r} (id {result.pipeline_id})")
    state = "uploaded" if result.created_version else "already uploaded, unchanged"
    print(f"pipeline version {version!r} {state} (id {result.version_id})")
    print(f"  schedule it: gated-training schedule create --version {version} --cron '0 0 2 * * *' ...")
    return EXIT_OK


def command_submit(args: argparse.Namespace) -> int:
    from gated_training.kubeflow import (RunRequest, connect, default_version_name, read_package, resolve_version,
                                         submit, wait_for_run)

    package = read_package(Path(args.pipeline))
    parameters = cluster_parameters(args, package)
    connection = connection_from(args)
    client = connect(connection)
    pipeline_name = args.pipeline_name or package.name
    version = resolve_version(client, connection, pipeline_name, args.version) if args.version else None
    if "pipeline_version" in package.parameters:  # recorded in the registry manifest
        parameters.setdefault("pipeline_version", args.version or default_version_name(package))
    request = RunRequest(experiment=args.experiment, run_name=args.run_name or run_name_for(pipeline_name),
                         parameters=parameters, package=None if version else package, version=version,
                         pipeline_root=args.pipeline_root, service_account=args.service_account)
    run_id = submit(client, connection, request)
    source = f"version {args.version!r}" if version else str(package.path)
    print(f"run {request.run_name!r} created from {source} in experiment {args.experiment!r} (id {run_id})")
    print(f"  {connection.run_url(run_id)}")
    if not args.wait:
        return EXIT_OK
    result = wait_for_run(client, connection, run_id, args.timeout, args.poll_seconds,
                          on_state=lambda state: print(f"  state: {state}", flush=True))
    for task, state in result.tasks:
        print(f"    {task}: {state}")
    print(f"run {result.state}: {result.outcome}" + (f" ({result.error})" if result.error else ""))
    return EXIT_OK if result.state == "SUCCEEDED" else EXIT_FAILED


def command_schedule_create(args: argparse.Namespace) -> int:
    from gated_training.kubeflow import (ScheduleRequest, connect, create_schedule, default_version_name,
                                         read_package, resolve_version)
    from gated_training.schedule_spec import parse_interval, validate_cron

    cron = validate_cron(args.cron) if args.cron else None
    interval = parse_interval(args.interval) if args.interval else None
    package = read_package(Path(args.pipeline))
    parameters = cluster_parameters(args, package)
    version = args.version or default_version_name(package)
    pipeline_name = args.pipeline_name or package.name
    connection = connection_from(args)
    client = connect(connection)
    pipeline_id, version_id = resolve_version(client, connection, pipeline_name, version)
    if "pipeline_version" in package.parameters:
        parameters.setdefault("pipeline_version", version)
    request = ScheduleRequest(
        name=args.name or f"{pipeline_name}-{'nightly' if cron else 'periodic'}", experiment=args.experiment,
        pipeline_id=pipeline_id, version_id=version_id, parameters=parameters, cron=cron, interval_seconds=interval,
        max_concurrency=args.max_concurrency, catchup=args.catchup, enabled=not args.disabled,
        pipeline_root=args.pipeline_root, service_account=args.service_account,
        description=f"{pipeline_name} version {version}",
    )
    schedule = create_schedule(client, connection, request)
    trigger = f"cron {cron!r}" if cron else f"every {interval} s"
    print(f"recurring run {request.name!r} created (id {schedule.recurring_run_id}): {trigger}, pinned to version "
          f"{version!r}, max {request.max_concurrency} at a time, {'catch-up' if args.catchup else 'no catch-up'}, "
          f"{'enabled' if request.enabled else 'disabled'}")
    return EXIT_OK


def command_schedule_list(args: argparse.Namespace) -> int:
    from gated_training.kubeflow import connect, describe_trigger, find_schedules

    connection = connection_from(args)
    schedules = find_schedules(connect(connection), connection)
    if not schedules:
        print("no recurring runs")
    for schedule in schedules:
        reference = schedule.pipeline_version_reference
        pinned = f"version id {reference.pipeline_version_id}" if reference else "embedded spec"
        state = {"ENABLE": "enabled", "DISABLE": "disabled"}.get(schedule.mode or "", schedule.mode or "")
        print(f"{schedule.recurring_run_id}  {schedule.display_name}  {state}  {describe_trigger(schedule)}  "
              f"{pinned}  {schedule.description or ''}".rstrip())
    return EXIT_OK


def command_schedule_change(args: argparse.Namespace) -> int:
    from gated_training.kubeflow import change_schedule, connect

    connection = connection_from(args)
    schedule = change_schedule(connect(connection), connection, args.schedule, args.action)
    print(f"recurring run {schedule.display_name!r} (id {schedule.recurring_run_id}): {args.action}d")
    return EXIT_OK


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Kubeflow connection (default: KF_PIPELINES_ENDPOINT, in-cluster, kube context)")
    group.add_argument("--host", help="KFP API endpoint, e.g. https://kubeflow.example.com/pipeline")
    group.add_argument("--namespace", help="your profile namespace on a multi-user Kubeflow")
    group.add_argument("--token-file", dest="token_file",
                       help="file holding a bearer token (default: $KF_PIPELINES_TOKEN)")
    group.add_argument("--sa-token-path", dest="sa_token_path",
                       help="projected service-account token, e.g. /var/run/secrets/kubeflow/pipelines/token")
    group.add_argument("--kube-context", dest="kube_context", help="kubeconfig context, when no host is given")
    group.add_argument("--ca-cert", dest="ca_cert", help="CA bundle for a private TLS certificate")
    group.add_argument("--ui-host", dest="ui_host", help="UI base URL for links (default: $KF_PIPELINES_UI_ENDPOINT or --host)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", action="append", default=[], metavar="FILE", help="YAML/JSON file of parameters")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="any pipeline parameter")
    parser.add_argument("--experiment", default="gated-training", help="KFP experiment (created if missing)")
    parser.add_argument("--pipeline-root", dest="pipeline_root", help="where KFP stores artifacts, e.g. gs://bucket/kfp")
    parser.add_argument("--service-account", dest="service_account",
                        help="Kubernetes service account the run's pods use (Workload Identity binds it to GCS)")
    parser.add_argument("--allow-pod-local-state", dest="allow_pod_local_state", action="store_true",
                        help="accept a non-gs:// registry and a non-server MLflow URI (only with mounted volumes)")


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

    drift = commands.add_parser("check-drift", help="compare a batch with the champion's reference profile; "
                                "exit 3 when retraining is advised (drift, or no champion), 0 otherwise")
    drift.add_argument("--data", required=True, help="CSV or Parquet: a path or gs://bucket/key")
    drift.add_argument("--target", required=True, help="the label column (left out of the comparison)")
    drift.add_argument("--psi-threshold", dest="psi_threshold", type=float, default=0.2,
                       help="a feature drifts above this PSI (default 0.2)")
    drift.add_argument("--max-drifted-share", dest="max_drifted_share", type=float, default=0.3,
                       help="the batch drifts when this share of features drifted (default 0.3)")
    drift.add_argument("--critical-features", dest="critical_features", default="",
                       help="comma-separated columns; any of them drifting drifts the batch")
    drift.add_argument("--severe-psi", dest="severe_psi", type=float, default=1.0,
                       help="one feature with at least this PSI drifts the batch whatever the share (default 1; 0: off)")
    drift.add_argument("--severe-out-of-range", dest="severe_out_of_range", type=float, default=0.1,
                       help="one feature with this share of values outside the champion's range or categories "
                            "drifts the batch (default 0.1; 0: off)")
    drift.add_argument("--new-columns", dest="new_columns", choices=("block", "ignore"), default="block",
                       help="columns the champion was not trained on: block (default) or ignore")
    drift.add_argument("--json", help="write the full result here (path or gs://)")
    drift.add_argument("--report", help="write the HTML drift report here (path or gs://)")
    add_registry_arguments(drift)
    drift.set_defaults(handler=command_check_drift)

    history = commands.add_parser("history", help="registry versions, metrics, gate verdicts; * marks the champion")
    add_registry_arguments(history)
    history.set_defaults(handler=command_history)
    rollback = commands.add_parser("rollback", help="move the champion back (verified, smoke-tested, audited)")
    rollback.add_argument("--to", help="the version to return to (default: the previous champion)")
    rollback.add_argument("--reason", default="rollback", help="recorded in the champion's history")
    add_registry_arguments(rollback)
    rollback.set_defaults(handler=command_move_champion)
    promote = commands.add_parser("promote", help="make a version the champion by hand (audited override)")
    promote.add_argument("version")
    promote.add_argument("--reason", required=True, help="why: recorded in the champion's history")
    add_registry_arguments(promote)
    promote.set_defaults(handler=command_move_champion)
    sync = commands.add_parser("sync-mlflow", help="point MLflow's champion alias at the registry's champion")
    sync.add_argument("--tracking-uri", dest="tracking_uri",
                      help="default: $MLFLOW_TRACKING_URI, else sqlite:///.gated-training/mlflow.db")
    add_registry_arguments(sync)
    sync.set_defaults(handler=command_sync_mlflow)
    cleanup = commands.add_parser("cleanup", help="find (and --delete) versions a crashed deploy left incomplete")
    cleanup.add_argument("--delete", action="store_true", help="delete them (default: only list)")
    cleanup.add_argument("--older-than-minutes", dest="older_than_minutes", type=float, default=60.0,
                         help="never delete a version younger than this: its deploy may be running (default 60)")
    add_registry_arguments(cleanup)
    cleanup.set_defaults(handler=command_cleanup)

    upload = commands.add_parser("upload", help="upload the compiled YAML to Kubeflow as a pipeline version")
    upload.add_argument("--pipeline", default=str(DEFAULT_PIPELINE), help="the compiled pipeline YAML")
    upload.add_argument("--pipeline-name", dest="pipeline_name", help="default: the name compiled into the YAML")
    upload.add_argument("--version-name", dest="version_name",
                        help="default: <package version>-<git commit>[-dirty]-<spec hash>")
    upload.add_argument("--description", default="", help="shown in the UI")
    add_connection_arguments(upload)
    upload.set_defaults(handler=command_upload)

    submit = commands.add_parser("submit", help="start a run on Kubeflow and print its URL")
    submit.add_argument("--pipeline", default=str(DEFAULT_PIPELINE), help="the compiled YAML (read for parameters)")
    submit.add_argument("--pipeline-name", dest="pipeline_name", help="default: the name compiled into the YAML")
    submit.add_argument("--version", help="run this uploaded pipeline version instead of sending the YAML")
    submit.add_argument("--run-name", dest="run_name", help="default: <pipeline>-<UTC timestamp>")
    submit.add_argument("--wait", action="store_true", help="follow the run; exit 1 unless it succeeds")
    submit.add_argument("--timeout", type=float, default=4 * 3600, help="seconds --wait waits (default 4 h)")
    submit.add_argument("--poll-seconds", dest="poll_seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    add_run_arguments(submit)
    add_connection_arguments(submit)
    submit.set_defaults(handler=command_submit)

    schedule = commands.add_parser("schedule", help="recurring runs: create, list, enable, disable, delete")
    schedule_commands = schedule.add_subparsers(dest="schedule_command", required=True)
    create = schedule_commands.add_parser("create", help="create a recurring run pinned to an uploaded version")
    trigger = create.add_mutually_exclusive_group(required=True)
    trigger.add_argument("--cron", help="6 fields, seconds first: '0 0 2 * * *' is 02:00 daily")
    trigger.add_argument("--interval", help="a period: 3600, 90m, 6h or 1d")
    create.add_argument("--name", help="default: <pipeline>-nightly (cron) or <pipeline>-periodic (interval)")
    create.add_argument("--pipeline", default=str(DEFAULT_PIPELINE), help="the compiled YAML (read for parameters)")
    create.add_argument("--pipeline-name", dest="pipeline_name", help="default: the name compiled into the YAML")
    create.add_argument("--version", help="the pipeline version to pin (default: this checkout's `upload` name)")
    create.add_argument("--max-concurrency", dest="max_concurrency", type=int, default=1,
                        help="runs allowed at once (default 1: a slow night never overlaps the next)")
    create.add_argument("--catchup", action="store_true", help="backfill intervals missed while paused (default: no)")
    create.add_argument("--disabled", action="store_true", help="create it paused")
    add_run_arguments(create)
    add_connection_arguments(create)
    create.set_defaults(handler=command_schedule_create)
    listing = schedule_commands.add_parser("list", help="list recurring runs")
    add_connection_arguments(listing)
    listing.set_defaults(handler=command_schedule_list)
    for action in ("enable", "disable", "delete"):
        change = schedule_commands.add_parser(action, help=f"{action} a recurring run, by id or name")
        change.add_argument("schedule", help="recurring run id or name")
        add_connection_arguments(change)
        change.set_defaults(handler=command_schedule_change, action=action)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except GatedTrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, ValueError, KeyError, TypeError) as exc:  # never a raw traceback for an operator
        if os.environ.get("GATED_TRAINING_DEBUG"):
            raise
        print(f"error: {args.command}: {type(exc).__name__}: {exc} (GATED_TRAINING_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
