"""Shared fixtures: the bundled sample, small synthetic frames, and isolated MLflow/registry roots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from gated_training.data.synthetic import mixed_frame as synthetic_frame  # noqa: F401 - the tests' small table

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# A dead MLflow server must fail fast in tests, not after minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
# Every registry in the tests is signed with this key (gated_training.registry.signing); tests of the
# unsigned mode and of other keys change it for themselves. Steps started by kfp.local inherit it.
TEST_REGISTRY_KEY = "test-registry-key-0123456789abcdef0123456789abcdef"
os.environ["GATED_TRAINING_REGISTRY_KEY"] = TEST_REGISTRY_KEY
for _name in ("GATED_TRAINING_REGISTRY_KEY_FILE", "GATED_TRAINING_REGISTRY_UNSIGNED"):
    os.environ.pop(_name, None)

# The tests' webhook receivers listen on loopback, which a step refuses unless the operator allows it
# (gated_training.reports.notify); the tests allow it as an operator would, and the tests of the refusal unset it.
os.environ["GATED_TRAINING_WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1,localhost"

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO_ROOT / "data" / "german_credit.csv"
SAMPLE_SUITE = REPO_ROOT / "data" / "german_credit.expectations.json"
SAMPLE_PARAMS = REPO_ROOT / "data" / "german_credit.params.yaml"
COMPILED_PIPELINE = REPO_ROOT / "compiled" / "training_pipeline.yaml"


MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def no_mlflow_uri_leaks():
    """A test that leaves MLFLOW_TRACKING_URI behind (``mlflow.set_tracking_uri`` writes it into
    ``os.environ``) hands every later run in this worker, and its step processes, a server that is
    gone by then: which test then fails depends on how xdist orders the files. Fail the leaking test."""
    before = {name: os.environ.get(name) for name in MLFLOW_URI_VARIABLES}
    yield
    after = {name: os.environ.get(name) for name in MLFLOW_URI_VARIABLES}
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    assert after == before, f"the test left MLflow's URI variables changed: {before} -> {after}"


@pytest.fixture
def sample_frame() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DATA)


@pytest.fixture
def sample_suite() -> dict:
    return json.loads(SAMPLE_SUITE.read_text())


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def write_csv(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


def write_suite(document: dict, path: Path) -> str:
    path.write_text(json.dumps(document))
    return str(path)
