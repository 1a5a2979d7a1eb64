"""The checked-in YAML is what users upload: it must be current, valid and say what it promises."""

import os
import subprocess
import sys

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from tests.conftest import COMPILED_PIPELINE, REPO_ROOT

STEPS = ["validate-data", "engineer-features", "train-model", "evaluate-model", "deploy-model",
         "report-model-blocked", "report-data-blocked"]


def compile_to(path, image: str | None = None) -> bytes:
    env = {k: v for k, v in os.environ.items() if k != "IMAGE"}
    if image:
        env["IMAGE"] = image
    subprocess.run([sys.executable, "-m", "pipelines.compile", str(path)], cwd=REPO_ROOT, env=env, check=True,
                   capture_output=True)
    return path.read_bytes()


@pytest.fixture(scope="module")
def spec_document():
    return yaml.safe_load(COMPILED_PIPELINE.read_text())


def test_checked_in_yaml_is_current_and_reproducible(tmp_path):
    fresh = compile_to(tmp_path / "a.yaml")
    assert fresh == compile_to(tmp_path / "b.yaml"), "compilation is not byte-reproducible"
    assert fresh == COMPILED_PIPELINE.read_bytes(), "compiled/training_pipeline.yaml is stale: run `make compile`"


def test_yaml_parses_as_pipeline_spec(spec_document):
    spec = json_format.ParseDict(spec_document, pipeline_spec_pb2.PipelineSpec())
    assert spec.pipeline_info.name == "gated-training"
    assert {name.removeprefix("exec-") for name in spec.deployment_spec["executors"]} == set(STEPS)


def test_one_variable_sets_the_image_and_accepts_a_digest(tmp_path):
    digest = "europe-docker.pkg.dev/acme/ml/gated-training@sha256:" + "0" * 64
    document = yaml.safe_load(compile_to(tmp_path / "p.yaml", digest))
    images = {e["container"]["image"] for e in document["deploymentSpec"]["executors"].values()}
    assert images == {digest}


def test_components_never_pip_install_at_start(spec_document):
    for name, executor in spec_document["deploymentSpec"]["executors"].items():
        command = " ".join(executor["container"]["command"])
        assert "pip install" not in command, name
        assert executor["container"]["image"] == "localhost/kfp-gated-training:0.1.0"


def test_every_parameter_is_typed_and_described(spec_document):
    parameters = spec_document["root"]["inputDefinitions"]["parameters"]
    assert len(parameters) == 27
    for name, parameter in parameters.items():
        assert parameter["parameterType"] in {"STRING", "NUMBER_DOUBLE", "NUMBER_INTEGER", "BOOLEAN"}, name
        assert parameter.get("description"), f"{name} has no description in the run form"
        assert "defaultValue" in parameter or parameter.get("isOptional"), name
    assert parameters["min_accuracy"]["defaultValue"] == 0.85
    assert parameters["n_estimators"]["defaultValue"] == 100


def test_gates_branch_on_primitive_outputs(spec_document):
    tasks = spec_document["root"]["dag"]["tasks"]
    conditions = {
        name: task["triggerPolicy"]["condition"] for name, task in _all_tasks(spec_document) if "triggerPolicy" in task
    }
    assert any("validate-data-Output" in c and "'passed'" in c for c in conditions.values())
    assert any("evaluate-model-Output" in c and "'deploy'" in c for c in conditions.values())
    assert "validate-data" in tasks


def test_validation_evaluation_and_deploy_are_never_cached(spec_document):
    caching = {name: task.get("cachingOptions", {}).get("enableCache", False) for name, task in _all_tasks(spec_document)
               if "componentRef" in task and name in STEPS}
    for step in ("validate-data", "train-model", "evaluate-model", "deploy-model", "report-model-blocked",
                 "report-data-blocked"):
        assert caching[step] is False, step


def _all_tasks(document):
    for component in [document["root"], *document["components"].values()]:
        yield from component.get("dag", {}).get("tasks", {}).items()


def test_library_steps_do_not_import_kfp():
    code = (
        "import sys\n"
        "import gated_training.validation, gated_training.features, gated_training.training, "
        "gated_training.evaluation, gated_training.deploy, gated_training.summary, gated_training.cli\n"
        "assert not [m for m in sys.modules if m == 'kfp' or m.startswith('kfp.')], 'kfp imported'\n"
        "heavy = [m for m in ('great_expectations', 'mlflow', 'google.cloud.storage') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
