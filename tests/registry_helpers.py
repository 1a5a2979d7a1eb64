"""Helpers for tests that act as someone holding the registry key (tests/conftest.py's TEST_REGISTRY_KEY)."""

from __future__ import annotations

from pathlib import Path

from gated_training.registry.signing import SIGNATURE_FILE, current_signer


def resign(manifest_path: Path) -> None:
    """Sign an edited manifest again with this process's registry key, as a key holder could."""
    signature = current_signer().sign(manifest_path.read_bytes())
    assert signature is not None
    Path(manifest_path).with_name(SIGNATURE_FILE).write_bytes(signature)


def registry_bytes(root: Path) -> dict[str, str]:
    """Every file of a local registry tree and the SHA-256 of its bytes (links by their target):
    equal before and after a run means the run left the registry byte-identical."""
    import hashlib
    import os

    tree: dict[str, str] = {}
    root = Path(root)
    if not root.exists():
        return tree
    for folder, directories, files in os.walk(root):
        for name in sorted(directories + files):
            path = Path(folder, name)
            relative = str(path.relative_to(root))
            if path.is_symlink():
                tree[relative] = f"link -> {os.readlink(path)}"
            elif path.is_file():
                tree[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                tree[relative] = "folder"
    return tree


def model_bytes(folder: Path, constant: int = 1) -> bytes:
    """A small fitted classifier's joblib bytes (a DummyClassifier that always predicts ``constant``)."""
    import joblib
    from sklearn.dummy import DummyClassifier

    path = Path(folder) / f"m{constant}.joblib"
    joblib.dump(DummyClassifier(strategy="constant", constant=constant).fit([[0], [1]], [0, 1]), path)
    return path.read_bytes()
