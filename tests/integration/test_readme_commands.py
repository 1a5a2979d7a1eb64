"""The README's shell blocks as a newcomer pastes them: in a fresh copy of the project, in a fresh shell
(no activated venv, no test settings, an empty home), in order. Every command of a block that needs no
cluster runs as written and ends as the README says; a block that needs a cluster is named as such."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT, SAMPLE_DATA

pytestmark = pytest.mark.integration
README = REPO_ROOT / "README.md"
# A block that names any of these needs a Kubeflow or KServe cluster, a registry of images, or a bucket.
NEEDS_A_CLUSTER = ("kubectl", "PUSH=1", "make upload", "make submit", "make schedule", "--namespace", "gs://")
# Commands that run elsewhere: the test suite does not start itself.
NOT_RUN_HERE = {"make test": "the suite this test belongs to"}
# What the commands print, where the README says what happens.
EXPECTED = {
    1: ("make run", r"=== DEPLOYED ===", r"registry versions are signed with the local key ~/.config/gated-training"),
    2: ("make run", r"=== SKIPPED ===", r"no_new_data"),
    3: ("--set force_retrain=true", r"=== (DEPLOYED|BLOCKED) ===", r"champion"),
    4: ("history", r"promote .* gates passed", r"champion: \S+"),
}


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M)


def commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def local_blocks() -> list[str]:
    return [block for block in shell_blocks(README.read_text()) if not any(m in block for m in NEEDS_A_CLUSTER)]


def test_every_readme_block_is_run_here_or_needs_a_cluster():
    blocks = shell_blocks(README.read_text())
    assert blocks, "the README has no shell blocks"
    local = local_blocks()
    assert len(local) >= 3, local  # make run/test, what to try next, your own data
    ran = [command for block in local for command in commands(block) if command not in NOT_RUN_HERE]
    assert [c for c in ran if c.startswith("make run") or "gated-training" in c], ran
    for command in ran:  # a newcomer has no activated venv: every tool is called by its path
        first = command.split()[0]
        assert first in ("make", "cp", "cd", "ls", "cat") or first.startswith(".venv/bin/"), command


def fresh_copy(destination: Path) -> Path:
    """The project's files as a clone has them (tracked, or new and not ignored), the environments linked
    in, every file older than the venv's install stamp: make sees its environment set up, as after the
    README's own make run, and never reinstalls the shared venv from the copy."""
    stamp = REPO_ROOT / ".venv" / "bin" / ".installed"
    if not stamp.exists():
        pytest.skip("needs .venv made by make (its install stamp)")
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    older = stamp.stat().st_mtime - 60
    for name in filter(None, tracked):
        source = REPO_ROOT / name
        if not source.is_file():
            continue  # deleted in the working tree
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        os.utime(target, (older, older))
    for venv in (".venv", ".venv-serving"):
        if (REPO_ROOT / venv).exists():
            (destination / venv).symlink_to(REPO_ROOT / venv)
    return destination


def fresh_shell(home: Path, project: Path) -> dict[str, str]:
    """What a new terminal has: PATH without any venv, a home of its own (the local signing key is made
    there), none of the test session's settings; the copy's code first on the path, which is the code
    its .venv would import."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if "venv" not in p)
    return {
        "PATH": path,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        "PYTHONPATH": f"{project / 'src'}{os.pathsep}{project}",
    }


def test_the_readme_commands_work_when_pasted(tmp_path):
    project = fresh_copy(tmp_path / "kfp-gated-training")
    home = tmp_path / "home"
    home.mkdir()
    # The "your own data" block names a table of the user's: here, the sample with its label renamed.
    orders = tmp_path / "path" / "to" / "orders.csv"
    orders.parent.mkdir(parents=True)
    pd.read_csv(SAMPLE_DATA).rename(columns={"risk": "churned"}).to_csv(orders, index=False)
    env = fresh_shell(home, project)

    ran: list[tuple[str, str]] = []
    for block in local_blocks():
        for command in commands(block):
            if command in NOT_RUN_HERE:
                continue
            line = command.replace("path/to/orders.csv", str(orders))
            done = subprocess.run(
                ["bash", "-c", line], cwd=project, env=env, capture_output=True, text=True, timeout=600
            )
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"$ {command}\n{output[-4000:]}"
            ran.append((command, output))

    for position, (fragment, *patterns) in EXPECTED.items():
        command, output = ran[position - 1]
        assert fragment in command, (position, command)
        for pattern in patterns:
            assert re.search(pattern, output), f"$ {command}: no {pattern!r} in\n{output[-3000:]}"
    # The user's table got its drafted suite and a run of its own, in its own workdir.
    assert (orders.parent / "orders.expectations.json").exists()
    summary = json.loads((project / ".orders" / "summary.json").read_text())
    assert summary["outcome"] in ("deployed", "blocked") and summary["parameters"]["target_column"] == "churned"
    assert summary["outcome"] == "deployed" or summary["blocked_by"] == "model", summary["reasons"]
