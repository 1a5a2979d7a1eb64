"""history, rollback and promote through the CLI, on a local folder and on gs://."""

from gated_training.cli import main
from gated_training.registry.store import ModelRegistry
from gated_training.steps.deploy_model import deploy_model
from tests.robustness.conftest import deploy_arguments, gate_for


def test_history_rollback_and_promote_on_both_backends(candidates, registry_uri, tmp_path, capsys):
    versions = []
    for index, candidate in enumerate(candidates[:2]):
        outcome = deploy_model(
            **deploy_arguments(
                candidate,
                gate_for(candidate, registry_uri, tmp_path / f"g{index}.json"),
                registry_uri,
                tmp_path / f"d{index}.json",
                f"run-{index}",
            )
        )
        assert outcome.promoted
        versions.append(outcome.version)
    first, second = versions
    common = ["--registry", registry_uri, "--model-name", "m"]

    assert main(["history", *common]) == 0
    out = capsys.readouterr().out
    assert f"* {second}" in out and f"  {first}" in out and f"champion: {second}" in out

    assert main(["rollback", *common, "--reason", "incident 12"]) == 0
    assert f"champion: {first} (was {second}); rollback" in capsys.readouterr().out
    assert main(["promote", second, "--reason", "fixed upstream", *common]) == 0
    assert f"champion: {second} (was {first}); manual_promote" in capsys.readouterr().out

    pointer = ModelRegistry(registry_uri, "m").champion().pointer
    assert [(e["version"], e["action"], e["reason"]) for e in pointer["history"]][-2:] == [
        (first, "rollback", "incident 12"),
        (second, "manual_promote", "fixed upstream"),
    ]
    assert main(["rollback", *common, "--to", "../../escape", "--reason", "r"]) == 1
    assert "is not a model version name" in capsys.readouterr().err
