"""How well a served version does: measured on labelled calls, and estimated from its probabilities while the
labels lag. Every number states its rows, its interval and the rule that reads it.

**Realized** accuracy on the labelled calls is compared with the accuracy the gate measured on the version's own
test split: the difference (realized − gate) with Newcombe's interval for two independent proportions. A drop
larger than ``max_accuracy_drop`` whose interval lies wholly below zero is a *significant drop* (it acts); a drop
that large within noise only warns, saying how many rows would tell.

**Estimated** accuracy (confidence-based, as NannyML's CBPE): the mean probability the model gave the class it
predicted. It equals the expected accuracy only when those probabilities are calibrated and P(label | inputs) has
not changed; so it is *trusted* only when the gate measured an expected calibration error of at most
``max_calibration_error`` on at least ``min_calibration_rows`` test rows, and its interval is widened by that ECE.
It never triggers a retrain (it cannot see a change in P(label | inputs)); a trusted estimate whose interval lies
wholly below the gate's accuracy minus ``max_accuracy_drop`` alerts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from gated_training.config import MonitoringSettings
from gated_training.stats import confusion_metric, newcombe_difference, wilson_interval, z_value

ALPHA = 0.05


@dataclass
class Realized:
    rows: int
    accuracy: float
    low: float  # Wilson 95 %
    high: float
    balanced_accuracy: float
    gate_accuracy: float
    gate_rows: int
    difference: float  # realized − gate
    difference_low: float  # Newcombe 95 %
    difference_high: float
    verdict: str  # ok, drop, drop_within_noise, too_few
    rule: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def realized(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    classes: int,
    gate_accuracy: float,
    gate_rows: int,
    settings: MonitoringSettings,
) -> Realized:
    """Realized accuracy of labelled calls (class codes) against the gate's test accuracy."""
    n = len(y_true)
    correct = int(np.sum(y_true == y_pred))
    accuracy = correct / n if n else float("nan")
    low, high = wilson_interval(correct, n, ALPHA)
    gate_correct = round(gate_accuracy * gate_rows)
    difference, d_low, d_high = newcombe_difference(correct, n, gate_correct, gate_rows, ALPHA)
    rule = (
        f"acts when realized − gate < −{settings.max_accuracy_drop:g} and the 95% interval of the difference "
        f"(Newcombe, {n} labelled calls vs {gate_rows} test rows) lies below 0"
    )
    if n < settings.min_labelled_rows:
        verdict = "too_few"
    elif difference < -settings.max_accuracy_drop and d_high < 0:
        verdict = "drop"
    elif difference < -settings.max_accuracy_drop:
        verdict = "drop_within_noise"
    else:
        verdict = "ok"
    return Realized(
        rows=n,
        accuracy=accuracy,
        low=low,
        high=high,
        balanced_accuracy=confusion_metric("balanced_accuracy", y_true, y_pred, classes) if n else float("nan"),
        gate_accuracy=gate_accuracy,
        gate_rows=gate_rows,
        difference=difference,
        difference_low=d_low,
        difference_high=d_high,
        verdict=verdict,
        rule=rule,
    )


@dataclass
class Estimated:
    rows: int
    accuracy: float
    low: float
    high: float
    trusted: bool
    why: str
    calibration_error: float | None
    calibration_rows: int
    verdict: str  # ok, drop, not_trusted, no_rows

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def estimated(
    confidence: np.ndarray, calibration: dict[str, Any] | None, gate_accuracy: float, settings: MonitoringSettings
) -> Estimated:
    """The confidence-based estimate from the probability of each predicted class."""
    n = len(confidence)
    ece = (calibration or {}).get("expected_calibration_error")
    ece_rows = int((calibration or {}).get("rows") or 0)
    if n == 0:
        return Estimated(0, float("nan"), float("nan"), float("nan"), False, "no calls", ece, ece_rows, "no_rows")
    mean = float(np.mean(confidence))
    spread = z_value(ALPHA) * math.sqrt(float(np.sum(confidence * (1 - confidence)))) / n
    if not isinstance(ece, (int, float)) or not math.isfinite(ece):
        trusted, why = False, "the version recorded no calibration at gate time"
    elif ece > settings.max_calibration_error:
        trusted, why = (
            False,
            f"its expected calibration error at gate time was {ece:.3f} > {settings.max_calibration_error:g}",
        )
    elif ece_rows < settings.min_calibration_rows:
        trusted, why = False, f"its calibration was measured on {ece_rows} test rows < {settings.min_calibration_rows}"
    else:
        trusted, why = (
            True,
            f"calibrated at gate time (ECE {ece:.3f} on {ece_rows} rows); assumes P(label | inputs) unchanged",
        )
    widen = float(ece) if trusted and ece is not None else 0.0
    low, high = max(0.0, mean - spread - widen), min(1.0, mean + spread + widen)
    verdict = "not_trusted" if not trusted else ("drop" if high < gate_accuracy - settings.max_accuracy_drop else "ok")
    return Estimated(n, mean, low, high, trusted, why, ece, ece_rows, verdict)
