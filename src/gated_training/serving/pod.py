"""What a serving pod checks before it unpickles anything: the signed pointer names the version it was
handed (or the stable side of a canary), the manifest's signature and SHA-256 match, and the folder it
was given holds exactly the served files with their SHA-256s (``load_served_model``)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from gated_training.data import sha256_hex, storage
from gated_training.errors import RegistryError
from gated_training.registry import MODEL_SETTINGS_FILE, SERVE_FOLDER, SERVED_MODEL_FILE
from gated_training.serving.layout import check_servable


def load_served_model(
    *, folder: str, registry: Any, version: str, manifest_sha256: str
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Verify, then load, the model a serving pod was handed in ``folder`` (KServe's ``/mnt/models``).

    1. the signed champion pointer (``ModelRegistry.champion``: signature, history, no newer state in
       its log) names ``version`` with ``manifest_sha256``, or names ``version`` as its
       ``stable_version`` (the stable side of a canary: set by a forward promotion, never after a
       rollback, so a rolled-back version is refused);
    2. the manifest's signature verifies and its SHA-256 is ``manifest_sha256``;
    3. ``folder`` holds exactly the manifest's served files, each with its SHA-256;
    4. only then: ``joblib.load`` of the verified bytes, and a fitted-classifier check.
    Any failure raises :class:`RegistryError` naming what differs; nothing is unpickled.
    Returns (model, manifest, the verified model settings).

    MLServer itself must never read the folder before this ran: it imports a model's
    implementation with the model folder first on ``sys.path`` and reads ``settings.json`` from
    it, so a file planted there would run before any check. The runtime therefore starts MLServer
    on an empty folder baked into the image, with the model's settings from its environment
    (``manifests.serving_runtime``), and only this function opens ``/mnt/models``.
    """
    import joblib

    from gated_training.registry import fitted_model

    champion = registry.champion()
    if champion is None:
        raise RegistryError(
            f"{registry.pointer_uri}: no champion pointer; this pod was handed version {version}, "
            "which the registry does not name. Refusing to serve it"
        )
    stable_side = champion.stable_version == version and champion.version != version
    if not stable_side and (champion.version != version or champion.manifest_sha256 != manifest_sha256):
        after_rollback = (
            " (it was rolled back)"
            if champion.pointer.get("action") == "rollback" and champion.pointer.get("previous_version") == version
            else ""
        )
        raise RegistryError(
            f"{registry.pointer_uri}: the champion is {champion.version} (manifest SHA-256 {champion.manifest_sha256}, "
            f"generation {champion.generation}); this pod was handed {version} ({manifest_sha256}), which is neither "
            f"the champion nor the stable side of its canary{after_rollback}. Refusing to serve; "
            "`gated-training serving status` shows which is behind"
        )
    manifest, actual_sha = registry.read_manifest(version)  # the signature first
    if actual_sha != manifest_sha256:
        raise RegistryError(
            f"model version {version}: manifest SHA-256 {actual_sha} is not the {manifest_sha256} "
            "this pod was handed; refusing to load"
        )
    check_servable(manifest, version)
    root = Path(folder)
    present = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
    expected = sorted(name.split("/", 1)[1] for name in manifest["files"] if name.startswith(f"{SERVE_FOLDER}/"))
    present = [name for name in present if not name.startswith(".")]  # hidden files are never read
    if present != expected:
        raise RegistryError(
            f"{folder}: holds {present}, the manifest of {version} lists {expected} for serving; refusing to load"
        )
    contents = {}
    for name in expected:
        data = storage.read_bytes(str(root / name))
        recorded = manifest["files"][f"{SERVE_FOLDER}/{name}"]["sha256"]
        if sha256_hex(data) != recorded:
            raise RegistryError(
                f"{folder}/{name}: SHA-256 {sha256_hex(data)}, the manifest of {version} says {recorded}; "
                "the file was altered, refusing to load"
            )
        contents[name] = data
    try:
        settings = json.loads(contents["model-settings.json"])
        if not isinstance(settings, dict) or not isinstance(settings.get("parameters"), dict):
            raise ValueError("expected an object with a 'parameters' object")
    except ValueError as exc:
        raise RegistryError(f"model version {version}: unreadable {MODEL_SETTINGS_FILE}: {exc}") from exc
    model = fitted_model(
        joblib.load(io.BytesIO(contents["model.joblib"])), f"model version {version} {SERVED_MODEL_FILE}"
    )
    return model, manifest, settings
