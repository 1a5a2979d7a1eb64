"""The prediction-log sink: receives KServe's payload-logger events and writes them to the bucket.

The agent sends each event once and never retries, and a slow sink slows serving (its 100-event
queue blocks the request being served when full). So the sink's promise is:

1. **It acknowledges fast, and never refuses while it can still buffer.** Receiving an event is a
   few dictionary operations under a lock; the bucket is written by a background thread.
2. **What it acknowledged is on the bucket, or in a bounded buffer** (``max_buffered_events``) that is
   written every ``flush_seconds`` and on SIGTERM. A SIGKILL loses at most that buffer.
3. **What it had to drop is counted and reported**: events refused because the buffer was full (HTTP
   503: the bucket is slower than the traffic, or unreachable), each sink's counters written beside
   the predictions every flush (``sink/hour=…/<sink>.json``), which the monitoring run reports.
4. **Duplicates are dropped by id** (the last ``remembered_ids`` request/response ids).
5. **Malformed, oversized or unpaired events are counted and kept aside** (``model=…/aside/``, with
   the reason and the first 4 KiB of the body), and never crash it. A request whose response never
   came within ``pair_timeout_seconds`` (the predictor answered non-200, or the response event was
   lost) is kept aside as unpaired; the monitoring run pairs what two sink replicas kept apart.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from gated_training import logs
from gated_training.errors import GatedTrainingError
from gated_training.predictionlog.events import EventError, LoggedEvent, parse_event
from gated_training.predictionlog.store import (
    ASIDE_BODY_BYTES,
    ASIDE_COLUMNS,
    PREDICTION_COLUMNS,
    Prediction,
    aside_folder,
    hour_of,
    parquet_bytes,
    prediction_folder,
    stats_uri,
)

COUNTERS = (
    "received",  # every POST
    "accepted",  # acknowledged with 200: buffered, then written
    "paired",  # request and response met here
    "duplicates",  # acknowledged and dropped: an id (and kind) seen before
    "malformed",  # refused (400) and kept aside: not a KServe logger event
    "oversized",  # refused (413) and kept aside without its body
    "refused_full",  # refused (503): the buffer was full; the agent drops the event
    "unpaired_requests",  # kept aside: no response within pair_timeout_seconds
    "unpaired_responses",  # kept aside: no request within pair_timeout_seconds
    "unknown_version",  # written under version=unknown: the response named no version
    "written_predictions",
    "written_aside",
    "write_errors",  # flushes that failed (retried at the next flush; the events stay buffered)
)


@dataclass(frozen=True)
class SinkSettings:
    log_uri: str
    max_event_bytes: int = 1024 * 1024
    max_buffered_events: int = 50_000
    flush_seconds: float = 30.0
    flush_events: int = 5_000
    pair_timeout_seconds: float = 120.0
    remembered_ids: int = 200_000

    def __post_init__(self) -> None:
        if not self.log_uri:
            raise GatedTrainingError("the sink needs a prediction-log URI (a folder or gs://bucket/prefix)")
        for name in ("max_event_bytes", "max_buffered_events", "flush_events", "remembered_ids"):
            if int(getattr(self, name)) < 1:
                raise GatedTrainingError(f"sink setting {name} must be at least 1")
        for name in ("flush_seconds", "pair_timeout_seconds"):
            if not float(getattr(self, name)) > 0:
                raise GatedTrainingError(f"sink setting {name} must be above 0")


@dataclass
class _Aside:
    reason: str
    message: str
    headers: dict[str, str]
    body: bytes
    size: int
    received: datetime
    event: LoggedEvent | None = None

    def row(self) -> dict[str, Any]:
        event = self.event
        return {
            "reason": self.reason,
            "message": self.message[:1000],
            "id": event.id if event else self.headers.get("ce-id", "")[:256],
            "kind": event.kind if event else self.headers.get("ce-type", "")[:256],
            "inference_service": event.inference_service if event else "",
            "namespace": event.namespace if event else "",
            "time": event.time if event else None,
            "received": self.received,
            "size": self.size,
            "headers": json.dumps({k: v[:256] for k, v in list(self.headers.items())[:64]}),
            "body": self.body[:ASIDE_BODY_BYTES],
        }

    @property
    def service(self) -> str:
        return self.event.inference_service if self.event else ""


@dataclass
class FlushResult:
    predictions: int = 0
    aside: int = 0
    files: list[str] = field(default_factory=list)
    error: str = ""


class Sink:
    """The buffer, the pairing and the counters; the HTTP app (:func:`app`) only hands it events."""

    def __init__(self, settings: SinkSettings, *, sink_id: str = "", clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.sink_id = sink_id or f"{socket.gethostname()}-{int(time.time())}-{uuid.uuid4().hex[:6]}"
        self.clock = clock
        self.started = datetime.fromtimestamp(clock(), timezone.utc)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: OrderedDict[tuple[str, str, str], tuple[LoggedEvent, float]] = OrderedDict()
        self._ready: list[Prediction] = []
        self._aside: list[_Aside] = []
        self._seen: OrderedDict[tuple[str, str, str, str], None] = OrderedDict()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._hour_counters: dict[str, dict[str, int]] = {}
        self._sequence = 0

    # -- receiving ---------------------------------------------------------------------------------

    def held(self) -> int:
        """Events in memory: pending requests/responses, paired calls (two each), events kept aside."""
        return len(self._pending) + 2 * len(self._ready) + len(self._aside)

    def receive(self, headers: dict[str, str], body: bytes, size: int | None = None) -> tuple[int, str]:
        """One POST: headers with lower-case names, the body (cut at ``max_event_bytes`` by the caller when
        larger; ``size`` is its real length). Returns the HTTP status and a one-line answer."""
        now = self.clock()
        received = datetime.fromtimestamp(now, timezone.utc)
        size = len(body) if size is None else size
        with self._lock:
            self._count("received", received)
            if self.held() >= self.settings.max_buffered_events:
                self._count("refused_full", received)
                return 503, f"the sink's buffer is full ({self.settings.max_buffered_events} events); event dropped"
            if size > self.settings.max_event_bytes:
                self._count("oversized", received)
                message = f"event of {size} bytes, above the sink's limit of {self.settings.max_event_bytes}"
                self._aside.append(_Aside("oversized", message, dict(headers), b"", size, received))
                return 413, message
            try:
                event = parse_event(headers, body)
            except EventError as exc:
                self._count("malformed", received)
                self._aside.append(_Aside(exc.kind, str(exc), dict(headers), body, size, received))
                return 400, str(exc)
            seen = (*event.key, event.kind)
            if seen in self._seen:
                self._count("duplicates", received)
                return 200, "duplicate id: dropped"
            self._seen[seen] = None
            if len(self._seen) > self.settings.remembered_ids:
                self._seen.popitem(last=False)
            self._count("accepted", received)
            partner = self._pending.get(event.key)
            if partner is not None and partner[0].kind != event.kind:
                del self._pending[event.key]
                request, response = (event, partner[0]) if event.kind == "request" else (partner[0], event)
                self._ready.append(Prediction(request, response))
                self._count("paired", received)
            else:
                self._pending[event.key] = (event, now)
            return 200, "ok"

    def _count(self, name: str, when: datetime, amount: int = 1) -> None:
        self.counters[name] += amount
        hour = self._hour_counters.setdefault(hour_of(when), dict.fromkeys(COUNTERS, 0))
        hour[name] += amount

    # -- writing -----------------------------------------------------------------------------------

    def due(self) -> bool:
        return len(self._ready) >= self.settings.flush_events

    def flush(self, *, final: bool = False) -> FlushResult:
        """Write the paired calls, the events kept aside, and the requests/responses whose partner did not
        come within ``pair_timeout_seconds`` (all of them when ``final``). On a failed write everything
        taken goes back into the buffer and is retried at the next flush."""
        with self._flush_lock:
            now = self.clock()
            moment = datetime.fromtimestamp(now, timezone.utc)
            with self._lock:
                ready, self._ready = self._ready, []
                aside, self._aside = self._aside, []
                expired = [
                    key
                    for key, (_, arrived) in self._pending.items()
                    if final or now - arrived >= self.settings.pair_timeout_seconds
                ]
                unpaired = [self._pending.pop(key)[0] for key in expired]
                for event in unpaired:
                    reason = "unpaired_request" if event.kind == "request" else "unpaired_response"
                    partner = "response" if event.kind == "request" else "request"
                    aside.append(
                        _Aside(
                            reason,
                            f"no {partner} event within {self.settings.pair_timeout_seconds:g} s",
                            {},
                            event.body,
                            len(event.body),
                            moment,
                            event,
                        )
                    )
                hours = {hour: dict(values) for hour, values in self._hour_counters.items()}
            result = FlushResult()
            try:
                result.files += self._write_predictions(ready)
                result.predictions = len(ready)
                result.files += self._write_aside(aside)
                result.aside = len(aside)
            except Exception as exc:  # the bucket, the disk: keep everything and say so
                with self._lock:
                    self._ready = ready + self._ready
                    self._aside = [a for a in aside if a.event is None or a.reason not in _UNPAIRED] + self._aside
                    for a in aside:
                        if a.event is not None and a.reason in _UNPAIRED:
                            self._pending.setdefault(a.event.key, (a.event, now))
                    self._count("write_errors", moment)
                result.error = f"{type(exc).__name__}: {exc}"
                return result
            with self._lock:
                for item in aside:
                    if item.reason in _UNPAIRED:
                        self._count(f"{item.reason}s", moment)
                self._count("written_predictions", moment, len(ready))
                self._count("written_aside", moment, len(aside))
                self._count("unknown_version", moment, sum(1 for p in ready if p.version == "unknown"))
                hours = {hour: dict(values) for hour, values in self._hour_counters.items()}
                current = hour_of(moment)
                for hour in [h for h in self._hour_counters if h < current]:
                    del self._hour_counters[hour]  # written below for the last time
            self._write_stats(hours)
            return result

    def _next_name(self) -> str:
        self._sequence += 1
        return f"part-{self.sink_id}-{self._sequence:06d}.parquet"

    def _write_predictions(self, ready: list[Prediction]) -> list[str]:
        from gated_training.data import storage

        groups: dict[str, list[dict[str, Any]]] = {}
        for prediction in ready:
            folder = prediction_folder(
                self.settings.log_uri,
                prediction.request.inference_service,
                prediction.version,
                hour_of(prediction.request.time),
            )
            groups.setdefault(folder, []).append(prediction.row())
        written = []
        for folder, rows in groups.items():
            uri = storage.join_uri(folder, self._next_name())
            storage.write_bytes(uri, parquet_bytes(rows, PREDICTION_COLUMNS), create_only=True)
            written.append(uri)
        return written

    def _write_aside(self, aside: list[_Aside]) -> list[str]:
        from gated_training.data import storage

        groups: dict[str, list[dict[str, Any]]] = {}
        for item in aside:
            folder = aside_folder(self.settings.log_uri, item.service, hour_of(item.received))
            groups.setdefault(folder, []).append(item.row())
        written = []
        for folder, rows in groups.items():
            uri = storage.join_uri(folder, self._next_name())
            storage.write_bytes(uri, parquet_bytes(rows, ASIDE_COLUMNS), create_only=True)
            written.append(uri)
        return written

    def _write_stats(self, hours: dict[str, dict[str, int]]) -> None:
        from gated_training.data import storage

        for hour, values in hours.items():
            document = {"sink": self.sink_id, "started": self.started.isoformat(), "hour": hour, "counters": values}
            try:
                storage.write_bytes(stats_uri(self.settings.log_uri, hour, self.sink_id), json.dumps(document).encode())
            except Exception:  # counters are rewritten at the next flush
                with self._lock:
                    self.counters["write_errors"] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "sink": self.sink_id,
                "started": self.started.isoformat(),
                "held": self.held(),
                "settings": asdict(self.settings),
                "counters": dict(self.counters),
            }


_UNPAIRED = ("unpaired_request", "unpaired_response")


class Flusher(threading.Thread):
    """Flushes every ``flush_seconds``, or sooner when ``flush_events`` calls are ready."""

    def __init__(self, sink: Sink) -> None:
        super().__init__(name="prediction-log-flusher", daemon=True)
        self.sink = sink
        self.wake = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(self.sink.settings.flush_seconds)
            self.wake.clear()
            if self.stopping.is_set():
                break
            self._flush(final=False)

    def _flush(self, *, final: bool) -> FlushResult:
        result = self.sink.flush(final=final)
        if result.error:
            logs.event(
                "sink.write_failed",
                f"prediction-log sink: write failed, {self.sink.held()} events kept in the buffer: {result.error}",
                severity="ERROR",
                held=self.sink.held(),
                error=result.error,
            )
        elif result.predictions or result.aside:
            logs.event(
                "sink.wrote",
                f"prediction-log sink: wrote {result.predictions} predictions, {result.aside} kept aside",
                predictions=result.predictions,
                aside=result.aside,
            )
        return result

    def stop(self, deadline_seconds: float) -> FlushResult:
        """Stop, then flush everything, retrying a failed write until the deadline."""
        self.stopping.set()
        self.wake.set()
        self.join(timeout=deadline_seconds)
        end = time.monotonic() + deadline_seconds
        result = self._flush(final=True)
        while result.error and time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            result = self._flush(final=True)
        if result.error:
            logs.event(
                "sink.lost",
                f"prediction-log sink: stopping with {self.sink.held()} events not written "
                f"(the bucket refused them until the deadline): {result.error}",
                severity="ERROR",
                held=self.sink.held(),
                error=result.error,
            )
        logs.event(
            "sink.stopped",
            f"prediction-log sink: stopped; counters {json.dumps(self.sink.counters, sort_keys=True)}",
            counters=self.sink.counters,
        )
        return result


def app(sink: Sink, flusher: Flusher | None = None, shutdown_seconds: float = 25.0) -> Callable[..., Any]:
    """The ASGI app: ``POST`` (any path) takes one event; ``GET /healthz``; ``GET /stats`` the counters."""
    limit = sink.settings.max_event_bytes

    async def respond(send: Callable[..., Any], status: int, text: str, content_type: bytes = b"text/plain") -> None:
        body = text.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def asgi(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if flusher is not None:
                        flusher.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if flusher is not None:
                        flusher.stop(shutdown_seconds)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "GET" and path == "/healthz":
            await respond(send, 200, "ok")
            return
        if method == "GET" and path == "/stats":
            await respond(send, 200, json.dumps(sink.stats()), b"application/json")
            return
        if method != "POST":
            await respond(send, 405, "POST one CloudEvent, or GET /healthz or /stats")
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            headers[name] = raw_value.decode("utf-8", "replace") if name not in headers else headers[name]
        chunks, size = [], 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            piece = message.get("body", b"")
            size += len(piece)
            if size <= limit:
                chunks.append(piece)
            more = message.get("more_body", False)
        status, text = sink.receive(headers, b"".join(chunks) if size <= limit else b"", size)
        if flusher is not None and sink.due():
            flusher.wake.set()
        await respond(send, status, text)

    return asgi


def serve(settings: SinkSettings, host: str, port: int, *, shutdown_seconds: float = 25.0) -> int:
    """Run the sink until SIGTERM or SIGINT, then write everything it holds. Returns the exit code."""
    import uvicorn

    logs.configure()
    sink = Sink(settings)
    flusher = Flusher(sink)
    logs.event(
        "sink.started",
        f"prediction-log sink {sink.sink_id}: http://{host}:{port}/ → {settings.log_uri} "
        f"(buffer {settings.max_buffered_events} events, flush every {settings.flush_seconds:g} s)",
        sink_id=sink.sink_id,
        log_uri=settings.log_uri,
        max_buffered_events=settings.max_buffered_events,
        flush_seconds=settings.flush_seconds,
    )
    config = uvicorn.Config(
        app(sink, flusher, shutdown_seconds),
        host=host,
        port=port,
        lifespan="on",
        log_level=os.environ.get("GATED_TRAINING_SINK_LOG_LEVEL", "warning"),
        access_log=False,
        # In JSON mode uvicorn's records go through the root's JSON handler (logs.configure), not its own.
        log_config=None if logs.log_format() == "json" else uvicorn.config.LOGGING_CONFIG,
        timeout_graceful_shutdown=int(shutdown_seconds),
        # Longer than Go's idle-connection timeout (90 s): the agent closes an idle connection before the sink
        # does, so it never writes an event onto a connection the sink is closing (a POST is not retried).
        timeout_keep_alive=120,
    )
    _server_class()(config).run()
    return 0 if sink.held() == 0 else 1


def _server_class() -> Any:
    import contextlib
    import signal

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, whose SIGTERM/SIGINT stop it gracefully without being raised again at exit:
        the exit code then says whether everything held was written."""

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return Server
