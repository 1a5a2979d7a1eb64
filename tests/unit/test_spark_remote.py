"""The staging contract between a Spark step's component and its driver (``spark.remote``,
``steps/spark_driver.py``), without Spark: every byte each side reads from the other through the bucket is
checked, and the pod's Spark settings are validated before anything is created. The whole path, with the driver
on local[2] under the stand-in operator, is tests/spark/test_remote_steps.py."""

from __future__ import annotations

import json

import pytest

from gated_training.errors import ConfigError, DataError
from gated_training.spark import remote
from gated_training.spark.application import SparkApplicationError
from gated_training.steps import spark_driver

BASE_ENV = {
    remote.IMAGE_ENV: "registry.example/spark:1",
    remote.STAGING_ENV: "gs://bucket/spark",
    remote.SERVICE_ACCOUNT_ENV: "default-editor",
    remote.NAMESPACE_ENV: "team-a",
}


def test_the_pods_spark_settings_are_read_and_forward_only_plain_settings():
    settings = remote.remote_settings(
        {
            **BASE_ENV,
            remote.RESOURCES_ENV: json.dumps({"executor_instances": 8, "executor_memory": "16g"}),
            remote.SECRETS_ENV: json.dumps(
                {"gcp_key_secret": "gcs-key", "env": {"GATED_TRAINING_REGISTRY_KEY": ["k", "key"]}}
            ),
            "GATED_TRAINING_ALLOW_POD_LOCAL_STATE": "1",
            "MLFLOW_TRACKING_TOKEN": "secret-value",
        }
    )
    assert settings is not None
    assert (settings.resources.executor_instances, settings.resources.executor_memory) == (8, "16g")
    assert settings.env_secrets == {"GATED_TRAINING_REGISTRY_KEY": ("k", "key")}
    assert settings.env == {"GATED_TRAINING_ALLOW_POD_LOCAL_STATE": "1"}  # never a credential's value
    assert remote.remote_settings({}) is None  # no Spark image compiled in: Spark in the step's own process
    assert remote.remote_settings({**BASE_ENV, remote.DRIVER_ENV: "1"}) is None  # the driver never submits again


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({remote.STAGING_ENV: ""}, "GATED_TRAINING_SPARK_STAGING_URI is not set"),
        ({remote.STAGING_ENV: "relative/path"}, "expected a gs:// prefix"),
        ({remote.NAMESPACE_ENV: "Team_A"}, "is not a Kubernetes name"),
        ({remote.RESOURCES_ENV: '{"executor_instances": 0}'}, "executor_instances=0"),
        ({remote.RESOURCES_ENV: '{"executor_memory": "4g; rm -rf /"}'}, "must be a JVM size"),
        ({remote.RESOURCES_ENV: '{"gpus": 1}'}, "malformed"),
        ({remote.DEADLINE_ENV: "5"}, "expected 60 s to 7 days"),
        ({remote.SECRETS_ENV: '{"env": {"PATH": ["x", "y"]}, "other": 1}'}, "expected an object"),
        ({remote.SECRETS_ENV: '{"env": {"lower": ["x", "y"]}}'}, "expected \\[secret name, key\\]"),
        ({remote.SECRETS_ENV: '{"gcp_key_secret": "Bad_Name"}'}, "is not a secret name"),
    ],
)
def test_hostile_spark_settings_in_the_pod_are_refused_naming_the_variable(change, message):
    with pytest.raises(ConfigError, match=message):
        remote.remote_settings({**BASE_ENV, **change})


def write_result(tmp_path, document) -> str:
    prefix = tmp_path / "prefix"
    prefix.mkdir(exist_ok=True)
    (prefix / "result.json").write_text(json.dumps(document) if not isinstance(document, str) else document)
    return str(prefix)


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        [],
        {"format": 1, "step": "check-drift", "ok": True},  # another step's result
        {"format": 2, "step": "validate-data", "ok": True},
        {"format": 1, "step": "validate-data", "ok": "yes"},
        {"format": 1, "step": "validate-data", "ok": True, "error": {"kind": "DataError", "message": "x"}},
        {"format": 1, "step": "validate-data", "ok": False, "error": {"kind": "DataError"}},
        {"format": 1, "step": "validate-data", "ok": False, "error": {"kind": 1, "message": "x", "trace": ""}},
    ],
)
def test_a_result_of_another_shape_is_refused(tmp_path, document):
    with pytest.raises(SparkApplicationError, match="the driver's result is not"):
        remote.read_result(write_result(tmp_path, document), "validate-data")


