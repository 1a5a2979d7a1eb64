"""The MLServer runtime of the serving image: mlserver-sklearn's model, loading only verified bytes.

Imported by MLServer in the serving image only (``model-settings.json`` names
``gated_training.serving.runtime.VerifiedModel``); nothing else imports it, so the library and
the component image need no MLServer. ``load()`` runs :func:`gated_training.serving.pod.load_served_model`
(the champion pointer, the signed manifest, every served file's SHA-256) before anything is
unpickled; a pod that fails it never becomes ready, and its log says why.

Requests: V2 (``/v2/models/<name>/infer``) with columnar inputs, decoded as a pandas frame
(``content_type: pd``); without requested outputs the answer has both ``predict`` (labels) and
``predict_proba``. V1 (``/v1/models/<name>:predict``) takes ``{"instances": [{column: value}, …]}``
and answers ``{"predictions": [...], "probabilities": [[...]], "model_version": "<version>"}``; V2
answers carry the registry version as ``model_version`` too. A JSON null is a missing value in
either protocol: the fitted pipeline's first step reads ``None`` as ``NaN`` (``missing_values``).
"""

# No `from __future__ import annotations`: FastAPI reads the handler's annotations (Request) at runtime.
import contextlib
import contextvars
import json
import os
import time
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from fastapi import Request
from fastapi.responses import JSONResponse
from mlserver.codecs import NumpyCodec, PandasCodec
from mlserver.handlers import custom_handler
from mlserver.settings import ModelParameters
from mlserver.types import InferenceRequest, InferenceResponse, RequestOutput
from mlserver.utils import get_model_uri
from mlserver_sklearn import SKLearnModel

from gated_training import logs
from gated_training.data import json_safe
from gated_training.errors import GatedTrainingError
from gated_training.registry import ModelRegistry
from gated_training.serving import layout as serving
from gated_training.serving.metrics import ServingMetrics
from gated_training.serving.pod import load_served_model

MAX_V1_INSTANCES = 10_000
# Below this many rows a request is scored on one thread: starting a forest's worker threads costs
# more than the prediction (one row: about 60 ms with threads, see docs/benchmarks-findings.md).
SEQUENTIAL_BELOW_ROWS = 1_000


def _scoring(rows: int) -> Any:
    return joblib.parallel_config(backend="sequential") if rows < SEQUENTIAL_BELOW_ROWS else contextlib.nullcontext()


def _required_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise GatedTrainingError(
            f"the serving pod has no {name}; the InferenceService made by serve-model sets it "
            "(gated_training.serving.manifests). Refusing to load an unverified model"
        )
    return value


METRICS_ENV = "GATED_TRAINING_SERVING_METRICS"  # "off": no series (what make bench-serving compares against)


class _NoMetrics:
    def refused(self, *args: Any, **kwargs: Any) -> None:
        pass

    def observe(self, *args: Any, **kwargs: Any) -> None:
        pass


def _serving_metrics(name: str, registry: ModelRegistry, manifest: dict[str, Any], model: Any) -> Any:
    """The version's series on MLServer's metrics port, input quality against its own verified reference profile."""
    if os.environ.get(METRICS_ENV, "").strip().lower() == "off":
        return _NoMetrics()
    from prometheus_client import REGISTRY  # what MLServer's /metrics serves with MLSERVER_PARALLEL_WORKERS=0

    from gated_training.registry import REFERENCE_PROFILE_FILE

    _, files = registry.read_verified_files(
        manifest["version"], (REFERENCE_PROFILE_FILE,), _required_env(serving.ENV_MANIFEST_SHA256)
    )
    profile = json.loads(files[REFERENCE_PROFILE_FILE]) if files[REFERENCE_PROFILE_FILE] else None
    return ServingMetrics(REGISTRY, name, manifest["version"], list(getattr(model, "classes_", [])), profile)


# The frame a V2 request decoded to while it was scored, for the metrics: decoding it a second time was most
# of what the metrics cost per request (make bench-serving). One per request: predict runs in its own task.
_decoded_frame: contextvars.ContextVar[Any] = contextvars.ContextVar("gated_training_decoded", default=None)


