"""Vendor a small copy of the Spark Operator's SparkApplication CRD schema (v1beta2).

Source: ``charts/spark-operator-chart/crds/sparkoperator.k8s.io_sparkapplications.yaml`` of
kubeflow/spark-operator at each tag in TAGS (``fetch github:kubeflow/spark-operator``; pass its git
directory). The full schema is about 800 KB; this keeps the names and types of every field at each level
our manifests reach, and the whole schema along the paths they use (tests/conformance/kserve/vendor_crds.py
does the same for KServe), so validation against the copy is as strict as against the original for them.

    python -m tests.conformance.spark_operator.vendor_crd /work/.mirror/kubeflow+spark-operator/repo
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conformance.kserve.vendor_crds import prune, used_paths

# Kubeflow 26.03 ships Spark Operator 2.5.0; 2.5.2 is the newest patch.
TAGS = ("v2.5.0", "v2.5.2")
CRD = "charts/spark-operator-chart/crds/sparkoperator.k8s.io_sparkapplications.yaml"
HERE = Path(__file__).parent


def main(git_dir: str) -> None:
    from tests.conformance.spark_operator.manifests import all_manifests

    paths = used_paths(all_manifests())
    for tag in TAGS:
        raw = subprocess.run(
            ["git", "--git-dir", git_dir, "show", f"{tag}:{CRD}"], check=True, capture_output=True, text=True
        ).stdout
        crd = yaml.safe_load(raw)
        schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta2")["schema"]["openAPIV3Schema"]
        out = HERE / f"{tag}.SparkApplication.json"
        document = {"source": f"github.com/kubeflow/spark-operator {tag} {CRD}", "version": "v1beta2"}
        out.write_text(json.dumps({**document, "schema": prune(schema, (), paths)}, sort_keys=True, indent=1) + "\n")
        print(f"{out.name}: {len(raw) // 1024} KiB -> {out.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main(sys.argv[1])
