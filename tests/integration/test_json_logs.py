"""Structured logs of a whole run: every line each step's process writes (its pod log on a cluster), and every
line the CLI's run writes, is one JSON object of the schema in ``gated_training.logs``.

The step processes are kfp.local's subprocesses, started from the compiled YAML as the backend starts a pod's
``python3 -m kfp.dsl.executor_main``; their output is captured where kfp.local reads it, so kfp's executor
lines (logged before our code runs) are held to the schema too: the interpreter-start hook formats them.
"""

from __future__ import annotations

import json
import site
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gated_training import logs
from gated_training.cli import main
from tests.conftest import SAMPLE_DATA, SAMPLE_SUITE
from tests.integration.conftest import DATA_BLOCKED_TASKS, DEPLOYED_TASKS, LocalSetup

SCHEMA_KEYS = {"time", "severity", "message", "event", "logger", "step", "run_id", "model", "version", "fields"}
# A category built to break line-oriented logs and their readers: a newline with a forged JSON line after it,
# a quote, U+2028 (a line break to JavaScript and to Python's str.splitlines), an ANSI escape and a NUL.
HOSTILE = 'evil\n{"severity":"INFO","message":"forged"}\u2028"quoted"\x1b[31mred\x00'


def _capture_step_output(monkeypatch) -> dict[str, list[str]]:
    """Wrap kfp.local's subprocess start: keep each step process's lines, by the component function it ran."""
    from kfp.local import subprocess_task_handler

    captured: dict[str, list[str]] = {}

    def run_local_subprocess(full_command, env_vars=None):
        import os

        function = full_command[full_command.index("--function_to_execute") + 1]
        lines = captured.setdefault(function, [])
        with subprocess.Popen(
            full_command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env={**os.environ, **(env_vars or {})},
        ) as process:
            assert process.stdout is not None
            for line in iter(process.stdout.readline, ""):
                lines.append(line)
                print(line, end="")
            return process.wait()

    monkeypatch.setattr(subprocess_task_handler, "run_local_subprocess", run_local_subprocess)
    return captured


def _parse_every_line(text: str, where: str) -> list[dict]:
    records = []
    # Split on "\n" only: a reader that splits on U+2028 too must still see one object per line, which
    # ensure_ascii guarantees (asserted below: no raw U+2028 at all).
    assert "\u2028" not in text, f"{where}: a raw U+2028 would split the line for some readers"
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{where} line {number} is not JSON ({exc}): {line[:300]!r}") from None
        assert isinstance(record, dict) and set(record) == SCHEMA_KEYS, (where, number, line[:300])
        assert record["severity"] in logs.SEVERITIES, record
        assert record["time"].endswith("Z") and "T" in record["time"], record
        assert isinstance(record["fields"], dict), record
        records.append(record)
    return records


def _run(
    tmp_path: Path, monkeypatch, capsys, data: Path, name: str, suite: Path | None = SAMPLE_SUITE
) -> tuple[dict, dict[str, list[dict]], list[dict]]:
    monkeypatch.setenv(logs.FORMAT_ENV, "json")
    captured = _capture_step_output(monkeypatch)
    setup = LocalSetup(tmp_path)
    workdir = tmp_path / name
    capsys.readouterr()
    exit_code = main(
        [
            "run",
            "--data",
            str(data),
            "--target",
            "risk",
            "--workdir",
            str(workdir),
            "--registry",
            str(setup.registry),
            "--tracking-uri",
            setup.tracking_uri,
            *(["--suite", str(suite)] if suite else []),
            "--set",
            "min_accuracy=0.6",
            "--set",
            "min_roc_auc=0",
        ]
    )
    out = capsys.readouterr()
    cli_records = _parse_every_line(out.out, "the CLI's stdout") + _parse_every_line(out.err, "the CLI's stderr")
    steps = {function: _parse_every_line("".join(lines), function) for function, lines in captured.items()}
    summary = json.loads((workdir / "summary.json").read_text())
    summary["exit_code"] = exit_code
    return summary, steps, cli_records


def test_the_startup_hook_is_installed_in_this_environment():
    hooks = [Path(p) / logs.PTH_NAME for p in site.getsitepackages() if (Path(p) / logs.PTH_NAME).is_file()]
    assert hooks, f"{logs.PTH_NAME} is missing from {sys.prefix}: make venv installs it (python -m gated_training.logs)"
    assert hooks[0].read_text() == logs.PTH_LINE


