"""Vendor a small copy of the Prometheus Operator's PodMonitor CRD schema, as tests/conformance/kserve/ does
KServe's: the names and types of every field at each level our PodMonitor reaches, and the whole schema along the
paths it uses (``serving.manifests.pod_monitor``, both modes).

Source: ``example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml`` of prometheus-operator at each
tag in TAGS (``fetch github:prometheus-operator/prometheus-operator``; pass its git directory).

    python -m tests.conformance.prometheus_operator.vendor_crd <mirror>/prometheus-operator+prometheus-operator/repo
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conformance.kserve.vendor_crds import prune, used_paths

# v0.68: the operator Kubeflow-era kube-prometheus stacks ship (2023); v0.93: current.
TAGS = ("v0.68.0", "v0.93.0")
FILE = "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml"
HERE = Path(__file__).parent


def rendered() -> list[dict]:
    from gated_training.serving.manifests import pod_monitor

    return [pod_monitor(namespace="team-a", model_name="tabular-classifier", mode=m) for m in ("Knative", "Standard")]


def main(git_dir: str) -> None:
    documents = rendered()
    for tag in TAGS:
        raw = subprocess.run(
            ["git", "--git-dir", git_dir, "show", f"{tag}:{FILE}"], check=True, capture_output=True, text=True
        ).stdout
        crd = yaml.safe_load(raw)
        schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
        out = HERE / f"{tag}.PodMonitor.json"
        small = prune(schema, (), used_paths(documents))
        out.write_text(
            json.dumps(
                {
                    "source": f"github.com/prometheus-operator/prometheus-operator {tag} {FILE}",
                    "version": "v1",
                    "schema": small,
                },
                sort_keys=True,
                indent=1,
            )
            + "\n"
        )
        print(f"{out.name}: {len(raw) // 1024} KiB -> {out.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(sys.argv[1])
