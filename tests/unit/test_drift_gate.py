"""The drift step's decisions against a champion in a folder registry, and its HTML report."""

import base64
import json
import re

import pytest

from gated_training.config import DriftPolicy
from gated_training.data.synthetic import TARGET, generate
from gated_training.data.tables import json_safe
from gated_training.drift.compare import profile_frame
from gated_training.drift.gate import BLOCK, DRIFT, NO_NEW_DATA, SKIP, TRAIN, check_batch
from gated_training.drift.report import render_drift_html
from gated_training.errors import ConfigError, RegistryError
from gated_training.registry.store import FEATURE_METADATA_FILE, MODEL_FILE, REFERENCE_PROFILE_FILE, ModelRegistry

ROWS = 3000
CHAMPION_SHA = "c" * 64


@pytest.fixture(scope="module")
def clean():
    return generate(ROWS, seed=1)


def install(tmp_path, frame=None, data_sha256=CHAMPION_SHA) -> tuple[str, str]:
    registry = ModelRegistry(str(tmp_path / "registry"), "m")
    files = {MODEL_FILE: b"model bytes"}
    if frame is not None:
        files[REFERENCE_PROFILE_FILE] = json.dumps(
            json_safe(profile_frame(frame, TARGET, predictions=frame[TARGET]))
        ).encode()
        files[FEATURE_METADATA_FILE] = json.dumps(
            {"inputs": [{"name": c} for c in frame.columns if c != TARGET]}
        ).encode()
    version, sha = registry.publish(files, {"data_sha256": data_sha256})
    registry.promote(version, sha, None, "test")
    return str(tmp_path / "registry"), version


def decide(registry_uri, frame, policy=DriftPolicy(), sha="d" * 64):
    return check_batch(lambda: frame, sha, TARGET, registry_uri, "m", policy)


def unreadable_batch():
    raise AssertionError("the batch was read although nothing needed it")


def test_no_champion_trains_and_says_why_drift_was_not_checked(tmp_path):
    outcome = check_batch(unreadable_batch, "d" * 64, TARGET, str(tmp_path / "registry"), "m", DriftPolicy())
    assert (outcome.decision, outcome.reason, outcome.report, outcome.champion) == (TRAIN, None, None, None)
    assert outcome.notes == ["no champion yet: nothing to compare the batch with"]
    assert outcome.deploy_allowed and outcome.retraining_advised


def test_the_champions_own_data_is_skipped_unless_forced(tmp_path, clean):
    registry_uri, version = install(tmp_path, clean)
    skipped = check_batch(unreadable_batch, CHAMPION_SHA, TARGET, registry_uri, "m", DriftPolicy())
    assert (skipped.decision, skipped.reason, skipped.champion) == (SKIP, NO_NEW_DATA, version)
    assert "force_retrain=true" in skipped.reasons[0] and CHAMPION_SHA in skipped.reasons[0]
    assert not skipped.retraining_advised
    forced = decide(registry_uri, clean, DriftPolicy(force_retrain=True), sha=CHAMPION_SHA)
    assert forced.decision == TRAIN and forced.report is not None and not forced.drifted


def test_a_fresh_clean_batch_trains_with_nothing_drifted(tmp_path, clean):
    registry_uri, _ = install(tmp_path, clean)
    outcome = decide(registry_uri, generate(ROWS, seed=2))
    assert (outcome.decision, outcome.drifted, outcome.reasons) == (TRAIN, False, [])
    assert not any(f["drifted"] for f in outcome.report["features"])
    assert not outcome.retraining_advised


def heavy_drift(rows: int, seed: int):
    """Three of six features moved: over the default 30% share."""
    frame = generate(rows, seed=seed, drift="mean_shift")
    frame["tenure_months"] = frame["tenure_months"] * 2 + 10
    frame["region"] = frame["region"].where(frame["region"].isna(), "north")
    return frame


