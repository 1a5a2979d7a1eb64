"""A registry only the pipeline can write: unsigned, forged, re-keyed and symlinked versions are
refused by every loader before anything is unpickled; the marker a malicious pickle would create
never appears."""

import json
import os
import pickle
from pathlib import Path

import joblib
import pytest

from gated_training.errors import RegistryError
from gated_training.registry.operations import cleanup, history, move_champion, rollback
from gated_training.registry.signing import KEY_ENV, SIGNATURE_FILE, UNSIGNED_ENV
from gated_training.registry.store import MANIFEST, MODEL_FILE, ModelRegistry, smoke_files, smoke_test
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
    monkeypatch.setenv(KEY_ENV, "another-key-7f3a9c1e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a")
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
    with pytest.raises(
        RegistryError,
        match=rf"model version {v1} model.joblib: holds a builtins.dict, not a fitted "
        r"classifier",
    ):
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
    from gated_training.registry.signing import KEY_FILE_ENV, current_signer, ensure_local_key

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


def legacy(registry) -> None:
    """Make a registry look as it did before signing: no signatures, an unsigned pointer."""
    for version in registry.versions():
        Path(registry.version_uri(version, SIGNATURE_FILE)).unlink(missing_ok=True)
    pointer = json.loads(Path(registry.pointer_uri).read_text())
    for key in ("format", "generation", "previous_pointer_sha256", "stable_version", "signature"):
        pointer.pop(key, None)
    Path(registry.pointer_uri).write_text(json.dumps(pointer, indent=2, sort_keys=True))
    import shutil

    shutil.rmtree(Path(registry.root) / "pointer_log")


def test_sign_legacy_signs_the_versions_the_records_name_once_and_never_a_tampered_one(tmp_path, registry, capsys):
    from gated_training.cli import main

    registry, (v1, v2) = registry
    legacy(registry)
    with pytest.raises(RegistryError, match="the version is unsigned"):
        registry.load_verified(v2)
    (Path(registry.version_uri(v1)) / MODEL_FILE).write_bytes(b"tampered")
    common = ["--registry", registry.uri, "--model-name", "m"]
    assert main(["sign-legacy", *common]) == 1  # v1's model no longer matches its manifest: refused, v2 signed
    out = capsys.readouterr().out
    assert f"{v2}  signed" in out and f"{v1}  refused: model version {v1}: model.joblib has SHA-256" in out
    assert not Path(registry.version_uri(v1, SIGNATURE_FILE)).exists()
    assert registry.load_verified(v2)[0].predict([[0]]).tolist() == [1]
    assert main(["sign-legacy", "--version", v2, *common]) == 0
    assert f"{v2}  already signed" in capsys.readouterr().out


def test_sign_legacy_never_signs_a_version_planted_in_a_signed_registry(tmp_path, registry, capsys):
    """The attack: every real version is signed; someone with bucket access plants an unsigned version
    dated 2099 holding a pickle that runs code, and hopes an operator runs sign-legacy then promote."""
    import hashlib
    import shutil

    from gated_training.cli import main

    registry, (v1, v2) = registry
    marker = tmp_path / "pwned"
    planted = "20991231T235959000000Z-0badc0de"
    folder = Path(registry.version_uri(planted))
    shutil.copytree(Path(registry.version_uri(v2)), folder)
    (folder / SIGNATURE_FILE).unlink()
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["version"] = planted
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    forge_folder(folder, marker)
    digest = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    common = ["--registry", registry.uri, "--model-name", "m"]
    assert main(["sign-legacy", *common]) == 1
    out = capsys.readouterr().out
    assert f"{planted}  refused: the registry already holds 2 signed version(s)" in out
    assert main(["sign-legacy", "--version", planted, *common]) == 1
    assert "refused: the registry already holds 2 signed version(s); check the version" in capsys.readouterr().out
    assert main(["sign-legacy", "--version", planted, "--manifest-sha256", "0" * 64, *common]) == 1
    assert f"its manifest's SHA-256 is {digest}, not the {'0' * 64} you checked" in capsys.readouterr().err
    assert not (folder / SIGNATURE_FILE).exists()
    assert main(["promote", planted, "--reason", "looks newer", *common]) == 1
    assert "the version is unsigned" in capsys.readouterr().err
    assert not marker.exists()  # nothing was unpickled
    assert registry.champion().version == v2


