"""One monitoring window: what each served version was asked and answered, held against its own contract, and
the window's outcome.

Per version (the champion, a canary, the version before them, or one the registry does not know), on the calls of
the window (``window_hours``):

- **contract**: the version's own suite (the one its data gate ran, kept in the version) without the label's
  expectations and the table-level ones, on the calls' inputs; the inputs it takes and the ones it does not;
- **drift**: the same comparison as the training gate's (``drift.compare``) against the version's reference
  profile, under the drift policy; **prediction drift**: PSI of its predicted classes against the predictions its
  gate recorded on its test split;

and on the calls of the performance window (``performance_window_hours``): **realized** accuracy from the labels
joined within ``label_delay_hours``, **estimated** accuracy from its probabilities, and **label coverage**.

Each finding has a level. The window's outcome is the strongest: ``retrain`` (the champion drifted or lost
accuracy significantly, under on_drift/on_performance_drop = retrain, and its contract held: broken inputs are
an alert, never a reason to retrain on them), ``alert``, ``warn``, ``ok``; ``no_traffic`` when no call was logged,
and ``no_labels_yet`` when labels are expected but none has come and nothing else was found.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from gated_training.decisions import WindowOutcome

LEVELS = (WindowOutcome.OK, WindowOutcome.WARN, WindowOutcome.ALERT, WindowOutcome.RETRAIN)
OUTCOMES = (WindowOutcome.NO_TRAFFIC, WindowOutcome.NO_LABELS_YET, *LEVELS)


@dataclass
class Finding:
    level: str  # warn, alert, retrain
    code: (
        str  # contract, schema, drift, prediction_drift, performance, estimate, coverage, labels, sink, version, canary
    )
    text: str
    version: str = ""


@dataclass
class VersionWindow:
    """One version's evidence in the window (what the report shows)."""

    version: str
    role: str  # champion, canary, previous, unknown
    calls: int
    rows: int
    performance_rows: int = 0
    contract: dict[str, Any] = field(default_factory=dict)  # checks run, failed critical / warning, schema
    drift: dict[str, Any] | None = None  # drift.compare's report
    prediction_psi: float | None = None
    predicted_share: dict[str, float] = field(default_factory=dict)
    realized: dict[str, Any] | None = None
    estimated: dict[str, Any] | None = None
    labels: dict[str, int] = field(default_factory=dict)
    label_coverage: float | None = None  # labelled share of the calls old enough to be labelled
    decode_problems: dict[str, int] = field(default_factory=dict)
    gate_min_accuracy: float | None = None  # the min_accuracy the version was gated with (the alert rules' bar)
    notes: list[str] = field(default_factory=list)


@dataclass
class MonitoringOutcome:
    outcome: str
    reasons: list[str]
    warnings: list[str]
    model_name: str
    service: str
    window_start: str
    window_end: str
    performance_window_start: str
    champion: str | None
    versions: list[VersionWindow]
    findings: list[Finding]
    log: dict[str, Any]  # what reading the prediction log counted (files, duplicates, repaired pairs, sinks)
    labels: dict[str, Any]  # what reading the label tables counted
    comparison: dict[str, Any] | None = None  # the champion and another version, paired on labelled calls
    canary: dict[str, Any] | None = None  # the canary judged against the stable version (monitoring.canary)
    retrain: dict[str, Any] = field(default_factory=dict)  # ticket, data, suite, why (or why not)
    settings: dict[str, Any] = field(default_factory=dict)
    kfp_run_id: str = ""
    notification: str = ""

    def to_json(self) -> dict[str, Any]:
        from gated_training.data import json_safe

        document: dict[str, Any] = json_safe(asdict(self))
        return document


def decide(
    findings: list[Finding], total_calls: int, labels_expected: bool, labelled: int
) -> tuple[str, list[str], list[str]]:
    """The window's outcome from its findings: (outcome, reasons, warnings)."""
    if total_calls == 0:
        return "no_traffic", ["no call was logged in the window"], [f.text for f in findings if f.level == "warn"]
    contract_broken = {f.version for f in findings if f.level == "alert" and f.code in ("contract", "schema")}
    effective: list[Finding] = []
    for finding in findings:
        if finding.level == "retrain" and finding.version in contract_broken:
            effective.append(
                Finding(
                    "alert", finding.code, finding.text + " (no retrain: the calls broke the contract)", finding.version
                )
            )
        else:
            effective.append(finding)
    strongest = max((LEVELS.index(f.level) for f in effective), default=0)
    level = LEVELS[strongest]
    reasons = [f.text for f in effective if LEVELS.index(f.level) == strongest and strongest >= 2]
    warnings = [f.text for f in effective if f.level == "warn"]
    if level == "ok" and labels_expected and labelled == 0:
        return "no_labels_yet", ["no label has joined a call of the performance window yet"], warnings
    if level == "warn":
        reasons = warnings
    return level, reasons, warnings
