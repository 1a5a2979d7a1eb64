"""Parse a compiled YAML as each supported KFP backend release does, with that release's protos.

``descriptors/kfp-<release>.pb`` hold the PipelineSpec and Kubernetes-platform protos each
release is built with (``build_descriptors.sh`` regenerates them from kubeflow/pipelines). The
rules, read from each release's source:

- the API server parses the PipelineSpec and the PlatformSpec envelope with
  ``protojson.Unmarshal``: strict, an unknown field fails the upload
  (``backend/src/apiserver/template/v2_template.go``, every release);
- the driver parses each executor's Kubernetes config with ``jsonpb.UnmarshalString``, strict, up
  to 2.4.0, and with ``AllowUnknownFields`` / ``DiscardUnknown`` from 2.4.1
  (``backend/src/v2/cmd/driver/main.go``, ``backend/src/common/util/json.go``);
- the launcher parses the executor's output with strict protojson (standard JSON: no NaN,
  Infinity; the ExecutorOutput message).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

DESCRIPTORS = Path(__file__).parent / "descriptors"
RELEASES = ("2.2.0", "2.4.0", "2.4.1", "2.5.0", "2.14.0", "2.17.0")
STRICT_DRIVER = {"2.2.0", "2.4.0"}  # strict Kubernetes executor config parsing


@lru_cache(maxsize=None)
def _pool(release: str) -> descriptor_pool.DescriptorPool:
    files = descriptor_pb2.FileDescriptorSet.FromString((DESCRIPTORS / f"kfp-{release}.pb").read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool


def message(release: str, full_name: str) -> Any:
    return message_factory.GetMessageClass(_pool(release).FindMessageTypeByName(full_name))()


def strict_json(text: str) -> Any:
    """Standard JSON as Go's parsers read it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not valid JSON (Go's protojson refuses it)")

    return json.loads(text, parse_constant=refuse)


def parse_as_backend(release: str, documents: list[dict[str, Any]]) -> None:
    """Raise (json_format.ParseError) where ``release`` would refuse the compiled YAML's documents."""
    json_format.ParseDict(documents[0], message(release, "ml_pipelines.PipelineSpec"))
    if len(documents) < 2:
        return
    json_format.ParseDict(documents[1], message(release, "ml_pipelines.PlatformSpec"))
    executors = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for config in executors.values():
        json_format.ParseDict(
            config,
            message(release, "kfp_kubernetes.KubernetesExecutorConfig"),
            ignore_unknown_fields=release not in STRICT_DRIVER,
        )


def parse_executor_output(release: str, text: str) -> Any:
    return json_format.ParseDict(strict_json(text), message(release, "ml_pipelines.ExecutorOutput"))
