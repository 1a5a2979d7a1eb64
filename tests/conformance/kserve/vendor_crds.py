"""Vendor small copies of KServe's InferenceService and ServingRuntime CRD schemas.

Source: ``config/crd/full/serving.kserve.io_{inferenceservices,servingruntimes}.yaml`` of the
kserve repository at each tag in TAGS (``fetch github:kserve/kserve``; pass its git directory).
The full schemas are about 2 MB each; this keeps, for every object level our manifests reach,
the names and types of all its fields, and the whole schema only along the paths our manifests
(rendered by gated_training.serving.kserve, every mode and option) actually use. Validation against the
copy is therefore as strict as against the original for our manifests, and a field a version does
not have (``spec.canary`` before 0.20) is missing from that version's copy too.

    python -m tests.conformance.kserve.vendor_crds /work/.mirror/kserve+kserve/repo
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

TAGS = ("v0.15.2", "v0.16.0", "v0.20.0")
CRDS = {
    "InferenceService": ("serving.kserve.io_inferenceservices.yaml", "v1beta1"),
    "ServingRuntime": ("serving.kserve.io_servingruntimes.yaml", "v1alpha1"),
}
HERE = Path(__file__).parent


def used_paths(documents: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    """Every path (object keys; ``[]`` for list items) the documents use."""
    paths: set[tuple[str, ...]] = set()

    def walk(value: Any, path: tuple[str, ...]) -> None:
        paths.add(path)
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*path, key))
        elif isinstance(value, list):
            for item in value:
                walk(item, (*path, "[]"))

    for document in documents:
        walk(document, ())
    return paths


def without_descriptions(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {key: without_descriptions(value) for key, value in schema.items() if key != "description"}
    if isinstance(schema, list):
        return [without_descriptions(value) for value in schema]
    return schema


def prune(schema: dict[str, Any], path: tuple[str, ...], keep: set[tuple[str, ...]]) -> dict[str, Any]:
    if path not in keep:
        return {
            key: schema[key]
            for key in ("type", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")
            if key in schema
        }
    pruned = {
        key: value
        for key, value in schema.items()
        if key not in ("properties", "items", "additionalProperties", "description")
    }
    if "properties" in schema:
        pruned["properties"] = {name: prune(sub, (*path, name), keep) for name, sub in schema["properties"].items()}
    if isinstance(schema.get("additionalProperties"), dict):  # a map: its values' schema, whole
        pruned["additionalProperties"] = without_descriptions(schema["additionalProperties"])
    if "items" in schema:
        pruned["items"] = prune(schema["items"], (*path, "[]"), keep)
    return pruned


def rendered() -> dict[str, list[dict[str, Any]]]:
    from tests.conformance.kserve.manifests import all_manifests

    manifests = all_manifests()
    return {kind: [m for m in manifests if m["kind"] == kind] for kind in CRDS}


def main(kserve_git: str) -> None:
    documents = rendered()
    for tag in TAGS:
        for kind, (filename, version) in CRDS.items():
            raw = subprocess.run(
                ["git", "--git-dir", kserve_git, "show", f"{tag}:config/crd/full/{filename}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            crd = yaml.safe_load(raw)
            schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
            small = prune(schema, (), used_paths(documents[kind]))
            out = HERE / f"{tag}.{kind}.json"
            out.write_text(
                json.dumps(
                    {
                        "source": f"github.com/kserve/kserve {tag} config/crd/full/{filename}",
                        "version": version,
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
