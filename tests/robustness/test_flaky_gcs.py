"""GCS answering 429/503 or dropping connections mid-upload: google-cloud-storage's retry policy
recovers, nothing is written twice, and when the retries run out the run fails clearly with
the champion untouched."""

import re
import time

import pytest

from gated_training.data import storage
from gated_training.errors import RegistryError
from gated_training.registry.store import ModelRegistry, smoke_test
from gated_training.steps.deploy_model import deploy_model
from tests.robustness.conftest import BUCKET, deploy_arguments, gate_for, snapshot
from tests.robustness.flaky_proxy import FlakyProxy

UPLOAD = "POST"


@pytest.fixture
def proxy(gcs_server, monkeypatch):
    with FlakyProxy(gcs_server.url) as flaky:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", flaky.url)
        storage.gcs_client.cache_clear()
        yield flaky
    storage.gcs_client.cache_clear()  # the next user gets a client for the real emulator again


def upload_of(name: str) -> str:
    """A multipart upload whose metadata part names an object ending in ``/name``."""
    return rf'^/upload/storage/v1/b/{BUCKET}/o\?.*"name": "[^"]*/{re.escape(name)}"'


def test_transient_failures_are_retried_and_the_deploy_completes(candidates, proxy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(storage.RETRY_BUDGET_ENV, "60")
    registry_uri = f"gs://{BUCKET}/{tmp_path.name}"
    first, candidate, _ = candidates
    assert deploy_model(
        **deploy_arguments(
            first, gate_for(first, registry_uri, tmp_path / "g0.json"), registry_uri, tmp_path / "d0.json", "seed"
        )
    ).promoted
    gate = gate_for(candidate, registry_uri, tmp_path / "g1.json")
    proxy.log.clear()

    proxy.add(UPLOAD, upload_of("model.joblib"), 503, times=2)
    proxy.add(UPLOAD, upload_of("feature_metadata.json"), 429, times=1)
    proxy.add(UPLOAD, upload_of("manifest.json"), "drop_before", times=1)  # connection dropped mid-upload
    proxy.add(UPLOAD, upload_of("smoke_rows.parquet"), "drop_after", times=1)  # landed, the answer was lost
    proxy.add("GET", r"/champion\.json\?alt=media", 503, times=1)
    proxy.add(UPLOAD, upload_of("champion.json"), "drop_after", times=1)  # the swap landed, the answer was lost
    started = time.monotonic()
    outcome = deploy_model(**deploy_arguments(candidate, gate, registry_uri, tmp_path / "d1.json", "run-1"))
    elapsed = time.monotonic() - started

    assert outcome.promoted, outcome
    assert all(rule.hits == rule.times for rule in proxy.rules), [(r.pattern, r.hits) for r in proxy.rules]
    registry = ModelRegistry(registry_uri, "m")
    champion = registry.champion()
    assert champion.version == outcome.version
    smoke_test(registry, champion.version, champion.manifest_sha256)
    uploads = [
        entry for entry in proxy.log if entry[1] == UPLOAD and re.search(upload_of("model.joblib"), entry[2], re.S)
    ]
    assert [entry[3] for entry in uploads] == ["503", "503", "forward"]
    gaps = [round(b[0] - a[0], 2) for a, b in zip(uploads, uploads[1:])]
    with capsys.disabled():
        print(
            f"\n  GCS retries: model.joblib upload gaps {gaps} s; the whole deploy through 6 injected faults took "
            f"{elapsed:.1f} s"
        )


def test_when_retries_run_out_the_deploy_fails_clearly_and_the_champion_is_untouched(
    candidates, proxy, tmp_path, monkeypatch, capsys
):
    registry_uri = f"gs://{BUCKET}/{tmp_path.name}"
    first, candidate, _ = candidates
    assert deploy_model(
        **deploy_arguments(
            first, gate_for(first, registry_uri, tmp_path / "g0.json"), registry_uri, tmp_path / "d0.json", "seed"
        )
    ).promoted
    gate = gate_for(candidate, registry_uri, tmp_path / "g1.json")
    before = snapshot(registry_uri)

    monkeypatch.setenv(storage.RETRY_BUDGET_ENV, "4")
    proxy.log.clear()
    proxy.add(UPLOAD, upload_of("model.joblib"), 503, times=None)
    started = time.monotonic()
    with pytest.raises(
        RegistryError, match=r"model\.joblib: cannot write to GCS: still failing after retrying for 4 s"
    ):
        deploy_model(**deploy_arguments(candidate, gate, registry_uri, tmp_path / "d1.json", "run-1"))
    elapsed = time.monotonic() - started
    attempts = len([e for e in proxy.log if re.search(upload_of("model.joblib"), e[2], re.S)])
    assert attempts >= 2 and elapsed < 30
    assert snapshot(registry_uri) == before  # no new version, the pointer untouched
    with capsys.disabled():
        print(f"\n  GCS retries exhausted: {attempts} attempts in {elapsed:.1f} s with a 4 s budget")
