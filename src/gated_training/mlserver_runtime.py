"""The MLServer entry point by its first name: ServingRuntimes applied by earlier pipeline versions set
``MLSERVER_MODEL_IMPLEMENTATION=gated_training.mlserver_runtime.VerifiedModel``, and a newer serving
image must still load them. The runtime itself is ``gated_training.serving.runtime``."""

from gated_training.serving.runtime import VerifiedModel

__all__ = ["VerifiedModel"]
