"""Contract tests: `gated-training upload | submit | schedule` against a loopback KFP v2beta1 API.

No cluster exists here, so the real ``kfp.Client`` talks to tests/kfp_api_server.py, which
records every request. The tests assert what was sent (the uploaded bytes, parameters, cron,
version pinning) and how error statuses surface. Payloads are built by kfp, never by hand.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys

import pytest
import yaml

from gated_training import __version__
from gated_training.cli import main
from tests.conftest import REPO_ROOT
from tests.kfp_api_server import FakeKubeflowPipelines

CLUSTER_STATE = [
    "--set",
    "registry_uri=gs://models/registry",
    "--set",
    "mlflow_tracking_uri=https://mlflow.example.com",
]
PUSHED_IMAGE = f"registry.example.com/ml/kfp-gated-training:{__version__}"
# The YAML a user uploads: compiled for an image a cluster can pull (the checked-in one runs
# localhost/…, which upload refuses). Written inside the checkout, as `make compile IMAGE=…` does.
PUSHED_YAML = REPO_ROOT / "compiled" / f".contract-{os.getpid()}.yaml"


@pytest.fixture(scope="module", autouse=True)
def pushed_yaml():
    subprocess.run(
        [sys.executable, "-m", "pipelines.compile", str(PUSHED_YAML)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "IMAGE": PUSHED_IMAGE},
    )
    global COMPILED_BYTES
    COMPILED_BYTES = PUSHED_YAML.read_bytes()
    yield PUSHED_YAML
    PUSHED_YAML.unlink(missing_ok=True)


COMPILED_BYTES = b""


@pytest.fixture(autouse=True)
def isolated_kfp_context(tmp_path, monkeypatch):
    """kfp.Client reads (and may write) ~/.config/kfp/context.json: never the developer's own."""
    import kfp

    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    for variable in ("KF_PIPELINES_ENDPOINT", "KF_PIPELINES_UI_ENDPOINT", "KF_PIPELINES_TOKEN"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def kfp_api():
    with FakeKubeflowPipelines() as server:
        yield server


def cli(server: FakeKubeflowPipelines, *args: str) -> int:
    takes_yaml = args[:1] in (("upload",), ("submit",)) or args[:2] == ("schedule", "create")
    extra = ["--pipeline", str(PUSHED_YAML)] if takes_yaml and "--pipeline" not in args else []
    return main([*args, *extra, "--host", server.url])


def expected_version_name() -> str:
    commit = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert COMPILED_BYTES
    dirty = any(not line[3:].startswith("compiled/") for line in changed)
    return f"{__version__}-{commit[:7]}{'-dirty' if dirty else ''}-{hashlib.sha256(COMPILED_BYTES).hexdigest()[:8]}"


def compiled_documents() -> list[dict]:
    return list(yaml.safe_load_all(COMPILED_BYTES))


def posts(server: FakeKubeflowPipelines) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in server.requests if r.method != "GET"]


# ---- upload ----------------------------------------------------------------------------------


def test_first_upload_creates_the_pipeline_then_the_named_version_with_the_compiled_bytes(kfp_api, capsys):
    assert cli(kfp_api, "upload") == 0

    (pipeline_upload,) = kfp_api.calls("POST", "/apis/v2beta1/pipelines/upload")
    assert pipeline_upload.query["name"] == "gated-training"
    assert pipeline_upload.files["uploadfile"] == COMPILED_BYTES
    (version_upload,) = kfp_api.calls("POST", "/apis/v2beta1/pipelines/upload_version")
    assert version_upload.query == {"name": expected_version_name(), "pipelineid": "pipeline-0001"}
    assert version_upload.files["uploadfile"] == COMPILED_BYTES
    assert re.fullmatch(rf"{re.escape(__version__)}-[0-9a-f]{{7}}(-dirty)?-[0-9a-f]{{8}}", expected_version_name())
    out = capsys.readouterr().out
    assert "created pipeline 'gated-training'" in out and f"'{expected_version_name()}' uploaded" in out


