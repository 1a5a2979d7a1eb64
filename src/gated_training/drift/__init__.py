"""Drift: the reference profile and the per-feature tests (``compare``), segments and label shift, the
drift gate's decision (``gate``) and its HTML report."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.drift import segments
from gated_training.drift.compare import (
    compare,
    compare_tallies,
    feature_tallies,
    merge_tallies,
    prediction_counts,
    prediction_psi,
    profile_frame,
)
from gated_training.drift.gate import BatchTallies, DriftGateOutcome, champion_features, check_batch, schema_contract
from gated_training.drift.report import render_drift_html

__all__ = [
    "BatchTallies",
    "DriftGateOutcome",
    "champion_features",
    "check_batch",
    "compare",
    "compare_tallies",
    "feature_tallies",
    "merge_tallies",
    "prediction_counts",
    "prediction_psi",
    "profile_frame",
    "render_drift_html",
    "schema_contract",
    "segments",
]
