"""Read and write bytes at a URI: a local path or ``gs://bucket/key``.

google-cloud-storage is imported only when a ``gs://`` URI is used, so local steps do not
pay for it at start-up.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
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
    return (
        f"{uri}: no Google Cloud credentials found; set GOOGLE_APPLICATION_CREDENTIALS, or run with Workload Identity"
    )


def _size_message(uri: str, size: int, max_bytes: int) -> str:
    return (
        f"{uri}: {size:,} bytes is more than the limit of {max_bytes:,} bytes "
        f"(max_input_mb={max_bytes / 2**20:.4g}); raise the limit or split the batch"
    )


def check_local_file(uri: str, max_bytes: int | None) -> int:
    """A local input's size, after refusing what is not a regular file of at most ``max_bytes``: a FIFO,
    a device (``/dev/zero``), a socket or a directory never gets opened."""
    try:
        status = os.stat(uri)
    except FileNotFoundError as exc:
        raise DataError(f"{uri}: no such file") from exc
    except OSError as exc:
        raise DataError(f"{uri}: cannot be read: {exc.strerror}") from exc
    if stat.S_ISDIR(status.st_mode):
        raise DataError(f"{uri}: is a directory, expected a file")
    if not stat.S_ISREG(status.st_mode):
        raise DataError(
            f"{uri}: is not a regular file (a FIFO, device or socket); inputs must be regular files or gs:// objects"
        )
    if max_bytes is not None and status.st_size > max_bytes:
        raise DataError(_size_message(uri, status.st_size, max_bytes))
    return status.st_size


def iter_chunks(uri: str, *, max_bytes: int | None = None, chunk_bytes: int = 8 << 20) -> Iterator[bytes]:
    """The content at ``uri`` in chunks, with :func:`read_bytes`' checks, never held whole: the Spark
    engine's driver fingerprints and checks a file it does not load."""
    if is_gcs(uri):
        blob = gcs_blob(uri)
        try:
            blob.reload(retry=gcs_retry())
        except Exception as exc:
            raise DataError(_gcs_failure(uri, "read", exc)) from exc
        if max_bytes is not None and blob.size is not None and blob.size > max_bytes:
            raise DataError(_size_message(uri, blob.size, max_bytes))
        opened: Any = blob.open("rb", chunk_size=chunk_bytes)
    else:
        check_local_file(uri, max_bytes)
        try:
            opened = open(uri, "rb")
        except OSError as exc:
            raise DataError(f"{uri}: cannot be read: {exc.strerror}") from exc
    total = 0
    with opened as handle:
        while chunk := handle.read(chunk_bytes):
            total += len(chunk)
            if max_bytes is not None and total > max_bytes:  # it grew after the stat
                raise DataError(_size_message(uri, total, max_bytes))
            yield chunk


def read_bytes(uri: str, *, max_bytes: int | None = None) -> bytes:
    """Return the content at ``uri``: a regular file or a ``gs://`` object of at most ``max_bytes``.

    A FIFO, a device (``/dev/zero``), a socket or a directory is refused before it is opened, so
    a read never blocks forever or grows without bound. :class:`DataError` names the URI.
    """
    if is_gcs(uri):
        data, _ = read_gcs_with_generation(uri, missing_ok=False, max_bytes=max_bytes)
        assert data is not None
        return data
    check_local_file(uri, max_bytes)
    try:
        with open(uri, "rb") as handle:
            if max_bytes is None:
                data = handle.read()
            else:
                # read(n) allocates n bytes before it reads: ask for the file's size (plus one byte that shows a
                # file that grew), not the limit, then for the rest up to the limit if it did grow.
                size = os.fstat(handle.fileno()).st_size
                data = handle.read(min(size, max_bytes) + 1)
                if len(data) > size:
                    data += handle.read(max_bytes + 1 - len(data))
    except OSError as exc:
        raise DataError(f"{uri}: cannot be read: {exc.strerror}") from exc
    if max_bytes is not None and len(data) > max_bytes:  # it grew after the stat
        raise DataError(_size_message(uri, len(data), max_bytes))
    return data


def read_gcs_with_generation(
    uri: str, missing_ok: bool, max_bytes: int | None = None
) -> tuple[bytes | None, int | None]:
    """Content and generation of a GCS object, read in one request so the two belong together.

    With ``max_bytes``, the object's size is read first and a larger object is refused undownloaded.
    """
    from google.api_core import exceptions as gcs_errors
    from google.auth import exceptions as auth_errors

    blob = gcs_blob(uri)
    try:
        precondition = {}
        if max_bytes is not None:  # the size first, then exactly that generation: no unbounded download
            blob.reload(retry=gcs_retry(), timeout=REQUEST_TIMEOUT_SECONDS)
            if (blob.size or 0) > max_bytes:
                raise DataError(_size_message(uri, blob.size, max_bytes))
            precondition = {"if_generation_match": blob.generation}
        data = blob.download_as_bytes(retry=gcs_retry(), timeout=REQUEST_TIMEOUT_SECONDS, **precondition)
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
        gcs_blob(uri).upload_from_string(
            data,
            content_type=content_type,
            if_generation_match=generation,
            retry=gcs_retry(),
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise RegistryError(f"{uri}: cannot be written: a parent of it is a file, not a folder") from exc
    except OSError as exc:
        raise RegistryError(f"{path.parent}: cannot create the folder: {exc.strerror}") from exc
    if create_only and path.exists():
        raise RegistryError(f"{uri}: already exists and is immutable")
    # Write to a temp file in the same directory, then rename: readers never see half a file.
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise RegistryError(f"{uri}: cannot be written: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; files get the modes the umask allows
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
    except OSError as exc:
        hint = " (the disk is full)" if exc.errno == errno.ENOSPC else ""
        raise RegistryError(f"{uri}: cannot be written{hint}: {exc.strerror}") from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


@lru_cache(maxsize=1)
def current_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    iterator = gcs_client().list_blobs(
        bucket_name, prefix=prefix, delimiter="/", retry=gcs_retry(), timeout=REQUEST_TIMEOUT_SECONDS
    )
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


def list_files(uri: str, *, hidden: bool = False) -> list[str]:
    """Names of the files directly inside a folder/prefix, sorted.

    On a local disk a write interrupted by SIGKILL can leave its hidden temp file (``.name.*.tmp``, see
    :func:`write_bytes`); hidden names are left out unless ``hidden`` (what a clean-up deletes)."""
    if is_gcs(uri):
        blobs, prefix = _gcs_listing(uri)
        return sorted(blob.name[len(prefix) :] for blob in blobs)
    path = Path(uri)
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir() if p.is_file() and (hidden or not p.name.startswith(".")))
