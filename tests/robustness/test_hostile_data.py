"""Hostile and careless data through the compiled pipeline, on the real sample (German credit).

Each case ends blocked, skipped or failed with a message naming the problem, runs the exact tasks
expected, leaves the registry byte-identical, and never runs code from the data or the suite (a
payload would create a marker file). These are the cases of issue 14 that slipped through before.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SAMPLE_DATA, SAMPLE_SUITE
from tests.integration.conftest import (
    DATA_BLOCKED_TASKS,
    DRIFT_STOPPED_TASKS,
    FAILED_AT_VALIDATION_TASKS,
    MODEL_BLOCKED_TASKS,
    LocalSetup,
    copy_setup,
)
from tests.registry_helpers import registry_bytes

pytestmark = pytest.mark.integration
NOT_FORCED = ("--set", "force_retrain=false")
MAX_SECONDS = 120


@pytest.fixture(scope="module")
def champion_setup(sample_champion, tmp_path_factory):
    return copy_setup(sample_champion, tmp_path_factory.mktemp("hostile") / "setup")


@pytest.fixture(scope="module")
def lax_suite(tmp_path_factory) -> Path:
    """The sample suite as a careless owner keeps it: ranges and value sets only warn, so the drift gate
    is what meets corrupted features."""
    document = json.loads(SAMPLE_SUITE.read_text())
    for expectation in document["expectations"]:
        if (
            expectation["type"] in ("expect_column_values_to_be_between", "expect_column_values_to_be_in_set")
            and expectation["kwargs"].get("column") != "risk"
        ):
            expectation["severity"] = "warning"
    path = tmp_path_factory.mktemp("lax") / "lax.expectations.json"
    path.write_text(json.dumps(document))
    return path


def sample() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DATA)


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def marker_payloads(marker: Path) -> dict[str, dict]:
    command = f"@pd.io.common.os.system('touch {marker}')"
    return {
        "pandas_row_condition": {"row_condition": f"age >= {command}", "condition_parser": "pandas"},
        "python_row_condition": {"row_condition": f"age >= {command}", "condition_parser": "python"},
        "pass_through": {"row_condition": {"type": "pass_through", "pass_through_filter": f"age >= {command}"}},
        "parameter_reference": {"min_value": {"$PARAMETER": f"__import__('os').system('touch {marker}')"}},
    }


def hostile_suite(directory: Path, case: str, marker: Path) -> Path:
    document = json.loads(SAMPLE_SUITE.read_text())
    kwargs = {"column": "age", "min_value": 0, "max_value": 200, **marker_payloads(marker)[case]}
    document["expectations"].append(
        {"type": "expect_column_values_to_be_between", "kwargs": kwargs, "severity": "critical"}
    )
    path = directory / f"{case}.expectations.json"
    path.write_text(json.dumps(document))
    return path


def replaced(frame: pd.DataFrame, column: str, share: float, values, seed: int = 0) -> pd.DataFrame:
    rows = np.random.default_rng(seed).random(len(frame)) < share
    frame = frame.copy()
    frame.loc[rows, column] = values if np.isscalar(values) else np.asarray(values)[: rows.sum()]
    return frame


def data_case(name: str, directory: Path) -> Path:
    """The batch of one case, written from the real sample."""
    frame = sample()
    rng = np.random.default_rng(1)
    if name == "label_copy_column":
        return write(frame.assign(outcome_flag=frame["risk"].map({0: "bad", 1: "good"})), directory / f"{name}.csv")
    if name == "noise_column":
        return write(frame.assign(noise=rng.normal(size=len(frame))), directory / f"{name}.csv")
    if name == "amount_times_100":
        return write(frame.assign(credit_amount=frame["credit_amount"] * 100), directory / f"{name}.csv")
    if name == "unseen_purposes_60pct":
        return write(replaced(frame, "purpose", 0.6, "crypto"), directory / f"{name}.csv")
    if name == "two_features_41pct":
        corrupted = replaced(frame, "duration", 0.41, 999, seed=2)
        return write(replaced(corrupted, "housing", 0.41, "boat", seed=3), directory / f"{name}.csv")
    if name == "bom":
        path = directory / f"{name}.csv"
        path.write_bytes(b"\xef\xbb\xbf" + SAMPLE_DATA.read_bytes())
        return path
    if name == "parquet":
        path = directory / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        return path
    if name == "gzip":
        path = directory / f"{name}.csv.gz"
        path.write_bytes(gzip.compress(SAMPLE_DATA.read_bytes()))
        return path
    if name == "fifo":
        path = directory / f"{name}.csv"
        os.mkfifo(path)
        return path
    if name == "nested_parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False).append_column(
            "address", pa.array([{"city": "x"}] * len(frame))
        )
        path = directory / f"{name}.parquet"
        pq.write_table(table, path)
        return path
    if name == "mixed_label_spellings":
        labels = np.array(["0", "0.0", "1", "yes"], dtype=object)[np.arange(len(frame)) % 4]
        return write(frame.assign(risk=labels), directory / f"{name}.csv")
    raise ValueError(name)


# name, extra arguments, outcome, blocked_by / skip reason, tasks, text a reason must contain
CASES = [
    (
        "label_copy_column",
        (),
        "blocked",
        "schema",
        DRIFT_STOPPED_TASKS,
        "schema: new column(s) outcome_flag that champion",
    ),
    ("noise_column", (), "blocked", "schema", DRIFT_STOPPED_TASKS, "schema: new column(s) noise that champion"),
    ("amount_times_100", (), "blocked", "drift", DRIFT_STOPPED_TASKS, "severe drift on feature credit_amount"),
    ("unseen_purposes_60pct", (), "blocked", "drift", DRIFT_STOPPED_TASKS, "severe drift on feature purpose: PSI"),
    ("two_features_41pct", (), "blocked", "drift", DRIFT_STOPPED_TASKS, "severe drift on feature duration"),
    ("bom", NOT_FORCED, "skipped", "no_new_data", DRIFT_STOPPED_TASKS, "no_new_data"),
    ("parquet", NOT_FORCED, "skipped", "no_new_data", DRIFT_STOPPED_TASKS, "no_new_data"),
    ("gzip", NOT_FORCED, "skipped", "no_new_data", DRIFT_STOPPED_TASKS, "no_new_data"),
    ("fifo", (), "failed", None, FAILED_AT_VALIDATION_TASKS, "is not a regular file (a FIFO, device or socket)"),
    (
        "nested_parquet",
        (),
        "failed",
        None,
        FAILED_AT_VALIDATION_TASKS,
        "nested Parquet columns cannot be features: address (struct<city: string>)",
    ),
    (
        "mixed_label_spellings",
        (),
        "blocked",
        "data",
        DATA_BLOCKED_TASKS,
        "expect_column_values_to_be_in_set on column 'risk'",
    ),
]


@pytest.mark.parametrize(("name", "args", "outcome", "why", "tasks", "message"), CASES, ids=[c[0] for c in CASES])
def test_hostile_batches_end_as_they_should_and_change_nothing(
    champion_setup, lax_suite, tmp_path, name, args, outcome, why, tasks, message
):
    before = registry_bytes(champion_setup.registry)
    data = data_case(name, tmp_path)
    started = time.monotonic()
    result = champion_setup.run("--suite", str(lax_suite), *args, data=data, name=f"hostile-{name}")
    assert time.monotonic() - started < MAX_SECONDS
    summary = result.summary
    assert (summary["outcome"], result.tasks) == (outcome, tasks), summary["reasons"]
    if outcome == "blocked":
        assert summary["blocked_by"] == why
    if outcome == "skipped":
        assert summary["skip_reason"] == why
    assert any(message in reason for reason in summary["reasons"]), summary["reasons"]
    assert summary["notification"]  # always recorded, whatever the outcome
    assert registry_bytes(champion_setup.registry) == before


def test_dev_zero_and_oversized_files_fail_naming_the_file_and_limit(champion_setup, tmp_path):
    before = registry_bytes(champion_setup.registry)
    result = champion_setup.run("--suite", str(SAMPLE_SUITE), data="/dev/zero", name="dev-zero")
    assert result.summary["outcome"] == "failed" and "/dev/zero: is not a regular file" in result.summary["reasons"][0]
    result = champion_setup.run("--suite", str(SAMPLE_SUITE), "--set", "max_input_mb=0.01", name="oversized")
    assert result.summary["outcome"] == "failed"
    assert "45,648 bytes is more than the limit of 10,486 bytes (max_input_mb=0.01)" in result.summary["reasons"][0]
    assert result.tasks == FAILED_AT_VALIDATION_TASKS
    assert registry_bytes(champion_setup.registry) == before


@pytest.mark.parametrize("case", list(marker_payloads(Path("m"))))
def test_a_suite_payload_never_runs_and_names_the_expectation(champion_setup, tmp_path, case):
    marker = tmp_path / "pwned"
    suite = hostile_suite(tmp_path, case, marker)
    before = registry_bytes(champion_setup.registry)
    result = champion_setup.run("--suite", str(suite), name=f"payload-{case}")
    assert (result.summary["outcome"], result.tasks) == ("failed", FAILED_AT_VALIDATION_TASKS)
    index = len(json.loads(suite.read_text())["expectations"]) - 1
    assert f"expectations[{index}] (expect_column_values_to_be_between)" in result.summary["reasons"][0]
    assert not marker.exists()
    assert registry_bytes(champion_setup.registry) == before


def test_a_suite_beside_the_data_is_pinned_by_digest(champion_setup, tmp_path):
    """Whoever can write the data prefix can write the suite beside it: a pinned digest stops that."""
    from gated_training.data.tables import sha256_hex

    data = write(sample(), tmp_path / "batch.csv")
    loosened = json.loads(SAMPLE_SUITE.read_text())
    loosened["expectations"] = loosened["expectations"][:2]
    (tmp_path / "batch.expectations.json").write_text(json.dumps(loosened))
    before = registry_bytes(champion_setup.registry)
    pinned = sha256_hex(SAMPLE_SUITE.read_bytes())
    result = champion_setup.run("--set", f"suite_sha256={pinned}", data=data, name="pinned")
    assert (result.summary["outcome"], result.summary["blocked_by"], result.tasks) == (
        "blocked",
        "data",
        DATA_BLOCKED_TASKS,
    )
    assert result.summary["reasons"][0].startswith("critical rule builtin:suite_pinned failed: observed suite SHA-256")
    assert registry_bytes(champion_setup.registry) == before


def test_a_label_copy_on_a_first_run_is_blocked_as_leakage(tmp_path):
    """No champion, so no schema contract: the leakage check is what stops it."""
    setup = LocalSetup(tmp_path / "fresh")
    result = setup.run("--suite", str(SAMPLE_SUITE), data=data_case("label_copy_column", tmp_path), name="leak")
    assert (result.summary["outcome"], result.summary["blocked_by"], result.tasks) == (
        "blocked",
        "model",
        MODEL_BLOCKED_TASKS,
    )
    failed = [c["name"] for c in result.summary["checks"] if not c["passed"]]
    assert failed == ["max_single_feature_score"]
    assert any("feature(s) outcome_flag predict the label alone" in r for r in result.summary["reasons"])
    assert registry_bytes(setup.registry) == {}


def test_new_columns_ignore_drops_them_and_says_so(champion_setup, tmp_path):
    data = data_case("noise_column", tmp_path)
    result = champion_setup.run(
        "--suite",
        str(SAMPLE_SUITE),
        "--set",
        "new_columns=ignore",
        "--set",
        "max_regression=1",
        data=data,
        name="ignore-new",
    )
    assert result.summary["outcome"] == "deployed", result.summary["reasons"]
    assert any("noise dropped (new_columns=ignore)" in w for w in result.summary["warnings"])
    version = champion_setup.champion_version()
    manifest = json.loads(
        (champion_setup.registry / "tabular-classifier" / "versions" / version / "manifest.json").read_text()
    )
    assert "noise" not in manifest["features"] and len(manifest["features"]) == 9


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("attack", ["rewritten", "unsigned", "linked"])
def test_a_tampered_champion_fails_the_run_closed_before_anything_is_unpickled(champion_copy, tmp_path, attack):
    """Anyone who can write the bucket rewrites the champion's model and manifest consistently; the
    next run reads it (drift gate, model gate) and must refuse it, not unpickle it."""
    import hashlib
    import shutil

    setup = champion_copy
    folder = setup.registry / "tabular-classifier" / "versions" / setup.champion_version()
    marker = tmp_path / "pwned"
    if attack == "linked":  # the version folder replaced by a link to a copy outside the registry
        outside = tmp_path / "outside"
        shutil.copytree(folder, outside)
        shutil.rmtree(folder)
        folder.symlink_to(outside, target_is_directory=True)
        folder = outside
    evil = pickle.dumps(Payload(marker))
    (folder / "model.joblib").write_bytes(evil)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["model.joblib"] = {"sha256": hashlib.sha256(evil).hexdigest(), "bytes": len(evil)}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    if attack == "unsigned":
        (folder / "manifest.sig").unlink()
    before = registry_bytes(setup.registry)
    result = setup.run(name="after-tampering")
    expected = {
        "rewritten": "the signature does not match the manifest",
        "unsigned": "the version is unsigned",
        "linked": "is a symbolic link; the registry follows no links",
    }[attack]
    assert result.summary["outcome"] == "failed" and expected in result.summary["reasons"][0], result.summary["reasons"]
    assert result.summary["reasons"][0].startswith("check-drift failed: RegistryError")
    assert not marker.exists()
    assert registry_bytes(setup.registry) == before


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("suite_sha256=not-a-digest", "parameter suite_sha256='not-a-digest': must be empty or a SHA-256"),
        ("max_input_mb=0", "parameter max_input_mb=0.0: must be a number > 0"),
        ("engine=hadoop", "parameter engine='hadoop': must be one of pandas, spark"),
        ("new_columns=keep", "parameter new_columns='keep': must be one of block, ignore"),
        ("drift_severe_out_of_range=2", "parameter drift_severe_out_of_range=2.0: must be within [0, 1]"),
        ("max_categories=1", "parameter max_categories=1: must be 0 (no cap) or at least 2"),
        ("max_single_feature_score=1.5", "parameter max_single_feature_score=1.5: must be within [0, 1]"),
        (
            "serving_namespace=Team_A",
            "parameter serving_namespace='Team_A': a Kubernetes name (DNS-1123 label) or empty",
        ),
        ("serving_namespace=a/../../b", "parameter serving_namespace='a/../../b': a Kubernetes name"),
        ("serving_mode=Serverful", "parameter serving_mode='Serverful': must be one of Knative, Standard"),
        ("canary_traffic_percent=0", "parameter canary_traffic_percent=0: must be between 1 and 100"),
        ("canary_traffic_percent=101", "parameter canary_traffic_percent=101: must be between 1 and 100"),
        ("serving_ready_timeout_seconds=0", "parameter serving_ready_timeout_seconds=0: must be between 1 and 86400"),
        ("serving_service_account=-sa", "parameter serving_service_account='-sa': a Kubernetes name"),
    ],
)
def test_bad_new_parameters_are_refused_before_running(champion_setup, assignment, message):
    before = registry_bytes(champion_setup.registry)
    result = champion_setup.run("--set", assignment, name=f"param-{assignment.split('=')[0]}")
    assert (result.exit_code, result.tasks, result.summary["outcome"]) == (2, [], "failed")
    assert message in result.summary["reasons"][0], result.summary["reasons"]
    assert registry_bytes(champion_setup.registry) == before


def test_a_split_key_that_is_not_a_column_fails_at_the_split_naming_it(champion_setup):
    before = registry_bytes(champion_setup.registry)
    result = champion_setup.run("--set", "split_key=customer", name="split-key")
    assert result.summary["outcome"] == "failed"
    assert result.summary["reasons"][0].startswith(
        "engineer-features failed: DataError: parameter split_key='customer': no such column"
    )
    assert registry_bytes(champion_setup.registry) == before


def test_a_registry_path_that_is_a_file_is_refused_before_any_step(tmp_path):
    registry = tmp_path / "registry"
    registry.write_text("not a folder")
    setup = LocalSetup(tmp_path)
    result = setup.run(name="file-registry")
    assert (result.exit_code, result.tasks) == (2, [])
    assert f"registry {registry}: is a file, not a folder" in result.summary["reasons"][0]
    assert registry.read_text() == "not a folder"


def test_a_run_form_left_at_local_defaults_on_a_cluster_deploys_nothing_into_the_pod(
    champion_setup, tmp_path, monkeypatch
):
    """A run started from the Kubeflow UI bypasses the CLI's checks: the steps themselves see they
    run on a KFP backend (KFP_POD_NAME, set in every executor pod) and refuse a registry on the
    container's own file system, which would vanish with the pod while the run went green."""
    from gated_training.cli.common import resolve_parameters
    from gated_training.kubeflow.local_run import run_compiled_pipeline
    from gated_training.kubeflow.spec import component_inputs
    from gated_training.run_context import is_pod_local
    from tests.conftest import COMPILED_PIPELINE

    if not is_pod_local(str(champion_setup.registry)):
        pytest.skip("this machine's temporary folder is a mounted volume, which the refusal rightly accepts")
    monkeypatch.setenv("KFP_POD_NAME", "gated-training-x7k2p-system-container-impl-2958812716")
    before = registry_bytes(champion_setup.registry)
    parameters = resolve_parameters(
        component_inputs(COMPILED_PIPELINE),
        [
            {
                "data_uri": str(SAMPLE_DATA),
                "registry_uri": str(champion_setup.registry),
                "mlflow_tracking_uri": champion_setup.tracking_uri,
                "force_retrain": True,
            }
        ],
    )
    result = run_compiled_pipeline(COMPILED_PIPELINE, parameters, tmp_path / "work")
    assert result.tasks_ran == ["validate-data"] and result.summary["outcome"] == "failed"
    reason = result.summary["reasons"][0]
    assert reason.startswith(
        f"check-drift failed: ConfigError: parameter registry_uri='{champion_setup.registry}' "
        "is inside this pod's own file system and would vanish with the pod"
    ), reason
    assert registry_bytes(champion_setup.registry) == before

    monkeypatch.setenv("GATED_TRAINING_ALLOW_POD_LOCAL_STATE", "1")  # the compile option ALLOW_POD_LOCAL_STATE=1
    small_model = resolve_parameters(
        component_inputs(COMPILED_PIPELINE), [parameters, {"training.n_estimators": 1, "training.max_depth": 1}]
    )
    allowed = run_compiled_pipeline(COMPILED_PIPELINE, small_model, tmp_path / "allowed")
    assert allowed.summary["outcome"] in ("deployed", "blocked"), allowed.summary["reasons"]


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        (["categorical_encoding=native", "max_categories=0"], "categorical_encoding=native needs a cap from 2 to 254"),
        (["categorical_encoding=native", "interaction_features=true"], "multiply category codes"),
    ],
)
def test_native_categories_with_settings_that_break_them_are_refused_before_running(
    champion_setup, assignments, message
):
    before = registry_bytes(champion_setup.registry)
    sets = [part for assignment in assignments for part in ("--set", assignment)]
    result = champion_setup.run(*sets, name=f"native-{assignments[1].split('=')[0]}")
    assert (result.exit_code, result.tasks, result.summary["outcome"]) == (2, [], "failed")
    assert message in result.summary["reasons"][0], result.summary["reasons"]
    assert registry_bytes(champion_setup.registry) == before
