"""Bounded memory on any table: 100k rows with a unique string ID that the suite does NOT exclude
run through the compiled pipeline within every step's compiled memory limit (the one-hot encoder
caps the column at max_categories levels). The peak RSS per step is printed for docs/scaling.md."""

from __future__ import annotations

import json

import pytest

from gated_training.data.synthetic import TARGET, generate
from gated_training.validation.suite import draft_suite
from pipelines.cluster import DEFAULT_RESOURCES, _bytes
from tests.integration.conftest import DEPLOYED_TASKS, LocalSetup

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROWS = 100_000


def test_a_unique_id_column_runs_within_the_compiled_limits(tmp_path):
    frame = generate(ROWS, seed=21).assign(customer_id=[f"CUST-{i:08d}" for i in range(ROWS)])
    data = tmp_path / "customers.csv"
    frame.to_csv(data, index=False)
    suite = draft_suite(frame, TARGET, "customers")
    assert suite["meta"]["excluded_features"] == ["customer_id"]  # suite init would keep it out ...
    del suite["meta"]["excluded_features"]  # ... a hand-written suite does not: the encoder must cope
    (tmp_path / "customers.expectations.json").write_text(json.dumps(suite))

    setup = LocalSetup(tmp_path / "run")
    result = setup.run("--set", f"target_column={TARGET}", "--set", "n_estimators=20", data=data, name="ids")
    assert result.summary["outcome"] == "deployed" and result.tasks == DEPLOYED_TASKS, result.summary["reasons"]
    usage = result.summary["step_usage"]
    print(
        "peak RSS MiB at 100k rows with a unique ID column:",
        {step: round(u["peak_rss_mib"]) for step, u in usage.items()},
    )
    for step, record in usage.items():
        limit_mib = _bytes(DEFAULT_RESOURCES[step].memory_limit) / 2**20
        assert record["peak_rss_mib"] < limit_mib, (step, record["peak_rss_mib"], limit_mib)
    version = setup.champion_version()
    metadata = json.loads(
        (setup.registry / "tabular-classifier" / "versions" / version / "feature_metadata.json").read_text()
    )
    id_columns = [name for name in metadata["engineered_features"] if "customer_id" in name]
    assert len(id_columns) == 1  # every ID is rare: all pooled into one "infrequent" column
