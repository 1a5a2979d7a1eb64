"""Registry signatures: only a holder of the registry key can publish a version that loads.

Every version's ``manifest.json`` is signed with HMAC-SHA256 under a secret key; the signature
is ``manifest.sig`` beside it. The manifest holds every file's SHA-256, so the signature covers
the model bytes too: a writer who can rewrite a version's files *and* its manifest consistently
(anyone with write access to the bucket) still cannot make it load, because they cannot sign.

The key comes from, in order:

- ``GATED_TRAINING_REGISTRY_KEY``: the key itself (a Kubernetes secret on a cluster:
  ``make compile REGISTRY_KEY_SECRET=<name>``), at least 32 characters;
- ``GATED_TRAINING_REGISTRY_KEY_FILE``: a file holding it (``gated-training run`` creates a
  per-user key at ``~/.config/gated-training/registry.key`` for local runs).

``GATED_TRAINING_REGISTRY_UNSIGNED=1`` is the explicit unsigned mode for local experiments:
nothing is signed and nothing is verified. With neither a key nor that switch, every registry
read or write refuses, so a cluster never runs unsigned by accident.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from gated_training.errors import RegistryError

KEY_ENV = "GATED_TRAINING_REGISTRY_KEY"
KEY_FILE_ENV = "GATED_TRAINING_REGISTRY_KEY_FILE"
UNSIGNED_ENV = "GATED_TRAINING_REGISTRY_UNSIGNED"
SIGNATURE_FILE = "manifest.sig"
ALGORITHM = "hmac-sha256"
MIN_KEY_CHARS = 32
MAX_SIGNATURE_BYTES = 4096


@dataclass(frozen=True, kw_only=True)
class Signer:
    key: bytes | None  # None: explicit unsigned mode

    @property
    def key_id(self) -> str:
        """A public name for the key (not the key): tells "another key" from "forged"."""
        return hashlib.sha256(b"gated-training key id:" + (self.key or b"")).hexdigest()[:16]

    def sign(self, manifest_bytes: bytes) -> bytes | None:
        if self.key is None:
            return None
        mac = hmac.new(self.key, manifest_bytes, hashlib.sha256).hexdigest()
        return json.dumps({"format": 1, "algorithm": ALGORITHM, "key_id": self.key_id, "hmac": mac},
                          sort_keys=True).encode()

    def verify(self, where: str, manifest_bytes: bytes, signature: bytes | None) -> None:
        """Raise unless ``signature`` is this key's over ``manifest_bytes`` (no-op when unsigned)."""
        if self.key is None:
            return
        if signature is None:
            raise RegistryError(f"{where}: the version is unsigned (no {SIGNATURE_FILE}); only versions the "
                                "pipeline signed are loaded. Refusing it before unpickling anything (a version from "
                                "before signing existed: `gated-training sign-legacy`)")
        try:
            document = json.loads(signature[:MAX_SIGNATURE_BYTES])
            mac, key_id = str(document["hmac"]), str(document.get("key_id", ""))
            if document.get("algorithm") != ALGORITHM:
                raise ValueError(f"algorithm {document.get('algorithm')!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"{where}: unreadable {SIGNATURE_FILE} ({exc}); refusing the version") from exc
        expected = hmac.new(self.key, manifest_bytes, hashlib.sha256).hexdigest()
        if hmac.compare_digest(mac, expected):
            return
        if key_id and key_id != self.key_id:
            raise RegistryError(f"{where}: signed with another key (key id {key_id}, this run's key is "
                                f"{self.key_id}); refusing the version. Use the registry's key")
        raise RegistryError(f"{where}: the signature does not match the manifest: the version was altered or "
                            "forged after it was published; refusing it before unpickling anything")


def _read_key_file(path: str) -> bytes:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise RegistryError(f"{KEY_FILE_ENV}={path}: cannot read the registry key: {exc.strerror}") from exc
    return _checked(text, f"{KEY_FILE_ENV}={path}")


def _checked(text: str, where: str) -> bytes:
    if len(text) < MIN_KEY_CHARS:
        raise RegistryError(f"{where}: the registry key has {len(text)} characters; use at least {MIN_KEY_CHARS} "
                            "(e.g. `openssl rand -hex 32`)")
    return text.encode()


def current_signer() -> Signer:
    """The signer this process uses; refuses when neither a key nor the unsigned mode is set."""
    if os.environ.get(KEY_ENV, "").strip():
        return Signer(key=_checked(os.environ[KEY_ENV].strip(), KEY_ENV))
    if os.environ.get(KEY_FILE_ENV, "").strip():
        return Signer(key=_read_key_file(os.environ[KEY_FILE_ENV].strip()))
    if os.environ.get(UNSIGNED_ENV, "").strip().lower() in ("1", "true", "yes"):
        return Signer(key=None)
    raise RegistryError(
        f"no registry signing key: set {KEY_ENV} (on a cluster: `make compile REGISTRY_KEY_SECRET=<secret name>`), "
        f"or {KEY_FILE_ENV}, or {UNSIGNED_ENV}=1 for an unsigned local registry"
    )


def default_local_key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base, "gated-training", "registry.key")


def ensure_local_key() -> str | None:
    """For local runs and registry commands: when no key or unsigned mode is configured, use (and
    create on first use, mode 0600) the per-user key file, and export it to this process and the
    steps it starts. Returns the key file used, if any."""
    if any(os.environ.get(name, "").strip() for name in (KEY_ENV, KEY_FILE_ENV, UNSIGNED_ENV)):
        return None
    path = default_local_key_file()
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                pass  # another process created it first: use theirs
            else:
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(secrets.token_hex(32) + "\n")
    except OSError as exc:
        raise RegistryError(f"cannot create the local registry key {path}: {exc.strerror}; set {KEY_ENV} or "
                            f"{KEY_FILE_ENV}") from exc
    os.environ[KEY_FILE_ENV] = str(path)
    return str(path)
