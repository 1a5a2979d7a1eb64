import json
import os

import pytest

from gated_training.cli import main
from gated_training.cli.common import absolutise_local_paths, parse_assignments, resolve_parameters
from gated_training.errors import ConfigError
from gated_training.kubeflow import coerce_parameter
from gated_training.kubeflow.spec import component_inputs
from tests.conftest import COMPILED_PIPELINE, SAMPLE_DATA

DECLARED = {
    "gate": ("Dict", {"min_accuracy": 0.85, "max_regression": 0.01}),
    "training": ("Dict", {"n_estimators": 100.0}),
    "features": ("Dict", {"interaction_features": False}),
    "max_input_mb": ("Float", 2048.0),
    "data_uri": ("String", "d.csv"),
}


def test_parameters_are_typed_as_the_yaml_declares_and_settings_land_in_their_group():
    assert resolve_parameters(DECLARED, []) == {
        "gate": {"min_accuracy": 0.85, "max_regression": 0.01},
        "training": {"n_estimators": 100.0},
        "features": {"interaction_features": False},
        "max_input_mb": 2048.0,
        "data_uri": "d.csv",
    }
    # flat (as before the groups), dotted, or inside the group; text from --set is typed by the setting
    resolved = resolve_parameters(
        DECLARED, [{"n_estimators": "30"}, {"features.interaction_features": "true", "gate": {"min_accuracy": "0.7"}}]
    )
    assert resolved["training"]["n_estimators"] == 30 and resolved["features"]["interaction_features"] is True
    assert resolved["gate"] == {"min_accuracy": 0.7, "max_regression": 0.01}  # the group's other settings stay


def test_later_layers_win():
    assert (
        resolve_parameters(DECLARED, [{"min_accuracy": 0.6}, {"gate.min_accuracy": 0.9}])["gate"]["min_accuracy"] == 0.9
    )


def test_a_group_given_as_json_text_and_bad_group_values_are_named():
    assert resolve_parameters(DECLARED, [{"gate": '{"min_accuracy": 0.5}'}])["gate"]["min_accuracy"] == 0.5
    with pytest.raises(ConfigError, match="parameter gate=.*expected a JSON object"):
        resolve_parameters(DECLARED, [{"gate": "[1, 2]"}])
    with pytest.raises(ConfigError, match=r"parameter training.n_estimators='ten': could not convert"):
        resolve_parameters(DECLARED, [{"n_estimators": "ten"}])


@pytest.mark.parametrize(
    ("name", "kfp_type", "value", "message"),
    [
        ("n_estimators", "Integer", "ten", "n_estimators='ten'"),
        ("n_estimators", "Integer", "2.5", "expected a whole number"),
        ("interaction_features", "Boolean", "maybe", "expected true or false"),
        ("min_accuracy", "Float", True, "expected a number"),
    ],
)
def test_bad_values_are_named(name, kfp_type, value, message):
    with pytest.raises(ConfigError, match=message):
        coerce_parameter(name, kfp_type, value)


def test_unknown_parameter_lists_the_real_ones():
    with pytest.raises(ConfigError, match="unknown parameter 'min_acuracy'; the pipeline's parameters are: data_uri, "):
        resolve_parameters(DECLARED, [{"min_acuracy": 0.9}])
    with pytest.raises(ConfigError, match="parameter gate.min_acuracy: unknown setting; gate's settings are: "):
        resolve_parameters(DECLARED, [{"gate.min_acuracy": 0.9}])


def test_set_syntax():
    assert parse_assignments(["a=1", "b = x=y"]) == {"a": "1", "b": " x=y"}
    with pytest.raises(ConfigError, match="--set 'oops': expected name=value"):
        parse_assignments(["oops"])


def test_local_paths_become_absolute_and_remote_ones_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = absolutise_local_paths(
        {
            "data_uri": "data/x.csv",
            "suite_uri": "",
            "registry_uri": "gs://b/reg",
            "mlflow_tracking_uri": "sqlite:///db/mlflow.db",
        }
    )
    assert result == {
        "data_uri": str(tmp_path / "data/x.csv"),
        "suite_uri": "",
        "registry_uri": "gs://b/reg",
        "mlflow_tracking_uri": f"sqlite:///{tmp_path}/db/mlflow.db",
    }


def test_the_compiled_yaml_declares_what_the_cli_offers():
    declared = component_inputs(COMPILED_PIPELINE)
    assert {"data_uri", "target_column", "suite_uri", "registry_uri", "mlflow_tracking_uri"} <= set(declared)
    assert "min_accuracy" in declared["gate"][1]  # --min-accuracy is gate.min_accuracy


def test_config_errors_exit_2_and_still_write_a_summary(tmp_path, capsys):
    code = main(
        ["run", "--data", str(SAMPLE_DATA), "--target", "risk", "--workdir", str(tmp_path), "--set", "cv_folds=1"]
    )
    assert code == 2
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["outcome"] == "failed" and "cv_folds=1" in summary["reasons"][0]
    assert "error: parameter cv_folds=1" in capsys.readouterr().err


