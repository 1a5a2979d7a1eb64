"""KServe's payload-logger events, as its agent sends them, read without trusting a byte.

What the agent does (``pkg/logger/handler.go`` and ``worker.go`` in kserve/kserve, CloudEvents
sdk-go v2.16): for every request to the predictor it sends one **binary-mode** CloudEvent over HTTP
POST, type ``org.kubeflow.serving.inference.request``, and, only when the predictor answered HTTP
200, one of type ``org.kubeflow.serving.inference.response``. Both carry

- ``ce-id``: the request's ``Ce-Id`` header, or a fresh UUID (so a caller who wants to label a
  prediction later sends its own ``Ce-Id``);
- ``ce-specversion`` ``1.0``, ``ce-source`` (the pod's name), ``ce-time`` (when the request arrived,
  or when the response was read), the extension ``ce-recordedtime`` (when the event was built);
- the extensions ``ce-inferenceservicename``, ``ce-namespace``, ``ce-component``, ``ce-endpoint``
  (``default`` or ``canary``) and ``ce-metadata``: the JSON of ``{header: [values]}`` for the request
  headers named in ``metadataHeaders`` (compared with Go's canonical header names: ``X-Request-Id``);
- the body as it was, with the *request's* ``Content-Type`` on both events.

sdk-go writes the header values as they are (no percent-encoding), so they are read as they are (a
percent-encoded ``ce-metadata``, as newer SDKs write it, is read too). Each
event is sent once: a non-200 answer from the sink is logged by the agent and the event is gone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import unquote

from gated_training.kubernetes_names import go_header_name as go_header_name  # the agent's spelling, re-exported

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
EVENT_TYPES = {REQUEST_TYPE: "request", RESPONSE_TYPE: "response"}
SPEC_VERSION = "1.0"
MAX_ID_LENGTH = 256
MAX_ATTRIBUTE_LENGTH = 1024
MAX_METADATA_BYTES = 8 * 1024
# An id is printable ASCII without spaces: it becomes a file's row key and a label's join key.
_ID = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_ID_LENGTH)
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
UNKNOWN_VERSION = "unknown"


class EventError(ValueError):
    """An event that cannot be stored as a prediction: ``kind`` says which pile it goes to."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class LoggedEvent:
    """One event, checked: its attributes and body, as the sink keeps them."""

    id: str
    kind: str  # "request" or "response"
    source: str
    time: datetime  # the occurrence time the agent set (UTC)
    recorded_time: datetime | None
    inference_service: str
    namespace: str
    component: str
    endpoint: str
    metadata: dict[str, list[str]] = field(default_factory=dict)
    content_type: str = ""
    body: bytes = b""

    @property
    def key(self) -> tuple[str, str, str]:
        """Request and response of one call share it."""
        return (self.namespace, self.inference_service, self.id)


def parse_time(text: str, name: str) -> datetime:
    """An RFC 3339 timestamp as Go writes it (``2026-12-04T17:20:01.123456789Z``), to a UTC datetime."""
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})", text.strip())
    if not match:
        raise EventError("malformed", f"{name} is not an RFC 3339 time: {text[:64]!r}")
    fraction = (match.group(2) or "")[:7].ljust(7, "0") if match.group(2) else ""  # Python keeps microseconds
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    try:
        parsed = datetime.fromisoformat(match.group(1) + fraction + zone)
    except ValueError as exc:
        raise EventError("malformed", f"{name} is not a valid time: {text[:64]!r}") from exc
    return parsed.astimezone(timezone.utc)


def _attribute(headers: Mapping[str, str], name: str, required: bool = True) -> str:
    value = headers.get(name, "")
    if required and not value:
        raise EventError("malformed", f"no {name} header: not a KServe payload-logger CloudEvent")
    if len(value) > MAX_ATTRIBUTE_LENGTH:
        raise EventError("malformed", f"{name} is longer than {MAX_ATTRIBUTE_LENGTH} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise EventError("malformed", f"{name} holds control characters")
    return value


def _metadata(text: str) -> dict[str, list[str]]:
    if not text:
        return {}
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise EventError("malformed", f"ce-metadata is larger than {MAX_METADATA_BYTES} bytes")
    try:
        value = json.loads(text)
    except ValueError:
        # KServe's sdk-go writes the JSON as it is; senders that follow binding 1.0.2 percent-encode
        # '"', '%' and spaces. A JSON object never starts with "{%", so decoding is unambiguous here.
        try:
            value = json.loads(unquote(text)) if text.startswith("{%") else None
        except ValueError:
            value = None
        if value is None:
            raise EventError("malformed", "ce-metadata is not JSON") from None
    if value is None:  # Go marshals a nil map as null
        return {}
    if not (
        isinstance(value, dict)
        and all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) for s in v) for k, v in value.items()
        )
    ):
        raise EventError("malformed", 'ce-metadata is not {"Header-Name": ["value", ...]}')
    return value


