"""Statistical drift between a reference profile (saved with a deployed version) and a new batch.

The profile is compact and needs no old training data:

- numeric features: quantile bin edges and counts, mean, std, null fraction, and a
  deterministic sample of at most ``SAMPLE_SIZE`` values;
- categorical (and boolean) features: category frequencies, null fraction;
- optionally the distribution of the champion's predictions on its own test split.

Tests, per feature:

- numeric: two-sample Kolmogorov–Smirnov (``scipy.stats.ks_2samp``) of the batch against the
  stored *reference sample* (not a binned CDF, which would understate the statistic), and PSI
  over the reference quantile bins;
- categorical: chi-squared (``scipy.stats.chisquare``) of the batch's counts against the
  reference frequencies, with categories never seen before pooled into one cell, and PSI over
  the categories (unseen ones included).

Big samples make p-values tiny for trivial differences, so a feature counts as drifted when
``PSI > psi_threshold`` (default 0.2, the usual "significant shift"), or when the test is
significant (``p < alpha``, default 0.01) *and* the effect is material: KS statistic
``>= min_ks_statistic`` (0.1) or Cramér's V ``>= min_cramers_v`` (0.1). The dataset drifts
when the share of drifted features reaches ``max_drifted_share`` (0.3) or any feature listed
in ``critical_features`` drifts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from gated_training.config import DriftPolicy
from gated_training.data import is_numeric_feature, json_safe, label_key

PROFILE_FORMAT = 1
BINS = 10
SAMPLE_SIZE = 1000
MAX_CATEGORIES = 50
OTHER = "__other__"
UNSEEN = "__unseen__"
MISSING = "__missing__"
EPSILON = 1e-4  # PSI's floor for an empty bin, so log(0) never happens
TOP_SHIFTS = 3
LISTED_UNSEEN = 10  # unseen categories named in a top shift


@dataclass(frozen=True, kw_only=True)
class FeatureDrift:
    feature: str
    kind: str  # "numeric" or "categorical"
    test: str  # "ks", "chi2", or "missing" (the batch lacks the feature: nothing was measured)
    statistic: float | None
    p_value: float | None
    effect: float | None  # KS statistic or Cramér's V
    psi: float | None  # None when the feature is missing from the batch (never an infinity)
    drifted: bool
    top_shifts: list[dict[str, Any]]  # the bins or categories whose share moved most
    # Every bin or category: {"labels", "reference", "batch"} shares (and "edges" for numeric), for the report.
    distribution: dict[str, Any] = field(default_factory=dict)
    # Share of the batch outside the reference: beyond its [min, max] (numeric), or unseen categories.
    out_of_range_share: float = 0.0


@dataclass(frozen=True, kw_only=True)
class DriftReport:
    drifted: bool
    reasons: list[str]
    drifted_share: float
    max_psi: float  # over the features the batch has (a missing feature has no PSI: missing_features)
    features: list[FeatureDrift]
    thresholds: dict[str, Any] = field(default_factory=dict)
    rows_reference: int = 0
    rows_batch: int = 0
    missing_features: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    expected = np.clip(np.asarray(expected, dtype=float), EPSILON, None)
    actual = np.clip(np.asarray(actual, dtype=float), EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _category_key(value: Any) -> str:
    return MISSING if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def profile_frame(frame: pd.DataFrame, target: str, predictions: Any = None, seed: int = 0) -> dict[str, Any]:
    """The reference profile of ``frame``'s features (the target is left out)."""
    features: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    for column in frame.columns:
        if column == target:
            continue
        series = frame[column]
        null_fraction = float(series.isna().mean()) if len(series) else 0.0
        if is_numeric_feature(series):
            values = series.dropna().to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if len(values) == 0:
                continue
            edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)))
            counts = (
                np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]
                if len(edges) > 1
                else np.array([len(values)])
            )
            sample = rng.choice(values, size=min(SAMPLE_SIZE, len(values)), replace=False)
            features[str(column)] = {
                "kind": "numeric",
                "edges": edges.tolist(),
                "counts": counts.tolist(),
                "mean": float(values.mean()),
                "std": float(values.std()),
                "null_fraction": null_fraction,
                "sample": np.sort(sample).tolist(),
                "rows": int(len(values)),
            }
        else:
            counts = series.map(_category_key).value_counts()
            kept = counts.iloc[:MAX_CATEGORIES]
            frequencies = {str(k): int(v) for k, v in kept.items()}
            if len(counts) > MAX_CATEGORIES:
                frequencies[OTHER] = int(counts.iloc[MAX_CATEGORIES:].sum())
            features[str(column)] = {
                "kind": "categorical",
                "counts": frequencies,
                "null_fraction": null_fraction,
                "rows": int(len(series)),
            }
    profile: dict[str, Any] = {"format": PROFILE_FORMAT, "rows": int(len(frame)), "features": features}
    if target in frame.columns:
        from gated_training.drift.segments import label_profile

        profile["labels"] = label_profile(frame, target)  # overall and per-segment label counts (label shift)
    if predictions is not None:
        profile["predictions"] = prediction_counts(predictions)
    return profile


