"""The model registry: immutable signed versions, the signed champion pointer and its log (``store``),
the version layout, signing keys, and the operations people run (history, rollback, promote, sign-legacy)."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.registry.layout import (
    MODEL_FILE,
    MODEL_SETTINGS_FILE,
    SERVE_FOLDER,
    SERVED_FILES,
    SERVED_MODEL_FILE,
    model_file,
)
from gated_training.registry.operations import cleanup, history, move_champion, rollback, sign_legacy, sync_mlflow
from gated_training.registry.signing import KEY_ENV, current_signer, ensure_local_key
from gated_training.registry.store import (
    FEATURE_METADATA_FILE,
    PROBABILITY_TOLERANCE,
    REFERENCE_PROFILE_FILE,
    SUITE_FILE,
    ChampionChangedError,
    ModelRegistry,
    check_registry_parameters,
    fitted_model,
    smoke_files,
    smoke_test,
)

__all__ = [
    "ChampionChangedError",
    "FEATURE_METADATA_FILE",
    "KEY_ENV",
    "MODEL_FILE",
    "MODEL_SETTINGS_FILE",
    "ModelRegistry",
    "PROBABILITY_TOLERANCE",
    "REFERENCE_PROFILE_FILE",
    "SERVED_FILES",
    "SERVED_MODEL_FILE",
    "SERVE_FOLDER",
    "SUITE_FILE",
    "check_registry_parameters",
    "cleanup",
    "current_signer",
    "ensure_local_key",
    "fitted_model",
    "history",
    "model_file",
    "move_champion",
    "rollback",
    "sign_legacy",
    "smoke_files",
    "smoke_test",
    "sync_mlflow",
]
