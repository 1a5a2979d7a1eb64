"""The checked-in YAML is what users upload: it must be current, valid and say what it promises."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from gated_training import __version__, step_table
from tests.conftest import COMPILED_PIPELINE, REPO_ROOT

STEPS = [step.id for step in step_table.STEPS]
NETWORK_STEPS = {step.id for step in step_table.STEPS if step.uses_gcs or step.uses_mlflow}


def test_the_step_table_holds_the_designed_steps():
    """The one literal list of step ids: the table is the source, this pins it."""
    assert STEPS == [
        "validate-data",
        "check-drift",
        "engineer-features",
        "train-model",
        "evaluate-model",
        "deploy-model",
        "serve-model",
    ]
    assert NETWORK_STEPS == {
        "validate-data",
        "check-drift",
        "train-model",
        "evaluate-model",
        "deploy-model",
        "serve-model",
    }
    assert step_table.GATE_STEPS == ("validate-data", "check-drift", "evaluate-model", "deploy-model", "serve-model")
    assert step_table.tasks_ending_at("check-drift") == ["check-drift", "validate-data"]
    assert step_table.tasks_ending_at(None) == []


def test_every_component_is_named_after_its_step_and_types_no_step_id():
    """A component's function is its step's id with ``_`` (the step table's ``component_name``): recorded_step
    derives the id from it and configure_step from the task's component name, so no component types a step id."""
    import ast

    components = {
        path.stem: path for path in (REPO_ROOT / "components").glob("*.py") if path.stem not in ("__init__", "image")
    }
    assert set(components) == {step_table.component_name(step) for step in step_table.STEP}
    library_steps = {path.stem for path in (REPO_ROOT / "src" / "gated_training" / "steps").glob("*.py")}
    # spark_driver is no step: it is the SparkApplication's main, which runs the Spark steps' functions.
    assert library_steps - {"__init__", "spark_driver"} == set(components), (
        "one library step per component, named alike"
    )
    step_ids = set(step_table.STEP)
    for name, path in components.items():
        tree = ast.parse(path.read_text())
        functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
        assert functions == [name], (path, functions)
        typed = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in step_ids}
        assert not typed, f"{path.name} types step id(s) {typed}"
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "recorded_step"
        ]
        assert len(calls) == 1 and not calls[0].args and "step" not in {k.arg for k in calls[0].keywords}, path
    pipeline = (REPO_ROOT / "pipelines" / "training_pipeline.py").read_text()
    assert not [step for step in step_ids if f'"{step}"' in pipeline], "the pipeline types a step id"


def test_components_call_the_library_by_keyword():
    """Positional calls let an inserted parameter silently take another's value: every call a
    component makes into gated_training with more than one argument names each argument."""
    import ast

    for path in (REPO_ROOT / "components").glob("*.py"):
        tree = ast.parse(path.read_text())
        library = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gated_training")
            for alias in node.names
        }
        assert library or path.stem in ("__init__", "image"), path
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in library:
                arguments = len(node.args) + len(node.keywords)
                assert not node.args or arguments == 1, (
                    f"{path.name}:{node.lineno}: {node.func.id}() is called with positional arguments"
                )


COMPILE_OPTIONS = (
    "IMAGE",
    "GCS_KEY_SECRET",
    "GCS_KEY_SECRET_KEY",
    "MLFLOW_TOKEN_SECRET",
    "MLFLOW_TOKEN_SECRET_KEY",
    "MLFLOW_BASIC_AUTH_SECRET",
    "WEBHOOK_SECRET",
    "WEBHOOK_SECRET_KEY",
    "RESOURCES_FILE",
    "REGISTRY_KEY_SECRET",
    "REGISTRY_KEY_SECRET_KEY",
    "ALLOW_POD_LOCAL_STATE",
    "PARAMS",
    "SPARK_IMAGE",
    "SPARK_STAGING_URI",
    "SPARK_SERVICE_ACCOUNT",
    "SPARK_DEADLINE_MINUTES",
    "SPARK_EXECUTORS",
    "SPARK_EXECUTOR_CORES",
    "SPARK_EXECUTOR_MEMORY",
    "SPARK_DRIVER_CORES",
    "SPARK_DRIVER_MEMORY",
)


