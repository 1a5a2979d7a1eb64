"""A deploy in its own process, for the concurrency and crash tests: ``python -m tests.robustness.deploy_worker SPEC``.

SPEC is a JSON file: {"name", "rounds", "dir"}. For each round r the worker waits until
``<dir>/go-<r>.json`` exists (the arguments of ``deploy_model``), deploys, and writes
``<dir>/result-<r>-<name>.json``. Two workers started together race on every round; the
parent sets a round up only after both finished the previous one.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

from gated_training.steps.deploy_model import deploy_model


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    directory = Path(spec["dir"])
    for round_number in range(spec["rounds"]):
        go = directory / f"go-{round_number}.json"
        while not go.exists():
            time.sleep(0.005)
        arguments = json.loads(go.read_text())[spec["name"]]
        try:
            outcome = deploy_model(**arguments).to_json()
        except Exception as exc:  # reported to the parent, which fails the test with it
            outcome = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        result = directory / f"result-{round_number}-{spec['name']}.json"
        result.with_suffix(".tmp").write_text(json.dumps(outcome))
        result.with_suffix(".tmp").rename(result)


if __name__ == "__main__":
    main(sys.argv[1])
