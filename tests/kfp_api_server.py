"""A loopback stand-in for the Kubeflow Pipelines v2beta1 REST API, for contract tests.

It implements the subset ``kfp.Client`` uses for upload, runs and recurring runs (healthz,
pipelines, pipeline versions, experiments, runs, recurring runs) with the JSON field names of
``kfp_server_api``'s models, keeps its state in memory, and records every request so tests can
assert exactly what the real client sent. It can demand a bearer token, answer an error for
chosen routes, and script the states a run goes through.

It speaks the backend's dialect, read from kubeflow/pipelines ``backend/src/apiserver``:
healthz is the hand-written ``{"commit_sha", "tag_name", "multi_user"}`` JSON (``main.go``);
pipelines belong to a namespace in multi-user mode ("" is shared; listing without a namespace
lists only shared ones, as ``kfp.Client.get_pipeline_id`` does; a name is unique per namespace);
a finished run's ``task_details`` are the Argo nodes the backend's compiler creates for the run's
own spec (``tests/argo_dialect.py``), with the gate outputs the test scripts.
"""

from __future__ import annotations

import email.parser
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.argo_dialect import run_nodes
from tests.loopback import LoopbackServer

PREFIX = "/apis/v2beta1"
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 500: 13, 503: 14}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Failure:
    method: str
    path_pattern: str
    status: int
    message: str
    times: int | None  # None: always