def test_upload_to_an_existing_pipeline_adds_only_a_version_and_is_idempotent(kfp_api, capsys):
    assert cli(kfp_api, "upload", "--version-name", "0.0.9-previous") == 0
    kfp_api.requests.clear()

    assert cli(kfp_api, "upload") == 0
    assert posts(kfp_api) == [("POST", "/apis/v2beta1/pipelines/upload_version")]
    assert kfp_api.calls("POST", ".*upload_version")[0].query["name"] == expected_version_name()

    kfp_api.requests.clear()
    assert cli(kfp_api, "upload") == 0
    assert posts(kfp_api) == [], "an existing version name is never uploaded twice"
    assert "already uploaded, unchanged" in capsys.readouterr().out
    names = sorted(v["display_name"] for v in kfp_api.versions.values())
    assert names == sorted(["gated-training", "0.0.9-previous", expected_version_name()])


def test_upload_of_a_missing_yaml_says_to_compile(kfp_api, capsys, tmp_path):
    assert cli(kfp_api, "upload", "--pipeline", str(tmp_path / "nope.yaml")) == 1
    assert "run `make compile` first" in capsys.readouterr().err
    assert kfp_api.requests == []


# ---- submit ----------------------------------------------------------------------------------


def test_submit_sends_the_compiled_spec_and_exactly_the_given_parameters(kfp_api, capsys, tmp_path):
    params = tmp_path / "cluster.params.yaml"
    params.write_text(
        "data_uri: gs://data/batch.parquet\nmin_accuracy: 0.9\nn_estimators: 200\n"
        "registry_uri: gs://models/registry\nmlflow_tracking_uri: https://mlflow.example.com\n"
    )
    code = cli(
        kfp_api,
        "submit",
        "--params",
        str(params),
        "--set",
        "interaction_features=true",
        "--set",
        "min_accuracy=0.8",
        "--experiment",
        "nightly",
        "--run-name",
        "manual-1",
        "--pipeline-root",
        "gs://kfp-root/runs",
        "--service-account",
        "pipeline-runner",
    )
    assert code == 0

    (run,) = kfp_api.calls("POST", "/apis/v2beta1/runs")
    assert run.body["display_name"] == "manual-1"
    from gated_training.config import FeatureSettings, GateThresholds, ModelSettings, group_defaults

    # Settings given by their flat names travel in their groups: the compiled defaults plus what was given.
    assert run.body["runtime_config"] == {
        "pipeline_root": "gs://kfp-root/runs",
        "parameters": {
            "data_uri": "gs://data/batch.parquet",
            "registry_uri": "gs://models/registry",
            "mlflow_tracking_uri": "https://mlflow.example.com",
            "pipeline_version": expected_version_name(),
            "gate": {**group_defaults(GateThresholds), "min_accuracy": 0.8},
            "training": {**group_defaults(ModelSettings), "n_estimators": 200},
            "features": {**group_defaults(FeatureSettings), "interaction_features": True},
        },
    }
    assert run.body["service_account"] == "pipeline-runner"
    assert run.body["pipeline_spec"] == compiled_documents()[0]
    assert "pipeline_version_reference" not in run.body
    experiment = kfp_api.experiments[run.body["experiment_id"]]
    assert experiment["display_name"] == "nightly"
    out = capsys.readouterr().out
    assert f"{kfp_api.url}/#/runs/details/run-" in out


def test_submit_a_pinned_version(kfp_api):
    assert cli(kfp_api, "upload") == 0
    version_id = next(
        v["pipeline_version_id"] for v in kfp_api.versions.values() if v["display_name"] == expected_version_name()
    )
    assert cli(kfp_api, "submit", "--version", expected_version_name(), *CLUSTER_STATE) == 0
    (run,) = kfp_api.calls("POST", "/apis/v2beta1/runs")
    assert run.body["pipeline_version_reference"] == {"pipeline_id": "pipeline-0001", "pipeline_version_id": version_id}
    assert run.body["runtime_config"]["parameters"]["pipeline_version"] == expected_version_name()
    assert "pipeline_spec" not in run.body