def numeric_tally(reference: dict[str, Any], series: pd.Series) -> dict[str, Any]:
    """What the numeric test needs of a batch column, as counts that add up across chunks (a Spark partition
    each): finite values, the histogram over the reference's bins (values beyond clipped into the outer ones)
    and inside them, the counts beyond each end, and below / at-or-below each distinct reference sample value."""
    values = pd.to_numeric(series, errors="coerce").dropna().to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    edges = np.asarray(reference["edges"], dtype=float)
    points = np.unique(np.asarray(reference["sample"], dtype=float))
    if len(edges) > 1:
        hist = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]
        inside = (values >= edges[0]) & (values <= edges[-1])
        in_range = np.histogram(values[inside], bins=edges)[0]
    else:
        hist, in_range = np.array([len(values)]), np.array([len(values)])
    # Values per interval between the sample points, cumulated: below[j] = #(v < p_j), at_or_below[j] = #(v <= p_j).
    below = np.cumsum(np.bincount(np.searchsorted(points, values, side="right"), minlength=len(points) + 1))[:-1]
    at_or_below = np.cumsum(np.bincount(np.searchsorted(points, values, side="left"), minlength=len(points) + 1))[:-1]
    return {
        "n": int(len(values)),
        "hist": hist.tolist(),
        "in_range": in_range.tolist(),
        "below_range": int(np.sum(values < edges[0])) if len(edges) else 0,
        "above_range": int(np.sum(values > edges[-1])) if len(edges) else 0,
        "below": below.tolist(),
        "at_or_below": at_or_below.tolist(),
    }


def categorical_tally(reference: dict[str, Any], series: pd.Series) -> dict[str, Any]:
    """The categorical test's counts of a batch column (additive): per reference category, the unseen ones
    together, and the first unseen levels by name."""
    known = reference["counts"]
    batch = series.map(_category_key).value_counts()
    unseen_levels = sorted(str(c) for c in batch.index if c not in known)
    return {
        "counts": {str(c): int(batch.get(c, 0)) for c in known},
        "unseen": int(sum(int(count) for category, count in batch.items() if category not in known)),
        "unseen_levels": unseen_levels[:LISTED_UNSEEN],
    }


