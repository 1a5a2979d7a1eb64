"""A canary judged on live evidence: one window's comparison of the canary with the stable version, and what
the windows so far call for (promote, hold, abort).

Every criterion states its evidence (calls, interval, rule) and ends ``healthy``, ``hold``, ``worse`` or
``not_measured``:

- **traffic**: each side answered at least ``canary_min_calls`` calls in the window, else nothing else is trusted
  (hold);
- **errors** (Prometheus, when ``prometheus_url`` is set): canary − stable refusal rate with Newcombe's 95%
  interval; worse when the interval lies above 0 and the difference above ``canary_max_error_rate_increase``,
  healthy when its upper end is at most that increase, else hold (too few calls to tell);
- **latency** (Prometheus): the canary's p95 against ``canary_max_latency_ratio`` × the stable p95 (interpolated
  in the histogram's buckets: no interval is claimed);
- **predictions** (logs): PSI of the canary's predicted classes against the stable's on the same window; above
  ``prediction_psi_threshold`` holds (a better model may predict differently: a reason to look, not to abort);
- **inputs** (logs): the share of calls that could not be decoded, canary − stable with Newcombe's interval;
  worse when the interval lies above 0 and the difference above 1 point (the canary answers what the log cannot
  read);
- **accuracy** (labels, when ``labels_uri`` is set): both versions scored on the same labelled calls with the
  gate's paired statistics (paired bootstrap interval of canary − stable, exact McNemar): worse when the canary is
  significantly less accurate (the interval below 0, p < 0.05), healthy when the interval's low end is at least
  −``max_regression`` (the canary's own gate's margin: non-inferior), else hold.

Verdict: any ``worse`` → worse; every measured criterion ``healthy`` → healthy; else hold. Action: worse aborts
(the canary loses its traffic and the registry goes back to the stable version); ``canary_analysis_windows``
healthy windows in a row, none overlapping another, promote; otherwise hold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from gated_training.stats import newcombe_difference

ALPHA = 0.05
INPUT_PROBLEM_MARGIN = 0.01
RESULTS = ("healthy", "hold", "worse", "not_measured")


@dataclass(frozen=True)
class Evidence:
    criterion: str
    result: str
    text: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass
class CanaryWindow:
    """One window's judgement of ``canary`` against ``stable``."""

    canary: str
    stable: str
    window_end: str
    verdict: str
    evidence: list[Evidence]
    healthy_windows: int = 0
    needed_windows: int = 0
    action: str = "hold"  # promote, abort, hold
    action_result: str = ""
    source: str = ""  # where canary and stable came from: the InferenceService, or the registry and the log

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["evidence"] = [asdict(e) for e in self.evidence]
        return document


@dataclass(frozen=True)
class Side:
    """What the logs say of one version in the window."""

    calls: int
    predicted: list[Any]
    undecodable: int


def _psi(a: list[Any], b: list[Any]) -> float:
    keys = sorted({str(v) for v in a} | {str(v) for v in b})
    if not keys or not a or not b:
        return 0.0
    ca = np.array([sum(str(v) == k for v in a) for k in keys], dtype=float)
    cb = np.array([sum(str(v) == k for v in b) for k in keys], dtype=float)
    pa = np.clip(ca / ca.sum(), 1e-4, None)
    pb = np.clip(cb / cb.sum(), 1e-4, None)
    return float(np.sum((pa - pb) * np.log(pa / pb)))


def _interval(difference: float, low: float, high: float) -> str:
    return f"{difference:+.4f} [{low:+.4f}, {high:+.4f}] (95%, Newcombe)"


