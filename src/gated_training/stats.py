"""The statistics the model gate decides on: intervals for one model, paired comparisons of two
models on the same rows, and multiple-testing corrections. Pure NumPy/SciPy, no pandas.

Everything the gate reports as evidence comes from here:

- **Confusion-count metrics** (accuracy, balanced accuracy, macro F1, per-class recall) are functions
  of how many rows fall in each (true label, prediction) cell, or for two models on the same rows
  each (true label, prediction A, prediction B) cell. Resampling rows with replacement is exactly a
  multinomial draw over those cells, so the **paired bootstrap** here draws cell counts
  (``numpy.random.Generator.multinomial``): its cost depends on the number of occupied cells, never
  on the number of rows, and it is seeded, so the same rows give the same interval on every run.
- **Exact McNemar** for accuracy: of the rows the two models disagree on, the candidate's wins ``c``
  against its losses ``b`` under H0: P(win) = 1/2 (a two-sided binomial test).
- **DeLong** for ROC AUC with two classes (one model's standard error, or two models' correlated
  difference on the same rows), with midranks for ties (Sun & Xu's fast algorithm).
- **Brier score** differences are per-row means: a normal interval on the paired differences.
- **Holm's step-down** correction for many slices or segments at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

SEED = 20240917  # every bootstrap here starts from this seed: the same rows give the same interval
DEFAULT_RESAMPLES = 2000
MAX_CELL_DRAWS = 40_000_000  # resamples x occupied cells: bounds memory for many classes
POWER_Z = 0.8416212335729143  # z for 80 % power, for the smallest detectable difference
CONFUSION_METRICS = ("accuracy", "balanced_accuracy", "f1")


def z_value(alpha: float) -> float:
    """The two-sided normal quantile for ``alpha`` (1.96 for 0.05)."""
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha / 2))


def wilson_interval(successes: int, n: int, alpha: float) -> tuple[float, float]:
    """Wilson's score interval for a proportion (sound at 0 and n successes, unlike the normal one)."""
    if n <= 0:
        return 0.0, 1.0
    z = z_value(alpha)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(losses: int, wins: int) -> float:
    """Two-sided exact McNemar p-value: ``wins`` (candidate right, champion wrong) against ``losses``
    (champion right, candidate wrong); 1.0 when the models never disagree."""
    from scipy.stats import binomtest

    discordant = losses + wins
    if discordant == 0:
        return 1.0
    return float(binomtest(min(losses, wins), discordant, 0.5).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error at the same alpha), in input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


# -- confusion-count metrics over many resamples at once --------------------------------------------


