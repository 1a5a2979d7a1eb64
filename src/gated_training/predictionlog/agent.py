"""A stand-in of KServe's payload logger (the agent container KServe injects beside the predictor), for
the local loop and the tests: a reverse proxy in front of MLServer that logs what it proxies exactly as
``pkg/logger`` does (kserve/kserve, ``handler.go``, ``worker.go``, ``dispatcher.go``):

- the request body is read whole; the event id is the request's ``Ce-Id`` header or a fresh UUID; the
  metadata is ``{header: [values]}`` for the request headers whose Go-canonical name is listed in
  ``metadata_headers`` (compared as Go compares them: exactly, after canonicalization);
- the request event is queued before the call is proxied; the response event only when the predictor
  answered 200; both carry the request's ``Content-Type``;
- the queue holds 100 events, and a full queue blocks the request being served; a dispatcher hands each
  event to one of ``workers`` senders (5 by default), which POST it once in binary mode: a non-200 answer
  or a connection error is logged and the event is gone.

It is not a production component: on a cluster, KServe's own agent does this.

    python -m gated_training.predictionlog.agent --predictor http://127.0.0.1:8080 --log-url http://127.0.0.1:9800/ \
        --inference-service tabular-classifier --namespace local --port 9081
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from gated_training import logs
from gated_training.predictionlog.events import event_headers, go_header_name

QUEUE_SIZE = 100  # LoggerWorkerQueueSize
DEFAULT_WORKERS = 5  # the agent's --workers default
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


@dataclass
class AgentSettings:
    predictor_url: str
    log_url: str
    inference_service: str
    namespace: str
    endpoint: str = "default"
    component: str = "predictor"
    source: str = "local-agent"
    metadata_headers: list[str] = field(default_factory=list)
    workers: int = DEFAULT_WORKERS
    log_mode: str = "all"


@dataclass
class AgentCounters:
    proxied: int = 0
    queued: int = 0
    sent: int = 0
    refused_by_sink: int = 0  # the sink answered non-200: the event is gone, as in KServe
    undelivered: int = 0  # no answer from the sink: gone too


class Agent:
    def __init__(self, settings: AgentSettings, log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.log = log
        self.counters = AgentCounters()
        self._queue: asyncio.Queue[tuple[dict[str, str], bytes]] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._session: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        import aiohttp

        self._queue = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._slots = asyncio.Semaphore(self.settings.workers)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        self._tasks.add(asyncio.create_task(self._dispatch()))

    async def stop(self) -> None:
        assert self._queue is not None
        while not self._queue.empty() or len(self._tasks) > 1:  # let queued and in-flight events go out
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        await self._session.close()

    async def _dispatch(self) -> None:
        assert self._queue is not None
        while True:
            work = await self._queue.get()
            task = asyncio.create_task(self._send(*work))  # dispatcher.go: one goroutine waits per event
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, headers: dict[str, str], body: bytes) -> None:
        assert self._slots is not None
        async with self._slots:
            try:
                async with self._session.post(self.settings.log_url, data=body, headers=headers) as answer:
                    await answer.read()
                    if answer.status == 200:
                        self.counters.sent += 1
                    else:
                        self.counters.refused_by_sink += 1
                        self.log(f"agent: the sink answered {answer.status} for event {headers['ce-id']}: dropped")
            except Exception as exc:  # worker.go: logged, never retried
                self.counters.undelivered += 1
                self.log(f"agent: event {headers['ce-id']} not delivered ({type(exc).__name__}: {exc}): dropped")

    async def _queue_event(
        self,
        kind: str,
        event_id: str,
        occurred: datetime,
        metadata: dict[str, list[str]],
        content_type: str,
        body: bytes,
    ) -> None:
        assert self._queue is not None
        headers = event_headers(
            event_id=event_id,
            kind=kind,
            source=self.settings.source,
            time=occurred,
            recorded_time=datetime.now(timezone.utc),
            inference_service=self.settings.inference_service,
            namespace=self.settings.namespace,
            component=self.settings.component,
            endpoint=self.settings.endpoint,
            metadata=metadata,
            content_type=content_type,
        )
        await self._queue.put((headers, body))  # a full queue blocks the request being served
        self.counters.queued += 1

    async def handle(
        self, method: str, path_and_query: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Proxy one call and log it; returns the predictor's status, headers and body."""
        requested = datetime.now(timezone.utc)
        wanted = set(self.settings.metadata_headers)
        metadata: dict[str, list[str]] = {}
        for name, value in headers:
            canonical = go_header_name(name)
            if canonical in wanted:
                metadata.setdefault(canonical, []).append(value)
        by_name = {go_header_name(name): value for name, value in headers}
        event_id = by_name.get("Ce-Id") or str(uuid.uuid4())
        content_type = by_name.get("Content-Type", "")
        if self.settings.log_mode in ("all", "request"):
            await self._queue_event("request", event_id, requested, metadata, content_type, body)
        forwarded = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]
        async with self._session.request(
            method, self.settings.predictor_url.rstrip("/") + path_and_query, data=body, headers=forwarded
        ) as answer:
            answer_body = await answer.read()
            status = answer.status
            answer_headers = [(n, v) for n, v in answer.headers.items() if n.lower() not in HOP_BY_HOP]
        self.counters.proxied += 1
        if status == 200 and self.settings.log_mode in ("all", "response"):
            await self._queue_event(
                "response", event_id, datetime.now(timezone.utc), metadata, content_type, answer_body
            )
        return status, answer_headers, answer_body


def asgi_app(agent: Agent) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await agent.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await agent.stop()
                    agent.log(f"agent: stopped; {agent.counters}")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]]
        path = scope["path"] + (("?" + scope["query_string"].decode()) if scope.get("query_string") else "")
        try:
            status, answer_headers, body = await agent.handle(scope["method"], path, headers, b"".join(chunks))
        except Exception as exc:
            status, answer_headers, body = 502, [("content-type", "text/plain")], f"agent: {exc}".encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(n.encode(), v.encode()) for n, v in answer_headers]
                + [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m gated_training.predictionlog.agent", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--predictor", required=True, help="the predictor's base URL (MLServer)")
    parser.add_argument("--log-url", required=True, help="the sink's URL")
    parser.add_argument("--inference-service", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--endpoint", default="default", choices=["default", "canary"])
    parser.add_argument("--source", default="local-agent")
    parser.add_argument("--metadata-headers", default="", help="comma-separated header names, as KServe's flag")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9081)
    args = parser.parse_args(argv)
    agent = Agent(
        AgentSettings(
            predictor_url=args.predictor,
            log_url=args.log_url,
            inference_service=args.inference_service,
            namespace=args.namespace,
            endpoint=args.endpoint,
            source=args.source,
            metadata_headers=[h for h in args.metadata_headers.split(",") if h],
            workers=args.workers,
        ),
        log=lambda line: logs.event("agent.log", line),
    )
    logs.configure()
    uvicorn.run(
        asgi_app(agent),
        host=args.host,
        port=args.port,
        lifespan="on",
        log_level="warning",
        access_log=False,
        log_config=None if logs.log_format() == "json" else uvicorn.config.LOGGING_CONFIG,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
