"""What a registry version needs to be served, and the checks a serving pod runs before unpickling.

A version made by deploy-model keeps what a server needs in its ``serve/`` subfolder::

    versions/<version>/serve/model.joblib          the fitted Pipeline (the version's only model file)
    versions/<version>/serve/model-settings.json   MLServer's settings: name, our verifying runtime,
                                                   content_type "pd" (columnar V2 requests)
    versions/<version>/manifest.json               lists both with their SHA-256, plus ``serving``:
                                                   the library versions and serving image verified

The InferenceService's ``storageUri`` is that subfolder, so KServe's storage initializer copies
only these two files into the pod: the raw training values (``reference_profile.json``, the smoke
rows) never reach a serving pod. Inside the pod, :func:`load_served_model` trusts nothing it was
handed: the champion pointer must name the version (or, while a canary runs, have just replaced
it), the manifest's signature and SHA-256 must match, and every served file's SHA-256 must match
the manifest, all before ``joblib.load``.

This module imports neither MLServer nor Kubernetes: the runtime class (``mlserver_runtime.py``)
and the serve-model step call it.
"""

from __future__ import annotations

import io
import json
import platform
import re
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path
from typing import Any

from gated_training import storage
from gated_training.data import sha256_hex
from gated_training.errors import RegistryError

SERVE_FOLDER = "serve"
SERVED_MODEL_FILE = f"{SERVE_FOLDER}/model.joblib"
MODEL_SETTINGS_FILE = f"{SERVE_FOLDER}/model-settings.json"
SERVED_FILES = (SERVED_MODEL_FILE, MODEL_SETTINGS_FILE)
RUNTIME_CLASS = "gated_training.mlserver_runtime.VerifiedModel"
# What the serving pod is told, through the InferenceService's environment.
ENV_REGISTRY_URI = "GATED_TRAINING_REGISTRY_URI"
ENV_MODEL_NAME = "GATED_TRAINING_MODEL_NAME"
ENV_VERSION = "GATED_TRAINING_VERSION"
ENV_MANIFEST_SHA256 = "GATED_TRAINING_MANIFEST_SHA256"
# The libraries whose versions decide whether a pickled Pipeline loads and answers the same.
SERVING_LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "joblib")
# InferenceService names: a DNS-1035 label (KServe's own check), short enough for the
# "<name>-predictor-<revision>" names KServe and Knative derive from it.
SERVICE_NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_SERVICE_NAME = 45
MAX_SETTINGS_BYTES = 64 * 2**10


def service_name(model_name: str) -> str:
    """The InferenceService (and MLServer model) name for a registry model name.

    Registry names may hold upper case, dots and underscores or start with a digit
    (``Credit_Model.v2``); Kubernetes names may not. The mapping is lower case, every other
    character a hyphen, ``m-`` before a leading digit, at most 45 characters. Two registry names
    can map to one service name: the InferenceService records its registry model
    (``gated-training/registry-model``) and serve-model refuses another model's service."""
    name = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", model_name.lower())).strip("-")
    if not name[:1].isalpha():
        name = f"m-{name}"
    name = name[:MAX_SERVICE_NAME].rstrip("-")
    if not SERVICE_NAME_PATTERN.match(name):  # unreachable for registry names; a guard for everything else
        raise RegistryError(f"model name {model_name!r} maps to {name!r}, not a DNS-1035 label")
    return name


def libraries() -> dict[str, str]:
    """The Python and library versions of this process."""
    found = {"python": platform.python_version()}
    for name in SERVING_LIBRARIES:
        try:
            found[name] = package_version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def model_settings(model_name: str) -> dict[str, Any]:
    """MLServer's model-settings.json: our verifying runtime, columnar (``pd``) requests. The registry
    version is not in it (it is named after the bytes being published); the pod is told the version
    through its environment and checks it against the pointer and the manifest."""
    return {
        "name": service_name(model_name),
        "implementation": RUNTIME_CLASS,
        "parameters": {"uri": "./model.joblib", "content_type": "pd", "extra": {"registry_model_name": model_name}},
    }


