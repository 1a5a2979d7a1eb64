"""The one runtime image every component runs in, chosen at compile time.

``IMAGE`` (set by ``make compile IMAGE=...``) may be a tag or a digest
(``registry/name@sha256:...``). Nothing is pip-installed when a pod starts.
"""

import os

DEFAULT_IMAGE = "localhost/kfp-gated-training:0.1.0"
BASE_IMAGE = os.environ.get("IMAGE") or DEFAULT_IMAGE
