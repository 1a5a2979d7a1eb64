"""``gated-training``: run the compiled pipeline locally or on Kubeflow, draft expectation suites.

Exit codes: 0 deployed, blocked or skipped (a blocked run is a successful run that deployed
nothing), 1 failed (or the backend refused a request), 2 bad usage or configuration;
``check-drift`` exits 3 when retraining is advised, ``monitor`` on alert or retrain.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from gated_training.cli.common import EXIT_FAILED, EXIT_USAGE
from gated_training.cli.kubeflow_commands import add_kubeflow_commands
from gated_training.cli.loop import add_loop_command
from gated_training.cli.monitoring_commands import add_monitoring_commands
from gated_training.cli.registry_commands import add_registry_commands
from gated_training.cli.run_commands import add_run_commands
from gated_training.cli.serving_commands import add_serving_commands
from gated_training.errors import ConfigError, GatedTrainingError


def build_parser() -> argparse.ArgumentParser:
    from gated_training.cli.help_text import add_pages

    # The module docstring without its reStructuredText backticks.
    parser = argparse.ArgumentParser(
        prog="gated-training",
        description=__doc__.replace("``", "").strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_run_commands(commands)
    add_registry_commands(commands)
    add_kubeflow_commands(commands)
    add_serving_commands(commands)
    add_monitoring_commands(commands)
    add_loop_command(commands)
    add_pages(parser)
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
        print(
            f"error: {args.command}: {type(exc).__name__}: {exc} (GATED_TRAINING_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
