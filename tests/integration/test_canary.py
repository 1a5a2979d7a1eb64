"""The canary judged on live evidence, end to end on two real versions of the sample (a strong forest and a weak
one), a loopback Kubernetes API holding the InferenceService with its canary (tests/kube_api_server.py), logged
calls answered by each version, late labels, and a real Prometheus (Debian's) whose TSDB holds the serving runtime's
series for the windows (backfilled with promtool from OpenMetrics, as the runtime exports them).

Windows end at the last full hour, so the series are recent for Prometheus whenever the test runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gated_training.config import DriftPolicy, MonitoringRunSettings, MonitoringSettings, ServingSettings
from gated_training.registry import ModelRegistry, ensure_local_key
from gated_training.serving import KServeClient, manifests
from gated_training.serving.local_server import free_port
from gated_training.steps.monitor_window import monitor_window
from tests.conftest import REPO_ROOT, SAMPLE_DATA
from tests.integration.conftest import WEAK_MODEL, LocalSetup, copy_setup
from tests.kube_api_server import KubeApiServer
from tests.loopback import LoopbackServer
from tests.prediction_traffic import log_calls, write_labels
from tests.registry_helpers import registry_bytes
from tests.robustness.test_hostile_monitoring import assert_escaped
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration
MODEL = "tabular-classifier"
NAMESPACE = "team-a"
CORPUS = REPO_ROOT / "tests" / "bad_inputs"
END = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


@pytest.fixture(scope="module")
def versions(sample_champion, tmp_path_factory) -> tuple[LocalSetup, str, str]:
    """The sample's champion (strong), then a weak forest deployed over it: (setup, strong, weak)."""
    setup = copy_setup(sample_champion, tmp_path_factory.mktemp("canary-versions") / "setup")
    strong = setup.champion_version()
    result = setup.run(*WEAK_MODEL, "--set", "max_regression=1", name="weak")
    assert result.summary["outcome"] == "deployed", result.summary["reasons"]
    return setup, strong, setup.champion_version()


class World:
    def __init__(self, versions, root: Path, api: KubeApiServer) -> None:
        ensure_local_key()
        template, self.strong, self.weak = versions
        self.setup = copy_setup(template, root / "setup")
        self.registry = ModelRegistry(str(self.setup.registry), MODEL)
        self.root, self.api = root, api
        self.log, self.labels = root / "log", root / "labels"
        data = pd.read_csv(SAMPLE_DATA)
        self.truth, self.data = data.pop("risk"), data

    def champion_is(self, version: str) -> None:
        champion = self.registry.champion()
        if champion.version != version:
            self.registry.promote(version, self.registry.read_manifest(version)[1], champion.token, reason="test")

    def serve(self, stable: str, canary: str, percent: int = 10) -> None:
        """The InferenceService as serve-model leaves it: the stable version, then a canary of the champion."""

        def release(version: str) -> manifests.Release:
            return manifests.Release(
                model_name=MODEL,
                version=version,
                manifest_sha256=self.registry.read_manifest(version)[1],
                registry_uri=str(self.setup.registry),
                storage_uri=f"gs://models/registry/{MODEL}/versions/{version}/serve",
            )

        client = KServeClient(self.api.url)
        client.create(manifests.inference_service(namespace=NAMESPACE, release=release(stable), mode="Knative"))
        current = client.get(manifests.ISVC_PLURAL, NAMESPACE, MODEL)
        client.patch(manifests.ISVC_PLURAL, NAMESPACE, MODEL, manifests.canary_patch(current, release(canary), percent))

    def traffic(self, version: str, n: int, end: datetime, *, seed: int, labelled: bool = True) -> None:
        rows = self.data.sample(n, replace=True, random_state=seed)
        truth = self.truth.loc[rows.index].tolist()
        rows = rows.reset_index(drop=True)
        model, _ = self.registry.load_verified(version)
        start = end - timedelta(hours=20)
        ids = log_calls(self.log, MODEL, version, rows, model, start, spacing=timedelta(hours=18) / n)
        if labelled:
            write_labels(
                self.labels / f"{version}-{seed}.csv", [(i, t, end - timedelta(minutes=5)) for i, t in zip(ids, truth)]
            )

    def monitor(self, end: datetime, *, prometheus: str = "", labels: bool = True, hook: str = "", **serving):
        run = MonitoringRunSettings(
            prediction_log_uri=str(self.log),
            labels_uri=str(self.labels) if labels else "",
            registry_uri=str(self.setup.registry),
            model_name=MODEL,
            mlflow_tracking_uri=self.setup.tracking_uri,
            notify_webhook_url=hook,
        )
        out = self.root / f"out-{len(list(self.root.glob('out-*')))}"
        out.mkdir()
        paths = [str(out / name) for name in ("r.json", "r.md", "r.html")]
        outcome, _ = monitor_window(
            run=run,
            settings=MonitoringSettings(label_delay_hours=24, prometheus_url=prometheus),
            policy=DriftPolicy(),
            end=end,
            result_out=paths[0],
            markdown_out=paths[1],
            html_out=paths[2],
            kfp_run_id="run-1",
            serving=ServingSettings(serving_namespace=NAMESPACE, **{"canary_min_calls": 100, **serving}),
            kube_api_url=self.api.url,
        )
        return outcome, json.loads(Path(paths[0]).read_text()), Path(paths[1]).read_text(), Path(paths[2]).read_text()

    def served(self) -> tuple[str, int]:
        state = manifests.describe(self.api.objects[("inferenceservices", NAMESPACE, MODEL)])
        return state.version, state.canary_percent


