"""gs:// data, suite and registry against fake-gcs-server on loopback (it enforces generation preconditions)."""

import json

import joblib
import pytest
from sklearn.dummy import DummyClassifier

from gated_training.data import storage
from gated_training.errors import DataError, RegistryError
from gated_training.registry.store import MODEL_FILE, ChampionChangedError, ModelRegistry
from gated_training.steps.validate_data import validate_data
from tests.conftest import SAMPLE_DATA, SAMPLE_SUITE
from tests.gcs_server import fake_gcs
from tests.integration.conftest import DEPLOYED_TASKS, TEST_THRESHOLDS

pytestmark = pytest.mark.integration
BUCKET = "ml-data"


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    with fake_gcs(tmp_path_factory.mktemp("gcs") / "fake-gcs-server.log", BUCKET) as server:
        bucket = storage.gcs_client().bucket(BUCKET)
        bucket.blob("incoming/german_credit.csv").upload_from_filename(str(SAMPLE_DATA))
        bucket.blob("incoming/german_credit.expectations.json").upload_from_filename(str(SAMPLE_SUITE))
        yield server


def model_bytes(tmp_path, constant: int) -> bytes:
    path = tmp_path / f"{constant}.joblib"
    joblib.dump(DummyClassifier(strategy="constant", constant=constant).fit([[0], [1]], [0, 1]), path)
    return path.read_bytes()


def test_validation_reads_data_and_the_suite_beside_it_from_gcs(gcs, tmp_path):
    outcome = validate_data(
        data_uri=f"gs://{BUCKET}/incoming/german_credit.csv",
        suite_uri="",
        target="risk",
        min_quality_score=0.8,
        dataset_out=str(tmp_path / "d.parquet"),
        report_out=str(tmp_path / "r.json"),
        data_docs_out=str(tmp_path / "h.html"),
    )
    assert outcome.passed and outcome.suite_uri == f"gs://{BUCKET}/incoming/german_credit.expectations.json"


def test_missing_bucket_and_object_are_named(gcs):
    with pytest.raises(DataError, match=r"gs://no-such-bucket/x\.csv: no such object or bucket"):
        storage.read_bytes("gs://no-such-bucket/x.csv")
    with pytest.raises(DataError, match=rf"gs://{BUCKET}/incoming/nope\.csv: no such object or bucket"):
        storage.read_bytes(f"gs://{BUCKET}/incoming/nope.csv")


def test_registry_on_gcs_publishes_verifies_and_swaps_with_generations(gcs, tmp_path):
    registry = ModelRegistry(f"gs://{BUCKET}/registry", "credit")
    first, first_sha = registry.publish({MODEL_FILE: model_bytes(tmp_path, 0)}, {"metrics": {"accuracy": 0.7}})
    registry.promote(first, first_sha, None, "first")
    champion = registry.champion()
    assert champion.version == first and champion.token.isdigit()  # the pointer object's generation
    model, manifest = registry.load_verified(first, champion.manifest_sha256)
    assert model.predict([[1]]).tolist() == [0] and manifest["metrics"] == {"accuracy": 0.7}
    assert registry.versions() == [first]

    with pytest.raises(RegistryError, match="already exists and is immutable"):
        storage.write_bytes(registry.version_uri(first, MODEL_FILE), b"x", create_only=True)

    second, second_sha = registry.publish({MODEL_FILE: model_bytes(tmp_path, 1)}, {})
    registry.promote(second, second_sha, champion.token, "better")
    with pytest.raises(ChampionChangedError):
        registry.promote(first, first_sha, champion.token, "stale: gated against the first champion")
    assert registry.champion().version == second

    storage.gcs_blob(registry.version_uri(second, MODEL_FILE)).upload_from_string(model_bytes(tmp_path, 0))
    with pytest.raises(RegistryError, match="the file was altered"):
        registry.load_verified(second, second_sha)


def test_pipeline_runs_on_gcs_data_and_registry(gcs, tmp_path):
    from gated_training.cli import main

    registry = f"gs://{BUCKET}/pipeline-registry"
    code = main(
        [
            "run",
            "--data",
            f"gs://{BUCKET}/incoming/german_credit.csv",
            "--target",
            "risk",
            "--registry",
            registry,
            "--workdir",
            str(tmp_path),
            "--set",
            "n_estimators=10",
            *TEST_THRESHOLDS,
        ]
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0 and summary["tasks_ran"] == DEPLOYED_TASKS and summary["outcome"] == "deployed"
    assert summary["deployed"]["uri"].startswith(f"{registry}/tabular-classifier/versions/")
    assert ModelRegistry(registry, "tabular-classifier").champion().version == summary["deployed"]["version"]
