"""`make observability`: the PrometheusRule written from the plain rules file, its one source.

python -m observability.generate   # writes observability/prometheus/gated-training.prometheusrule.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "prometheus" / "gated-training.rules.yml"
PROMETHEUS_RULE = HERE / "prometheus" / "gated-training.prometheusrule.yaml"


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


def main() -> int:
    PROMETHEUS_RULE.write_text(render())
    print(PROMETHEUS_RULE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