def judge(
    *,
    canary: str,
    stable: str,
    window_end: str,
    sides: dict[str, Side],
    live: dict[str, Any] | None,
    comparison: dict[str, Any] | None,
    labels_expected: bool,
    labelled: int,
    min_calls: int,
    min_labelled: int,
    max_error_rate_increase: float,
    max_latency_ratio: float,
    psi_threshold: float,
    max_regression: float,
) -> CanaryWindow:
    """One window's verdict, every criterion with its evidence (``comparison``: canary − stable, paired)."""
    evidence: list[Evidence] = []
    a, b = sides.get(canary, Side(0, [], 0)), sides.get(stable, Side(0, [], 0))
    enough = a.calls >= min_calls and b.calls >= min_calls
    evidence.append(
        Evidence(
            "traffic",
            "healthy" if enough else "hold",
            f"canary {canary} answered {a.calls} logged calls, stable {stable} {b.calls}; each needs "
            f"canary_min_calls {min_calls}" + ("" if enough else ": too few to judge"),
            {"canary_calls": a.calls, "stable_calls": b.calls, "min_calls": min_calls},
        )
    )

    if live is None:
        for criterion in ("errors", "latency"):
            evidence.append(Evidence(criterion, "not_measured", "not measured: no prometheus_url"))
    elif live.get("error"):
        for criterion in ("errors", "latency"):
            evidence.append(Evidence(criterion, "hold", f"Prometheus not read: {live['error']}"))
    else:
        requests, errors, p95 = live.get("requests", {}), live.get("errors", {}), live.get("p95_seconds", {})
        n_a, n_b = int(round(requests.get(canary, 0))), int(round(requests.get(stable, 0)))
        e_a = min(n_a, int(round(errors.get(canary, 0))))
        e_b = min(n_b, int(round(errors.get(stable, 0))))
        if n_a < min_calls or n_b < min_calls:
            evidence.append(
                Evidence(
                    "errors",
                    "hold",
                    f"Prometheus counted {n_a} requests to the canary and {n_b} to the stable version; each needs "
                    f"{min_calls}",
                    {"canary_requests": n_a, "stable_requests": n_b},
                )
            )
        else:
            difference, low, high = newcombe_difference(e_a, n_a, e_b, n_b, ALPHA)
            if low > 0 and difference > max_error_rate_increase:
                result = "worse"
            elif high <= max_error_rate_increase:
                result = "healthy"
            else:
                result = "hold"
            evidence.append(
                Evidence(
                    "errors",
                    result,
                    f"refused: canary {e_a}/{n_a}, stable {e_b}/{n_b}; canary − stable "
                    f"{_interval(difference, low, high)}; worse above 0 and by more than "
                    f"canary_max_error_rate_increase {max_error_rate_increase:g}, healthy when the upper end is at "
                    "most that",
                    {"canary": [e_a, n_a], "stable": [e_b, n_b], "difference": difference, "low": low, "high": high},
                )
            )
        pa, pb = p95.get(canary), p95.get(stable)
        if pa is None or pb is None or n_a < min_calls or n_b < min_calls:
            evidence.append(Evidence("latency", "hold", "no p95 answer time for both versions with enough requests"))
        else:
            limit = pb * max_latency_ratio
            evidence.append(
                Evidence(
                    "latency",
                    "worse" if pa > limit else "healthy",
                    f"p95 answer time: canary {pa * 1000:.1f} ms, stable {pb * 1000:.1f} ms; worse above "
                    f"canary_max_latency_ratio {max_latency_ratio:g} × stable = {limit * 1000:.1f} ms "
                    "(interpolated within the histogram's buckets)",
                    {"canary_p95_seconds": pa, "stable_p95_seconds": pb, "limit_seconds": limit},
                )
            )

    psi = _psi(a.predicted, b.predicted)
    evidence.append(
        Evidence(
            "predictions",
            "hold" if psi > psi_threshold or not enough else "healthy",
            f"PSI of the canary's predicted classes against the stable's on the window: {psi:.3f} "
            f"(prediction_psi_threshold {psi_threshold:g}: above it the canary holds, it is not aborted)",
            {"psi": psi},
        )
    )

    if a.calls and b.calls:
        difference, low, high = newcombe_difference(a.undecodable, a.calls, b.undecodable, b.calls, ALPHA)
        worse = low > 0 and difference > INPUT_PROBLEM_MARGIN
        evidence.append(
            Evidence(
                "inputs",
                "worse" if worse else "healthy",
                f"calls the log could not decode: canary {a.undecodable}/{a.calls}, stable {b.undecodable}/{b.calls}; "
                f"canary − stable {_interval(difference, low, high)}; worse above 0 and by more than "
                f"{INPUT_PROBLEM_MARGIN:g}",
                {"difference": difference, "low": low, "high": high},
            )
        )
    else:
        evidence.append(Evidence("inputs", "hold", "a version answered no logged call"))

    if not labels_expected:
        evidence.append(Evidence("accuracy", "not_measured", "not measured: no labels_uri"))
    elif comparison is None or labelled < min_labelled:
        evidence.append(
            Evidence(
                "accuracy",
                "hold",
                f"{labelled} labelled calls scored by both versions; min_labelled_rows {min_labelled} needed",
                {"labelled": labelled},
            )
        )
    else:
        difference, low, high = comparison["difference"], comparison["low"], comparison["high"]
        p_value = comparison["p_value"]
        if high < 0 and p_value < ALPHA:
            result = "worse"
        elif low >= -max_regression:
            result = "healthy"
        else:
            result = "hold"
        evidence.append(
            Evidence(
                "accuracy",
                result,
                f"on {labelled} labelled calls scored by both, canary − stable accuracy {difference:+.3f} "
                f"[{low:+.3f}, {high:+.3f}] (95%, paired bootstrap), {comparison.get('test', 'McNemar')} "
                f"p={p_value:.3g}; worse when below 0 and significant, healthy when the low end is at least "
                f"−max_regression {max_regression:g} (the canary's gate)",
                {"difference": difference, "low": low, "high": high, "p_value": p_value, "labelled": labelled},
            )
        )

    results = [e.result for e in evidence]
    if "worse" in results:
        verdict = "worse"
    elif all(r in ("healthy", "not_measured") for r in results):
        verdict = "healthy"
    else:
        verdict = "hold"
    return CanaryWindow(canary=canary, stable=stable, window_end=window_end, verdict=verdict, evidence=evidence)


