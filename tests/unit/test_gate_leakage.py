"""The model gate against leakage and unfair comparisons: a feature that copies the label, a gain
too large to be real, and a champion scored only on rows it never trained on."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from gated_training.config import GateThresholds
from gated_training.data.split import SplitRule, in_test_split
from gated_training.gate.leakage import balanced_accuracy, single_feature_scores
from gated_training.registry.store import FEATURE_METADATA_FILE, MODEL_FILE, ModelRegistry
from gated_training.steps.evaluate_model import BLOCK, DEPLOY, evaluate_model
from tests.builders import train_candidate
from tests.conftest import synthetic_frame

LENIENT = dict(min_accuracy=0.5, max_overfit_gap=0.5)


def evaluate(candidate, tmp_path, thresholds):
    decision = evaluate_model(
        model_path=candidate.path("model.joblib"),
        test_path=candidate.path("test.parquet"),
        training_report_path=candidate.path("training.json"),
        target="label",
        thresholds=thresholds,
        registry_uri=str(tmp_path / "registry"),
        model_name="m",
        decision_out=str(tmp_path / "decision.json"),
        report_out=str(tmp_path / "report.md"),
        feature_metadata_path=candidate.path("meta.json"),
    )
    return decision, json.loads((tmp_path / "decision.json").read_text())


def install_champion(tmp_path, outputs, split=None) -> str:
    registry = ModelRegistry(str(tmp_path / "registry"), "m")
    metadata = json.loads(Path(outputs.path("meta.json")).read_text())
    if split is not None:
        metadata["split"] = split
    version, sha = registry.publish(
        {
            MODEL_FILE: Path(outputs.path("model.joblib")).read_bytes(),
            FEATURE_METADATA_FILE: json.dumps(metadata).encode(),
        },
        {},
    )
    registry.promote(version, sha, None, "test")
    return version


def test_single_feature_scores_find_a_copied_label_and_not_an_id():
    frame = synthetic_frame(1000, seed=2)
    frame["leak"] = frame["label"].map({0: "no", 1: "yes"})
    frame["customer_id"] = [f"c{i}" for i in range(len(frame))]  # unique per row: predicts nothing
    frame["noise"] = pd.Series(range(len(frame))).sample(frac=1, random_state=0).to_numpy() * 1.0
    train, test = frame.iloc[:800], frame.iloc[800:]
    scores = single_feature_scores(train, test, "label")
    assert list(scores)[0] == "leak" and scores["leak"] == 1.0
    assert scores["customer_id"] == 0.5 and scores["noise"] < 0.6 and scores["x1"] < 0.9


@pytest.mark.parametrize("seed", range(6))
def test_balanced_accuracy_on_label_codes_is_sklearns(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, size=200)
    y_true[y_true == 2] = 3  # a class only the predictions use
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 4, size=200))
    assert balanced_accuracy(y_true, y_pred) == balanced_accuracy_score(y_true, y_pred)


def test_single_feature_scores_break_ties_by_label_order_and_score_multiclass_labels():
    # "p" holds both labels equally in training: the first label in sorted order ("a") wins the tie,
    # so every test row is answered right (1.0); breaking it towards "b" would score 0.5.
    train = pd.DataFrame({"key": ["p"] * 10 + ["q"] * 10, "label": ["a", "b"] * 5 + ["b"] * 10})
    test = pd.DataFrame({"key": ["p"] * 10 + ["q"] * 10, "label": ["a"] * 10 + ["b"] * 10})
    assert single_feature_scores(train, test, "label") == {"key": 1.0}
    assert single_feature_scores(train.replace({"a": "c"}), test.replace({"a": "c"}), "label") == {"key": 0.5}
    labels = np.random.default_rng(0).choice(["no", "maybe", "yes"], 600)
    frame = pd.DataFrame(
        {
            "copy": labels,
            "code": pd.Series(labels).map({"no": 0, "maybe": 1, "yes": 2}).astype(float),
            "noise": np.random.default_rng(1).normal(size=600),
            "label": labels,
        }
    )
    scores = single_feature_scores(frame.iloc[:300], frame.iloc[300:], "label")
    assert scores["copy"] == scores["code"] == 1.0
    assert 0.2 < scores["noise"] < 0.5  # three classes: a useless feature scores about 1/3


def test_a_feature_that_copies_the_label_blocks_the_candidate(tmp_path):
    frame = synthetic_frame(600, seed=3)
    frame["approved_flag"] = frame["label"].map({0: "N", 1: "Y"})  # recorded after the outcome
    leaky = train_candidate(tmp_path / "leaky", frame)
    decision, written = evaluate(leaky, tmp_path, GateThresholds(**LENIENT))
    check = next(c for c in decision.checks if c.name == "max_single_feature_score")
    assert (check.passed, check.value, check.threshold) == (False, 1.0, 0.95)
    assert check.detail.startswith("feature(s) approved_flag predict the label alone")
    assert decision.decision == BLOCK
    (tmp_path / "off").mkdir()
    off = evaluate(leaky, tmp_path / "off", GateThresholds(**LENIENT, max_single_feature_score=0.0))[0]
    assert "max_single_feature_score" not in {c.name for c in off.checks}


def test_a_gain_too_large_to_explain_blocks_until_a_person_raises_the_limit(tmp_path):
    weak = train_candidate(tmp_path / "weak", synthetic_frame(600, seed=5, noise=4.0))
    strong = train_candidate(tmp_path / "strong", synthetic_frame(600, seed=5, noise=0.01))
    install_champion(tmp_path, weak)
    decision, _ = evaluate(strong, tmp_path, GateThresholds(**LENIENT))
    check = next(c for c in decision.checks if c.name == "max_unexplained_gain")
    assert not check.passed and check.value > 0.15 and "usually a leak" in check.detail
    assert decision.decision == BLOCK and [c.name for c in decision.checks if not c.passed] == ["max_unexplained_gain"]
    accepted = evaluate(strong, tmp_path, GateThresholds(**LENIENT, max_unexplained_gain=0.5))[0]
    assert accepted.decision == DEPLOY


def test_the_champion_is_compared_only_on_rows_its_own_split_held_out(tmp_path):
    candidate = train_candidate(tmp_path / "candidate", synthetic_frame(1500, seed=7))
    metadata = json.loads(Path(candidate.path("meta.json")).read_text())
    narrower = {**metadata["split"], "test_size": 0.1}  # the champion held out only half as many rows
    install_champion(tmp_path, candidate, split=narrower)
    decision, written = evaluate(candidate, tmp_path, GateThresholds(**LENIENT))
    test = pd.read_parquet(candidate.path("test.parquet"))
    held_out = in_test_split(test, SplitRule.from_json(narrower))
    comparison = written["champion"]["comparison"]
    assert comparison["rows"] == int(held_out.sum()) < comparison["test_rows"] == len(test)
    assert (
        comparison["note"] == f"compared on the {int(held_out.sum())} of {len(test)} test rows the champion's "
        "split rule also held out"
    )
    legacy = tmp_path / "legacy"
    install_champion(legacy, candidate, split={})  # deployed before stable splits: every row, said so
    _, written = evaluate(candidate, legacy, GateThresholds(**LENIENT))
    assert written["champion"]["comparison"]["rows"] == len(test)
    assert "records no split rule" in written["champion"]["comparison"]["note"]


def test_too_few_shared_held_out_rows_fail_the_comparison_closed(tmp_path):
    candidate = train_candidate(tmp_path / "candidate", synthetic_frame(300, seed=7))
    metadata = json.loads(Path(candidate.path("meta.json")).read_text())
    install_champion(tmp_path, candidate, split={**metadata["split"], "test_size": 0.01})
    decision, _ = evaluate(candidate, tmp_path, GateThresholds(**LENIENT))
    check = next(c for c in decision.checks if c.name.startswith("not_worse_than_champion"))
    assert not check.passed and "too few to compare the two models fairly" in check.detail