def test_missing_compiled_pipeline_says_how_to_make_it(tmp_path, capsys):
    code = main(
        [
            "run",
            "--data",
            "x.csv",
            "--target",
            "y",
            "--workdir",
            str(tmp_path),
            "--pipeline",
            str(tmp_path / "none.yaml"),
        ]
    )
    assert code == 2 and "run `make compile` first" in capsys.readouterr().err


def test_params_file_errors(tmp_path, capsys):
    bad = tmp_path / "p.yaml"
    bad.write_text("- a list\n")
    assert main(["run", "--params", str(bad), "--workdir", str(tmp_path)]) == 2
    assert "expected a mapping" in capsys.readouterr().err


def test_suite_init_drafts_beside_the_data_and_refuses_to_overwrite(tmp_path, capsys):
    data = tmp_path / "credit.csv"
    data.write_bytes(SAMPLE_DATA.read_bytes())
    assert main(["suite", "init", "--data", str(data), "--target", "risk"]) == 0
    drafted = json.loads((tmp_path / "credit.expectations.json").read_text())
    assert drafted["name"] == "credit" and len(drafted["expectations"]) > 30
    assert main(["suite", "init", "--data", str(data), "--target", "risk"]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert main(["suite", "init", "--data", str(data), "--target", "nope", "--force"]) == 1
    assert "target column 'nope' is not in the data" in capsys.readouterr().err


def test_check_drift_exits_3_when_retraining_is_advised(tmp_path, capsys):
    from gated_training.data.synthetic import generate
    from gated_training.data.tables import load_table
    from tests.unit.test_drift_gate import heavy_drift, install

    clean, drifted, champion_data = tmp_path / "clean.csv", tmp_path / "drifted.csv", tmp_path / "champion.csv"
    generate(3000, seed=2).to_csv(clean, index=False)
    heavy_drift(3000, 3).to_csv(drifted, index=False)
    generate(3000, seed=1).to_csv(champion_data, index=False)
    common = ["--target", "churned", "--registry", str(tmp_path / "registry"), "--model-name", "m"]

    assert main(["check-drift", "--data", str(clean), *common]) == 3  # no champion: training is needed
    assert "against champion (none): retraining advised" in capsys.readouterr().out
    install(tmp_path, generate(3000, seed=1), data_sha256=load_table(str(champion_data)).sha256)
    assert main(["check-drift", "--data", str(clean), *common]) == 0
    assert main(["check-drift", "--data", str(champion_data), *common]) == 0
    assert "no_new_data" in capsys.readouterr().out
    report, record = tmp_path / "drift.html", tmp_path / "drift.json"
    assert main(["check-drift", "--data", str(drifted), *common, "--json", str(record), "--report", str(report)]) == 3
    out = capsys.readouterr().out
    assert "retraining advised" in out and "50% of 6 features drifted" in out
    written = json.loads(record.read_text())
    assert written["retraining_advised"] is True and written["drifted"] is True
    assert "Drift gate: BLOCKED" in report.read_text()
    # Looser thresholds: the same batch no longer advises retraining.
    assert (
        main(
            [
                "check-drift",
                "--data",
                str(drifted),
                *common,
                "--max-drifted-share",
                "0.9",
                "--severe-psi",
                "0",
                "--severe-out-of-range",
                "0",
            ]
        )
        == 0
    )
    assert main(["check-drift", "--data", str(drifted), *common, "--max-drifted-share", "2"]) == 2


def test_every_subcommand_documents_each_option_its_exit_codes_and_an_example(capsys):
    """Help pages are the first thing an operator reads: no undocumented option, no RST markup."""
    import argparse

    from gated_training.cli import build_parser
    from gated_training.cli.help_text import PAGES, subcommands

    parser = build_parser()
    leaves = subcommands(parser)
    assert set(leaves) == set(PAGES)
    for path, child in leaves.items():
        for action in child._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help and action.help != argparse.SUPPRESS or action.dest == "poll_seconds", (
                    path,
                    action.dest,
                )
        page = child.format_help()
        assert "exit codes: 0 " in page and "example" in page and "gated-training " in page.split("example")[-1], path
        assert "``" not in page and child.description, path
    assert "``" not in parser.format_help() and "check-drift exits 3" in parser.format_help()


def test_run_outside_the_checkout_says_where_the_yaml_was_expected(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--data", "x.csv", "--target", "y"]) == 2
    err = capsys.readouterr().err
    assert f"compiled pipeline {tmp_path}/compiled/training_pipeline.yaml not found" in err
    assert "run this from the kfp-gated-training checkout" in err and "--pipeline PATH" in err


def test_mlflow_telemetry_is_off_unless_the_user_turns_it_on():
    """MLflow 3 sends usage telemetry (DNS lookups, HTTP) on every run unless told not to; importing the
    package turns it off by default, outside tests and CI too (where MLflow would switch it off itself)."""
    import subprocess
    import sys

    ci_markers = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")
    env = {k: v for k, v in os.environ.items() if k not in ci_markers}
    probe = (
        "import gated_training, os; from mlflow.telemetry.utils import is_telemetry_disabled; "
        "print(is_telemetry_disabled(), os.environ['GX_ANALYTICS_ENABLED'])"
    )
    assert subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split() == ["True", "false"]
    chosen = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "MLFLOW_DISABLE_TELEMETRY": "false"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert chosen[0] == "False"  # a user who turns it on gets it