def test_a_drivers_error_is_raised_as_its_kind_with_its_words_and_an_unknown_kind_is_named(tmp_path):
    error = remote.driver_error({"error": {"kind": "DataError", "message": "x.csv: not valid UTF-8"}})
    assert type(error) is DataError and str(error) == "x.csv: not valid UTF-8"
    odd = remote.driver_error({"error": {"kind": "Py4JJavaError", "message": "boom " * 5000}})
    assert type(odd).__name__ == "GatedTrainingError" and str(odd).startswith("Py4JJavaError: boom")
    assert len(str(odd)) <= remote.MAX_MESSAGE_CHARS + 40
    assert remote.read_result(str(tmp_path), "validate-data") is None  # none written: the operator's reason rules
    big = write_result(tmp_path, " " * (remote.MAX_RESULT_BYTES + 1))
    with pytest.raises(SparkApplicationError, match="the driver's result is not readable within 1048576 bytes"):
        remote.read_result(big, "validate-data")


def test_an_output_folder_is_copied_only_when_spark_committed_it_and_only_its_part_files(tmp_path):
    prefix = tmp_path / "prefix"
    folder = prefix / "outputs" / "dataset_out"
    folder.mkdir(parents=True)
    (folder / "part-00000-a.snappy.parquet").write_bytes(b"PAR1")
    (folder / ".part-00000-a.snappy.parquet.crc").write_bytes(b"crc")
    (folder / "notes.txt").write_bytes(b"not Spark's")
    files = remote.StepFiles(folders={"dataset_out": str(tmp_path / "local")})
    with pytest.raises(SparkApplicationError, match="Spark did not commit this output"):
        remote.copy_outputs(str(prefix), files)
    (folder / "_SUCCESS").write_bytes(b"")
    remote.copy_outputs(str(prefix), files)
    assert sorted(p.name for p in (tmp_path / "local").iterdir()) == ["part-00000-a.snappy.parquet"]
    with pytest.raises(ConfigError, match="not an output name"):
        remote.StepFiles(files={"../../etc/passwd": "x"})


def request_file(tmp_path, **changes) -> str:
    prefix = tmp_path / "run" / "gt-check-drift-x"
    prefix.mkdir(parents=True, exist_ok=True)
    document = {
        "format": 1,
        "step": "check-drift",
        "prefix": str(prefix),
        "inputs": ["validation_report_path"],
        "outputs": {"files": ["html_out", "report_out"], "folders": []},
        "arguments": {
            "dataset_path": "gs://b/batch",
            "target": "risk",
            "registry_uri": "gs://b/registry",
            "model_name": "m",
            "policy": {"drift_action": "block"},
        },
    }
    document.update(changes)
    (prefix / "request.json").write_text(json.dumps(document))
    return str(prefix / "request.json")


def test_the_driver_reads_its_own_steps_request_and_types_its_arguments(tmp_path):
    request = spark_driver.read_request("check-drift", request_file(tmp_path))
    assert request["arguments"]["policy"].drift_action == "block"


@pytest.mark.parametrize(
    ("step", "changes", "message"),
    [
        (
            "deploy-model",
            {},
            "the Spark driver runs validate-data, check-drift, engineer-features, train-model, evaluate-model, "
            "not 'deploy-model'",
        ),
        ("check-drift", {"prefix": "gs://elsewhere/x"}, "not a request for check-drift in its own folder"),
        ("check-drift", {"step": "validate-data"}, "not a request for check-drift"),
        ("check-drift", {"outputs": {"files": ["report_out", "../../x"], "folders": []}}, "not a request"),
        ("check-drift", {"arguments": {"dataset_path": "x"}}, "the arguments of check-drift are"),
        ("check-drift", {"inputs": []}, "not a request for check-drift"),  # a required input left out
        ("check-drift", {"inputs": ["model_path", "validation_report_path"]}, "not a request"),  # not its input
        ("check-drift", {"inputs": ["validation_report_path"] * 2}, "not a request"),
        ("check-drift", {"inputs": "validation_report_path"}, "not a request"),
        (
            "check-drift",
            {
                "arguments": {
                    "dataset_path": ["x"],
                    "target": "risk",
                    "registry_uri": "r",
                    "model_name": "m",
                    "policy": {},
                }
            },
            "dataset_path: expected text",
        ),
        (
            "check-drift",
            {
                "arguments": {
                    "dataset_path": "x",
                    "target": "risk",
                    "registry_uri": "r",
                    "model_name": "m",
                    "policy": {"__class__": "os.system"},
                }
            },
            "unknown setting",
        ),
    ],
)
def test_a_hostile_request_is_refused_and_answered_with_no_result(tmp_path, step, changes, message):
    uri = request_file(tmp_path, **changes)
    with pytest.raises(ConfigError, match=message):
        spark_driver.read_request(step, uri)
    assert spark_driver.main([step, uri]) == 2
    assert not (tmp_path / "run" / "gt-check-drift-x" / "result.json").exists()


