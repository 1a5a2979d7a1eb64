"""`make observability`: the PrometheusRule written from the plain rules file, its one source.

python -m observability.generate   # writes observability/prometheus/gated-training.prometheusrule.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "prometheus" / "gated-training.rules.yml"
PROMETHEUS_RULE = HERE / "prometheus" / "gated-training.prometheusrule.yaml"
DASHBOARD = HERE / "grafana" / "gated-training.dashboard.json"
SCHEMA_VERSION = 39  # Grafana 10.4 / 11 dashboards

M = 'model=~"$model"'
# (row, title, type, unit, [(expression, legend)], width): every expression reads only what the product exports
# (tests/unit/test_observability.py) and parses with promtool.
PANELS: list[tuple[str, str, str, str, list[tuple[str, str]], int]] = [
    ("Serving", "Requests per second, by version", "timeseries", "reqps",
     [(f"sum by (version, protocol) (rate(gated_training_requests_total{{{M}}}[$__rate_interval]))",
       "{{version}} {{protocol}}")], 8),
    ("Serving", "Refused share, by version", "timeseries", "percentunit",
     [(f'sum by (version) (rate(gated_training_requests_total{{{M},outcome="error"}}[$__rate_interval]))'
       f" / sum by (version) (rate(gated_training_requests_total{{{M}}}[$__rate_interval]))", "{{version}}")], 8),
    ("Serving", "p95 answer time, by version", "timeseries", "s",
     [("histogram_quantile(0.95, sum by (version, le) "
       f"(rate(gated_training_request_duration_seconds_bucket{{{M}}}[$__rate_interval])))", "{{version}}")], 8),
    ("Serving", "Predicted classes, share by version", "timeseries", "percentunit",
     [(f'sum by (version, class) (rate(gated_training_predictions_total{{{M}}}[$__rate_interval]))'
       f" / ignoring (class) group_left sum by (version) "
       f"(rate(gated_training_predictions_total{{{M}}}[$__rate_interval]))", "{{version}} {{class}}")], 8),
    ("Serving", "Median probability of the predicted class", "timeseries", "percentunit",
     [("histogram_quantile(0.5, sum by (version, le) "
       f"(rate(gated_training_predicted_probability_bucket{{{M}}}[$__rate_interval])))", "{{version}}")], 8),
    ("Serving", "Input quality: share of rows, by feature", "timeseries", "percentunit",
     [(f"sum by (version, feature) (rate(gated_training_input_missing_total{{{M}}}[$__rate_interval]))"
       f" / on (version) group_left sum by (version) (rate(gated_training_input_rows_total{{{M}}}[$__rate_interval]))",
       "missing {{feature}} ({{version}})"),
      (f"sum by (version, feature) (rate(gated_training_input_out_of_range_total{{{M}}}[$__rate_interval]))"
       f" / on (version) group_left sum by (version) (rate(gated_training_input_rows_total{{{M}}}[$__rate_interval]))",
       "out of range {{feature}} ({{version}})"),
      (f"sum by (version, feature) (rate(gated_training_input_unseen_total{{{M}}}[$__rate_interval]))"
       f" / on (version) group_left sum by (version) (rate(gated_training_input_rows_total{{{M}}}[$__rate_interval]))",
       "unseen {{feature}} ({{version}})")], 8),
    ("Model quality and drift", "Realized accuracy [95%] against the gate's minimum", "timeseries", "percentunit",
     [(f"gated_training_monitoring_realized_accuracy{{{M}}}", "{{version}} ({{role}})"),
      (f"gated_training_monitoring_realized_accuracy_low{{{M}}}", "{{version}} low"),
      (f"gated_training_monitoring_realized_accuracy_high{{{M}}}", "{{version}} high"),
      (f"gated_training_monitoring_gate_min_accuracy{{{M}}}", "{{version}} gate minimum")], 12),
    ("Model quality and drift", "Estimated accuracy (trusted only when calibrated)", "timeseries", "percentunit",
     [(f"gated_training_monitoring_estimated_accuracy{{{M}}}", "{{version}} trusted={{trusted}}"),
      (f"gated_training_monitoring_gate_accuracy{{{M}}}", "{{version}} at gate")], 12),
    ("Model quality and drift", "Label coverage", "timeseries", "percentunit",
     [(f"gated_training_monitoring_label_coverage{{{M}}}", "{{version}}"),
      (f'gated_training_monitoring_threshold{{{M},name="min_label_coverage"}}', "minimum")], 8),
    ("Model quality and drift", "Prediction PSI", "timeseries", "none",
     [(f"gated_training_monitoring_prediction_psi{{{M}}}", "{{version}}"),
      (f'gated_training_monitoring_threshold{{{M},name="prediction_psi_threshold"}}', "threshold")], 8),
    ("Model quality and drift", "Live feature drift (PSI), the champion", "table", "none",
     [(f'gated_training_monitoring_feature_psi{{{M},role="champion"}}', "{{feature}}")], 8),
    ("Pipelines", "Monitoring outcome", "stat", "none",
     [(f"gated_training_monitoring_outcome{{{M}}} == 1", "{{outcome}}")], 6),
    ("Pipelines", "Since the last successful monitoring run", "stat", "s",
     [(f"time() - gated_training_monitoring_last_success_timestamp_seconds{{{M}}}", "{{model}}")], 6),
    ("Pipelines", "Last training outcome and blocked runs in a row", "stat", "none",
     [(f"gated_training_training_outcome{{{M}}} == 1", "{{outcome}}"),
      (f"gated_training_training_blocked_streak{{{M}}}", "blocked in a row")], 6),
    ("Pipelines", "Since the last deploy", "stat", "s",
     [(f"time() - gated_training_training_last_deploy_timestamp_seconds{{{M}}}", "{{model}}")], 6),
    ("Canary", "Canary against stable: healthy windows in a row, and judged worse (1)", "stat", "none",
     [(f"gated_training_monitoring_canary_healthy_windows{{{M}}}", "{{version}} over {{other}}: healthy windows"),
      (f"gated_training_monitoring_canary_worse{{{M}}}", "{{version}} over {{other}}: worse")], 24),
]  # fmt: skip


def prometheus_rule(rules: dict[str, Any]) -> dict[str, Any]:
    """The Prometheus Operator's PrometheusRule holding the same groups (apply it in the monitoring namespace, or
    where your Prometheus's ruleSelector looks; the labels are what kube-prometheus-stack selects by default)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "gated-training",
            "labels": {"app.kubernetes.io/part-of": "kfp-gated-training", "release": "prometheus"},
        },
        "spec": {"groups": rules["groups"]},
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line expressions as literal blocks, as a person writes them."""


_Dumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None),
)


def render() -> str:
    rules = yaml.safe_load(RULES.read_text())
    header = "# Generated from gated-training.rules.yml by `make observability`: edit that file, not this one.\n"
    return header + yaml.dump(prometheus_rule(rules), Dumper=_Dumper, sort_keys=False, width=120)


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard: serving, model quality and drift, pipeline outcomes, for one model at a time."""
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    panels: list[dict[str, Any]] = []
    y, x, row, height = 0, 0, "", 8
    for section, title, kind, unit, queries, width in PANELS:
        if section != row:
            y += height if panels else 0
            panels.append(
                {"id": len(panels) + 1, "type": "row", "title": section, "collapsed": False,
                 "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}
            )  # fmt: skip
            row, x, y = section, 0, y + 1
        if x + width > 24:
            x, y = 0, y + height
        panels.append(
            {
                "id": len(panels) + 1,
                "type": kind,
                "title": title,
                "datasource": datasource,
                "gridPos": {"h": height, "w": width, "x": x, "y": y},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {},
                "targets": [
                    {"refId": chr(ord("A") + i), "datasource": datasource, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(queries)
                ],
            }
        )
        x += width
    return {
        "uid": "gated-training",
        "title": "kfp-gated-training",
        "description": "Serving, model quality and drift, and pipeline outcomes of one model (docs/observability.md).",
        "tags": ["kfp-gated-training", "mlops"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "timezone": "utc",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
                {
                    "name": "model",
                    "type": "query",
                    "datasource": datasource,
                    "query": {"query": "label_values(gated_training_requests_total, model)", "refId": "model"},
                    "definition": "label_values(gated_training_requests_total, model)",
                    "refresh": 2,
                    "includeAll": True,
                    "multi": True,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render_dashboard() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main() -> int:
    PROMETHEUS_RULE.write_text(render())
    DASHBOARD.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD.write_text(render_dashboard())
    print(PROMETHEUS_RULE)
    print(DASHBOARD)
    return 0


if __name__ == "__main__":
    sys.exit(main())
