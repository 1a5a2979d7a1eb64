"""History, rollback, audited promotion, MLflow re-sync and cleanup on a local registry."""

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from gated_training.cli import main
from gated_training.config import GateThresholds
from gated_training.errors import ConfigError, RegistryError
from gated_training.kubeflow import validate as validate_run_parameters
from gated_training.registry.operations import cleanup, history, move_champion, rollback, sync_mlflow
from gated_training.registry.store import ModelRegistry, check_version
from gated_training.serving.layout import SERVED_MODEL_FILE
from gated_training.steps.deploy_model import deploy_model
from gated_training.steps.evaluate_model import evaluate_model
from tests.builders import train_candidate
from tests.conftest import synthetic_frame
from tests.registry_helpers import registry_bytes, resign

LOOSE = GateThresholds(min_accuracy=0.5, max_overfit_gap=0.5, max_regression=1.0)


@pytest.fixture(scope="module")
def three_deploys(tmp_path_factory):
    """A registry with three promoted versions (v1 → v2 → v3), and the MLflow store they used."""
    root = tmp_path_factory.mktemp("ops")
    registry_uri = str(root / "registry")
    versions = []
    tracking_uri = None
    for seed in (1, 2, 3):
        candidate = train_candidate(root / f"c{seed}", synthetic_frame(300, seed=seed), tracking_uri=tracking_uri)
        tracking_uri = candidate.tracking_uri
        evaluate_model(
            model_path=candidate.path("model.joblib"),
            test_path=candidate.path("test.parquet"),
            training_report_path=candidate.path("training.json"),
            target="label",
            thresholds=LOOSE,
            registry_uri=registry_uri,
            model_name="m",
            decision_out=candidate.path("gate.json"),
            report_out=candidate.path("gate.md"),
        )
        outcome = deploy_model(
            model_path=candidate.path("model.joblib"),
            test_path=candidate.path("test.parquet"),
            feature_metadata_path=candidate.path("meta.json"),
            training_report_path=candidate.path("training.json"),
            gate_decision_path=candidate.path("gate.json"),
            target="label",
            registry_uri=registry_uri,
            model_name="m",
            data_sha256=f"{seed}" * 64,
            kfp_run_id=f"run-{seed}",
            deployment_out=candidate.path("dep.json"),
        )
        assert outcome.promoted
        versions.append(outcome.version)
    return registry_uri, versions, tracking_uri


@pytest.fixture
def registry(three_deploys, tmp_path):
    """A private copy, so each test may move the champion."""
    import shutil

    source, versions, tracking_uri = three_deploys
    shutil.copytree(source, tmp_path / "registry")
    return ModelRegistry(str(tmp_path / "registry"), "m"), versions, tracking_uri


def test_history_lists_versions_newest_first_with_the_champion_marked(registry):
    registry, (v1, v2, v3), _ = registry
    rows, problems = history(registry)
    assert problems == []
    assert [row.version for row in rows] == [v3, v2, v1]
    assert [row.champion for row in rows] == [True, False, False]
    assert rows[0].gate == "deploy" and rows[0].metrics["accuracy"] > 0.5 and rows[0].data_sha256 == "3" * 64
    assert rows[0].promotions[0]["action"] == "promote" and rows[0].promotions[0]["previous_version"] == v2


def test_rollback_goes_to_the_previous_champion_and_records_who_and_why(registry):
    registry, (v1, v2, v3), _ = registry
    pointer = rollback(registry, None, "v3 misbehaves in production")
    assert pointer["version"] == v2 and pointer["previous_version"] == v3 and pointer["action"] == "rollback"
    champion = registry.champion()
    assert champion.version == v2
    last = champion.pointer["history"][-1]
    assert (last["action"], last["reason"], last["previous_version"]) == ("rollback", "v3 misbehaves in production", v3)
    assert last["by"] and last["at"]
    assert [e["version"] for e in champion.pointer["history"]] == [v1, v2, v3, v2]
    registry.load_verified(champion.version, champion.manifest_sha256)