@pytest.mark.parametrize(
    ("action", "decision", "reason", "deploy_allowed"),
    [("block", BLOCK, DRIFT, True), ("warn", TRAIN, None, True), ("retrain_only", TRAIN, None, False)],
)
def test_drift_action_decides_what_a_drifted_batch_does(tmp_path, clean, action, decision, reason, deploy_allowed):
    registry_uri, _ = install(tmp_path, clean)
    outcome = decide(registry_uri, heavy_drift(ROWS, 3), DriftPolicy(drift_action=action))
    assert (outcome.decision, outcome.reason, outcome.deploy_allowed, outcome.drifted) == (
        decision,
        reason,
        deploy_allowed,
        True,
    )
    flagged = {f["feature"] for f in outcome.report["features"] if f["drifted"]}
    assert flagged == {"income", "tenure_months", "region"}
    assert re.match(r"3 of 6 features drifted \(50% >= max_drifted_share 30%\)", outcome.reasons[0])
    assert outcome.retraining_advised
    assert any("retrain_only" in note for note in outcome.notes) == (action == "retrain_only")


def test_one_critical_feature_drifting_drifts_the_batch(tmp_path, clean):
    registry_uri, _ = install(tmp_path, clean)
    batch = generate(ROWS, seed=3, drift="new_categories")
    lenient = {"drift_severe_psi": 0.0, "drift_severe_out_of_range": 0.0}  # severity is tested on its own below
    assert not decide(registry_uri, batch, DriftPolicy(**lenient)).drifted  # 1 of 6 features is under the share
    outcome = decide(registry_uri, batch, DriftPolicy(drift_critical_features="channel, income", **lenient))
    assert outcome.decision == BLOCK and any(r.startswith("critical feature channel drifted") for r in outcome.reasons)
    with pytest.raises(ConfigError, match="drift_critical_features: chanel not among the profiled features"):
        decide(registry_uri, batch, DriftPolicy(drift_critical_features="chanel"))


def test_a_champion_without_a_profile_trains_unchecked(tmp_path, clean):
    registry_uri, version = install(tmp_path, None)
    outcome = decide(registry_uri, clean)
    assert (outcome.decision, outcome.report) == (TRAIN, None)
    assert outcome.notes == [
        f"champion {version} has no reference profile (deployed before drift checks existed): drift not checked"
    ]


def test_an_altered_profile_fails_closed(tmp_path, clean):
    registry_uri, version = install(tmp_path, clean)
    (tmp_path / "registry" / "m" / "versions" / version / REFERENCE_PROFILE_FILE).write_text("{}")
    with pytest.raises(RegistryError, match="drift gate fails closed.*reference_profile.json has SHA-256"):
        decide(registry_uri, clean)


def test_one_severely_drifted_feature_drifts_the_batch_whatever_the_share(tmp_path, clean):
    """1 of 6 features is under max_drifted_share, but 20% unseen categories (or a PSI above 1) is gross corruption."""
    registry_uri, _ = install(tmp_path, clean)
    outcome = decide(registry_uri, generate(ROWS, seed=3, drift="new_categories"))
    assert outcome.decision == BLOCK and outcome.reason == "drift"
    assert [r for r in outcome.reasons if r.startswith("severe drift")] == [
        "severe drift on feature channel: PSI 1.52 >= drift_severe_psi 1; 19.5% of values outside the reference "
        "categories >= drift_severe_out_of_range 10.0%"
    ]
    scaled = clean.assign(income=clean["income"] * 100)  # a unit change upstream: cents for euros
    outcome = decide(registry_uri, scaled)
    assert outcome.decision == BLOCK
    assert (
        "severe drift on feature income: PSI 8.28 >= drift_severe_psi 1; 100.0% of values outside the reference "
        "range >= drift_severe_out_of_range 10.0%" in outcome.reasons
    )
    normal = decide(registry_uri, generate(ROWS, seed=2))
    assert (normal.decision, normal.drifted) == (TRAIN, False)