@pytest.mark.parametrize(
    ("final_state", "outputs", "failing", "exit_code", "outcome"),
    [
        (
            "SUCCEEDED",
            {"validate-data": "passed", "check-drift": "train", "evaluate-model": "deploy"},
            None,
            0,
            "deployed (or blocked: the champion changed during the run)",
        ),
        (
            "SUCCEEDED",
            {"validate-data": "passed", "check-drift": "train", "evaluate-model": "block"},
            None,
            0,
            "blocked by the model gate",
        ),
        (
            "SUCCEEDED",
            {"validate-data": "passed", "check-drift": "skip"},
            None,
            0,
            "blocked by the drift gate, or skipped: no new data",
        ),
        ("SUCCEEDED", {"validate-data": "blocked"}, None, 0, "blocked by the data gate"),
        ("FAILED", {"validate-data": "passed", "check-drift": "train"}, "train-model", 1, "failed at train-model"),
        ("CANCELED", {"validate-data": "passed"}, None, 1, "canceled"),
    ],
)
def test_submit_wait_reads_the_branch_taken_from_argo_node_names(
    kfp_api, capsys, final_state, outputs, failing, exit_code, outcome
):
    """task_details as a real backend returns them: Argo node names (deploy-model, deploy-model-driver,
    executor, condition-2, root-driver…) built from the run's own spec, not display names."""
    kfp_api.run_states = ["PENDING", "RUNNING", "RUNNING", final_state]
    kfp_api.gate_outputs, kfp_api.failing_task = outputs, failing
    assert cli(kfp_api, "submit", "--wait", "--poll-seconds", "0.01", *CLUSTER_STATE) == exit_code
    out = capsys.readouterr().out
    assert "state: PENDING" in out and "state: RUNNING" in out and f"state: {final_state}" in out
    assert f"run {final_state}: {outcome}" in out
    assert len(kfp_api.calls("GET", r"/apis/v2beta1/runs/run-\d+")) == 4
    run = next(iter(kfp_api.runs.values()))
    names = {task["display_name"] for task in run["run_details"]["task_details"]}
    assert {"root-driver", "validate-data-driver", "executor"} <= names and "Validate data (GX)" not in names
    if failing:
        assert f"    {failing}: FAILED" in out


def test_submit_wait_gives_up_after_the_timeout_and_says_where_to_look(kfp_api, capsys):
    kfp_api.run_states = ["RUNNING"]
    assert cli(kfp_api, "submit", "--wait", "--timeout", "0.05", "--poll-seconds", "0.01", *CLUSTER_STATE) == 1
    assert "still RUNNING after" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--set", "mlflow_tracking_uri=https://mlflow"],
            "registry_uri='.gated-training/registry' is a path inside the pod",
        ),
        (["--set", "registry_uri=gs://m/r"], "mlflow_tracking_uri='' would track into the pod"),
        ([*CLUSTER_STATE, "--set", "no_such=1"], "unknown parameter 'no_such'"),
        ([*CLUSTER_STATE, "--set", "min_accuracy=high"], "parameter gate.min_accuracy='high'"),
        ([*CLUSTER_STATE, "--set", "min_accuracy=1.5"], "min_accuracy"),
    ],
)
def test_submit_refuses_bad_parameters_before_any_request(kfp_api, capsys, arguments, message):
    assert cli(kfp_api, "submit", *arguments) == 2
    assert message in capsys.readouterr().err
    assert kfp_api.requests == []


def test_submit_of_a_version_never_uploaded_says_to_upload(kfp_api, capsys):
    assert cli(kfp_api, "submit", "--version", "9.9.9-abc", *CLUSTER_STATE) == 1
    assert "pipeline 'gated-training' not found" in capsys.readouterr().err
    assert cli(kfp_api, "upload") == 0
    assert cli(kfp_api, "submit", "--version", "9.9.9-abc", *CLUSTER_STATE) == 1
    assert "has no version '9.9.9-abc'" in capsys.readouterr().err
    assert kfp_api.calls("POST", "/apis/v2beta1/runs") == []


# ---- schedule --------------------------------------------------------------------------------


def test_schedule_pins_the_uploaded_version_with_cron_one_at_a_time_and_no_catchup(kfp_api, capsys):
    assert cli(kfp_api, "upload") == 0
    version_id = next(
        v["pipeline_version_id"] for v in kfp_api.versions.values() if v["display_name"] == expected_version_name()
    )
    assert (
        cli(
            kfp_api,
            "schedule",
            "create",
            "--cron",
            "0 30 2 * * MON-FRI",
            "--experiment",
            "nightly",
            "--service-account",
            "pipeline-runner",
            *CLUSTER_STATE,
        )
        == 0
    )

    (created,) = kfp_api.calls("POST", "/apis/v2beta1/recurringruns")
    body = created.body
    assert body["trigger"] == {"cron_schedule": {"cron": "0 30 2 * * MON-FRI"}}
    assert body["max_concurrency"] == 1
    assert body["no_catchup"] is True
    assert body["mode"] == "ENABLE"
    assert body["pipeline_version_reference"] == {"pipeline_id": "pipeline-0001", "pipeline_version_id": version_id}
    assert "pipeline_spec" not in body
    assert body["runtime_config"]["parameters"] == {
        "registry_uri": "gs://models/registry",
        "mlflow_tracking_uri": "https://mlflow.example.com",
        "pipeline_version": expected_version_name(),
    }
    assert body["service_account"] == "pipeline-runner"
    assert body["display_name"] == "gated-training-nightly"
    assert kfp_api.experiments[body["experiment_id"]]["display_name"] == "nightly"
    assert "pinned to version" in capsys.readouterr().out


