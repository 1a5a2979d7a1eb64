"""Run the compiled pipeline YAML locally through ``kfp.local`` (SubprocessRunner, no venv).

This is the only library module that imports kfp, and only inside functions: the steps
themselves stay plain Python. What runs here is the same YAML users upload to Kubeflow.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

from gated_training.decisions import Outcome
from gated_training.kubeflow.records import RECORD_DIR_ENV, read_records
from gated_training.reports import build_summary
from gated_training.run_context import MEMORY_ENV
from gated_training.step_table import GATE_STEPS, MAIN_LINE


@contextmanager
def allocator_environment() -> Iterator[None]:
    """The step processes inherit the image's allocator settings (run_context.MEMORY_ENV) for the block;
    a value the caller set is kept, and the environment is as it was afterwards."""
    added = {name: value for name, value in MEMORY_ENV.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


ANSI = re.compile(r"\x1b\[[0-9;]*m")
PROGRESS = re.compile(r"(Executing task|Task '.+' finished with status|Pipeline '.+' finished with status)")
FAILED_TASK = re.compile(r"Inner task failed: '([^']+)'")


@dataclass(frozen=True, kw_only=True)
class LocalRunResult:
    summary: dict[str, Any]
    tasks_ran: list[str]
    run_dir: Path | None
    log_path: Path


class _ProgressTee:
    """Send everything to the log file and the step progress lines to the terminal."""

    def __init__(self, log: TextIO, progress: Callable[[str], None] | None) -> None:
        self.log, self.progress, self.pending = log, progress, ""
        self.terminal = sys.stdout  # captured before the redirect, so progress cannot loop back here

    def write(self, text: str) -> int:
        self.log.write(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            clean = ANSI.sub("", line).strip()
            if self.progress and PROGRESS.search(clean):
                with redirect_stdout(self.terminal):
                    self.progress(clean.split(" - ", 2)[-1] if " - " in clean else clean)
        return len(text)

    def flush(self) -> None:
        self.log.flush()

    def isatty(self) -> bool:
        return False


def _load_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _task_dirs(run_dir: Path | None) -> list[str]:
    if run_dir is None:
        return []
    return sorted(d.name for d in run_dir.iterdir() if d.is_dir() and (d / "executor_output.json").exists())


@dataclass(frozen=True, kw_only=True)
class _LocalRun:
    run_dir: Path | None
    error: str | None
    record_dir: Path
    log_path: Path


def _run_locally(
    pipeline_yaml: Path,
    parameters: dict[str, Any],
    workdir: Path,
    progress: Callable[[str], None] | None,
    verbose: bool,
    log_name: str = "last-run.log",
) -> _LocalRun:
    """Run a compiled pipeline YAML through kfp.local; the run's folder, its error, its step records."""
    from kfp import components, local

    workdir.mkdir(parents=True, exist_ok=True)
    pipeline_root = (workdir / "kfp-runs").resolve()
    pipeline_root.mkdir(exist_ok=True)
    record_dir = workdir.resolve() / "step-records" / uuid.uuid4().hex
    log_path = workdir / log_name
    before = {p.name for p in pipeline_root.iterdir()}

    pipeline = components.load_component_from_text(pipeline_yaml.read_text())
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=True)
    previous_env = os.environ.get(RECORD_DIR_ENV)
    os.environ[RECORD_DIR_ENV] = str(record_dir)
    error: str | None = None
    with open(log_path, "w") as log:
        sink: TextIO = sys.stdout if verbose else _ProgressTee(log, progress)  # type: ignore[assignment]
        try:
            with redirect_stdout(sink), redirect_stderr(sink), warnings.catch_warnings(), allocator_environment():
                # kfp.local notes that display names, resources and caching options do not apply locally.
                warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
                pipeline(**parameters)
        except Exception as exc:  # kfp.local raises RuntimeError naming the failed task
            error = ANSI.sub("", str(exc))
        finally:
            if previous_env is None:
                os.environ.pop(RECORD_DIR_ENV, None)
            else:
                os.environ[RECORD_DIR_ENV] = previous_env

    new_runs = sorted(p for p in pipeline_root.iterdir() if p.name not in before and p.is_dir())
    return _LocalRun(run_dir=new_runs[-1] if new_runs else None, error=error, record_dir=record_dir, log_path=log_path)


def _training_summary(run: _LocalRun, tasks: list[str]) -> dict[str, Any] | None:
    """The summary of the training line a run went through: written by the gate it stopped at (None when no
    training task ran)."""
    if run.run_dir is None or not any(task in GATE_STEPS for task in tasks):
        return None
    summary = None
    if run.error is None:
        # The gate the run stopped at wrote the run's summary; the gates it passed wrote "continued".
        for task in GATE_STEPS:
            written = _load_json(run.run_dir / task / "run_summary")
            if written is not None and written["outcome"] != Outcome.CONTINUED:
                summary = written
    return summary