@pytest.fixture
def world(versions, tmp_path):
    with KubeApiServer() as api:
        yield World(versions, tmp_path, api)


def series(versions: dict[str, tuple[float, float, float]], end: datetime, hours: int = 80) -> str:
    """OpenMetrics for promtool's backfill: per version (requests a minute, refused share, seconds of a typical
    answer), the runtime's request counters and duration histogram, one sample a minute up to ``end``."""
    lines = ["# TYPE gated_training_requests counter", "# TYPE gated_training_request_duration_seconds histogram"]
    requests, durations = [], []
    for version, (per_minute, refused, seconds) in versions.items():
        for outcome, share in (("ok", 1 - refused), ("error", refused)):
            for minute in range(hours * 60 + 1):
                stamp = end.timestamp() - (hours * 60 - minute) * 60
                labels = f'model="{MODEL}",version="{version}",protocol="v2",outcome="{outcome}"'
                requests.append(
                    f"gated_training_requests_total{{{labels}}} {minute * per_minute * share:.1f} {stamp:.0f}"
                )
        for le, share in (("0.01", 0.0), (f"{seconds:g}", 0.5), (f"{seconds * 2:g}", 0.97), ("+Inf", 1.0)):
            for minute in range(hours * 60 + 1):
                stamp = end.timestamp() - (hours * 60 - minute) * 60
                labels = f'model="{MODEL}",version="{version}",protocol="v2",le="{le}"'
                count = minute * per_minute * share
                durations.append(f"gated_training_request_duration_seconds_bucket{{{labels}}} {count:.1f} {stamp:.0f}")
    return "\n".join([lines[0], *requests, lines[1], *durations, "# EOF"]) + "\n"


