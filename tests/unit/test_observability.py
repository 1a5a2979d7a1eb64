"""The alert rules, with Prometheus' own tool: `promtool check rules` and `promtool test rules` (series that fire each
alert and series that must not), every metric they read exported by the product, the PrometheusRule current, and
the PodMonitor for both deployment modes."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from gated_training.reports import push
from gated_training.serving import manifests
from gated_training.serving.metrics import METRIC_NAMES
from observability import generate
from tests.conftest import REPO_ROOT

RULES_DIR = REPO_ROOT / "observability" / "prometheus"
PROMTOOL = shutil.which("promtool")  # never skipped: make test installs it (Debian's prometheus)


def promtool(*args: str) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: `make test` installs it (apt-get install prometheus)"
    return subprocess.run([PROMTOOL, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120)


def rules() -> list[dict]:
    document = yaml.safe_load((RULES_DIR / "gated-training.rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_rules_are_valid_and_their_unit_tests_pass():
    checked = promtool("check", "rules", "gated-training.rules.yml")
    assert checked.returncode == 0 and f"SUCCESS: {len(rules())} rules found" in checked.stdout, checked
    tested = promtool("test", "rules", "gated-training.rules.test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_every_alert_has_a_case_that_fires_it_and_one_that_must_not():
    tests = yaml.safe_load((RULES_DIR / "gated-training.rules.test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{rule['alert']}: no case fires it"
        assert any(not case["exp_alerts"] for case in mine), f"{rule['alert']}: no case where it must stay quiet"
        assert all(case.get("exp_alerts") == [] or case["exp_alerts"][0].get("exp_annotations") for case in mine), (
            f"{rule['alert']}: a firing case without the annotations an operator reads"
        )


def _metrics_in(expression: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expression)
    words = set(re.findall(r"\b(gated_training_[a-z_]+)\b", without_strings))
    return words


def test_every_metric_the_rules_read_is_one_the_product_exports():
    exported = set(METRIC_NAMES) | set(push.TRAINING_METRICS) | set(push.MONITORING_METRICS)
    histograms = {name for name in METRIC_NAMES if not name.endswith("_total")}
    exported |= {f"{name}_{suffix}" for name in histograms for suffix in ("bucket", "count", "sum")}
    for rule in rules():
        unknown = _metrics_in(rule["expr"]) - exported
        assert not unknown, f"{rule['alert']} reads {unknown}, which nothing exports"


def test_the_prometheus_rule_is_generated_from_the_rules_file():
    assert (RULES_DIR / "gated-training.prometheusrule.yaml").read_text() == generate.render(), (
        "stale: run `make observability`"
    )
    document = yaml.safe_load(generate.render())
    assert (
        document["kind"] == "PrometheusRule"
        and document["spec"]["groups"] == yaml.safe_load((RULES_DIR / "gated-training.rules.yml").read_text())["groups"]
    )


@pytest.mark.parametrize(("mode", "port"), [("RawDeployment", 8082), ("Serverless", 9088)])
def test_the_pod_monitor_scrapes_the_predictor_pods_of_the_model(mode, port):
    monitor = manifests.pod_monitor(namespace="team-ml", model_name="Tabular Classifier", mode=mode)
    assert monitor["kind"] == "PodMonitor" and monitor["metadata"]["namespace"] == "team-ml"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector == {"serving.kserve.io/inferenceservice": "tabular-classifier", "component": "predictor"}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["targetPort"] == port and endpoint["path"] == "/metrics"


def test_every_rollout_asks_kserve_to_expose_the_runtime_metrics():
    release = manifests.Release(
        model_name="tabular-classifier",
        version="20261204T000000000000Z-aaaaaaaa",
        manifest_sha256="0" * 64,
        registry_uri="gs://b/registry",
        storage_uri="gs://b/registry/tabular-classifier/versions/x/serve",
    )
    created = manifests.inference_service(namespace="team-ml", release=release, mode="Serverless")
    patched = manifests.canary_patch(created, release, 10)
    for asked in (created["metadata"]["annotations"], patched["metadata"]["annotations"]):
        assert asked[manifests.SCRAPE_ANNOTATION] == "true"
        assert asked[manifests.AGGREGATION_ANNOTATION] == "true"
    runtime = manifests.serving_runtime(namespace="team-ml", image="registry.example.com/serving:1")
    assert runtime["spec"]["annotations"] == {
        "prometheus.kserve.io/port": "8082",
        "prometheus.kserve.io/path": "/metrics",
    }


def test_the_runtime_series_stay_bounded_whatever_a_caller_sends():
    """Label values come from the model and its profile: a hostile class or category raises a count, never adds a
    series; a feature the request leaves out counts as missing on every row."""
    import pandas as pd
    from prometheus_client import CollectorRegistry, generate_latest

    from gated_training.serving.metrics import ServingMetrics

    registry = CollectorRegistry()
    profile = {
        "features": {
            "age": {"kind": "numeric", "edges": [18.0, 75.0]},
            "city": {"kind": "categorical", "counts": {"a": 3, "b": 2}},
        }
    }
    metrics = ServingMetrics(registry, "m", "v1", [0, 1], profile)
    before = len(generate_latest(registry).decode().splitlines())
    frame = pd.DataFrame({"age": [20, 99, None], "city": ["a", '<script>"x"', None]})
    metrics.observe("v2", frame, [1, "<img src=x>", 0], [[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]], 0.01)
    metrics.observe("v1", frame.drop(columns=["city"]), [0, 0, 0], [[0.6, 0.4]] * 3, 0.02)
    text = generate_latest(registry).decode()
    assert len(text.splitlines()) == before and "script" not in text and "img" not in text
    assert 'gated_training_predictions_total{class="_other",model="m",version="v1"} 1.0' in text
    assert 'gated_training_input_out_of_range_total{feature="age",model="m",version="v1"} 2.0' in text
    assert 'gated_training_input_unseen_total{feature="city",model="m",version="v1"} 1.0' in text
    assert 'gated_training_input_missing_total{feature="city",model="m",version="v1"} 4.0' in text
    assert 'gated_training_input_missing_total{feature="age",model="m",version="v1"} 2.0' in text


def _panel_queries() -> list[tuple[str, str]]:
    import json

    document = json.loads((REPO_ROOT / "observability" / "grafana" / "gated-training.dashboard.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in document["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def test_the_dashboard_is_generated_and_follows_grafanas_dashboard_model():
    import json

    path = REPO_ROOT / "observability" / "grafana" / "gated-training.dashboard.json"
    assert path.read_text() == generate.render_dashboard(), "stale: run `make observability`"
    document = json.loads(path.read_text())
    assert document["uid"] and document["title"] and isinstance(document["schemaVersion"], int)
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["type"] == "query"
    panels = document["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in "hwxy") and 0 <= grid["x"] and grid["x"] + grid["w"] <= 24
        mine = {(grid["y"] + dy, grid["x"] + dx) for dy in range(grid["h"]) for dx in range(grid["w"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat", "table"}
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs)


def test_every_panel_query_parses_with_promtool_and_reads_only_exported_metrics(tmp_path):
    exported = set(METRIC_NAMES) | set(push.TRAINING_METRICS) | set(push.MONITORING_METRICS)
    histograms = {name for name in METRIC_NAMES if not name.endswith("_total")}
    exported |= {f"{name}_{suffix}" for name in histograms for suffix in ("bucket", "count", "sum")}
    queries = _panel_queries()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"dashboard:panel_{i}",
                        "expr": expr.replace("$__rate_interval", "5m").replace("$model", ".+"),
                    }
                    for i, (_, expr) in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    checked = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / "panels.yml")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for title, expr in queries:
        unknown = _metrics_in(expr) - exported
        assert not unknown, f"panel {title!r} reads {unknown}, which nothing exports"
