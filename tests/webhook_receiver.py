"""A Slack-style webhook receiver on loopback: records every POST, answers with scripted status codes."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import LoopbackServer

TRICKLE = "trickle"  # a status that answers one header line every half second, for TRICKLE_SECONDS
TRICKLE_SECONDS = 8.0


class WebhookReceiver(LoopbackServer):
    def __init__(self, statuses: list[int | str] | None = None) -> None:
        self.posts: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])  # consumed one per request; 200 once empty
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.posts.append(
                    {
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "host": self.headers.get("Host"),
                        "json": json.loads(body),
                    }
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == TRICKLE:  # never finishes its headers within a per-read timeout's reach
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    started = time.monotonic()
                    while time.monotonic() - started < TRICKLE_SECONDS:
                        try:
                            self.wfile.write(b"X-Slow: 1\r\n")
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(0.5)
                    return
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", f"{receiver.url}/elsewhere")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args: object) -> None:
                pass

        self.start_serving(Handler)

    @property
    def hook_url(self) -> str:
        return f"{self.url}/services/T000/B000/secret-token"
