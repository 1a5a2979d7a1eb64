"""Every step ends: past its deadline a step fails naming itself; memory exhaustion names the step."""

import time

import pytest

from gated_training.kubeflow.records import (
    DEADLINE_ENV,
    StepDeadlineError,
    StepMemoryError,
    deadline_for,
    read_records,
    recorded_step,
)


def test_a_step_past_its_deadline_fails_and_says_which(monkeypatch, tmp_path):
    monkeypatch.setenv(DEADLINE_ENV, "1")
    monkeypatch.setenv("GATED_TRAINING_RECORD_DIR", str(tmp_path))
    started = time.monotonic()
    with pytest.raises(StepDeadlineError, match=r"step validate-data ran past its deadline of 1 s"):
        with recorded_step("validate-data"):
            while True:  # a read that never returns
                time.sleep(0.05)
    assert time.monotonic() - started < 5
    assert read_records(tmp_path, "failure")["validate-data"]["error_type"] == "StepDeadlineError"
    time.sleep(1.5)  # the alarm was cleared: nothing fires after the step


def test_deadlines_default_per_step_and_refuse_nonsense(monkeypatch):
    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    assert deadline_for("train-model") == 4 * 3600 and deadline_for("validate-data") == 3600
    monkeypatch.setenv(DEADLINE_ENV, "soon")
    with pytest.raises(StepDeadlineError, match="must be a whole number of seconds"):
        deadline_for("validate-data")


def test_running_out_of_memory_names_the_step(monkeypatch, tmp_path):
    monkeypatch.setenv("GATED_TRAINING_RECORD_DIR", str(tmp_path))
    with pytest.raises(StepMemoryError, match=r"step engineer-features ran out of memory"):
        with recorded_step("engineer-features"):
            raise MemoryError()
    assert "ran out of memory" in read_records(tmp_path, "failure")["engineer-features"]["message"]


def test_a_steps_log_context_ends_with_it_and_its_crash_line_still_names_it(monkeypatch, tmp_path, capsys):
    """Steps run in turn in one process (tests, a notebook) start unbound; a traceback that ends the process
    after its step's block still carries the step (logs.keep_for_crash)."""
    import json

    from gated_training import logs

    monkeypatch.setenv("GATED_TRAINING_RECORD_DIR", str(tmp_path))
    monkeypatch.setenv(logs.FORMAT_ENV, "json")
    with recorded_step("train-model"):
        pass
    with pytest.raises(StepMemoryError) as raised:
        with recorded_step("engineer-features"):
            raise MemoryError()
    capsys.readouterr()
    logs.event("after.steps", "outside any step")
    assert json.loads(capsys.readouterr().out)["step"] == ""
    logs._log_uncaught(type(raised.value), raised.value, raised.value.__traceback__)
    crash = json.loads(capsys.readouterr().err)
    assert crash["event"] == "process.crashed" and crash["step"] == "engineer-features", crash
