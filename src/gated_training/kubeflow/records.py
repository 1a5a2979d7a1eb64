"""What each step leaves behind for whoever runs it: its resource usage and, if it raised, why.

Every component body runs inside :func:`recorded_step`. At the end it logs one line with the
step's wall time, CPU time and peak RSS (on a cluster that pod-log line is what you tune the
resource requests from). When ``GATED_TRAINING_RECORD_DIR`` is set (the CLI sets it for local
runs) it also writes ``<step>.usage.json`` and, when the step raises, ``<step>.failure.json``
before the error propagates, so the local summary can say which step failed and why.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from gated_training import logs
from gated_training.errors import GatedTrainingError
from gated_training.step_table import STEP
from gated_training.timing import clear_first_read, first_read

RECORD_DIR_ENV = "GATED_TRAINING_RECORD_DIR"
DEADLINE_ENV = "GATED_TRAINING_STEP_DEADLINE_SECONDS"
# Every step ends: past its deadline (the step table's deadline_seconds) a step raises
# StepDeadlineError and the run fails, naming the step, instead of holding a pod (and the bucket's
# credentials) forever.


class StepDeadlineError(GatedTrainingError):
    """A step ran past its deadline."""


class StepMemoryError(GatedTrainingError):
    """A step ran out of memory; the message names the step."""


def deadline_for(step: str) -> int:
    """The step's deadline in seconds: ``GATED_TRAINING_STEP_DEADLINE_SECONDS`` overrides the default."""
    override = os.environ.get(DEADLINE_ENV, "").strip()
    if override:
        try:
            seconds = int(float(override))
        except ValueError:
            seconds = 0
        if seconds <= 0:
            raise StepDeadlineError(f"{DEADLINE_ENV}={override!r}: must be a whole number of seconds > 0")
        return seconds
    return STEP[step].deadline_seconds


@contextmanager
def deadline(step: str, seconds: int) -> Iterator[None]:
    """Raise :class:`StepDeadlineError` in this (main) thread after ``seconds``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise StepDeadlineError(f"step {step} ran past its deadline of {seconds} s ({DEADLINE_ENV} changes it)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def resource_usage(started_wall: float) -> dict[str, float]:
    """Usage of this process so far: the executor process is the whole step, imports included;
    ``ready_seconds`` (when the step read a table) is its fixed start-up, from the start to the first read."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = {
        "wall_seconds": round(time.monotonic() - started_wall, 3),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # ru_maxrss is KiB on Linux
    }
    ready = first_read()
    if ready is not None and ready >= started_wall:
        record["ready_seconds"] = round(ready - started_wall, 3)
    return record


def write_record(step: str, kind: str, record: dict[str, Any]) -> None:
    directory = os.environ.get(RECORD_DIR_ENV)
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        Path(directory, f"{step}.{kind}.json").write_text(json.dumps(record, indent=2))


def read_records(directory: Path, kind: str) -> dict[str, dict[str, Any]]:
    """The records of one kind (``usage`` or ``failure``) in a record directory, by step."""
    if not directory.is_dir():
        return {}
    suffix = f".{kind}.json"
    return {path.name[: -len(suffix)]: json.loads(path.read_text()) for path in sorted(directory.glob(f"*{suffix}"))}


