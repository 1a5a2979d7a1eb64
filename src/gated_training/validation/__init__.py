"""The data gate's suite: reading a GX suite through the allowlist (``policy``), drafting one, and the
ephemeral GX context it runs in."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.validation.gx import ephemeral_context
from gated_training.validation.suite import (
    build_gx_suite,
    default_suite_uri,
    draft_suite,
    read_suite_document,
    resolve_suite_uri,
    suite_sha256,
)

__all__ = [
    "build_gx_suite",
    "default_suite_uri",
    "draft_suite",
    "ephemeral_context",
    "read_suite_document",
    "resolve_suite_uri",
    "suite_sha256",
]
