import pytest
from google.api_core import exceptions as gcs_errors
from google.auth import exceptions as auth_errors

from gated_training.data import storage
from gated_training.errors import DataError, RegistryError


class FakeBlob:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def download_as_bytes(self, **request_options) -> bytes:
        raise self.error


class FakeClient:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def bucket(self, name):
        return type("Bucket", (), {"blob": lambda _self, key: FakeBlob(self.error)})()


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            gcs_errors.NotFound("The specified bucket does not exist."),
            r"gs://nobucket/d\.csv: no such object or bucket",
        ),
        (auth_errors.DefaultCredentialsError("none"), r"gs://nobucket/d\.csv: no Google Cloud credentials found"),
        (gcs_errors.Forbidden("denied"), r"gs://nobucket/d\.csv: cannot read from GCS: 403 denied"),
    ],
)
def test_gcs_read_errors_name_the_uri(monkeypatch, error, message):
    monkeypatch.setattr(storage, "gcs_client", lambda: FakeClient(error))
    with pytest.raises(DataError, match=message):
        storage.read_bytes("gs://nobucket/d.csv")


def test_gcs_uri_parsing_and_joining():
    assert storage.split_gcs_uri("gs://bucket/a/b.csv") == ("bucket", "a/b.csv")
    assert storage.join_uri("gs://bucket/reg/", "m", "champion.json") == "gs://bucket/reg/m/champion.json"
    with pytest.raises(DataError, match="names no bucket"):
        storage.split_gcs_uri("gs:///key")


def test_local_writes_are_atomic_and_create_only_is_enforced(tmp_path):
    target = str(tmp_path / "deep" / "file.bin")
    storage.write_bytes(target, b"one")
    storage.write_bytes(target, b"two")
    assert storage.read_bytes(target) == b"two"
    with pytest.raises(RegistryError, match="already exists and is immutable"):
        storage.write_bytes(target, b"three", create_only=True)
    assert storage.read_bytes(target) == b"two"
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["file.bin"]  # no temp files left behind
    with pytest.raises(DataError, match="is a directory"):
        storage.read_bytes(str(tmp_path))


def test_written_files_follow_the_umask(tmp_path):
    import os

    previous = os.umask(0o022)
    storage.current_umask.cache_clear()
    try:
        storage.write_bytes(str(tmp_path / "a.json"), b"{}")
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        storage.current_umask.cache_clear()
        storage.write_bytes(str(tmp_path / "b.json"), b"{}", create_only=True)
        assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(previous)
        storage.current_umask.cache_clear()


def test_a_full_disk_names_the_file(tmp_path, monkeypatch):
    import errno
    import os

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "registry" / "m" / "champion.json"
    with pytest.raises(RegistryError, match=rf"{target}: cannot be written \(the disk is full\): No space left"):
        storage.write_bytes(str(target), b"x")
    assert not target.exists() and [p.name for p in target.parent.iterdir()] == []  # no temp file left behind
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RegistryError, match="a parent of it is a file, not a folder"):
        storage.write_bytes(str(blocker / "sub" / "x.json"), b"x")
