"""A loopback stand-in for the Kubernetes API server, for KServe's two custom resources.

It speaks the API server's dialect as the kubernetes client meets it: paths
``/apis/serving.kserve.io/{v1beta1|v1alpha1}/namespaces/{ns}/{inferenceservices|servingruntimes}[/{name}]``
(and ``/apis/apps/v1/…/deployments``, ``/api/v1/…/services`` for the prediction-log sink),
``Status`` error bodies (404 NotFound, 409 AlreadyExists, 400 BadRequest for strict decoding,
422 Invalid for schema violations, 403 Forbidden, 415 for a patch type it does not take), RFC 7386
merge patches, ``metadata.generation`` that moves only with the spec, ``resourceVersion``, and
validation against the vendored CRD schema of one KServe version (tests/kube_schema.py): with
``fieldValidation=Strict`` an unknown field is refused, without it the field is dropped and a
``Warning`` header says so, as the real server does.

A minimal controller answers reads of an InferenceService: after ``ready_after`` reads of a new
generation it reports it observed, Ready unless the version in the newest spec is in
``failing_versions`` (Knative: the new revision fails, the previous one keeps the traffic;
Standard: the canary's status is not ready).
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.kube_schema import merge_patch, schema_for, violations
from tests.loopback import LoopbackServer

PATH = re.compile(
    r"^/(?:apis/(?P<group>[^/]+)/(?P<version>[^/]+)|api/(?P<core>v1))/namespaces/(?P<ns>[^/]+)/"
    r"(?P<plural>[a-z]+)(?:/(?P<name>[^/]+))?$"
)
# plural: (kind, API group, version). KServe's two custom resources, and the prediction-log sink's Deployment
# and Service (validated against Kubernetes' own schemas, tests/kube_core_schema.py).
KINDS = {
    "inferenceservices": ("InferenceService", "serving.kserve.io", "v1beta1"),
    "servingruntimes": ("ServingRuntime", "serving.kserve.io", "v1alpha1"),
    "deployments": ("Deployment", "apps", "v1"),
    "services": ("Service", "", "v1"),
    "sparkapplications": ("SparkApplication", "sparkoperator.k8s.io", "v1beta2"),
}
# The Spark Operator's states for a run that succeeds (internal/controller/sparkapplication, v2.5.0).
SPARK_COMPLETES = [("SUBMITTED", ""), ("RUNNING", ""), ("COMPLETED", "")]


def status_body(code: int, reason: str, message: str, name: str = "", plural: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if name:
        body["details"] = {"name": name, "group": KINDS.get(plural, ("", "serving.kserve.io"))[1], "kind": plural}
    return body


def spec_version(spec: dict[str, Any]) -> str | None:
    """The registry version the newest part of a spec serves (a canary's, else the predictor's)."""
    predictors = [c["predictor"] for c in spec.get("canary") or []] or [spec.get("predictor") or {}]
    env = (predictors[-1].get("model") or {}).get("env") or []
    return next((item["value"] for item in env if item["name"] == "GATED_TRAINING_VERSION"), None)


class KubeApiServer(LoopbackServer):
    def __init__(self, kserve_version: str = "v0.20.0", ready_after: int = 1) -> None:
        self.kserve_version = kserve_version
        self.ready_after = ready_after
        self.failing_versions: set[str] = set()
        self.fail_new_versions = False  # every version not yet seen Ready fails (a run's version is not known before)
        self.ready_versions: set[str] = set()
        self.forbidden: set[str] = set()  # verbs answered 403 (get, create, patch)
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.reads_since_write: dict[tuple[str, str, str], int] = {}
        self.revision: dict[tuple[str, str, str], int] = {}
        # What the Spark Operator reports on each read of a new SparkApplication, then the last state for good.
        self.spark_script: list[tuple[str, str]] = list(SPARK_COMPLETES)
        self.spark_operator_version = "v2.5.0"
        # When set, the operator "runs the driver pod": called once, with the application, when it turns RUNNING;
        # its exit code decides COMPLETED or FAILED with the operator's words for a failed driver container.
        self.spark_driver: Callable[[dict[str, Any]], int] | None = None
        self.driver_exits: dict[str, int] = {}
        self.deleted: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self._resource_version = 1000
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with server.lock:
                    server.requests.append(
                        {
                            "method": method,
                            "path": url.path,
                            "query": parse_qs(url.query),
                            "content_type": self.headers.get("Content-Type"),
                            "body": body,
                        }
                    )
                    code, answer, headers = server.answer(
                        method, url.path, parse_qs(url.query), self.headers.get("Content-Type") or "", body
                    )
                self._send(code, answer, headers)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        self.start_serving(Handler)

    # -- the API server ---------------------------------------------------------------------------
    def answer(
        self, method: str, path: str, query: dict[str, list[str]], content_type: str, body: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        match = PATH.match(path)
        known = KINDS.get(match["plural"]) if match else None
        if (
            not match
            or known is None
            or (known[1], known[2]) != (match["group"] or "", match["version"] or match["core"])
        ):
            return 404, status_body(404, "NotFound", "the server could not find the requested resource"), {}
        plural, namespace, name = match["plural"], match["ns"], match["name"]
        kind, group = known[0], known[1]
        resource = f"{plural}.{group}" if group else plural
        verb = {"GET": "get", "POST": "create", "PATCH": "patch", "DELETE": "delete"}[method]
        if verb in self.forbidden:
            target = f'{resource} "{name}"' if name else resource
            return (
                403,
                status_body(
                    403,
                    "Forbidden",
                    (
                        f'{target} is forbidden: User "system:serviceaccount:{namespace}:default-editor" cannot {verb} '
                        f'resource "{plural}" in API group "{group}" in the namespace "{namespace}"'
                    ),
                    name,
                    plural,
                ),
                {},
            )
        strict = query.get("fieldValidation") == ["Strict"]
        if method == "GET":
            obj = self.objects.get((plural, namespace, name))
            if obj is None:
                return (
                    404,
                    status_body(404, "NotFound", f'{resource} "{name}" not found', name, plural),
                    {},
                )
            if plural == "inferenceservices":
                self._reconcile((plural, namespace, name))
            if plural == "sparkapplications":
                self._operate((plural, namespace, name))
            return 200, copy.deepcopy(self.objects[(plural, namespace, name)]), {}
        if method == "DELETE":
            gone = self.objects.pop((plural, namespace, name), None)
            if gone is None:
                return 404, status_body(404, "NotFound", f'{resource} "{name}" not found', name, plural), {}
            self.deleted.append((plural, namespace, name))
            return 200, gone, {}
        if method == "POST":
            name = (body.get("metadata") or {}).get("name", "")
            if (plural, namespace, name) in self.objects:
                return (
                    409,
                    status_body(409, "AlreadyExists", f'{resource} "{name}" already exists', name, plural),
                    {},
                )
            return self._store(kind, plural, namespace, name, body, strict, created=True)
        if content_type.split(";")[0].strip() != "application/merge-patch+json":
            return (
                415,
                status_body(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - "
                    "accepted media types include: application/merge-patch+json",
                ),
                {},
            )
        current = self.objects.get((plural, namespace, name))
        if current is None:
            return 404, status_body(404, "NotFound", f'{resource} "{name}" not found', name, plural), {}
        return self._store(kind, plural, namespace, name, merge_patch(current, body), strict, created=False)

    def _store(
        self, kind: str, plural: str, namespace: str, name: str, obj: dict[str, Any], strict: bool, created: bool
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if kind in ("Deployment", "Service"):
            from tests.kube_core_schema import schema_for_kind

            schema = schema_for_kind(kind)
        elif kind == "SparkApplication":
            from tests.kube_schema import spark_schema

            schema = spark_schema(self.spark_operator_version)
        else:
            schema = schema_for(self.kserve_version, kind)
        found = violations({key: value for key, value in obj.items() if key != "status"}, schema)
        unknown = [v for v in found if v.startswith("unknown field")]
        invalid = [v for v in found if not v.startswith("unknown field")]
        if invalid:
            return (
                422,
                status_body(
                    422,
                    "Invalid",
                    f'{kind}{"." + KINDS[plural][1] if KINDS[plural][1] else ""} "{name}" is invalid: '
                    + ", ".join(invalid),
                    name,
                    plural,
                ),
                {},
            )
        headers = {}
        if unknown:
            if strict:
                return 400, status_body(400, "BadRequest", "strict decoding error: " + ", ".join(unknown)), {}
            headers["Warning"] = '299 - "' + ", ".join(unknown) + '"'
            obj = _without(obj, [u.split('"')[1] for u in unknown])
        key = (plural, namespace, name)
        previous = self.objects.get(key)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        self._resource_version += 1
        meta["resourceVersion"] = str(self._resource_version)
        if created:
            meta.update({"uid": str(uuid.uuid4()), "generation": 1, "creationTimestamp": "2026-11-23T12:00:00Z"})
        elif previous is not None and previous.get("spec") != obj.get("spec"):
            meta["generation"] = previous["metadata"]["generation"] + 1
        self.objects[key] = obj
        self.reads_since_write[key] = 0
        return (201 if created else 200), copy.deepcopy(obj), headers

    # -- the controllers ----------------------------------------------------------------------------
    def _operate(self, key: tuple[str, str, str]) -> None:
        """The Spark Operator: each read of an application moves it one step along ``spark_script``."""
        obj = self.objects[key]
        reads = self.reads_since_write.get(key, 0)
        self.reads_since_write[key] = reads + 1
        state, message = self.spark_script[min(reads, len(self.spark_script) - 1)]
        name = key[2]
        if self.spark_driver is not None and state == "COMPLETED":
            if name not in self.driver_exits:
                self.driver_exits[name] = self.spark_driver(copy.deepcopy(obj))
            if self.driver_exits[name] != 0:
                state = "FAILED"
                message = f"driver container failed with ExitCode: {self.driver_exits[name]}, Reason: Error"
        status = obj.setdefault("status", {})
        status["applicationState"] = {"state": state, **({"errorMessage": message} if message else {})}
        if state != "SUBMISSION_FAILED":
            status["driverInfo"] = {"podName": f"{key[2]}-driver"}
            status["sparkApplicationId"] = f"spark-{obj['metadata']['uid'][:8]}"

    def _reconcile(self, key: tuple[str, str, str]) -> None:
        obj = self.objects[key]
        self.reads_since_write[key] = self.reads_since_write.get(key, 0) + 1
        status = obj.setdefault("status", {})
        generation = obj["metadata"]["generation"]
        if status.get("observedGeneration") == generation or self.reads_since_write[key] < self.ready_after:
            return
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        newest = spec_version(obj["spec"])
        failing = newest in self.failing_versions or (self.fail_new_versions and newest not in self.ready_versions)
        standard = (obj["metadata"].get("annotations") or {}).get("serving.kserve.io/deploymentMode") == "RawDeployment"
        status["observedGeneration"] = generation
        status["url"] = f"http://{name}.{namespace}.example.com"
        canaries = obj["spec"].get("canary") or []
        # A canary at 0 % (aborted) is not waited for; the stable predictor serves.
        live_canary = [c for c in canaries if c.get("trafficPercent", 0) > 0]
        if standard:
            status["canaryStatuses"] = [{"name": c["predictor"]["name"], "ready": not failing} for c in canaries]
            ok = not (failing and (live_canary or not canaries))
        else:
            self.revision[key] = self.revision.get(key, 0) + 1
            created = f"{name}-predictor-{self.revision[key]:05d}"
            predictor = status.setdefault("components", {}).setdefault("predictor", {})
            aborted = obj["spec"]["predictor"].get("canaryTrafficPercent") == 0
            if failing and not aborted:
                predictor["latestCreatedRevision"] = created
                ok = False
            elif failing:  # traffic back on the last good revision
                ok = True
            else:
                predictor["latestCreatedRevision"] = predictor["latestReadyRevision"] = created
                ok = True
        if ok and not failing:
            self.ready_versions.add(newest)
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "True" if ok else "False",
                **(
                    {}
                    if ok
                    else {
                        "reason": "RevisionFailed",
                        "message": "model load failed: the pod exited (verification refused)",
                    }
                ),
            }
        ]


def _without(obj: dict[str, Any], dotted: list[str]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    for path in dotted:
        parts = re.split(r"\.", re.sub(r"\[\d+\]", "", path))
        node: Any = obj
        for part in parts[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    return obj