def compile_to(path, image: str | None = None, extra_env: dict[str, str] | None = None) -> bytes:
    env = {k: v for k, v in os.environ.items() if k not in COMPILE_OPTIONS}
    if image:
        env["IMAGE"] = image
    env.update(extra_env or {})
    subprocess.run(
        [sys.executable, "-m", "pipelines.compile", str(path)], cwd=REPO_ROOT, env=env, check=True, capture_output=True
    )
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
        assert executor["container"]["image"] == f"localhost/kfp-gated-training:{__version__}"


def test_every_parameter_is_typed_and_described(spec_document):
    parameters = spec_document["root"]["inputDefinitions"]["parameters"]
    for name, parameter in parameters.items():
        assert parameter["parameterType"] in {"STRING", "NUMBER_DOUBLE", "NUMBER_INTEGER", "BOOLEAN", "STRUCT"}, name
        assert parameter.get("description"), f"{name} has no description in the run form"
        assert "defaultValue" in parameter or parameter.get("isOptional"), name
    assert parameters["gate"]["defaultValue"]["min_accuracy"] == 0.85
    assert parameters["training"]["defaultValue"]["n_estimators"] == 100
    assert "min_balanced_accuracy" in parameters["gate"]["description"]  # every key of a group is named


def test_the_run_form_offers_every_setting_with_the_configs_defaults(spec_document):
    """The run form is derived from the settings classes: the run-level parameters are RunSettings' fields with
    its defaults and descriptions; each group is one settings class, its default every field's default. A
    setting added to a class appears here by itself; a default changed in one place only fails here."""
    from dataclasses import fields

    from gated_training import config

    parameters = spec_document["root"]["inputDefinitions"]["parameters"]
    run_level = {f.name: f for f in fields(config.RunSettings)}
    assert set(parameters) == set(run_level) | set(config.TRAINING_FORM.groups)
    for name, field in run_level.items():
        assert parameters[name].get("defaultValue", "") == field.default, name
        assert parameters[name]["description"].lower().startswith(field.metadata["doc"][:40].lower()), name
    for group, cls in config.TRAINING_FORM.group_classes().items():
        assert parameters[group]["defaultValue"] == config.group_defaults(cls), group
        assert parameters[group]["parameterType"] == "STRUCT"


def test_gates_branch_on_primitive_outputs(spec_document):
    tasks = spec_document["root"]["dag"]["tasks"]
    conditions = {
        name: task["triggerPolicy"]["condition"]
        for name, task in _all_tasks(spec_document)
        if "condition" in task.get("triggerPolicy", {})
    }
    assert any("validate-data-Output" in c and "'passed'" in c for c in conditions.values())
    assert any("check-drift-Output" in c and "'train'" in c for c in conditions.values())
    assert any("evaluate-model-Output" in c and "'deploy'" in c for c in conditions.values())
    assert any("deploy-model-Output" in c and "'serve'" in c for c in conditions.values())  # a serving namespace is set
    # One condition per gate, nested; no Else branches, no exit handler (each gate step reports and
    # each step posts its own failure): the fewest DAGs, so the fewest driver pods.
    assert set(tasks) == {"validate-data", "condition-1"}
    assert len(conditions) == 4
    dags = [name for name, component in spec_document["components"].items() if "dag" in component]
    assert sorted(dags) == ["comp-condition-1", "comp-condition-2", "comp-condition-3", "comp-condition-4"]


def test_no_step_is_ever_served_from_cache(spec_document):
    # A nightly run with unchanged parameters must validate today's data against today's champion.
    caching = {
        name: task.get("cachingOptions", {}).get("enableCache", False)
        for name, task in _all_tasks(spec_document)
        if "componentRef" in task and name in STEPS
    }
    assert set(caching) == set(STEPS)
    for step in STEPS:
        assert caching[step] is False, step


