"""When this process first read a table: the end of a step's fixed start-up.

A step's usage record (``kubeflow.records``) states ``ready_seconds``, the time from the process's start to
its first read of a table (``data.read_parquet``, ``data.load_table``): imports and set-up, what every run
pays before a row is read. The readers mark it; ``recorded_step`` clears it when a step opens, so steps run
one after another in one process (tests, a notebook) each state their own.
"""

from __future__ import annotations

import time

_first_read: float | None = None


def mark_first_read() -> None:
    """Called by the table readers: keeps the first call's time (monotonic clock)."""
    global _first_read
    if _first_read is None:
        _first_read = time.monotonic()


def first_read() -> float | None:
    """The monotonic time of the first read since :func:`clear_first_read`, or None."""
    return _first_read


def clear_first_read() -> None:
    global _first_read
    _first_read = None
