import json

import pytest

from gated_training.errors import RegistryError
from gated_training.registry.store import MANIFEST, MODEL_FILE, ChampionChangedError, ModelRegistry
from tests.registry_helpers import model_bytes, resign


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(str(tmp_path / "registry"), "credit")


def test_publish_then_load_verified(tmp_path, registry):
    version, manifest_sha = registry.publish(
        {MODEL_FILE: model_bytes(tmp_path), "notes.json": b"{}"}, {"metrics": {"accuracy": 0.9}, "data_sha256": "abc"}
    )
    model, manifest = registry.load_verified(version, manifest_sha)
    assert model.predict([[5]]).tolist() == [1]
    assert set(manifest["files"]) == {MODEL_FILE, "notes.json"}
    assert manifest["metrics"] == {"accuracy": 0.9} and manifest["created_by"] and manifest["created_at"]
    assert registry.versions() == [version]


def test_versions_are_immutable(tmp_path, registry):
    version, _ = registry.publish({MODEL_FILE: model_bytes(tmp_path)}, {})
    from gated_training.data import storage

    with pytest.raises(RegistryError, match="already exists and is immutable"):
        storage.write_bytes(registry.version_uri(version, MODEL_FILE), b"other", create_only=True)


def test_tampered_model_file_is_refused(tmp_path, registry):
    version, manifest_sha = registry.publish({MODEL_FILE: model_bytes(tmp_path)}, {})
    (tmp_path / "registry" / "credit" / "versions" / version / MODEL_FILE).write_bytes(model_bytes(tmp_path, 0))
    with pytest.raises(RegistryError, match=rf"{version}: model.joblib has SHA-256 .* the file was altered"):
        registry.load_verified(version, manifest_sha)


def test_replaced_manifest_is_refused(tmp_path, registry):
    version, manifest_sha = registry.publish({MODEL_FILE: model_bytes(tmp_path)}, {})
    manifest_path = tmp_path / "registry" / "credit" / "versions" / version / MANIFEST
    manifest_path.write_text(manifest_path.read_text().replace('"format"', '"format" ', 1))
    with pytest.raises(RegistryError, match="signature does not match the manifest: the version was altered or forged"):
        registry.load_verified(version, manifest_sha)
    resign(manifest_path)  # even re-signed by a key holder, it is not the manifest the pointer names
    with pytest.raises(RegistryError, match="does not match the champion pointer"):
        registry.load_verified(version, manifest_sha)


def test_incomplete_version_is_never_loaded(tmp_path, registry):
    from gated_training.data import storage

    storage.write_bytes(registry.version_uri("20260101T000000000000Z-0000dead", MODEL_FILE), model_bytes(tmp_path))
    with pytest.raises(RegistryError, match="has no manifest"):
        registry.load_verified("20260101T000000000000Z-0000dead")


def test_promote_moves_the_pointer_and_records_history(tmp_path, registry):
    assert registry.champion() is None
    first, first_sha = registry.publish({MODEL_FILE: model_bytes(tmp_path, 0)}, {})
    registry.promote(first, first_sha, None, "first")
    second, second_sha = registry.publish({MODEL_FILE: model_bytes(tmp_path, 1)}, {})
    champion = registry.champion()
    pointer = registry.promote(second, second_sha, champion.token, "better")
    assert pointer["previous_version"] == first and pointer["reason"] == "better"
    assert registry.champion().version == second


def test_promote_refuses_when_the_champion_moved(tmp_path, registry):
    first, first_sha = registry.publish({MODEL_FILE: model_bytes(tmp_path, 0)}, {})
    registry.promote(first, first_sha, None, "first")
    gated_against = registry.champion().token
    other, other_sha = registry.publish({MODEL_FILE: model_bytes(tmp_path, 1)}, {})
    registry.promote(other, other_sha, gated_against, "another run won")
    late, late_sha = registry.publish({MODEL_FILE: model_bytes(tmp_path, 0)}, {})
    with pytest.raises(ChampionChangedError, match=f"the champion changed to {other}"):
        registry.promote(late, late_sha, gated_against, "late")
    with pytest.raises(ChampionChangedError):
        registry.promote(late, late_sha, None, "thinks there is no champion")
    assert registry.champion().version == other
    assert json.loads((tmp_path / "registry" / "credit" / "champion.json").read_text())["version"] == other


def test_bad_names_are_refused(tmp_path):
    with pytest.raises(RegistryError, match="model name '../x'"):
        ModelRegistry(str(tmp_path), "../x")
    with pytest.raises(RegistryError, match="registry URI is empty"):
        ModelRegistry(" ", "m")