def run_compiled_pipeline(
    pipeline_yaml: Path,
    parameters: dict[str, Any],
    workdir: Path,
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> LocalRunResult:
    run = _run_locally(pipeline_yaml, parameters, workdir, progress, verbose)
    tasks = _task_dirs(run.run_dir)
    summary = _training_summary(run, tasks) if run.error is None else None
    if summary is None:
        summary = _failed_summary(run.error, run.record_dir, run.run_dir, run.log_path)
    summary["tasks_ran"] = tasks
    summary["reports"] = collect_reports(run.run_dir, workdir / "reports")
    summary["step_usage"] = read_records(run.record_dir, "usage")
    summary["log"] = str(run.log_path.resolve())
    return LocalRunResult(summary=summary, tasks_ran=tasks, run_dir=run.run_dir, log_path=run.log_path)


MONITOR_TASK = "monitor-window"


def run_monitoring_pipeline(
    pipeline_yaml: Path,
    parameters: dict[str, Any],
    workdir: Path,
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> LocalRunResult:
    """The monitoring pipeline through kfp.local: the window's record as the summary, and under ``retrain`` the
    summary of the nested training run (its gates, as ``gated-training run`` shows them)."""
    run = _run_locally(pipeline_yaml, parameters, workdir, progress, verbose, "last-monitoring-run.log")
    tasks = _task_dirs(run.run_dir)
    record = _load_json(run.run_dir / MONITOR_TASK / "monitoring_report") if run.run_dir else None
    if record is None:
        failures = list(read_records(run.record_dir, "failure").values())
        message = (
            f"{failures[0]['step']}: {failures[0]['error_type']}: {failures[0]['message']}"
            if failures
            else (run.error or "the monitoring run produced no record") + f" (full log: {run.log_path})"
        )
        summary: dict[str, Any] = {
            "outcome": Outcome.FAILED,
            "reasons": [message],
            "warnings": [],
            "failed_step": MONITOR_TASK,
        }
    else:
        summary = {key: record.get(key) for key in ("outcome", "reasons", "warnings", "champion", "window_start",
                                                     "window_end", "retrain", "notification", "mlflow")}  # fmt: skip
        summary["monitoring_report"] = str((run.run_dir / MONITOR_TASK / "monitoring_report").resolve())  # type: ignore[operator]
        retrain = _training_summary(run, tasks)
        if retrain is None and any(task in GATE_STEPS for task in tasks):
            retrain = _failed_summary(run.error, run.record_dir, run.run_dir, run.log_path)
        summary["retrain_run"] = retrain
        if run.error and retrain is None:
            summary["outcome"] = Outcome.FAILED
            summary["reasons"] = [f"{run.error} (full log: {run.log_path})"]
    summary["tasks_ran"] = tasks
    summary["reports"] = collect_reports(run.run_dir, workdir / "reports", (MONITOR_TASK, *MAIN_LINE))
    summary["step_usage"] = read_records(run.record_dir, "usage")
    summary["log"] = str(run.log_path.resolve())
    return LocalRunResult(summary=summary, tasks_ran=tasks, run_dir=run.run_dir, log_path=run.log_path)


# The reports each step writes (extensionless under kfp.local), and the extension a browser needs.
REPORTS = {
    "data_docs": ".html",
    "drift_html": ".html",
    "gate_report": ".md",
    "summary": ".md",
    "report": ".md",
    "report_html": ".html",
}


def collect_reports(run_dir: Path | None, reports_dir: Path, steps: tuple[str, ...] = MAIN_LINE) -> dict[str, str]:
    """Copy the run's reports to ``<workdir>/reports/<step>.<report><ext>`` (the last run's only)
    and return their paths by ``<step>/<report>``, in step order, for the console and summary.json."""
    import shutil

    if reports_dir.is_dir():
        shutil.rmtree(reports_dir)
    found: dict[str, str] = {}
    if run_dir is None:
        return found
    for step in steps:
        for name, extension in REPORTS.items():
            source = run_dir / step / name
            if source.is_file():
                reports_dir.mkdir(parents=True, exist_ok=True)
                target = reports_dir / f"{step}.{name}{extension}"
                shutil.copyfile(source, target)
                found[f"{step}/{name}"] = str(target.resolve())
    return found


def _failed_summary(error: str | None, record_dir: Path, run_dir: Path | None, log_path: Path) -> dict[str, Any]:
    failures = list(read_records(record_dir, "failure").values())
    if failures:
        record = failures[0]
        step, message = record["step"], f"{record['error_type']}: {record['message']}"
    else:
        match = FAILED_TASK.search(error or "")
        step = match.group(1) if match else None
        message = (error or "the pipeline produced no outcome") + f" (full log: {log_path})"
    validation = _load_json(run_dir / "validate-data" / "validation_report") if run_dir else None
    drift = _load_json(run_dir / "check-drift" / "drift_report") if run_dir else None
    summary = build_summary(validation=validation, drift=drift, error=message, failed_step=step)
    # The failing step posted the failure itself (step_records.recorded_step) and recorded what happened.
    notification = read_records(record_dir, "notification").get(step or "")
    summary["notification"] = (
        notification["notification"] if notification else "not recorded: no step recorded a failure"
    )
    return summary