class recorded_step:
    """Run a component body: deadline, usage line, and on an error its record and one failure notification
    to the webhook (``notify_webhook_url``, else ``GATED_TRAINING_WEBHOOK_URL``) before the error ends the run.

    ``with recorded_step(notify_webhook_url=..., artifact_uri=...) as step:``: the step's id is derived from
    the component function that opens it (``validate_data`` → ``validate-data``: components are named after
    their steps), never typed; ``step.run_id`` is the KFP run's id, read from ``artifact_uri`` (any output
    artifact's URI, ``run_context.run_id_from_uri``). Pass ``step=`` only outside a component (tests)."""

    def __init__(
        self,
        step: str | None = None,
        *,
        notify_webhook_url: str = "",
        artifact_uri: str = "",
        retrain_ticket: str = "",
        model_name: str = "",
    ) -> None:
        from gated_training.reports import check_ticket
        from gated_training.run_context import run_id_from_uri

        self.id = step or sys._getframe(1).f_code.co_name.replace("_", "-")
        if self.id not in STEP:
            raise GatedTrainingError(
                f"recorded_step: {self.id!r} is not a step of the step table (a component is "
                "named after its step: validate_data for validate-data)"
            )
        self.notify_webhook_url = notify_webhook_url
        self.artifact_uri = artifact_uri
        self.retrain_ticket = check_ticket(retrain_ticket)
        self.model_name = model_name  # the Pushgateway group a failure is pushed to (reports.push)
        self.run_id = run_id_from_uri(artifact_uri, self.id) if artifact_uri else ""
        self._started = 0.0
        self._deadline: Any = None
        self._log_context: Any = None

    def __enter__(self) -> "recorded_step":
        # The process start is the honest start: imports before the body are part of the step's cost.
        self._started = _process_start_monotonic()
        clear_first_read()
        logs.configure()
        # Bound for the body only: a process that runs steps in turn (tests, a notebook) starts each unbound.
        self._log_context = logs.bound(step=self.id, run_id=self.run_id, model=self.model_name)
        self._log_context.__enter__()
        logs.event("step.started", f"[gated-training] {self.id}: started", stream=sys.stderr)
        self._deadline = deadline(self.id, deadline_for(self.id))
        self._deadline.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        try:
            self._deadline.__exit__(None, None, None)
            if isinstance(exc, MemoryError):
                message = (
                    f"step {self.id} ran out of memory ({exc or 'MemoryError'}); raise its memory limit or "
                    "reduce the batch"
                )
                _record_failure(self, "MemoryError", message)
                raise StepMemoryError(message) from exc
            if isinstance(exc, Exception):
                _record_failure(self, type(exc).__name__, str(exc))
        finally:
            usage = resource_usage(self._started)
            write_record(self.id, "usage", {"step": self.id, **usage})
            fields: dict[str, Any] = dict(usage)  # wall, CPU, peak RSS and (when a table was read) ready_seconds
            logs.event(
                "step.usage",
                f"[gated-training] {self.id}: wall {usage['wall_seconds']:.1f} s, CPU {usage['cpu_seconds']:.1f} s, "
                f"peak RSS {usage['peak_rss_mib']:.0f} MiB"
                + (f", first read at {usage['ready_seconds']:.1f} s" if "ready_seconds" in usage else ""),
                stream=sys.stderr,
                **fields,
            )
            if exc is not None:
                logs.keep_for_crash()
            self._log_context.__exit__(None, None, None)


def _record_failure(step: "recorded_step", error_type: str, message: str) -> None:
    from gated_training.reports import close_ticket, notify_failed_step

    write_record(step.id, "failure", {"step": step.id, "error_type": error_type, "message": message})
    logs.event(
        "step.failed",
        f"[gated-training] {step.id} failed: {error_type}: {message}",
        severity="ERROR",
        stream=sys.stderr,
        error_type=error_type,
        error=message,
    )
    sent = notify_failed_step(step.notify_webhook_url, step.id, f"{error_type}: {message}", step.run_id)
    write_record(step.id, "notification", {"step": step.id, "notification": sent})
    if step.model_name and step.id != "monitor-window":
        from gated_training.reports import push_training

        pushed = push_training(step.model_name, {"outcome": "failed", "failed_step": step.id})
        logs.event(
            "push.training", f"[gated-training] {step.id}: Pushgateway: {pushed}", stream=sys.stderr, result=pushed
        )
    if step.retrain_ticket:
        close_ticket(
            step.retrain_ticket,
            {
                "outcome": "failed",
                "failed_step": step.id,
                "reasons": [f"{step.id} failed: {error_type}: {message}"],
                "kfp_run_id": step.run_id,
            },
        )


def _process_start_monotonic() -> float:
    """This process's start on the monotonic clock (Linux /proc), else now."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        # /proc/uptime and CLOCK_BOOTTIME share a base; convert the age to the monotonic clock.
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        return time.monotonic() - max(age, 0.0)
    except (OSError, ValueError, IndexError):
        return time.monotonic()
