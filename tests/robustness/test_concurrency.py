"""Two deploys promote against the same champion at the same moment, as separate processes:
exactly one wins, every time, and the pointer always names a complete, loadable version."""

import json
import time

import pytest

from gated_training.registry.store import ModelRegistry, smoke_test
from tests.robustness.conftest import deploy_arguments, gate_for, start_round, start_worker

pytestmark = pytest.mark.slow

ROUNDS = 20


def test_concurrent_promotions_never_lose_an_update(candidates, registry_uri, tmp_path, capsys):
    registry = ModelRegistry(registry_uri, "m")
    first, a, b = candidates
    # A first champion, so every round races against an existing pointer generation.
    from gated_training.steps.deploy_model import deploy_model

    assert deploy_model(
        **deploy_arguments(
            first, gate_for(first, registry_uri, tmp_path / "g0.json"), registry_uri, tmp_path / "d0.json", "seed"
        )
    ).promoted
    workers = [start_worker(tmp_path, "a", ROUNDS), start_worker(tmp_path, "b", ROUNDS)]
    winners = {"a": 0, "b": 0}
    started = time.monotonic()
    try:
        for round_number in range(ROUNDS):
            before = registry.champion()
            history_length = len(before.pointer["history"])
            arguments = {
                name: deploy_arguments(
                    candidate,
                    gate_for(candidate, registry_uri, tmp_path / f"g{round_number}{name}.json"),
                    registry_uri,
                    tmp_path / f"d{round_number}{name}.json",
                    f"run-{round_number}-{name}",
                )
                for name, candidate in (("a", a), ("b", b))
            }
            start_round(tmp_path, round_number, arguments)
            results = {}
            deadline = time.monotonic() + 120
            while len(results) < 2:
                for name in ("a", "b"):
                    path = tmp_path / f"result-{round_number}-{name}.json"
                    if name not in results and path.exists():
                        results[name] = json.loads(path.read_text())
                for worker in workers:
                    assert worker.process.poll() is None, worker.log.read_text()
                assert time.monotonic() < deadline, "a deploy worker hung"
                time.sleep(0.01)

            assert not any("error" in r for r in results.values()), results
            promoted = [name for name, r in results.items() if r["promoted"]]
            assert len(promoted) == 1, f"round {round_number}: {results}"
            winner, loser = promoted[0], ({"a", "b"} - set(promoted)).pop()
            winners[winner] += 1
            assert results[loser]["blocked_reason"].startswith("champion_changed"), results[loser]
            after = registry.champion()
            assert after.version == results[winner]["version"]
            assert after.pointer["previous_version"] == before.version
            assert len(after.pointer["history"]) == history_length + 1
            # Complete and verified: every file's SHA-256 against the signed manifest, the model loaded.
            registry.load_verified_model(after.version, after.manifest_sha256)
            # The loser's version is complete but never served.
            assert registry.is_complete(results[loser]["version"])
    finally:
        for worker in workers:
            worker.process.kill()
            worker.process.wait()
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(
            f"\n  {ROUNDS} races on {'gcs' if '://' in registry_uri else 'local'}: winners {winners}, {elapsed:.1f} s"
        )
    assert len(registry.versions()) == 1 + 2 * ROUNDS
    # The last winner predicts its smoke rows, each sent alone, as gated (deploy's own check ran each round).
    final = registry.champion()
    smoke_test(registry, final.version, final.manifest_sha256)
