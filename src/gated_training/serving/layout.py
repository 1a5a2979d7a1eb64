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

import json
import platform
import re
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

from gated_training.errors import RegistryError
from gated_training.kubernetes_names import is_dns1035_label
from gated_training.registry import MODEL_SETTINGS_FILE, SERVE_FOLDER, SERVED_FILES, SERVED_MODEL_FILE

RUNTIME_CLASS = "gated_training.serving.runtime.VerifiedModel"
# What the serving pod is told, through the InferenceService's environment.
ENV_REGISTRY_URI = "GATED_TRAINING_REGISTRY_URI"
ENV_MODEL_NAME = "GATED_TRAINING_MODEL_NAME"
ENV_VERSION = "GATED_TRAINING_VERSION"
ENV_MANIFEST_SHA256 = "GATED_TRAINING_MANIFEST_SHA256"
# The libraries whose versions decide whether a pickled Pipeline loads and answers the same.
SERVING_LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "joblib", "xgboost-cpu")
# InferenceService names: a DNS-1035 label (KServe's own check), short enough for the
# "<name>-predictor-<revision>" names KServe and Knative derive from it.
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
    if not is_dns1035_label(name):  # unreachable for registry names; a guard for everything else
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
    return {
        SERVED_MODEL_FILE: model_bytes,
        MODEL_SETTINGS_FILE: (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode(),
    }


def serving_record(serving_image: str) -> dict[str, Any]:
    """The manifest's ``serving`` entry: what serves the version, and with which libraries it was verified."""
    return {
        "folder": SERVE_FOLDER,
        "files": list(SERVED_FILES),
        "protocol": "v2",
        "content_type": "pd",
        "image": serving_image,
        "verified_with": libraries(),
    }


def storage_uri(registry: Any, version: str) -> str:
    """A version's ``serve/`` folder: KServe's ``storageUri`` (``manifests.storage_uri`` accepts only gs://)."""
    return registry.version_uri(version, SERVE_FOLDER)


def check_servable(manifest: dict[str, Any], version: str) -> None:
    """A version serves only if it was published with the serving layout."""
    missing = [name for name in SERVED_FILES if name not in manifest.get("files", {})]
    if missing:
        raise RegistryError(
            f"model version {version} has no {', '.join(missing)}: it was published before the "
            "serving layout (issue 18); deploy a new version to serve it"
        )
