"""The pure parts of the Kubeflow client module; the HTTP side is in tests/contract."""

import subprocess
from types import SimpleNamespace

import pytest

from gated_training.kubeflow.client import (
    Connection,
    KubeflowError,
    checkout_revision,
    read_package,
    run_result,
    version_name,
)
from pipelines.cluster import DEFAULT_RESOURCES, validated
from tests.conftest import COMPILED_PIPELINE


def git(directory, *args):
    subprocess.run(["git", "-C", str(directory), *args], check=True, capture_output=True)


def test_revision_is_dirty_for_source_changes_but_not_for_a_recompiled_yaml(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "ci@example.com")
    git(tmp_path, "config", "user.name", "ci")
    (tmp_path / "compiled").mkdir()
    (tmp_path / "compiled" / "p.yaml").write_text("a")
    (tmp_path / "src.py").write_text("x = 1")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "init")
    commit, dirty = checkout_revision(tmp_path / "compiled")
    assert len(commit) == 40 and not dirty

    (tmp_path / "compiled" / "p.yaml").write_text("b")  # make compile IMAGE=registry/...
    assert checkout_revision(tmp_path / "compiled") == (commit, False)
    (tmp_path / "src.py").write_text("x = 2")
    assert checkout_revision(tmp_path / "compiled") == (commit, True)


def test_outside_git_the_revision_says_so(tmp_path):
    assert checkout_revision(tmp_path) == ("nogit", False)


def test_version_names_carry_package_version_commit_and_spec_hash():
    assert version_name("0.1.0", "1dab08060dd81e", False, "e691641e" + "0" * 56) == "0.1.0-1dab080-e691641e"
    assert version_name("0.1.0", "1dab08060dd81e", True, "ab" * 32) == "0.1.0-1dab080-dirty-abababab"


def test_package_reads_name_and_typed_parameters():
    package = read_package(COMPILED_PIPELINE)
    assert package.name == "gated-training"
    kind, gate = package.parameters["gate"]
    assert kind == "Dict" and gate["min_accuracy"] == 0.85
    assert package.parameters["training"][1]["n_estimators"] == 100
    assert package.parameters["features"][1]["interaction_features"] is False
    assert package.parameters["data_uri"][0] == "String" and package.parameters["max_input_mb"] == ("Float", 2048.0)


@pytest.mark.parametrize(
    ("content", "message"), [(None, "run `make compile` first"), ("just: text\n", "is not a compiled KFP pipeline")]
)
def test_package_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "p.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KubeflowError, match=message):
        read_package(path)


def task(name, state):
    return SimpleNamespace(display_name=name, task_id=name, state=state)


@pytest.mark.parametrize(
    ("state", "tasks", "outcome"),
    [
        # Argo node names, as a real backend's task_details carry them.
        (
            "SUCCEEDED",
            [
                task("root-driver", "SUCCEEDED"),
                task("validate-data-driver", "SUCCEEDED"),
                task("validate-data", "SUCCEEDED"),
                task("executor", "SUCCEEDED"),
                task("condition-1-driver", "SUCCEEDED"),
                task("condition-1", "SKIPPED"),
            ],
            "blocked by the data gate",
        ),
        (
            "SUCCEEDED",
            [
                task("validate-data", "SUCCEEDED"),
                task("check-drift", "SUCCEEDED"),
                task("train-model", "SUCCEEDED"),
                task("evaluate-model", "SUCCEEDED"),
                task("condition-3", "SKIPPED"),
            ],
            "blocked by the model gate",
        ),
        (
            "FAILED",
            [task("validate-data", "SUCCEEDED"), task("deploy-model", "FAILED"), task("executor", "FAILED")],
            "failed at deploy-model",
        ),
        # kfp.local-style display names read the same.
        (
            "SUCCEEDED",
            [task("Validate data (GX)", "SUCCEEDED"), task("Deploy to registry", "SUCCEEDED")],
            "deployed (or blocked: the champion changed during the run)",
        ),
        ("CANCELED", [], "canceled"),
        ("RUNNING", [], "running"),
    ],
)
def test_outcome_is_read_from_the_branch_that_ran(state, tasks, outcome):
    run = SimpleNamespace(run_id="r", state=state, run_details=SimpleNamespace(task_details=tasks), error=None)
    assert run_result(run).outcome == outcome


def test_run_urls_prefer_the_ui_host(monkeypatch):
    monkeypatch.delenv("KF_PIPELINES_UI_ENDPOINT", raising=False)
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    assert (
        Connection(host="http://kfp:8888", ui_host="https://ui.example.com/").run_url("r1")
        == "https://ui.example.com/#/runs/details/r1"
    )
    assert Connection(host="kfp.example.com").run_url("r1") == "http://kfp.example.com/#/runs/details/r1"
    assert Connection().run_url("r1") == "/pipeline/#/runs/details/r1"  # in-cluster: relative to the UI


def test_tokens_stay_out_of_reprs():
    assert "secret-token" not in repr(Connection(host="h", token="secret-token"))


def test_default_resources_are_valid_quantities_with_requests_within_limits():
    for step, resources in DEFAULT_RESOURCES.items():
        assert validated(resources, step) is resources
