"""The model registry: immutable versions plus one small champion pointer.

Layout under ``<registry_uri>/<model_name>/`` (a local folder or ``gs://bucket/prefix``)::

    versions/<version>/serve/model.joblib, serve/model-settings.json   what a server needs
                                       (registry/layout.py, serving/layout.py);
                                       older versions hold model.joblib at the top
    versions/<version>/feature_metadata.json, ...   files, written create-only
    versions/<version>/manifest.json   SHA-256 of every file; written last, so a version
                                       without a manifest is incomplete and never served
    champion.json                      the pointer: which version serves, swapped atomically
    pointer_log/<generation>.json      every pointer state, written create-only after its swap

The pointer is the source of truth for "what is deployed": it is the one object every
promotion swaps with compare-and-swap, so it can never disagree with itself; MLflow's
``champion`` alias mirrors it and can lag behind (``gated-training sync-mlflow`` repairs it).
Loading verifies every SHA-256 before ``joblib.load``: pickles are code, and only verified
bytes from this registry are unpickled. The pointer keeps the promotion history (who, when,
why, from which version), so it is audited by the same compare-and-swap that moves it.

The pointer is **signed** with the registry key (``signing.Signer.sign_payload``, inline, so one
object still swaps atomically) and chained: each state carries a ``generation`` one above the state
it replaced, that state's digest (``previous_pointer_sha256``) and the history ending in its own
promotion. Every reader (:meth:`ModelRegistry.champion`) refuses a pointer whose signature fails,
that contradicts its own history, or that is older than the newest state in ``pointer_log/``: a
copy of an earlier, genuinely signed pointer (pointing back at a rolled-back version) is a replay,
and is refused naming both generations. Whoever can delete objects can also delete log entries:
put ``pointer_log/`` under a bucket retention policy (docs/registry.md).
"""

from __future__ import annotations

import fcntl
import getpass
import io
import json
import os
import re
import signal
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import joblib
import numpy as np
import pandas as pd

from gated_training.data import json_safe, sha256_hex, storage
from gated_training.errors import DataError, RegistryError
from gated_training.registry.layout import MODEL_FILE, SERVE_FOLDER, SERVED_MODEL_FILE, model_file
from gated_training.registry.signing import MAX_SIGNATURE_BYTES, SIGNATURE_FILE, current_signer
from gated_training.run_context import check_outlives_pod

MANIFEST = "manifest.json"
POINTER = "champion.json"
SMOKE_ROWS_FILE = "smoke_rows.parquet"
SMOKE_PREDICTIONS_FILE = "smoke_predictions.json"
SMOKE_PROBABILITIES_FILE = "smoke_probabilities.json"  # per row and class, from versions made after issue 18
PROBABILITY_TOLERANCE = 1e-9
FEATURE_METADATA_FILE = "feature_metadata.json"  # inputs (the schema contract), categories, split rule
REFERENCE_PROFILE_FILE = "reference_profile.json"  # gated_training.drift.compare's profile of the training split
SUITE_FILE = "suite.json"  # the data gate's suite as it passed the batch: monitoring checks live calls with it
MANIFEST_FORMAT = 1
POINTER_FORMAT = 2  # signed, with a generation and the previous state's digest
POINTER_LOG = "pointer_log"
FORWARD_ACTIONS = ("promote", "manual_promote")  # moves after which the replaced version may still serve as stable
MAX_MANIFEST_BYTES = 8 * 2**20  # manifests and the pointer are a few KB
HISTORY_LIMIT = 200  # promotions kept in the pointer; every version's manifest stays forever
VERSION_PATTERN = re.compile(r"^\d{8}T\d{6,12}Z-[0-9a-f]{8}$")
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Test hook: SIGKILL this process at a named point of a deploy, to prove a crash loses nothing.
FAULT_POINT_ENV = "GATED_TRAINING_FAULT_POINT"


