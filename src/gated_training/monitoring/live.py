"""What Prometheus measured of each served version in a window: requests, refusals and the p95 answer time, from the
serving runtime's own series (``serving.metrics``), for the canary analysis.

Only fixed query templates are sent; the two values put in them (the InferenceService's name and a registry
version) must match the names those series are labelled with (a DNS label, a registry version), and are escaped as
PromQL string literals anyway. Prometheus' answer is hostile until validated: its size is capped, its JSON must have
the API's shape, every number must be finite and not negative. Any problem is returned as text, never raised: the
canary then holds (no evidence), it is never promoted or aborted on a number that was not read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

MAX_ANSWER_BYTES = 1_000_000
TIMEOUT_SECONDS = 10.0
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

QUERIES = {
    "requests": 'sum by (version) (increase(gated_training_requests_total{{model="{model}"}}[{range}]))',
    "errors": 'sum by (version) (increase(gated_training_requests_total{{model="{model}",outcome="error"}}[{range}]))',
    "p95_seconds": (
        "histogram_quantile(0.95, sum by (version, le) "
        '(increase(gated_training_request_duration_seconds_bucket{{model="{model}"}}[{range}])))'
    ),
}


@dataclass
class Live:
    """Per version: requests, errors, p95 seconds (absent: no series); ``error``: why nothing was read."""

    source: str
    requests: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    p95_seconds: dict[str, float] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "requests": self.requests,
            "errors": self.errors,
            "p95_seconds": self.p95_seconds,
            "queries": self.queries,
            "error": self.error,
        }


def promql_string(value: str) -> str:
    """``value`` as the inside of a double-quoted PromQL string literal."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def queries_for(model: str, hours: int) -> dict[str, str]:
    if not _NAME.fullmatch(model):
        raise ValueError(f"{model!r} is not an InferenceService name")
    return {key: text.format(model=promql_string(model), range=f"{int(hours)}h") for key, text in QUERIES.items()}


def _vector(answer: bytes) -> dict[str, float]:
    document = json.loads(answer)
    if not isinstance(document, dict) or document.get("status") != "success":
        raise ValueError(
            f"Prometheus answered status {str(document.get('status'))[:40]!r}: {document.get('error')!r}"[:300]
        )
    data = document.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise ValueError("the answer is not an instant vector")
    values: dict[str, float] = {}
    for item in data["result"][:1000]:
        metric, value = (
            item.get("metric") if isinstance(item, dict) else None,
            item.get("value") if isinstance(item, dict) else None,
        )
        if not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
            raise ValueError("a sample of the answer has no metric or value")
        version = metric.get("version")
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            continue  # a series of no registry version (another writer, a hostile label): not this analysis's
        number = float(value[1])
        if math.isnan(number):
            continue  # histogram_quantile of no requests: no p95
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"version {version}: {value[1]!r} is not a count or a duration")
        values[version] = number
    return values


def read_live(url: str, model: str, hours: int, end: datetime, timeout: float = TIMEOUT_SECONDS) -> Live:
    """The window's numbers per version from Prometheus' HTTP API at ``end`` (``/api/v1/query``)."""
    import time
    import urllib.request

    live = Live(source=url)
    if not url:
        live.error = "not measured: no prometheus_url"
        return live
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c in url for c in " \n\r\t"):
        live.error = f"prometheus_url {url[:100]!r} is not an http(s) URL"
        return live
    try:
        live.queries = queries_for(model, hours)
    except ValueError as exc:
        live.error = str(exc)
        return live
    deadline = time.monotonic() + timeout
    for key, query in live.queries.items():
        address = f"{url.rstrip('/')}/api/v1/query?" + urlencode({"query": query, "time": f"{end.timestamp():.3f}"})
        try:
            remaining = max(0.5, deadline - time.monotonic())
            with urllib.request.urlopen(address, timeout=remaining) as answer:
                body = answer.read(MAX_ANSWER_BYTES + 1)
            if len(body) > MAX_ANSWER_BYTES:
                raise ValueError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
            setattr(live, key, _vector(body))
        except Exception as exc:  # urllib's errors, JSON, the shape: all mean "not read"
            reason = getattr(exc, "reason", None) or exc
            live.error = f"Prometheus {parts.hostname}: {key} not read ({type(exc).__name__}: {str(reason)[:200]})"
            return live
        if time.monotonic() > deadline:
            live.error = f"Prometheus {parts.hostname}: no answer within {timeout:g} s"
            return live
    return live
