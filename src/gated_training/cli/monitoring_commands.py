"""``gated-training sink``: the prediction-log sink (KServe's payload logger sends it its events);
``gated-training monitor``: the compiled monitoring pipeline through kfp.local."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gated_training import logs
from gated_training.cli.common import (
    DEFAULT_WORKDIR,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_RETRAIN_ADVISED,
    EXIT_USAGE,
)

DEFAULT_MONITORING_PIPELINE = Path("compiled/monitoring_pipeline.yaml")


def add_monitoring_commands(commands: Any) -> None:
    from gated_training.predictionlog import SinkSettings

    defaults = SinkSettings(log_uri="-")
    sink = commands.add_parser(
        "sink",
        help="receive KServe payload-logger events and write them to the prediction log",
        description=(
            "Receive the CloudEvents of KServe's payload logger (spec.predictor.logger, mode all), pair each "
            "request with its response by ce-id, and write them as Parquet under LOG_URI "
            "(model=…/version=…/hour=…). Stops on SIGTERM after writing everything it holds."
        ),
    )
    sink.add_argument("--log-uri", required=True, help="the prediction-log prefix: a folder or gs://bucket/prefix")
    sink.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback; 0.0.0.0 in a pod)")
    sink.add_argument("--port", type=int, default=9800, help="port to listen on (default 9800)")
    sink.add_argument(
        "--max-buffered-events",
        type=int,
        default=defaults.max_buffered_events,
        help="events held in memory before the sink answers 503 (the agent then drops them, counted); "
        "also what a SIGKILL can lose",
    )
    sink.add_argument(
        "--flush-seconds",
        type=float,
        default=defaults.flush_seconds,
        help=f"write what is buffered at least this often (default {defaults.flush_seconds:g})",
    )
    sink.add_argument(
        "--flush-events",
        type=int,
        default=defaults.flush_events,
        help=f"write as soon as this many calls are paired (default {defaults.flush_events})",
    )
    sink.add_argument(
        "--pair-timeout-seconds",
        type=float,
        default=defaults.pair_timeout_seconds,
        help="keep a request (or response) aside as unpaired when its partner has not come by then "
        f"(default {defaults.pair_timeout_seconds:g})",
    )
    sink.add_argument(
        "--max-event-bytes",
        type=int,
        default=defaults.max_event_bytes,
        help=f"larger events are refused (413) and kept aside without their body (default {defaults.max_event_bytes})",
    )
    sink.add_argument(
        "--shutdown-seconds",
        type=float,
        default=25.0,
        help="how long a SIGTERM may take to write what the sink holds (keep under the pod's grace period)",
    )
    sink.set_defaults(handler=run_sink)

    monitor = commands.add_parser(
        "monitor",
        help="run the compiled monitoring pipeline locally through kfp.local",
        description=(
            "One monitoring window through the compiled monitoring pipeline (kfp.local): the champion's logged calls "
            "against its own contract, late labels joined, and on retrain the training pipeline nested, every gate "
            "included. Exit 0: ok, warn, no_traffic or no_labels_yet; 3: alert or retrain; 1: the run failed."
        ),
    )
    monitor.add_argument("--log-uri", help="the prediction log (default: WORKDIR/prediction-log)")
    monitor.add_argument("--labels", help="the label tables' folder or gs:// prefix (default: none)")
    monitor.add_argument("--window-end", help="the window's end, ISO 8601 with a zone (default: now)")
    monitor.add_argument(
        "--registry", help="model registry: a folder or gs://bucket/prefix (default: WORKDIR/registry)"
    )
    monitor.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///WORKDIR/mlflow.db)"
    )
    monitor.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="where summary.json, logs and outputs go")
    monitor.add_argument("--params", action="append", default=[], metavar="FILE", help="YAML/JSON file of parameters")
    monitor.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="any pipeline parameter")
    monitor.add_argument("--pipeline", default=str(DEFAULT_MONITORING_PIPELINE), help="the compiled YAML to run")
    monitor.add_argument("--verbose", action="store_true", help="stream every step's full log")
    monitor.set_defaults(handler=run_monitor)


def run_sink(args: argparse.Namespace) -> int:
    from gated_training.errors import GatedTrainingError
    from gated_training.predictionlog import SinkSettings, serve_sink

    try:
        settings = SinkSettings(
            log_uri=args.log_uri,
            max_buffered_events=args.max_buffered_events,
            flush_seconds=args.flush_seconds,
            flush_events=args.flush_events,
            pair_timeout_seconds=args.pair_timeout_seconds,
            max_event_bytes=args.max_event_bytes,
        )
    except GatedTrainingError as exc:
        print(f"error: {exc}")
        return EXIT_USAGE
    return serve_sink(settings, args.host, args.port, shutdown_seconds=args.shutdown_seconds)


MONITOR_PATH_PARAMETERS = ("prediction_log_uri", "labels_uri", "registry_uri")


def run_monitor(args: argparse.Namespace) -> int:
    from gated_training.cli.common import layered_parameters, say, write_summary_file
    from gated_training.config import MONITORING_FORM
    from gated_training.errors import GatedTrainingError
    from gated_training.kubeflow import run_monitoring_pipeline
    from gated_training.registry import ensure_local_key

    workdir = Path(args.workdir)
    try:
        pipeline_yaml = Path(args.pipeline)
        parameters = layered_parameters(
            pipeline_yaml,
            workdir_defaults={
                "prediction_log_uri": str(workdir / "prediction-log"),
                "registry_uri": str(workdir / "registry"),
                "mlflow_tracking_uri": os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workdir / 'mlflow.db'}",
            },
            params_files=args.params,
            named={
                "prediction_log_uri": args.log_uri,
                "labels_uri": args.labels,
                "window_end": args.window_end,
                "registry_uri": args.registry,
                "mlflow_tracking_uri": args.tracking_uri,
            },
            assignments=args.set,
            path_parameters=MONITOR_PATH_PARAMETERS,
            form=MONITORING_FORM,
            required="prediction_log_uri",
            kind="monitoring",
        )
        ensure_local_key()
    except GatedTrainingError as exc:
        say("monitor.refused", f"error: {exc}", severity="ERROR", stream=sys.stderr, error=str(exc))
        return EXIT_USAGE

    say(
        "monitor.started",
        f"Monitoring {parameters['model_name']} on {parameters['prediction_log_uri']} ({pipeline_yaml}, kfp.local)",
        model=parameters["model_name"],
        pipeline=str(pipeline_yaml),
    )
    result = run_monitoring_pipeline(
        pipeline_yaml,
        parameters,
        workdir,
        progress=lambda line: say("monitor.progress", f"  {line}"),
        verbose=args.verbose,
    )
    summary = {**result.summary, "parameters": parameters}
    path = write_summary_file(workdir, summary)
    if logs.log_format() == "json":
        say(
            "monitor.summary",
            f"monitoring: {summary['outcome']}",
            severity="WARNING" if summary["outcome"] in ("alert", "retrain", "failed") else "INFO",
            model=parameters["model_name"],
            summary_path=str(path),
            **{
                k: summary.get(k)
                for k in ("outcome", "reasons", "warnings", "retrain_run", "reports")
                if summary.get(k)
            },
        )
        return (
            EXIT_FAILED
            if summary["outcome"] == "failed"
            else (EXIT_RETRAIN_ADVISED if summary["outcome"] in ("alert", "retrain") else EXIT_OK)
        )
    print(f"\n=== monitoring: {str(summary['outcome']).upper()} ===")
    for reason in summary.get("reasons") or []:
        print(f"  - {reason}")
    for warning in summary.get("warnings") or []:
        print(f"  warning: {warning}")
    retrain = summary.get("retrain_run")
    if retrain:
        blocked = f" by the {retrain['blocked_by']} gate" if retrain.get("blocked_by") else ""
        print(f"  retrain run: {str(retrain['outcome']).upper()}{blocked}")
        for reason in (retrain.get("reasons") or [])[:5]:
            print(f"    - {reason}")
    for name, report in (summary.get("reports") or {}).items():
        print(f"  {name}: {report}")
    print(f"  summary: {path}")
    if summary["outcome"] == "failed":
        return EXIT_FAILED
    return EXIT_RETRAIN_ADVISED if summary["outcome"] in ("alert", "retrain") else EXIT_OK