def fault_point(name: str) -> None:
    if os.environ.get(FAULT_POINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def check_registry_uri(uri: str) -> str:
    """A folder or ``gs://bucket/prefix`` with no ``..`` segment and no other scheme."""
    if not uri.strip():
        raise RegistryError("the model registry URI is empty")
    if "://" in uri and not storage.is_gcs(uri):
        raise RegistryError(f"registry URI {uri!r}: only a local folder or gs://bucket/prefix is supported")
    body = uri[len(storage.GCS_SCHEME) :] if storage.is_gcs(uri) else uri
    if ".." in re.split(r"[/\\]", body):
        raise RegistryError(f"registry URI {uri!r}: '..' path segments are not allowed")
    if storage.is_gcs(uri):
        try:
            storage.split_gcs_uri(uri)
        except DataError as exc:
            raise RegistryError(str(exc)) from exc
    return uri


def check_model_name(model_name: str) -> str:
    if not MODEL_NAME_PATTERN.match(model_name or ""):
        raise RegistryError(f"model name {model_name!r}: use letters, digits, '.', '_' and '-' (no '/' or '..')")
    return model_name


def check_registry_parameters(registry_uri: str, model_name: str) -> None:
    """Registry URIs with '..' or a foreign scheme, and model names that are paths, never reach storage."""
    from gated_training.errors import ConfigError

    for name, check, value in (
        ("registry_uri", check_registry_uri, registry_uri),
        ("model_name", check_model_name, model_name),
    ):
        try:
            check(value)
        except RegistryError as exc:
            raise ConfigError(f"parameter {name}: {exc}") from exc


def check_version(version: str) -> str:
    """Version names are generated (``20261122T190102123456Z-1a2b3c4d``): anything else, such as
    a path, is refused before it reaches a file system or a bucket."""
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise RegistryError(f"{version!r} is not a model version name (like 20261122T190102123456Z-1a2b3c4d)")
    return version


class ChampionChangedError(RegistryError):
    """The pointer moved after this run gated against it: promoting would lose that update."""


@dataclass(frozen=True, kw_only=True)
class Champion:
    version: str
    manifest_sha256: str
    pointer: dict[str, Any]
    token: str  # identifies the pointer state that was read, for compare-and-swap

    @property
    def generation(self) -> int:
        return int(self.pointer.get("generation") or 0)

    @property
    def stable_version(self) -> str | None:
        """The version this move replaced, which may keep serving as the stable side of a canary: set
        by forward promotions only, never after a rollback (the rolled-back version must not serve)."""
        return self.pointer.get("stable_version")


def pointer_body(document: dict[str, Any]) -> bytes:
    """The canonical bytes a pointer's signature and its successor's ``previous_pointer_sha256`` cover."""
    body = {key: value for key, value in document.items() if key != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def log_name(generation: int) -> str:
    return f"{generation:012d}.json"


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


def fitted_model(obj: Any, where: str) -> Any:
    """``obj`` if it is a fitted classifier (``predict`` and ``classes_``), else a clear error naming ``where``."""
    if not (hasattr(obj, "predict") and hasattr(obj, "classes_")):
        raise RegistryError(
            f"{where}: holds a {type(obj).__module__}.{type(obj).__name__}, not a fitted classifier "
            "(it has no predict and classes_); refusing to use it"
        )
    return obj


class ModelRegistry:
    def __init__(self, uri: str, model_name: str) -> None:
        check_registry_uri(uri)
        check_model_name(model_name)
        check_outlives_pod(registry_uri=uri)  # on a cluster: not inside the pod (run_context)
        self.uri = uri
        self.model_name = model_name
        self.root = storage.join_uri(uri, model_name)

    # -- the local registry never follows a link ------------------------------------
    def _no_links(self, uri: str) -> str:
        """Refuse ``uri`` when it, or any folder between the registry root and it, is a symbolic
        link: versions must be real folders inside the registry (a link could point a load at a
        pickle elsewhere, or a cleanup at files outside)."""
        if storage.is_gcs(uri):
            return uri
        relative = Path(uri).relative_to(self.uri)
        current = Path(self.uri)
        for part in relative.parts:
            current = current / part
            if current.is_symlink():
                raise RegistryError(
                    f"{current}: is a symbolic link; the registry follows no links (versions must be "
                    "real folders inside it). Refusing it"
                )
        return uri

    def preflight(self) -> None:
        """Fail at the start of a run, not at deploy: the registry root must be a folder (or absent)."""
        if storage.is_gcs(self.uri):
            return
        for path in (Path(self.uri), Path(self.root)):
            if path.exists() and not path.is_dir():
                raise RegistryError(f"registry {path}: is a file, not a folder; point registry_uri at a folder")
        parent = Path(self.uri)
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise RegistryError(f"registry {self.uri}: {parent} is a file, so the registry folder cannot be created")

    # -- paths -----------------------------------------------------------------
    def version_uri(self, version: str, filename: str = "") -> str:
        check_version(version)
        parts = ("versions", version, filename) if filename else ("versions", version)
        return storage.join_uri(self.root, *parts)

    @property
    def pointer_uri(self) -> str:
        return storage.join_uri(self.root, POINTER)

    # -- reading ---------------------------------------------------------------
    def versions(self) -> list[str]:
        names = storage.list_children(self._no_links(storage.join_uri(self.root, "versions")))
        return [name for name in names if VERSION_PATTERN.match(name)]

    def is_complete(self, version: str) -> bool:
        return MANIFEST in storage.list_files(self._no_links(self.version_uri(version)))

    def incomplete_versions(self) -> list[str]:
        """Versions a crashed deploy left without a manifest: never loaded, safe to delete."""
        return [version for version in self.versions() if not self.is_complete(version)]

    def delete_incomplete(self, version: str) -> list[str]:
        if self.is_complete(version):
            raise RegistryError(f"model version {version} is complete; only incomplete versions are deleted")
        names = storage.list_files(self._no_links(self.version_uri(version)), hidden=True)
        names += [
            f"{SERVE_FOLDER}/{name}"
            for name in storage.list_files(self._no_links(self.version_uri(version, SERVE_FOLDER)), hidden=True)
        ]
        for name in names:
            storage.delete(self._no_links(self.version_uri(version, name)))
        if not storage.is_gcs(self.root):  # GCS has no folders to remove
            if Path(self.version_uri(version, SERVE_FOLDER)).is_dir():
                Path(self.version_uri(version, SERVE_FOLDER)).rmdir()
            Path(self.version_uri(version)).rmdir()
        return names

    def read_manifest(self, version: str) -> tuple[dict[str, Any], str]:
        """The manifest and its SHA-256, its signature verified first; a version without one is incomplete."""
        try:
            raw = storage.read_bytes(self._no_links(self.version_uri(version, MANIFEST)), max_bytes=MAX_MANIFEST_BYTES)
        except DataError as exc:
            raise RegistryError(f"model version {version} has no manifest (incomplete or missing): {exc}") from exc
        try:
            signature = storage.read_bytes(
                self._no_links(self.version_uri(version, SIGNATURE_FILE)), max_bytes=MAX_SIGNATURE_BYTES
            )
        except DataError:
            signature = None
        current_signer().verify(f"model version {version}", raw, signature)
        try:
            manifest = json.loads(raw)
            if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
                raise ValueError("expected an object with a 'files' object")
        except ValueError as exc:
            raise RegistryError(f"model version {version}: unreadable manifest: {exc}") from exc
        if manifest.get("version") != version or manifest.get("model_name") != self.model_name:
            raise RegistryError(
                f"model version {version}: the manifest describes {manifest.get('model_name')} "
                f"{manifest.get('version')}; it was copied or replaced, refusing it"
            )
        return manifest, sha256_hex(raw)

    def champion(self) -> Champion | None:
        """The verified champion pointer, or None when there is none. Raises RegistryError naming the file
        when its signature fails, it contradicts its history, or the pointer log holds a newer state."""
        raw, token = self._read_pointer()
        if raw is None or token is None:  # the token exists exactly when the pointer does
            return None
        pointer = self.verify_pointer(raw)
        return Champion(
            version=pointer["version"], manifest_sha256=pointer["manifest_sha256"], pointer=pointer, token=token
        )

    def _parse_pointer(self, raw: bytes, where: str) -> dict[str, Any]:
        try:
            pointer = json.loads(raw)
            if not isinstance(pointer, dict):
                raise ValueError("expected an object")
            check_version(pointer["version"])
            if not isinstance(pointer["manifest_sha256"], str):
                raise ValueError("manifest_sha256 is not text")
        except (ValueError, KeyError, TypeError, RegistryError) as exc:
            raise RegistryError(f"{where}: unreadable champion pointer: {exc}") from exc
        return pointer

    def verify_pointer(self, raw: bytes, where: str | None = None, check_log: bool = True) -> dict[str, Any]:
        """The pointer in ``raw`` after its checks: signature, generation and history, and (``check_log``)
        that no newer state is in the pointer log."""
        where = where or self.pointer_uri
        pointer = self._parse_pointer(raw, where)
        signer = current_signer()
        if pointer.get("format") != POINTER_FORMAT:
            if signer.key is not None:
                raise RegistryError(
                    f"{where}: the champion pointer is not signed (written before pointer signing); "
                    "refusing it. Check that it names the version you expect, then sign it once with "
                    "`gated-training sign-legacy --pointer --pointer-sha256 <its SHA-256>`"
                )
            return pointer  # unsigned mode reads an old pointer as it is
        signer.verify_payload(f"{where} (champion pointer)", pointer_body(pointer), pointer.get("signature"))
        history = pointer.get("history") or []
        generation = pointer.get("generation")
        last = history[-1] if history else {}
        problems = []
        if not isinstance(generation, int) or generation < 1:
            problems.append(f"generation {generation!r} is not a positive whole number")
        elif (
            last.get("generation") != generation
            or last.get("version") != pointer["version"]
            or last.get("manifest_sha256", pointer["manifest_sha256"]) != pointer["manifest_sha256"]
        ):
            problems.append(
                f"its history ends with {last.get('action')} of {last.get('version')} (generation "
                f"{last.get('generation')}), not with generation {generation} naming {pointer['version']}"
            )
        elif generation > 1 and not pointer.get("previous_pointer_sha256"):
            problems.append("it names no previous state")
        if problems:
            raise RegistryError(
                f"{where}: the champion pointer contradicts its history ({'; '.join(problems)}); refusing it"
            )
        if check_log:
            self._check_against_log(pointer, where)
        return pointer

    def pointer_log(self) -> list[int]:
        """The generations recorded in ``pointer_log/``, ascending."""
        names = storage.list_files(self._no_links(storage.join_uri(self.root, POINTER_LOG)))
        return sorted(int(name[:-5]) for name in names if re.fullmatch(r"\d{12}\.json", name))

    def _check_against_log(self, pointer: dict[str, Any], where: str) -> None:
        generations = self.pointer_log()
        newest = generations[-1] if generations else 0
        generation = pointer["generation"]
        if newest > generation:
            raise RegistryError(
                f"{where}: the champion pointer is generation {generation} ({pointer['version']}), but "
                f"{POINTER_LOG}/{log_name(newest)} records generation {newest}: the pointer was replaced by an "
                "older state (a replay); refusing it. Restore the newest state from the log, or move the champion "
                "with `gated-training rollback --to VERSION` once the pointer is restored"
            )
        if generation - 1 in generations and pointer.get("previous_pointer_sha256"):
            previous = self._read_log(generation - 1)
            if sha256_hex(pointer_body(previous)) != pointer["previous_pointer_sha256"]:
                raise RegistryError(
                    f"{where}: generation {generation} does not follow "
                    f"{POINTER_LOG}/{log_name(generation - 1)} (its previous_pointer_sha256 differs); "
                    "refusing it"
                )

    def _read_log(self, generation: int) -> dict[str, Any]:
        uri = self._no_links(storage.join_uri(self.root, POINTER_LOG, log_name(generation)))
        try:
            raw = storage.read_bytes(uri, max_bytes=MAX_MANIFEST_BYTES)
        except DataError as exc:
            raise RegistryError(str(exc)) from exc
        return self.verify_pointer(raw, where=uri, check_log=False)

    def _append_log(self, generation: int, raw: bytes) -> None:
        """Record a pointer state, create-only (an existing entry with the same bytes is fine)."""
        uri = self._no_links(storage.join_uri(self.root, POINTER_LOG, log_name(generation)))
        try:
            storage.write_bytes(uri, raw, create_only=True)
        except RegistryError:
            try:
                if storage.read_bytes(uri, max_bytes=MAX_MANIFEST_BYTES) == raw:
                    return
            except DataError:
                pass
            raise RegistryError(
                f"{uri}: a different pointer state is already recorded for generation {generation}"
            ) from None

    def _manifest_matching(self, version: str, expected_manifest_sha256: str | None) -> dict[str, Any]:
        manifest, manifest_sha = self.read_manifest(version)
        if expected_manifest_sha256 and manifest_sha != expected_manifest_sha256:
            raise RegistryError(
                f"model version {version}: manifest SHA-256 {manifest_sha} does not match the "
                f"champion pointer's {expected_manifest_sha256}; refusing to load"
            )
        return manifest

    def _read_checked(self, version: str, name: str, expected_sha256: str) -> bytes:
        try:
            data = storage.read_bytes(self._no_links(self.version_uri(version, name)))
        except DataError as exc:
            raise RegistryError(f"model version {version}: {exc}") from exc
        actual = sha256_hex(data)
        if actual != expected_sha256:
            raise RegistryError(
                f"model version {version}: {name} has SHA-256 {actual}, manifest says "
                f"{expected_sha256}; the file was altered, refusing to load"
            )
        return data

    def is_signed(self, version: str) -> bool:
        return storage.exists(self._no_links(self.version_uri(version, SIGNATURE_FILE)))

    def sign_unsigned(self, version: str, expected_manifest_sha256: str = "") -> str:
        """Sign one complete version published before signing existed (no ``manifest.sig``), after
        checking every file against its manifest and the manifest against its own version, and, when
        ``expected_manifest_sha256`` is given, the manifest's digest against it (the operator's check).

        Which versions may be signed at all is decided by ``registry_ops.sign_legacy``; this method
        trusts the bytes as they are now. Returns what was done.
        """
        signer = current_signer()
        if signer.key is None:
            raise RegistryError(
                "signing needs a key: unset GATED_TRAINING_REGISTRY_UNSIGNED and set "
                "GATED_TRAINING_REGISTRY_KEY (or _KEY_FILE)"
            )
        manifest_uri = self._no_links(self.version_uri(version, MANIFEST))
        signature_uri = self._no_links(self.version_uri(version, SIGNATURE_FILE))
        if storage.exists(signature_uri):
            self.read_manifest(version)  # verifies the signature it has
            return "already signed"
        try:
            raw = storage.read_bytes(manifest_uri, max_bytes=MAX_MANIFEST_BYTES)
        except DataError as exc:
            raise RegistryError(f"model version {version} has no manifest (incomplete): {exc}") from exc
        if expected_manifest_sha256 and sha256_hex(raw) != expected_manifest_sha256:
            raise RegistryError(
                f"model version {version}: its manifest's SHA-256 is {sha256_hex(raw)}, not the "
                f"{expected_manifest_sha256} you checked; not signing it"
            )
        try:
            manifest = json.loads(raw)
            files = manifest["files"]
            if not isinstance(files, dict):
                raise ValueError("files is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"model version {version}: unreadable manifest ({exc}); not signing it") from exc
        if manifest.get("version") != version or manifest.get("model_name") != self.model_name:
            raise RegistryError(
                f"model version {version}: the manifest describes {manifest.get('model_name')} "
                f"{manifest.get('version')}; not signing it"
            )
        for name, entry in files.items():
            self._read_checked(version, name, entry["sha256"])
        signature = signer.sign(raw)
        assert signature is not None
        storage.write_bytes(signature_uri, signature, create_only=True)
        return "signed"

    def sign_legacy_pointer(self, expected_pointer_sha256: str) -> dict[str, Any]:
        """Replace an unsigned pointer (from before pointer signing) by a signed one naming the same
        version, after checking its bytes against the digest the operator checked and the version's
        signed manifest against the pointer. Its generation follows the pointer log (1 when there is none);
        the legacy history is kept."""
        signer = current_signer()
        if signer.key is None:
            raise RegistryError("signing needs a key: set GATED_TRAINING_REGISTRY_KEY (or _KEY_FILE)")
        with self._pointer_lock():
            raw, token = self._read_pointer()
            if raw is None:
                raise RegistryError(f"{self.pointer_uri}: there is no champion pointer to sign")
            pointer = self._parse_pointer(raw, self.pointer_uri)
            if pointer.get("format") == POINTER_FORMAT:
                self.verify_pointer(raw)
                raise RegistryError(f"{self.pointer_uri}: already signed (generation {pointer.get('generation')})")
            if sha256_hex(raw) != expected_pointer_sha256:
                raise RegistryError(
                    f"{self.pointer_uri}: its SHA-256 is {sha256_hex(raw)}, not the "
                    f"{expected_pointer_sha256} you checked; not signing it"
                )
            _, manifest_sha = self.read_manifest(pointer["version"])  # the version must be signed already
            if manifest_sha != pointer["manifest_sha256"]:
                raise RegistryError(
                    f"{self.pointer_uri}: names {pointer['version']} with manifest SHA-256 "
                    f"{pointer['manifest_sha256']}, the version's manifest is {manifest_sha}; not signing"
                )
            generation = max(self.pointer_log(), default=0) + 1
            event = {
                "version": pointer["version"],
                "action": "sign_legacy_pointer",
                "at": utc_now(),
                "by": actor(),
                "reason": "signed the pointer written before pointer signing",
                "generation": generation,
                "manifest_sha256": manifest_sha,
                "previous_version": pointer.get("previous_version"),
                "kfp_run_id": "",
            }
            history = [e for e in (pointer.get("history") or []) if isinstance(e, dict)][-(HISTORY_LIMIT - 1) :]
            # The chain continues from the newest logged state if there is a log; the legacy bytes' digest is
            # kept in the event either way.
            event["legacy_pointer_sha256"] = sha256_hex(raw)
            previous = sha256_hex(pointer_body(self._read_log(generation - 1))) if generation > 1 else sha256_hex(raw)
            signed = self._pointer_document(
                pointer["version"], manifest_sha, generation, previous, None, history + [event], event
            )
            self._write_pointer(signed, token)
            self._append_log(generation, signed)
            written: dict[str, Any] = json.loads(signed)
            return written

    def verified_files(
        self, version: str, expected_manifest_sha256: str | None = None
    ) -> tuple[dict[str, Any], dict[str, bytes]]:
        """The manifest and every file of a version, each checked against its SHA-256."""
        manifest = self._manifest_matching(version, expected_manifest_sha256)
        contents = {
            name: self._read_checked(version, name, entry["sha256"]) for name, entry in manifest["files"].items()
        }
        return manifest, contents

    def read_verified_files(
        self, version: str, names: tuple[str, ...], expected_manifest_sha256: str | None = None
    ) -> tuple[dict[str, Any], dict[str, bytes | None]]:
        """The manifest (signature verified once) and the named files of a version, each checked
        against its SHA-256; None for a file the version does not have."""
        manifest = self._manifest_matching(version, expected_manifest_sha256)
        entries = {name: manifest["files"].get(name) for name in names}
        return manifest, {
            name: self._read_checked(version, name, entry["sha256"]) if entry else None
            for name, entry in entries.items()
        }

    def load_verified_model(
        self, version: str, expected_manifest_sha256: str | None = None
    ) -> tuple[Any, dict[str, Any], dict[str, bytes]]:
        """Verify the signature, the manifest and every file's SHA-256, then unpickle the model and
        check it is a fitted classifier. Returns (model, manifest, every file's verified bytes)."""
        manifest, contents = self.verified_files(version, expected_manifest_sha256)
        name = model_file(manifest)
        if name not in contents:
            raise RegistryError(
                f"model version {version}: its manifest lists no {MODEL_FILE} (nor {SERVED_MODEL_FILE})"
            )
        model = fitted_model(joblib.load(io.BytesIO(contents[name])), f"model version {version} {name}")
        return model, manifest, contents

    def load_verified(self, version: str, expected_manifest_sha256: str | None = None) -> tuple[Any, dict[str, Any]]:
        """Verify the signature, the manifest and every file's SHA-256, then unpickle the model."""
        model, manifest, _ = self.load_verified_model(version, expected_manifest_sha256)
        return model, manifest

    # -- writing ---------------------------------------------------------------
    def publish(self, files: dict[str, bytes], manifest_fields: dict[str, Any]) -> tuple[str, str]:
        """Write a new immutable version; return (version, manifest SHA-256).

        Files first, manifest last, all create-only: a crash leaves at worst a version
        without a manifest, which is never loaded.
        """
        name = SERVED_MODEL_FILE if SERVED_MODEL_FILE in files else MODEL_FILE
        if name not in files:
            raise RegistryError(f"a model version needs {SERVED_MODEL_FILE} (or {MODEL_FILE})")
        signer = current_signer()  # before anything is written: no key, nothing published
        version = new_version_id(files[name])
        for index, (name, data) in enumerate(files.items()):
            storage.write_bytes(self.version_uri(version, name), data, create_only=True)
            if index == 0:
                fault_point("after_first_file")
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
        signature = signer.sign(manifest_bytes)
        if signature is not None:  # before the manifest, which marks the version complete
            storage.write_bytes(self.version_uri(version, SIGNATURE_FILE), signature, create_only=True)
        storage.write_bytes(self.version_uri(version, MANIFEST), manifest_bytes, create_only=True)
        fault_point("after_manifest")
        return version, sha256_hex(manifest_bytes)

    def promote(
        self,
        version: str,
        manifest_sha256: str,
        expected_token: str | None,
        reason: str,
        action: str = "promote",
        kfp_run_id: str = "",
    ) -> dict[str, Any]:
        """Point the champion at ``version`` if the pointer is still at ``expected_token``.

        ``expected_token`` is the token of the champion this run gated against (None when
        there was none). Raises :class:`ChampionChangedError` when another run moved it.
        The pointer carries the history of promotions, appended in the same swap.
        """
        check_version(version)
        with self._pointer_lock():
            raw, token = self._read_pointer()
            if token != expected_token:
                current = json.loads(raw)["version"] if raw else None
                raise ChampionChangedError(
                    f"{self.pointer_uri}: the champion changed to {current} after this run gated "
                    "against the previous one; not promoting"
                )
            previous = self.verify_pointer(raw) if raw else None
            generation = int((previous or {}).get("generation") or 0) + 1
            if raw is not None and previous is not None and previous.get("format") == POINTER_FORMAT:
                self._append_log(generation - 1, raw)  # a crash after the last swap may have left it unlogged
            event = {
                "version": version,
                "action": action,
                "at": utc_now(),
                "by": actor(),
                "reason": reason,
                "previous_version": previous["version"] if previous else None,
                "kfp_run_id": kfp_run_id,
                "generation": generation,
                "manifest_sha256": manifest_sha256,
            }
            history = ((previous or {}).get("history") or [])[-(HISTORY_LIMIT - 1) :] + [event]
            stable = previous["version"] if previous and action in FORWARD_ACTIONS else None
            document = self._pointer_document(
                version,
                manifest_sha256,
                generation,
                sha256_hex(pointer_body(previous)) if previous else None,
                stable,
                history,
                event,
            )
            fault_point("before_pointer_swap")
            self._write_pointer(document, token)
            self._append_log(generation, document)
            written: dict[str, Any] = json.loads(document)
            return written

    @staticmethod
    def _pointer_document(
        version: str,
        manifest_sha256: str,
        generation: int,
        previous_sha256: str | None,
        stable_version: str | None,
        history: list[dict[str, Any]],
        event: dict[str, Any],
    ) -> bytes:
        pointer: dict[str, Any] = {
            "format": POINTER_FORMAT,
            "version": version,
            "manifest_sha256": manifest_sha256,
            "generation": generation,
            "previous_pointer_sha256": previous_sha256,
            "stable_version": stable_version,
            "promoted_at": event["at"],
            "promoted_by": event["by"],
            "reason": event["reason"],
            "action": event["action"],
            "previous_version": event.get("previous_version"),
            "history": history,
        }
        signature = current_signer().sign_payload(pointer_body(pointer))
        if signature is not None:
            pointer["signature"] = signature
        return json.dumps(pointer, indent=2, sort_keys=True).encode()

    def read_pointer_unverified(self) -> dict[str, Any] | None:
        """The pointer document as stored, without any check: only for sign-legacy's view of a registry from
        before signing (never to decide what serves)."""
        raw, _ = self._read_pointer()
        if raw is None:
            return None
        try:
            document = json.loads(raw)
        except ValueError:
            return None
        return document if isinstance(document, dict) else None

    # -- the pointer's compare-and-swap, per backend -----------------------------
    def _read_pointer(self) -> tuple[bytes | None, str | None]:
        if storage.is_gcs(self.pointer_uri):
            try:
                data, generation = storage.read_gcs_with_generation(self.pointer_uri, missing_ok=True)
            except DataError as exc:
                raise RegistryError(str(exc)) from exc
            return data, (str(generation) if data is not None else None)
        path = Path(self._no_links(self.pointer_uri))
        if not path.exists():
            return None, None
        try:
            data = storage.read_bytes(str(path), max_bytes=MAX_MANIFEST_BYTES)
        except DataError as exc:
            raise RegistryError(str(exc)) from exc
        return data, sha256_hex(data)

    def _write_pointer(self, data: bytes, expected_token: str | None) -> None:
        """Compare-and-swap: GCS's generation precondition, or the local lock (the caller holds it)."""
        if storage.is_gcs(self.pointer_uri):
            generation = int(expected_token) if expected_token else 0
            if not storage.write_gcs_if_generation(self.pointer_uri, data, generation, "application/json"):
                raise ChampionChangedError(f"{self.pointer_uri}: the champion changed during promotion; not promoting")
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
        self._no_links(str(lock_path))
        with os.fdopen(os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o666), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def smoke_files(rows: pd.DataFrame, predictions: Any, probabilities: Any = None) -> dict[str, bytes]:
    """A few raw rows and the candidate's labels (and class probabilities) for them, stored with
    the version, so any later promotion or rollback can prove the stored bytes still answer what
    was gated."""
    buffer = io.BytesIO()
    rows.to_parquet(buffer, index=False)
    files = {
        SMOKE_ROWS_FILE: buffer.getvalue(),
        SMOKE_PREDICTIONS_FILE: json.dumps(json_safe(list(predictions))).encode(),
    }
    if probabilities is not None:
        files[SMOKE_PROBABILITIES_FILE] = json.dumps(json_safe([list(row) for row in probabilities])).encode()
    return files


def served_rows(rows: pd.DataFrame) -> list[pd.DataFrame]:
    """Each row alone, as a V2 server decodes a one-row request (``content_type: pd``): a JSON null
    arrives as ``None`` in a text column and as ``NaN`` in a numeric one. A batch can hide a
    missing-value skew (another row fills the column's type); one row at a time cannot."""
    decoded = []
    for index in range(len(rows)):
        row = rows.iloc[[index]].reset_index(drop=True)
        columns = {}
        for name in rows.columns:
            value = row[name].iloc[0]
            missing = bool(pd.isna(value)) if not isinstance(value, (list, dict)) else False
            if pd.api.types.is_numeric_dtype(rows[name]) and not pd.api.types.is_bool_dtype(rows[name]):
                columns[name] = pd.Series([np.nan if missing else value], dtype="float64")
            else:
                columns[name] = pd.Series([None if missing else value], dtype=object)
        decoded.append(pd.DataFrame(columns))
    return decoded


def _smoke_probabilities(version: str, raw: bytes, rows: int, classes: int) -> list[list[float]]:
    """The recorded probabilities: one list of ``classes`` numbers per smoke row, or a RegistryError."""
    try:
        recorded = json.loads(raw)
    except ValueError as exc:
        raise RegistryError(f"model version {version}: {SMOKE_PROBABILITIES_FILE} is not JSON ({exc})") from exc
    well_formed = (
        isinstance(recorded, list)
        and len(recorded) == rows
        and all(
            isinstance(row, list)
            and len(row) == classes
            and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in row)
            for row in recorded
        )
    )
    if not well_formed:
        raise RegistryError(
            f"model version {version}: {SMOKE_PROBABILITIES_FILE} does not hold {classes} probabilities "
            f"for each of the {rows} smoke rows; the version cannot be proven to answer as gated"
        )
    return [[float(p) for p in row] for row in recorded]


def smoke_test(registry: ModelRegistry, version: str, manifest_sha256: str | None) -> Any:
    """Load a version (every SHA-256 verified first) and check it predicts its stored smoke rows
    exactly as recorded. Returns the loaded model."""
    model, _, contents = registry.load_verified_model(version, manifest_sha256)
    if SMOKE_ROWS_FILE not in contents:
        raise RegistryError(f"model version {version} has no smoke-test rows; it cannot be proven to load and predict")
    rows = pd.read_parquet(io.BytesIO(contents[SMOKE_ROWS_FILE]))
    expected = json.loads(contents[SMOKE_PREDICTIONS_FILE])
    actual = json_safe(list(model.predict(rows)))
    if actual != expected:
        raise RegistryError(
            f"model version {version}: smoke test failed, the stored model predicts {actual[:5]}… "
            f"where it predicted {expected[:5]}… when it was gated"
        )
    if SMOKE_PROBABILITIES_FILE in contents:
        # One row per request, decoded as a serving stack decodes it: labels and probabilities must
        # be what was recorded at gate time.
        recorded = _smoke_probabilities(version, contents[SMOKE_PROBABILITIES_FILE], len(rows), len(model.classes_))
        for index, row in enumerate(served_rows(rows)):
            # One row gains nothing from a forest's worker threads, and starting them costs more
            # than the prediction (about 1.4 s → 0.5 s for 20 rows on 100 trees).
            with joblib.parallel_config(backend="sequential"):
                label = json_safe(list(model.predict(row)))[0]
                probabilities = [float(p) for p in model.predict_proba(row)[0]]
            worst = max(abs(a - b) for a, b in zip(probabilities, recorded[index]))
            if label != expected[index] or worst > PROBABILITY_TOLERANCE:
                raise RegistryError(
                    f"model version {version}: smoke row {index} sent alone, as a server decodes it, is answered "
                    f"{label} with probabilities {[round(p, 6) for p in probabilities]}, where the gate recorded "
                    f"{expected[index]} with {[round(p, 6) for p in recorded[index]]}"
                )
    return model
