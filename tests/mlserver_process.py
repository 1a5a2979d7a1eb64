"""MLServer with our verifying runtime as a loopback process: the product's own launcher
(``gated_training.serving.local_server``), which the local loop uses too."""

from gated_training.serving.local_server import SERVING_BIN, MLServer, free_port, mounted_copy

__all__ = ["MLServer", "SERVING_BIN", "free_port", "mounted_copy"]
