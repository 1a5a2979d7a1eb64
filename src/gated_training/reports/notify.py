"""Webhook notifications (Slack-compatible JSON) for runs that end blocked, skipped or failed.

A notification is a courtesy: delivery failures are logged and never fail the run. The URL
comes from the ``notify_webhook_url`` parameter or, so it stays out of the run form, from the
``GATED_TRAINING_WEBHOOK_URL`` environment variable (a Kubernetes secret on a cluster). Logs
show only the URL's scheme and host: webhook paths are credentials.

Where a step may post (the URL is a parameter, so whoever can start a run chooses it):

- the URL is checked with the other parameters, before the run starts: http(s), a host, no control
  characters (a raw CR/LF would split the request);
- **private addresses are allowed by default** (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10):
  teams post to an in-cluster alert relay;
- **loopback, link-local and cloud metadata addresses are refused** (127/8, ::1, 169.254/16, fe80::/10,
  169.254.169.254, fd00:ec2::254, 100.100.100.200, metadata.google.internal, and 0.0.0.0, multicast,
  reserved), in every spelling the resolver accepts (``0xa9fea9fe``, ``2852039166``, ``0251.0376.0251.0376``,
  ``::ffff:169.254.169.254``) and behind any DNS name that resolves there: a step holds the bucket's
  credentials, and a metadata server answers with the node's;
- ``GATED_TRAINING_WEBHOOK_ALLOWED_HOSTS`` (comma-separated host names or addresses; the compile option
  ``WEBHOOK_ALLOWED_HOSTS`` sets it in every step) turns this into an allowlist: only those hosts are
  posted to, and a host named there explicitly may be any address, loopback included.

At send time the host is resolved once, every address is checked, and the connection goes to a checked
address (a DNS answer that changes between the check and the connection cannot redirect it).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from gated_training import logs
from gated_training.errors import ConfigError
from gated_training.redirects import NoRedirect
from gated_training.reports.escaping import slack_text

WEBHOOK_ENV = "GATED_TRAINING_WEBHOOK_URL"
ALLOWED_HOSTS_ENV = "GATED_TRAINING_WEBHOOK_ALLOWED_HOSTS"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029]")
METADATA_HOSTS = (
    "metadata.google.internal",
    "metadata",
    "metadata.azure.internal",
    "instance-data",
    "instance-data.ec2.internal",
)
METADATA_ADDRESSES = tuple(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0  # per socket operation
TOTAL_DEADLINE_SECONDS = 30.0  # for every attempt together
BACKOFF_SECONDS = 1.0
NOTIFIED_OUTCOMES = ("blocked", "skipped", "failed")

log = logging.getLogger(__name__)


def allowed_hosts() -> tuple[str, ...]:
    """The operator's allowlist (``GATED_TRAINING_WEBHOOK_ALLOWED_HOSTS``), lower case; empty: no allowlist."""
    return tuple(h.strip().lower().rstrip(".") for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip())


def address_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a step must not post to ``address`` (None: it may). IPv4 addresses inside IPv6 ones
    (mapped, 6to4, Teredo) are judged as themselves."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            problem = address_problem(embedded)
            if problem:
                return f"{problem} (inside {address})"
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata server"
    for test, what in (
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_unspecified, "unspecified"),
        (address.is_multicast, "multicast"),
        (address.is_reserved, "reserved"),
    ):
        if test:
            return f"{address} is {'an' if what[0] in 'aeiou' else 'a'} {what} address"
    if isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address("255.255.255.255"):
        return f"{address} is the broadcast address"
    return None


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an address if it spells one, in any form the C resolver accepts (``0x7f000001``,
    ``2130706433``, ``0177.0.0.1``, ``127.1``), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def host_problem(host: str, resolve: bool) -> str | None:
    """Why a step must not post to ``host``: refused by the allowlist, or an address (literal, or
    resolved when ``resolve``) that is loopback, link-local or a metadata server."""
    name = host.lower().rstrip(".")
    allowlist = allowed_hosts()
    if allowlist:
        return None if name in allowlist else (f"host {host} is not in {ALLOWED_HOSTS_ENV} ({', '.join(allowlist)})")
    if name in METADATA_HOSTS:
        return f"{host} is a cloud metadata server"
    literal = literal_address(name)
    addresses = [literal] if literal is not None else []
    if literal is None and resolve:
        addresses = resolved_addresses(name)
    for address in addresses:
        problem = address_problem(address)
        if problem:
            return problem if literal is not None else f"{host} resolves to {problem}"
    return None


