"""The loop end to end, as `make loop` runs it: the sample's champion served by MLServer with the verifying runtime,
KServe's payload logger (the agent stand-in) in front, the sink behind it, drifting traffic with request ids, late
labels, and the compiled monitoring pipeline through kfp.local: the alert, the report, and the retrain it started,
the training pipeline nested, every gate included."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gated_training.cli import main
from tests.integration.conftest import copy_setup
from tests.registry_helpers import registry_bytes

MODEL = "tabular-classifier"
# Two minutes on 2 cores: in `make test-slow` (CI runs it after `make test`), which keeps `make test` near 15.
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_loop_serves_logs_monitors_and_retrains_through_every_gate(sample_champion, tmp_path, capsys):
    workdir = tmp_path / "loop"
    setup = copy_setup(sample_champion, workdir)  # the champion the loop would otherwise train first
    before = registry_bytes(setup.registry)

    assert main(["loop", "--workdir", str(workdir), "--calls", "1100"]) == 0, capsys.readouterr()
    summary = json.loads((workdir / "loop-summary.json").read_text())

    assert summary["calls"] == {"sent": 1100, "answered_200": 1100} and summary["sink_exit"] == 0
    logged = pd.concat(
        pd.read_parquet(p) for p in (workdir / "prediction-log").glob("model=*/version=*/hour=*/*.parquet")
    )
    assert len(logged) == 1100 and logged["id"].is_unique and set(logged["version"]) == {summary["champion"]}
    assert logged["id"].str.startswith("loop-").all()  # the callers' Ce-Id became the event id

    monitoring = summary["monitoring"]
    assert monitoring["outcome"] == "retrain" and summary["monitor_exit"] == 3
    assert any("drifted" in reason and "age" in reason for reason in monitoring["reasons"])
    assert any("realized accuracy" in reason for reason in monitoring["reasons"])
    report = Path(monitoring["reports"]["monitor-window/report_html"]).read_text()
    assert "Monitoring: RETRAIN" in report and summary["champion"] in report

    retrain = monitoring["retrain_run"]
    assert monitoring["tasks_ran"][:3] == ["check-drift", "engineer-features", "evaluate-model"]
    assert "monitor-window" in monitoring["tasks_ran"] and "validate-data" in monitoring["tasks_ran"]
    # Outcomes changed at random: nothing can learn them, and the model gate says so.
    assert retrain["outcome"] == "blocked" and retrain["blocked_by"] == "model", retrain["reasons"]
    ticket = Path(monitoring["retrain"]["ticket"])
    outcome = json.loads((ticket / "outcome.json").read_text())
    assert outcome["outcome"] == "blocked" and outcome["blocked_by"] == "model"
    assert registry_bytes(setup.registry) == before  # the blocked retrain deployed nothing
