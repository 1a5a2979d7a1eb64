"""The child process of :class:`gated_training.tracking.runs.ExperimentCheck`: reads ``{"tracking_uri",
"experiment"}`` from stdin, opens or creates the experiment, answers one JSON object on stdout.

Run as ``python -m gated_training.tracking.experiment_check``; nothing imports it.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    from gated_training.errors import TrackingError
    from gated_training.tracking.runs import ensure_experiment

    try:
        request = json.loads(sys.stdin.buffer.read(1 << 16))
        uri, name = request["tracking_uri"], request["experiment"]
        if not isinstance(uri, str) or not isinstance(name, str):
            raise TypeError("tracking_uri and experiment must be strings")
    except (ValueError, KeyError, TypeError) as exc:
        print(json.dumps({"error": f"experiment check: a malformed request: {exc}"}), flush=True)
        return 2
    try:
        print(json.dumps({"experiment_id": ensure_experiment(uri, name)}), flush=True)
    except TrackingError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
