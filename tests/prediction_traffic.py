"""Served traffic written to a prediction log as KServe's agent would deliver it to our sink: V2 request and
response bodies in the shape the serving runtime answers (``predict`` and ``predict_proba`` outputs, the answering
``model_version``), binary-mode CloudEvent headers, through :class:`Sink` and flushed to Parquet. Labels are written
as the CSV tables a data owner drops under ``labels_uri``.

The loop test sends real HTTP through MLServer and the agent stand-in; this helper is for the many tests that need a
window of calls without a server."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gated_training.config import DriftPolicy, MonitoringRunSettings, MonitoringSettings
from gated_training.predictionlog import Sink, SinkSettings
from gated_training.predictionlog.events import event_headers
from gated_training.registry import ModelRegistry, ensure_local_key
from gated_training.steps.monitor_window import finish_window, monitor_window
from tests.conftest import SAMPLE_DATA
from tests.integration.conftest import LocalSetup
from tests.registry_helpers import registry_bytes


def _cell(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    return value


def v2_bodies(
    frame: pd.DataFrame, predicted: list[Any], proba: np.ndarray, model: str, version: str
) -> tuple[bytes, bytes]:
    inputs = []
    for name in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[name])
        inputs.append(
            {
                "name": str(name),
                "shape": [len(frame), 1],
                "datatype": "FP64" if numeric else "BYTES",
                "data": [_cell(v) for v in frame[name].tolist()],
            }
        )
    response = {
        "model_name": model,
        "model_version": version,
        "outputs": [
            {"name": "predict", "shape": [len(frame), 1], "datatype": "BYTES", "data": [str(p) for p in predicted]},
            {
                "name": "predict_proba",
                "shape": list(proba.shape),
                "datatype": "FP64",
                "data": [float(p) for p in proba.ravel()],
            },
        ],
    }
    return json.dumps({"inputs": inputs}).encode(), json.dumps(response).encode()


def call_events(
    service: str,
    version: str,
    frame: pd.DataFrame,
    model: Any,
    start: datetime,
    *,
    spacing: timedelta = timedelta(seconds=20),
    endpoint: str = "default",
    ids: list[str] | None = None,
    metadata: list[dict[str, list[str]]] | None = None,
) -> tuple[list[str], list[tuple[dict[str, str], bytes]]]:
    """One call per row of ``frame``, answered by ``model`` as ``version``: the call ids, and each call's request and
    response event (headers, body) as KServe's agent posts them."""
    predicted = list(model.predict(frame))
    proba = np.asarray(model.predict_proba(frame))
    ids = ids or [uuid.uuid4().hex for _ in range(len(frame))]
    events = []
    for i in range(len(frame)):
        moment = start + i * spacing
        request, response = v2_bodies(frame.iloc[[i]], predicted[i : i + 1], proba[i : i + 1], service, version)
        for kind, body in (("request", request), ("response", response)):
            headers = event_headers(
                event_id=ids[i],
                kind=kind,
                source=f"{service}-predictor-00001-deployment-7d9",
                time=moment,
                recorded_time=moment,
                inference_service=service,
                namespace="team-ml",
                component="predictor",
                endpoint=endpoint,
                metadata=(metadata[i] if metadata else {}),
                content_type="application/json",
            )
            events.append((headers, body))
    return ids, events


def log_calls(
    log_uri: str | Path,
    service: str,
    version: str,
    frame: pd.DataFrame,
    model: Any,
    start: datetime,
    **options: Any,
) -> list[str]:
    """The calls of :func:`call_events` through an in-process sink, flushed to the log; returns the call ids."""
    sink = Sink(
        SinkSettings(log_uri=str(log_uri), max_buffered_events=10**7, flush_events=10**7),
        sink_id=f"traffic-{uuid.uuid4().hex[:8]}",
    )
    ids, events = call_events(service, version, frame, model, start, **options)
    for headers, body in events:
        status, text = sink.receive(headers, body)
        assert status == 200, text
    result = sink.flush(final=True)
    assert not result.error, result.error
    return ids


def write_labels(path: Path, rows: list[tuple[str, Any, datetime]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "request_id": [r[0] for r in rows],
            "label": [r[1] for r in rows],
            "event_time": [r[2].isoformat().replace("+00:00", "Z") for r in rows],
        }
    ).to_csv(path, index=False)
    return path


# A window of one served champion on the sample, for the monitoring tests (integration and the Prometheus E2E).
MODEL = "tabular-classifier"
END = datetime(2026, 12, 4, 18, tzinfo=timezone.utc)


class Served:
    def __init__(self, setup: LocalSetup, root: Path) -> None:
        ensure_local_key()
        self.setup, self.root = setup, root
        self.registry = ModelRegistry(str(setup.registry), MODEL)
        self.champion = self.registry.champion()
        self.model, _ = self.registry.load_verified(self.champion.version)
        data = pd.read_csv(SAMPLE_DATA)
        self.truth = data.pop("risk")
        self.data = data
        self.log, self.labels = root / "log", root / "labels"
        self.before = registry_bytes(setup.registry)

    def traffic(self, n: int, *, seed: int = 0, hours_before_end: float = 20, version: str | None = None, **shift):
        rows = self.data.sample(n, replace=True, random_state=seed)
        truth = self.truth.loc[rows.index].reset_index(drop=True)
        rows = rows.reset_index(drop=True)
        for column, change in shift.items():
            rows[column] = change(rows[column])
        start = END - timedelta(hours=hours_before_end)
        spacing = timedelta(hours=hours_before_end * 0.9) / max(n, 1)
        ids = log_calls(self.log, MODEL, version or self.champion.version, rows, self.model, start, spacing=spacing)
        return ids, truth

    def label(self, ids: list[str], labels, known: datetime = END - timedelta(minutes=5), name: str = "l.csv") -> None:
        write_labels(self.labels / name, [(i, v, known) for i, v in zip(ids, labels)])

    def monitor(self, *, hook: str = "", labels: bool = True, **settings):
        run = MonitoringRunSettings(
            prediction_log_uri=str(self.log),
            labels_uri=str(self.labels) if labels else "",
            registry_uri=str(self.setup.registry),
            model_name=MODEL,
            mlflow_tracking_uri=self.setup.tracking_uri,
            notify_webhook_url=hook,
        )
        out = self.root / f"out-{len(list(self.root.glob('out-*')))}"
        out.mkdir()
        paths = [str(out / name) for name in ("r.json", "r.md", "r.html")]
        outcome, retrain = monitor_window(
            run=run,
            settings=MonitoringSettings(**{"label_delay_hours": 24, **settings}),
            policy=DriftPolicy(),
            end=END,
            result_out=paths[0],
            markdown_out=paths[1],
            html_out=paths[2],
            kfp_run_id="run-1",
        )
        metrics = finish_window(run, outcome, *paths, {})
        return outcome, retrain, json.loads(Path(paths[0]).read_text()), metrics

    def registry_unchanged(self) -> bool:
        return registry_bytes(self.setup.registry) == self.before


def flipped(truth: pd.Series, share: float, seed: int = 1) -> np.ndarray:
    labels = truth.to_numpy().copy()
    change = np.random.default_rng(seed).random(len(labels)) < share
    labels[change] = 1 - labels[change]
    return labels
