"""A registry only the pipeline can write: unsigned, forged, re-keyed and symlinked versions are
refused by every loader before anything is unpickled; the marker a malicious pickle would create
never appears."""

import json
import os
import pickle
from pathlib import Path

import joblib
import pytest

from gated_training.registry import smoke_files, smoke_test
from gated_training.errors import RegistryError
from gated_training.registry import MANIFEST, MODEL_FILE, ModelRegistry
from gated_training.registry_ops import cleanup, history, move_champion, rollback
from gated_training.signing import KEY_ENV, SIGNATURE_FILE, UNSIGNED_ENV
from tests.registry_helpers import model_bytes, resign


class Payload:
    """Unpickling this runs a command: the marker proves whether anything was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def registry(tmp_path):
    import pandas as pd

    registry = ModelRegistry(str(tmp_path / "registry"), "m")
    rows = pd.DataFrame({"x": [0, 1]})
    versions = []
    for constant in (0, 1):
        files = {MODEL_FILE: model_bytes(tmp_path, constant), **smoke_files(rows, [constant, constant])}
        version, sha = registry.publish(files, {})
        current = registry.champion()
        registry.promote(version, sha, current.token if current else None, "test")
        versions.append(version)
    return registry, versions


def forge(registry, version, marker, *, sign=False):
    forge_folder(Path(registry.version_uri(version)), marker, sign=sign)


def forge_folder(folder: Path, marker, *, sign=False):
    """Replace a version's model with a malicious pickle and rewrite its manifest consistently, as
    anyone with write access to the bucket could; ``sign`` also re-signs it (only a key holder can)."""
    evil = pickle.dumps(Payload(marker))
    (folder / MODEL_FILE).write_bytes(evil)
    manifest = json.loads((folder / MANIFEST).read_text())
    import hashlib

    manifest["files"][MODEL_FILE] = {"sha256": hashlib.sha256(evil).hexdigest(), "bytes": len(evil)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    if sign:
        resign(folder / MANIFEST)


def loaders(registry, version):
    """Every way the product loads a version (evaluate and deploy use load_verified_model too)."""
    return {
        "load_verified": lambda: registry.load_verified(version),
        "smoke_test (deploy, promote, rollback)": lambda: smoke_test(registry, version, None),
        "promote": lambda: move_champion(registry, version, "by hand", "manual_promote"),
        "rollback": lambda: rollback(registry, version, "back"),
    }


def test_a_consistently_rewritten_version_is_refused_by_every_loader(tmp_path, registry):
    registry, (v1, v2) = registry
    marker = tmp_path / "pwned"
    forge(registry, v1, marker)
    pointer = Path(registry.pointer_uri).read_bytes()
    for name, load in loaders(registry, v1).items():
        with pytest.raises(RegistryError, match=rf"model version {v1}: the signature does not match the manifest"):
            load()
        assert not marker.exists(), name
    assert Path(registry.pointer_uri).read_bytes() == pointer


def test_an_unsigned_version_is_refused_and_history_says_so(tmp_path, registry, monkeypatch):
    registry, (v1, v2) = registry
    marker = tmp_path / "pwned"
    forge(registry, v1, marker)
    Path(registry.version_uri(v1, SIGNATURE_FILE)).unlink()
    for name, load in loaders(registry, v1).items():
        with pytest.raises(RegistryError, match=rf"model version {v1}: the version is unsigned \(no manifest.sig\)"):
            load()
        assert not marker.exists(), name
    rows, problems = history(registry)
    assert {row.version: row.gate for row in rows}[v1] == "REFUSED" and "unsigned" in problems[0]


def test_another_key_is_named_as_such(tmp_path, registry, monkeypatch):
    registry, (v1, v2) = registry
    monkeypatch.setenv(KEY_ENV, "another-key-" + "x" * 40)
    with pytest.raises(RegistryError, match=r"signed with another key \(key id [0-9a-f]{16}, this run's key is "):
        registry.load_verified(v2)
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(RegistryError, match=r"GATED_TRAINING_REGISTRY_KEY: the registry key has 5 characters"):
        registry.load_verified(v2)


def test_no_key_refuses_everything_and_unsigned_mode_is_explicit(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    registry = ModelRegistry(str(tmp_path / "plain"), "m")
    with pytest.raises(RegistryError, match="no registry signing key: set GATED_TRAINING_REGISTRY_KEY"):
        registry.publish({MODEL_FILE: model_bytes(tmp_path)}, {})
    assert not (tmp_path / "plain").exists()  # nothing was written
    monkeypatch.setenv(UNSIGNED_ENV, "1")
    version, sha = registry.publish({MODEL_FILE: model_bytes(tmp_path)}, {})
    assert SIGNATURE_FILE not in os.listdir(registry.version_uri(version))
    assert registry.load_verified(version, sha)[0].predict([[0]]).tolist() == [1]


def test_a_signed_pickle_that_is_not_a_model_is_a_clear_error(tmp_path, registry):
    registry, (v1, v2) = registry
    folder = Path(registry.version_uri(v1))
    not_a_model = joblib.dump({"weights": [1, 2]}, tmp_path / "dict.joblib")
    (folder / MODEL_FILE).write_bytes(Path(not_a_model[0]).read_bytes())
    manifest = json.loads((folder / MANIFEST).read_text())
    import hashlib

    manifest["files"][MODEL_FILE]["sha256"] = hashlib.sha256((folder / MODEL_FILE).read_bytes()).hexdigest()
    (folder / MANIFEST).write_text(json.dumps(manifest))
    resign(folder / MANIFEST)
    with pytest.raises(RegistryError, match=rf"model version {v1} model.joblib: holds a builtins.dict, not a fitted "
                                            r"classifier"):
        registry.load_verified(v1)


def test_a_version_folder_linked_outside_the_registry_is_never_followed(tmp_path, registry):
    registry, (v1, v2) = registry
    marker = tmp_path / "pwned"
    outside = tmp_path / "outside" / "v"
    outside.mkdir(parents=True)
    for name in os.listdir(registry.version_uri(v1)):
        (outside / name).write_bytes(Path(registry.version_uri(v1, name)).read_bytes())
    forge_folder(outside, marker, sign=True)  # even a validly signed copy: the link itself is refused
    folder = Path(registry.version_uri(v1))
    for name in os.listdir(folder):
        (folder / name).unlink()
    folder.rmdir()
    folder.symlink_to(outside, target_is_directory=True)
    for name, load in loaders(registry, v1).items():
        with pytest.raises(RegistryError, match=rf"{folder}: is a symbolic link; the registry follows no links"):
            load()
        assert not marker.exists(), name


def test_cleanup_refuses_a_linked_version_and_deletes_nothing_outside(tmp_path, registry):
    registry, _ = registry
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.csv").write_text("keep me")
    incomplete = Path(registry.version_uri("20200101T000000000000Z-0000dead"))
    incomplete.parent.mkdir(parents=True, exist_ok=True)
    incomplete.symlink_to(outside, target_is_directory=True)
    with pytest.raises(RegistryError, match="is a symbolic link; the registry follows no links"):
        cleanup(registry, delete=True, older_than=__import__("datetime").timedelta(0))
    assert (outside / "data.csv").read_text() == "keep me"


def test_a_linked_pointer_or_lock_is_refused(tmp_path, registry):
    registry, (v1, v2) = registry
    pointer = Path(registry.pointer_uri)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(pointer.read_bytes())
    pointer.unlink()
    pointer.symlink_to(elsewhere)
    with pytest.raises(RegistryError, match="champion.json: is a symbolic link"):
        registry.champion()


def test_local_runs_get_a_per_user_key_created_once(tmp_path, monkeypatch):
    from gated_training.signing import KEY_FILE_ENV, current_signer, ensure_local_key

    monkeypatch.delenv(KEY_ENV)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)  # so teardown removes what ensure_local_key exports
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = ensure_local_key()
    assert path == str(tmp_path / "config" / "gated-training" / "registry.key")
    assert os.stat(path).st_mode & 0o777 == 0o600 and len(Path(path).read_text().strip()) == 64
    first = current_signer().key_id
    monkeypatch.delenv(KEY_FILE_ENV)
    assert ensure_local_key() == path and current_signer().key_id == first  # the same key next time
    monkeypatch.setenv(KEY_ENV, "x" * 40)
    assert ensure_local_key() is None  # a configured key always wins


def test_sign_legacy_signs_old_versions_once_and_never_a_tampered_one(tmp_path, registry, capsys):
    from gated_training.cli import main

    registry, (v1, v2) = registry
    for version in (v1, v2):  # as published before signing existed
        Path(registry.version_uri(version, SIGNATURE_FILE)).unlink()
    with pytest.raises(RegistryError, match="the version is unsigned"):
        registry.load_verified(v2)
    (Path(registry.version_uri(v1)) / MODEL_FILE).write_bytes(b"tampered")
    common = ["--registry", registry.uri, "--model-name", "m"]
    assert main(["sign-legacy", "--version", v2, *common]) == 0
    assert f"{v2}  signed" in capsys.readouterr().out
    assert registry.load_verified(v2)[0].predict([[0]]).tolist() == [1]
    assert main(["sign-legacy", *common]) == 1  # v1's model no longer matches its manifest: not signed
    assert "model.joblib has SHA-256" in capsys.readouterr().err
    assert not Path(registry.version_uri(v1, SIGNATURE_FILE)).exists()
    assert main(["sign-legacy", "--version", v2, *common]) == 0
    assert f"{v2}  already signed" in capsys.readouterr().out
