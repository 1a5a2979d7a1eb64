"""Record why a step failed, for the local runner's summary.

When ``GATED_TRAINING_FAILURE_DIR`` is set (the CLI sets it for local runs), a step that raises
writes ``<step>.json`` there before the error propagates. On a cluster the variable is unset
and the traceback in the pod log is the record.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

FAILURE_DIR_ENV = "GATED_TRAINING_FAILURE_DIR"


@contextmanager
def reported_failures(step: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        directory = os.environ.get(FAILURE_DIR_ENV)
        if directory:
            Path(directory).mkdir(parents=True, exist_ok=True)
            record = {"step": step, "error_type": type(exc).__name__, "message": str(exc)}
            Path(directory, f"{step}.json").write_text(json.dumps(record, indent=2))
        raise