class Prometheus:
    """Debian's Prometheus on a TSDB backfilled with promtool: a real query engine over chosen series."""

    def __init__(self, root: Path, openmetrics: str) -> None:
        binary, promtool = shutil.which("prometheus"), shutil.which("promtool")
        assert binary and promtool, "prometheus is missing: `make test` installs it (apt-get install prometheus)"
        root.mkdir(parents=True, exist_ok=True)
        (root / "series.om").write_text(openmetrics)
        subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(root / "series.om"), str(root / "tsdb")],
            check=True,
            capture_output=True,
        )
        (root / "prometheus.yml").write_text(yaml.safe_dump({"global": {"scrape_interval": "1m"}}))
        port = free_port()
        self.process = subprocess.Popen(
            [binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}",
             "--storage.tsdb.retention.time=3650d", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=(root / "prometheus.log").open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url, self.log = f"http://127.0.0.1:{port}", root / "prometheus.log"
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None and time.monotonic() < deadline, self.log.read_text()
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def test_a_weaker_canary_is_aborted_on_paired_accuracy_and_the_registry_goes_back(world):
    world.serve(stable=world.strong, canary=world.weak)  # the weak version is the champion, as deploy left it
    assert world.registry.champion().version == world.weak
    for version, n, seed in ((world.strong, 500, 1), (world.weak, 500, 2)):
        world.traffic(version, n, END, seed=seed)
    with WebhookReceiver() as hook:
        outcome, record, markdown, page = world.monitor(END, hook=hook.url)
        posted = list(hook.posts)
    canary = record["canary"]
    evidence = {e["criterion"]: e for e in canary["evidence"]}
    assert (canary["canary"], canary["stable"], canary["verdict"], canary["action"]) == (
        world.weak,
        world.strong,
        "worse",
        "abort",
    ), canary
    accuracy = evidence["accuracy"]
    assert accuracy["result"] == "worse" and accuracy["numbers"]["labelled"] == 1000
    assert accuracy["numbers"]["high"] < 0 and accuracy["numbers"]["p_value"] < 0.05, accuracy["text"]
    assert evidence["errors"]["result"] == "not_measured" and evidence["traffic"]["result"] == "healthy"
    # The canary lost its traffic, and the registry champion is the stable version again, with the reason.
    assert world.served() == (world.weak, 0)
    pointer = world.registry.champion().pointer
    assert pointer["version"] == world.strong and pointer["action"] == "rollback"
    assert pointer["reason"].startswith("canary analysis, window to") and "accuracy" in pointer["reason"]
    assert outcome.outcome == "alert" and any(f["code"] == "canary" for f in record["findings"])
    assert "Canary aborted" in posted[0]["json"]["text"] and world.weak in posted[0]["json"]["text"]
    assert f"Canary {world.weak} against {world.strong}: WORSE" in markdown and "paired bootstrap" in markdown
    assert "<h2>Canary" in page and Path(canary["recorded"]).is_file()


def test_a_canary_as_good_as_stable_is_promoted_after_three_healthy_windows_and_not_before(world, tmp_path):
    world.champion_is(world.strong)  # the strong version is the canary over the weak one
    world.serve(stable=world.weak, canary=world.strong, percent=20)
    prometheus = Prometheus(
        tmp_path / "prometheus",
        series({world.strong: (20, 0.0, 0.02), world.weak: (80, 0.0, 0.02)}, END),
    )
    try:
        ends = [END - timedelta(hours=48), END - timedelta(hours=36), END - timedelta(hours=24), END]
        for number, end in enumerate(ends):
            world.traffic(world.strong, 200, end, seed=10 + number)
            world.traffic(world.weak, 200, end, seed=20 + number)
        decisions = []
        for end in ends:
            before = registry_bytes(world.setup.registry)
            _, record, _, _ = world.monitor(end, prometheus=prometheus.url)
            canary = record["canary"]
            decisions.append((canary["verdict"], canary["healthy_windows"], canary["action"], world.served()))
            evidence = {e["criterion"]: e for e in canary["evidence"]}
            assert evidence["errors"]["result"] == "healthy", evidence["errors"]["text"]
            assert evidence["latency"]["result"] == "healthy", evidence["latency"]["text"]
            assert evidence["accuracy"]["result"] == "healthy", evidence["accuracy"]["text"]
            assert registry_bytes(world.setup.registry) == before  # promoting moves traffic, never the registry
    finally:
        prometheus.stop()
    # -36h overlaps -48h's window (24 h each): it is healthy, but not a second window of evidence.
    assert decisions == [
        ("healthy", 1, "hold", (world.strong, 20)),
        ("healthy", 1, "hold", (world.strong, 20)),
        ("healthy", 2, "hold", (world.strong, 20)),
        ("healthy", 3, "promote", (world.strong, 0)),
    ], decisions
    assert world.registry.champion().version == world.strong


def test_errors_measured_by_prometheus_abort_a_canary_without_labels(world, tmp_path):
    world.serve(stable=world.strong, canary=world.weak)
    world.traffic(world.strong, 300, END, seed=3, labelled=False)
    world.traffic(world.weak, 300, END, seed=4, labelled=False)
    prometheus = Prometheus(
        tmp_path / "prometheus",
        series({world.weak: (10, 0.08, 0.02), world.strong: (90, 0.001, 0.02)}, END, hours=26),
    )
    try:
        _, record, _, _ = world.monitor(END, prometheus=prometheus.url, labels=False)
    finally:
        prometheus.stop()
    canary = record["canary"]
    evidence = {e["criterion"]: e for e in canary["evidence"]}
    assert evidence["errors"]["result"] == "worse" and evidence["accuracy"]["result"] == "not_measured"
    assert "refused: canary 1152/14400" in evidence["errors"]["text"], evidence["errors"]["text"]
    assert canary["action"] == "abort" and world.registry.champion().version == world.strong
    assert world.served() == (world.weak, 0)


def test_a_prometheus_that_is_down_holds_the_canary_and_nothing_moves(world):
    world.serve(stable=world.strong, canary=world.weak)
    world.traffic(world.strong, 200, END, seed=5, labelled=False)
    world.traffic(world.weak, 200, END, seed=6, labelled=False)
    before = registry_bytes(world.setup.registry)
    _, record, _, _ = world.monitor(END, prometheus=f"http://127.0.0.1:{free_port()}", labels=False)
    canary = record["canary"]
    evidence = {e["criterion"]: e for e in canary["evidence"]}
    assert canary["verdict"] == "hold" and canary["action"] == "hold"
    assert evidence["errors"]["result"] == "hold" and "requests not read" in evidence["errors"]["text"]
    assert world.served() == (world.weak, 10) and registry_bytes(world.setup.registry) == before


def test_without_a_canary_in_the_service_nothing_is_judged(world):
    world.serve(stable=world.strong, canary=world.weak, percent=100)
    world.traffic(world.weak, 150, END, seed=7, labelled=False)
    _, record, _, _ = world.monitor(END, labels=False)
    assert record["canary"] is None


class HostilePrometheus(LoopbackServer):
    """Answers every query with one case of tests/bad_inputs/prometheus/answers.jsonl."""

    def __init__(self, case: dict, canary: str) -> None:
        body = case["body"].replace("{canary}", canary)
        if body == "{huge}":
            body = json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": []}, "pad": "x" * 2_000_000}
            )
        payload, status, content_type = body.encode(), case["status"], case["content_type"]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.start_serving(Handler)


ANSWERS = [json.loads(line) for line in (CORPUS / "prometheus" / "answers.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("case", ANSWERS, ids=[c["case"] for c in ANSWERS])
def test_hostile_prometheus_answers_hold_the_canary(world, case):
    world.serve(stable=world.strong, canary=world.weak)
    world.traffic(world.strong, 120, END, seed=8, labelled=False)
    world.traffic(world.weak, 120, END, seed=9, labelled=False)
    before = registry_bytes(world.setup.registry)
    with HostilePrometheus(case, world.weak) as prometheus:
        _, record, markdown, page = world.monitor(END, prometheus=prometheus.url, labels=False)
    canary = record["canary"]
    evidence = {e["criterion"]: e for e in canary["evidence"]}
    assert (canary["verdict"], canary["action"]) == ("hold", "hold"), canary
    assert evidence["errors"]["result"] == "hold" and case["expect"] in evidence["errors"]["text"], evidence
    assert world.served() == (world.weak, 10) and registry_bytes(world.setup.registry) == before
    assert_escaped(markdown, page)  # the KFP UI's renderer finds no tag the report did not write
