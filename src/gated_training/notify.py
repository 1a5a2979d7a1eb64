"""Webhook notifications (Slack-compatible JSON) for runs that end blocked, skipped or failed.

A notification is a courtesy: delivery failures are logged and never fail the run. The URL
comes from the ``notify_webhook_url`` parameter or, so it stays out of the run form, from the
``GATED_TRAINING_WEBHOOK_URL`` environment variable (a Kubernetes secret on a cluster). Logs
show only the URL's scheme and host: webhook paths are credentials.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from gated_training.errors import ConfigError
from gated_training.escaping import slack_text

WEBHOOK_ENV = "GATED_TRAINING_WEBHOOK_URL"
ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0  # per socket operation
TOTAL_DEADLINE_SECONDS = 30.0  # for every attempt together
BACKOFF_SECONDS = 1.0
NOTIFIED_OUTCOMES = ("blocked", "skipped", "failed")

log = logging.getLogger(__name__)


def check_webhook_url(url: str) -> str:
    """Empty (no notifications) or an http(s) URL with a host."""
    url = (url or "").strip()
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"parameter notify_webhook_url: {redacted(url)!r} is not an http(s) URL with a host")
    return url


def redacted(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…" if parts.scheme else "…"


def resolve_webhook_url(parameter: str) -> str:
    return check_webhook_url(parameter or os.environ.get(WEBHOOK_ENV, ""))


def outcome_message(summary: dict[str, Any], links: dict[str, str]) -> dict[str, Any]:
    """Slack's incoming-webhook shape: one mrkdwn ``text``. Every text from the run is escaped
    (``&``, ``<``, ``>``), so a reason quoting the data cannot add links or mentions."""
    esc = slack_text
    outcome = summary["outcome"]
    headline = {"blocked": f"blocked by the {summary.get('blocked_by')} gate",
                "skipped": f"skipped ({summary.get('skip_reason')})", "failed": "FAILED"}.get(outcome, outcome)
    lines = [f"*gated-training run {esc(summary.get('kfp_run_id') or '(no run id)')}: {esc(headline)}*"]
    lines += [f"• {esc(_shorten(reason))}" for reason in summary.get("reasons", [])[:10]]
    if summary.get("champion"):
        lines.append(f"Champion: `{esc(summary['champion']['version'])}`")
    lines += [f"<{esc(uri)}|{esc(name)}>" if uri.startswith(("http://", "https://")) else f"{esc(name)}: {esc(uri)}"
              for name, uri in links.items() if uri and not any(c in uri for c in "|<> \n")]
    return {"text": "\n".join(lines)}


def _shorten(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is misconfigured or hijacked: never follow it, never call it sent."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib's hook
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to another URL not followed ({msg})", headers, fp)


def _post_once(url: str, body: bytes, timeout: float) -> None:
    """One POST; raises like urlopen. 2xx is success, anything else (3xx included) an HTTPError."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(request, timeout=timeout) as response:
        response.read(64 * 1024)
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(url, response.status, "not a success status", response.headers, None)


def _post_within(url: str, body: bytes, deadline: float, total: float) -> None:
    """``_post_once`` with a total deadline: urllib's timeout is per socket read, so a server that
    trickles a header line every few seconds would hold it forever. The request runs in a daemon
    thread; past the deadline it is abandoned (the process ends soon after)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the notification deadline passed")
    outcome: dict[str, BaseException | None] = {}

    def attempt() -> None:
        try:
            _post_once(url, body, min(TIMEOUT_SECONDS, remaining))
            outcome["error"] = None
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=attempt, name="webhook", daemon=True)
    worker.start()
    worker.join(remaining)
    if "error" not in outcome:
        raise TimeoutError(f"no complete answer within the {total:g} s deadline")
    if outcome["error"] is not None:
        raise outcome["error"]


def post_json(url: str, payload: dict[str, Any], attempts: int = ATTEMPTS, deadline_seconds: float | None = None) -> str:
    """POST ``payload``; retry connection errors and 5xx/429, all within ``deadline_seconds``
    (default ``TOTAL_DEADLINE_SECONDS``) in total. Redirects are not followed. Returns "sent" or
    "failed: <why>", never raises."""
    body = json.dumps(payload).encode()
    total = TOTAL_DEADLINE_SECONDS if deadline_seconds is None else deadline_seconds
    deadline = time.monotonic() + total
    problem = ""
    attempt = 0
    for attempt in range(1, attempts + 1):
        try:
            _post_within(url, body, deadline, total)
            return "sent"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}" + (" (redirects are not followed)" if 300 <= exc.code < 400 else "")
            if exc.code < 500 and exc.code != 429:
                break  # a client error or a redirect will not change on retry
        except TimeoutError as exc:
            problem = f"timed out: {exc}"
            break
        except (OSError, ValueError) as exc:  # URLError, refused connections
            problem = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt < attempts:
            pause = BACKOFF_SECONDS * attempt
            if time.monotonic() + pause >= deadline:
                break
            time.sleep(pause)
    log.warning("webhook %s: notification not delivered after %d attempt(s): %s", redacted(url), attempt, problem)
    return f"failed: {problem}"


def notify_outcome(webhook_url: str, summary: dict[str, Any], links: dict[str, str] | None = None) -> str:
    """Post the outcome when it is one people must hear about. Returns what happened, for the record."""
    if summary["outcome"] not in NOTIFIED_OUTCOMES:
        return f"not sent: outcome {summary['outcome']}"
    try:
        url = resolve_webhook_url(webhook_url)
    except ConfigError as exc:
        log.warning("%s; no notification sent", exc)
        return f"failed: {exc}"
    if not url:
        return "not configured"
    status = post_json(url, outcome_message(summary, links or {}))
    print(f"webhook {redacted(url)}: {status}")
    return status


def notify_failed_step(webhook_url: str, step: str, message: str, kfp_run_id: str) -> str:
    """A step that raised posts the failure itself, once, before the error ends the run.

    This replaces an exit handler: ``dsl.PipelineTaskFinalStatus`` is refused by KFP backends
    before 2.14, and the backend hands an exit task MLMD states (``COMPLETE``, ``FAILED``,
    ``CANCELED``, on 2.14-2.16 often ``RUNNING``), never kfp.local's ``SUCCEEDED``. A step has no
    task retries to repeat the post (network retries happen inside the step), so one failure is
    one notification on every backend. Never raises.
    """
    try:
        summary = {"outcome": "failed", "reasons": [f"{step} failed: {message}"], "kfp_run_id": kfp_run_id}
        return notify_outcome(webhook_url, summary)
    except Exception as exc:  # noqa: BLE001 - a notification must never mask the step's own error
        log.warning("failure notification not sent: %s", exc)
        return f"failed: {type(exc).__name__}"