class FakeKubeflowPipelines(LoopbackServer):
    def __init__(self, multi_user: bool = False, tag_name: str = "2.17.0") -> None:
        self.multi_user = multi_user
        self.tag_name = tag_name
        self.healthz_body: bytes | None = None
        self.required_token: str | None = None
        self.requests: list[RecordedRequest] = []
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, Any]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.recurring_runs: dict[str, dict[str, Any]] = {}
        self.run_states: list[str] = ["RUNNING", "SUCCEEDED"]  # what successive GETs of a run report
        # What each gate task of a run returns, and the task that fails (None: none), once a run ends.
        self.gate_outputs: dict[str, str] = {
            "validate-data": "passed",
            "check-drift": "train",
            "evaluate-model": "deploy",
        }
        self.failing_task: str | None = None
        self.failures: list[Failure] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.start_serving(self._handler())

    # ---- test controls ----
    def fail(self, method: str, path_pattern: str, status: int, message: str = "", times: int | None = None) -> None:
        self.failures.append(Failure(method, path_pattern, status, message or f"injected {status}", times))

    def calls(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and re.fullmatch(path_pattern, r.path)]

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids):04d}"

    # ---- HTTP ----
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _dispatch(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = RecordedRequest(method, parts.path, query, {k.lower(): v for k, v in self.headers.items()})
                content_type = self.headers.get("Content-Type", "")
                if content_type.startswith("multipart/form-data"):
                    message = email.parser.BytesParser().parsebytes(
                        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
                    )
                    for part in message.get_payload():
                        request.files[part.get_param("name", header="content-disposition")] = part.get_payload(
                            decode=True
                        )
                elif raw:
                    request.body = json.loads(raw)
                with fake._lock:
                    fake.requests.append(request)
                    status, payload = fake._respond(request)
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def do_DELETE(self) -> None:
                self._dispatch("DELETE")

        return Handler

    @staticmethod
    def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"error_message": message, "code": GRPC_CODES.get(status, 2), "message": message}

    def _respond(self, request: RecordedRequest) -> tuple[int, Any]:
        for failure in self.failures:
            if failure.method == request.method and re.fullmatch(failure.path_pattern, request.path):
                if failure.times is not None:
                    if failure.times == 0:
                        continue
                    failure.times -= 1
                return self._error(failure.status, failure.message)
        if self.required_token and request.headers.get("authorization") != f"Bearer {self.required_token}":
            return self._error(401, "Unauthenticated: missing or invalid bearer token")
        path = request.path.removeprefix(PREFIX)
        for pattern, method, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and method == request.method:
                return handler(request, *match.groups())
        return self._error(404, f"no route for {request.method} {request.path}")

    def _routes(self) -> list[tuple[str, str, Any]]:
        return [
            (r"/healthz", "GET", self._healthz),
            (r"/pipelines", "GET", self._list_pipelines),
            (r"/pipelines/upload", "POST", self._upload_pipeline),
            (r"/pipelines/upload_version", "POST", self._upload_version),
            (r"/pipelines/([^/]+)/versions", "GET", self._list_versions),
            (r"/pipelines/([^/]+)/versions/([^/]+)", "GET", self._get_version),
            (r"/experiments", "GET", self._list_experiments),
            (r"/experiments", "POST", self._create_experiment),
            (r"/runs", "POST", self._create_run),
            (r"/runs/([^/:]+)", "GET", self._get_run),
            (r"/recurringruns", "POST", self._create_recurring_run),
            (r"/recurringruns", "GET", self._list_recurring_runs),
            (r"/recurringruns/([^/:]+)", "GET", lambda r, i: self._recurring(i)),
            (r"/recurringruns/([^/:]+):enable", "POST", lambda r, i: self._set_mode(i, "ENABLE")),
            (r"/recurringruns/([^/:]+):disable", "POST", lambda r, i: self._set_mode(i, "DISABLE")),
            (r"/recurringruns/([^/:]+)", "DELETE", self._delete_recurring_run),
        ]

    def _healthz(self, request: RecordedRequest) -> tuple[int, Any]:
        if self.healthz_body is not None:  # a test's hostile or broken reply, sent as raw bytes
            return 200, self.healthz_body
        return 200, {"commit_sha": "0123abc", "tag_name": self.tag_name, "multi_user": self.multi_user}

    @staticmethod
    def _filtered(items: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
        if not query.get("filter"):
            return items
        for predicate in json.loads(query["filter"])["predicates"]:
            assert predicate["operation"] in ("EQUALS", 1), predicate  # enum by name or number, as protojson
            value = predicate.get("stringValue", predicate.get("string_value"))
            items = [item for item in items if item.get(predicate["key"]) == value]
        return items

    def _namespace(self, request: RecordedRequest) -> str:
        """ResourceManager.ReplaceNamespace: the namespace in multi-user mode, else always ""."""
        return request.query.get("namespace", "") if self.multi_user else ""

    def _list_pipelines(self, request: RecordedRequest) -> tuple[int, Any]:
        namespace = self._namespace(request)
        found = [
            p
            for p in self._filtered(list(self.pipelines.values()), request.query)
            if p.get("namespace", "") == namespace
        ]
        return 200, {"pipelines": found, "total_size": len(found)} if found else {}

    def _upload_pipeline(self, request: RecordedRequest) -> tuple[int, Any]:
        name = request.query.get("name") or "uploaded"
        namespace = self._namespace(request)
        if any(p["display_name"] == name and p.get("namespace", "") == namespace for p in self.pipelines.values()):
            return self._error(
                409,
                f"Failed to create a pipeline and a pipeline version: The pipeline {name} "
                f"already exist in namespace {namespace!r}",
            )
        pipeline_id = self.new_id("pipeline")
        self.pipelines[pipeline_id] = {
            "pipeline_id": pipeline_id,
            "display_name": name,
            "name": name,
            "description": request.query.get("description", ""),
            **({"namespace": namespace} if namespace else {}),
        }
        self._add_version(pipeline_id, name, request)
        return 200, self.pipelines[pipeline_id]

    def _add_version(self, pipeline_id: str, name: str, request: RecordedRequest) -> dict[str, Any]:
        version_id = self.new_id("version")
        self.versions[version_id] = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": version_id,
            "display_name": name,
            "name": name,
            "description": request.query.get("description", ""),
            "spec_bytes": request.files["uploadfile"],
        }
        return self.versions[version_id]

    @staticmethod
    def _public(version: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in version.items() if k != "spec_bytes"}

    def _upload_version(self, request: RecordedRequest) -> tuple[int, Any]:
        pipeline_id = request.query.get("pipelineid", "")
        if pipeline_id not in self.pipelines:
            return self._error(400, "Failed to create a pipeline version")
        name = request.query.get("name", "")
        if any(v["display_name"] == name and v["pipeline_id"] == pipeline_id for v in self.versions.values()):
            return self._error(409, "Failed to create a pipeline version")
        return 200, self._public(self._add_version(pipeline_id, name, request))

    def _list_versions(self, request: RecordedRequest, pipeline_id: str) -> tuple[int, Any]:
        if pipeline_id not in self.pipelines:
            return self._error(404, f"Pipeline {pipeline_id} not found")
        versions = [self._public(v) for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
        found = self._filtered(versions, request.query)
        return 200, {"pipeline_versions": found, "total_size": len(found)} if found else {}

    def _get_version(self, request: RecordedRequest, pipeline_id: str, version_id: str) -> tuple[int, Any]:
        version = self.versions.get(version_id)
        if not version or version["pipeline_id"] != pipeline_id:
            return self._error(404, f"Pipeline version {version_id} not found")
        return 200, self._public(version)

    def _list_experiments(self, request: RecordedRequest) -> tuple[int, Any]:
        found = [
            e
            for e in self._filtered(list(self.experiments.values()), request.query)
            if "namespace" not in request.query or e.get("namespace", "") == request.query["namespace"]
        ]
        return 200, {"experiments": found, "total_size": len(found)} if found else {}

    def _create_experiment(self, request: RecordedRequest) -> tuple[int, Any]:
        experiment_id = self.new_id("experiment")
        self.experiments[experiment_id] = {**request.body, "experiment_id": experiment_id, "storage_state": "AVAILABLE"}
        return 200, self.experiments[experiment_id]

    def _create_run(self, request: RecordedRequest) -> tuple[int, Any]:
        run_id = self.new_id("run")
        self.runs[run_id] = {**request.body, "run_id": run_id, "state": "PENDING", "_polls": 0}
        return 200, self._public_run(self.runs[run_id])

    def _public_run(self, run: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in run.items() if not k.startswith("_")}

    def _get_run(self, request: RecordedRequest, run_id: str) -> tuple[int, Any]:
        run = self.runs.get(run_id)
        if run is None:
            return self._error(404, f"Run {run_id} not found")
        run["state"] = self.run_states[min(run["_polls"], len(self.run_states) - 1)]
        run["_polls"] += 1
        if run["state"] in ("SUCCEEDED", "FAILED", "CANCELED"):
            nodes, _ = run_nodes(self._run_spec(run), self.gate_outputs, self.failing_task)
            run["run_details"] = {
                "task_details": [
                    {"run_id": run_id, "task_id": f"{run_id}-node-{i}", "display_name": node.name, "state": node.state}
                    for i, node in enumerate(nodes)
                ]
            }
            if run["state"] == "FAILED":
                run["error"] = {"code": 2, "message": f"task {self.failing_task} failed"}
        return 200, self._public_run(run)

    def _run_spec(self, run: dict[str, Any]) -> dict[str, Any]:
        """The PipelineSpec the run executes: sent with it, or the pinned version's uploaded YAML."""
        if run.get("pipeline_spec"):
            spec = run["pipeline_spec"]
            return spec.get("pipeline_spec", spec)  # with a platform spec, kfp sends both under one key
        import yaml

        reference = run.get("pipeline_version_reference") or {}
        version = self.versions[reference["pipeline_version_id"]]
        return next(yaml.safe_load_all(version["spec_bytes"]))

    def _create_recurring_run(self, request: RecordedRequest) -> tuple[int, Any]:
        recurring_id = self.new_id("recurring")
        self.recurring_runs[recurring_id] = {**request.body, "recurring_run_id": recurring_id, "status": "ENABLED"}
        return 200, self.recurring_runs[recurring_id]

    def _list_recurring_runs(self, request: RecordedRequest) -> tuple[int, Any]:
        items = list(self.recurring_runs.values())
        if request.query.get("experiment_id"):
            items = [r for r in items if r.get("experiment_id") == request.query["experiment_id"]]
        page_size = int(request.query.get("page_size") or 10)
        start = int(request.query.get("page_token") or 0)
        page = items[start : start + page_size]
        response: dict[str, Any] = {"recurringRuns": page, "total_size": len(items)} if page else {}
        if start + page_size < len(items):
            response["next_page_token"] = str(start + page_size)
        return 200, response

    def _recurring(self, recurring_id: str) -> tuple[int, Any]:
        if recurring_id not in self.recurring_runs:
            return self._error(404, f"RecurringRun {recurring_id} not found")
        return 200, self.recurring_runs[recurring_id]

    def _set_mode(self, recurring_id: str, mode: str) -> tuple[int, Any]:
        if recurring_id not in self.recurring_runs:
            return self._error(404, f"RecurringRun {recurring_id} not found")
        self.recurring_runs[recurring_id]["mode"] = mode
        return 200, {}

    def _delete_recurring_run(self, request: RecordedRequest, recurring_id: str) -> tuple[int, Any]:
        if self.recurring_runs.pop(recurring_id, None) is None:
            return self._error(404, f"RecurringRun {recurring_id} not found")
        return 200, {}