def test_schedule_by_interval_with_catchup_created_paused(kfp_api):
    assert cli(kfp_api, "upload", "--version-name", "v1") == 0
    assert (
        cli(
            kfp_api,
            "schedule",
            "create",
            "--interval",
            "6h",
            "--version",
            "v1",
            "--catchup",
            "--disabled",
            "--max-concurrency",
            "2",
            "--name",
            "every-6h",
            *CLUSTER_STATE,
        )
        == 0
    )
    body = kfp_api.calls("POST", "/apis/v2beta1/recurringruns")[0].body
    assert body["trigger"] == {"periodic_schedule": {"interval_second": 21600}}
    assert (body["no_catchup"], body["mode"], body["max_concurrency"]) == (False, "DISABLE", 2)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 2 * * *", "has 5 fields; KFP's cron has 6, with seconds first"),
        ("0 0 25 * * *", "hour 25 is outside 0-23"),
        ("0 0 2 * FOO *", "month 'FOO' is not a number or JAN-DEC names"),
        ("@every 1h", "use --interval"),
    ],
)
def test_bad_cron_is_explained_before_any_request(kfp_api, capsys, cron, message):
    assert cli(kfp_api, "schedule", "create", "--cron", cron, *CLUSTER_STATE) == 2
    assert message in capsys.readouterr().err
    assert kfp_api.requests == []


def test_schedule_refuses_an_unuploaded_version_and_a_duplicate_name(kfp_api, capsys):
    assert cli(kfp_api, "upload", "--version-name", "v1") == 0
    assert cli(kfp_api, "schedule", "create", "--cron", "0 0 2 * * *", *CLUSTER_STATE) == 1
    assert f"has no version '{expected_version_name()}'" in capsys.readouterr().err
    assert cli(kfp_api, "schedule", "create", "--cron", "0 0 2 * * *", "--version", "v1", *CLUSTER_STATE) == 0
    assert cli(kfp_api, "schedule", "create", "--cron", "0 0 3 * * *", "--version", "v1", *CLUSTER_STATE) == 1
    assert "'gated-training-nightly' already exists" in capsys.readouterr().err
    assert len(kfp_api.calls("POST", "/apis/v2beta1/recurringruns")) == 1


def test_list_enable_disable_delete_by_name_or_id(kfp_api, capsys):
    assert cli(kfp_api, "upload", "--version-name", "v1") == 0
    assert cli(kfp_api, "schedule", "create", "--cron", "0 0 2 * * *", "--version", "v1", *CLUSTER_STATE) == 0
    recurring_id = next(iter(kfp_api.recurring_runs))
    capsys.readouterr()

    assert cli(kfp_api, "schedule", "list") == 0
    assert re.search(
        rf"{recurring_id}\s+gated-training-nightly\s+enabled\s+cron 0 0 2 \* \* \*", capsys.readouterr().out
    )
    assert cli(kfp_api, "schedule", "disable", "gated-training-nightly") == 0
    assert kfp_api.recurring_runs[recurring_id]["mode"] == "DISABLE"
    assert cli(kfp_api, "schedule", "enable", recurring_id) == 0
    assert kfp_api.recurring_runs[recurring_id]["mode"] == "ENABLE"
    assert cli(kfp_api, "schedule", "delete", recurring_id) == 0
    assert kfp_api.recurring_runs == {}
    assert posts(kfp_api)[-3:] == [
        ("POST", f"/apis/v2beta1/recurringruns/{recurring_id}:disable"),
        ("POST", f"/apis/v2beta1/recurringruns/{recurring_id}:enable"),
        ("DELETE", f"/apis/v2beta1/recurringruns/{recurring_id}"),
    ]
    assert cli(kfp_api, "schedule", "delete", "gated-training-nightly") == 1
    assert "no recurring run with id or name 'gated-training-nightly'" in capsys.readouterr().err


