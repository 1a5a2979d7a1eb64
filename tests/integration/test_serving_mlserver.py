"""A real MLServer (the serving venv: requirements/serving-constraints.txt) serves a version the
pipeline made, through our verifying runtime, as a KServe pod would run it: every smoke row sent
alone with its nulls, in V2 and in V1, gets the label and probabilities recorded at gate time."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from gated_training import logs
from gated_training.registry.store import (
    PROBABILITY_TOLERANCE,
    SMOKE_PREDICTIONS_FILE,
    SMOKE_PROBABILITIES_FILE,
    SMOKE_ROWS_FILE,
    ModelRegistry,
)
from gated_training.serving import layout as serving
from gated_training.serving.layout import serving_files
from tests.integration.conftest import copy_setup
from tests.mlserver_process import MLServer, mounted_copy
from tests.serving_requests import v1_request, v2_answer, v2_request

LOG_KEYS = {"time", "severity", "message", "event", "logger", "step", "run_id", "model", "version", "fields"}

MODEL = "tabular-classifier"
TOLERANCE = PROBABILITY_TOLERANCE  # what deploy's own smoke replay allows


@pytest.fixture(scope="module")
def champion(sample_champion, tmp_path_factory):
    setup = copy_setup(sample_champion, tmp_path_factory.mktemp("serving") / "setup")
    registry = ModelRegistry(str(setup.registry), MODEL)
    return setup, registry, registry.champion()


def recorded(registry: ModelRegistry, version: str) -> tuple[pd.DataFrame, list, list]:
    folder = Path(registry.version_uri(version))
    return (
        pd.read_parquet(folder / SMOKE_ROWS_FILE),
        json.loads((folder / SMOKE_PREDICTIONS_FILE).read_text()),
        json.loads((folder / SMOKE_PROBABILITIES_FILE).read_text()),
    )


def server_for(root: Path, registry: ModelRegistry, version: str, manifest_sha: str) -> MLServer:
    mount = mounted_copy(Path(registry.version_uri(version)), root / "mnt-models")
    return MLServer(
        root,
        model_folder=mount,
        name=serving.service_name(MODEL),
        registry_uri=registry.uri,
        model_name=MODEL,
        version=version,
        manifest_sha256=manifest_sha,
    )


def disagreements(server: MLServer, rows: pd.DataFrame, labels: list, probabilities: list) -> dict[str, list[int]]:
    """The smoke rows each protocol answers otherwise than the gate recorded, one row per request."""
    found: dict[str, list[int]] = {"v2": [], "v1": []}
    for index in range(len(rows)):
        row = rows.iloc[[index]]
        status, body = server.post(f"/v2/models/{server.name}/infer", v2_request(row))
        assert status == 200, body
        label, probs = v2_answer(body)
        if label[0] != labels[index] or max(abs(a - b) for a, b in zip(probs[0], probabilities[index])) > TOLERANCE:
            found["v2"].append(index)
        status, body = server.post(f"/v1/models/{server.name}:predict", v1_request(row))
        assert status == 200, body
        if (
            body["predictions"][0] != labels[index]
            or max(abs(a - b) for a, b in zip(body["probabilities"][0], probabilities[index])) > TOLERANCE
        ):
            found["v1"].append(index)
    return found


def test_every_smoke_row_alone_with_its_nulls_answers_as_gated_in_v2_and_v1(champion, tmp_path):
    _, registry, pointer = champion
    rows, labels, probabilities = recorded(registry, pointer.version)
    assert rows.isna().any(axis=1).sum() >= 5, "the sample's smoke rows must carry missing values to prove anything"
    with server_for(tmp_path, registry, pointer.version, pointer.manifest_sha256) as server:
        assert server.wait_ready(), server.log
        assert disagreements(server, rows, labels, probabilities) == {"v2": [], "v1": []}
        assert f"serving {MODEL} version {pointer.version}" in server.log
        # Every answer names the registry version that gave it: the prediction log files calls by it.
        v2 = server.post(f"/v2/models/{server.name}/infer", v2_request(rows.iloc[[0]]))[1]
        v1 = server.post(f"/v1/models/{server.name}:predict", v1_request(rows.iloc[[0]]))[1]
        assert v2["model_version"] == v1["model_version"] == pointer.version
        status, metrics = server.get("/metrics", port=server.metrics)
        assert status == 200 and f'model_infer_request_success_total{{model="{server.name}"' in metrics
        assert server.get("/v2/health/ready")[0] == 200 and server.get("/v2/health/live")[0] == 200
        # Only the served files reached the "pod": no raw training values.
        assert sorted(p.name for p in (tmp_path / "mnt-models").iterdir()) == ["model-settings.json", "model.joblib"]
        status, body = server.post(f"/v1/models/{server.name}:predict", {"instances": "not rows"})
        assert status == 400 and "one per row" in body["error"]


def test_the_model_without_the_missing_value_step_answers_otherwise(champion, tmp_path):
    """Today's fix is what makes the previous test pass: the same fitted pipeline without its
    first step (None → NaN), published and served alike, answers some rows differently."""
    _, registry, pointer = champion
    model, manifest = registry.load_verified(pointer.version, pointer.manifest_sha256)
    (name, preprocess), estimator = model.steps[0], model.steps[-1]
    assert name == "preprocess" and preprocess.steps[0][0] == "missing"
    before = Pipeline([("preprocess", Pipeline(preprocess.steps[1:])), estimator])
    buffer = io.BytesIO()
    joblib.dump(before, buffer)
    folder = Path(registry.version_uri(pointer.version))
    files = {
        **serving_files(buffer.getvalue(), MODEL),
        **{
            name: (folder / name).read_bytes()
            for name in (SMOKE_ROWS_FILE, SMOKE_PREDICTIONS_FILE, SMOKE_PROBABILITIES_FILE)
        },
    }
    version, manifest_sha = registry.publish(files, {"note": "issue 18: the model as it was before the fix"})
    registry.promote(version, manifest_sha, registry.champion().token, reason="test: serve the unfixed model")
    rows, labels, probabilities = recorded(registry, version)
    try:
        with server_for(tmp_path, registry, version, manifest_sha) as server:
            assert server.wait_ready(), server.log
            found = disagreements(server, rows, labels, probabilities)
    finally:  # the module's champion again, for the other tests
        champion_now = registry.champion()
        registry.promote(pointer.version, pointer.manifest_sha256, champion_now.token, reason="test: restore")
    missing_rows = set(rows.index[rows.isna().any(axis=1)])
    assert found["v2"] and found["v1"], found
    assert set(found["v2"]) <= missing_rows and set(found["v1"]) <= missing_rows


class Marker:
    """A pickle that, if ever loaded, writes a file: proof that nothing was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "unpickled"))


