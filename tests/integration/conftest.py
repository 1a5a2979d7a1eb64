"""Integration runs: the compiled YAML through kfp.local, driven by the CLI as users drive it.

kfp.local in kfp 2.17 can skip branches silently, so every test asserts which tasks ran.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from gated_training.cli import main
from gated_training.step_table import tasks_ending_at
from tests.conftest import SAMPLE_DATA

pytestmark = pytest.mark.integration

# From the step table: the steps up to the gate a run stops at (that gate writes the summary and
# notifies; a failing step posts its own failure, so there is no exit handler task).
DEPLOYED_TASKS = tasks_ending_at("deploy-model")
MODEL_BLOCKED_TASKS = tasks_ending_at("evaluate-model")
DATA_BLOCKED_TASKS = tasks_ending_at("validate-data")
DRIFT_STOPPED_TASKS = tasks_ending_at("check-drift")
FAILED_AT_VALIDATION_TASKS = tasks_ending_at(None)  # validate-data failed: no task completed
# Most tests re-run the sample on purpose; without this the no-new-data trigger would skip them.
RERUN_SAME_DATA = ["--set", "force_retrain=true"]
# The sample's own thresholds are in data/german_credit.params.yaml; tests state theirs explicitly.
TEST_THRESHOLDS = ["--set", "min_accuracy=0.6", "--set", "max_overfit_gap=0.3", "--set", "min_roc_auc=0"]
# A small forest: clearly weaker than the default one on the sample (accuracy 0.715 against 0.767 on the
# 172 test rows) yet a real model, which the gate deploys on a first run (balanced accuracy 0.57, shown
# above the prior predictor's 0.50). A single stump would be blocked as no better than the majority class.
WEAK_MODEL = ["--set", "n_estimators=10", "--set", "max_depth=8"]


@dataclass
class RunResult:
    exit_code: int
    summary: dict

    @property
    def tasks(self) -> list[str]:
        return self.summary["tasks_ran"]


@dataclass
class LocalSetup:
    root: Path

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def pointer(self) -> Path:
        return self.registry / "tabular-classifier" / "champion.json"

    def champion_version(self) -> str | None:
        return json.loads(self.pointer.read_text())["version"] if self.pointer.exists() else None

    def run(self, *args: str, data: Path | str = SAMPLE_DATA, name: str = "run") -> RunResult:
        workdir = self.root / name
        argv = [
            "run",
            "--data",
            str(data),
            "--target",
            "risk",
            "--workdir",
            str(workdir),
            "--registry",
            str(self.registry),
            "--tracking-uri",
            self.tracking_uri,
            *TEST_THRESHOLDS,
            *RERUN_SAME_DATA,
            *args,
        ]
        exit_code = main(argv)
        return RunResult(exit_code, json.loads((workdir / "summary.json").read_text()))


def with_champion(root: Path) -> LocalSetup:
    """A local setup whose registry holds a champion trained on the sample (asserted deployed)."""
    setup = LocalSetup(root)
    first = setup.run(name="champion")
    assert first.summary["outcome"] == "deployed" and first.tasks == DEPLOYED_TASKS, first.summary["reasons"]
    return setup


def copy_setup(template: LocalSetup, root: Path) -> LocalSetup:
    """A private copy of a built setup, as if its runs had happened in ``root``: the registry byte for
    byte, the run folders, and the MLflow store with its artifact locations moved along (every text
    column naming the old folder). The signed manifests keep the tracking URI they were trained with,
    as a registry copied to another bucket does."""
    shutil.copytree(template.root, root, symlinks=True)
    database = root / "mlflow.db"
    if database.exists():
        old, new = str(template.root), str(root)
        with sqlite3.connect(database) as connection:
            tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                for column in connection.execute(f"PRAGMA table_info({table})").fetchall():
                    if column[2].upper().startswith(("VARCHAR", "TEXT")):
                        connection.execute(
                            f"UPDATE {table} SET {column[1]} = replace({column[1]}, ?, ?) WHERE instr({column[1]}, ?)",
                            (old, new, old),
                        )
        connection.close()
    return LocalSetup(root)


@pytest.fixture(scope="session")
def sample_champion(tmp_path_factory) -> LocalSetup:
    """The sample's first run, made once per test session and shared by every pytest-xdist worker (the
    first to ask builds it under a lock). Never run anything in it: take a :func:`copy_setup`."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    template = shared / "sample-champion"
    with open(shared / "sample-champion.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (template / "built").exists():
            shutil.rmtree(template, ignore_errors=True)  # a build a killed worker left half done
            template.mkdir()
            with_champion(template)
            (template / "built").touch()
    return LocalSetup(template)


@pytest.fixture
def champion_copy(sample_champion, tmp_path) -> LocalSetup:
    """A registry and MLflow store holding the sample's champion, for this test alone."""
    return copy_setup(sample_champion, tmp_path / "setup")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> LocalSetup:
    return LocalSetup(tmp_path_factory.mktemp("local"))