def resolved_addresses(host: str, port: int = 443) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address ``host`` resolves to (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    found = []
    for info in infos:
        try:
            found.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return found


def check_webhook_url(url: str) -> str:
    """Empty (no notifications) or an http(s) URL with a host, without control characters, whose host
    is allowed (module docstring). Names are resolved here when they resolve; a name this machine
    cannot resolve (a cluster-internal one) is checked again at send time."""
    url = url or ""
    if CONTROL_CHARACTERS.search(url.strip(" ")):
        raise ConfigError(
            "parameter notify_webhook_url: holds a control character or a space (a raw CR/LF would "
            "split the request); paste the URL again without them"
        )
    url = url.strip(" ")
    if url:
        parts = urlsplit(url)
        try:
            _ = parts.port  # urlsplit checks the port only when it is read
        except ValueError as exc:
            raise ConfigError(f"parameter notify_webhook_url: {redacted(url)!r}: {exc}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"parameter notify_webhook_url: {redacted(url)!r} is not an http(s) URL with a host")
        problem = host_problem(parts.hostname, resolve=True)
        if problem:
            raise ConfigError(
                f"parameter notify_webhook_url: {problem}; a step never posts there. Name the host in "
                f"{ALLOWED_HOSTS_ENV} (compile option WEBHOOK_ALLOWED_HOSTS) to allow it deliberately"
            )
    return url


def redacted(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme:
        return "…"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}/…"


def resolve_webhook_url(parameter: str) -> str:
    return check_webhook_url(parameter or os.environ.get(WEBHOOK_ENV, ""))


def outcome_message(summary: dict[str, Any], links: dict[str, str]) -> dict[str, Any]:
    """Slack's incoming-webhook shape: one mrkdwn ``text``. Every text from the run is escaped
    (``&``, ``<``, ``>``), so a reason quoting the data cannot add links or mentions."""
    esc = slack_text
    outcome = summary["outcome"]
    headline = {
        "blocked": f"blocked by the {summary.get('blocked_by')} gate",
        "skipped": f"skipped ({summary.get('skip_reason')})",
        "failed": "FAILED",
    }.get(outcome, outcome)
    lines = [f"*gated-training run {esc(summary.get('kfp_run_id') or '(no run id)')}: {esc(headline)}*"]
    lines += [f"• {esc(_shorten(reason))}" for reason in summary.get("reasons", [])[:10]]
    if summary.get("champion"):
        lines.append(f"Champion: `{esc(summary['champion']['version'])}`")
    lines += [
        f"<{esc(uri)}|{esc(name)}>" if uri.startswith(("http://", "https://")) else f"{esc(name)}: {esc(uri)}"
        for name, uri in links.items()
        if uri and not any(c in uri for c in "|<> \n")
    ]
    return {"text": "\n".join(lines)}


def _shorten(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def pinned_address(host: str, port: int) -> str:
    """The address to connect to: ``host`` resolved once and every answer checked (or the allowlist's
    word for it). Raises ConfigError when any answer is refused or nothing resolves."""
    problem = host_problem(host, resolve=False)
    if problem:
        raise ConfigError(problem)
    addresses = resolved_addresses(host, port)
    if not addresses:
        raise OSError(f"{host} does not resolve")
    if not allowed_hosts():
        for address in addresses:
            reason = address_problem(address)
            if reason:
                raise ConfigError(f"{host} resolves to {reason}")
    return str(addresses[0])


def _pinned_handlers(address: str) -> list[urllib.request.BaseHandler]:
    """HTTP(S) handlers whose connections go to ``address`` while the request keeps its host name
    (Host header, TLS server name and certificate check)."""

    class PinnedHTTP(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.create_connection((address, self.port), self.timeout)

    class PinnedHTTPS(http.client.HTTPSConnection):
        def connect(self) -> None:
            sock = socket.create_connection((address, self.port), self.timeout)
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(PinnedHTTP, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(PinnedHTTPS, req)

    return [HTTPHandler(), HTTPSHandler()]


def _post_once(url: str, body: bytes, timeout: float) -> None:
    """One POST; raises like urlopen. 2xx is success, anything else (3xx included) an HTTPError."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    parts = urlsplit(url)
    address = pinned_address(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    # A webhook that redirects is misconfigured or hijacked: never followed, never called sent.
    opener = urllib.request.build_opener(NoRedirect, *_pinned_handlers(address))
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


def post_json(
    url: str, payload: dict[str, Any], attempts: int = ATTEMPTS, deadline_seconds: float | None = None
) -> str:
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
        except ConfigError as exc:  # a refused address: retrying would ask the same resolver
            problem = f"refused: {exc}"
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
    logs.event("webhook.sent", f"webhook {redacted(url)}: {status}", status=status, outcome=summary["outcome"])
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
    except Exception as exc:
        log.warning("failure notification not sent: %s", exc)
        return f"failed: {type(exc).__name__}"


def notify_lines(webhook_url: str, headline: str, lines: list[str], links: dict[str, str] | None = None) -> str:
    """Post a headline and its lines (each escaped, at most ten) in Slack's shape; returns what happened."""
    try:
        url = resolve_webhook_url(webhook_url)
    except ConfigError as exc:
        log.warning("%s; no notification sent", exc)
        return f"failed: {exc}"
    if not url:
        return "not configured"
    text = [f"*{slack_text(headline)}*"] + [f"• {slack_text(_shorten(line))}" for line in lines[:10]]
    text += [
        f"<{slack_text(uri)}|{slack_text(name)}>" if uri.startswith(("http://", "https://")) else f"{name}: {uri}"
        for name, uri in (links or {}).items()
        if uri and not any(c in uri for c in "|<> \n")
    ]
    status = post_json(url, {"text": "\n".join(text)})
    logs.event("webhook.sent", f"webhook {redacted(url)}: {status}", status=status, headline=headline)
    return status
