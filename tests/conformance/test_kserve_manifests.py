"""The InferenceService and ServingRuntime manifests, and every object their patches produce,
validate against KServe's CRD schemas (tests/conformance/kserve/, vendored by vendor_crds.py from
the tags named there) with strict field validation, as the API server checks them."""

from __future__ import annotations

import pytest

from gated_training.serving import manifests as kserve
from tests.conformance.kserve.manifests import runtimes, services
from tests.kube_schema import KSERVE_VERSIONS, schema_for, violations

# Standard mode's canary (spec.canary[]) is new in KServe 0.20; Knative's canaryTrafficPercent is everywhere.
STANDARD_CANARY_SINCE = "v0.20.0"


@pytest.mark.parametrize("version", KSERVE_VERSIONS)
def test_the_serving_runtime_validates_on_every_supported_kserve(version):
    for runtime in runtimes():
        assert violations(runtime, schema_for(version, "ServingRuntime")) == []


@pytest.mark.parametrize("version", KSERVE_VERSIONS)
def test_knative_mode_services_validate_on_every_supported_kserve(version):
    for obj in services("Knative"):
        assert violations(obj, schema_for(version, "InferenceService")) == [], obj["spec"]


@pytest.mark.parametrize("version", KSERVE_VERSIONS)
def test_standard_mode_canaries_need_kserve_0_20(version):
    created, canary, promoted, aborted, direct = services("Standard")
    schema = schema_for(version, "InferenceService")
    for obj in (created, direct):  # no canary entry, no predictor name: every version
        assert violations(obj, schema) == []
    for obj in (canary, aborted, promoted):  # spec.canary[] and predictor.name are new in 0.20
        if version >= STANDARD_CANARY_SINCE:
            assert violations(obj, schema) == []
        else:
            assert violations(obj, schema) == (
                ['unknown field "spec.predictor.name"'] if obj is promoted else ['unknown field "spec.canary"']
            )


def test_the_schemas_catch_what_a_server_refuses():
    schema = schema_for("v0.20.0", "InferenceService")
    _, canary, *_ = services("Standard")
    too_much = {
        **canary,
        "spec": {**canary["spec"], "canary": [{**canary["spec"]["canary"][0], "trafficPercent": 101}]},
    }
    assert violations(too_much, schema) == ["spec.canary[0].trafficPercent: should be less than or equal to 100"]
    no_predictor = {**canary, "spec": {"canary": canary["spec"]["canary"]}}
    assert violations(no_predictor, schema) == ["spec.predictor: Required value"]
    typo = {
        **canary,
        "spec": {**canary["spec"], "predictor": {**canary["spec"]["predictor"], "canaryTraficPercent": 5}},
    }
    assert violations(typo, schema) == ['unknown field "spec.predictor.canaryTraficPercent"']


def test_the_manifests_say_what_serves_and_how():
    created, canary, promoted, aborted, direct = services("Knative")
    assert created["metadata"]["name"] == "credit-model-v2"
    assert created["metadata"]["annotations"][kserve.MODE_ANNOTATION] == "Serverless"
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert (
        canary["metadata"]["annotations"][kserve.STABLE_VERSION]
        != canary["metadata"]["annotations"][kserve.SPEC_VERSION]
    )
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    assert aborted["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert canary["spec"]["predictor"]["model"]["storageUri"].endswith("/serve")  # never the version's raw files
    standard = services("Standard")
    assert standard[2]["spec"]["predictor"]["name"] == standard[1]["spec"]["canary"][0]["predictor"]["name"]
    assert "canary" not in standard[2]["spec"]


def test_the_status_reader_waits_for_the_new_generation_and_live_canaries_only():
    created, canary, promoted, aborted, _ = services("Standard")
    observed = {
        **canary,
        "metadata": {**canary["metadata"], "generation": 2},
        "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert kserve.ready_state(observed) == (False, "the controller has not observed generation 2 yet (observed 1)")
    name = canary["spec"]["canary"][0]["predictor"]["name"]
    observed["status"] = {
        "observedGeneration": 2,
        "conditions": [{"type": "Ready", "status": "True"}],
        "canaryStatuses": [{"name": name, "ready": False}],
    }
    assert kserve.ready_state(observed) == (False, f"canary {name} is not ready")
    dark = {
        **aborted,
        "metadata": {**aborted["metadata"], "generation": 3},
        "status": {**observed["status"], "observedGeneration": 3},
    }
    assert kserve.ready_state(dark) == (True, "ready")  # an aborted canary has no traffic to wait for
    edited = {
        **dark,
        "metadata": {
            **dark["metadata"],
            "annotations": {**dark["metadata"]["annotations"], kserve.CANARY_PERCENT: "ten"},
        },
    }
    assert kserve.describe(edited).canary_percent == 0


@pytest.mark.parametrize("version", KSERVE_VERSIONS)
def test_the_payload_logger_validates_on_every_supported_kserve(version):
    """``spec.predictor.logger`` (url, mode, metadataHeaders) is in every supported KServe's CRD."""
    schema = schema_for(version, "InferenceService")
    for obj in services("Knative", logged=True):
        assert obj["spec"]["predictor"]["logger"] == {
            "url": "http://credit-model-v2-prediction-log.team-a.svc.cluster.local/",
            "mode": "all",
            "metadataHeaders": ["X-Request-Id"],
        }
        assert violations(obj, schema) == []
    created, canary, promoted, *_ = services("Standard", logged=True)
    assert violations(created, schema) == []
    if version >= STANDARD_CANARY_SINCE:
        assert canary["spec"]["canary"][0]["predictor"]["logger"]["mode"] == "all"
        assert violations(canary, schema) == [] and violations(promoted, schema) == []


def test_the_sinks_deployment_and_service_validate_against_kubernetes_schemas():
    """Checked field by field against the schemas of the kubernetes client's models (tests/kube_core_schema.py)."""
    from tests.conformance.kserve.manifests import sinks
    from tests.kube_core_schema import schema_for_kind

    objects = sinks()
    assert [obj["kind"] for obj in objects] == ["Deployment", "Service"] * 2
    for obj in objects:
        assert violations(obj, schema_for_kind(obj["kind"])) == [], obj
    deployment = objects[0]
    pod = deployment["spec"]["template"]["spec"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert pod["terminationGracePeriodSeconds"] > kserve.SINK_SHUTDOWN_SECONDS  # the SIGTERM flush fits
    assert pod["containers"][0]["securityContext"]["runAsNonRoot"] is True
    bad = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    assert violations(bad, schema_for_kind("Deployment")) == ['unknown field "spec.replica"']
