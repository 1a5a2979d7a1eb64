"""The compiled YAML as each supported KFP backend (2.2 → 2.17) reads and runs it. No cluster runs
here: the protos, parse rules, feature floors and Argo node rules are read from each release's
source (tests/conformance/backends.py, tests/argo_dialect.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml
from google.protobuf import json_format

from gated_training import step_table
from gated_training.kubeflow.spec import FEATURE_FLOOR, SUPPORT_FLOOR, features_used, required_backend, version_text
from tests.argo_dialect import pods, run_nodes
from tests.conformance.backends import RELEASES, parse_as_backend, parse_executor_output
from tests.conftest import COMPILED_PIPELINE, REPO_ROOT

SECRETS = {
    "GCS_KEY_SECRET": "gcs-sa-key",
    "MLFLOW_TOKEN_SECRET": "mlflow-token",
    "MLFLOW_BASIC_AUTH_SECRET": "mlflow-basic-auth",
    "WEBHOOK_SECRET": "slack-webhook",
    "REGISTRY_KEY_SECRET": "registry-key",
}


def _compile(path, env: dict[str, str]) -> list[dict]:
    subprocess.run(
        [sys.executable, "-m", "pipelines.compile", str(path)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, **env},
    )
    return list(yaml.safe_load_all(path.read_text()))


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[str, list[dict]]:
    """Both YAMLs users upload: the default, and one with every secret option compiled in."""
    return {
        "plain": list(yaml.safe_load_all(COMPILED_PIPELINE.read_text())),
        "secrets": _compile(tmp_path_factory.mktemp("yaml") / "secrets.yaml", SECRETS),
    }


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("variant", ["plain", "secrets"])
def test_every_supported_backend_parses_the_compiled_yaml_under_its_own_rules(variants, release, variant):
    documents = variants[variant]
    assert len(documents) == (2 if variant == "secrets" else 1)
    parse_as_backend(release, documents)


def test_kfp_kubernetes_raw_output_is_what_a_2_2_driver_refuses(tmp_path):
    """Why cluster.for_every_backend exists: kfp-kubernetes 2.17 writes secretNameParameter and
    optional, which the strict drivers up to 2.4.0 refuse; 2.4.1 and later read it."""
    env = {**os.environ, **SECRETS}
    code = (
        "import sys; from kfp import compiler; from pipelines.training_pipeline import training_pipeline; "
        "compiler.Compiler().compile(training_pipeline, sys.argv[1])"
    )
    raw_path = tmp_path / "raw.yaml"
    subprocess.run([sys.executable, "-c", code, str(raw_path)], cwd=REPO_ROOT, check=True, env=env)
    raw = list(yaml.safe_load_all(raw_path.read_text()))
    for release in ("2.2.0", "2.4.0"):
        with pytest.raises(json_format.ParseError, match="secretNameParameter|optional"):
            parse_as_backend(release, raw)
    for release in ("2.4.1", "2.5.0", "2.14.0", "2.17.0"):
        parse_as_backend(release, raw)
    assert {"secret_name_parameter"} <= features_used(raw)


def test_the_default_yaml_needs_nothing_beyond_the_support_floor(variants):
    for documents in variants.values():
        assert features_used(documents) == set()
    assert required_backend(COMPILED_PIPELINE) == (SUPPORT_FLOOR, [])
    assert version_text(SUPPORT_FLOOR) == "2.2"


def test_each_floor_feature_is_detected_in_a_pipeline_that_uses_it(tmp_path):
    """The feature table is not vacuous: a pipeline using every feature is caught, feature by feature."""
    code = """
import sys
from kfp import compiler, dsl, kubernetes

@dsl.component
def step(x: str) -> str:
    return x

@dsl.component
def exit_step(status: dsl.PipelineTaskFinalStatus):
    print(status.state)