def _metric_from_counts(metric: str, true_ind: np.ndarray, pred_ind: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``metric`` for each row of ``counts`` (resamples x cells).

    ``true_ind``/``pred_ind``: (cells x classes) one-hot of each cell's true label and prediction.
    """
    hits = true_ind * pred_ind  # cell x class: the cell is a correct prediction of that class
    n = counts.sum(axis=1)
    tp = counts @ hits
    support = counts @ true_ind
    predicted = counts @ pred_ind
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy":
            return np.asarray(tp.sum(axis=1) / n, dtype=np.float64)
        if metric == "balanced_accuracy":
            recall = np.where(support > 0, tp / np.where(support > 0, support, 1), np.nan)
            return np.asarray(np.nanmean(recall, axis=1), dtype=np.float64)
        if metric == "f1":
            denominator = support + predicted  # 2tp + fp + fn
            f1 = np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0)
            return np.asarray(f1.mean(axis=1), dtype=np.float64)
    raise ValueError(f"no confusion-count form for {metric}")


def class_recalls(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(recall, support) per class code ``0..classes-1``; recall is NaN for a class with no rows."""
    support = np.bincount(y_true, minlength=classes)
    hits = np.bincount(y_true[y_true == y_pred], minlength=classes)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(support > 0, hits / np.maximum(support, 1), np.nan), support


def confusion_metric(metric: str, y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> float:
    """One confusion-count metric on integer codes (as :func:`confusion_interval` computes it)."""
    eye = np.eye(classes)
    counts = np.ones((1, len(y_true)))
    return float(_metric_from_counts(metric, eye[y_true], eye[y_pred], counts)[0])


def _cells(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The occupied cells of several code columns: (unique rows of codes, how many rows in each)."""
    stacked = np.column_stack(codes)
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return unique, counts


def _draws(counts: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    n = int(counts.sum())
    resamples = max(200, min(resamples, MAX_CELL_DRAWS // max(len(counts), 1)))
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, counts / n, size=resamples).astype(np.float64)


@dataclass(frozen=True, kw_only=True)
class Interval:
    """A statistic, its interval at ``level``, and how it was obtained."""

    estimate: float
    low: float
    high: float
    level: float
    method: str
    rows: int
    standard_error: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "method": self.method,
            "rows": self.rows,
            "standard_error": self.standard_error,
        }


def confusion_interval(
    metric: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: int,
    alpha: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """A confusion-count metric of one model with its percentile bootstrap interval (Wilson's for accuracy)."""
    n = len(y_true)
    estimate = confusion_metric(metric, y_true, y_pred, classes)
    if metric == "accuracy":
        low, high = wilson_interval(int(np.sum(y_true == y_pred)), n, alpha)
        se = math.sqrt(max(estimate * (1 - estimate), 0.0) / n) if n else None
        return Interval(
            estimate=estimate,
            low=low,
            high=high,
            level=1 - alpha,
            method="Wilson score interval",
            rows=n,
            standard_error=se,
        )
    cells, counts = _cells(y_true, y_pred)
    eye = np.eye(classes)
    draws = _metric_from_counts(metric, eye[cells[:, 0]], eye[cells[:, 1]], _draws(counts, resamples, seed))
    draws = draws[np.isfinite(draws)]
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2]) if len(draws) else (estimate, estimate)
    return Interval(
        estimate=estimate,
        low=float(low),
        high=float(high),
        level=1 - alpha,
        method=f"percentile bootstrap, {len(draws)} seeded resamples",
        rows=n,
        standard_error=float(np.std(draws)) if len(draws) else None,
    )


@dataclass(frozen=True, kw_only=True)
class PairedComparison:
    """Candidate minus champion on the same rows: the evidence the comparison rule reads."""

    metric: str
    rows: int
    candidate: float
    champion: float
    difference: float
    low: float  # the difference's interval at ``level``
    high: float
    level: float
    p_value: float  # two-sided, H0: no difference
    test: str  # the test behind p_value
    interval_method: str
    wins: int | None = None  # rows the candidate gets right and the champion wrong (accuracy flips)
    losses: int | None = None  # the reverse
    standard_error: float | None = None
    minimum_detectable: float | None = None  # the smallest difference these rows detect at 80 % power

    @property
    def significantly_worse(self) -> bool:
        return self.high < 0

    @property
    def improved(self) -> bool:
        return self.low > 0

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no difference": twice the smaller share of resamples on either side of
    zero, counted as (k + 1) / (B + 1) so it is never 0 (with 2000 resamples the smallest is about 0.001)."""
    if not len(differences):
        return 1.0
    resamples = len(differences)
    below = (int(np.sum(differences <= 0)) + 1) / (resamples + 1)
    above = (int(np.sum(differences >= 0)) + 1) / (resamples + 1)
    return min(1.0, 2 * min(below, above))


def _minimum_detectable(standard_error: float | None, alpha: float) -> float | None:
    if standard_error is None or not math.isfinite(standard_error):
        return None
    return (z_value(alpha) + POWER_Z) * standard_error


def paired_confusion(
    metric: str,
    y_true: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    classes: int,
    alpha: float,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = SEED,
) -> PairedComparison:
    """Candidate minus champion for a confusion-count metric on the same rows: the paired bootstrap
    interval, and for accuracy the exact McNemar test on the rows where exactly one model is right."""
    n = len(y_true)
    eye = np.eye(classes)
    a = confusion_metric(metric, y_true, candidate, classes)
    b = confusion_metric(metric, y_true, champion, classes)
    cells, counts = _cells(y_true, candidate, champion)
    draws = _draws(counts, resamples, seed)
    true_ind = eye[cells[:, 0]]
    diffs = _metric_from_counts(metric, true_ind, eye[cells[:, 1]], draws) - _metric_from_counts(
        metric, true_ind, eye[cells[:, 2]], draws
    )
    diffs = diffs[np.isfinite(diffs)]
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2]) if len(diffs) else (a - b, a - b)
    right_a, right_b = candidate == y_true, champion == y_true
    wins, losses = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    se = float(np.std(diffs)) if len(diffs) else None
    if metric == "accuracy":
        p_value, test = mcnemar_exact(losses, wins), "exact McNemar (binomial on the discordant rows)"
        # The analytic standard error of a paired accuracy difference, floored at one discordant row.
        se = math.sqrt(max(wins + losses, 1) / n - ((wins - losses) / n) ** 2) / math.sqrt(n)
    else:
        p_value, test = bootstrap_p_value(diffs), "paired bootstrap (two-sided)"
    return PairedComparison(
        metric=metric,
        rows=n,
        candidate=a,
        champion=b,
        difference=a - b,
        low=float(low),
        high=float(high),
        level=1 - alpha,
        p_value=p_value,
        test=test,
        interval_method=f"paired percentile bootstrap, {len(diffs)} seeded resamples of the rows",
        wins=wins,
        losses=losses,
        standard_error=se,
        minimum_detectable=_minimum_detectable(se, alpha),
    )


# -- ROC AUC: DeLong ---------------------------------------------------------------------------------


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their mean rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(values)]))
    mean_ranks = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(mean_ranks, ends - starts)
    return ranks


def _delong_components(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For k score columns: (AUCs, V10 positives x k, V01 negatives x k), Sun & Xu (2014)."""
    pos, neg = scores[positive], scores[~positive]
    m, n = len(pos), len(neg)
    aucs, v10, v01 = [], [], []
    for column in range(scores.shape[1]):
        tx, ty = _midranks(pos[:, column]), _midranks(neg[:, column])
        tz = _midranks(np.concatenate([pos[:, column], neg[:, column]]))
        aucs.append((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((tz[:m] - tx) / n)
        v01.append(1.0 - (tz[m:] - ty) / m)
    return np.asarray(aucs), np.column_stack(v10), np.column_stack(v01)


def delong_interval(positive: np.ndarray, score: np.ndarray, alpha: float) -> Interval:
    """One model's ROC AUC with DeLong's standard error and a normal interval clipped to [0, 1]."""
    positive = np.asarray(positive, dtype=bool)
    aucs, v10, v01 = _delong_components(positive, np.asarray(score, dtype=float)[:, None])
    m, n = v10.shape[0], v01.shape[0]
    variance = float(np.var(v10[:, 0], ddof=1) / m + np.var(v01[:, 0], ddof=1) / n) if m > 1 and n > 1 else 0.0
    se = math.sqrt(max(variance, 0.0))
    z = z_value(alpha)
    return Interval(
        estimate=float(aucs[0]),
        low=max(0.0, aucs[0] - z * se),
        high=min(1.0, aucs[0] + z * se),
        level=1 - alpha,
        method="DeLong standard error, normal interval",
        rows=m + n,
        standard_error=se,
    )


def paired_delong(positive: np.ndarray, candidate: np.ndarray, champion: np.ndarray, alpha: float) -> PairedComparison:
    """Candidate minus champion ROC AUC on the same rows (two classes): DeLong's test of correlated AUCs."""
    from scipy.stats import norm

    positive = np.asarray(positive, dtype=bool)
    aucs, v10, v01 = _delong_components(positive, np.column_stack([candidate, champion]).astype(float))
    m, n = v10.shape[0], v01.shape[0]
    covariance = np.cov(v10, rowvar=False) / m + np.cov(v01, rowvar=False) / n
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    se = math.sqrt(max(variance, 0.0))
    difference = float(aucs[0] - aucs[1])
    z = z_value(alpha)
    p_value = float(2 * norm.sf(abs(difference) / se)) if se > 0 else (1.0 if difference == 0 else 0.0)
    return PairedComparison(
        metric="roc_auc",
        rows=m + n,
        candidate=float(aucs[0]),
        champion=float(aucs[1]),
        difference=difference,
        low=difference - z * se,
        high=difference + z * se,
        level=1 - alpha,
        p_value=p_value,
        test="DeLong's test for correlated ROC AUCs",
        interval_method="DeLong standard error, normal interval",
        standard_error=se,
        minimum_detectable=_minimum_detectable(se, alpha),
    )


def paired_bootstrap_rows(
    metric: str,
    statistic: Any,
    candidate_args: tuple,
    champion_args: tuple,
    rows: int,
    alpha: float,
    resamples: int = 200,
    seed: int = SEED,
) -> PairedComparison:
    """A paired bootstrap over row indices for statistics without a cell form (multiclass ROC AUC):
    ``statistic(*args, index)`` is computed for both models on the same resampled rows."""
    rng = np.random.default_rng(seed)
    every = np.arange(rows)
    a, b = statistic(*candidate_args, every), statistic(*champion_args, every)
    diffs = []
    for _ in range(resamples):
        index = rng.integers(0, rows, rows)
        value = statistic(*candidate_args, index) - statistic(*champion_args, index)
        if value is not None and math.isfinite(value):
            diffs.append(value)
    draws = np.asarray(diffs)
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2]) if len(draws) else (a - b, a - b)
    se = float(np.std(draws)) if len(draws) else None
    return PairedComparison(
        metric=metric,
        rows=rows,
        candidate=a,
        champion=b,
        difference=a - b,
        low=float(low),
        high=float(high),
        level=1 - alpha,
        p_value=bootstrap_p_value(draws),
        test="paired bootstrap (two-sided)",
        interval_method=f"paired percentile bootstrap, {len(draws)} seeded resamples of the rows",
        standard_error=se,
        minimum_detectable=_minimum_detectable(se, alpha),
    )


def bootstrap_interval_rows(
    statistic: Any, args: tuple, rows: int, alpha: float, resamples: int = 200, seed: int = SEED
) -> Interval | None:
    """One model's statistic without a cell form (multiclass ROC AUC) with a percentile bootstrap
    interval over the rows: ``statistic(*args, index)``."""
    rng = np.random.default_rng(seed)
    estimate = statistic(*args, np.arange(rows))
    if estimate is None:
        return None
    draws = []
    for _ in range(resamples):
        value = statistic(*args, rng.integers(0, rows, rows))
        if value is not None and math.isfinite(value):
            draws.append(value)
    values = np.asarray(draws)
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2]) if len(values) else (estimate, estimate)
    return Interval(
        estimate=float(estimate),
        low=float(low),
        high=float(high),
        level=1 - alpha,
        method=f"percentile bootstrap, {len(values)} seeded resamples of the rows",
        rows=rows,
        standard_error=float(np.std(values)) if len(values) else None,
    )


