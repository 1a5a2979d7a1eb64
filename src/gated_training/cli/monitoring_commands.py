"""``gated-training sink``: the prediction-log sink (KServe's payload logger sends it its events)."""

from __future__ import annotations

import argparse
from typing import Any

from gated_training.cli.common import EXIT_USAGE


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
