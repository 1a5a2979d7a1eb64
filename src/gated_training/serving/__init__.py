"""Serving the champion with KServe: the version's serving layout, KServe's manifests and API client, the
pod's checks before it unpickles (``pod``), and the one rollout (``rollout``). The MLServer runtime
(``runtime``) is imported only inside the serving image."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.serving import layout, local_server, manifests, rollout
from gated_training.serving.client import KServeClient
from gated_training.serving.layout import service_name, serving_files, serving_record
from gated_training.serving.manifests import MODE_NAMES, mode_of

__all__ = [
    "KServeClient",
    "MODE_NAMES",
    "layout",
    "local_server",
    "manifests",
    "mode_of",
    "rollout",
    "service_name",
    "serving_files",
    "serving_record",
]
