"""An accumulating table through the compiled pipeline: batch n+1 is batch n plus new rows, then a
resample of it. The champion is compared only on rows it never trained on (the stable split), so a
clean retrain that is not worse passes, and a worse model is still blocked (under non_inferiority)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gated_training.data.split import SplitRule, held_out_by
from gated_training.data.tables import row_hashes
from tests.conftest import SAMPLE_DATA, SAMPLE_SUITE
from tests.integration.conftest import DEPLOYED_TASKS, MODEL_BLOCKED_TASKS, WEAK_MODEL, LocalSetup

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "tabular-classifier"


def run_artifact(workdir, task: str, name: str):
    (path,) = workdir.glob(f"kfp-runs/*/{task}/{name}")
    return path


def row_set(frame: pd.DataFrame) -> set[int]:
    return set(row_hashes(frame).tolist())


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("accumulating")
    full = pd.read_csv(SAMPLE_DATA)
    order = np.random.default_rng(5).permutation(len(full))
    batches = {
        "n": full.iloc[np.sort(order[:900])],  # yesterday's table
        "n+1": full,  # the same table with 10% new rows appended
        "resample": full.iloc[np.sort(order[50:950])],  # another 90% sample of the same rows
    }
    suite = json.loads(SAMPLE_SUITE.read_text())
    for expectation in suite["expectations"]:
        if expectation["type"] == "expect_table_row_count_to_be_between":
            expectation["kwargs"]["min_value"] = 500  # the sample's suite expects its own 1,000 rows
    paths = {}
    for name, frame in batches.items():
        paths[name] = root / f"batch_{name}.csv"
        frame.to_csv(paths[name], index=False)
        (root / f"batch_{name}.expectations.json").write_text(json.dumps(suite))
    return root, paths


@pytest.fixture(scope="module")
def runs(table):
    root, paths = table
    setup = LocalSetup(root / "runs")
    champion = setup.run(data=paths["n"], name="n")
    resample = setup.run(data=paths["resample"], name="resample")  # the same size, other rows: a fair rival
    retrain = setup.run(data=paths["n+1"], name="n+1")
    # A weaker model under the strict rule: the rows must show it within max_regression of the champion. (Under
    # the default rule, 172 rows cannot tell its 5-point drop from noise: it would deploy, with a warning.)
    worse = setup.run(*WEAK_MODEL, "--set", "comparison_rule=non_inferiority", data=paths["n+1"], name="worse")
    return setup, {"n": champion, "n+1": retrain, "resample": resample, "worse": worse}


def test_the_champions_comparison_rows_are_disjoint_from_its_training_rows(runs):
    setup, results = runs
    assert results["n"].tasks == DEPLOYED_TASKS
    champion_train = pd.read_parquet(run_artifact(setup.root / "n", "engineer-features", "train_data"))
    rule = SplitRule.from_json(
        json.loads(run_artifact(setup.root / "n", "engineer-features", "feature_metadata").read_text())["split"]
    )
    test = pd.read_parquet(run_artifact(setup.root / "resample", "engineer-features", "test_data"))
    held_out = held_out_by(test.drop(columns=["risk"]), rule)
    comparison = test[held_out]
    assert len(comparison) > 100 and not row_set(comparison) & row_set(champion_train)
    # Without the rule's filter, too, the new test split holds none of the champion's training rows.
    assert not row_set(test) & row_set(champion_train)
    gate = json.loads(run_artifact(setup.root / "resample", "evaluate-model", "gate_decision").read_text())
    assert gate["champion"]["comparison"]["rows"] == len(comparison)


def test_a_clean_retrain_on_the_grown_table_and_on_a_resample_is_not_blocked(runs):
    _, results = runs
    for name in ("n+1", "resample"):
        summary = results[name].summary
        assert summary["outcome"] == "deployed" and results[name].tasks == DEPLOYED_TASKS, (name, summary["reasons"])
        check = next(c for c in summary["checks"] if c["name"] == "not_worse_than_champion (accuracy)")
        assert check["passed"]


def test_a_worse_model_on_the_same_table_is_still_blocked(runs):
    setup, results = runs
    summary = results["worse"].summary
    assert (summary["outcome"], summary["blocked_by"], results["worse"].tasks) == (
        "blocked",
        "model",
        MODEL_BLOCKED_TASKS,
    )
    assert "not_worse_than_champion (accuracy)" in {c["name"] for c in summary["checks"] if not c["passed"]}
    assert setup.champion_version() == results["n+1"].summary["deployed"]["version"]
