"""An HTTP proxy on loopback in front of fake-gcs-server that fails chosen requests on purpose:
an error status (429/503), a connection dropped before the request is forwarded, or dropped
after it was forwarded (it landed, the answer was lost). Every request is logged with its time."""

from __future__ import annotations

import http.client
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlsplit

from tests.loopback import LoopbackServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


@dataclass
class Rule:
    method: str
    pattern: str  # matched against the unquoted path and query, a newline, then the body's first 4 KB
    action: str | int  # an HTTP status, "drop_before" or "drop_after"
    times: int | None  # None: always
    hits: int = 0


@dataclass
class FlakyProxy(LoopbackServer):
    upstream: str
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[float, str, str, str]] = field(default_factory=list)  # (time, method, target, what happened)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.start_serving(self._handler())

    def add(self, method: str, pattern: str, action: str | int, times: int | None = 1) -> Rule:
        rule = Rule(method, pattern, action, times)
        self.rules.append(rule)
        return rule

    def _match(self, method: str, target: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if (
                    rule.method == method
                    and re.search(rule.pattern, target, re.DOTALL)
                    and (rule.times is None or rule.hits < rule.times)
                ):
                    rule.hits += 1
                    return rule
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self
        upstream = urlsplit(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                target = unquote(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rule = proxy._match(self.command, f"{target}\n{body[:4096].decode('latin-1')}")
                action = rule.action if rule else "forward"
                proxy.log.append(
                    (time.monotonic(), self.command, f"{target}\n{body[:4096].decode('latin-1')}", str(action))
                )
                if action == "drop_before":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if isinstance(action, int):
                    payload = b'{"error": {"code": %d, "message": "injected by the test proxy"}}' % action
                    self.send_response(action)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                connection.close()
                if action == "drop_after":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        return Handler
