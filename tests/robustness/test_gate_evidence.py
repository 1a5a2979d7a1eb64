"""The gate decided on evidence, on real tables (German credit, scikit-learn's breast-cancer table),
as an attacker, a careless data owner and a statistician would try it (issue 24).

Runs that need the drift gate or the registry go through the compiled pipeline; first-run model-gate
cases run the same library steps in-process (engineer-features, train-model, evaluate-model: what the
components call), which is what decides them. Every case asserts the outcome, the message, and that
the registry is byte-identical.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gated_training.cli import main
from gated_training.config import GateThresholds
from gated_training.steps.evaluate_model import evaluate_model
from tests.builders import train_candidate
from tests.conftest import SAMPLE_DATA, SAMPLE_SUITE
from tests.integration.conftest import DRIFT_STOPPED_TASKS, LocalSetup, copy_setup
from tests.registry_helpers import registry_bytes

pytestmark = pytest.mark.integration


def credit() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DATA)


@pytest.fixture(scope="module")
def champion_setup(sample_champion, tmp_path_factory) -> LocalSetup:
    return copy_setup(sample_champion, tmp_path_factory.mktemp("evidence") / "setup")


def gate(
    tmp_path: Path,
    frame: pd.DataFrame,
    target: str,
    thresholds: GateThresholds = GateThresholds(),
    registry: Path | None = None,
):
    """engineer-features, train-model and evaluate-model on ``frame``, as the pipeline runs them."""
    candidate = train_candidate(tmp_path / "candidate", frame, target=target)
    registry = registry or tmp_path / "registry"
    before = registry_bytes(registry)
    decision = evaluate_model(
        model_path=candidate.path("model.joblib"),
        test_path=candidate.path("test.parquet"),
        training_report_path=candidate.path("training.json"),
        target=target,
        thresholds=thresholds,
        registry_uri=str(registry),
        model_name="m",
        decision_out=candidate.path("gate.json"),
        report_out=candidate.path("gate.md"),
        feature_metadata_path=candidate.path("meta.json"),
    )
    assert registry_bytes(registry) == before
    return decision, Path(candidate.path("gate.md")).read_text()


def failed_checks(decision) -> set[str]:
    return {check.name for check in decision.checks if check.blocks}


def test_a_majority_class_model_on_95_5_labels_is_blocked_naming_the_baseline(tmp_path):
    frame = credit()
    useless = pd.concat([frame[frame["risk"] == 1], frame[frame["risk"] == 0].sample(37, random_state=0)])
    useless["risk"] = np.random.default_rng(0).permutation(useless["risk"].to_numpy())  # no signal left
    decision, report = gate(tmp_path, useless.reset_index(drop=True), "risk")
    accuracy = next(c for c in decision.checks if c.name == "min_accuracy")
    assert accuracy.passed  # above 0.85: accuracy alone would have deployed it
    assert decision.decision == "block" and {"beats_prior_predictor", "min_balanced_accuracy"} <= failed_checks(
        decision
    )
    assert any("no better than answering the most common class" in r for r in decision.reasons)
    assert "prior predictor (always `1`)" in report


def test_a_real_model_on_an_imbalanced_table_with_signal_deploys(tmp_path):
    from sklearn.datasets import load_breast_cancer

    table = load_breast_cancer(as_frame=True).frame
    table.columns = [c.replace(" ", "_") for c in table.columns]
    imbalanced = pd.concat([table[table["target"] == 1], table[table["target"] == 0].sample(31, random_state=0)])
    assert imbalanced["target"].mean() == pytest.approx(0.92, abs=0.01)
    decision, report = gate(
        tmp_path,
        imbalanced.sample(frac=1, random_state=0).reset_index(drop=True),
        "target",
        GateThresholds(min_accuracy=0.9),
    )
    assert decision.decision == "deploy", decision.reasons
    baseline = next(c for c in decision.checks if c.name == "beats_prior_predictor")
    assert baseline.evidence["interval"][0] > 0 and decision.baseline["metrics"]["balanced_accuracy"] == 0.5


def test_a_label_split_across_two_columns_is_blocked_on_a_first_run(tmp_path):
    frame = credit()
    k1 = np.random.default_rng(1).integers(0, 2, len(frame))
    leaking = frame.assign(k1=k1, k2=k1 ^ frame["risk"].to_numpy())
    decision, _ = gate(tmp_path, leaking, "risk", GateThresholds(min_accuracy=0.6))
    assert failed_checks(decision) == {"max_pair_feature_score"}
    assert any(
        "the label is carried by a pair of columns (k1 × k2 score 1.0000 together" in r for r in decision.reasons
    ), decision.reasons


def test_a_tiny_table_is_blocked_saying_how_many_rows_a_decision_needs(tmp_path):
    decision, _ = gate(
        tmp_path, credit().sample(60, random_state=3).reset_index(drop=True), "risk", GateThresholds(min_accuracy=0.5)
    )
    assert "min_test_rows" in failed_checks(decision)
    assert any(
        "a decision needs at least 30 test rows and 5 of each class: with test_size 0.2, about 150 rows in "
        "the batch" in r
        for r in decision.reasons
    ), decision.reasons


def test_one_row_better_on_200_real_rows_is_not_significant_under_either_rule(tmp_path):
    """Two real forests on German credit: the candidate is the champion with 8 of its errors fixed and 7
    correct answers broken on the same 200 rows. Default rule: no significant difference, deploys;
    non_inferiority: the interval reaches below -max_regression, blocks."""
    from gated_training.gate import Answers, ChampionView, GateContext, run_checks
    from gated_training.gate.metrics import score_predictions

    candidate = train_candidate(tmp_path / "c", credit(), target="risk")
    import joblib

    model = joblib.load(candidate.path("model.joblib"))
    test = pd.read_parquet(candidate.path("test.parquet")).head(200)
    y = test["risk"].to_numpy()
    champion = model.predict(test.drop(columns=["risk"]))
    wrong, right = np.flatnonzero(champion != y), np.flatnonzero(champion == y)
    assert len(wrong) >= 8 and len(test) == 200 or len(test) < 200
    predicted = champion.copy()
    predicted[wrong[:8]] = y[wrong[:8]]
    predicted[right[:7]] = 1 - y[right[:7]]

    def answers(codes):
        return Answers(codes=codes, proba=None, scores=score_predictions(pd.Series(y), codes, None, np.array([0, 1])))

    for rule, passes in (("no_significant_regression", True), ("non_inferiority", False)):
        thresholds = GateThresholds(min_accuracy=0.5, comparison_rule=rule)
        view = ChampionView(
            version="v",
            rows=np.arange(len(y)),
            y=y,
            candidate=answers(predicted),
            champion=answers(champion),
            note="same rows",
        )
        context = GateContext(
            thresholds=thresholds,
            labels=[0, 1],
            y=y,
            candidate=answers(predicted),
            baseline=answers(np.ones(len(y), dtype=int)),
            features=test.drop(columns=["risk"]),
            training={"overfit_gap": 0.0},
            metadata={},
            champion=view,
            champion_version="v",
            trained=[0, 1],
        )
        check = next(c for c in run_checks(context) if c.name == "not_worse_than_champion (accuracy)")
        assert check.value == pytest.approx(1 / len(y)) and check.evidence["verdict"] == "no significant difference"
        assert (check.evidence["wins"], check.evidence["losses"]) == (8, 7) and check.passed is passes, check.detail


def test_an_honest_retrain_of_equal_quality_deploys_under_the_default(champion_setup):
    before = champion_setup.champion_version()
    result = champion_setup.run("--set", "random_state=7", name="honest-retrain")
    assert result.summary["outcome"] == "deployed", result.summary["reasons"]
    check = next(c for c in result.summary["checks"] if c["name"] == "not_worse_than_champion (accuracy)")
    assert check["passed"] and champion_setup.champion_version() != before


def test_a_relabelled_subgroup_is_blocked_naming_the_segment(champion_setup, tmp_path):
    frame = credit()
    frame.loc[(frame["sex"] == "female") & (frame["housing"] == "own"), "risk"] = 0  # no feature changed
    data = tmp_path / "relabelled.csv"
    frame.to_csv(data, index=False)
    before = registry_bytes(champion_setup.registry)
    result = champion_setup.run("--suite", str(SAMPLE_SUITE), data=data, name="relabelled")
    summary = result.summary
    assert (summary["outcome"], summary["blocked_by"], result.tasks) == ("blocked", "label_shift", DRIFT_STOPPED_TASKS)
    assert summary["reasons"][0].startswith(
        "label shift in segment housing=own, sex=female: the share of risk=0 went from"
    ), summary["reasons"]
    assert "to 100.0% (batch, n=196)" in summary["reasons"][0]
    assert registry_bytes(champion_setup.registry) == before


def test_a_plainly_different_table_is_blocked_naming_the_fix(champion_setup, tmp_path):
    from sklearn.datasets import load_breast_cancer

    from gated_training.validation.suite import draft_suite

    table = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "risk"})
    table.columns = [c.replace(" ", "_") for c in table.columns]
    data = tmp_path / "tumours.csv"
    table.to_csv(data, index=False)
    (tmp_path / "tumours.expectations.json").write_text(json.dumps(draft_suite(table, "risk", "tumours")))
    before = registry_bytes(champion_setup.registry)
    result = champion_setup.run(data=data, name="another-table")
    summary = result.summary
    assert (summary["outcome"], summary["blocked_by"], result.tasks) == ("blocked", "schema", DRIFT_STOPPED_TASKS)
    assert "the batch looks like another table than champion" in summary["reasons"][0]
    assert "pass another --registry (registry_uri) or model_name" in summary["reasons"][0]
    assert registry_bytes(champion_setup.registry) == before


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://hooks.example.com/T0/B0/x\r\nX-Injected: 1", "holds a control character or a space"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata server"),
        ("http://2852039166/latest", "169.254.169.254 is a cloud metadata server"),
        ("http://0xa9fea9fe/latest", "169.254.169.254 is a cloud metadata server"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata server (inside ::ffff:a9fe:a9fe)"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal is a cloud metadata server"),
        ("http://localhost:15000/quitquitquit", "localhost resolves to 127.0.0.1 is a loopback address"),
    ],
)
def test_a_webhook_that_would_reach_a_metadata_or_local_address_is_refused_before_running(
    champion_setup, monkeypatch, url, message
):
    monkeypatch.delenv("GATED_TRAINING_WEBHOOK_ALLOWED_HOSTS")
    before = registry_bytes(champion_setup.registry)
    result = champion_setup.run("--set", f"notify_webhook_url={url}", name="webhook")
    assert (result.exit_code, result.tasks, result.summary["outcome"]) == (2, [], "failed")
    assert "parameter notify_webhook_url: " in result.summary["reasons"][0] and message in result.summary["reasons"][0]
    assert registry_bytes(champion_setup.registry) == before


def test_a_weak_key_or_a_key_file_open_to_others_is_refused_before_any_step(champion_setup, tmp_path, monkeypatch):
    before = registry_bytes(champion_setup.registry)
    monkeypatch.setenv("GATED_TRAINING_REGISTRY_KEY", "a" * 32)
    result = champion_setup.run(name="weak-key")
    assert (result.exit_code, result.tasks) == (2, [])
    assert "the registry key is too predictable (1 distinct characters" in result.summary["reasons"][0]
    key_file = tmp_path / "registry.key"
    key_file.write_text(os.urandom(24).hex())
    key_file.chmod(0o644)
    monkeypatch.delenv("GATED_TRAINING_REGISTRY_KEY")
    monkeypatch.setenv("GATED_TRAINING_REGISTRY_KEY_FILE", str(key_file))
    result = champion_setup.run(name="open-key-file")
    assert (result.exit_code, result.tasks) == (2, [])
    assert f"chmod 600 {key_file}" in result.summary["reasons"][0]
    assert registry_bytes(champion_setup.registry) == before


def test_a_planted_version_is_never_signed_and_a_replayed_pointer_stops_every_reader(champion_copy, tmp_path, capsys):
    """On a registry the pipeline made: an unsigned version planted with a pickle that would run code is
    refused by sign-legacy and promote (the marker never appears); a genuine older pointer copied back
    over champion.json after a rollback is refused by history and by the next run's drift gate."""
    import pickle
    import shutil

    setup = champion_copy
    first = setup.champion_version()
    assert setup.run("--set", "random_state=3", name="second").summary["outcome"] == "deployed"
    common = ["--registry", str(setup.registry)]
    versions = setup.registry / "tabular-classifier" / "versions"
    planted = versions / "20991231T235959000000Z-0badc0de"
    shutil.copytree(versions / first, planted)
    (planted / "manifest.sig").unlink()
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (planted / "serve" / "model.joblib").write_bytes(pickle.dumps(Payload()))
    assert main(["sign-legacy", *common]) == 1
    assert (
        "20991231T235959000000Z-0badc0de  refused: the registry already holds 2 signed version(s)"
        in capsys.readouterr().out
    )
    assert main(["promote", planted.name, "--reason", "newest", *common]) == 1
    assert "the version is unsigned" in capsys.readouterr().err and not marker.exists()

    log = setup.registry / "tabular-classifier" / "pointer_log"
    replay = (log / sorted(p.name for p in log.iterdir())[-1]).read_bytes()  # the second version, signed
    assert main(["rollback", "--reason", "bad predictions", *common]) == 0
    capsys.readouterr()
    setup.pointer.write_bytes(replay)
    before = registry_bytes(setup.registry)
    assert main(["history", *common]) == 1
    assert "the pointer was replaced by an older state (a replay)" in capsys.readouterr().err
    result = setup.run(name="after-replay")
    assert result.summary["outcome"] == "failed" and result.summary["reasons"][0].startswith(
        "check-drift failed: RegistryError"
    ), result.summary["reasons"]
    assert "a replay" in result.summary["reasons"][0]
    assert registry_bytes(setup.registry) == before and not marker.exists()