def test_rollback_to_a_named_version_and_manual_promotion(registry):
    registry, (v1, v2, v3), _ = registry
    assert rollback(registry, v1, "back to the first")["version"] == v1
    with pytest.raises(RegistryError, match="is already the champion"):
        move_champion(registry, v1, "again", "manual_promote")
    with pytest.raises(RegistryError, match="needs a reason"):
        move_champion(registry, v3, "  ", "manual_promote")
    assert move_champion(registry, v3, "ticket ML-42", "manual_promote")["action"] == "manual_promote"
    assert registry.champion().version == v3


@pytest.mark.parametrize("target", ["../../etc/passwd", "20261122T000000Z-deadbeef/../x", "latest", ""])
def test_version_names_that_are_paths_are_refused(registry, target):
    registry, _, _ = registry
    with pytest.raises(RegistryError, match="is not a model version name"):
        rollback(registry, target or "x/..", "r")
    with pytest.raises(RegistryError, match="is not a model version name"):
        check_version(target)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("/srv/registry/../../etc", "'..' path segments are not allowed"),
        ("gs://bucket/models/../../other", "'..' path segments are not allowed"),
        ("s3://bucket/registry", "only a local folder or gs://bucket/prefix"),
        ("gs:///registry", "names no bucket"),
    ],
)
def test_registry_uris_that_escape_are_refused(uri, message):
    with pytest.raises(RegistryError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ModelRegistry(uri, "m")
    with pytest.raises(ConfigError, match="registry_uri"):
        validate_run_parameters({"data_uri": "d.csv", "target_column": "y", "registry_uri": uri})


@pytest.mark.parametrize("name", ["../m", "a/b", ".hidden", ""])
def test_model_names_that_are_paths_are_refused(name):
    with pytest.raises(RegistryError, match="model name"):
        ModelRegistry("/tmp/r", name)
    with pytest.raises(ConfigError, match="model_name"):
        validate_run_parameters({"data_uri": "d.csv", "target_column": "y", "model_name": name})


def test_a_tampered_version_is_refused_by_rollback_and_the_champion_stays(registry):
    registry, (v1, v2, v3), _ = registry
    model_file = Path(registry.version_uri(v2, SERVED_MODEL_FILE))
    model_file.write_bytes(Path(registry.version_uri(v1, SERVED_MODEL_FILE)).read_bytes())  # a valid, different pickle
    with pytest.raises(
        RegistryError, match=f"model version {v2}: serve/model.joblib has SHA-256 .* the file was altered"
    ):
        rollback(registry, None, "r")
    assert registry.champion().version == v3


def test_a_replaced_manifest_is_refused(registry):
    registry, (v1, v2, v3), _ = registry
    for name in ("manifest.json", "manifest.sig"):  # a signed manifest copied whole from another version
        Path(registry.version_uri(v2, name)).write_bytes(Path(registry.version_uri(v1, name)).read_bytes())
    with pytest.raises(RegistryError, match="it was copied or replaced"):
        rollback(registry, v2, "r")
    assert registry.champion().version == v3


def test_smoke_rows_that_no_longer_predict_as_recorded_are_refused(registry):
    registry, (v1, v2, v3), _ = registry
    predictions_file = Path(registry.version_uri(v1, "smoke_predictions.json"))
    manifest_file = Path(registry.version_uri(v1, "manifest.json"))
    flipped = [1 - p for p in json.loads(predictions_file.read_text())]
    predictions_file.write_text(json.dumps(flipped))
    manifest = json.loads(manifest_file.read_text())  # re-sign the manifest: only the prediction check remains
    import hashlib

    manifest["files"]["smoke_predictions.json"]["sha256"] = hashlib.sha256(predictions_file.read_bytes()).hexdigest()
    manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    resign(manifest_file)  # as only a holder of the registry key could: the prediction check remains
    with pytest.raises(RegistryError, match="smoke test failed"):
        rollback(registry, v1, "r")
    assert registry.champion().version == v3


def test_sync_mlflow_repairs_a_lagging_alias_and_is_idempotent(registry):
    registry, (v1, v2, v3), tracking_uri = registry
    rollback(registry, v1, "r")  # the registry moved; MLflow's alias still names v3
    assert sync_mlflow(registry, tracking_uri).startswith("synced:")
    import mlflow

    aliased = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).get_model_version_by_alias(
        "m", "champion"
    )
    assert aliased.tags["registry_version"] == v1
    assert sync_mlflow(registry, tracking_uri).startswith("already in sync")


