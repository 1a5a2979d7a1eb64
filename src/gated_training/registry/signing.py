"""Registry signatures: only a holder of the registry key can publish a version that loads.

Every version's ``manifest.json`` is signed with HMAC-SHA256 under a secret key; the signature
is ``manifest.sig`` beside it. The manifest holds every file's SHA-256, so the signature covers
the model bytes too: a writer who can rewrite a version's files *and* its manifest consistently
(anyone with write access to the bucket) still cannot make it load, because they cannot sign.

The key comes from, in order:

- ``GATED_TRAINING_REGISTRY_KEY``: the key itself (a Kubernetes secret on a cluster:
  ``make compile REGISTRY_KEY_SECRET=<name>``);
- ``GATED_TRAINING_REGISTRY_KEY_FILE``: a file holding it, readable by its owner only (``chmod 600``;
  ``gated-training run`` creates a per-user key at ``~/.config/gated-training/registry.key`` for local runs).

A key must look random: at least 32 characters, at least 8 distinct ones, at least 2.75 bits of
empirical entropy per character (2.75) and 88 bits in all, and not one short block repeated (``aaaa…``,
``abcabc…`` and ``password`` × 4 are refused). ``openssl rand -hex 32`` makes one.

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
MIN_DISTINCT_CHARS = 8
MIN_BITS_PER_CHAR = 2.75
MIN_KEY_BITS = 88.0
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
        return json.dumps(
            {"format": 1, "algorithm": ALGORITHM, "key_id": self.key_id, "hmac": mac}, sort_keys=True
        ).encode()

    def sign_payload(self, payload: bytes) -> dict[str, str] | None:
        """An inline signature (the champion pointer carries its own), or None in unsigned mode."""
        if self.key is None:
            return None
        return {
            "algorithm": ALGORITHM,
            "key_id": self.key_id,
            "hmac": hmac.new(self.key, b"gated-training pointer:" + payload, hashlib.sha256).hexdigest(),
        }

    def verify_payload(self, where: str, payload: bytes, signature: object) -> None:
        """Raise unless ``signature`` (an inline one) is this key's over ``payload`` (no-op when unsigned)."""
        if self.key is None:
            return
        if not isinstance(signature, dict):
            raise RegistryError(
                f"{where}: not signed; only a pointer written with the registry key is trusted "
                "(a pointer from before pointer signing: `gated-training sign-legacy --pointer`)"
            )
        if signature.get("algorithm") != ALGORITHM or not isinstance(signature.get("hmac"), str):
            raise RegistryError(f"{where}: unreadable signature; refusing it")
        expected = hmac.new(self.key, b"gated-training pointer:" + payload, hashlib.sha256).hexdigest()
        if hmac.compare_digest(signature["hmac"], expected):
            return
        key_id = str(signature.get("key_id") or "")
        if key_id and key_id != self.key_id:
            raise RegistryError(
                f"{where}: signed with another key (key id {key_id}, this run's key is {self.key_id}); "
                "refusing it. Use the registry's key"
            )
        raise RegistryError(f"{where}: the signature does not match its content: it was altered or forged; refusing it")

    def verify(self, where: str, manifest_bytes: bytes, signature: bytes | None) -> None:
        """Raise unless ``signature`` is this key's over ``manifest_bytes`` (no-op when unsigned)."""
        if self.key is None:
            return
        if signature is None:
            raise RegistryError(
                f"{where}: the version is unsigned (no {SIGNATURE_FILE}); only versions the "
                "pipeline signed are loaded. Refusing it before unpickling anything (a version from "
                "before signing existed: `gated-training sign-legacy`)"
            )
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
            raise RegistryError(
                f"{where}: signed with another key (key id {key_id}, this run's key is "
                f"{self.key_id}); refusing the version. Use the registry's key"
            )
        raise RegistryError(
            f"{where}: the signature does not match the manifest: the version was altered or "
            "forged after it was published; refusing it before unpickling anything"
        )


def _read_key_file(path: str) -> bytes:
    import stat

    try:
        mode = os.stat(path).st_mode
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise RegistryError(f"{KEY_FILE_ENV}={path}: cannot read the registry key: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise RegistryError(
            f"{KEY_FILE_ENV}={path}: the registry key file is open to other users (mode "
            f"{stat.S_IMODE(mode):04o}); whoever reads it can sign a pickle the pipeline will load. "
            f"`chmod 600 {path}` (a Kubernetes secret volume: defaultMode 0400)"
        )
    return _checked(text, f"{KEY_FILE_ENV}={path}")


def key_weakness(text: str) -> str | None:
    """Why ``text`` is not a usable key (None: it is): too short, too few distinct characters, too little
    empirical entropy, or a short block repeated."""
    import math
    from collections import Counter

    if len(text) < MIN_KEY_CHARS:
        return f"the registry key has {len(text)} characters; use at least {MIN_KEY_CHARS}"
    counts = Counter(text)
    bits_per_char = abs(sum(n / len(text) * math.log2(n / len(text)) for n in counts.values()))
    if (
        len(counts) < MIN_DISTINCT_CHARS
        or bits_per_char < MIN_BITS_PER_CHAR
        or bits_per_char * len(text) < MIN_KEY_BITS
    ):
        return (
            f"the registry key is too predictable ({len(counts)} distinct characters, {bits_per_char:.1f} bits per "
            f"character, about {bits_per_char * len(text):.0f} bits in all; a key needs at least "
            f"{MIN_DISTINCT_CHARS} distinct characters, {MIN_BITS_PER_CHAR:g} bits per character and "
            f"{MIN_KEY_BITS:g} bits)"
        )
    for period in range(1, len(text) // 2 + 1):
        if len(text) % period == 0 and text == text[:period] * (len(text) // period):
            return f"the registry key is one {period}-character block repeated"
    return None


def _checked(text: str, where: str) -> bytes:
    weakness = key_weakness(text)
    if weakness:
        raise RegistryError(f"{where}: {weakness}; generate one with `openssl rand -hex 32`")
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
        raise RegistryError(
            f"cannot create the local registry key {path}: {exc.strerror}; set {KEY_ENV} or {KEY_FILE_ENV}"
        ) from exc
    os.environ[KEY_FILE_ENV] = str(path)
    return str(path)
