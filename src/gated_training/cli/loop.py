"""``gated-training loop``: the whole loop on one machine, with the real servers on loopback (``make loop``).

1. a champion: the training pipeline (kfp.local) on the bundled sample, unless the registry has one;
2. serving: MLServer with the verifying runtime (the serving venv), KServe's payload logger in front of it (the
   agent stand-in: queue of 100, one attempt per event, responses logged only on 200), the sink behind it;
3. traffic that drifts: the sample's rows with ``age`` moved up, each call with its own ``Ce-Id``;
4. late labels: a label table keyed by those ids, with a share of the outcomes no longer what the champion learnt;
5. the monitoring pipeline (the compiled YAML, kfp.local) on the window: drift and a realized accuracy drop, the
   report, and the retrain it starts, the training pipeline nested, every gate included.

The integration test drives this command; its summary says what each stage did.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from gated_training.cli.common import DEFAULT_WORKDIR, EXIT_FAILED, EXIT_OK, load_params_file

SAMPLE_PARAMS = Path("data/german_credit.params.yaml")
SINK_FLUSH_SECONDS = 1.0


def _wait_http(url: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{log.stem} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s: {log.read_text(errors='replace')[-2000:]}")


def _wait_port(port: int, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    """Listening: a connection is accepted (a request through the logger would itself be logged)."""
    import socket

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{log.stem} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"port {port} did not open within {seconds:.0f} s: {log.read_text(errors='replace')[-2000:]}")


def _start(command: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def _v2_request(row: dict[str, Any]) -> bytes:
    inputs = []
    for name, value in row.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        inputs.append(
            {
                "name": name,
                "shape": [1, 1],
                "datatype": "FP64" if number else "BYTES",
                "data": [None if value != value else value] if number else [value],  # NaN → null
            }
        )
    return json.dumps({"inputs": inputs}).encode()


def _post(url: str, body: bytes, call_id: str) -> int:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json", "Ce-Id": call_id})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def registry_of(registry_uri: str, model_name: str) -> Any:
    from gated_training.registry import ModelRegistry, ensure_local_key

    ensure_local_key()
    return ModelRegistry(registry_uri, model_name)


def run_loop(
    workdir: Path,
    *,
    params: Path = SAMPLE_PARAMS,
    calls: int = 1200,
    age_shift: int = 15,
    changed_outcomes: float = 0.35,
    seed: int = 7,
    say: Any = print,
) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from gated_training.cli import main as cli_main
    from gated_training.config import group_of
    from gated_training.serving import local_server, service_name

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sample = load_params_file(str(params))
    model_name = str(sample.get("model_name") or "tabular-classifier")
    registry, tracking = str(workdir / "registry"), f"sqlite:///{workdir / 'mlflow.db'}"
    log_uri, labels_uri = workdir / "prediction-log", workdir / "labels"
    summary: dict[str, Any] = {"workdir": str(workdir)}

    say("1/5 champion")
    if registry_of(registry, model_name).champion() is None:
        code = cli_main(
            ["run", "--params", str(params), "--workdir", str(workdir / "training"), "--registry", registry,
             "--tracking-uri", tracking]
        )  # fmt: skip
        if code != EXIT_OK:
            raise RuntimeError(f"the first training run did not deploy (exit {code}): see {workdir / 'training'}")
    store = registry_of(registry, model_name)
    champion = store.champion()
    summary["champion"] = champion.version

    say("2/5 serving: MLServer (verifying runtime), the payload logger, the sink")
    service = service_name(model_name)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    serving_root = workdir / f"serving-{stamp}"
    mount = local_server.mounted_copy(Path(store.version_uri(champion.version)), serving_root / "mnt")
    server = local_server.MLServer(
        serving_root,
        model_folder=mount,
        name=service,
        registry_uri=registry,
        model_name=model_name,
        version=champion.version,
        manifest_sha256=champion.manifest_sha256,
    )
    sink_port, agent_port = local_server.free_port(), local_server.free_port()
    sink_log, agent_log = serving_root / "sink.log", serving_root / "agent.log"
    sink = _start(
        [sys.executable, "-m", "gated_training.cli", "sink", "--log-uri", str(log_uri), "--port", str(sink_port),
         "--flush-seconds", str(SINK_FLUSH_SECONDS), "--pair-timeout-seconds", "10"],
        sink_log,
    )  # fmt: skip
    agent = _start(
        [sys.executable, "-m", "gated_training.predictionlog.agent", "--predictor", server.url,
         "--log-url", f"http://127.0.0.1:{sink_port}/", "--inference-service", service, "--namespace", "local",
         "--port", str(agent_port)],
        agent_log,
    )  # fmt: skip
    data = pd.read_csv(str(sample.get("data_uri") or "data/german_credit.csv"))
    target = str(sample.get("target_column") or "risk")
    try:
        if not server.wait_ready(timeout=120):
            raise RuntimeError(f"MLServer did not get ready: {server.log[-3000:]}")
        _wait_http(f"http://127.0.0.1:{sink_port}/healthz", sink, sink_log)
        _wait_port(agent_port, agent, agent_log)

        say(f"3/5 traffic: {calls} calls through the payload logger, age moved up by {age_shift}")
        rng = np.random.default_rng(seed)
        rows = data.sample(calls, replace=True, random_state=seed).reset_index(drop=True)
        truth = rows.pop(target)
        if "age" in rows.columns:
            rows["age"] = rows["age"] + age_shift
        ids = [f"loop-{stamp}-{i:05d}" for i in range(calls)]
        url = f"http://127.0.0.1:{agent_port}/v2/models/{service}/infer"
        records = rows.to_dict(orient="records")
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda i: _post(url, _v2_request(records[i]), ids[i]), range(calls)))
        summary["calls"] = {"sent": calls, "answered_200": statuses.count(200)}
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)  # the agent sends what it queued before it exits
        except subprocess.TimeoutExpired:
            agent.kill()
        sink.send_signal(signal.SIGTERM)  # the sink writes everything it holds
        sink_code = sink.wait(timeout=60)
        server.__exit__(None, None, None)
    summary["sink_exit"] = sink_code

    say(f"4/5 late labels: {changed_outcomes:.0%} of the outcomes changed")
    labels = truth.to_numpy().copy()
    classes = sorted(set(labels.tolist()))
    changed = rng.random(calls) < changed_outcomes
    labels[changed] = [classes[(classes.index(v) + 1) % len(classes)] for v in labels[changed]]
    known = datetime.now(timezone.utc)
    labels_uri.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"request_id": ids, "label": labels, "event_time": [known.isoformat().replace("+00:00", "Z")] * calls}
    ).to_csv(labels_uri / f"labels-{stamp}.csv", index=False)

    say("5/5 the monitoring pipeline (kfp.local): the window, the report, the retrain")
    training_settings = [
        f"{key}={json.dumps(value) if not isinstance(value, str) else value}"
        for key, value in sample.items()
        if group_of(key) and group_of(key) != "monitoring"
    ]
    end = (known + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    argv = [
        "monitor", "--log-uri", str(log_uri), "--labels", str(labels_uri), "--registry", registry,
        "--tracking-uri", tracking, "--workdir", str(workdir / "monitoring"), "--window-end", end,
        "--set", "monitoring.window_hours=1", "--set", "monitoring.performance_window_hours=1",
    ]  # fmt: skip
    for setting in training_settings:
        argv += ["--set", setting]
    summary["monitor_exit"] = cli_main(argv)
    monitored = json.loads((workdir / "monitoring" / "summary.json").read_text())
    summary["monitoring"] = monitored
    retrain = monitored.get("retrain_run") or {}
    say(
        f"monitoring: {monitored['outcome']}; retrain: {retrain.get('outcome', 'none')}"
        + (f" by the {retrain['blocked_by']} gate" if retrain.get("blocked_by") else "")
    )
    (workdir / "loop-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def add_loop_command(commands: Any) -> None:
    loop = commands.add_parser(
        "loop",
        help="the monitoring loop on this machine: serve, log, drift, label, monitor, retrain (make loop)",
        description=__doc__.split("\n\n", 1)[1].replace("``", "") if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    loop.add_argument("--workdir", default=str(DEFAULT_WORKDIR / "loop"), help="where everything the loop makes goes")
    loop.add_argument("--params", default=str(SAMPLE_PARAMS), help="the training parameters (the bundled sample's)")
    loop.add_argument("--calls", type=int, default=1200, help="calls sent through the payload logger (default 1200)")
    loop.add_argument("--age-shift", type=int, default=15, help="how far the callers' ages move up (default 15)")
    loop.add_argument(
        "--changed-outcomes", type=float, default=0.35, help="share of late labels that differ (default 0.35)"
    )
    loop.set_defaults(handler=command_loop)


def command_loop(args: argparse.Namespace) -> int:
    try:
        summary = run_loop(
            Path(args.workdir),
            params=Path(args.params),
            calls=args.calls,
            age_shift=args.age_shift,
            changed_outcomes=args.changed_outcomes,
        )
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    reports = summary["monitoring"].get("reports") or {}
    print(f"  report: {reports.get('monitor-window/report_html', 'none')}")
    print(f"  summary: {Path(summary['workdir']) / 'loop-summary.json'}")
    return EXIT_OK if summary["monitoring"]["outcome"] != "failed" else EXIT_FAILED
