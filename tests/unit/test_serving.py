"""gated_training.serving.layout: the version layout, the service name, and the pod's checks before unpickling."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest

from gated_training.errors import RegistryError
from gated_training.registry.store import MANIFEST, ModelRegistry
from gated_training.serving import layout as serving
from gated_training.serving.layout import MODEL_SETTINGS_FILE, SERVED_MODEL_FILE, service_name, serving_files
from gated_training.serving.pod import load_served_model
from tests.registry_helpers import model_bytes, resign

REPO = Path(__file__).resolve().parents[2]


class Marker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "unpickled"))


@pytest.fixture
def published(tmp_path):
    registry = ModelRegistry(str(tmp_path / "registry"), "Credit_Model.v2")
    first, first_sha = registry.publish(
        {**serving_files(model_bytes(tmp_path, 0), registry.model_name), "reference_profile.json": b"{}"}, {}
    )
    registry.promote(first, first_sha, None, reason="test")
    return registry, first, first_sha


def mount(registry: ModelRegistry, version: str, target: Path) -> Path:
    shutil.copytree(Path(registry.version_uri(version, serving.SERVE_FOLDER)), target)
    return target


def test_a_version_keeps_what_a_server_needs_in_its_serve_folder_and_nothing_else(published, tmp_path):
    registry, version, _ = published
    manifest, _ = registry.read_manifest(version)
    assert {SERVED_MODEL_FILE, MODEL_SETTINGS_FILE} <= set(manifest["files"])
    served = sorted(p.name for p in Path(registry.version_uri(version, "serve")).iterdir())
    assert served == ["model-settings.json", "model.joblib"]  # no reference_profile.json, no smoke rows
    settings = json.loads(Path(registry.version_uri(version, MODEL_SETTINGS_FILE)).read_text())
    assert settings == {
        "name": "credit-model-v2",
        "implementation": "gated_training.serving.runtime.VerifiedModel",
        "parameters": {
            "uri": "./model.joblib",
            "content_type": "pd",
            "extra": {"registry_model_name": "Credit_Model.v2"},
        },
    }
    model, _ = registry.load_verified(version)  # the registry loads the serve/ model like any other
    assert model.predict([[0]])[0] == 0


def test_the_pod_loads_the_champion_after_every_check(published, tmp_path):
    registry, version, sha = published
    model, manifest, settings = load_served_model(
        folder=str(mount(registry, version, tmp_path / "mnt")), registry=registry, version=version, manifest_sha256=sha
    )
    assert manifest["version"] == version and settings["parameters"]["content_type"] == "pd"


def test_a_tampered_model_is_refused_before_unpickling(published, tmp_path):
    registry, version, sha = published
    folder = mount(registry, version, tmp_path / "mnt")
    (folder / "model.joblib").write_bytes(pickle.dumps(Marker(tmp_path / "marker")))
    with pytest.raises(RegistryError, match=r"mnt/model.joblib: SHA-256 .* the file was altered, refusing to load"):
        load_served_model(folder=str(folder), registry=registry, version=version, manifest_sha256=sha)
    assert not (tmp_path / "marker").exists()


def test_a_tampered_manifest_is_refused_before_unpickling(published, tmp_path):
    """Someone without the key edits the manifest to bless their pickle: the signature fails."""
    registry, version, sha = published
    folder = mount(registry, version, tmp_path / "mnt")
    evil = pickle.dumps(Marker(tmp_path / "marker"))
    (folder / "model.joblib").write_bytes(evil)
    manifest_path = Path(registry.version_uri(version, MANIFEST))
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][SERVED_MODEL_FILE]["sha256"] = __import__("hashlib").sha256(evil).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    with pytest.raises(RegistryError, match=rf"model version {version}.*signature"):
        load_served_model(folder=str(folder), registry=registry, version=version, manifest_sha256=sha)
    assert not (tmp_path / "marker").exists()


def test_a_moved_pointer_is_refused_before_unpickling(published, tmp_path):
    """The pod was handed version A; the pointer went on to B and then C: A is neither the champion
    nor the version the champion replaced, even with a genuine, signed version A."""
    registry, first, first_sha = published
    token = registry.champion().token
    for constant in (1, 0):
        version, sha = registry.publish(serving_files(model_bytes(tmp_path, constant), registry.model_name), {})
        registry.promote(version, sha, token, reason="test")
        token = registry.champion().token
    folder = mount(registry, first, tmp_path / "mnt")
    with pytest.raises(
        RegistryError,
        match=rf"the champion is {registry.champion().version} .* this pod was handed "
        rf"{first} .* which is neither the champion nor the stable side of its canary",
    ):
        load_served_model(folder=str(folder), registry=registry, version=first, manifest_sha256=first_sha)


def test_the_stable_side_of_a_canary_still_loads(published, tmp_path):
    """While a canary runs, pods of the version the champion replaced may restart."""
    registry, first, first_sha = published
    second, second_sha = registry.publish(serving_files(model_bytes(tmp_path, 1), registry.model_name), {})
    registry.promote(second, second_sha, registry.champion().token, reason="test")
    load_served_model(
        folder=str(mount(registry, first, tmp_path / "mnt")),
        registry=registry,
        version=first,
        manifest_sha256=first_sha,
    )
    with pytest.raises(RegistryError, match="is not the .* this pod was handed"):
        load_served_model(folder=str(tmp_path / "mnt"), registry=registry, version=first, manifest_sha256="0" * 64)


def test_a_file_the_manifest_does_not_list_is_refused(published, tmp_path):
    registry, version, sha = published
    folder = mount(registry, version, tmp_path / "mnt")
    (folder / "sitecustomize.py").write_text("raise SystemExit('ran')\n")
    with pytest.raises(RegistryError, match=r"holds \['model-settings.json', 'model.joblib', 'sitecustomize.py'\]"):
        load_served_model(folder=str(folder), registry=registry, version=version, manifest_sha256=sha)


def test_a_version_from_before_the_serving_layout_is_not_servable(tmp_path):
    registry = ModelRegistry(str(tmp_path / "registry"), "credit")
    version, sha = registry.publish({"model.joblib": model_bytes(tmp_path)}, {})
    registry.promote(version, sha, None, reason="test")
    (tmp_path / "mnt").mkdir()
    with pytest.raises(
        RegistryError,
        match=rf"{version} has no serve/model.joblib, serve/model-settings.json: it was "
        "published before the serving layout",
    ):
        load_served_model(folder=str(tmp_path / "mnt"), registry=registry, version=version, manifest_sha256=sha)


@pytest.mark.parametrize(
    "model_name, expected",
    [
        ("credit", "credit"),
        ("Credit_Model.v2", "credit-model-v2"),
        ("1model", "m-1model"),
        ("a" * 128, "a" * 45),
        ("x-", "x"),
        ("a..b__c", "a-b-c"),
    ],
)
def test_service_names_are_dns_labels_whatever_the_registry_allows(model_name, expected):
    assert service_name(model_name) == expected
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", expected) and len(expected) <= 45


def test_the_serving_constraints_pin_the_ml_libraries_as_the_component_image_does():
    def pins(path: Path) -> dict[str, str]:
        lines = [
            line.split("==") for line in path.read_text().splitlines() if "==" in line and not line.startswith("#")
        ]
        return {name.lower().replace("_", "-"): version for name, version in lines}

    component, serving_pins = (
        pins(REPO / "requirements/constraints.txt"),
        pins(REPO / "requirements/serving-constraints.txt"),
    )
    for name in (*serving.SERVING_LIBRARIES, "threadpoolctl", "pyarrow", "google-cloud-storage"):
        assert serving_pins[name] == component[name], name
    assert serving_pins["mlserver"] == "1.7.1" and serving_pins["uvloop"] == "0.21.0"
    assert tuple(int(p) for p in serving_pins["fastapi"].split(".")[:2]) < (0, 116)


def test_a_re_signed_but_malformed_model_settings_is_refused_before_unpickling(published, tmp_path):
    """A key holder's mistake (or a bad actor with the key) leaves settings that are not an object."""
    import hashlib

    registry, version, _ = published
    folder = mount(registry, version, tmp_path / "mnt")
    (folder / "model-settings.json").write_text("[1, 2]")
    Path(registry.version_uri(version, MODEL_SETTINGS_FILE)).write_text("[1, 2]")
    manifest_path = Path(registry.version_uri(version, MANIFEST))
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][MODEL_SETTINGS_FILE]["sha256"] = hashlib.sha256(b"[1, 2]").hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    resign(manifest_path)
    new_sha = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    pointer = registry.champion()
    registry.promote(version, new_sha, pointer.token, reason="test: re-signed")
    with pytest.raises(RegistryError, match=r"unreadable serve/model-settings.json: expected an object"):
        load_served_model(folder=str(folder), registry=registry, version=version, manifest_sha256=new_sha)
