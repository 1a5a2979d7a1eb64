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
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from gated_training.errors import ConfigError

WEBHOOK_ENV = "GATED_TRAINING_WEBHOOK_URL"
ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0
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
    """Slack's incoming-webhook shape: one mrkdwn ``text``."""
    outcome = summary["outcome"]
    headline = {"blocked": f"blocked by the {summary.get('blocked_by')} gate",
                "skipped": f"skipped ({summary.get('skip_reason')})", "failed": "FAILED"}.get(outcome, outcome)
    lines = [f"*gated-training run {summary.get('kfp_run_id') or '(no run id)'}: {headline}*"]
    lines += [f"• {reason}" for reason in summary.get("reasons", [])[:10]]
    if summary.get("champion"):
        lines.append(f"Champion: `{summary['champion']['version']}`")
    lines += [f"<{uri}|{name}>" if uri.startswith(("http://", "https://")) else f"{name}: {uri}"
              for name, uri in links.items() if uri]
    return {"text": "\n".join(lines)}


def post_json(url: str, payload: dict[str, Any], attempts: int = ATTEMPTS, timeout: float = TIMEOUT_SECONDS) -> str:
    """POST ``payload``; retry connection errors and 5xx/429. Returns "sent" or "failed: <why>", never raises."""
    body = json.dumps(payload).encode()
    problem = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
            return "sent"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                break  # a client error will not change on retry
        except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections
            problem = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt < attempts:
            time.sleep(BACKOFF_SECONDS * attempt)
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


def notify_failed_run(webhook_url: str, state: str, error_message: str, kfp_run_id: str, job_name: str = "") -> str:
    """The exit handler's part: a run whose tasks did not all succeed (failed, cancelled, system error)."""
    if state == "SUCCEEDED":
        print("run succeeded: its report step notified when the outcome called for it")
        return "not sent: the run succeeded"
    reason = f"the run ended {state}" + (f": {error_message}" if error_message else "")
    summary = {"outcome": "failed", "reasons": [reason], "kfp_run_id": kfp_run_id or job_name}
    return notify_outcome(webhook_url, summary)