def test_a_tampered_model_never_loads_and_is_never_unpickled(champion, tmp_path):
    _, registry, pointer = champion
    marker = tmp_path / "unpickled"
    mount = mounted_copy(Path(registry.version_uri(pointer.version)), tmp_path / "mnt-models")
    (mount / "model.joblib").write_bytes(pickle.dumps(Marker(marker)))
    server = MLServer(
        tmp_path,
        model_folder=mount,
        name=serving.service_name(MODEL),
        registry_uri=registry.uri,
        model_name=MODEL,
        version=pointer.version,
        manifest_sha256=pointer.manifest_sha256,
    )
    with server:
        assert not server.wait_ready(timeout=40)
    assert "model.joblib: SHA-256" in server.log and "the file was altered, refusing to load" in server.log
    assert not marker.exists()


def test_a_rolled_back_version_is_refused_by_a_real_server(champion, tmp_path):
    """A pod still handed the version a rollback moved away from must not serve it: the signed pointer
    names no stable side after a rollback (issue 24)."""
    from gated_training.registry.operations import rollback

    _, registry, pointer = champion
    folder = Path(registry.version_uri(pointer.version))
    files = {
        name: (folder / name).read_bytes()
        for name in (*serving.SERVED_FILES, SMOKE_ROWS_FILE, SMOKE_PREDICTIONS_FILE, SMOKE_PROBABILITIES_FILE)
    }
    version, manifest_sha = registry.publish(files, {"note": "issue 24: promoted, then rolled back"})
    registry.promote(version, manifest_sha, registry.champion().token, reason="test: the next champion")
    rollback(registry, pointer.version, "test: errors up")
    assert registry.champion().version == pointer.version
    with server_for(tmp_path, registry, version, manifest_sha) as server:
        assert not server.wait_ready(timeout=40)
    assert "neither the champion nor the stable side of its canary (it was rolled back)" in server.log


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_runtime_exports_model_metrics_by_version_for_v2_and_v1_with_input_quality(champion, tmp_path, monkeypatch):
    """Predictions per class, the predicted probability, rows per request and input quality against the version's
    reference profile, labelled by model and registry version, for V2 and V1 (MLServer's own model_infer_* series
    say version="None" and never see V1); what a caller sends raises counts, never adds series."""
    _, registry, pointer = champion
    rows, labels, _ = recorded(registry, pointer.version)
    hostile = rows.head(2).copy()
    hostile["age"] = [500, None]  # outside the training range; missing
    hostile["purpose"] = ["<script>alert(1)</script>", "car"]  # a category the training data never had
    monkeypatch.setenv(logs.FORMAT_ENV, "json")  # as the ServingRuntime sets it: the server's log is JSON lines
    with server_for(tmp_path, registry, pointer.version, pointer.manifest_sha256) as server:
        assert server.wait_ready(), server.log
        for i in range(len(rows)):
            assert server.post(f"/v2/models/{server.name}/infer", v2_request(rows.iloc[[i]]))[0] == 200
        assert server.post(f"/v1/models/{server.name}:predict", v1_request(rows))[0] == 200
        assert server.post(f"/v2/models/{server.name}/infer", v2_request(hostile))[0] == 200
        assert server.post(f"/v1/models/{server.name}:predict", {"instances": "no"})[0] == 400
        status, text = server.get("/metrics", port=server.metrics)
    assert status == 200
    records = [json.loads(line) for line in server.log.splitlines() if line.strip()]  # every line: one object
    assert all(set(r) == LOG_KEYS for r in records), records[:3]
    (loaded,) = [r for r in records if r["event"] == "runtime.loaded"]
    assert (loaded["model"], loaded["version"]) == ("tabular-classifier", pointer.version)
    assert any(r["logger"].startswith(("mlserver", "uvicorn")) for r in records)  # MLServer's own, in the schema
    samples = _samples(text)
    base = (("model", server.name), ("version", pointer.version))

    def value(name: str, **extra: str) -> float:
        return samples.get((name, tuple(sorted((*base, *extra.items())))), 0.0)

    n = len(rows)
    assert value("gated_training_requests_total", protocol="v2", outcome="ok") == n + 1
    assert value("gated_training_requests_total", protocol="v1", outcome="ok") == 1
    assert value("gated_training_requests_total", protocol="v1", outcome="error") == 1
    assert value("gated_training_input_rows_total") == 2 * n + 2
    predicted = sum(value("gated_training_predictions_total", **{"class": str(c)}) for c in set(labels))
    assert predicted == 2 * n + 2
    assert value("gated_training_predicted_probability_count") == 2 * n + 2
    assert value("gated_training_request_rows_bucket", le="1.0") == n
    assert value("gated_training_input_out_of_range_total", feature="age") >= 1
    assert value("gated_training_input_missing_total", feature="age") >= 1
    assert value("gated_training_input_unseen_total", feature="purpose") >= 1
    assert not any("script" in repr(key) for key in samples)  # a caller's value never becomes a label
    assert value("gated_training_request_duration_seconds_count", protocol="v2") == n + 1
    assert value("gated_training_request_duration_seconds_count", protocol="v1") == 1  # the refused one: no scoring
