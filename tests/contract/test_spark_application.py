"""The SparkApplication a Spark step submits: its manifest validated against the Spark Operator's CRD schema
(v2.5.0, v2.5.2, vendored small), and the create / wait / fail / delete paths against the loopback
Kubernetes API (tests/kube_api_server.py) with the operator's states (internal/controller/sparkapplication)."""

from __future__ import annotations

import pytest

from gated_training.errors import ConfigError
from gated_training.spark.application import (
    SparkApplicationError,
    SparkJob,
    SparkOperatorClient,
    SparkResources,
    application_name,
    manifest,
    run_application,
)
from tests.conformance.spark_operator.manifests import all_manifests
from tests.kube_api_server import KubeApiServer
from tests.kube_schema import spark_schema, violations

OPERATOR_VERSIONS = ("v2.5.0", "v2.5.2")
JOB = SparkJob(
    step="validate-data",
    request_uri="gs://bucket/runs/run-1/spark/request.json",
    namespace="kubeflow-user",
    image="registry.example/kfp-gated-training-spark:0.3.0",
    service_account="default-editor",
    run_id="run-1",
    gcp_key_secret="gcs-key",
    env_secrets={"GATED_TRAINING_REGISTRY_KEY": ("registry-key", "key")},
)


@pytest.mark.parametrize("version", OPERATOR_VERSIONS)
def test_every_rendered_application_is_valid_for_the_operators_crd(version):
    schema = spark_schema(version)
    for document in all_manifests():
        assert violations(document, schema) == [], document["metadata"]["name"]
    broken = manifest(JOB, "gt-x")
    broken["spec"]["driver"]["coreCount"] = 2  # not a field: the strict server refuses it
    broken["spec"]["executor"]["instances"] = 0  # below the schema's minimum
    found = violations(broken, schema)
    assert any("coreCount" in v for v in found) and any("instances" in v for v in found), found


def test_the_manifest_carries_the_runs_account_image_resources_and_secrets():
    body = manifest(JOB, "gt-validate-data-run-1-abcdef")
    spec = body["spec"]
    assert (spec["type"], spec["mode"], spec["restartPolicy"], spec["image"]) == (
        "Python",
        "cluster",
        {"type": "Never"},
        JOB.image,
    )
    assert spec["arguments"] == ["validate-data", JOB.request_uri]
    assert spec["driver"]["serviceAccount"] == "default-editor"
    assert spec["driver"]["secrets"] == [
        {"name": "gcs-key", "path": "/var/secrets/google", "secretType": "GCPServiceAccount"}
    ]
    assert {
        "name": "GATED_TRAINING_REGISTRY_KEY",
        "valueFrom": {"secretKeyRef": {"name": "registry-key", "key": "key"}},
    } in spec["executor"]["env"]
    assert (spec["executor"]["instances"], spec["executor"]["cores"], spec["executor"]["memory"]) == (2, 2, "4g")
    assert spec["sparkConf"]["spark.sql.caseSensitive"] == "true"


def run(api, **kwargs):
    lines: list[str] = []
    clock = iter(range(0, 10_000, 5))
    status = run_application(
        SparkOperatorClient(api.url),
        JOB,
        deadline_seconds=kwargs.pop("deadline_seconds", 600),
        log=lines.append,
        clock=lambda: next(clock),
        sleep=lambda _: None,
        name="gt-validate-data-run-1-abcdef",
    )
    return status, lines


def test_a_completed_application_returns_and_is_deleted():
    with KubeApiServer() as api:
        status, lines = run(api)
        assert status["applicationState"] == {"state": "COMPLETED"}
        methods = [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in api.requests]
        assert methods[0] == ("POST", "sparkapplications") and api.requests[0]["query"]["fieldValidation"] == ["Strict"]
        assert methods[-1] == ("DELETE", "gt-validate-data-run-1-abcdef")
        assert api.objects == {} and api.deleted == [
            ("sparkapplications", "kubeflow-user", "gt-validate-data-run-1-abcdef")
        ]
    assert [line.split(": ", 1)[1].split(" ")[0] for line in lines if ": " in line and "created" not in line] == [
        "SUBMITTED",
        "RUNNING",
        "COMPLETED",
    ]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            [
                ("SUBMITTED", ""),
                ("RUNNING", ""),
                ("FAILING", "driver container failed with ExitCode: 1, Reason: Error"),
                ("FAILED", "driver container failed with ExitCode: 1, Reason: Error"),
            ],
            "ended FAILED: driver container failed with ExitCode: 1, Reason: Error",
        ),
        (  # an evicted driver: its pod is gone, the operator says so
            [
                ("SUBMITTED", ""),
                ("RUNNING", ""),
                ("FAILING", "driver pod not found"),
                ("FAILED", "driver pod not found"),
            ],
            "ended FAILED: driver pod not found",
        ),
        (
            [("SUBMISSION_FAILED", "failed to run spark-submit: exit status 1")],
            "ended SUBMISSION_FAILED: failed to run",
        ),
    ],
)
def test_a_failed_or_evicted_application_fails_the_step_with_the_operators_reason(script, message):
    with KubeApiServer() as api:
        api.spark_script = script
        with pytest.raises(SparkApplicationError, match=message):
            run(api)
        assert api.objects == {} and len(api.deleted) == 1


def test_an_application_past_its_deadline_is_deleted_and_fails_the_step():
    with KubeApiServer() as api:
        api.spark_script = [("SUBMITTED", ""), ("RUNNING", "")]
        with pytest.raises(SparkApplicationError, match="did not finish within 60 s .last state RUNNING.; deleted"):
            run(api, deadline_seconds=60)
        assert api.objects == {} and len(api.deleted) == 1


def test_a_service_account_without_the_rights_is_told_which_it_needs():
    with KubeApiServer() as api:
        api.forbidden = {"create"}
        with pytest.raises(SparkApplicationError, match="needs create, get, delete on sparkapplications"):
            run(api)
        assert api.objects == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"namespace": "Team_A"}, "namespace='Team_A' is not a Kubernetes name"),
        ({"service_account": "-sa"}, "service_account='-sa' is not a Kubernetes name"),
        ({"image": "image with spaces"}, "is not an image reference"),
        ({"resources": {"executor_instances": 0}}, "executor_instances=0 must be a whole number from 1 to 1024"),
        ({"resources": {"executor_memory": "4GB; rm -rf /"}}, "must be a JVM size"),
    ],
)
def test_hostile_cluster_settings_are_refused_before_anything_is_created(change, message):
    fields = {**JOB.__dict__, **change}
    with pytest.raises(ConfigError, match=message):
        if "resources" in change:
            SparkResources(**change["resources"])
        else:
            SparkJob(**fields)


def test_application_names_are_dns_labels_that_leave_room_for_the_driver_suffix():
    name = application_name("validate-data", "20261205T085642152497Z-f8d77d0f" * 3, "abc123")
    assert len(name) <= 63 - len("-driver") and name.startswith("gt-validate-data-") and name.endswith("abc123")
