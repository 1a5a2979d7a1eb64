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


# GCS retry policy: google-cloud-storage's own DEFAULT_RETRY (429, 5xx, dropped connections;
# exponential backoff 1 s → 30 s) with a total budget. Registry writes carry a generation
# precondition, so a retry never overwrites. GATED_TRAINING_GCS_RETRY_SECONDS changes the budget.
RETRY_BUDGET_ENV = "GATED_TRAINING_GCS_RETRY_SECONDS"
DEFAULT_RETRY_BUDGET_SECONDS = 120.0
REQUEST_TIMEOUT_SECONDS = 60.0


@lru_cache(maxsize=1)
def gcs_client() -> Any:
    from google.cloud import storage  # deferred: only gs:// users pay for the import

    return storage.Client()


def gcs_retry() -> Any:
    from google.cloud.storage.retry import DEFAULT_RETRY

    budget = float(os.environ.get(RETRY_BUDGET_ENV) or DEFAULT_RETRY_BUDGET_SECONDS)
    return DEFAULT_RETRY.with_delay(initial=1.0, maximum=30.0, multiplier=2.0).with_timeout(budget)


def gcs_blob(uri: str) -> Any:
    bucket_name, key = split_gcs_uri(uri)
    return gcs_client().bucket(bucket_name).blob(key)


def _gcs_failure(uri: str, action: str, exc: Exception) -> str:
    from google.api_core import exceptions as gcs_errors

    if isinstance(exc, gcs_errors.RetryError):
        cause = exc.cause or exc
        budget = os.environ.get(RETRY_BUDGET_ENV) or DEFAULT_RETRY_BUDGET_SECONDS
        return f"{uri}: cannot {action} GCS: still failing after retrying for {budget} s (last error: {cause})"
    return f"{uri}: cannot {action} GCS: {exc}"


def _credentials_message(uri: str) -> str:
    return f"{uri}: no Google Cloud credentials found; set GOOGLE_APPLICATION_CREDENTIALS, or run with Workload Identity"


def read_bytes(uri: str) -> bytes:
    """Return the content at ``uri``; :class:`DataError` names the URI when it is missing."""
    if is_gcs(uri):
        data, _ = read_gcs_with_generation(uri, missing_ok=False)
        assert data is not None
        return data
    path = Path(uri)
    if not path.exists():
        raise DataError(f"{uri}: no such file")
    if path.is_dir():
        raise DataError(f"{uri}: is a directory, expected a file")
    return path.read_bytes()


def read_gcs_with_generation(uri: str, missing_ok: bool) -> tuple[bytes | None, int | None]:
    """Content and generation of a GCS object, read in one request so the two belong together."""
    from google.api_core import exceptions as gcs_errors
    from google.auth import exceptions as auth_errors

    blob = gcs_blob(uri)
    try:
        data = blob.download_as_bytes(retry=gcs_retry(), timeout=REQUEST_TIMEOUT_SECONDS)
    except gcs_errors.NotFound as exc:
        if missing_ok:
            return None, None
        raise DataError(f"{uri}: no such object or bucket ({exc.message})") from exc
    except auth_errors.DefaultCredentialsError as exc:
        raise DataError(_credentials_message(uri)) from exc
    except (gcs_errors.GoogleAPIError, ConnectionError) as exc:
        raise DataError(_gcs_failure(uri, "read from", exc)) from exc
    return data, blob.generation


def write_gcs_if_generation(uri: str, data: bytes, generation: int, content_type: str) -> bool:
    """Write only if the object is at ``generation`` (0: absent). False if it is not.

    A retried request whose first attempt landed but whose answer was lost also sees the
    precondition fail: when the object now holds exactly ``data``, that was our own write.
    """
    from google.api_core import exceptions as gcs_errors
    from google.auth import exceptions as auth_errors

    try:
        gcs_blob(uri).upload_from_string(data, content_type=content_type, if_generation_match=generation,
                                         retry=gcs_retry(), timeout=REQUEST_TIMEOUT_SECONDS)
        return True
    except gcs_errors.PreconditionFailed:
        current, _ = read_gcs_with_generation(uri, missing_ok=True)
        return current == data
    except auth_errors.DefaultCredentialsError as exc:
        raise RegistryError(_credentials_message(uri)) from exc
    except (gcs_errors.GoogleAPIError, ConnectionError) as exc:
        raise RegistryError(_gcs_failure(uri, "write to", exc)) from exc


def write_bytes(uri: str, data: bytes, *, create_only: bool = False) -> None:
    """Write ``data`` to ``uri`` atomically.

    With ``create_only`` an existing object is never overwritten: the write fails with
    :class:`RegistryError` instead (GCS precondition ``if_generation_match=0``).
    """
    if is_gcs(uri):
        if create_only:
            if not write_gcs_if_generation(uri, data, 0, "application/octet-stream"):
                raise RegistryError(f"{uri}: already exists and is immutable")
            return
        from google.api_core import exceptions as gcs_errors

        try:  # a plain overwrite (suite drafts) of the same bytes: safe to retry too
            gcs_blob(uri).upload_from_string(data, retry=gcs_retry(), timeout=REQUEST_TIMEOUT_SECONDS)
        except (gcs_errors.GoogleAPIError, ConnectionError) as exc:
            raise RegistryError(_gcs_failure(uri, "write to", exc)) from exc
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
        return bool(gcs_blob(uri).exists(retry=gcs_retry(), timeout=REQUEST_TIMEOUT_SECONDS))
    return Path(uri).exists()


def delete(uri: str) -> None:
    if is_gcs(uri):
        from google.api_core import exceptions as gcs_errors

        try:
            gcs_blob(uri).delete(retry=gcs_retry(), timeout=REQUEST_TIMEOUT_SECONDS)
        except gcs_errors.NotFound:
            pass
        return
    Path(uri).unlink(missing_ok=True)


def _gcs_listing(uri: str) -> tuple[Any, str]:
    """One level of a GCS prefix (delimiter "/"), and the prefix its names are relative to."""
    bucket_name, prefix = split_gcs_uri(uri)
    prefix = prefix.rstrip("/") + "/"
    iterator = gcs_client().list_blobs(bucket_name, prefix=prefix, delimiter="/", retry=gcs_retry(),
                                       timeout=REQUEST_TIMEOUT_SECONDS)
    return iterator, prefix


def list_children(uri: str) -> list[str]:
    """Names of the immediate children of a folder/prefix, sorted."""
    if is_gcs(uri):
        iterator, prefix = _gcs_listing(uri)
        names = {blob.name[len(prefix) :] for blob in iterator}
        names.update(p[len(prefix) :].rstrip("/") for p in iterator.prefixes)
        return sorted(n for n in names if n)
    path = Path(uri)
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir() if not p.name.startswith("."))


def list_files(uri: str) -> list[str]:
    """Names of the files directly inside a folder/prefix, sorted."""
    if is_gcs(uri):
        blobs, prefix = _gcs_listing(uri)
        return sorted(blob.name[len(prefix):] for blob in blobs)
    path = Path(uri)
    return sorted(p.name for p in path.iterdir() if p.is_file()) if path.is_dir() else []
