"""The Kubernetes API calls for KServe's objects: get, create, merge-patch (strict field validation),
apply the ServingRuntime, and wait for an InferenceService's newest generation to be Ready. Through the
``kubernetes`` client kfp installs, imported inside the constructor."""

from __future__ import annotations

import time
from typing import Any, Callable

from gated_training.errors import ServingError
from gated_training.kubernetes_api import api_client, status_message
from gated_training.serving.manifests import (
    GROUP,
    ISVC_PLURAL,
    ISVC_VERSION,
    RUNTIME_API_VERSION,
    RUNTIME_PLURAL,
    ready_state,
)


class KServeClient:
    """The InferenceService and ServingRuntime calls serve-model and the CLI make."""

    def __init__(self, api_url: str = "") -> None:
        from kubernetes import client

        self.api_client = api_client(api_url, ServingError)
        self.api = client.CustomObjectsApi(self.api_client)

    def _call(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as TransportError

        try:
            return function(*args, **kwargs)
        except ApiException as exc:
            message = status_message(exc)
            if 'unknown field "spec.canary"' in message or 'unknown field "spec.predictor.name"' in message:
                message += (
                    " (Standard-mode canaries need KServe >= 0.20: upgrade, use Knative mode, or "
                    "canary_traffic_percent=100)"
                )
            if exc.status == 403 and what.split(" ")[1].split("/")[0] in ("deployment", "service"):
                message += (
                    " (the prediction log's sink needs get, create and patch on deployments in apps and on "
                    "services; Kubeflow's kubeflow-edit role grants them)"
                )
            elif exc.status == 403:
                message += (
                    " (the service account needs get, create and patch on inferenceservices and servingruntimes "
                    "in serving.kserve.io; Kubeflow's kubeflow-edit role grants them)"
                )
            raise ServingError(f"{what}: HTTP {exc.status} {exc.reason}: {message}") from exc
        except (OSError, TransportError) as exc:  # refused, reset, DNS, TLS: urllib3's errors are not OSErrors
            raise ServingError(f"{what}: the Kubernetes API is unreachable: {exc}") from exc

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when the API server answers 404."""
        from kubernetes.client.exceptions import ApiException

        version = ISVC_VERSION if plural == ISVC_PLURAL else RUNTIME_API_VERSION

        def fetch() -> dict[str, Any] | None:
            try:
                return self.api.get_namespaced_custom_object(GROUP, version, namespace, plural, name)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        return self._call(f"get {plural}/{name} in {namespace}", fetch)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        plural = ISVC_PLURAL if obj["kind"] == "InferenceService" else RUNTIME_PLURAL
        version = obj["apiVersion"].split("/")[1]
        return self._call(
            f"create {plural}/{obj['metadata']['name']} in {obj['metadata']['namespace']}",
            self.api.create_namespaced_custom_object,
            GROUP,
            version,
            obj["metadata"]["namespace"],
            plural,
            obj,
            field_validation="Strict",
        )

    def patch(self, plural: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        version = ISVC_VERSION if plural == ISVC_PLURAL else RUNTIME_API_VERSION
        return self._call(
            f"patch {plural}/{name} in {namespace}",
            self.api.patch_namespaced_custom_object,
            GROUP,
            version,
            namespace,
            plural,
            name,
            patch,
            field_validation="Strict",
        )

    def apply_runtime(self, runtime: dict[str, Any]) -> str:
        """Create the ServingRuntime, or patch it to this spec; returns what was done."""
        meta = runtime["metadata"]
        current = self.get(RUNTIME_PLURAL, meta["namespace"], meta["name"])
        if current is None:
            self.create(runtime)
            return "created"
        if current.get("spec") == runtime["spec"]:
            return "unchanged"
        self.patch(RUNTIME_PLURAL, meta["namespace"], meta["name"], {"spec": runtime["spec"]})
        return "updated"

    # -- plain Kubernetes objects (the prediction-log sink's Deployment and Service) ------------------

    CORE_PATHS = {
        "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments",
        "Service": "/api/v1/namespaces/{namespace}/services",
    }

    def _raw(self, what: str, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        from kubernetes.client.exceptions import ApiException

        def call() -> Any:
            try:
                return self.api_client.call_api(
                    path,
                    method,
                    query_params=[("fieldValidation", "Strict")] if method in ("POST", "PATCH") else [],
                    header_params={
                        "Accept": "application/json",
                        "Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json",
                    },
                    body=body,
                    response_type="object",
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                )
            except ApiException as exc:
                if missing_ok and exc.status == 404:
                    return None
                raise

        return self._call(what, call)

    def apply_object(self, obj: dict[str, Any]) -> str:
        """Create a Deployment or Service, or merge-patch its labels and spec to this one; returns what was done."""
        kind, meta = obj["kind"], obj["metadata"]
        collection = self.CORE_PATHS[kind].format(namespace=meta["namespace"])
        where = f"{kind.lower()}/{meta['name']} in {meta['namespace']}"
        current = self._raw(f"get {where}", "GET", f"{collection}/{meta['name']}", missing_ok=True)
        if current is None:
            self._raw(f"create {where}", "POST", collection, obj)
            return "created"
        wanted = {"metadata": {"labels": meta.get("labels", {})}, "spec": obj["spec"]}
        if _contains(current, wanted):
            return "unchanged"
        self._raw(f"patch {where}", "PATCH", f"{collection}/{meta['name']}", wanted)
        return "updated"

    def wait_ready(
        self,
        namespace: str,
        name: str,
        timeout: float,
        poll: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> tuple[bool, str]:
        """Poll until the newest generation (and its canary) is Ready, or ``timeout`` seconds pass."""
        deadline = clock() + timeout
        why = "not observed"
        while True:
            obj = self.get(ISVC_PLURAL, namespace, name)
            if obj is None:
                return False, f"{name} disappeared from {namespace}"
            ready, why = ready_state(obj)
            if ready:
                return True, why
            if clock() >= deadline:
                return False, why
            sleep(poll)


def _contains(current: Any, wanted: Any) -> bool:
    """Whether ``current`` already holds every field of ``wanted`` (the server adds defaults of its own)."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(_contains(current.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(current, list) and len(current) == len(wanted) and all(map(_contains, current, wanted))
    return current == wanted
