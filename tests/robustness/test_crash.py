"""SIGKILL a deploy at each point of publication: the champion is unchanged and loads, an
incomplete version is never served, and `cleanup` finds what the crash left."""

import signal
from datetime import timedelta

import pytest

from gated_training.registry.operations import cleanup, history
from gated_training.registry.store import FAULT_POINT_ENV, ModelRegistry, smoke_test
from gated_training.steps.deploy_model import deploy_model
from tests.robustness.conftest import deploy_arguments, gate_for, snapshot, start_round, start_worker


@pytest.mark.parametrize(
    ("fault_point", "left_complete"),
    [
        ("after_first_file", False),  # some files uploaded, no manifest
        ("after_manifest", True),  # a complete version, never promoted
        ("before_pointer_swap", True),  # verified and smoke-tested, killed just before the swap
    ],
)
def test_a_deploy_killed_mid_way_leaves_the_champion_serving(
    candidates, registry_uri, tmp_path, fault_point, left_complete
):
    first, candidate, _ = candidates
    assert deploy_model(
        **deploy_arguments(
            first, gate_for(first, registry_uri, tmp_path / "g0.json"), registry_uri, tmp_path / "d0.json", "seed"
        )
    ).promoted
    registry = ModelRegistry(registry_uri, "m")
    champion_before = registry.champion()
    pointer_before, versions_before = snapshot(registry_uri)

    worker = start_worker(tmp_path, "crash", rounds=1, env={FAULT_POINT_ENV: fault_point})
    start_round(
        tmp_path,
        0,
        {
            "crash": deploy_arguments(
                candidate,
                gate_for(candidate, registry_uri, tmp_path / "g1.json"),
                registry_uri,
                tmp_path / "d1.json",
                "run-1",
            )
        },
    )
    assert worker.process.wait(timeout=120) == -signal.SIGKILL, worker.log.read_text()
    assert not (tmp_path / "result-0-crash.json").exists()

    pointer_after, versions_after = snapshot(registry_uri)
    assert pointer_after == pointer_before, "the pointer moved although the deploy died"
    new_versions = sorted(set(versions_after) - set(versions_before))
    assert len(new_versions) == 1
    champion = registry.champion()
    assert champion.version == champion_before.version
    smoke_test(registry, champion.version, champion.manifest_sha256)  # still loads and predicts

    crashed = new_versions[0]
    assert registry.is_complete(crashed) is left_complete
    listed = {row.version: row for row in history(registry)[0]}
    assert not listed[crashed].champion
    found = cleanup(registry, delete=False, older_than=timedelta(0))
    assert found == ([] if left_complete else [(crashed, "incomplete")])
    if not left_complete:
        assert cleanup(registry, delete=True, older_than=timedelta(0))[0][1].startswith("deleted")
        assert registry.incomplete_versions() == []

    # The next deploy, gated against the unchanged champion, goes through.
    assert deploy_model(
        **deploy_arguments(
            candidate,
            gate_for(candidate, registry_uri, tmp_path / "g2.json"),
            registry_uri,
            tmp_path / "d2.json",
            "run-2",
        )
    ).promoted