def feature_tallies(profile: dict[str, Any], frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Every profiled feature's tally over ``frame`` (a whole batch, or one chunk of it)."""
    return {
        name: (numeric_tally if reference["kind"] == "numeric" else categorical_tally)(reference, frame[name])
        for name, reference in profile["features"].items()
        if name in frame.columns
    }


def merge_tallies(first: dict[str, dict[str, Any]], second: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Two chunks' tallies as one: counts add up, the listed unseen levels are the first of both."""
    merged = dict(first)
    for name, tally in second.items():
        if name not in merged:
            merged[name] = tally
        elif "counts" in tally:
            mine = merged[name]
            merged[name] = {
                "counts": {c: mine["counts"].get(c, 0) + n for c, n in tally["counts"].items()},
                "unseen": mine["unseen"] + tally["unseen"],
                "unseen_levels": sorted(set(mine["unseen_levels"]) | set(tally["unseen_levels"]))[:LISTED_UNSEEN],
            }
        else:
            mine = merged[name]
            merged[name] = {
                key: (mine[key] + value if isinstance(value, int) else (np.add(mine[key], value)).tolist())
                for key, value in tally.items()
            }
    return merged


def _numeric_drift(
    name: str, reference: dict[str, Any], tally: dict[str, Any], thresholds: DriftPolicy
) -> FeatureDrift:
    from gated_training.stats import ks_2samp_from_counts

    n = int(tally["n"])
    edges = np.asarray(reference["edges"])
    expected = np.asarray(reference["counts"], dtype=float) / max(sum(reference["counts"]), 1)
    if n == 0:  # every value missing or not a number: nothing to compare, so it drifted
        return FeatureDrift(
            feature=name,
            kind="numeric",
            test="ks",
            statistic=None,
            p_value=None,
            effect=None,
            psi=None,
            drifted=True,
            top_shifts=[{"bin": "all", "reference_share": 1.0, "batch_share": 0.0}],
            out_of_range_share=1.0,
        )
    # Values beyond the reference range fall into the outermost bins.
    actual = np.asarray(tally["hist"], dtype=np.int64) / n if len(edges) > 1 else np.array([1.0])
    statistic, p_value = ks_2samp_from_counts(np.asarray(reference["sample"]), tally["below"], tally["at_or_below"], n)
    drift_psi = psi(expected, actual)
    effect = statistic
    drifted = drift_psi > thresholds.drift_psi_threshold or (
        p_value < thresholds.drift_alpha and effect >= thresholds.drift_min_ks_statistic
    )
    labels = [f"[{edges[i]:.4g}, {edges[i + 1]:.4g}]" for i in range(len(edges) - 1)] or ["all"]
    order = np.argsort(-np.abs(actual - expected))[:TOP_SHIFTS]
    shifts = [{"bin": labels[i], "reference_share": float(expected[i]), "batch_share": float(actual[i])} for i in order]
    distribution = {"labels": labels, "edges": edges.tolist(), "reference": expected.tolist(), "batch": actual.tolist()}
    if len(edges) > 1:
        # For the report: the batch inside the range on its own, and the mass beyond each end, so a
        # doubled amount shows as mass outside the range instead of a taller outermost bin.
        distribution["batch_in_range"] = (np.asarray(tally["in_range"], dtype=np.int64) / n).tolist()
        distribution["below"] = tally["below_range"] / n
        distribution["above"] = tally["above_range"] / n
    outside = (tally["below_range"] + tally["above_range"]) / n
    return FeatureDrift(
        feature=name,
        kind="numeric",
        test="ks",
        statistic=effect,
        p_value=p_value,
        effect=effect,
        psi=drift_psi,
        drifted=bool(drifted),
        top_shifts=shifts,
        distribution=distribution,
        out_of_range_share=outside,
    )


def _categorical_drift(
    name: str, reference: dict[str, Any], tally: dict[str, Any], thresholds: DriftPolicy
) -> FeatureDrift:
    from scipy import stats

    reference_counts: dict[str, int] = reference["counts"]
    known = list(reference_counts)
    unseen = int(tally["unseen"])
    observed = np.array([tally["counts"].get(category, 0) for category in known] + [unseen], dtype=float)
    reference_total = max(sum(reference_counts.values()), 1)
    expected_share = np.array([reference_counts[c] / reference_total for c in known] + [0.0])
    total = observed.sum()
    actual_share = observed / total if total else observed
    drift_psi = psi(expected_share, actual_share)
    # chi-squared needs expected counts > 0: the unseen cell gets the PSI floor's share.
    smoothed = np.clip(expected_share, EPSILON, None)
    smoothed = smoothed / smoothed.sum() * total
    if total and len(observed) > 1:
        result = stats.chisquare(observed, smoothed)
        statistic, p_value = float(result.statistic), float(result.pvalue)
        cramers_v = math.sqrt(statistic / (total * (len(observed) - 1)))
    else:
        statistic, p_value, cramers_v = 0.0, 1.0, 0.0
    drifted = drift_psi > thresholds.drift_psi_threshold or (
        p_value < thresholds.drift_alpha and cramers_v >= thresholds.drift_min_cramers_v
    )
    labels = known + [UNSEEN]
    order = np.argsort(-np.abs(actual_share - expected_share))[:TOP_SHIFTS]
    shifts = [
        {"category": labels[i], "reference_share": float(expected_share[i]), "batch_share": float(actual_share[i])}
        for i in order
    ]
    if unseen:
        shifts.append(
            {"category": UNSEEN, "unseen_levels": tally["unseen_levels"], "batch_share": float(unseen / total)}
        )
    distribution = {"labels": labels, "reference": expected_share.tolist(), "batch": actual_share.tolist()}
    return FeatureDrift(
        feature=name,
        kind="categorical",
        test="chi2",
        statistic=statistic,
        p_value=p_value,
        effect=cramers_v,
        psi=drift_psi,
        drifted=bool(drifted),
        top_shifts=shifts,
        distribution=distribution,
        out_of_range_share=float(unseen / total) if total else 0.0,
    )


def severity(result: FeatureDrift, thresholds: DriftPolicy) -> list[str]:
    """Why one feature alone drifts the batch: its PSI or its out-of-reference share is severe."""
    if result.test == "missing":
        return ["missing from the batch"]
    if result.psi is None:
        return ["no value in the batch is a number"]
    severe = []
    if thresholds.drift_severe_psi and result.psi >= thresholds.drift_severe_psi:
        severe.append(f"PSI {result.psi:.3g} >= drift_severe_psi {thresholds.drift_severe_psi:g}")
    if thresholds.drift_severe_out_of_range and result.out_of_range_share >= thresholds.drift_severe_out_of_range:
        severe.append(
            f"{result.out_of_range_share:.1%} of values outside the reference "
            f"{'range' if result.kind == 'numeric' else 'categories'} >= drift_severe_out_of_range "
            f"{thresholds.drift_severe_out_of_range:.1%}"
        )
    return severe


def compare(profile: dict[str, Any], frame: pd.DataFrame, thresholds: DriftPolicy = DriftPolicy()) -> DriftReport:
    """Every profiled feature of ``frame`` against the profile (:func:`compare_tallies` on the frame's tallies)."""
    return compare_tallies(profile, feature_tallies(profile, frame), len(frame), thresholds)


def compare_tallies(
    profile: dict[str, Any], tallies: dict[str, dict[str, Any]], rows: int, thresholds: DriftPolicy = DriftPolicy()
) -> DriftReport:
    """Every profiled feature against the profile, from the batch's tallies (a feature without one is missing
    from the batch). The batch drifts when the share of drifted features reaches ``max_drifted_share``, when a
    critical feature drifts, or when any one feature drifts severely (a missing feature always does)."""
    results: list[FeatureDrift] = []
    reasons: list[str] = []
    for name, reference in profile["features"].items():
        if name not in tallies:
            result = FeatureDrift(
                feature=name,
                kind=reference["kind"],
                test="missing",
                statistic=None,
                p_value=None,
                effect=None,
                psi=None,
                drifted=True,
                top_shifts=[],
                out_of_range_share=1.0,
            )
        elif reference["kind"] == "numeric":
            result = _numeric_drift(name, reference, tallies[name], thresholds)
        else:
            result = _categorical_drift(name, reference, tallies[name], thresholds)
        severe = severity(result, thresholds)
        if severe:
            reasons.append(f"severe drift on feature {name}: {'; '.join(severe)}")
            result = replace(result, drifted=True)
        elif result.drifted and name in thresholds.critical_features:
            reasons.append(
                f"critical feature {name} drifted (PSI {result.psi:.3f}, "
                f"{result.test} p={result.p_value:.2g}, effect {result.effect:.3f})"
            )
        results.append(result)
    drifted = [r for r in results if r.drifted]
    share = len(drifted) / len(results) if results else 0.0
    max_psi = max((r.psi for r in results if r.psi is not None), default=0.0)
    if results and share >= thresholds.drift_max_drifted_share:
        reasons.insert(
            0,
            f"{len(drifted)} of {len(results)} features drifted ({share:.0%} >= "
            f"max_drifted_share {thresholds.drift_max_drifted_share:.0%}): "
            f"{', '.join(r.feature for r in drifted)}",
        )
    return DriftReport(
        drifted=bool(reasons),
        reasons=reasons,
        drifted_share=share,
        max_psi=max_psi,
        features=results,
        thresholds=asdict(thresholds),
        rows_reference=int(profile.get("rows", 0)),
        rows_batch=int(rows),
        missing_features=[r.feature for r in results if r.test == "missing"],
    )


def prediction_counts(predictions: Any) -> dict[str, int]:
    """How often each label was predicted, labels as strings (JSON keys), sorted."""
    counts = pd.Series(np.asarray(predictions)).map(label_key).value_counts().sort_index()
    return {str(label): int(count) for label, count in counts.items()}


def prediction_psi(reference_counts: dict[str, int], predictions: Any) -> float:
    """PSI between a stored prediction distribution and new predictions (unseen labels included)."""
    batch = prediction_counts(predictions)
    labels = sorted(set(reference_counts) | set(batch))
    reference_total = max(sum(reference_counts.values()), 1)
    expected = np.array([reference_counts.get(label, 0) / reference_total for label in labels])
    actual = np.array([batch.get(label, 0) / max(len(predictions), 1) for label in labels])
    return psi(expected, actual)
