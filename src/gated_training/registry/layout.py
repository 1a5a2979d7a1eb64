"""Where a version keeps its files: the names the store, the serving layout and the pods agree on.

A version made for serving keeps what a server needs in ``serve/`` (``serving/layout.py`` writes it);
versions from before serving hold ``model.joblib`` at the top.
"""

from __future__ import annotations

from typing import Any

SERVE_FOLDER = "serve"
SERVED_MODEL_FILE = f"{SERVE_FOLDER}/model.joblib"
MODEL_SETTINGS_FILE = f"{SERVE_FOLDER}/model-settings.json"
SERVED_FILES = (SERVED_MODEL_FILE, MODEL_SETTINGS_FILE)
MODEL_FILE = "model.joblib"


def model_file(manifest: dict[str, Any]) -> str:
    """The manifest's model file: ``serve/model.joblib`` in versions made for serving, else ``model.joblib``."""
    return SERVED_MODEL_FILE if SERVED_MODEL_FILE in manifest.get("files", {}) else MODEL_FILE