def test_every_step_has_a_display_name_resources_and_no_task_retries(spec_document):
    from pipelines.cluster import DEFAULT_RESOURCES

    tasks = dict(_all_tasks(spec_document))
    display_names = {step: tasks[step]["taskInfo"]["name"] for step in STEPS}
    assert display_names["validate-data"] == "Validate data (GX)"
    # The UI shows display names; a real backend's task_details carry the task keys (Argo node names),
    # which are the step ids `submit --wait` reads.
    assert set(tasks) == set(STEPS) | {"condition-2", "condition-3", "condition-1", "condition-4"}
    assert len(set(display_names.values())) == len(STEPS) and not set(display_names.values()) & set(STEPS)

    executors = spec_document["deploymentSpec"]["executors"]
    for step in STEPS:
        resources = executors[f"exec-{step}"]["container"]["resources"]
        expected = DEFAULT_RESOURCES[step]
        assert (resources["resourceCpuRequest"], resources["resourceCpuLimit"]) == (
            expected.cpu_request,
            expected.cpu_limit,
        )
        assert (resources["resourceMemoryRequest"], resources["resourceMemoryLimit"]) == (
            expected.memory_request,
            expected.memory_limit,
        )
        assert (
            resources["memoryRequest"] <= resources["memoryLimit"] and resources["cpuRequest"] <= resources["cpuLimit"]
        )

    # Task retries are ignored before backend 2.5 (and inside branches before 2.14), and a retried step
    # would post its failure once per attempt: network retries happen inside the steps instead.
    assert not [name for name, task in tasks.items() if "retryPolicy" in task]


def test_default_yaml_mounts_no_secrets(spec_document):
    assert len(list(yaml.safe_load_all(COMPILED_PIPELINE.read_text()))) == 1, "no platform spec without secret names"


CREDENTIAL_PATTERNS = [
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r'"private_key"',
    r"ya29\.[0-9A-Za-z_-]+",
    r"AKIA[0-9A-Z]{16}",
    r"gh[pousr]_[0-9A-Za-z]{20,}",
    r"eyJ[0-9A-Za-z_-]{10,}\.eyJ[0-9A-Za-z_-]{10,}",
    r"Bearer [0-9A-Za-z._-]{8,}",
]


def _assert_no_credentials(text: str, values: list[str]) -> None:
    import re

    for pattern in CREDENTIAL_PATTERNS:
        assert not re.search(pattern, text), f"credential-like text matching {pattern} in the compiled YAML"
    for value in values:
        assert value not in text, "a credential value from the compile environment leaked into the YAML"


def test_checked_in_yaml_holds_no_credentials():
    _assert_no_credentials(COMPILED_PIPELINE.read_text(), [])


