"""serve-model and the serving commands against a loopback Kubernetes API (tests/kube_api_server.py)
and a gs:// registry on fake-gcs-server: the exact requests, canaries that become Ready and one
that never does, both deployment modes, RBAC and version refusals."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gated_training.config import ServingSettings
from gated_training.errors import GatedTrainingError
from gated_training.registry.store import ModelRegistry, smoke_files
from gated_training.serving import manifests as kserve
from gated_training.serving.layout import serving_files, serving_record
from gated_training.steps.serve_model import serve_model
from tests.gcs_server import fake_gcs
from tests.kube_api_server import KubeApiServer
from tests.registry_helpers import model_bytes

BUCKET = "models"
REGISTRY = f"gs://{BUCKET}/registry"
IMAGE = "registry.example.com/kfp-gated-training-serving:0.1.0"
NAMESPACE = "team-a"
ISVC = f"/apis/serving.kserve.io/v1beta1/namespaces/{NAMESPACE}/inferenceservices"
RUNTIME = f"/apis/serving.kserve.io/v1alpha1/namespaces/{NAMESPACE}/servingruntimes"
STRICT = {"fieldValidation": ["Strict"]}


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    with fake_gcs(tmp_path_factory.mktemp("gcs") / "fake-gcs-server.log", BUCKET) as server:
        yield server


@pytest.fixture
def registry(gcs, request):
    # One model per test: the fake GCS bucket is shared by the module.
    return ModelRegistry(REGISTRY, f"credit-{request.node.name[5:40].replace('_', '-').strip('-')}")


def deploy(registry: ModelRegistry, tmp_path, constant: int, image: str = IMAGE) -> str:
    """What deploy-model leaves: a promoted version with the serving layout, and its record."""
    rows = pd.DataFrame({"x": [0.0, 1.0]})
    files = {
        **serving_files(model_bytes(tmp_path, constant), registry.model_name),
        **smoke_files(rows, [constant, constant], [[1.0 - constant, float(constant)]] * 2),
    }
    version, sha = registry.publish(files, {"serving": serving_record(image)})
    champion = registry.champion()
    registry.promote(version, sha, champion.token if champion else None, reason="gates passed")
    (tmp_path / f"deployment-{version}.json").write_text(json.dumps({"promoted": True, "version": version}))
    return version


SETTING_NAMES = {
    "namespace": "serving_namespace",
    "mode": "serving_mode",
    "canary_traffic_percent": "canary_traffic_percent",
    "ready_timeout_seconds": "serving_ready_timeout_seconds",
    "service_account": "serving_service_account",
    "prediction_log_uri": "prediction_log_uri",
    "prediction_log_headers": "prediction_log_headers",
}


def settings(**options) -> tuple[ServingSettings, dict]:
    """The serving settings among ``options`` (by their short names), and the rest."""
    named = {SETTING_NAMES[k]: v for k, v in options.items() if k in SETTING_NAMES}
    return ServingSettings(**{"serving_namespace": NAMESPACE, **named}), {
        k: v for k, v in options.items() if k not in SETTING_NAMES
    }


def serve(registry, tmp_path, api, version, **options):
    options.setdefault("ready_timeout_seconds", 5)
    chosen, rest = settings(**options)
    return serve_model(
        deployment_path=str(tmp_path / f"deployment-{version}.json"),
        registry_uri=REGISTRY,
        model_name=registry.model_name,
        settings=chosen,
        kube_api_url=api.url,
        serving_out=str(tmp_path / "serving.json"),
        poll_seconds=0.01,
        **rest,
    )


def serving_then_deployed(registry, tmp_path, api, mode: str = "Knative") -> tuple[str, str]:
    """A first version served (created), then a second deployed, not yet served: (first, second)."""
    first = deploy(registry, tmp_path, 0)
    serve(registry, tmp_path, api, first, mode=mode)
    return first, deploy(registry, tmp_path, 1)


def calls(api: KubeApiServer) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in api.requests]


def test_the_first_version_creates_the_runtime_and_the_service_and_waits_for_ready(registry, tmp_path):
    version = deploy(registry, tmp_path, 0)
    name = registry.model_name
    with KubeApiServer() as api:
        outcome = serve(registry, tmp_path, api, version, registry_key_secret=("registry-key", "key"))
    assert calls(api) == [
        ("GET", f"{RUNTIME}/gated-training"),
        ("POST", RUNTIME),
        ("GET", f"{ISVC}/{name}"),
        ("POST", ISVC),
        ("GET", f"{ISVC}/{name}"),
        ("GET", f"{ISVC}/{name}"),
    ]
    posts = [r for r in api.requests if r["method"] == "POST"]
    assert all(r["query"] == STRICT for r in posts)
    manifest, sha = registry.read_manifest(version)
    assert posts[0]["body"] == kserve.serving_runtime(
        namespace=NAMESPACE, image=IMAGE, registry_key_secret=("registry-key", "key")
    )
    release = kserve.Release(
        model_name=name,
        version=version,
        manifest_sha256=sha,
        registry_uri=REGISTRY,
        storage_uri=f"{REGISTRY}/{name}/versions/{version}/serve",
    )
    assert posts[1]["body"] == kserve.inference_service(namespace=NAMESPACE, release=release, mode="Knative")
    assert outcome.served and outcome.action == "created" and outcome.mode == "Knative" and outcome.runtime == "created"
    assert outcome.url == f"http://{name}.{NAMESPACE}.example.com"
    assert json.loads((tmp_path / "serving.json").read_text())["version"] == version


def test_a_new_champion_is_a_knative_canary_at_the_percent_asked(registry, tmp_path):
    with KubeApiServer() as api:
        first, second = serving_then_deployed(registry, tmp_path, api)
        api.requests.clear()
        outcome = serve(registry, tmp_path, api, second, canary_traffic_percent=25)
        patch = next(r for r in api.requests if r["method"] == "PATCH")
        stored = api.objects[("inferenceservices", NAMESPACE, registry.model_name)]
    assert patch["content_type"] == "application/merge-patch+json" and patch["query"] == STRICT
    assert patch["body"]["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert {e["name"]: e["value"] for e in patch["body"]["spec"]["predictor"]["model"]["env"]}[
        "GATED_TRAINING_VERSION"
    ] == second
    assert calls(api)[:3] == [
        ("GET", f"{RUNTIME}/gated-training"),
        ("GET", f"{ISVC}/{registry.model_name}"),
        ("PATCH", f"{ISVC}/{registry.model_name}"),
    ]  # the runtime is unchanged: no write
    assert outcome.served and outcome.action == "canary" and outcome.canary_percent == 25
    assert outcome.stable_version == first and outcome.runtime == "unchanged"
    assert stored["metadata"]["generation"] == 2 and stored["status"]["observedGeneration"] == 2
    assert registry.champion().version == second


def test_a_canary_that_never_becomes_ready_gets_no_traffic_and_the_champion_goes_back(registry, tmp_path):
    with KubeApiServer() as api:
        first, second = serving_then_deployed(registry, tmp_path, api)
        api.failing_versions.add(second)
        api.requests.clear()
        outcome = serve(registry, tmp_path, api, second, ready_timeout_seconds=1)
        patches = [r["body"] for r in api.requests if r["method"] == "PATCH"]
    assert patches[0]["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert patches[-1] == {
        "metadata": {"annotations": {kserve.CANARY_PERCENT: "0"}},
        "spec": {"predictor": {"canaryTrafficPercent": 0}},
    }
    assert not outcome.served and outcome.action == "canary_aborted" and outcome.canary_percent == 0
    assert "RevisionFailed" in outcome.why or "not ready" in outcome.why
    assert outcome.champion_restored_to == first
    pointer = registry.champion().pointer
    assert pointer["version"] == first and pointer["action"] == "rollback" and "never became Ready" in pointer["reason"]


def test_standard_mode_canaries_use_spec_canary(registry, tmp_path):
    with KubeApiServer(kserve_version="v0.20.0") as api:
        first, second = serving_then_deployed(registry, tmp_path, api, mode="Standard")
        outcome = serve(registry, tmp_path, api, second, mode="Standard")
        stored = api.objects[("inferenceservices", NAMESPACE, registry.model_name)]
    assert stored["metadata"]["annotations"][kserve.MODE_ANNOTATION] == "RawDeployment"
    assert stored["spec"]["canary"][0]["trafficPercent"] == 10
    assert outcome.served and outcome.mode == "Standard" and outcome.action == "canary"


def test_standard_mode_canaries_on_kserve_0_16_are_refused_not_dropped(registry, tmp_path):
    """Without strict field validation the API server would drop spec.canary and the new version
    would never serve while the run said canary; with it, the request fails, and the champion goes back."""
    with KubeApiServer(kserve_version="v0.16.0") as api:
        first, second = serving_then_deployed(registry, tmp_path, api, mode="Standard")
        with pytest.raises(
            kserve.ServingError,
            match=r"HTTP 400 Bad Request: strict decoding error: unknown field "
            r'"spec.canary".*need KServe >= 0.20.*restored to ' + first,
        ):
            serve(registry, tmp_path, api, second, mode="Standard")
    assert registry.champion().version == first


def test_without_rbac_the_message_says_which_permissions_and_the_champion_goes_back(registry, tmp_path):
    with KubeApiServer() as api:
        first, second = serving_then_deployed(registry, tmp_path, api)
        api.forbidden.add("patch")
        with pytest.raises(
            kserve.ServingError,
            match=r"HTTP 403 .*cannot patch resource \"inferenceservices\".*"
            r"kubeflow-edit role grants them.*restored to " + first,
        ):
            serve(registry, tmp_path, api, second)
    assert registry.champion().version == first


def test_another_models_service_and_a_mode_change_are_refused(registry, tmp_path):
    first = deploy(registry, tmp_path, 0)
    with KubeApiServer() as api:
        serve(registry, tmp_path, api, first)
        key = ("inferenceservices", NAMESPACE, registry.model_name)
        api.objects[key]["metadata"]["annotations"][kserve.REGISTRY_MODEL] = "someone-else"
        second = deploy(registry, tmp_path, 1)
        with pytest.raises(kserve.ServingError, match="serves 'someone-else'.*refusing to take it over"):
            serve(registry, tmp_path, api, second)
        api.objects[key]["metadata"]["annotations"][kserve.REGISTRY_MODEL] = registry.model_name
        third = deploy(registry, tmp_path, 0)
        with pytest.raises(kserve.ServingError, match="runs in Knative mode, this run asks for Standard"):
            serve(registry, tmp_path, api, third, mode="Standard")


def test_a_version_the_pointer_no_longer_names_or_without_a_serving_image_is_not_served(registry, tmp_path):
    first = deploy(registry, tmp_path, 0)
    second = deploy(registry, tmp_path, 1)
    with KubeApiServer() as api:
        with pytest.raises(GatedTrainingError, match=f"the champion is now {second}, not {first}"):
            serve(registry, tmp_path, api, first)
        third = deploy(registry, tmp_path, 0, image="")
        with pytest.raises(GatedTrainingError, match=f"model version {third} records no serving image"):
            serve(registry, tmp_path, api, third)
        assert api.requests == []  # nothing reached Kubernetes


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"namespace": "Team_A"}, "parameter serving_namespace='Team_A'"),
        ({"namespace": ""}, "needs the namespace"),
        ({"canary_traffic_percent": 0}, "parameter canary_traffic_percent=0"),
        ({"mode": "Serverful"}, "parameter serving_mode='Serverful'"),
        ({"ready_timeout_seconds": 0}, "parameter serving_ready_timeout_seconds=0"),
        ({"service_account": "A B"}, "parameter serving_service_account='A B'"),
    ],
)
def test_bad_serving_parameters_are_refused_before_anything_is_read(tmp_path, bad, message):
    options = {
        "deployment_path": str(tmp_path / "none.json"),
        "registry_uri": REGISTRY,
        "model_name": "m",
        "serving_out": str(tmp_path / "s.json"),
        "kube_api_url": "http://127.0.0.1:9",
    }
    with pytest.raises(GatedTrainingError, match=message):
        chosen, rest = settings(**bad)
        serve_model(**options, **rest, settings=chosen)


def cli(api: KubeApiServer, registry: ModelRegistry, *args: str) -> int:
    from gated_training.cli import main

    return main([*args, "--kube-api", api.url, "--registry", REGISTRY, "--model-name", registry.model_name])


def served_version(api: KubeApiServer, registry: ModelRegistry) -> tuple[str, int]:
    obj = api.objects[("inferenceservices", NAMESPACE, registry.model_name)]
    described = kserve.describe(obj)
    return described.version, described.canary_percent


def test_traffic_follows_the_registry_through_the_cli(registry, tmp_path, capsys):
    with KubeApiServer() as api:
        first, second = serving_then_deployed(registry, tmp_path, api)
        serve(registry, tmp_path, api, second)
        capsys.readouterr()

        assert cli(api, registry, "serving", "status", "--namespace", NAMESPACE) == 0
        assert f"canary: 10 % to the champion {second}, the rest to {first}" in capsys.readouterr().out

        api.requests.clear()
        assert cli(api, registry, "serving", "promote", "--namespace", NAMESPACE) == 0
        patch = next(r for r in api.requests if r["method"] == "PATCH")
        assert patch["body"]["spec"] == {"predictor": {"canaryTrafficPercent": None}}
        assert served_version(api, registry) == (second, 0)

        # No canary: rollback moves the registry back and the previous champion serves all traffic.
        assert cli(api, registry, "serving", "rollback", "--namespace", NAMESPACE, "--reason", "latency") == 0
        assert registry.champion().version == first and served_version(api, registry) == (first, 0)
        assert "all traffic to " + first in capsys.readouterr().out

        # `gated-training promote` with --serving-namespace: the pointer, then the service.
        assert cli(api, registry, "promote", second, "--reason", "approved", "--serving-namespace", NAMESPACE) == 0
        assert registry.champion().version == second and served_version(api, registry) == (second, 0)

        # A rollback without the namespace leaves the service behind: status says so, sync repairs.
        assert cli(api, registry, "rollback", "--reason", "registry only") == 0
        capsys.readouterr()
        assert cli(api, registry, "serving", "status", "--namespace", NAMESPACE) == 1
        out = capsys.readouterr().out
        assert "OUT OF STEP: the InferenceService is behind" in out and "serving sync --namespace team-a" in out
        assert cli(api, registry, "serving", "sync", "--namespace", NAMESPACE) == 0
        assert served_version(api, registry) == (first, 0)
        assert cli(api, registry, "serving", "status", "--namespace", NAMESPACE) == 0

        # The API refuses: the command fails and names what is behind and the repair.
        api.forbidden.add("patch")
        capsys.readouterr()
        assert cli(api, registry, "promote", second, "--reason", "again", "--serving-namespace", NAMESPACE) == 1
        err = capsys.readouterr().err
        assert f"the registry champion is {second} (just moved); the InferenceService is behind" in err
        assert "repair: `gated-training serving sync --namespace team-a`" in err and "HTTP 403" in err
        api.forbidden.clear()
        assert cli(api, registry, "serving", "sync", "--namespace", NAMESPACE) == 0


def test_serving_rollback_of_a_canary_takes_its_traffic_and_the_champion_back(registry, tmp_path):
    with KubeApiServer() as api:
        first, second = serving_then_deployed(registry, tmp_path, api)
        serve(registry, tmp_path, api, second, canary_traffic_percent=30)
        api.requests.clear()
        assert cli(api, registry, "serving", "rollback", "--namespace", NAMESPACE, "--reason", "errors up") == 0
        patch = next(r for r in api.requests if r["method"] == "PATCH")
        assert patch["body"]["spec"] == {"predictor": {"canaryTrafficPercent": 0}}
    pointer = registry.champion().pointer
    assert pointer["version"] == first and pointer["action"] == "rollback" and pointer["reason"] == "errors up"


def test_serving_promote_refuses_without_a_canary_or_when_the_registry_disagrees(registry, tmp_path, capsys):
    first = deploy(registry, tmp_path, 0)
    with KubeApiServer() as api:
        serve(registry, tmp_path, api, first)
        assert cli(api, registry, "serving", "promote", "--namespace", NAMESPACE) == 1
        assert f"no canary in progress (it serves {first})" in capsys.readouterr().err
        second = deploy(registry, tmp_path, 1)
        serve(registry, tmp_path, api, second)
        registry.promote(first, registry.read_manifest(first)[1], registry.champion().token, reason="by hand")
        assert cli(api, registry, "serving", "promote", "--namespace", NAMESPACE) == 1
        assert f"the canary is {second}, the registry champion is {first}" in capsys.readouterr().err


def test_a_server_error_with_an_html_body_is_named_and_the_champion_goes_back(registry, tmp_path):
    """A proxy or a crashing API server answers 500 with a page, not a Status: the message says so."""
    with KubeApiServer() as api:
        first, second = serving_then_deployed(registry, tmp_path, api)
        original = api.answer

        def broken(method, path, query, content_type, body):
            if method == "PATCH":
                return 500, {"html": "<html><body>502 Bad Gateway</body></html>"}, {}
            return original(method, path, query, content_type, body)

        api.answer = broken
        with pytest.raises(
            kserve.ServingError, match=r"patch inferenceservices/.* HTTP 500 .*Bad Gateway.*restored to " + first
        ):
            serve(registry, tmp_path, api, second)
    assert registry.champion().version == first


def test_an_unreachable_api_server_is_named_and_the_champion_goes_back(registry, tmp_path):
    """The Kubernetes API down (or a wrong --kube-api): a ServingError, never a raw urllib3 traceback."""
    from tests.mlserver_process import free_port

    first = deploy(registry, tmp_path, 0)
    with KubeApiServer() as api:
        serve(registry, tmp_path, api, first)
    second = deploy(registry, tmp_path, 1)
    closed = type("Closed", (), {"url": f"http://127.0.0.1:{free_port()}"})()
    with pytest.raises(
        kserve.ServingError,
        match=r"get servingruntimes/gated-training in team-a: the Kubernetes API "
        r"is unreachable: .*restored to " + first,
    ):
        serve(registry, tmp_path, closed, second)
    assert registry.champion().version == first


def test_the_prediction_log_applies_the_sink_before_the_logger_sends_to_it(registry, tmp_path):
    """With prediction_log_uri the sink's Deployment and Service are applied (strict, merge-patched when they
    drift, left alone when they match), then the predictor is created with KServe's payload logger pointing at
    it, the header names in Go's spelling, in the new version's canary too."""
    version = deploy(registry, tmp_path, 0)
    name = registry.model_name
    sink = f"{name}-prediction-log"
    deployments = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
    services = f"/api/v1/namespaces/{NAMESPACE}/services"
    logging = {"prediction_log_uri": "gs://logs/predictions", "prediction_log_headers": "x-request-id, x-tenant"}
    with KubeApiServer() as api:
        outcome = serve(registry, tmp_path, api, version, **logging)
        assert calls(api)[:6] == [
            ("GET", f"{RUNTIME}/gated-training"),
            ("POST", RUNTIME),
            ("GET", f"{deployments}/{sink}"),
            ("POST", deployments),
            ("GET", f"{services}/{sink}"),
            ("POST", services),
        ]
        assert outcome.prediction_log == {
            "deployment": "created",
            "service": "created",
            "uri": "gs://logs/predictions",
            "sink": sink,
        }
        deployment = api.objects[("deployments", NAMESPACE, sink)]
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[:4] == ["python", "-m", "gated_training.cli", "sink"] and "gs://logs/predictions" in args
        logger = api.objects[("inferenceservices", NAMESPACE, name)]["spec"]["predictor"]["logger"]
        assert logger == {
            "url": f"http://{sink}.{NAMESPACE}.svc.cluster.local/",
            "mode": "all",
            "metadataHeaders": ["X-Request-Id", "X-Tenant"],
        }
        # The next version: the sink is left alone, and the canary's predictor logs too.
        second = deploy(registry, tmp_path, 1)
        api.requests.clear()
        outcome = serve(registry, tmp_path, api, second, **logging)
        assert outcome.prediction_log["deployment"] == outcome.prediction_log["service"] == "unchanged"
        assert not [r for r in api.requests if r["method"] != "GET" and "/deployments" in r["path"]]
        assert api.objects[("inferenceservices", NAMESPACE, name)]["spec"]["predictor"]["logger"] == logger
        # A sink someone edited is put back by a strict merge patch.
        api.objects[("deployments", NAMESPACE, sink)]["spec"]["replicas"] = 3
        api.requests.clear()
        third = deploy(registry, tmp_path, 0)
        assert serve(registry, tmp_path, api, third, **logging).prediction_log["deployment"] == "updated"
        (patch,) = [r for r in api.requests if r["method"] == "PATCH" and "/deployments" in r["path"]]
        assert patch["query"] == STRICT and patch["body"]["spec"]["replicas"] == 1


def test_a_prediction_log_outside_a_bucket_is_refused_before_anything_is_sent():
    with pytest.raises(GatedTrainingError, match="prediction_log_uri='/tmp/log': a gs://bucket/prefix"):
        ServingSettings(serving_namespace=NAMESPACE, prediction_log_uri="/tmp/log")
    with pytest.raises(GatedTrainingError, match="prediction_log_headers=.*comma-separated HTTP header names"):
        ServingSettings(serving_namespace=NAMESPACE, prediction_log_headers="X-Request-Id, bad header")
