"""The PodMonitor against the Prometheus Operator's own CRD schema (vendored small from two releases,
tests/conformance/prometheus_operator/vendor_crd.py), validated as an API server with strict field validation does:
a field the operator does not know, or one of the wrong type, fails here as it would at `kubectl apply`."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from gated_training.serving.manifests import AGGREGATED_METRICS_PORT, METRICS_PORT, pod_monitor
from tests.kube_schema import violations

SCHEMAS = Path(__file__).parent / "prometheus_operator"
TAGS = ("v0.68.0", "v0.93.0")


def schema(tag: str) -> dict:
    document = json.loads((SCHEMAS / f"{tag}.PodMonitor.json").read_text())
    assert document["version"] == "v1" and "prometheus-operator" in document["source"]
    return document["schema"]


@pytest.mark.parametrize("tag", TAGS)
@pytest.mark.parametrize(("mode", "port"), [("Knative", AGGREGATED_METRICS_PORT), ("Standard", METRICS_PORT)])
def test_the_pod_monitor_validates_against_the_operators_crd(tag, mode, port):
    monitor = pod_monitor(namespace="team-a", model_name="tabular-classifier", mode=mode)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "PodMonitor"
    assert violations(monitor, schema(tag)) == []
    assert monitor["spec"]["podMetricsEndpoints"][0]["targetPort"] == port


@pytest.mark.parametrize("tag", TAGS)
def test_the_vendored_schema_refuses_what_the_operator_refuses(tag):
    monitor = pod_monitor(namespace="team-a", model_name="tabular-classifier", mode="Standard")
    unknown = copy.deepcopy(monitor)
    unknown["spec"]["podMetricsEndpoints"][0]["scrapeEvery"] = "30s"
    assert any("scrapeEvery" in v for v in violations(unknown, schema(tag)))
    wrong_type = copy.deepcopy(monitor)
    wrong_type["spec"]["namespaceSelector"]["matchNames"] = "team-a"
    assert violations(wrong_type, schema(tag))


def test_the_cli_prints_the_pod_monitor_and_refuses_a_bad_namespace(capsys):
    import yaml

    from gated_training.cli import main

    assert main(["serving", "pod-monitor", "--namespace", "team-a", "--mode", "Standard"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == pod_monitor(namespace="team-a", model_name="tabular-classifier", mode="Standard")
    assert main(["serving", "pod-monitor", "--namespace", "Team A"]) == 2
    assert "DNS-1123" in capsys.readouterr().err