def healthy_in_a_row(history: list[dict[str, Any]], current: CanaryWindow, window_hours: int) -> int:
    """Healthy windows in a row for this canary over this stable version, ending with ``current``: a window that
    overlaps one already counted is not counted again (hourly runs of a 24-hour window are one window of evidence);
    any window that was not healthy ends the row."""
    if current.verdict != "healthy":
        return 0
    records = sorted(
        (r for r in history if r.get("canary") == current.canary and r.get("stable") == current.stable),
        key=lambda r: str(r.get("window_end")),
        reverse=True,
    )
    count, last = 1, datetime.fromisoformat(current.window_end)
    span = timedelta(hours=window_hours)
    for record in records:
        try:
            end = datetime.fromisoformat(str(record["window_end"]))
        except (KeyError, ValueError):
            continue
        if end >= datetime.fromisoformat(current.window_end):
            continue  # this window again, or a later one written by another run
        if record.get("verdict") != "healthy":
            break
        if last - end >= span:
            count, last = count + 1, end
    return count


def action_for(window: CanaryWindow, needed: int) -> str:
    """abort on worse; promote after ``needed`` healthy windows (0: never by itself); else hold."""
    if window.verdict == "worse":
        return "abort"
    if needed > 0 and window.healthy_windows >= needed:
        return "promote"
    return "hold"


HISTORY_LIMIT = 200


def history_root(log_uri: str, service: str, canary: str) -> str:
    from gated_training.data import storage
    from gated_training.predictionlog import store

    return storage.join_uri(log_uri, f"model={store.partition_value(service)}", "canary", store.partition_value(canary))


def read_history(log_uri: str, service: str, canary: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The judgements written for this canary (the newest :data:`HISTORY_LIMIT`), and what could not be read."""
    import json

    from gated_training.data import storage
    from gated_training.errors import DataError

    root = history_root(log_uri, service, canary)
    records, problems = [], []
    for name in storage.list_files(root)[-HISTORY_LIMIT:]:
        uri = storage.join_uri(root, name)
        try:
            document = json.loads(storage.read_bytes(uri, max_bytes=2**20))
            if not isinstance(document, dict) or document.get("canary") != canary:
                raise ValueError("not a judgement of this canary")
            records.append(document)
        except (DataError, ValueError) as exc:
            problems.append(f"canary record {uri}: unreadable, ignored ({str(exc)[:160]})")
    return records, problems


def write_judgement(log_uri: str, service: str, window: CanaryWindow) -> str:
    """One file per window end (a re-run of the same window replaces its own)."""
    import json

    from gated_training.data import storage

    stamp = datetime.fromisoformat(window.window_end).strftime("%Y%m%dT%H%M%S%fZ")
    uri = storage.join_uri(history_root(log_uri, service, window.canary), f"{stamp}.json")
    storage.write_bytes(uri, json.dumps(window.to_json(), indent=2, allow_nan=False).encode())
    return uri