def test_the_schema_contract_blocks_new_and_missing_columns(tmp_path, clean):
    registry_uri, version = install(tmp_path, clean)
    with_new = generate(ROWS, seed=2).assign(loyalty=1.0)
    outcome = decide(registry_uri, with_new)
    assert (outcome.decision, outcome.reason) == (BLOCK, "schema")
    assert outcome.reasons[0].startswith(
        f"schema: new column(s) loyalty that champion {version} was not trained on (new_columns=block)"
    )
    ignored = decide(registry_uri, with_new, DriftPolicy(new_columns="ignore"))
    assert (ignored.decision, ignored.ignored_columns) == (TRAIN, ["loyalty"])
    assert ignored.warnings == [
        f"schema: new column(s) loyalty dropped (new_columns=ignore); champion {version}'s features are used"
    ]
    missing = decide(registry_uri, generate(ROWS, seed=2).drop(columns=["region"]), DriftPolicy(new_columns="ignore"))
    assert (missing.decision, missing.reason) == (BLOCK, "schema")
    assert missing.reasons[0].startswith(f"schema: feature(s) region of champion {version} are missing from the batch")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("drift_action", "ignore", "must be one of block, warn, retrain_only"),
        ("drift_psi_threshold", 0, "must be > 0"),
        ("drift_psi_threshold", -1.0, "finite number >= 0"),
        ("drift_max_drifted_share", 1.5, "within [0, 1]"),
        ("drift_max_drifted_share", 0.0, "must be > 0"),
        ("force_retrain", "yes", "true or false"),
    ],
)
def test_policy_is_validated_once(field, value, message):
    with pytest.raises(ConfigError, match=re.escape(f"parameter {field}=") + ".*" + re.escape(message)):
        DriftPolicy(**{field: value})


def test_html_report_is_self_contained_with_one_plot_per_feature(tmp_path, clean):
    registry_uri, _ = install(tmp_path, clean)
    outcome = decide(registry_uri, heavy_drift(ROWS, 4))
    page = render_drift_html(outcome.to_json())
    assert "Drift gate: BLOCKED" in page and "<table>" in page
    assert page.count("data:image/svg+xml;base64,") == 6
    assert "http://" not in page and "https://" not in page  # nothing fetched: works offline and sandboxed
    assert page.index(">income<") < page.index(">support_calls<")  # drifted features first
    assert "3 of 6 features drifted" in page
    first = render_drift_html(decide(str(tmp_path / "empty"), clean).to_json())
    assert "no champion yet" in first and "data:image" not in first


def test_a_first_run_is_headed_not_compared_never_no_drift():
    from gated_training.drift import render_drift_html

    page = render_drift_html(
        {
            "decision": "train",
            "drifted": False,
            "drift_action": "block",
            "champion": None,
            "data_sha256": "0" * 64,
            "reasons": [],
            "notes": ["no champion yet: nothing to compare the batch with"],
            "report": None,
        }
    )
    assert "Drift gate: not compared: no champion yet: nothing to compare the batch with" in page
    assert "no drift<" not in page


def test_a_skewed_feature_is_plotted_on_a_scale_that_shows_its_shift():
    """Fares from 0 to 512: quantile bins of 8, 9, 13, 26, 512 on a linear axis make every bin but the last a
    sliver; the plot goes symlog. An evenly spread feature stays linear."""
    from gated_training.drift.report import _plot, x_scale

    assert x_scale([0, 7.9, 8.05, 10.5, 14.5, 26, 31, 52, 77, 512.3]) == "symlog"
    assert x_scale([18, 25, 30, 35, 40, 45, 50, 60, 75]) == "linear"
    assert x_scale([-5, 0, 5, 500]) == "linear"  # negative values: no log axis
    feature = {
        "feature": "fare", "kind": "numeric", "psi": 0.4, "drifted": True, "test": "ks", "statistic": 0.3,
        "p_value": 1e-6, "effect": 0.3, "top_shifts": [], "out_of_range_share": 0.0,
        "distribution": {"edges": [0, 7.9, 8.05, 14.5, 31, 512.3], "reference": [0.2] * 5,
                         "batch": [0.05, 0.05, 0.1, 0.3, 0.5], "below": 0.0, "above": 0.0},
    }  # fmt: skip
    svg = base64.b64decode(_plot(feature)).decode()
    assert "share per bin (log x)" in svg
    # On the symlog axis (matplotlib's transform) the low bins are drawn wide enough to see: the bin 0–7.9 (1.5 % of
    # the range) is wider than the bin 31–512.3 (94 % of it); on a linear axis it would be a 5-pixel sliver.
    widths = [
        float(w)
        for w in re.findall(r"<rect x='[\d.]+' y='[\d.]+' width='([\d.]+)' height='[\d.]+' fill='#4c72b0'", svg)
    ]
    assert len(widths) == 6 and widths[0] > widths[4] > widths[3] > widths[2], widths  # the bins, then the legend
    linear = dict(feature, distribution=dict(feature["distribution"], edges=[0, 100, 200, 300, 400, 500]))
    assert "density" in base64.b64decode(_plot(linear)).decode()