def test_secrets_are_referenced_by_name_and_their_values_never_compiled_in(tmp_path):
    key_file = tmp_path / "sa.json"
    private_key = "-----BEGIN PRIVATE KEY-----\\nMIIEvFAKEFAKEFAKE\\n-----END PRIVATE KEY-----\\n"
    key_file.write_text('{"type": "service_account", "private_key": "%s", "client_email": "x@p.iam"}' % private_key)
    credentials = {
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
        "MLFLOW_TRACKING_TOKEN": "mlflow-tok-9f8e7d6c",
        "MLFLOW_TRACKING_PASSWORD": "hunter2-pass-7781",
        "KF_PIPELINES_TOKEN": "kfp-tok-1a2b3c4d",
    }
    text = compile_to(
        tmp_path / "p.yaml",
        extra_env={
            **credentials,
            "GCS_KEY_SECRET": "gcs-sa-key",
            "MLFLOW_TOKEN_SECRET": "mlflow-token",
            "MLFLOW_BASIC_AUTH_SECRET": "mlflow-basic-auth",
            "WEBHOOK_SECRET": "slack-webhook",
        },
    ).decode()
    _assert_no_credentials(
        text,
        [v for k, v in credentials.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"]
        + ["MIIEvFAKEFAKEFAKE", str(key_file)],
    )

    pipeline_spec, platform = yaml.safe_load_all(text)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    # The KFP launcher in every pod moves artifacts under a gs:// pipeline root: every step gets the key.
    mounted = {step.removeprefix("exec-") for step, config in executors.items() if "secretAsVolume" in config}
    assert mounted == set(STEPS)
    assert executors["exec-deploy-model"]["secretAsVolume"][0]["secretName"] == "gcs-sa-key"
    token_env = {
        step.removeprefix("exec-"): [
            (e["secretName"], k["envVar"]) for e in config.get("secretAsEnv", []) for k in e["keyToEnv"]
        ]
        for step, config in executors.items()
    }
    assert (
        token_env["train-model"]
        == token_env["deploy-model"]
        == [
            ("mlflow-token", "MLFLOW_TRACKING_TOKEN"),
            ("mlflow-basic-auth", "MLFLOW_TRACKING_USERNAME"),
            ("mlflow-basic-auth", "MLFLOW_TRACKING_PASSWORD"),
            ("slack-webhook", "GATED_TRAINING_WEBHOOK_URL"),
        ]
    )
    assert token_env["validate-data"] == [("slack-webhook", "GATED_TRAINING_WEBHOOK_URL")]
    webhook = {step for step, pairs in token_env.items() if ("slack-webhook", "GATED_TRAINING_WEBHOOK_URL") in pairs}
    assert webhook == set(STEPS)  # each step posts its own failure
    env = pipeline_spec["deploymentSpec"]["executors"]["exec-deploy-model"]["container"]["env"]
    assert env == [{"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/var/secrets/gcs/key.json"}]


def test_resources_file_overrides_and_bad_options_fail_clearly(tmp_path):
    resources = tmp_path / "resources.yaml"
    resources.write_text("train-model:\n  memory_limit: 16Gi\n  cpu_limit: '8'\n")
    document = yaml.safe_load(compile_to(tmp_path / "p.yaml", extra_env={"RESOURCES_FILE": str(resources)}))
    train = document["deploymentSpec"]["executors"]["exec-train-model"]["container"]["resources"]
    assert (train["resourceMemoryLimit"], train["resourceCpuLimit"], train["resourceMemoryRequest"]) == (
        "16Gi",
        "8",
        "2Gi",
    )

    resources.write_text("train-model:\n  memory_request: 32Gi\n")
    failed = compile_failure(tmp_path, {"RESOURCES_FILE": str(resources)})
    assert "train-model: memory_request 32Gi exceeds memory_limit 5Gi" in failed
    resources.write_text("trian-model:\n  memory_limit: 1Gi\n")
    assert "unknown step 'trian-model'" in compile_failure(tmp_path, {"RESOURCES_FILE": str(resources)})
    resources.write_text("train-model:\n  memory_limit: lots\n")
    assert "memory_limit='lots' is not a memory quantity" in compile_failure(
        tmp_path, {"RESOURCES_FILE": str(resources)}
    )
    assert "GCS_KEY_SECRET='My_Key' is not a Kubernetes secret name" in compile_failure(
        tmp_path, {"GCS_KEY_SECRET": "My_Key"}
    )


def compile_failure(tmp_path, extra_env: dict[str, str]) -> str:
    env = {**{k: v for k, v in os.environ.items() if k not in COMPILE_OPTIONS}, **extra_env}
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.compile", str(tmp_path / "bad.yaml")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def _all_tasks(document):
    for component in [document["root"], *document["components"].values()]:
        yield from component.get("dag", {}).get("tasks", {}).items()


def test_library_steps_do_not_import_kfp():
    code = (
        "import sys\n"
        "import gated_training.steps.validate_data, gated_training.steps.engineer_features, "
        "gated_training.steps.train_model, "
        "gated_training.steps.evaluate_model, gated_training.steps.deploy_model, gated_training.reports.summary, "
        "gated_training.cli\n"
        "assert not [m for m in sys.modules if m == 'kfp' or m.startswith('kfp.')], 'kfp imported'\n"
        "heavy = [m for m in ('great_expectations', 'mlflow', 'google.cloud.storage') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_every_step_entry_point_documents_its_arguments_and_result():
    import importlib
    import inspect

    for step in step_table.MAIN_LINE:
        name = step_table.component_name(step)
        function = getattr(importlib.import_module(f"gated_training.steps.{name}"), name)
        signature = inspect.signature(function)
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in signature.parameters.values()), name
        doc = inspect.getdoc(function) or ""
        assert "Args:" in doc and "Returns:" in doc, f"{name} lacks Args:/Returns: in its docstring"
        for parameter in signature.parameters:
            assert parameter in doc, f"{name}: parameter {parameter} is not described"


def test_cluster_parameters_are_baked_into_the_run_form(tmp_path):
    """`make compile PARAMS=cluster.params.yaml`: a run started from the UI is right by default. A setting given
    flat (as before the groups) lands in its group, whose other settings keep their defaults."""
    params = tmp_path / "cluster.params.yaml"
    params.write_text(
        "data_uri: gs://acme/credit/latest.parquet\nregistry_uri: gs://acme/registry\n"
        "mlflow_tracking_uri: https://mlflow.acme.internal\nmin_accuracy: 0.9\n"
        "training: {n_estimators: 300}\ngate.max_regression: 0.02\n"
    )
    document = yaml.safe_load(compile_to(tmp_path / "p.yaml", extra_env={"PARAMS": str(params)}))
    parameters = document["root"]["inputDefinitions"]["parameters"]
    assert parameters["data_uri"]["defaultValue"] == "gs://acme/credit/latest.parquet"
    assert parameters["registry_uri"]["defaultValue"] == "gs://acme/registry"
    assert parameters["mlflow_tracking_uri"]["defaultValue"] == "https://mlflow.acme.internal"
    gate = parameters["gate"]["defaultValue"]
    assert (gate["min_accuracy"], gate["max_regression"], gate["min_test_rows"]) == (0.9, 0.02, 30)
    assert parameters["training"]["defaultValue"]["n_estimators"] == 300
    assert parameters["training"]["defaultValue"]["max_depth"] == 10  # not given: the config's default


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("registry_uri: gs://a/r\nmlflow_tracking_uri: https://m\nno_such: 1\n", "unknown parameter 'no_such'"),
        ("registry_uri: gs://a/r\nmlflow_tracking_uri: https://m\nmin_accuracy: 2\n", "min_accuracy"),
        (
            "registry_uri: gs://a/r\nmlflow_tracking_uri: https://m\ngate: {min_acuracy: 0.9}\n",
            "parameter gate.min_acuracy: unknown setting; gate's settings are: min_accuracy",
        ),
        (
            "registry_uri: /models/registry\nmlflow_tracking_uri: https://m\n",
            "registry_uri='/models/registry' is a path inside the pod",
        ),
        ("registry_uri: gs://a/r\n", "mlflow_tracking_uri='' would track into the pod"),
        ("- data_uri\n", "PARAMS="),
        ("registry_uri: [unclosed\n", "PARAMS="),
    ],
)
def test_bad_cluster_parameters_fail_the_compile_clearly(tmp_path, content, message):
    params = tmp_path / "cluster.params.yaml"
    params.write_text(content)
    assert message in compile_failure(tmp_path, {"PARAMS": str(params)})
    assert "PARAMS=" in compile_failure(tmp_path, {"PARAMS": str(tmp_path / "missing.yaml")})


