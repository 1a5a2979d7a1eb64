"""Read and write bytes at a URI: a local path or ``gs://bucket/key``.

google-cloud-storage is imported only when a ``gs://`` URI is used, so local steps do not
pay for it at start-up.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from gated_training.errors import DataError, RegistryError

GCS_SCHEME = "gs://"


def is_gcs(uri: str) -> bool:
    return uri.startswith(GCS_SCHEME)


def split_gcs_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` → ``("bucket", "a/b")``."""
    without_scheme = uri[len(GCS_SCHEME) :]
    bucket, _, key = without_scheme.partition("/")
    if not bucket:
        raise DataError(f"{uri!r} is not a valid gs:// URI: it names no bucket")
    return bucket, key


def join_uri(base: str, *parts: str) -> str:
    if is_gcs(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(base, *parts))


@lru_cache(maxsize=1)
def gcs_client() -> Any:
    from google.cloud import storage  # deferred: only gs:// users pay for the import

    return storage.Client()


def gcs_blob(uri: str) -> Any:
    bucket_name, key = split_gcs_uri(uri)
    return gcs_client().bucket(bucket_name).blob(key)


def read_bytes(uri: str) -> bytes:
    """Return the content at ``uri``; :class:`DataError` names the URI when it is missing."""
    if is_gcs(uri):
        from google.api_core import exceptions as gcs_errors
        from google.auth import exceptions as auth_errors

        try:
            return gcs_blob(uri).download_as_bytes()
        except gcs_errors.NotFound as exc:
            raise DataError(f"{uri}: no such object or bucket ({exc.message})") from exc
        except auth_errors.DefaultCredentialsError as exc:
            raise DataError(
                f"{uri}: no Google Cloud credentials found; set GOOGLE_APPLICATION_CREDENTIALS, "
                "or run with Workload Identity"
            ) from exc
        except gcs_errors.GoogleAPIError as exc:
            raise DataError(f"{uri}: cannot read from GCS: {exc}") from exc
    path = Path(uri)
    if not path.exists():
        raise DataError(f"{uri}: no such file")
    if path.is_dir():
        raise DataError(f"{uri}: is a directory, expected a file")
    return path.read_bytes()


def write_bytes(uri: str, data: bytes, *, create_only: bool = False) -> None:
    """Write ``data`` to ``uri`` atomically.

    With ``create_only`` an existing object is never overwritten: the write fails with
    :class:`RegistryError` instead (GCS precondition ``if_generation_match=0``).
    """
    if is_gcs(uri):
        from google.api_core import exceptions as gcs_errors

        try:
            gcs_blob(uri).upload_from_string(
                data, if_generation_match=0 if create_only else None
            )
        except gcs_errors.PreconditionFailed as exc:
            raise RegistryError(f"{uri}: already exists and is immutable") from exc
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    if create_only and path.exists():
        raise RegistryError(f"{uri}: already exists and is immutable")
    # Write to a temp file in the same directory, then rename: readers never see half a file.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        if create_only:
            os.link(tmp_name, path)  # fails if path appeared meanwhile: no overwrite
        else:
            os.replace(tmp_name, path)
    except FileExistsError as exc:
        raise RegistryError(f"{uri}: already exists and is immutable") from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def exists(uri: str) -> bool:
    if is_gcs(uri):
        return bool(gcs_blob(uri).exists())
    return Path(uri).exists()


def list_children(uri: str) -> list[str]:
    """Names of the immediate children of a folder/prefix, sorted."""
    if is_gcs(uri):
        bucket_name, prefix = split_gcs_uri(uri)
        prefix = prefix.rstrip("/") + "/"
        iterator = gcs_client().list_blobs(bucket_name, prefix=prefix, delimiter="/")
        names = {blob.name[len(prefix) :] for blob in iterator}
        names.update(p[len(prefix) :].rstrip("/") for p in iterator.prefixes)
        return sorted(n for n in names if n)
    path = Path(uri)
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
