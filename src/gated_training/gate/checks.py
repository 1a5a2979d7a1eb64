"""The model gate's checks: each a function of one :class:`GateContext` returning its checks.

Adding a check is one function and one entry in :data:`CHECKS`; the gate decision, the Markdown
report, the run summary and the MLflow record list every check without further changes. A check
that decides states its evidence: how many rows, what interval, what rule (``Check.evidence``).

The decision rules (docs/gate.md has a worked example):

- **absolute thresholds** (``threshold_rule``): ``point``: the estimate must reach the threshold;
  ``lower_bound``: the lower end of its interval must (Wilson for accuracy and per-class recall,
  the seeded paired bootstrap for balanced accuracy and F1, DeLong for two-class ROC AUC);
- **the prior predictor**: the candidate's balanced accuracy must be *shown* above that of always
  answering the training split's most common class: the interval of the difference lies above 0;
- **the champion** (``comparison_rule``) on the rows it never trained on:
  ``no_significant_regression`` (default): blocks a candidate the rows show worse than the champion
  (the named test's p < ``gate_alpha`` with a negative difference), whatever the size; a point
  estimate below ``-max_regression`` that the rows cannot tell from noise deploys with a warning (so
  an honest retrain of equal quality is never blocked by two rows of noise); ``non_inferiority``:
  the interval's lower bound is at least ``-max_regression`` (the rows must show it within the margin).
  The report calls a candidate *improved* only when the interval's lower bound is above 0;
- **minimum evidence**: fewer than ``min_test_rows`` rows, or ``min_test_rows_per_class`` of a
  class, decide nothing: the run blocks and says how many rows a decision needs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from gated_training.decisions import ModelGate
from gated_training.gate.context import Answers, GateContext
from gated_training.stats import (
    CONFUSION_METRICS,
    Interval,
    PairedComparison,
    bootstrap_interval_rows,
    brier_per_row,
    class_recalls,
    confusion_interval,
    delong_interval,
    holm,
    paired_bootstrap_rows,
    paired_confusion,
    paired_delong,
    paired_mean,
    wilson_interval,
)

CRITICAL, WARNING = "critical", "warning"
PAIR_LEAK_MIN_GAIN = 0.1  # a pair leaks when its combination scores this much above what its columns add up to
MIN_FLIPS = 10  # fewer disagreements than this between the models say nothing about where they concentrate
FLIP_SHARE = 0.5  # a segment holding at least this share of the disagreements ...
FLIP_SEGMENT_ROWS = 0.25  # ... with at most this share of the rows, significantly: flips concentrate there
MAX_SLICE_LEVELS = 20


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    value: float | None
    threshold: float | None
    comparison: str  # ">=", "<=", ">" or "=="
    passed: bool
    detail: str = ""
    severity: str = CRITICAL  # a failed "warning" check is reported, never blocks
    evidence: dict[str, Any] | None = None  # rows, interval, test, rule: what the number stands on

    def line(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.4f}"
        threshold = "n/a" if self.threshold is None else f"{self.threshold:.4f}"
        verdict = "pass" if self.passed else ("FAIL" if self.severity == CRITICAL else "warning")
        return f"{self.name}: {value} {self.comparison} {threshold} → {verdict}" + (
            f" ({self.detail})" if self.detail else ""
        )

    @property
    def blocks(self) -> bool:
        return not self.passed and self.severity == CRITICAL

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


CheckFunction = Callable[[GateContext], Iterable[Check]]


def _pct(level: float) -> str:
    return f"{level:.0%}"


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def interval_evidence(interval: Interval, rule: str) -> dict[str, Any]:
    return {
        "rows": interval.rows,
        "estimate": interval.estimate,
        "interval": [interval.low, interval.high],
        "level": interval.level,
        "method": interval.method,
        "rule": rule,
    }


def paired_evidence(comparison: PairedComparison, rule: str, verdict: str) -> dict[str, Any]:
    return {
        "rows": comparison.rows,
        "estimate": comparison.difference,
        "interval": [comparison.low, comparison.high],
        "level": comparison.level,
        "method": comparison.interval_method,
        "test": comparison.test,
        "p_value": comparison.p_value,
        "rule": rule,
        "verdict": verdict,
        "candidate": comparison.candidate,
        "champion": comparison.champion,
        "wins": comparison.wins,
        "losses": comparison.losses,
        "minimum_detectable": comparison.minimum_detectable,
    }


# -- minimum evidence -----------------------------------------------------------------------------


def rows_needed(ctx: GateContext) -> str:
    t = ctx.thresholds
    test_size = float(ctx.metadata.get("settings", {}).get("split", {}).get("test_size") or 0.2)
    return (
        f"a decision needs at least {t.min_test_rows} test rows and {t.min_test_rows_per_class} of each class: "
        f"with test_size {test_size:g}, about {math.ceil(t.min_test_rows / test_size)} rows in the batch and "
        f"{math.ceil(t.min_test_rows_per_class / test_size)} of its rarest class"
    )


def class_counts_text(ctx: GateContext, codes: np.ndarray) -> str:
    counts = np.bincount(codes, minlength=ctx.classes)
    return ", ".join(f"{label}: {int(count)}" for label, count in zip(ctx.labels, counts))


def evidence_checks(ctx: GateContext) -> Iterable[Check]:
    t = ctx.thresholds
    n = len(ctx.y)
    trained = ctx.trained or list(range(ctx.classes))
    smallest = int(np.bincount(ctx.y, minlength=ctx.classes)[trained].min()) if n else 0
    shortfall = f"; {rows_needed(ctx)}"
    yield Check(
        name="min_test_rows",
        value=float(n),
        threshold=float(t.min_test_rows),
        comparison=">=",
        passed=n >= t.min_test_rows,
        detail=f"{n} test rows" + ("" if n >= t.min_test_rows else shortfall),
        evidence={"rows": n, "rule": "count"},
    )
    yield Check(
        name="min_test_rows_per_class",
        value=float(smallest),
        threshold=float(t.min_test_rows_per_class),
        comparison=">=",
        passed=smallest >= t.min_test_rows_per_class,
        detail=f"test rows per class: {class_counts_text(ctx, ctx.y)}"
        + ("" if smallest >= t.min_test_rows_per_class else shortfall),
        evidence={"rows": n, "rule": "count"},
    )


# -- absolute thresholds --------------------------------------------------------------------------


def metric_interval(ctx: GateContext, metric: str, y: np.ndarray, answers: Answers) -> Interval | None:
    alpha = ctx.thresholds.gate_alpha
    if metric in CONFUSION_METRICS:
        return confusion_interval(metric, y, answers.codes, ctx.classes, alpha)
    if metric == "roc_auc":
        if answers.proba is None or len(np.unique(y)) < 2:
            return None
        if ctx.binary:
            return delong_interval(y == 1, answers.proba[:, 1], alpha)
        return bootstrap_interval_rows(_macro_auc, (y, answers.proba), len(y), alpha)
    raise ValueError(metric)


def _macro_auc(y: np.ndarray, proba: np.ndarray, index: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    y_sample, p_sample = y[index], proba[index]
    present = np.unique(y_sample)
    if len(present) < 2:
        return None
    scores = [roc_auc_score(y_sample == k, p_sample[:, k]) for k in present]
    return float(np.mean(scores))


def _threshold_check(ctx: GateContext, name: str, metric: str, minimum: float, label: str) -> Check:
    rule = ctx.thresholds.threshold_rule
    interval = metric_interval(ctx, metric, ctx.y, ctx.candidate)
    if interval is None:
        return Check(
            name=name,
            value=None,
            threshold=minimum,
            comparison=">=",
            passed=False,
            detail=f"{label} is undefined on this test split",
        )
    judged = interval.estimate if rule == "point" else interval.low
    passed = judged >= minimum
    detail = (
        f"{label} {interval.estimate:.4f} on {interval.rows} test rows, {_pct(interval.level)} interval "
        f"[{interval.low:.4f}, {interval.high:.4f}] ({interval.method}); rule threshold_rule={rule}: the "
        + ("estimate" if rule == "point" else "interval's lower bound")
        + f" must reach {minimum:g}"
    )
    return Check(
        name=name,
        value=interval.estimate,
        threshold=minimum,
        comparison=">=",
        passed=passed,
        detail=detail,
        evidence=interval_evidence(interval, f"threshold_rule={rule}"),
    )


def absolute_checks(ctx: GateContext) -> Iterable[Check]:
    t = ctx.thresholds
    yield _threshold_check(ctx, "min_accuracy", "accuracy", t.min_accuracy, "accuracy")
    if t.min_balanced_accuracy > 0:
        yield _threshold_check(
            ctx, "min_balanced_accuracy", "balanced_accuracy", t.min_balanced_accuracy, "balanced accuracy"
        )
    if t.min_f1 > 0:
        yield _threshold_check(ctx, "min_f1", "f1", t.min_f1, "macro F1")
    if t.min_roc_auc > 0:
        yield _threshold_check(ctx, "min_roc_auc", "roc_auc", t.min_roc_auc, "ROC AUC")
    if t.min_class_recall > 0:
        yield class_recall_check(ctx)


def class_recall_check(ctx: GateContext) -> Check:
    t = ctx.thresholds
    recall, support = class_recalls(ctx.y, ctx.candidate.codes, ctx.classes)
    rows, failing, worst = [], [], None
    for code, label in enumerate(ctx.labels):
        if support[code] == 0:
            continue
        hits = int(round(recall[code] * support[code]))
        low, high = wilson_interval(hits, int(support[code]), t.gate_alpha)
        judged = recall[code] if t.threshold_rule == "point" else low
        rows.append(
            {"class": label, "recall": float(recall[code]), "rows": int(support[code]), "interval": [low, high]}
        )
        if worst is None or recall[code] < worst:
            worst = float(recall[code])
        if judged < t.min_class_recall:
            failing.append(f"{label}: {recall[code]:.4f} of {int(support[code])} rows [{low:.4f}, {high:.4f}]")
    detail = ("classes below the floor: " + "; ".join(failing) if failing else "every class reaches the floor") + (
        f" (Wilson {_pct(1 - t.gate_alpha)} intervals; rule threshold_rule={t.threshold_rule})"
    )
    return Check(
        name="min_class_recall",
        value=worst,
        threshold=t.min_class_recall,
        comparison=">=",
        passed=not failing,
        detail=detail,
        evidence={"rows": len(ctx.y), "rule": f"threshold_rule={t.threshold_rule}", "classes": rows},
    )


# -- the prior predictor ----------------------------------------------------------------------------


def baseline_check(ctx: GateContext) -> Iterable[Check]:
    if not ctx.thresholds.beat_prior_predictor:
        return
    comparison = paired_confusion(
        "balanced_accuracy", ctx.y, ctx.candidate.codes, ctx.baseline.codes, ctx.classes, ctx.thresholds.gate_alpha
    )
    majority = ctx.labels[int(ctx.baseline.codes[0])] if len(ctx.baseline.codes) else "—"
    passed = comparison.low > 0
    detail = (
        f"balanced accuracy {comparison.candidate:.4f} against {comparison.champion:.4f} for the prior predictor "
        f"(always {majority}, the training split's most common class) on the same {comparison.rows} rows: "
        f"{_signed(comparison.difference)}, {_pct(comparison.level)} interval [{_signed(comparison.low)}, "
        f"{_signed(comparison.high)}]; the interval must lie above 0 (shown better than guessing the majority)"
    )
    if not passed:
        detail += (
            ": the model is no better than answering the most common class; it learned nothing usable "
            "from these features"
        )
    yield Check(
        name="beats_prior_predictor",
        value=comparison.difference,
        threshold=0.0,
        comparison=">",
        passed=passed,
        detail=detail,
        evidence=paired_evidence(comparison, "interval above 0", "improved" if passed else "not shown better"),
    )


# -- fit and leakage --------------------------------------------------------------------------------


def overfit_check(ctx: GateContext) -> Iterable[Check]:
    t = ctx.thresholds
    gap = float(ctx.training["overfit_gap"])
    yield Check(
        name="max_overfit_gap",
        value=gap,
        threshold=t.max_overfit_gap,
        comparison="<=",
        passed=gap <= t.max_overfit_gap,
        detail="train accuracy − test accuracy",
    )


def leakage_checks(ctx: GateContext) -> Iterable[Check]:
    from gated_training.gate.leakage import leakage_summary

    t = ctx.thresholds
    scores: dict[str, float] = ctx.metadata.get("single_feature_scores") or {}
    if t.max_single_feature_score > 0 and scores:
        _, best_single = next(iter(scores.items()))
        suspects = [name for name, value in scores.items() if value > t.max_single_feature_score]
        detail = leakage_summary(scores, ctx.classes)
        if suspects:
            detail = (
                f"feature(s) {', '.join(suspects)} predict the label alone (balanced accuracy on the test split): "
                "a leaked label or a proxy of it; drop the column, or raise max_single_feature_score if it is "
                "legitimately this predictive"
            )
        yield Check(
            name="max_single_feature_score",
            value=best_single,
            threshold=t.max_single_feature_score,
            comparison="<=",
            passed=not suspects,
            detail=detail,
        )
    pairs: list[dict[str, Any]] = ctx.training.get("pair_feature_scores") or []
    if t.max_pair_feature_score > 0 and pairs:
        leaks = [p for p in pairs if p["score"] > t.max_pair_feature_score and p["gain"] >= PAIR_LEAK_MIN_GAIN]
        best = max(pairs, key=lambda p: p["score"])
        if leaks:
            detail = "; ".join(
                f"{' × '.join(p['features'])} score {p['score']:.4f} together, "
                f"{p.get('additive', p['best_single']):.4f} added up, {p['best_single']:.4f} alone at best"
                for p in leaks[:3]
            )
            detail = (
                f"the label is carried by a pair of columns ({detail}): a leaked label split across columns; "
                "drop one of them, or raise max_pair_feature_score if the pair is legitimately this predictive"
            )
        else:
            detail = (
                f"best pair {' × '.join(best['features'])}: balanced accuracy {best['score']:.4f} together, "
                f"{best.get('additive', best['best_single']):.4f} added up, {best['best_single']:.4f} for its "
                f"better column alone; {len(pairs)} pairs of the most important features scored on the test split"
            )
        yield Check(
            name="max_pair_feature_score",
            value=float(best["score"]),
            threshold=t.max_pair_feature_score,
            comparison="<=",
            passed=not leaks,
            detail=detail,
            evidence={
                "rows": int(ctx.training.get("pair_scored_rows") or 0),
                "rule": f"a pair above the threshold whose combination scores at least {PAIR_LEAK_MIN_GAIN} "
                "above its columns added up (naive Bayes) and alone",
                "pairs": pairs[:10],
            },
        )


# -- the champion -----------------------------------------------------------------------------------


def compare(
    ctx: GateContext, metric: str, y: np.ndarray, candidate: Answers, champion: Answers
) -> PairedComparison | None:
    """Candidate minus champion on the same rows for ``metric`` (None where it is undefined)."""
    alpha = ctx.thresholds.gate_alpha
    if metric in CONFUSION_METRICS:
        return paired_confusion(metric, y, candidate.codes, champion.codes, ctx.classes, alpha)
    if candidate.proba is None or champion.proba is None or len(np.unique(y)) < 2:
        return None
    if ctx.binary:
        return paired_delong(y == 1, candidate.proba[:, 1], champion.proba[:, 1], alpha)
    return paired_bootstrap_rows("roc_auc", _macro_auc, (y, candidate.proba), (y, champion.proba), len(y), alpha)


def verdict(comparison: PairedComparison, alpha: float) -> str:
    if comparison.low > 0:
        return "improved"
    if comparison.p_value < alpha and comparison.difference < 0:
        return "significantly worse"
    return "no significant difference"


def comparison_passes(comparison: PairedComparison, max_regression: float, rule: str, alpha: float) -> bool:
    """``non_inferiority``: the rows show the candidate at most ``max_regression`` worse (the interval's lower
    bound). ``no_significant_regression``: the rows do not show it worse (noise never blocks; a point estimate
    below ``-max_regression`` that the rows cannot tell from noise is a warning, see :func:`champion_checks`)."""
    if rule == "non_inferiority":
        return comparison.low >= -max_regression
    return verdict(comparison, alpha) != "significantly worse"


def describe_comparison(comparison: PairedComparison, version: str) -> str:
    text = (
        f"candidate {comparison.candidate:.4f} vs champion {version} {comparison.champion:.4f} on the same "
        f"{comparison.rows} rows: {_signed(comparison.difference)}, {_pct(comparison.level)} interval "
        f"[{_signed(comparison.low)}, {_signed(comparison.high)}]"
    )
    if comparison.wins is not None:
        text += f"; {comparison.wins} rows only the candidate gets right, {comparison.losses} only the champion"
    text += f"; {comparison.test} p={comparison.p_value:.3g}"
    if comparison.minimum_detectable is not None:
        text += f"; these rows detect a difference of ±{comparison.minimum_detectable:.4f} (80 % power)"
    return text


def champion_checks(ctx: GateContext) -> Iterable[Check]:
    t = ctx.thresholds
    metric = t.comparison_metric
    name = f"not_worse_than_champion ({metric})"
    if ctx.champion_version is None:
        if t.first_run_policy == "block":
            yield Check(
                name=name,
                value=None,
                threshold=None,
                comparison=">=",
                passed=False,
                detail="no champion yet and first_run_policy=block",
            )
        else:
            yield Check(
                name=name,
                value=None,
                threshold=None,
                comparison=">=",
                passed=True,
                detail="no champion yet: first run, first_run_policy=deploy_if_thresholds_pass",
            )
        return
    view = ctx.champion
    if view is None:
        yield Check(name=name, value=None, threshold=None, comparison=">=", passed=False, detail=ctx.champion_problem)
        return
    comparison = compare(ctx, metric, view.y, view.candidate, view.champion)
    if comparison is None:
        yield Check(
            name=name,
            value=None,
            threshold=None,
            comparison=">=",
            passed=False,
            detail=f"{metric} is undefined on the comparison rows",
        )
        return
    label = verdict(comparison, t.gate_alpha)
    passed = comparison_passes(comparison, t.max_regression, t.comparison_rule, t.gate_alpha)
    rule = (
        f"non_inferiority: the interval's lower bound must be at least -{t.max_regression:g}"
        if t.comparison_rule == "non_inferiority"
        else f"no_significant_regression: blocks only a candidate the rows show worse (p < {t.gate_alpha:g})"
    )
    detail = f"{describe_comparison(comparison, view.version)}. Verdict: {label}. Rule {rule}"
    yield Check(
        name=name,
        value=comparison.difference,
        threshold=-t.max_regression,
        comparison=">=",
        passed=passed,
        detail=detail,
        evidence=paired_evidence(comparison, t.comparison_rule, label),
    )
    if t.comparison_rule == "no_significant_regression" and passed and comparison.difference < -t.max_regression:
        yield Check(
            name="max_regression (point estimate)",
            value=comparison.difference,
            threshold=-t.max_regression,
            comparison=">=",
            passed=False,
            severity=WARNING,
            detail=(
                f"the candidate scores {_signed(comparison.difference)} against the champion on "
                f"{comparison.rows} rows, below -{t.max_regression:g}, but the rows cannot tell it from "
                f"noise (p={comparison.p_value:.3g}; they detect ±{comparison.minimum_detectable or 0:.4f}): "
                "deployed under no_significant_regression; comparison_rule=non_inferiority would block it"
            ),
            evidence=paired_evidence(comparison, t.comparison_rule, label),
        )
    yield from calibration_check(ctx, comparison.rows)
    yield from prediction_psi_check(ctx, comparison)
    yield from unexplained_gain_check(ctx, comparison)


def calibration_check(ctx: GateContext, rows: int) -> Iterable[Check]:
    t = ctx.thresholds
    view = ctx.champion
    if t.max_calibration_regression <= 0 or view is None:
        return
    if view.candidate.proba is None or view.champion.proba is None:
        yield Check(
            name="max_calibration_regression",
            value=None,
            threshold=t.max_calibration_regression,
            comparison="<=",
            passed=False,
            detail="a model without class probabilities has no Brier score",
        )
        return
    comparison = paired_mean(
        "brier", brier_per_row(view.y, view.candidate.proba), brier_per_row(view.y, view.champion.proba), t.gate_alpha
    )
    worse = comparison.p_value < t.gate_alpha and comparison.difference > 0
    if t.comparison_rule == "non_inferiority":
        passed = comparison.high <= t.max_calibration_regression
    else:
        passed = comparison.difference <= t.max_calibration_regression and not worse
    detail = (
        f"Brier score {comparison.candidate:.4f} vs champion {comparison.champion:.4f} on {rows} rows (lower is "
        f"better): {_signed(comparison.difference)}, {_pct(comparison.level)} interval "
        f"[{_signed(comparison.low)}, {_signed(comparison.high)}], p={comparison.p_value:.3g}; the served "
        "probabilities are what callers read"
    )
    yield Check(
        name="max_calibration_regression",
        value=comparison.difference,
        threshold=t.max_calibration_regression,
        comparison="<=",
        passed=passed,
        detail=detail,
        evidence=paired_evidence(
            comparison, t.comparison_rule, "significantly worse" if worse else "no significant regression"
        ),
    )


def prediction_psi_check(ctx: GateContext, comparison: PairedComparison) -> Iterable[Check]:
    """A candidate that predicts very differently from the champion must be shown better to replace it."""
    from gated_training.drift import prediction_psi

    t = ctx.thresholds
    view = ctx.champion
    if t.max_prediction_psi <= 0 or view is None:
        return
    champion_counts = _label_counts(ctx, view.champion.codes)
    psi = prediction_psi(champion_counts, _labels_of(ctx, view.candidate.codes))
    agreement = float(np.mean(view.candidate.codes == view.champion.codes)) if len(view.y) else 1.0
    improved = comparison.low > 0
    detail = (
        f"agreement with the champion {agreement:.1%} on {len(view.y)} rows; {comparison.metric} "
        f"{_signed(comparison.difference)} [{_signed(comparison.low)}, {_signed(comparison.high)}]: "
        + (
            "shown better, so a different answer mix is accepted"
            if improved
            else "not shown better (the interval reaches 0), so the answer mix must stay close"
        )
    )
    yield Check(
        name="max_prediction_psi",
        value=psi,
        threshold=t.max_prediction_psi,
        comparison="<=",
        passed=psi <= t.max_prediction_psi or improved,
        detail=detail,
        evidence={"rows": len(view.y), "rule": "PSI within the threshold, or the candidate shown better"},
    )


def unexplained_gain_check(ctx: GateContext, comparison: PairedComparison) -> Iterable[Check]:
    """A candidate far better than its champion on the same rows is more often a leak than a
    breakthrough, unless the batch drifted: then the champion is expected to fall behind."""
    t = ctx.thresholds
    if t.max_unexplained_gain <= 0:
        return
    gain = comparison.difference
    detail = (
        f"{comparison.metric} {comparison.candidate:.4f} vs champion {comparison.champion:.4f} on "
        f"{comparison.rows} rows, {_pct(comparison.level)} interval of the gain "
        f"[{_signed(comparison.low)}, {_signed(comparison.high)}]"
    )
    if (ctx.drift or {}).get("drifted"):
        yield Check(
            name="max_unexplained_gain",
            value=gain,
            threshold=t.max_unexplained_gain,
            comparison="<=",
            passed=True,
            detail=detail + "; explained: the drift gate found the batch drifted, so the champion is out of date",
        )
        return
    passed = gain <= t.max_unexplained_gain
    if not passed:
        detail += (
            "; a gain this large with the same data is usually a leak. Review the candidate; if the gain is "
            "real (new features, a better estimator), re-run with a higher max_unexplained_gain"
        )
    yield Check(
        name="max_unexplained_gain",
        value=gain,
        threshold=t.max_unexplained_gain,
        comparison="<=",
        passed=passed,
        detail=detail,
        evidence={"rows": comparison.rows, "rule": "point estimate"},
    )


def _label_counts(ctx: GateContext, codes: np.ndarray) -> dict[str, int]:
    from gated_training.data import label_key

    counts = np.bincount(codes, minlength=ctx.classes)
    return {label_key(label): int(count) for label, count in zip(ctx.labels, counts) if count}


def _labels_of(ctx: GateContext, codes: np.ndarray) -> np.ndarray:
    labels: np.ndarray = np.asarray(ctx.labels, dtype=object)[codes]
    return labels


# -- slices and segments ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SliceResult:
    column: str
    level: str
    rows: int
    candidate: float | None
    champion: float | None = None
    difference: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    adjusted_p_value: float | None = None
    floor_passed: bool = True
    worse: bool = False


def slice_levels(ctx: GateContext, column: str) -> tuple[np.ndarray, list[str]]:
    """Each test row's slice of ``column`` (the champion's segment cut when it has one)."""
    from gated_training.drift import segments

    definitions = ((ctx.champion.segments or {}).get("features") if ctx.champion else None) or {}
    frame = ctx.features[[column]]
    definition = definitions.get(column) or segments.define(frame, target="").get("features", {}).get(column)
    if definition is None:  # many text levels: the most common ones, the rest pooled
        values = frame[column].astype(object).where(frame[column].notna(), segments.MISSING).map(str)
        top = values.value_counts().index[:MAX_SLICE_LEVELS]
        definition = {"kind": "levels", "levels": sorted(top)}
    levels = segments.levels(frame[column], definition)
    return levels, sorted(set(levels.tolist()))


def slice_checks(ctx: GateContext) -> Iterable[Check]:
    t = ctx.thresholds
    columns = [c.strip() for c in t.slice_by.split(",") if c.strip()]
    if not columns:
        return
    present = ctx.feature_columns or tuple(map(str, ctx.features.columns))
    unknown = [c for c in columns if c not in ctx.features.columns]
    if unknown:
        yield Check(
            name="slices",
            value=None,
            threshold=None,
            comparison="==",
            passed=False,
            detail=f"slice_by names column(s) {', '.join(unknown)} that the test rows lack (columns: "
            f"{', '.join(present)[:300]})",
        )
        return
    metric = t.comparison_metric
    view = ctx.champion
    results: list[SliceResult] = []
    for column in columns:
        levels, names = slice_levels(ctx, column)
        for level in names:
            mask = levels == level
            if view is not None:
                rows = np.flatnonzero(mask[view.rows])
                y, candidate, champion = view.y[rows], _take(view.candidate, rows), _take(view.champion, rows)
            else:
                rows = np.flatnonzero(mask)
                y, candidate, champion = ctx.y[rows], _take(ctx.candidate, rows), None
            if len(rows) < t.min_slice_rows:
                continue
            interval = metric_interval(ctx, metric, y, candidate)
            floor_passed = True
            if t.min_slice_score > 0:
                judged = (
                    None if interval is None else (interval.estimate if t.threshold_rule == "point" else interval.low)
                )
                floor_passed = judged is not None and judged >= t.min_slice_score
            comparison = compare(ctx, metric, y, candidate, champion) if champion is not None else None
            results.append(
                SliceResult(
                    column=column,
                    level=str(level),
                    rows=len(rows),
                    candidate=None if interval is None else interval.estimate,
                    champion=comparison.champion if comparison else None,
                    difference=comparison.difference if comparison else None,
                    low=comparison.low if comparison else None,
                    high=comparison.high if comparison else None,
                    p_value=comparison.p_value if comparison else None,
                    floor_passed=floor_passed,
                )
            )
    compared = [i for i, r in enumerate(results) if r.p_value is not None]
    adjusted = holm([results[i].p_value for i in compared])  # type: ignore[misc]
    for index, p_adjusted in zip(compared, adjusted):
        result = results[index]
        is_worse = p_adjusted < t.gate_alpha and (result.difference or 0.0) < 0
        results[index] = SliceResult(**{**asdict(result), "adjusted_p_value": p_adjusted, "worse": is_worse})
    evidence = {
        "rows": int(len(view.y) if view else len(ctx.y)),
        "rule": "Holm-adjusted paired test per slice",
        "slices": [asdict(r) for r in results],
        "min_slice_rows": t.min_slice_rows,
    }
    if not results:
        yield Check(
            name="slices",
            value=None,
            threshold=None,
            comparison="==",
            passed=True,
            detail=f"no slice of {', '.join(columns)} has {t.min_slice_rows} rows (min_slice_rows): none judged",
            evidence=evidence,
        )
        return
    worse = [r for r in results if r.worse]
    if view is not None:
        worst = min((r for r in results if r.difference is not None), key=lambda r: r.difference or 0.0, default=None)
        detail = (
            f"{len(results)} slices of {', '.join(columns)} with at least {t.min_slice_rows} rows compared with "
            f"champion {view.version} on {metric}, Holm-adjusted over the slices"
        )
        if worst is not None:
            detail += (
                f"; worst {worst.column}={worst.level}: {_signed(worst.difference or 0.0)} on {worst.rows} rows "
                f"[{_signed(worst.low or 0.0)}, {_signed(worst.high or 0.0)}], adjusted p={worst.adjusted_p_value:.3g}"
            )
        if worse:
            detail = (
                "significantly worse than the champion in slice(s) "
                + "; ".join(
                    f"{r.column}={r.level} ({_signed(r.difference or 0.0)} on {r.rows} rows, adjusted "
                    f"p={r.adjusted_p_value:.3g})"
                    for r in worse
                )
                + ". "
                + detail
            )
        yield Check(
            name="slices_not_worse_than_champion",
            value=None if worst is None else worst.difference,
            threshold=0.0,
            comparison=">=",
            passed=not worse,
            detail=detail,
            evidence=evidence,
        )
    if t.min_slice_score > 0:
        low = [r for r in results if not r.floor_passed]
        weakest = min(results, key=lambda r: r.candidate if r.candidate is not None else -1.0)
        detail = (
            f"weakest slice {weakest.column}={weakest.level}: {metric} "
            f"{weakest.candidate if weakest.candidate is not None else float('nan'):.4f} on {weakest.rows} rows "
            f"(threshold_rule={t.threshold_rule})"
        )
        if low:
            detail = "slice(s) below the floor: " + ", ".join(f"{r.column}={r.level}" for r in low) + "; " + detail
        yield Check(
            name="min_slice_score",
            value=weakest.candidate,
            threshold=t.min_slice_score,
            comparison=">=",
            passed=not low,
            detail=detail,
            evidence=evidence,
        )


def _take(answers: Answers, rows: np.ndarray) -> Answers:
    return Answers(
        codes=answers.codes[rows], proba=None if answers.proba is None else answers.proba[rows], scores=answers.scores
    )


def segment_flip_check(ctx: GateContext) -> Iterable[Check]:
    """Where champion and candidate disagree: flips concentrated in one small segment are how a
    relabelled subgroup shows in the model (the candidate learnt the new labels there, nowhere else)."""
    from scipy.stats import fisher_exact

    from gated_training.drift import segments

    t = ctx.thresholds
    view = ctx.champion
    if view is None or not view.segments:
        return
    severity = CRITICAL if t.segment_flip_action == "block" else WARNING
    disagree = view.candidate.codes != view.champion.codes
    total, n = int(disagree.sum()), len(disagree)
    if total < MIN_FLIPS:
        yield Check(
            name="segment_flips",
            value=float(total),
            threshold=None,
            comparison="==",
            passed=True,
            severity=severity,
            detail=f"{total} of {n} rows answered differently by the two models: too few "
            f"(< {MIN_FLIPS}) to say where they concentrate",
        )
        return
    right_candidate = (view.candidate.codes == view.y) & disagree
    right_champion = (view.champion.codes == view.y) & disagree
    found = []
    for segment, rows, sums in segments.tallies(
        ctx.features.iloc[view.rows].reset_index(drop=True),
        view.segments,
        {
            "flips": disagree.astype(float),
            "wins": right_candidate.astype(float),
            "losses": right_champion.astype(float),
        },
    ):
        flips = int(sums["flips"])
        if rows == n or flips / total < FLIP_SHARE or rows / n > FLIP_SEGMENT_ROWS:
            continue  # cannot be flagged whatever the test says: not tested (fewer tests, less correction)
        table = [[flips, rows - flips], [total - flips, (n - rows) - (total - flips)]]
        p_value = float(fisher_exact(table, alternative="greater").pvalue)
        found.append((segment, rows, flips, p_value, int(sums["wins"]) - int(sums["losses"])))
    adjusted = holm([item[3] for item in found])
    flagged = [(item, p) for item, p in zip(found, adjusted) if p < t.gate_alpha]
    if not flagged:
        yield Check(
            name="segment_flips",
            value=float(total),
            threshold=None,
            comparison="==",
            passed=True,
            severity=severity,
            detail=f"{total} of {n} rows answered differently; no small segment holds most "
            f"of them significantly (Holm-adjusted one-sided Fisher tests over the {len(found)} candidate segments)",
            evidence={"rows": n, "rule": "Holm-adjusted one-sided Fisher test per segment"},
        )
        return
    (segment, rows, flips, p_value, gained), p_adjusted = max(flagged, key=lambda f: f[0][2] / f[0][1])
    detail = (
        f"{flips} of the {total} rows the two models answer differently ({flips / total:.0%}) are in segment "
        f"{segments.describe(segment)}, which holds {rows} of {n} rows ({rows / n:.0%}); the candidate's net gain "
        f"there is {gained:+d} rows (Fisher p={p_value:.2g}, Holm-adjusted {p_adjusted:.2g}). A relabelled "
        "subgroup looks like this: check the labels of that segment"
    )
    yield Check(
        name="segment_flips",
        value=flips / total,
        threshold=FLIP_SHARE,
        comparison="<",
        passed=False,
        severity=severity,
        detail=detail,
        evidence={
            "rows": n,
            "segment": segment,
            "segment_rows": rows,
            "flips": flips,
            "total_flips": total,
            "p_value": p_value,
            "adjusted_p_value": p_adjusted,
            "rule": f"segment_flip_action={t.segment_flip_action}",
        },
    )


def drift_hold_check(ctx: GateContext) -> Iterable[Check]:
    if ctx.drift is not None and not ctx.drift.get("deploy_allowed", True):
        yield Check(
            name=ModelGate.DRIFT_HOLD_CHECK,
            value=None,
            threshold=None,
            comparison="==",
            passed=False,
            detail="the batch drifted and drift_action=retrain_only: the candidate is trained and evaluated, "
            "not deployed; review it, then re-run with drift_action=warn to deploy",
        )


# The gate, in the order the report lists it.
CHECKS: tuple[CheckFunction, ...] = (
    evidence_checks,
    absolute_checks,
    baseline_check,
    overfit_check,
    leakage_checks,
    champion_checks,
    slice_checks,
    segment_flip_check,
    drift_hold_check,
)


def run_checks(ctx: GateContext, checks: tuple[CheckFunction, ...] = CHECKS) -> list[Check]:
    return [check for function in checks for check in function(ctx)]


@dataclass(frozen=True, kw_only=True)
class Verdict:
    decision: str
    reasons: list[str]
    warnings: list[str] = field(default_factory=list)


def decide(checks: list[Check]) -> Verdict:
    reasons = [check.line() for check in checks if check.blocks]
    warnings = [check.line() for check in checks if not check.passed and not check.blocks]
    return Verdict(decision=ModelGate.BLOCK if reasons else ModelGate.DEPLOY, reasons=reasons, warnings=warnings)