def parse_event(headers: Mapping[str, str], body: bytes) -> LoggedEvent:
    """Read one binary-mode event; ``headers`` with lower-case names. Raises :class:`EventError`."""
    if _attribute(headers, "ce-specversion") != SPEC_VERSION:
        raise EventError("malformed", f"ce-specversion {headers.get('ce-specversion')!r}: only 1.0 is read")
    event_id = _attribute(headers, "ce-id")
    if not _ID.fullmatch(event_id):
        raise EventError("malformed", f"ce-id must be 1 to {MAX_ID_LENGTH} printable ASCII characters without spaces")
    event_type = _attribute(headers, "ce-type")
    if event_type not in EVENT_TYPES:
        raise EventError("malformed", f"ce-type {event_type[:80]!r} is not a KServe inference request or response")
    service = _attribute(headers, "ce-inferenceservicename")
    namespace = _attribute(headers, "ce-namespace")
    for name, value in (("ce-inferenceservicename", service), ("ce-namespace", namespace)):
        if not _NAME.fullmatch(value):
            raise EventError("malformed", f"{name} {value[:80]!r} is not a Kubernetes name")
    recorded = _attribute(headers, "ce-recordedtime", required=False)
    return LoggedEvent(
        id=event_id,
        kind=EVENT_TYPES[event_type],
        source=_attribute(headers, "ce-source"),
        time=parse_time(_attribute(headers, "ce-time"), "ce-time"),
        recorded_time=parse_time(recorded, "ce-recordedtime") if recorded else None,
        inference_service=service,
        namespace=namespace,
        component=_attribute(headers, "ce-component", required=False),
        endpoint=_attribute(headers, "ce-endpoint", required=False),
        metadata=_metadata(_attribute(headers, "ce-metadata", required=False)),
        content_type=_attribute(headers, "content-type", required=False),
        body=body,
    )


def answered_version(body: bytes) -> str:
    """The registry version that answered, from a response body of this project's runtime: V2's
    ``model_version`` or V1's ``model_version``; ``unknown`` when the body names none."""
    try:
        document = json.loads(body)
    except ValueError:
        return UNKNOWN_VERSION
    version = document.get("model_version") if isinstance(document, dict) else None
    if isinstance(version, str) and re.fullmatch(r"[0-9A-Za-z._-]{1,128}", version):
        return version
    return UNKNOWN_VERSION


def event_headers(
    *,
    event_id: str,
    kind: str,
    source: str,
    time: datetime,
    recorded_time: datetime,
    inference_service: str,
    namespace: str,
    component: str,
    endpoint: str,
    metadata: dict[str, list[str]],
    content_type: str,
) -> dict[str, str]:
    """The headers KServe's agent puts on one event (what our local stand-in of the agent sends)."""
    headers = {
        "ce-specversion": SPEC_VERSION,
        "ce-id": event_id,
        "ce-type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "ce-source": source,
        "ce-time": format_time(time),
        "ce-recordedtime": format_time(recorded_time),
        "ce-inferenceservicename": inference_service,
        "ce-namespace": namespace,
        "ce-component": component,
        "ce-endpoint": endpoint,
        "ce-metadata": json.dumps(metadata, separators=(",", ":")),
    }
    if content_type:
        headers["content-type"] = content_type
    return headers


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with nanoseconds, as Go's ``time.RFC3339Nano`` writes it (trailing zeros dropped)."""
    utc = moment.astimezone(timezone.utc)
    fraction = f"{utc.microsecond:06d}000".rstrip("0")
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def event_summary(event: LoggedEvent) -> dict[str, Any]:
    """The attributes of an event as a row (no body)."""
    return {
        "id": event.id,
        "kind": event.kind,
        "source": event.source,
        "time": event.time,
        "inference_service": event.inference_service,
        "namespace": event.namespace,
        "endpoint": event.endpoint,
    }
