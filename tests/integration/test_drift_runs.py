"""The drift gate and the retraining triggers, through the compiled pipeline on synthetic batches.

One registry, and the tests run in file order: a clean batch deploys the first champion, a
fresh sample of the same distribution passes the drift gate, then a drifted batch meets each
drift_action, and repeating the champion's own data is skipped. A webhook receiver on loopback
records what each run posts.
"""

import json

import mlflow
import pytest

from gated_training.cli import main
from gated_training.data.synthetic import TARGET, generate
from gated_training.validation.suite import draft_suite
from tests.integration.conftest import (
    DATA_BLOCKED_TASKS,
    DEPLOYED_TASKS,
    DRIFT_STOPPED_TASKS,
    FAILED_AT_VALIDATION_TASKS,
    MODEL_BLOCKED_TASKS,
    LocalSetup,
)
from tests.unit.test_drift_gate import heavy_drift
from tests.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration
ROWS = 2000
DRIFTED = {"income", "tenure_months", "region"}
NOT_FORCED = ["--set", "force_retrain=false"]  # the fixture forces by default; these runs test the trigger


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batches")
    clean = generate(ROWS, seed=11)
    document = draft_suite(clean, TARGET, "synthetic")
    for expectation in document[
        "expectations"
    ]:  # these runs test the drift gate: let drifted values past the data gate
        if (
            expectation["type"] in ("expect_column_values_to_be_between", "expect_column_values_to_be_in_set")
            and expectation["kwargs"].get("column") != TARGET
        ):
            expectation["severity"] = "warning"
    suite = json.dumps(document)
    paths = {}
    for name, frame in {"clean": clean, "fresh": generate(ROWS, seed=12), "drifted": heavy_drift(ROWS, 13)}.items():
        paths[name] = folder / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
        (folder / f"{name}.expectations.json").write_text(suite)
    return paths


@pytest.fixture(scope="module")
def drift_setup(tmp_path_factory, batches):
    setup = LocalSetup(tmp_path_factory.mktemp("drift"))
    first = setup.run("--set", f"target_column={TARGET}", data=batches["clean"], name="champion")
    assert first.tasks == DEPLOYED_TASKS and first.summary["outcome"] == "deployed", first.summary["reasons"]
    assert first.summary["drift"]["notes"] == ["no champion yet: nothing to compare the batch with"]
    return setup


@pytest.fixture
def receiver():
    with WebhookReceiver() as server:
        yield server


def run(setup, batches, batch, *args, name):
    return setup.run("--set", f"target_column={TARGET}", *args, data=batches[batch], name=name)


def versions(setup):
    return sorted(p.name for p in (setup.registry / "tabular-classifier" / "versions").iterdir())


def test_a_fresh_batch_from_the_same_distribution_passes_the_drift_gate(drift_setup, batches):
    result = run(
        drift_setup,
        batches,
        "fresh",
        *NOT_FORCED,
        "--set",
        "drift_action=block",
        "--set",
        "max_regression=1",
        name="fresh",
    )
    assert result.tasks == DEPLOYED_TASKS, result.summary["reasons"]
    drift = result.summary["drift"]
    assert (drift["decision"], drift["drifted"], drift["drifted_features"]) == ("train", False, [])
    assert drift["max_psi"] < 0.1 and result.summary["warnings"] == []


def test_heavy_drift_under_block_stops_before_training_and_notifies(drift_setup, batches, receiver):
    before = versions(drift_setup)
    result = run(
        drift_setup,
        batches,
        "drifted",
        "--set",
        "drift_action=block",
        "--set",
        f"notify_webhook_url={receiver.hook_url}",
        name="drift-block",
    )
    assert result.exit_code == 0 and result.tasks == DRIFT_STOPPED_TASKS  # deploy, train: never ran
    summary = result.summary
    assert (summary["outcome"], summary["blocked_by"], summary["mlflow_run_id"]) == ("blocked", "drift", None)
    assert set(summary["drift"]["drifted_features"]) == DRIFTED
    assert summary["reasons"][0].startswith("3 of 6 features drifted (50% >= max_drifted_share 30%)")
    assert {c["name"].split(" ")[0] for c in summary["checks"] if c["gate"] == "drift" and not c["passed"]} == {
        f"drift[{f}]" for f in DRIFTED
    }
    assert versions(drift_setup) == before
    assert summary["notification"] == "sent" and len(receiver.posts) == 1
    text = receiver.posts[0]["json"]["text"]
    assert "blocked by the drift gate" in text and "3 of 6 features drifted" in text and "drift report: " in text
    run_dir = drift_setup.root / "drift-block" / "kfp-runs"
    page = next(run_dir.glob("*/check-drift/drift_html")).read_text()
    assert "Drift gate: BLOCKED" in page and page.count("data:image/svg+xml;base64,") == 6


