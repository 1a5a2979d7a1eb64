"""A remote MLflow server, reached through MLFLOW_TRACKING_URI: tracking, registry and the champion alias."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from gated_training.cli import main
from gated_training.tracking.runs import global_uris
from tests.conftest import SAMPLE_DATA
from tests.integration.conftest import DEPLOYED_TASKS, MODEL_BLOCKED_TASKS, TEST_THRESHOLDS
from tests.mlflow_server import mlflow_server

pytestmark = pytest.mark.integration


@dataclass
class RemoteRun:
    url: str
    root: Path
    registry: Path
    summary: dict


@pytest.fixture(scope="module")
def remote_run(tmp_path_factory) -> Iterator[RemoteRun]:
    """One MLflow server on loopback and one deploying run tracked on it, read by both tests below."""
    root = tmp_path_factory.mktemp("remote")
    with mlflow_server(root) as url, pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", url)
        workdir, registry = root / "work", root / "registry"
        code = main(
            [
                "run",
                "--data",
                str(SAMPLE_DATA),
                "--target",
                "risk",
                "--workdir",
                str(workdir),
                "--registry",
                str(registry),
                "--set",
                "n_estimators=10",
                *TEST_THRESHOLDS,
            ]
        )
        summary = json.loads((workdir / "summary.json").read_text())
        assert code == 0, summary["reasons"]
        yield RemoteRun(url, root, registry, summary)


def test_pipeline_tracks_and_registers_on_a_remote_server(remote_run, monkeypatch):
    url, summary, tmp_path = remote_run.url, remote_run.summary, remote_run.root
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    assert summary["tasks_ran"] == DEPLOYED_TASKS and summary["outcome"] == "deployed"
    assert summary["parameters"]["mlflow_tracking_uri"] == url
    assert summary["deployed"]["mlflow_mirror"] == "synced"
    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.tags["data_sha256"] == summary["data_sha256"]
    assert run.data.metrics["test_accuracy"] == pytest.approx(summary["candidate_metrics"]["accuracy"])
    champion = client.get_model_version_by_alias("tabular-classifier", "champion")
    assert champion.tags["registry_version"] == summary["deployed"]["version"]
    assert (tmp_path / "artifacts").is_dir()  # the model went through the server's artifact proxy

    # The whole gate is on the run: outcome, thresholds, every check's value and verdict, the reports.
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert (tags["gated_training.outcome"], tags["gate.decision"]) == ("deployed", "deploy")
    assert params["gate.min_accuracy"] == "0.6" and tags["gate.min_accuracy.verdict"] == "pass"
    assert metrics["gate.min_accuracy"] == pytest.approx(summary["candidate_metrics"]["accuracy"])
    assert tags["gated_training.package_version"] and tags["kfp_run_id"] == summary["kfp_run_id"]
    assert run.info.run_name.startswith(f"deployed · random_forest-data-{summary['data_sha256'][:8]}-")
    gate_artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "gate")}
    assert gate_artifacts == {"gate/gate_report.md", "gate/gate_decision.json", "gate/drift_report.html"}
    (dataset,) = run.inputs.dataset_inputs
    assert json.loads(dataset.dataset.source)["uri"].endswith("german_credit.csv")
    assert dataset.dataset.digest == summary["data_sha256"][:32] and "credit_amount" in dataset.dataset.schema
    assert f"registry version {summary['deployed']['version']}" in champion.description
    assert "min_accuracy" in champion.description
    with global_uris(url):  # models:/ URIs resolve through mlflow's global URIs
        info = mlflow.models.get_model_info(f"models:/tabular-classifier/{champion.version}")
    types = {spec.name: (spec.type.name, spec.required) for spec in info.signature.inputs.inputs}
    assert types["age"] == ("double", True) and types["credit_amount"] == ("double", True)
    assert types["saving_accounts"] == ("string", True)
    assert [spec.name for spec in info.signature.outputs.inputs] == ["label", "probability.0", "probability.1"]

    # A blocked run says so too, with the gate that blocked it.
    code = main(
        [
            "run",
            "--data",
            str(SAMPLE_DATA),
            "--target",
            "risk",
            "--workdir",
            str(tmp_path / "blocked"),
            "--registry",
            str(remote_run.registry),
            "--set",
            "n_estimators=10",
            *TEST_THRESHOLDS,
            "--set",
            "min_accuracy=0.99",
            "--set",
            "force_retrain=true",
        ]
    )
    blocked = json.loads((tmp_path / "blocked" / "summary.json").read_text())
    assert code == 0 and blocked["outcome"] == "blocked" and blocked["tasks_ran"] == MODEL_BLOCKED_TASKS
    blocked_tags = client.get_run(blocked["mlflow_run_id"]).data.tags
    assert (blocked_tags["gated_training.outcome"], blocked_tags["gated_training.blocked_by"]) == (
        "blocked",
        "model",
    )
    assert blocked_tags["gate.min_accuracy.verdict"] == "fail"


def test_the_mlflow_champion_served_by_mlflow_answers_as_the_registry_champion(remote_run, tmp_path):
    """`mlflow models serve` on the champion alias, on loopback: rows with missing values, a one-row
    request and the probabilities match ModelRegistry.load_verified on the same rows; the logged
    examples are strict JSON."""
    import subprocess
    import sys
    import time
    import urllib.request

    import numpy as np
    import pandas as pd

    from gated_training.registry.store import ModelRegistry
    from tests.mlflow_server import free_port

    url, registry_path = remote_run.url, remote_run.registry
    with global_uris(url):
        model_dir = mlflow.artifacts.download_artifacts(
            "models:/tabular-classifier@champion", dst_path=str(tmp_path / "m")
        )
    for example in ("input_example.json", "serving_input_example.json"):
        text = (
            (tmp_path / "m" / example).read_text()
            if (tmp_path / "m" / example).exists()
            else next((p.read_text() for p in (tmp_path / "m").rglob(example)), None)
        )
        assert text is not None, example
        json.loads(
            text, parse_constant=lambda constant, example=example: pytest.fail(f"{example} holds a bare {constant}")
        )

    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    # mlflow execs `uvicorn` from PATH: the venv's bin, whether or not the venv is activated.
    import os

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            model_dir,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.5)

        rows = pd.read_csv(SAMPLE_DATA).drop(columns="risk").head(12).copy()
        rows.loc[0, "age"] = np.nan  # a missing number: the signature's double, not an HTTP 400
        rows.loc[1, "credit_amount"] = np.nan

        def served(frame: pd.DataFrame) -> pd.DataFrame:
            body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                return pd.DataFrame(json.loads(response.read())["predictions"])

        registry = ModelRegistry(str(registry_path), "tabular-classifier")
        champion = registry.champion()
        model, _ = registry.load_verified(champion.version)
        for frame in (rows, rows.head(1), rows.iloc[[1]]):
            answer = served(frame)
            assert list(answer["label"]) == [
                getattr(label, "item", lambda label=label: label)() for label in model.predict(frame)
            ]
            columns = [f"probability.{c}" for c in model.classes_]
            assert answer[columns].to_numpy() == pytest.approx(model.predict_proba(frame), abs=1e-9)
    finally:
        server.terminate()
        server.wait(timeout=30)