@dsl.pipeline(name="features")
def features():
    exit_task = exit_step()
    with dsl.ExitHandler(exit_task):
        first = step(x=dsl.PIPELINE_JOB_ID_PLACEHOLDER).set_retry(num_retries=2)
        with dsl.If(first.output == "a"):
            inner = step(x=dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER).set_retry(num_retries=2)
            kubernetes.use_secret_as_env(inner, secret_name="s", secret_key_to_env={"k": "K"})
            kubernetes.add_toleration(inner, key="gpu", operator="Exists")

compiler.Compiler().compile(features, sys.argv[1])
"""
    path = tmp_path / "features.yaml"
    script = tmp_path / "features_pipeline.py"  # kfp reads a component's source: a file, not -c
    script.write_text(code)
    subprocess.run([sys.executable, str(script), str(path)], check=True, cwd=tmp_path)
    documents = list(yaml.safe_load_all(path.read_text()))
    # The exit-handler sub-DAG holds the first step, so its retry counts as inside a sub-DAG.
    assert features_used(documents) == set(FEATURE_FLOOR) - {"retry_in_root"}
    floor, reasons = required_backend(path)
    assert floor == (2, 17) and len(reasons) == len(FEATURE_FLOOR) - 1


def test_the_readme_states_the_support_matrix_the_code_enforces():
    readme = (REPO_ROOT / "README.md").read_text()
    kubeflow = (REPO_ROOT / "docs" / "kubeflow.md").read_text()
    assert "KFP backend 2.2 to 2.17" in readme
    assert "CANCELED" in readme and "read access to the bucket" in readme and "recreate pinned schedules" in readme
    first_columns = re.findall(r"^\| ([0-9][^|]*)\|", readme, re.M)
    assert first_columns[0].startswith(version_text(SUPPORT_FLOOR)) and first_columns[-1].strip().endswith("2.17")
    for feature, (floor, _) in FEATURE_FLOOR.items():
        assert re.search(rf"\| `{feature}` \| {re.escape(version_text(floor))} \|", kubeflow), feature
    matrix_rows = {name.strip() for row in re.findall(r"^\| ([0-9][^|]*)\|", kubeflow, re.M) for name in row.split(",")}
    for release in RELEASES:
        assert {release, release.removesuffix(".0")} & matrix_rows, release


# ---- pods per run, counted with the backend's compiler rules ------------------------------------

DEPLOY = {"validate-data": "passed", "check-drift": "train", "evaluate-model": "deploy", "deploy-model": "done"}
SERVE = {**DEPLOY, "deploy-model": "serve"}


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        (SERVE, 19),
        (DEPLOY, 17),
        ({**DEPLOY, "evaluate-model": "block"}, 14),
        ({"validate-data": "passed", "check-drift": "skip"}, 7),
        ({"validate-data": "blocked"}, 4),
    ],
)
def test_a_run_starts_the_fewest_pods_the_design_allows(variants, outputs, expected):
    """Per task a driver and an executor pod, per DAG a driver pod (root, and each gate's condition).
    One pod per step and one condition per gate is the floor: 1 + 2 × tasks run + conditions reached.
    (The previous design, If/Else pairs with report steps in an exit handler, started 25 on the deploy path;
    serving costs the deploy path one condition driver when no serving namespace is set.)"""
    nodes, state = run_nodes(variants["plain"][0], outputs)
    assert state == "SUCCEEDED"
    tasks_run = [n.name for n in nodes if n.name in step_table.STEP and n.state == "SUCCEEDED"]
    conditions = [n for n in nodes if n.name.startswith("condition-") and not n.name.endswith("-driver")]
    assert pods(nodes) == 1 + 2 * len(tasks_run) + len(conditions) == expected
    assert tasks_run == list(step_table.MAIN_LINE[: len(tasks_run)])
    assert [n.state for n in conditions][-1:] == (["SUCCEEDED"] if outputs == SERVE else ["SKIPPED"])


def test_executor_outputs_of_a_local_run_parse_as_every_launcher_parses_them(tmp_path):
    """The backend's launcher reads each step's output with strict protojson (no NaN, Infinity);
    every executor_output.json kfp.local wrote for a deploying run must parse under each release."""
    from gated_training.cli import main
    from tests.conftest import SAMPLE_DATA

    workdir = tmp_path / "work"
    assert (
        main(
            [
                "run",
                "--data",
                str(SAMPLE_DATA),
                "--target",
                "risk",
                "--workdir",
                str(workdir),
                "--registry",
                str(tmp_path / "registry"),
                "--tracking-uri",
                f"sqlite:///{tmp_path / 'mlflow.db'}",
                "--set",
                "min_accuracy=0.6",
                "--set",
                "max_overfit_gap=0.3",
                "--set",
                "min_roc_auc=0",
            ]
        )
        == 0
    )
    outputs = sorted(workdir.glob("kfp-runs/*/*/executor_output.json"))
    assert {path.parent.name for path in outputs} == set(step_table.tasks_ending_at("deploy-model"))
    for path in outputs:
        text = path.read_text()
        assert "null" not in re.sub(r'"[^"]*"', '""', text), f"{path}: a JSON null"
        for release in RELEASES:
            parse_executor_output(release, text)


# ---- the monitoring pipeline: the same backends, the training pipeline nested ----------------------------------

COMPILED_MONITORING = REPO_ROOT / "compiled" / "monitoring_pipeline.yaml"


@pytest.fixture(scope="module")
def monitoring_variants(tmp_path_factory) -> dict[str, list[dict]]:
    path = tmp_path_factory.mktemp("yaml") / "monitoring-secrets.yaml"
    subprocess.run(
        [sys.executable, "-m", "pipelines.compile", "--monitoring", str(path)],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, **SECRETS},
    )
    return {
        "plain": list(yaml.safe_load_all(COMPILED_MONITORING.read_text())),
        "secrets": list(yaml.safe_load_all(path.read_text())),
    }


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("variant", ["plain", "secrets"])
def test_every_supported_backend_parses_the_monitoring_yaml(monitoring_variants, release, variant):
    documents = monitoring_variants[variant]
    parse_as_backend(release, documents)
    assert features_used(documents) == set()


def test_the_nested_training_run_is_given_every_parameter_and_gives_nothing_back(monitoring_variants):
    """Two nested-pipeline gaps of older backends stay out of reach: a sub-DAG input left to its default (optional
    inputs of nested pipelines, kubeflow/pipelines#11957) and a parent reading a sub-DAG's outputs (#10039, fixed by
    #11196): the retrain's task binds every input of the training pipeline, and nothing consumes its outputs."""
    spec = monitoring_variants["plain"][0]
    training = spec["components"]["comp-gated-training"]
    (task,) = [
        c["dag"]["tasks"]["gated-training"]
        for c in spec["components"].values()
        if "gated-training" in c.get("dag", {}).get("tasks", {})
    ]
    assert set(task["inputs"]["parameters"]) == set(training["inputDefinitions"]["parameters"])
    retrain = spec["root"]["dag"]["tasks"]["condition-1"]
    assert retrain["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--monitor-window-Output'] == 'retrain'"
    )
    assert "outputDefinitions" not in training
    assert "producerTask: gated-training" not in yaml.safe_dump(spec)


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [("ok", 4), ("alert", 4), ("retrain", 4 + 1 + 16)],
)
def test_a_monitoring_run_starts_few_pods_and_a_retrain_those_of_a_training_run(monitoring_variants, outcome, expected):
    """A window is the root driver, monitor-window's driver and executor, and the retrain condition's driver; a
    retrain adds the nested pipeline's driver and a training run's own pods less its root driver (a deploy:
    17 - 1), as the backend's compiler lays them out."""
    outputs = {"monitor-window": outcome, **DEPLOY}
    nodes, state = run_nodes(monitoring_variants["plain"][0], outputs)
    assert state == "SUCCEEDED"
    assert pods(nodes) == expected
    ran = [n.name for n in nodes if n.name in step_table.STEP and n.state == "SUCCEEDED"]
    assert ran == (["monitor-window", *step_table.MAIN_LINE[:-1]] if outcome == "retrain" else ["monitor-window"])