def test_cleanup_finds_incomplete_versions_and_deletes_only_old_ones(registry):
    registry, versions, _ = registry
    crashed = "20200101T000000000000Z-0badc0de"
    Path(registry.version_uri(crashed, "serve")).mkdir(parents=True)
    Path(registry.version_uri(crashed, SERVED_MODEL_FILE)).write_bytes(b"half")  # a deploy's first file
    # a SIGKILL inside the second write leaves its hidden temp file beside it
    Path(registry.version_uri(crashed, "serve/.model.json.k3x9.tmp")).write_bytes(b"hal")
    fresh = "29990101T000000000000Z-0badc0de"  # "created" in the future: a deploy in progress
    Path(registry.version_uri(fresh)).mkdir(parents=True)
    assert cleanup(registry, delete=False, older_than=timedelta(hours=1)) == [
        (crashed, "incomplete"),
        (fresh, "incomplete"),
    ]
    results = dict(cleanup(registry, delete=True, older_than=timedelta(hours=1)))
    assert results[crashed] == "deleted (2 files)" and "kept" in results[fresh]
    assert not os.path.exists(registry.version_uri(crashed))
    assert [row.version for row in history(registry)[0] if row.complete] == list(reversed(versions))
    with pytest.raises(RegistryError, match="is complete"):
        registry.delete_incomplete(versions[0])


def test_cli_history_rollback_promote(registry, capsys):
    registry, (v1, v2, v3), _ = registry
    common = ["--registry", registry.uri, "--model-name", "m"]
    assert main(["history", *common]) == 0
    out = capsys.readouterr().out
    assert f"* {v3}" in out and f"champion: {v3}" in out
    assert main(["rollback", *common, "--reason", "incident 7"]) == 0
    assert f"champion: {v2} (was {v3}); rollback" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:  # --reason is required
        main(["promote", v3, *common])
    assert usage.value.code == 2 and "--reason" in capsys.readouterr().err
    assert main(["promote", "../../x", "--reason", "r", *common]) == 1
    assert "is not a model version name" in capsys.readouterr().err
    assert registry.champion().version == v2


