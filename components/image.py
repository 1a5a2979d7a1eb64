"""The one runtime image every component runs in, chosen at compile time.

``IMAGE`` (set by ``make compile IMAGE=...``) may be a tag or a digest
(``registry/name@sha256:...``). Nothing is pip-installed when a pod starts.
"""

import os

from gated_training import __version__

# The tag make image builds locally: the package version (pyproject.toml), as the Makefile's IMAGE default.
DEFAULT_IMAGE = f"localhost/kfp-gated-training:{__version__}"
BASE_IMAGE = os.environ.get("IMAGE") or DEFAULT_IMAGE