def test_sign_legacy_in_an_old_registry_refuses_versions_its_records_never_name(tmp_path, registry, capsys):
    from gated_training.cli import main

    registry, (v1, v2) = registry
    legacy(registry)
    stray = "20200101T000000000000Z-00000bad"
    shutil_copy = __import__("shutil").copytree
    shutil_copy(Path(registry.version_uri(v1)), Path(registry.version_uri(stray)))
    manifest = json.loads(Path(registry.version_uri(stray, MANIFEST)).read_text())
    manifest["version"] = stray
    Path(registry.version_uri(stray, MANIFEST)).write_text(json.dumps(manifest))
    assert main(["sign-legacy", "--registry", registry.uri, "--model-name", "m"]) == 1
    out = capsys.readouterr().out
    assert f"{stray}  refused: the champion pointer and its history never name it" in out
    assert f"{v1}  signed" in out and f"{v2}  signed" in out


def test_a_replayed_pointer_is_refused_by_every_reader(tmp_path, registry, capsys):
    """A genuine, signed, older pointer copied back over champion.json (pointing at a rolled-back
    version) is refused: the pointer log holds a newer generation."""
    from gated_training.cli import main
    from gated_training.serving.pod import load_served_model

    registry, (v1, v2) = registry
    older = Path(registry.root, "pointer_log", "000000000002.json").read_bytes()  # v2, before the rollback
    rollback(registry, None, "bad predictions")
    assert registry.champion().version == v1 and registry.champion().stable_version is None
    Path(registry.pointer_uri).write_bytes(older)
    with pytest.raises(
        RegistryError,
        match="generation 2 .* records generation 3: the pointer was replaced by an older "
        r"state \(a replay\)",
    ):
        registry.champion()
    assert main(["history", "--registry", registry.uri, "--model-name", "m"]) == 1
    assert "a replay" in capsys.readouterr().err
    with pytest.raises(RegistryError, match="a replay"):
        move_champion(registry, v1, "anything", "manual_promote")
    with pytest.raises(RegistryError, match="a replay"):
        load_served_model(folder=str(tmp_path), registry=registry, version=v2, manifest_sha256="0" * 64)


def test_after_a_rollback_the_rolled_back_version_may_not_serve(tmp_path, registry):
    from gated_training.serving.pod import load_served_model

    registry, (v1, v2) = registry
    assert registry.champion().stable_version == v1  # while v2 is a canary, v1 may serve as its stable side
    rollback(registry, None, "errors up")
    _, sha = registry.read_manifest(v2)
    with pytest.raises(
        RegistryError,
        match=r"neither the champion nor the stable side of its canary \(it was rolled "
        r"back\)",
    ):
        load_served_model(folder=str(tmp_path), registry=registry, version=v2, manifest_sha256=sha)


@pytest.mark.parametrize("edit", ["version", "generation", "history"])
def test_an_edited_pointer_is_refused_naming_the_file(registry, edit):
    registry, (v1, v2) = registry
    pointer = json.loads(Path(registry.pointer_uri).read_text())
    if edit == "version":
        pointer["version"] = v1  # back at the older version, unsigned by the key
    elif edit == "generation":
        pointer["generation"] = 99
    else:
        pointer["history"] = pointer["history"][:-1]
    Path(registry.pointer_uri).write_text(json.dumps(pointer))
    with pytest.raises(RegistryError, match=r"champion.json \(champion pointer\): the signature does not match"):
        registry.champion()


def test_a_pointer_signed_with_the_key_that_contradicts_its_history_is_refused(registry):
    from gated_training.registry.signing import current_signer
    from gated_training.registry.store import pointer_body

    registry, (v1, v2) = registry
    pointer = json.loads(Path(registry.pointer_uri).read_text())
    pointer["version"] = v1  # re-signed, as a key holder could: the history still ends with v2
    pointer["signature"] = current_signer().sign_payload(pointer_body(pointer))
    Path(registry.pointer_uri).write_text(json.dumps(pointer))
    with pytest.raises(RegistryError, match="the champion pointer contradicts its history"):
        registry.champion()


def test_an_unsigned_pointer_from_before_pointer_signing_is_refused_until_signed_with_its_digest(registry, capsys):
    import hashlib

    from gated_training.cli import main

    registry, (v1, v2) = registry
    pointer = json.loads(Path(registry.pointer_uri).read_text())
    for key in ("format", "generation", "previous_pointer_sha256", "stable_version", "signature"):
        pointer.pop(key)
    Path(registry.pointer_uri).write_text(json.dumps(pointer))
    with pytest.raises(RegistryError, match="the champion pointer is not signed"):
        registry.champion()
    common = ["--registry", registry.uri, "--model-name", "m"]
    assert main(["sign-legacy", "--pointer", "--pointer-sha256", "f" * 64, *common]) == 1
    assert "not the " + "f" * 64 + " you checked" in capsys.readouterr().err
    digest = hashlib.sha256(Path(registry.pointer_uri).read_bytes()).hexdigest()
    assert main(["sign-legacy", "--pointer", "--pointer-sha256", digest, *common]) == 0
    champion = registry.champion()
    assert champion.version == v2 and champion.pointer["action"] == "sign_legacy_pointer"