def test_allow_pod_local_state_reaches_every_step_only_when_asked(tmp_path, spec_document):
    executors = spec_document["deploymentSpec"]["executors"]
    assert not [name for name, e in executors.items() if "env" in e["container"]]
    document = yaml.safe_load(compile_to(tmp_path / "p.yaml", extra_env={"ALLOW_POD_LOCAL_STATE": "1"}))
    for name, executor in document["deploymentSpec"]["executors"].items():
        assert {"name": "GATED_TRAINING_ALLOW_POD_LOCAL_STATE", "value": "1"} in executor["container"]["env"], name
    assert "ALLOW_POD_LOCAL_STATE='maybe': expected 1 or 0" in compile_failure(
        tmp_path, {"ALLOW_POD_LOCAL_STATE": "maybe"}
    )


@pytest.mark.parametrize("name", ["My_Key", "a..b", "-key", "key-", "x" * 254, "sp ace"])
def test_secret_names_are_checked_as_kubernetes_names(tmp_path, name):
    assert f"GCS_KEY_SECRET={name!r} is not a Kubernetes secret name" in compile_failure(
        tmp_path, {"GCS_KEY_SECRET": name}
    )


def test_a_spark_image_gives_the_spark_steps_what_they_submit_with_and_nothing_else(tmp_path):
    text = compile_to(
        tmp_path / "p.yaml",
        extra_env={
            "SPARK_IMAGE": "registry.example/kfp-gated-training-spark:0.3.0",
            "SPARK_STAGING_URI": "gs://team-bucket/spark/",
            "SPARK_EXECUTORS": "8",
            "SPARK_EXECUTOR_MEMORY": "16g",
            "GCS_KEY_SECRET": "gcs-sa-key",
            "REGISTRY_KEY_SECRET": "registry-key",
            "MLFLOW_TOKEN_SECRET": "mlflow-token",
            "MLFLOW_BASIC_AUTH_SECRET": "mlflow-basic",
        },
    ).decode()
    pipeline_spec, _ = yaml.safe_load_all(text)
    executors = pipeline_spec["deploymentSpec"]["executors"]
    spark_env = {
        step.removeprefix("exec-"): {
            e["name"]: e["value"] for e in config["container"].get("env", []) if "SPARK" in e["name"]
        }
        for step, config in executors.items()
    }
    assert {step for step, env in spark_env.items() if env} == {
        "validate-data",
        "check-drift",
        "engineer-features",
        "train-model",
        "evaluate-model",
    }
    drift = spark_env["check-drift"]
    assert drift["GATED_TRAINING_SPARK_IMAGE"] == "registry.example/kfp-gated-training-spark:0.3.0"
    assert drift["GATED_TRAINING_SPARK_STAGING_URI"] == "gs://team-bucket/spark"
    assert drift["GATED_TRAINING_SPARK_SERVICE_ACCOUNT"] == "default-editor"
    assert drift["GATED_TRAINING_SPARK_DEADLINE_SECONDS"] == "3600"
    assert json.loads(drift["GATED_TRAINING_SPARK_RESOURCES"]) == {
        "driver_cores": 1,
        "driver_memory": "2g",
        "executor_cores": 2,
        "executor_instances": 8,
        "executor_memory": "16g",
    }
    # Secrets by name: the registry key only for the step that reads the registry.
    assert json.loads(drift["GATED_TRAINING_SPARK_SECRETS"]) == {
        "gcp_key_secret": "gcs-sa-key",
        "env": {"GATED_TRAINING_REGISTRY_KEY": ["registry-key", "key"]},
    }
    assert json.loads(spark_env["validate-data"]["GATED_TRAINING_SPARK_SECRETS"]) == {"gcp_key_secret": "gcs-sa-key"}
    # MLflow's credentials only for the step that tracks: its driver logs the run.
    assert json.loads(spark_env["train-model"]["GATED_TRAINING_SPARK_SECRETS"]) == {
        "gcp_key_secret": "gcs-sa-key",
        "env": {
            "MLFLOW_TRACKING_TOKEN": ["mlflow-token", "token"],
            "MLFLOW_TRACKING_USERNAME": ["mlflow-basic", "username"],
            "MLFLOW_TRACKING_PASSWORD": ["mlflow-basic", "password"],
        },
    }
    # The gate reads the registry (the champion, verified) and puts its record on the MLflow run: both.
    assert json.loads(spark_env["evaluate-model"]["GATED_TRAINING_SPARK_SECRETS"]) == {
        "gcp_key_secret": "gcs-sa-key",
        "env": {
            "GATED_TRAINING_REGISTRY_KEY": ["registry-key", "key"],
            "MLFLOW_TRACKING_TOKEN": ["mlflow-token", "token"],
            "MLFLOW_TRACKING_USERNAME": ["mlflow-basic", "username"],
            "MLFLOW_TRACKING_PASSWORD": ["mlflow-basic", "password"],
        },
    }
    assert "SPARK" not in COMPILED_PIPELINE.read_text()  # the default compile has no Spark image


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SPARK_IMAGE": "spark:1"}, "SPARK_STAGING_URI='': SPARK_IMAGE needs a gs:// prefix"),
        ({"SPARK_IMAGE": "spark:1", "SPARK_STAGING_URI": "/local/dir"}, "needs a gs:// prefix"),
        (
            {"SPARK_IMAGE": "spark:1", "SPARK_STAGING_URI": "gs://b/p", "SPARK_SERVICE_ACCOUNT": "a.b"},
            "SPARK_SERVICE_ACCOUNT='a.b' is not a service account name",
        ),
        ({"SPARK_EXECUTORS": "-1"}, "SPARK_EXECUTORS='-1': expected a whole number from 1 to 1024"),
        ({"SPARK_EXECUTOR_MEMORY": "4 GB"}, "must be a JVM size"),
        ({"SPARK_DEADLINE_MINUTES": "0"}, "SPARK_DEADLINE_MINUTES='0'"),
    ],
)
def test_bad_spark_options_fail_the_compile_naming_the_variable(tmp_path, env, message):
    assert message in compile_failure(tmp_path, env)