def test_every_line_of_a_deploying_run_is_one_json_object_of_the_schema(tmp_path, monkeypatch, capsys):
    summary, steps, cli = _run(tmp_path, monkeypatch, capsys, SAMPLE_DATA, "deployed")
    assert summary["outcome"] == "deployed" and summary["tasks_ran"] == DEPLOYED_TASKS, summary["reasons"]
    assert sorted(steps) == sorted(task.replace("-", "_") for task in DEPLOYED_TASKS)
    run_ids = set()
    for function, records in steps.items():
        step = function.replace("_", "-")
        events = [r["event"] for r in records]
        # kfp's executor lines are in the schema too (logged before our code, formatted by the start-up hook).
        assert any(r["logger"] == "root" and "executor_input" in r["message"] for r in records), (step, events)
        ours = [r for r in records if r["event"].startswith(("step.", "run.", "gate.", "mlflow.", "webhook."))]
        assert ours and all(r["step"] == step for r in ours), (step, ours)
        assert "step.started" in events and "step.usage" in events, (step, events)
        usage = next(r for r in records if r["event"] == "step.usage")
        assert usage["fields"]["peak_rss_mib"] > 0 and usage["fields"]["wall_seconds"] > 0
        # A step's fixed start-up ends at its first read of a table, inside its wall; on a first run check-drift
        # has no champion to compare with and reads nothing.
        if step == "check-drift":
            assert "ready_seconds" not in usage["fields"], usage
        else:
            assert 0 < usage["fields"]["ready_seconds"] < usage["fields"]["wall_seconds"], (step, usage)
        assert all(r["model"] == "tabular-classifier" for r in ours), (step, ours)
        run_ids |= {r["run_id"] for r in ours}
    assert len(run_ids) == 1 and run_ids != {""}, run_ids  # one KFP run id, on every step's lines
    outcome = [r for records in steps.values() for r in records if r["event"] == "run.outcome"]
    assert [r["fields"]["outcome"] for r in outcome] == ["deployed"], outcome
    assert [r["step"] for r in outcome] == ["deploy-model"]
    cli_events = [r["event"] for r in cli]
    assert cli_events[0] == "run.started" and cli_events[-1] == "run.summary", cli_events
    assert "run.progress" in cli_events
    final = cli[-1]
    assert final["fields"]["outcome"] == "deployed" and final["version"] == summary["deployed"]["version"]
    assert final["model"] == "tabular-classifier"


def test_hostile_values_stay_inside_one_json_line(tmp_path, monkeypatch, capsys):
    frame = pd.read_csv(SAMPLE_DATA)
    frame["purpose"] = frame["purpose"].astype(object)
    frame.loc[:300, "purpose"] = HOSTILE  # an unseen category (a warning of the suite)
    frame["risk"] = frame["risk"].astype(object)
    frame.loc[:9, "risk"] = HOSTILE  # an unseen label: the suite's critical value-set check blocks the batch
    data = tmp_path / "hostile.csv"
    frame.to_csv(data, index=False)
    summary, steps, cli = _run(tmp_path, monkeypatch, capsys, data, "hostile")
    assert summary["outcome"] == "blocked" and summary["tasks_ran"] == DATA_BLOCKED_TASKS, summary["reasons"]
    every = [r for records in steps.values() for r in records] + cli
    assert not any(r["message"] == "forged" for r in every)  # the forged line stayed inside a string
    blocked = [r for r in every if r["event"] in ("run.outcome", "run.summary")]
    assert blocked and all(r["severity"] == "WARNING" for r in blocked), blocked
    text = json.dumps([r["fields"] for r in blocked])
    assert "risk" in text and "forged" in text, text  # the hostile value is there, inside a string


def test_text_mode_is_the_message_alone_and_json_survives_non_finite_numbers_and_huge_values(capsys, monkeypatch):
    monkeypatch.delenv(logs.FORMAT_ENV, raising=False)
    logs.event("x.y", "plain words", value=1)
    assert capsys.readouterr().out == "plain words\n"
    monkeypatch.setenv(logs.FORMAT_ENV, "json")
    with logs.bound(step="validate-data", run_id="r1"):
        logs.event(
            "x.y",
            HOSTILE,
            severity="WARNING",
            nan=float("nan"),
            inf=float("-inf"),
            big="z" * 100_000,
            many=list(range(1000)),
            nested={"a": {"b": {"c": {"d": {"e": 1}}}}},
            obj=object(),
        )
    logs.event("x.z", "after the block")
    out = capsys.readouterr().out
    first, second = _parse_every_line(out, "logs.event")
    assert first["message"] == HOSTILE and first["step"] == "validate-data" and first["run_id"] == "r1"
    assert first["fields"]["nan"] == "nan" and first["fields"]["inf"] == "-inf"
    assert len(first["fields"]["big"]) < logs.MAX_VALUE_CHARS + 40
    assert len(first["fields"]["many"]) == logs.MAX_FIELDS + 1
    assert second["step"] == "" and second["run_id"] == ""  # the block's context ended with it
    assert len(out.split("\n")) == 3
    with pytest.raises(ValueError, match="unknown keys"):
        logs.bind(stage="x")


def test_an_unknown_format_is_text_never_an_error(capsys, monkeypatch):
    monkeypatch.setenv(logs.FORMAT_ENV, "yaml")
    logs.event("x.y", "still written")
    assert capsys.readouterr().out == "still written\n"


def test_a_step_that_raises_ends_its_log_with_one_failure_event_and_one_crash_event(tmp_path, monkeypatch, capsys):
    data = tmp_path / "no-suite-beside-it.csv"
    data.write_bytes(SAMPLE_DATA.read_bytes())
    summary, steps, cli = _run(tmp_path, monkeypatch, capsys, data, "crashed", suite=None)
    assert summary["outcome"] == "failed" and summary["exit_code"] == 1, summary
    records = steps["validate_data"]
    failed = [r for r in records if r["event"] == "step.failed"]
    crashed = [r for r in records if r["event"] == "process.crashed"]
    assert len(failed) == 1 and failed[0]["severity"] == "ERROR" and failed[0]["fields"]["error_type"] == "SuiteError"
    # Python's traceback, many lines on a terminal, is one CRITICAL event whose message holds the stack.
    assert len(crashed) == 1 and crashed[0]["severity"] == "CRITICAL", crashed
    assert crashed[0]["message"].startswith("Traceback") and "SuiteError" in crashed[0]["message"]
    assert crashed[0]["step"] == "validate-data" and crashed[0]["run_id"] == failed[0]["run_id"] != ""
    events = [r["event"] for r in cli]  # stdout's lines, then stderr's
    assert events[-1] == "run.failed" and cli[-1]["severity"] == "ERROR" and "run.summary" in events, events
