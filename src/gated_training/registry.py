"""The model registry: immutable versions plus one small champion pointer.

Layout under ``<registry_uri>/<model_name>/`` (a local folder or ``gs://bucket/prefix``)::

    versions/<version>/model.joblib, feature_metadata.json, ...   files, written create-only
    versions/<version>/manifest.json   SHA-256 of every file; written last, so a version
                                       without a manifest is incomplete and never served
    champion.json                      the pointer: which version serves, swapped atomically

The pointer is the source of truth for "what is deployed"; MLflow's ``champion`` alias
mirrors it. Loading verifies every SHA-256 before ``joblib.load``: pickles are code, and only
verified bytes from this registry are unpickled.
"""

from __future__ import annotations

import fcntl
import getpass
import io
import json
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import joblib

from gated_training import storage
from gated_training.data import sha256_hex
from gated_training.errors import DataError, RegistryError

MANIFEST = "manifest.json"
POINTER = "champion.json"
MODEL_FILE = "model.joblib"
MANIFEST_FORMAT = 1


class ChampionChangedError(RegistryError):
    """The pointer moved after this run gated against it: promoting would lose that update."""


@dataclass(frozen=True)
class Champion:
    version: str
    manifest_sha256: str
    pointer: dict[str, Any]
    token: str  # identifies the pointer state that was read, for compare-and-swap


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def new_version_id(model_bytes: bytes) -> str:
    """Sortable by time, unique by content: ``20261122T190102Z-1a2b3c4d``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{sha256_hex(model_bytes)[:8]}"


class ModelRegistry:
    def __init__(self, uri: str, model_name: str) -> None:
        if not uri.strip():
            raise RegistryError("the model registry URI is empty")
        if not model_name or "/" in model_name or model_name.startswith("."):
            raise RegistryError(f"model name {model_name!r} must be a non-empty name without '/'")
        self.uri = uri
        self.model_name = model_name
        self.root = storage.join_uri(uri, model_name)

    # -- paths -----------------------------------------------------------------
    def version_uri(self, version: str, filename: str = "") -> str:
        parts = ("versions", version, filename) if filename else ("versions", version)
        return storage.join_uri(self.root, *parts)

    @property
    def pointer_uri(self) -> str:
        return storage.join_uri(self.root, POINTER)

    # -- reading ---------------------------------------------------------------
    def versions(self) -> list[str]:
        return storage.list_children(storage.join_uri(self.root, "versions"))

    def read_manifest(self, version: str) -> tuple[dict[str, Any], str]:
        """The manifest and its SHA-256; a version without one is incomplete."""
        try:
            raw = storage.read_bytes(self.version_uri(version, MANIFEST))
        except DataError as exc:
            raise RegistryError(f"model version {version} has no manifest (incomplete or missing): {exc}") from exc
        return json.loads(raw), sha256_hex(raw)

    def champion(self) -> Champion | None:
        raw, token = self._read_pointer()
        if raw is None:
            return None
        try:
            pointer = json.loads(raw)
            return Champion(pointer["version"], pointer["manifest_sha256"], pointer, token)
        except (ValueError, KeyError) as exc:
            raise RegistryError(f"{self.pointer_uri}: unreadable champion pointer: {exc}") from exc

    def load_verified(self, version: str, expected_manifest_sha256: str | None = None) -> tuple[Any, dict[str, Any]]:
        """Verify the manifest and every file's SHA-256, then unpickle the model."""
        manifest, manifest_sha = self.read_manifest(version)
        if expected_manifest_sha256 and manifest_sha != expected_manifest_sha256:
            raise RegistryError(
                f"model version {version}: manifest SHA-256 {manifest_sha} does not match the "
                f"champion pointer's {expected_manifest_sha256}; refusing to load"
            )
        contents: dict[str, bytes] = {}
        for name, entry in manifest["files"].items():
            try:
                data = storage.read_bytes(self.version_uri(version, name))
            except DataError as exc:
                raise RegistryError(f"model version {version}: {exc}") from exc
            actual = sha256_hex(data)
            if actual != entry["sha256"]:
                raise RegistryError(
                    f"model version {version}: {name} has SHA-256 {actual}, manifest says "
                    f"{entry['sha256']}; the file was altered, refusing to load"
                )
            contents[name] = data
        return joblib.load(io.BytesIO(contents[MODEL_FILE])), manifest

    # -- writing ---------------------------------------------------------------
    def publish(self, files: dict[str, bytes], manifest_fields: dict[str, Any]) -> tuple[str, str]:
        """Write a new immutable version; return (version, manifest SHA-256).

        Files first, manifest last, all create-only: a crash leaves at worst a version
        without a manifest, which is never loaded.
        """
        if MODEL_FILE not in files:
            raise RegistryError(f"a model version needs {MODEL_FILE}")
        version = new_version_id(files[MODEL_FILE])
        for name, data in files.items():
            storage.write_bytes(self.version_uri(version, name), data, create_only=True)
        manifest = {
            "format": MANIFEST_FORMAT,
            "model_name": self.model_name,
            "version": version,
            "created_at": utc_now(),
            "created_by": actor(),
            "files": {name: {"sha256": sha256_hex(data), "bytes": len(data)} for name, data in files.items()},
            **manifest_fields,
        }
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
        storage.write_bytes(self.version_uri(version, MANIFEST), manifest_bytes, create_only=True)
        return version, sha256_hex(manifest_bytes)

    def promote(self, version: str, manifest_sha256: str, expected_token: str | None, reason: str) -> dict[str, Any]:
        """Point the champion at ``version`` if the pointer is still at ``expected_token``.

        ``expected_token`` is the token of the champion this run gated against (None when
        there was none). Raises :class:`ChampionChangedError` when another run moved it.
        """
        with self._pointer_lock():
            raw, token = self._read_pointer()
            if token != expected_token:
                current = json.loads(raw)["version"] if raw else None
                raise ChampionChangedError(
                    f"{self.pointer_uri}: the champion changed to {current} after this run gated "
                    "against the previous one; not promoting"
                )
            previous = json.loads(raw) if raw else None
            pointer = {
                "version": version,
                "manifest_sha256": manifest_sha256,
                "promoted_at": utc_now(),
                "promoted_by": actor(),
                "reason": reason,
                "previous_version": previous["version"] if previous else None,
            }
            self._write_pointer(json.dumps(pointer, indent=2, sort_keys=True).encode(), token)
            return pointer

    # -- the pointer's compare-and-swap, per backend -----------------------------
    def _read_pointer(self) -> tuple[bytes | None, str | None]:
        if storage.is_gcs(self.pointer_uri):
            blob = storage.gcs_blob(self.pointer_uri)
            from google.api_core import exceptions as gcs_errors

            try:
                data = blob.download_as_bytes()
            except gcs_errors.NotFound:
                return None, None
            return data, str(blob.generation)
        path = Path(self.pointer_uri)
        if not path.exists():
            return None, None
        data = path.read_bytes()
        return data, sha256_hex(data)

    def _write_pointer(self, data: bytes, expected_token: str | None) -> None:
        if storage.is_gcs(self.pointer_uri):
            from google.api_core import exceptions as gcs_errors

            generation = int(expected_token) if expected_token else 0
            try:
                storage.gcs_blob(self.pointer_uri).upload_from_string(
                    data, content_type="application/json", if_generation_match=generation
                )
            except gcs_errors.PreconditionFailed as exc:
                raise ChampionChangedError(f"{self.pointer_uri}: the champion changed during promotion") from exc
            return
        storage.write_bytes(self.pointer_uri, data)  # atomic rename, under the lock

    @contextmanager
    def _pointer_lock(self) -> Iterator[None]:
        """Serialise local promotions; GCS relies on its generation precondition instead."""
        if storage.is_gcs(self.pointer_uri):
            yield
            return
        lock_path = Path(self.root, ".champion.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
