"""The prediction-log sink as its own process (``gated-training sink``) on loopback, and a client that posts
events over one kept-alive connection the way KServe's agent does (binary mode, one attempt each)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from tests.conftest import REPO_ROOT
from tests.mlflow_server import free_port


@dataclass
class SinkProcess:
    process: subprocess.Popen
    port: int
    log_uri: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the sink did not start: {self.log_path.read_text()}")

    def stats(self) -> dict:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        connection.request("GET", "/stats")
        return json.loads(connection.getresponse().read())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    @property
    def log(self) -> str:
        return self.log_path.read_text()


@contextmanager
def sink_process(tmp_path: Path, log_uri: str, *options: str) -> Iterator[SinkProcess]:
    port = free_port()
    log_path = tmp_path / f"sink-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gated_training.cli", "sink", "--log-uri", log_uri, "--port", str(port), *options],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )
    sink = SinkProcess(process, port, log_uri, log_path)
    try:
        sink.wait_ready()
        yield sink
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class Poster:
    """One kept-alive connection; ``post`` sends one event once and returns the status (0: no answer)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection: http.client.HTTPConnection | None = None

    def post(self, headers: dict[str, str], body: bytes) -> int:
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.connection.request("POST", "/", body=body, headers=headers)
            answer = self.connection.getresponse()
            answer.read()
            return answer.status
        except (OSError, http.client.HTTPException):
            self.connection = None
            return 0


def written_ids(root: Path) -> tuple[set[str], set[str]]:
    """The ids of the calls written as predictions, and of the events kept aside, under a local log."""
    predictions, aside = set(), set()
    for path in root.glob("model=*/version=*/hour=*/*.parquet"):
        predictions.update(pd.read_parquet(path, columns=["id"])["id"])
    for path in root.glob("model=*/aside/hour=*/*.parquet"):
        aside.update(pd.read_parquet(path, columns=["id"])["id"])
    return predictions, aside