def test_warn_trains_and_deploys_with_the_drift_recorded(drift_setup, batches, receiver, capsys):
    result = run(
        drift_setup,
        batches,
        "drifted",
        "--set",
        "drift_action=warn",
        "--set",
        "max_prediction_psi=0",
        "--set",
        f"notify_webhook_url={receiver.hook_url}",
        name="drift-warn",
    )
    assert result.tasks == DEPLOYED_TASKS, result.summary["reasons"]
    summary = result.summary
    assert summary["outcome"] == "deployed" and summary["warnings"][0].startswith(
        "drift (warn): 3 of 6 features drifted"
    )
    assert summary["notification"] == "not sent: outcome deployed" and receiver.posts == []
    run_data = mlflow.MlflowClient(tracking_uri=drift_setup.tracking_uri).get_run(summary["mlflow_run_id"]).data
    assert run_data.metrics["drift_drifted_share"] == pytest.approx(0.5)
    assert (
        run_data.metrics["drift_psi.income"] > 0.2
        and run_data.metrics["drift_max_psi"] >= run_data.metrics["drift_psi.income"]
    )
    assert run_data.tags["drift_action"] == "warn" and run_data.tags["drift_drifted"] == "true"

    # The registry keeps the trace of a deploy over a drift warning: manifest, gate_decision.json, history.
    version = summary["deployed"]["version"]
    folder = drift_setup.registry / "tabular-classifier" / "versions" / version
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["drift"]["drifted"], manifest["drift"]["drift_action"]) == (True, "warn")
    assert "income" in manifest["drift"]["drifted_features"] and manifest["drift"]["reasons"]
    assert json.loads((folder / "gate_decision.json").read_text())["drift"] == manifest["drift"]
    assert main(["history", "--registry", str(drift_setup.registry)]) == 0
    assert "drift: deployed over drift (warn) (50% of features): " in capsys.readouterr().out


def test_retrain_only_trains_and_evaluates_but_never_deploys(drift_setup, batches):
    champion = drift_setup.champion_version()
    result = run(drift_setup, batches, "clean", "--set", "drift_action=retrain_only", name="drift-retrain-only")
    # Against the champion trained on the drifted batch, the clean batch is the one that moved.
    assert result.tasks == MODEL_BLOCKED_TASKS, result.summary["reasons"]
    summary = result.summary
    assert (summary["outcome"], summary["blocked_by"]) == ("blocked", "drift"), summary["reasons"]
    assert [c["name"] for c in summary["checks"] if c["gate"] == "model" and not c["passed"]] == ["drift_action"]
    assert summary["mlflow_run_id"] and summary["candidate_metrics"]["accuracy"] > 0.6
    assert drift_setup.champion_version() == champion


def test_the_champions_own_data_is_skipped_as_no_new_data(drift_setup, batches, receiver):
    champion = drift_setup.champion_version()
    before = versions(drift_setup)
    result = run(
        drift_setup,
        batches,
        "drifted",
        *NOT_FORCED,
        "--set",
        f"notify_webhook_url={receiver.hook_url}",
        name="no-new-data",
    )
    assert result.exit_code == 0 and result.tasks == DRIFT_STOPPED_TASKS
    summary = result.summary
    assert (summary["outcome"], summary["skip_reason"], summary["blocked_by"]) == ("skipped", "no_new_data", None)
    assert f"champion {champion} was trained on" in summary["reasons"][0]
    assert summary["champion"] == {"version": champion, "metrics": None}  # a skipped run names its champion
    assert versions(drift_setup) == before
    assert receiver.posts[0]["json"]["text"].startswith(
        f"*gated-training run {summary['kfp_run_id']}: skipped (no_new_data)*"
    )


def test_blocked_and_failed_runs_notify_from_their_own_steps(drift_setup, batches, receiver, tmp_path):
    hook = ["--set", f"notify_webhook_url={receiver.hook_url}"]
    blocked = run(drift_setup, batches, "clean", *hook, "--set", "target_column=no_such_column", name="data-blocked")
    assert blocked.tasks == DATA_BLOCKED_TASKS and blocked.summary["notification"] == "sent"
    failed = drift_setup.run(*hook, data=tmp_path / "missing.csv", name="failed-notify")
    assert failed.exit_code == 1 and failed.tasks == FAILED_AT_VALIDATION_TASKS
    texts = [post["json"]["text"] for post in receiver.posts]
    assert len(texts) == 2 and "blocked by the data gate" in texts[0] and "target_present" in texts[0]
    # No exit handler (it needs KFP 2.14): the failing step posted its own failure, once, naming the run.
    assert ": FAILED*" in texts[1] and "validate-data failed: SuiteError:" in texts[1] and "missing.csv" in texts[1]
    assert failed.summary["notification"] == "sent"
    # The run id comes from the artifact URI layout: locally, the run's folder under kfp-runs.
    assert texts[1].startswith("*gated-training run gated-training-20")

    # A step further down fails (MLflow unreachable): exactly one more post, from train-model.
    from tests.mlflow_server import free_port

    down = run(
        drift_setup,
        batches,
        "clean",
        *hook,
        "--set",
        "drift_action=warn",
        "--set",
        "force_retrain=true",
        "--set",
        f"mlflow_tracking_uri=http://127.0.0.1:{free_port()}",
        name="train-failed",
    )
    assert down.exit_code == 1 and down.tasks == ["check-drift", "engineer-features", "validate-data"]
    assert len(receiver.posts) == 3 and "train-model failed: TrackingError" in receiver.posts[2]["json"]["text"]