def test_a_step_runs_on_the_cluster_only_with_the_pods_spark_settings(monkeypatch, tmp_path):
    """run_on_cluster: None (run here) without the compiled Spark settings or inside the driver, touching nothing;
    with them, the step is submitted and the record it wrote comes back built."""
    files = remote.StepFiles(inputs={"dataset_path": str(tmp_path / "missing")}, files={"report_out": "x"})
    for name in BASE_ENV:
        monkeypatch.delenv(name, raising=False)
    assert remote.run_on_cluster("check-drift", {}, files, record=str(tmp_path / "r"), build=dict) is None
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(remote.DRIVER_ENV, "1")
    assert remote.run_on_cluster("check-drift", {}, files, record=str(tmp_path / "r"), build=dict) is None
    monkeypatch.delenv(remote.DRIVER_ENV)
    submitted = []
    monkeypatch.setattr(remote, "run_remotely", lambda *args: submitted.append(args[:3]))
    (tmp_path / "r").write_text(json.dumps({"decision": "train"}))
    assert remote.run_on_cluster("check-drift", {"a": 1}, files, record=str(tmp_path / "r"), build=dict) == {
        "decision": "train"
    }
    assert submitted == [("check-drift", {"a": 1}, files)]
    (tmp_path / "r").write_text("[1]")
    with pytest.raises(SparkApplicationError, match="check-drift: the driver's record is not of the expected shape"):
        remote.run_on_cluster("check-drift", {}, files, record=str(tmp_path / "r"), build=dict)


def test_a_failed_step_deletes_its_staging_prefix_and_a_failed_deletion_does_not_hide_the_steps_error(
    monkeypatch, tmp_path
):
    """The staged copy of a failed step's inputs (validate-data's is the batch) is deleted as a finished step's
    is; when that deletion fails too, the step still fails with the application's error, and the log says which
    prefix was left."""
    batch = tmp_path / "batch.parquet"
    batch.write_bytes(b"rows")
    files = remote.StepFiles(inputs={"dataset_path": str(batch)}, files={"report_out": str(tmp_path / "out")})
    settings = remote.remote_settings({**BASE_ENV, remote.STAGING_ENV: str(tmp_path / "staging")})
    assert settings is not None

    def fails(*args, **kwargs):
        raise SparkApplicationError("SparkApplication gt-x ended FAILED: driver container failed with ExitCode: 137")

    monkeypatch.setattr(remote, "run_application", fails)
    said: list[str] = []
    with pytest.raises(SparkApplicationError, match="ExitCode: 137"):
        remote.run_remotely("validate-data", {}, files, settings, client=object(), log=said.append)
    assert not [path for path in (tmp_path / "staging").rglob("*") if path.is_file()]

    def refuses(prefix, files):
        raise OSError("403 Forbidden: storage.objects.delete")

    monkeypatch.setattr(remote, "delete_prefix", refuses)
    with pytest.raises(SparkApplicationError, match="ExitCode: 137"):
        remote.run_remotely("validate-data", {}, files, settings, client=object(), log=said.append)
    assert len(said) == 1 and "of the failed step was not deleted: 403 Forbidden" in said[0], said
    left = sorted(path.name for path in (tmp_path / "staging").rglob("*") if path.is_file())
    assert left == ["dataset_path", "request.json"]  # what the log names as left behind
