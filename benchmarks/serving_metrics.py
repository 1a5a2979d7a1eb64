"""`make bench-serving`: what the runtime's metrics cost per request.

MLServer with our runtime serves the sample's champion twice, with its metrics and with them off
(``GATED_TRAINING_SERVING_METRICS=off``); each gets the same warm-up and then ``--requests`` one-row V2 requests
and one-row V1 requests, one at a time over one kept-alive connection; client-side p50/p95 per protocol. Appends a
section to docs/benchmarks-monitoring.md and prints the JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _latencies(port: int, path: str, bodies: list[bytes]) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    for body in bodies:
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        out.append(time.perf_counter() - started)
        assert answer.status == 200, answer.status
    return out


def measure(work: Path, requests: int) -> dict[str, Any]:
    import pandas as pd

    from benchmarks.monitoring import write_log  # the same champion (trained once under work/champion)
    from gated_training.registry import ModelRegistry
    from gated_training.serving import layout, local_server
    from tests.serving_requests import v1_request, v2_request

    _, _, _, registry_uri, version = write_log(work, 10)
    registry = ModelRegistry(registry_uri, "tabular-classifier")
    champion = registry.champion()
    rows = pd.read_csv(REPO / "data" / "german_credit.csv").drop(columns=["risk"]).sample(requests, random_state=0)
    v2 = [json.dumps(v2_request(rows.iloc[[i]])).encode() for i in range(len(rows))]
    v1 = [json.dumps(v1_request(rows.iloc[[i]])).encode() for i in range(len(rows))]
    result: dict[str, Any] = {"requests": requests}
    for label, setting in (("with metrics", ""), ("without metrics", "off")):
        os.environ["GATED_TRAINING_SERVING_METRICS"] = setting
        root = work / f"serving-{setting or 'on'}"
        shutil.rmtree(root, ignore_errors=True)  # a previous run's mount would stop this one
        mount = local_server.mounted_copy(Path(registry.version_uri(version)), root / "mnt")
        name = layout.service_name("tabular-classifier")
        with local_server.MLServer(
            root, model_folder=mount, name=name, registry_uri=registry_uri, model_name="tabular-classifier",
            version=version, manifest_sha256=champion.manifest_sha256,
        ) as server:  # fmt: skip
            assert server.wait_ready(), server.log
            _latencies(server.http, f"/v2/models/{name}/infer", v2[:50])  # warm-up
            numbers = {}
            for protocol, path, bodies in (
                ("v2", f"/v2/models/{name}/infer", v2),
                ("v1", f"/v1/models/{name}:predict", v1),
            ):
                times = np.asarray(_latencies(server.http, path, bodies)) * 1000
                numbers[protocol] = {"p50_ms": round(float(np.percentile(times, 50)), 2),
                                     "p95_ms": round(float(np.percentile(times, 95)), 2)}  # fmt: skip
            result[label] = numbers
    os.environ.pop("GATED_TRAINING_SERVING_METRICS", None)
    return result


def markdown(result: dict[str, Any]) -> str:
    on, off = result["with metrics"], result["without metrics"]
    lines = [
        "",
        "## What the serving metrics cost",
        "",
        f"`make bench-serving`: MLServer with our runtime, {result['requests']} one-row requests per protocol, one at "
        "a time, client-side, with the runtime's metrics and with them off (`GATED_TRAINING_SERVING_METRICS=off`):",
        "",
        "| protocol | p50 with | p50 without | p95 with | p95 without |",
        "|---|---|---|---|---|",
    ]
    for protocol in ("v2", "v1"):
        lines.append(
            f"| {protocol.upper()} | {on[protocol]['p50_ms']} ms | {off[protocol]['p50_ms']} ms | "
            f"{on[protocol]['p95_ms']} ms | {off[protocol]['p95_ms']} ms |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--workdir", default=str(REPO / ".bench" / "monitoring"))
    parser.add_argument("--output", default=str(REPO / "docs" / "benchmarks-monitoring.md"))
    args = parser.parse_args(argv)
    result = measure(Path(args.workdir), args.requests)
    print(json.dumps(result, indent=2))
    output = Path(args.output)
    text = output.read_text() if output.exists() else ""
    text = text.split("\n## What the serving metrics cost\n")[0].rstrip("\n") + "\n"
    output.write_text(text + markdown(result))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main(sys.argv[1:]))