# -- probabilities -------------------------------------------------------------------------------------


def brier_per_row(y_codes: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Each row's squared error of its class probabilities against the one-hot label (multiclass Brier)."""
    onehot = np.zeros_like(proba, dtype=np.float64)
    onehot[np.arange(len(y_codes)), y_codes] = 1.0
    return np.asarray(np.sum((np.asarray(proba, dtype=np.float64) - onehot) ** 2, axis=1), dtype=np.float64)


def paired_mean(metric: str, candidate: np.ndarray, champion: np.ndarray, alpha: float) -> PairedComparison:
    """Candidate minus champion for a per-row mean (the Brier score): a normal interval on the paired differences."""
    from scipy.stats import norm

    differences = np.asarray(candidate, dtype=float) - np.asarray(champion, dtype=float)
    n = len(differences)
    mean = float(differences.mean()) if n else 0.0
    se = float(differences.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    z = z_value(alpha)
    p_value = float(2 * norm.sf(abs(mean) / se)) if se > 0 else (1.0 if mean == 0 else 0.0)
    return PairedComparison(
        metric=metric,
        rows=n,
        candidate=float(np.mean(candidate)) if n else 0.0,
        champion=float(np.mean(champion)) if n else 0.0,
        difference=mean,
        low=mean - z * se,
        high=mean + z * se,
        level=1 - alpha,
        p_value=p_value,
        test="paired z-test on per-row differences",
        interval_method="normal interval on the paired per-row differences",
        standard_error=se,
        minimum_detectable=_minimum_detectable(se, alpha),
    )


def expected_calibration_error(y_codes: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """Top-label expected calibration error: the row-weighted gap between confidence and accuracy over
    ``bins`` equal-width confidence bins."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_codes
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for index in range(bins):
        member = which == index
        if member.any():
            total += member.sum() * abs(float(confidence[member].mean()) - float(correct[member].mean()))
    return total / max(len(y_codes), 1)


def newcombe_difference(
    successes_a: int, n_a: int, successes_b: int, n_b: int, alpha: float
) -> tuple[float, float, float]:
    """p_a − p_b for two independent proportions, with Newcombe's hybrid score interval (method 10: from the
    two Wilson intervals; sound near 0 and 1 and for small samples, unlike the Wald interval)."""
    p_a = successes_a / n_a if n_a else 0.0
    p_b = successes_b / n_b if n_b else 0.0
    low_a, high_a = wilson_interval(successes_a, n_a, alpha)
    low_b, high_b = wilson_interval(successes_b, n_b, alpha)
    difference = p_a - p_b
    low = difference - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    high = difference + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return difference, max(-1.0, low), min(1.0, high)


KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp(method="auto") is exact up to this many values per sample, asymptotic above


def ks_2samp_from_counts(
    reference: np.ndarray, below: np.ndarray, at_or_below: np.ndarray, n: int
) -> tuple[float, float]:
    """``scipy.stats.ks_2samp(reference, batch)`` (two-sided, ``method="auto"``) from counts of the batch alone:
    ``below[j]`` and ``at_or_below[j]`` batch values are ``<`` and ``<=`` the j-th distinct reference value, and
    ``n`` is the batch's size. Between two reference values the reference's ECDF is flat, so the largest gap
    is at a reference value or just before one: these counts give every gap scipy measures, in the same
    floating-point operations, hence the same statistic and p-value. Up to ``KS_EXACT_MAX_N`` batch values
    scipy's exact test runs on a batch with these counts; above, Smirnov's asymptotic distribution, as scipy.
    Returns (statistic, p-value)."""
    from scipy import stats

    reference = np.sort(np.asarray(reference, dtype=float))
    points = np.unique(reference)
    below = np.asarray(below, dtype=np.int64)
    at_or_below = np.asarray(at_or_below, dtype=np.int64)
    if n <= KS_EXACT_MAX_N:
        batch = _batch_with_counts(points, below, at_or_below, n)
        result = stats.ks_2samp(reference, batch)
        return float(result.statistic), float(result.pvalue)
    n1 = len(reference)
    reference_cdf = np.searchsorted(reference, points, side="right") / n1
    before = np.concatenate([[0.0], reference_cdf[:-1]])
    differences = np.concatenate([reference_cdf - at_or_below / n, before - below / n, [0.0]])
    largest, smallest = float(np.max(differences)), float(np.clip(-np.min(differences), 0, 1))
    statistic = smallest if smallest > largest else largest
    m, k = sorted([float(n1), float(n)], reverse=True)
    p_value = float(np.clip(stats.kstwo.sf(statistic, np.round(m * k / (m + k))), 0, 1))
    return statistic, p_value


def _batch_with_counts(points: np.ndarray, below: np.ndarray, at_or_below: np.ndarray, n: int) -> np.ndarray:
    """A batch of ``n`` values with the given counts around ``points``: the values equal to a point at it, the
    ones between two points just above the lower one (the ECDF of the reference only changes at its points)."""
    parts = [np.full(int(below[0]), np.nextafter(points[0], -np.inf))]
    for j, point in enumerate(points):
        parts.append(np.full(int(at_or_below[j] - below[j]), point))
        upper = below[j + 1] if j + 1 < len(points) else n
        parts.append(np.full(int(upper - at_or_below[j]), np.nextafter(point, np.inf)))
    return np.concatenate(parts)