def test_cli_refuses_dotdot_before_resolving_and_a_file_as_registry(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    assert main(["history", "--registry", str(tmp_path / "a" / ".." / "a"), "--model-name", "m"]) == 2
    assert "'..' path segments are not allowed" in capsys.readouterr().err
    regular = tmp_path / "registry.txt"
    regular.write_text("not a folder")
    assert main(["history", "--registry", str(regular), "--model-name", "m"]) == 1
    assert f"registry {regular}: is a file, not a folder" in capsys.readouterr().err


def test_cli_history_fails_on_a_broken_pointer_and_operations_never_print_tracebacks(registry, capsys):
    registry, (v1, v2, v3), _ = registry
    common = ["--registry", registry.uri, "--model-name", "m"]
    pointer = Path(registry.pointer_uri)
    document = json.loads(pointer.read_text())
    pointer.write_text(json.dumps({**document, "version": "20200101T000000000000Z-00000000"}))
    assert main(["history", *common]) == 1
    assert "champion.json (champion pointer): the signature does not match its content" in capsys.readouterr().err
    # Re-signed consistently, as only a key holder could: the pointer names a version that does not exist.
    from gated_training.registry.signing import current_signer
    from gated_training.registry.store import pointer_body

    edited = {**document, "version": "20200101T000000000000Z-00000000"}
    edited["history"] = [*document["history"][:-1], {**document["history"][-1], "version": edited["version"]}]
    edited.pop("signature")
    edited["signature"] = current_signer().sign_payload(pointer_body(edited))
    pointer.write_text(json.dumps(edited))
    assert main(["history", *common]) == 1
    err = capsys.readouterr().err
    assert (
        "the champion pointer names 20200101T000000000000Z-00000000, which is not a complete, verified version" in err
    )
    pointer.write_text("{not json")
    for command in (
        ["history"],
        ["rollback", "--reason", "r"],
        ["promote", v1, "--reason", "r"],
        ["cleanup", "--delete"],
    ):
        code = main([*command, *common])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if command[0] != "cleanup":  # cleanup reads no pointer
            assert code == 1 and "unreadable champion pointer" in err, (command, err)
    Path(registry.version_uri(v1, "manifest.json")).chmod(0)
    if os.geteuid() != 0:  # root reads anything
        assert main(["promote", v1, "--reason", "r", *common]) == 1
        assert "Traceback" not in capsys.readouterr().err


def test_smoke_probabilities_are_replayed_one_row_at_a_time_as_a_server_decodes_them(registry):
    registry, (v1, v2, v3), _ = registry
    probabilities_file = Path(registry.version_uri(v1, "smoke_probabilities.json"))
    manifest_file = Path(registry.version_uri(v1, "manifest.json"))
    recorded = json.loads(probabilities_file.read_text())
    recorded[3] = [p + 0.01 for p in recorded[3]]  # what the gate saw for row 3, shifted
    probabilities_file.write_text(json.dumps(recorded))
    manifest = json.loads(manifest_file.read_text())
    import hashlib

    manifest["files"]["smoke_probabilities.json"]["sha256"] = hashlib.sha256(
        probabilities_file.read_bytes()
    ).hexdigest()
    manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    resign(manifest_file)
    with pytest.raises(RegistryError, match="smoke row 3 sent alone, as a server decodes it"):
        rollback(registry, v1, "r")
    assert registry.champion().version == v3


def test_a_json_null_in_a_text_column_is_answered_as_at_gate_time():
    """Servers decode a JSON null to None; the fitted pipeline's first step makes it NaN. Without that
    step (the pipeline before issue 18), rows sent alone are answered differently from the gate."""
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    from gated_training.config import FeatureSettings
    from gated_training.registry.store import served_rows
    from gated_training.steps.engineer_features import build_preprocessor, infer_column_roles
    from tests.conftest import SAMPLE_DATA

    frame = pd.read_csv(SAMPLE_DATA)
    x, y = frame.drop(columns="risk"), frame["risk"]
    preprocessor = build_preprocessor(infer_column_roles(x), FeatureSettings()).fit(x, y)
    assert preprocessor.steps[0][0] == "missing"
    rows = x[x["saving_accounts"].isna() | x["checking_account"].isna()].head(20)
    for steps in (preprocessor.steps, preprocessor.steps[1:]):
        model = Pipeline(
            [("preprocess", Pipeline(steps)), ("model", RandomForestClassifier(n_estimators=30, random_state=0))]
        )
        model.fit(x, y)
        gated = model.predict_proba(rows)
        served = [model.predict_proba(row)[0] for row in served_rows(rows)]
        differing = sum(abs(a - b).max() > 1e-9 for a, b in zip(gated, served))
        if steps is preprocessor.steps:
            assert differing == 0
        else:
            assert differing > 0  # the skew the missing step removes


@pytest.mark.parametrize("content", ["not json", "[]", "[[0.5, 0.5]]", '{"0": [0.5, 0.5]}', '[["a", "b"]]'])
def test_malformed_smoke_probabilities_are_refused_naming_the_file(registry, content):
    """A registry file is input too: even re-signed by a key holder, a malformed record fails closed."""
    registry, (v1, v2, v3), _ = registry
    probabilities_file = Path(registry.version_uri(v1, "smoke_probabilities.json"))
    manifest_file = Path(registry.version_uri(v1, "manifest.json"))
    probabilities_file.write_text(content)
    manifest = json.loads(manifest_file.read_text())
    import hashlib

    manifest["files"]["smoke_probabilities.json"]["sha256"] = hashlib.sha256(
        probabilities_file.read_bytes()
    ).hexdigest()
    manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    resign(manifest_file)
    before = registry_bytes(Path(registry.uri))
    with pytest.raises(RegistryError, match=f"model version {v1}: smoke_probabilities.json"):
        rollback(registry, v1, "r")
    assert registry.champion().version == v3 and registry_bytes(Path(registry.uri)) == before