class VerifiedModel(SKLearnModel):
    """mlserver-sklearn's SKLearnModel whose ``load`` verifies before it unpickles."""

    async def load(self) -> bool:
        model_path = await get_model_uri(self._settings, wellknown_filenames=["model.joblib"])
        registry = ModelRegistry(_required_env(serving.ENV_REGISTRY_URI), _required_env(serving.ENV_MODEL_NAME))
        extra = (self.settings.parameters.extra or {}) if self.settings.parameters else {}
        if extra.get("registry_model_name") not in (None, registry.model_name):
            raise GatedTrainingError(
                f"model-settings.json names registry model {extra.get('registry_model_name')!r}, "
                f"the pod was told {registry.model_name!r}; refusing to load"
            )
        self._model, manifest, settings = load_served_model(
            folder=str(Path(model_path).parent),
            registry=registry,
            version=_required_env(serving.ENV_VERSION),
            manifest_sha256=_required_env(serving.ENV_MANIFEST_SHA256),
        )
        if settings.get("name") != self.name:
            raise GatedTrainingError(
                f"version {manifest['version']} is served as {settings.get('name')!r}, this pod "
                f"as {self.name!r}; refusing to load"
            )
        # The version's own (verified) settings decide how requests decode: columnar pandas frames.
        if self.settings.parameters is None:
            self.settings.parameters = ModelParameters()
        self.settings.parameters.content_type = settings["parameters"].get("content_type", "pd")
        self.registry_version = manifest["version"]
        self.metrics = _serving_metrics(self.name, registry, manifest, self._model)
        logs.configure()
        logs.event(
            "runtime.loaded",
            f"gated-training: serving {registry.model_name} version {manifest['version']} as {self.name}, verified "
            f"(pointer, signed manifest, SHA-256 of every served file) with {serving.libraries()}",
            model=registry.model_name,
            version=str(manifest["version"]),
            served_as=self.name,
            libraries=serving.libraries(),
        )
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = max((item.shape[0] if item.shape else 1) for item in payload.inputs) if payload.inputs else 0
        started = time.perf_counter()
        _decoded_frame.set(None)
        try:
            with _scoring(rows):
                response = await super().predict(payload)
        except Exception:
            self.metrics.refused("v2", time.perf_counter() - started)
            raise
        self._observe_v2(payload, response, time.perf_counter() - started)
        # The registry version that answered, in every answer: the prediction log files calls by it, and
        # champion and canary (two versions behind one name) are told apart by it.
        response.model_version = self.registry_version
        return response

    def _observe_v2(self, payload: InferenceRequest, response: InferenceResponse, seconds: float) -> None:
        """The request's inputs and the answer, for the metrics (never fails the request)."""
        try:
            frame = _decoded_frame.get()
            if not isinstance(frame, pd.DataFrame):
                frame = self.decode_request(payload, default_codec=PandasCodec)
            outputs = {output.name: output for output in response.outputs}
            predicted = list(NumpyCodec.decode_output(outputs["predict"]).ravel())
            probabilities = NumpyCodec.decode_output(outputs["predict_proba"]) if "predict_proba" in outputs else []
            self.metrics.observe("v2", frame, predicted, probabilities, seconds)
        except Exception as exc:  # metrics are a courtesy: the answer stands
            logs.event(
                "runtime.metrics_error",
                f"gated-training: metrics not recorded for a V2 request: {type(exc).__name__}: {exc}",
                severity="WARNING",
                model=self.name,
                version=str(self.registry_version),
            )

    def decode_request(self, payload: Any, default_codec: Any = None) -> Any:
        decoded = super().decode_request(payload, default_codec=default_codec)
        if isinstance(payload, InferenceRequest) and isinstance(decoded, pd.DataFrame):
            _decoded_frame.set(decoded)
        return decoded

    def _check_request(self, payload: InferenceRequest) -> InferenceRequest:
        if not payload.outputs:  # the label and the class probabilities, in the order of classes_
            payload.outputs = [RequestOutput(name="predict"), RequestOutput(name="predict_proba")]
        return super()._check_request(payload)

    @custom_handler(rest_path="/v1/models/{model_name}:predict")
    async def v1_predict(self, model_name: str, request: Request) -> JSONResponse:
        """KServe's V1 protocol: ``{"instances": [{column: value, …}, …]}`` (one object per row)."""
        if model_name != self.name:
            return JSONResponse({"error": f"model {model_name!r} is not served here (this is {self.name!r})"}, 404)
        try:
            body = await request.json()
        except ValueError:
            self.metrics.refused("v1")
            return JSONResponse({"error": "the request body is not JSON"}, 400)
        instances = body.get("instances") if isinstance(body, dict) else None
        if not (
            isinstance(instances, list)
            and 0 < len(instances) <= MAX_V1_INSTANCES
            and all(isinstance(row, dict) for row in instances)
        ):
            self.metrics.refused("v1")
            return JSONResponse(
                {
                    "error": f'expected {{"instances": [{{column: value, ...}}, ...]}} with 1 to '
                    f"{MAX_V1_INSTANCES} objects, one per row"
                },
                400,
            )
        frame = pd.DataFrame.from_records(instances)
        started = time.perf_counter()
        try:
            with _scoring(len(frame)):
                labels = self._model.predict(frame)
                probabilities = self._model.predict_proba(frame)
        except (ValueError, KeyError, TypeError) as exc:
            self.metrics.refused("v1", time.perf_counter() - started)
            return JSONResponse({"error": f"cannot score these instances: {exc}"}, 400)
        self.metrics.observe("v1", frame, list(labels), probabilities, time.perf_counter() - started)
        return JSONResponse(
            {
                "predictions": json_safe(list(labels)),
                "probabilities": json_safe([list(row) for row in probabilities]),
                "model_version": self.registry_version,
            }
        )
