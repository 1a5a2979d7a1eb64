"""Helpers for tests that act as someone holding the registry key (tests/conftest.py's TEST_REGISTRY_KEY)."""

from __future__ import annotations

from pathlib import Path

from gated_training.signing import SIGNATURE_FILE, current_signer


def resign(manifest_path: Path) -> None:
    """Sign an edited manifest again with this process's registry key, as a key holder could."""
    signature = current_signer().sign(manifest_path.read_bytes())
    assert signature is not None
    Path(manifest_path).with_name(SIGNATURE_FILE).write_bytes(signature)