def serving_files(model_bytes: bytes, model_name: str) -> dict[str, bytes]:
    """The files of the ``serve/`` folder."""
    settings = model_settings(model_name)
    return {SERVED_MODEL_FILE: model_bytes,
            MODEL_SETTINGS_FILE: (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode()}


def serving_record(serving_image: str) -> dict[str, Any]:
    """The manifest's ``serving`` entry: what serves the version, and with which libraries it was verified."""
    return {"folder": SERVE_FOLDER, "files": list(SERVED_FILES), "protocol": "v2", "content_type": "pd",
            "image": serving_image, "verified_with": libraries()}


def model_file(manifest: dict[str, Any]) -> str:
    """The manifest's model file: ``serve/model.joblib`` in versions made for serving, else ``model.joblib``."""
    return SERVED_MODEL_FILE if SERVED_MODEL_FILE in manifest.get("files", {}) else "model.joblib"


def storage_uri(registry: Any, version: str) -> str:
    """A version's ``serve/`` folder: KServe's ``storageUri`` (``kserve.storage_uri`` accepts only gs://)."""
    return registry.version_uri(version, SERVE_FOLDER)


def check_servable(manifest: dict[str, Any], version: str) -> None:
    """A version serves only if it was published with the serving layout."""
    missing = [name for name in SERVED_FILES if name not in manifest.get("files", {})]
    if missing:
        raise RegistryError(f"model version {version} has no {', '.join(missing)}: it was published before the "
                            "serving layout (issue 18); deploy a new version to serve it")


def load_served_model(*, folder: str, registry: Any, version: str, manifest_sha256: str
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
    (``kserve.serving_runtime``), and only this function opens ``/mnt/models``.
    """
    import joblib

    from gated_training.registry import fitted_model

    champion = registry.champion()
    if champion is None:
        raise RegistryError(f"{registry.pointer_uri}: no champion pointer; this pod was handed version {version}, "
                            "which the registry does not name. Refusing to serve it")
    stable_side = champion.stable_version == version and champion.version != version
    if not stable_side and (champion.version != version or champion.manifest_sha256 != manifest_sha256):
        after_rollback = (" (it was rolled back)" if champion.pointer.get("action") == "rollback"
                          and champion.pointer.get("previous_version") == version else "")
        raise RegistryError(
            f"{registry.pointer_uri}: the champion is {champion.version} (manifest SHA-256 {champion.manifest_sha256}, "
            f"generation {champion.generation}); this pod was handed {version} ({manifest_sha256}), which is neither "
            f"the champion nor the stable side of its canary{after_rollback}. Refusing to serve; "
            "`gated-training serving status` shows which is behind")
    manifest, actual_sha = registry.read_manifest(version)  # the signature first
    if actual_sha != manifest_sha256:
        raise RegistryError(f"model version {version}: manifest SHA-256 {actual_sha} is not the {manifest_sha256} "
                            "this pod was handed; refusing to load")
    check_servable(manifest, version)
    root = Path(folder)
    present = sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())
    expected = sorted(name.split("/", 1)[1] for name in manifest["files"] if name.startswith(f"{SERVE_FOLDER}/"))
    present = [name for name in present if not name.startswith(".")]  # hidden files are never read
    if present != expected:
        raise RegistryError(f"{folder}: holds {present}, the manifest of {version} lists {expected} for serving; "
                            "refusing to load")
    contents = {}
    for name in expected:
        data = storage.read_bytes(str(root / name))
        recorded = manifest["files"][f"{SERVE_FOLDER}/{name}"]["sha256"]
        if sha256_hex(data) != recorded:
            raise RegistryError(f"{folder}/{name}: SHA-256 {sha256_hex(data)}, the manifest of {version} says {recorded}; "
                                "the file was altered, refusing to load")
        contents[name] = data
    try:
        settings = json.loads(contents["model-settings.json"])
        if not isinstance(settings, dict) or not isinstance(settings.get("parameters"), dict):
            raise ValueError("expected an object with a 'parameters' object")
    except ValueError as exc:
        raise RegistryError(f"model version {version}: unreadable {MODEL_SETTINGS_FILE}: {exc}") from exc
    model = fitted_model(joblib.load(io.BytesIO(contents["model.joblib"])), f"model version {version} {SERVED_MODEL_FILE}")
    return model, manifest, settings