def test_listing_follows_every_page(kfp_api, capsys):
    for hour in range(3):
        kfp_api.recurring_runs[f"r{hour}"] = {
            "recurring_run_id": f"r{hour}",
            "display_name": f"s{hour}",
            "mode": "ENABLE",
            "trigger": {"cron_schedule": {"cron": f"0 0 {hour} * * *"}},
        }
    original = kfp_api._list_recurring_runs

    def two_per_page(request):
        request.query["page_size"] = "2"
        return original(request)

    kfp_api._list_recurring_runs = two_per_page
    assert cli(kfp_api, "schedule", "list") == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["r0", "r1", "r2"]


# ---- connection and errors -------------------------------------------------------------------


def test_token_from_the_environment_or_a_file_is_sent_and_never_printed(kfp_api, capsys, monkeypatch, tmp_path):
    kfp_api.required_token = "s3cr3t-token-value"
    assert cli(kfp_api, "upload") == 1
    err = capsys.readouterr().err
    assert "401 Unauthorized" in err and "KF_PIPELINES_TOKEN" in err

    monkeypatch.setenv("KF_PIPELINES_TOKEN", "s3cr3t-token-value")
    assert cli(kfp_api, "upload") == 0
    monkeypatch.delenv("KF_PIPELINES_TOKEN")
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-token-value\n")
    assert cli(kfp_api, "schedule", "list", "--token-file", str(token_file)) == 0
    assert all(r.headers.get("authorization") == "Bearer s3cr3t-token-value" for r in kfp_api.requests[-2:])
    captured = capsys.readouterr()
    assert "s3cr3t" not in captured.out + captured.err


def test_endpoint_from_kf_pipelines_endpoint(kfp_api, monkeypatch):
    monkeypatch.setenv("KF_PIPELINES_ENDPOINT", kfp_api.url)
    assert main(["schedule", "list"]) == 0
    assert kfp_api.calls("GET", "/apis/v2beta1/recurringruns")


def test_forbidden_names_the_namespace(capsys):
    with FakeKubeflowPipelines(multi_user=True) as server:
        server.fail("POST", "/apis/v2beta1/pipelines/upload", 403, "permission to create pipelines denied")
        assert cli(server, "upload", "--namespace", "team-ml") == 1
        err = capsys.readouterr().err
        assert "permission denied (403 Forbidden) in team-ml" in err and "permission to create pipelines denied" in err
        assert server.calls("POST", "/apis/v2beta1/pipelines/upload")[0].query["namespace"] == "team-ml"


def test_server_errors_carry_the_server_message(kfp_api, capsys):
    kfp_api.fail("POST", "/apis/v2beta1/runs", 500, "database is locked")
    assert cli(kfp_api, "submit", *CLUSTER_STATE) == 1
    err = capsys.readouterr().err
    assert "creating run" in err and "500" in err and "database is locked" in err


def test_multi_user_backend_needs_a_namespace(capsys):
    with FakeKubeflowPipelines(multi_user=True) as server:
        assert cli(server, "schedule", "list") == 1
        assert "multi-user Kubeflow: pass --namespace" in capsys.readouterr().err
        assert cli(server, "schedule", "list", "--namespace", "team-ml") == 0
        assert server.calls("GET", "/apis/v2beta1/recurringruns")[-1].query["namespace"] == "team-ml"


