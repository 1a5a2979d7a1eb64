"""Local commands: ``run`` (the compiled pipeline through kfp.local), ``suite init`` and
``check-drift``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from gated_training import logs
from gated_training.cli.common import (
    DEFAULT_PIPELINE,
    DEFAULT_WORKDIR,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RETRAIN_ADVISED,
    EXIT_USAGE,
    add_registry_arguments,
    layered_parameters,
    registry_from,
    say,
    write_summary_file,
)
from gated_training.data import storage
from gated_training.errors import ConfigError, GatedTrainingError
from gated_training.reports import drift_line

SUMMARY_EVENT_KEYS = (
    "outcome",
    "blocked_by",
    "reasons",
    "warnings",
    "candidate_metrics",
    "champion",
    "deployed",
    "mlflow_run_id",
    "tasks_ran",
    "reports",
    "step_usage",
)


def print_summary(summary: dict[str, Any], summary_path: Path) -> None:
    from gated_training.reports import number_or_dash as num

    outcome = summary["outcome"].upper()
    headline = f"{outcome}" + (f" by the {summary['blocked_by']} gate" if summary.get("blocked_by") else "")
    if logs.log_format() == "json":  # one event holding what the text below spells out
        logs.event(
            "run.summary",
            headline,
            severity="WARNING" if summary["outcome"] in ("blocked", "failed") else "INFO",
            version=str((summary.get("deployed") or {}).get("version") or ""),
            model=str((summary.get("parameters") or {}).get("model_name") or ""),
            summary_path=str(summary_path),
            **{key: summary.get(key) for key in SUMMARY_EVENT_KEYS if summary.get(key) is not None},
        )
        return
    print(f"\n=== {headline} ===")
    for reason in summary["reasons"]:
        print(f"  - {reason}")
    for warning in summary.get("warnings") or []:
        print(f"  warning: {warning}")
    line = drift_line(summary["drift"]) if summary.get("drift") else None
    if line:
        print(f"  {line}")
    if summary.get("candidate_metrics"):
        print("  candidate: " + ", ".join(f"{k}={num(v)}" for k, v in summary["candidate_metrics"].items()))
    if summary.get("champion"):
        metrics = summary["champion"]["metrics"] or {}
        scores = ", ".join(f"{k}={num(v)}" for k, v in metrics.items())
        print(f"  champion {summary['champion']['version']}" + (f": {scores}" if scores else ""))
    if summary.get("deployed"):
        print(f"  deployed version {summary['deployed']['version']} → {summary['deployed']['uri']}")
        print(f"  MLflow mirror: {summary['deployed']['mlflow_mirror']}")
    if summary.get("mlflow_run_id"):
        print(f"  MLflow run: {summary['mlflow_run_id']}")
    print(f"  steps run: {', '.join(summary.get('tasks_ran', [])) or 'none'}")
    reports = summary.get("reports") or {}
    if reports:
        print("  reports:")
        for name, path in reports.items():
            print(f"    {name}: {path}")
    usage = summary.get("step_usage") or {}
    if usage:
        print(
            "  step usage (wall s / peak RSS MiB): "
            + ", ".join(f"{step} {u['wall_seconds']:.1f}/{u['peak_rss_mib']:.0f}" for step, u in usage.items())
        )
    print(f"  summary: {summary_path}")


def command_run(args: argparse.Namespace) -> int:
    from gated_training.kubeflow import run_compiled_pipeline
    from gated_training.reports import build_summary

    workdir = Path(args.workdir)
    try:
        pipeline_yaml = Path(args.pipeline)
        if not pipeline_yaml.is_file():
            from gated_training.kubeflow import missing_pipeline_message

            raise ConfigError(missing_pipeline_message(pipeline_yaml))
        parameters = layered_parameters(
            pipeline_yaml,
            workdir_defaults={
                "pipeline_version": f"local:{pipeline_yaml}",
                "registry_uri": str(workdir / "registry"),
                "mlflow_tracking_uri": os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workdir / 'mlflow.db'}",
            },
            params_files=args.params,
            named={
                "data_uri": args.data,
                "target_column": args.target,
                "suite_uri": args.suite,
                "min_accuracy": args.min_accuracy,
                "registry_uri": args.registry,
                "mlflow_tracking_uri": args.tracking_uri,
            },
            assignments=args.set,
        )
        from gated_training.registry import ModelRegistry, current_signer, ensure_local_key

        ModelRegistry(parameters["registry_uri"], parameters["model_name"]).preflight()
        key_file = ensure_local_key()
        current_signer()  # a weak key or a key file open to others stops the run here, not at the first registry step
        if key_file:
            shown = Path(key_file)
            if shown.is_relative_to(Path.home()):
                shown = Path("~") / shown.relative_to(Path.home())
            say("run.signing_key", f"registry versions are signed with the local key {shown}", key_file=str(shown))
    except GatedTrainingError as exc:
        summary = build_summary(validation=None, error=str(exc), failed_step="configuration")
        summary["tasks_ran"] = []
        summary["notification"] = "not sent: the run did not start"
        write_summary_file(workdir, summary)
        say("run.refused", f"error: {exc}", severity="ERROR", stream=sys.stderr, error=str(exc))
        return EXIT_USAGE

    say(
        "run.started",
        f"Running {pipeline_yaml} locally on {parameters['data_uri']} (target {parameters['target_column']!r})",
        pipeline=str(pipeline_yaml),
        data_uri=parameters["data_uri"],
        target_column=parameters["target_column"],
    )
    result = run_compiled_pipeline(
        pipeline_yaml, parameters, workdir, progress=lambda line: say("run.progress", f"  {line}"), verbose=args.verbose
    )
    summary = result.summary
    summary["parameters"] = parameters
    summary_path = write_summary_file(workdir, summary)
    print_summary(summary, summary_path)
    if summary["outcome"] == "failed":
        say("run.failed", f"error: {summary['reasons'][0]}", severity="ERROR", stream=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def command_suite_init(args: argparse.Namespace) -> int:
    from gated_training.data import load_table
    from gated_training.validation import default_suite_uri, draft_suite

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


def command_check_drift(args: argparse.Namespace) -> int:
    """The drift comparison alone, for a cron job or sensor deciding whether to trigger the pipeline."""
    from gated_training.config import DriftPolicy
    from gated_training.data import load_table
    from gated_training.drift import check_batch

    policy = DriftPolicy(
        drift_psi_threshold=args.psi_threshold,
        drift_max_drifted_share=args.max_drifted_share,
        drift_critical_features=args.critical_features,
        drift_severe_psi=args.severe_psi,
        drift_severe_out_of_range=args.severe_out_of_range,
        new_columns=args.new_columns,
    )
    registry = registry_from(args)
    table = load_table(args.data)
    outcome = check_batch(lambda: table.frame, table.sha256, args.target, registry.uri, registry.model_name, policy)
    record = {**outcome.to_json(), "retraining_advised": outcome.retraining_advised, "data_uri": args.data}
    if args.json:
        storage.write_bytes(args.json, (json.dumps(record, indent=2) + "\n").encode())
    if args.report:
        from gated_training.drift import render_drift_html

        storage.write_bytes(args.report, render_drift_html(outcome.to_json()).encode())
    report = outcome.report
    verdict = "retraining advised" if outcome.retraining_advised else "no retraining needed"
    print(f"{args.data} against champion {outcome.champion or '(none)'}: {verdict}")
    for line in outcome.reasons + outcome.notes:
        print(f"  - {line}")
    if report:
        drifted = [f["feature"] for f in report["features"] if f["drifted"]]
        from gated_training.reports import number_or_dash, percent

        print(
            f"  {percent(report['drifted_share'])} of {len(report['features'])} features drifted, max PSI "
            f"{number_or_dash(report['max_psi'])}" + (f": {', '.join(drifted)}" if drifted else "")
        )
    return EXIT_RETRAIN_ADVISED if outcome.retraining_advised else EXIT_OK


def add_run_commands(commands: Any) -> None:
    run = commands.add_parser("run", help="run the compiled pipeline locally through kfp.local")
    run.add_argument("--data", help="CSV or Parquet: a path or gs://bucket/key")
    run.add_argument("--target", help="the label column")
    run.add_argument("--suite", help="GX suite JSON (default: <data name>.expectations.json beside the data)")
    run.add_argument(
        "--min-accuracy",
        type=float,
        dest="min_accuracy",
        help="model gate: minimum test accuracy in [0, 1] (the same as --set min_accuracy=…; default 0.85)",
    )
    run.add_argument("--registry", help="model registry: a folder or gs://bucket/prefix (default: WORKDIR/registry)")
    run.add_argument(
        "--tracking-uri",
        dest="tracking_uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///WORKDIR/mlflow.db)",
    )
    run.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="where summary.json, logs and outputs go")
    run.add_argument("--params", action="append", default=[], metavar="FILE", help="YAML/JSON file of parameters")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="any pipeline parameter")
    run.add_argument("--pipeline", default=str(DEFAULT_PIPELINE), help="the compiled pipeline YAML to run")
    run.add_argument("--verbose", action="store_true", help="stream every step's full log")
    run.set_defaults(handler=command_run)

    suite = commands.add_parser("suite", help="expectation suite tools")
    suite_commands = suite.add_subparsers(dest="suite_command", required=True)
    init = suite_commands.add_parser("init", help="draft a suite from a reference dataset")
    init.add_argument(
        "--data",
        required=True,
        help="a reference batch, CSV or Parquet (path or gs://): the draft's ranges, sets and null rates come from it",
    )
    init.add_argument("--target", required=True, help="the label column (its classes become a critical value set)")
    init.add_argument("--output", help="default: <data name>.expectations.json beside the data")
    init.add_argument("--force", action="store_true", help="overwrite an existing suite")
    init.set_defaults(handler=command_suite_init)

    drift = commands.add_parser(
        "check-drift",
        help="compare a batch with the champion's reference profile; "
        "exit 3 when retraining is advised (drift, or no champion), 0 otherwise",
    )
    drift.add_argument("--data", required=True, help="CSV or Parquet: a path or gs://bucket/key")
    drift.add_argument("--target", required=True, help="the label column (left out of the comparison)")
    drift.add_argument(
        "--psi-threshold",
        dest="psi_threshold",
        type=float,
        default=0.2,
        help="a feature drifts above this PSI (default 0.2)",
    )
    drift.add_argument(
        "--max-drifted-share",
        dest="max_drifted_share",
        type=float,
        default=0.3,
        help="the batch drifts when this share of features drifted (default 0.3)",
    )
    drift.add_argument(
        "--critical-features",
        dest="critical_features",
        default="",
        help="comma-separated columns; any of them drifting drifts the batch",
    )
    drift.add_argument(
        "--severe-psi",
        dest="severe_psi",
        type=float,
        default=1.0,
        help="one feature with at least this PSI drifts the batch whatever the share (default 1; 0: off)",
    )
    drift.add_argument(
        "--severe-out-of-range",
        dest="severe_out_of_range",
        type=float,
        default=0.1,
        help="one feature with this share of values outside the champion's range or categories "
        "drifts the batch (default 0.1; 0: off)",
    )
    drift.add_argument(
        "--new-columns",
        dest="new_columns",
        choices=("block", "ignore"),
        default="block",
        help="columns the champion was not trained on: block (default) or ignore",
    )
    drift.add_argument("--json", help="write the full result here (path or gs://)")
    drift.add_argument("--report", help="write the HTML drift report here (path or gs://)")
    add_registry_arguments(drift)
    drift.set_defaults(handler=command_check_drift)