def test_unreachable_host_fails_fast_and_says_how_to_connect(capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["schedule", "list", "--host", f"http://127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach Kubeflow Pipelines at http://127.0.0.1:{port}" in err and "--host" in err


# ---- the backends users have: versions, multi-user, images --------------------------------------


@pytest.mark.parametrize("tag", ["2.2.0", "2.4.0", "2.4.1", "2.5.0", "2.14.0", "2.17.0", "unknown"])
def test_the_default_yaml_is_accepted_by_every_supported_backend(capsys, tag):
    with FakeKubeflowPipelines(tag_name=tag) as server:
        assert cli(server, "upload") == 0
    assert f"KFP backend {tag}" in capsys.readouterr().out


def test_a_yaml_that_needs_a_newer_backend_is_refused_before_any_upload(capsys, tmp_path):
    """A YAML with retries inside a condition branch (effective only from 2.14) and the run-id
    placeholder (2.5): connect() reads tag_name from healthz and refuses an older backend."""
    spec, *rest = yaml.safe_load_all(COMPILED_BYTES)
    spec["components"]["comp-condition-1"]["dag"]["tasks"]["check-drift"]["retryPolicy"] = {"maxRetryCount": 2}
    spec["root"]["dag"]["tasks"]["validate-data"]["inputs"]["parameters"]["notify_webhook_url"] = {
        "runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}
    }
    newer = tmp_path / "newer.yaml"
    newer.write_text(yaml.safe_dump_all([spec, *rest]))
    with FakeKubeflowPipelines(tag_name="2.4.1") as server:
        assert cli(server, "upload", "--pipeline", str(newer)) == 1
        err = capsys.readouterr().err
        assert "runs KFP 2.4.1, older than the 2.14 this pipeline needs" in err
        assert "task retry policies inside condition branches (ignored before 2.14)" in err and "placeholders" in err
        assert [r.path for r in server.requests] == ["/apis/v2beta1/healthz"]
    with FakeKubeflowPipelines(tag_name="2.14.3") as server:
        assert cli(server, "upload", "--pipeline", str(newer)) == 0


def test_upload_and_submit_refuse_an_image_no_cluster_can_pull(kfp_api, capsys):
    from tests.conftest import COMPILED_PIPELINE

    assert cli(kfp_api, "upload", "--pipeline", str(COMPILED_PIPELINE)) == 1
    err = capsys.readouterr().err
    assert f"runs the image localhost/kfp-gated-training:{__version__}, which no cluster can pull" in err
    assert "make compile IMAGE=" in err
    assert cli(kfp_api, "submit", "--pipeline", str(COMPILED_PIPELINE), *CLUSTER_STATE) == 1
    assert kfp_api.requests == []


def test_multi_user_upload_version_submit_schedule_and_list_stay_in_the_namespace(capsys):
    """The default Kubeflow install: kfp.Client.get_pipeline_id lists only shared pipelines, so a
    private pipeline must be looked up with its namespace, or the second upload, submit --version
    and schedule create all fail."""
    with FakeKubeflowPipelines(multi_user=True) as server:
        ns = ["--namespace", "team-ml"]
        assert cli(server, "upload", "--version-name", "v1", *ns) == 0
        assert cli(server, "upload", "--version-name", "v2", *ns) == 0, "a second upload finds the private pipeline"
        (pipeline,) = server.pipelines.values()
        assert pipeline["namespace"] == "team-ml"
        assert sorted(v["display_name"] for v in server.versions.values()) == ["gated-training", "v1", "v2"]
        assert all(r.query.get("namespace") == "team-ml" for r in server.calls("GET", "/apis/v2beta1/pipelines"))
        assert "private pipeline in namespace 'team-ml'" in capsys.readouterr().out

        assert cli(server, "submit", "--version", "v2", *ns, *CLUSTER_STATE) == 0
        (run,) = server.calls("POST", "/apis/v2beta1/runs")
        assert run.body["pipeline_version_reference"]["pipeline_id"] == pipeline["pipeline_id"]
        assert server.experiments[run.body["experiment_id"]]["namespace"] == "team-ml"
        assert cli(server, "schedule", "create", "--cron", "0 0 2 * * *", "--version", "v1", *ns, *CLUSTER_STATE) == 0
        assert cli(server, "schedule", "list", *ns) == 0
        assert "gated-training-nightly" in capsys.readouterr().out

        # The shared space is another place: nothing there until --shared puts it there.
        assert cli(server, "submit", "--version", "v2", "--shared", *ns, *CLUSTER_STATE) == 1
        assert "not found in the shared pipelines" in capsys.readouterr().err
        assert cli(server, "upload", "--version-name", "v1", "--shared", *ns) == 0
        shared = [p for p in server.pipelines.values() if "namespace" not in p]
        assert len(shared) == 1 and len(server.pipelines) == 2
        assert "namespace" not in server.calls("POST", "/apis/v2beta1/pipelines/upload")[-1].query


def test_a_private_pipeline_is_invisible_to_kfp_get_pipeline_id_as_on_the_real_backend():
    """The stand-in reproduces the backend behaviour behind kfp issues #10909/#10609/#11550."""
    import kfp

    with FakeKubeflowPipelines(multi_user=True) as server:
        assert cli(server, "upload", "--namespace", "team-ml") == 0
        client = kfp.Client(host=server.url, namespace="team-ml")
        assert client.get_pipeline_id("gated-training") is None
        assert client.list_pipelines(namespace="team-ml").pipelines[0].display_name == "gated-training"


@pytest.mark.parametrize(
    ("body", "code", "printed", "message"),
    [
        (b"<html>proxy login</html>", 0, "KFP backend unknown", None),  # cannot tell: proceeds, says so
        (b'{"tag_name": null, "multi_user": false}', 0, "KFP backend unknown", None),
        (b'["2.17.0"]', 0, "KFP backend unknown", None),
        (
            b'{"tag_name": "2.17.0\\u001b[2J\\u001b]0;pwned\\u0007", "multi_user": false}',
            0,
            "KFP backend 2.17.02J0pwned",
            None,
        ),
        (
            b'{"tag_name": "2.1.0", "multi_user": false}',
            1,
            None,
            "runs KFP 2.1.0, older than the 2.2 this pipeline needs",
        ),
        (b'{"tag_name": "1.8.5", "multi_user": false}', 1, None, "runs KFP 1.8.5, older than the 2.2"),
    ],
)
def test_hostile_or_broken_healthz_replies(capsys, body, code, printed, message):
    """The healthz reply is input like any other: never printed raw, never trusted beyond a version."""
    with FakeKubeflowPipelines() as server:
        server.healthz_body = body
        assert cli(server, "upload") == code
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err and "\x07" not in captured.out + captured.err
    if printed:
        assert printed in captured.out
    if message:
        assert message in captured.err and "Upgrade Kubeflow Pipelines" in captured.err


def test_the_monitoring_pipeline_is_uploaded_beside_the_training_one_and_scheduled_in_the_namespace(capsys, tmp_path):
    """make upload-monitoring and make schedule-monitoring, on a multi-user backend: a pipeline of its own (named
    in the YAML), a recurring run one window at a time with its gs:// log and labels, and the same validation
    before any request (a pod-local prediction log is refused)."""
    pushed = tmp_path / "monitoring.yaml"
    subprocess.run(
        [sys.executable, "-m", "pipelines.compile", "--monitoring", str(pushed)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "IMAGE": PUSHED_IMAGE},
    )
    monitoring = ["--pipeline", str(pushed)]
    ns = ["--namespace", "team-ml"]
    where = [
        "--set", "prediction_log_uri=gs://models/prediction-log", "--set", "labels_uri=gs://models/labels",
        "--set", "monitoring.window_hours=24", *CLUSTER_STATE,
    ]  # fmt: skip
    with FakeKubeflowPipelines(multi_user=True) as server:
        assert cli(server, "upload", "--version-name", "m1", *monitoring, *ns) == 0
        assert cli(server, "upload", "--version-name", "t1", *ns) == 0
        assert sorted(p["display_name"] for p in server.pipelines.values()) == [
            "gated-training",
            "gated-training-monitoring",
        ]
        assert (
            cli(server, "schedule", "create", "--cron", "0 30 1 * * *", "--version", "m1", *monitoring, *ns, *where)
            == 0
        )
        (created,) = server.calls("POST", "/apis/v2beta1/recurringruns")
        body = created.body
        assert body["display_name"] == "gated-training-monitoring-nightly" and body["max_concurrency"] == 1
        assert body["runtime_config"]["parameters"]["prediction_log_uri"] == "gs://models/prediction-log"
        assert body["runtime_config"]["parameters"]["monitoring"]["window_hours"] == 24
        assert server.experiments[body["experiment_id"]]["namespace"] == "team-ml"
        capsys.readouterr()
        local = ["--set", "prediction_log_uri=/var/log/predictions", *CLUSTER_STATE]
        assert cli(server, "submit", *monitoring, *ns, *local) == 2
        assert "prediction_log_uri='/var/log/predictions' is a path inside the pod" in capsys.readouterr().err
        assert cli(server, "submit", *monitoring, *ns, "--set", "data_uri=gs://x/y.csv", *CLUSTER_STATE) == 2
        assert "data_uri" in capsys.readouterr().err
        assert len(server.calls("POST", "/apis/v2beta1/runs")) == 0
