"""The drift gate's decision: the no-new-data trigger, the schema contract, feature drift and label shift
of a batch against the champion's reference profile (``steps/check_drift.py`` runs it in the pipeline,
``gated-training check-drift`` alone).

The batch is compared with the champion's reference profile (stored with every deployed
version), so no old training data is read. Decisions:

- ``skip`` (reason ``no_new_data``): the batch's SHA-256 is the champion's training data's;
  training would only reproduce the champion. ``force_retrain`` overrides it.
- ``block`` (reason ``drift``): the batch drifted and ``drift_action=block``.
- ``train``: anything else. Under ``retrain_only`` a drifted batch still trains, but
  ``deploy_allowed`` is false and the model gate holds the candidate back.

With no champion, or a champion deployed before profiles existed, there is nothing to
compare with: the run trains and the report says why drift was not checked.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import pandas as pd

from gated_training.config import DriftPolicy
from gated_training.data import json_safe
from gated_training.decisions import DriftGate
from gated_training.drift.compare import compare_tallies, feature_tallies
from gated_training.errors import ConfigError, RegistryError
from gated_training.registry import FEATURE_METADATA_FILE, REFERENCE_PROFILE_FILE, ModelRegistry

TRAIN, SKIP, BLOCK = DriftGate.TRAIN, DriftGate.SKIP, DriftGate.BLOCK
NO_NEW_DATA, DRIFT, SCHEMA, LABEL_SHIFT = (
    DriftGate.NO_NEW_DATA,
    DriftGate.DRIFT,
    DriftGate.SCHEMA,
    DriftGate.LABEL_SHIFT,
)
LISTED_SEGMENTS = 20  # segments kept in the record: every shifted one, then the closest calls


@dataclass(frozen=True, kw_only=True)
class BatchTallies:
    """What the drift gate reads of a batch, as counts either engine computes (``compare.feature_tallies`` and
    ``segments.batch_label_tallies`` over the whole frame here, over each Spark partition in ``spark``)."""

    rows: int
    features: dict[str, dict[str, Any]]
    labels: dict[str, Any] | None  # None when the batch has no target or the profile holds no label counts


def tally_frame(frame: pd.DataFrame, profile: dict[str, Any], target: str, ignored: list[str]) -> BatchTallies:
    """The pandas engine's tallies of a batch against the champion's profile."""
    from gated_training.drift.segments import batch_label_tallies

    kept = frame.drop(columns=ignored) if ignored else frame
    labels = (
        batch_label_tallies(frame, target, profile["labels"]["definitions"])
        if "labels" in profile and target in frame.columns
        else None
    )
    return BatchTallies(rows=len(frame), features=feature_tallies(profile, kept), labels=labels)


@dataclass(frozen=True, kw_only=True)
class DriftGateOutcome:
    decision: str  # TRAIN, SKIP or BLOCK
    reason: str | None  # NO_NEW_DATA or DRIFT when the run stops here
    drift_action: str
    drifted: bool
    deploy_allowed: bool  # False under retrain_only when the batch drifted
    reasons: list[str]  # why the batch counts as drifted, or why the run stops
    notes: list[str]  # why drift was not checked, features the profile does not know...
    champion: str | None
    data_sha256: str
    report: dict[str, Any] | None = None  # drift.DriftReport.to_json()
    policy: dict[str, Any] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)  # new columns dropped under new_columns=ignore
    warnings: list[str] = field(default_factory=list)
    label_shift: list[dict[str, Any]] = field(default_factory=list)  # segments.LabelShift records, shifted first

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @property
    def retraining_advised(self) -> bool:
        """For ``check-drift``: no champion, no profile to compare with, or a drifted batch."""
        return self.reason != NO_NEW_DATA and (self.drifted or self.champion is None or self.report is None)


def champion_features(raw_feature_metadata: bytes | None) -> list[str] | None:
    """The schema contract: the input columns the champion was trained on (None for a version
    that recorded none)."""
    if raw_feature_metadata is None:
        return None
    return [str(column["name"]) for column in json.loads(raw_feature_metadata).get("inputs", [])]


def schema_contract(
    columns: list[str], target: str, contract: list[str], policy: DriftPolicy, champion_version: str
) -> tuple[list[str], list[str], list[str]]:
    """(blocking reasons, warnings, columns to drop) for a batch's columns against the champion's features."""
    present = [column for column in columns if column != target]
    missing = [feature for feature in contract if feature not in present]
    new = [column for column in present if column not in contract]
    reasons, warnings = [], []
    shared = len(contract) - len(missing)
    if contract and shared * 2 < len(contract) and missing:
        reasons.append(
            f"schema: the batch looks like another table than champion {champion_version}'s: only {shared} "
            f"of its {len(contract)} features are columns of the batch. A different model needs its own "
            "registry: pass another --registry (registry_uri) or model_name"
        )
    if missing:
        reasons.append(
            f"schema: feature(s) {', '.join(missing)} of champion {champion_version} are missing from "
            "the batch; a model without them cannot serve the callers that send them"
        )
    if new and policy.new_columns == "block":
        reasons.append(
            f"schema: new column(s) {', '.join(new)} that champion {champion_version} was not trained on "
            "(new_columns=block). A new column is never used silently: review it, then set "
            "new_columns=ignore to drop it, or train a first model on the new schema deliberately"
        )
    elif new:
        warnings.append(
            f"schema: new column(s) {', '.join(new)} dropped (new_columns=ignore); champion "
            f"{champion_version}'s features are used"
        )
    return reasons, warnings, (new if policy.new_columns == "ignore" else [])


def check_batch(
    load_batch: Callable[[], Any],
    data_sha256: str,
    target: str,
    registry_uri: str,
    model_name: str,
    policy: DriftPolicy,
    tally: Callable[[Any, dict[str, Any], str, list[str]], BatchTallies] = tally_frame,
) -> DriftGateOutcome:
    """Decide train / skip / block for the batch against the current champion.

    The batch is loaded only when there is a profile to compare it with: a first run, a champion
    without a profile and the no-new-data skip never read it. ``load_batch`` returns a frame with
    ``columns`` (pandas, or a Spark frame with ``tally`` the Spark engine's); ``tally`` counts it.
    """
    registry = ModelRegistry(registry_uri, model_name)
    base: dict[str, Any] = {"drift_action": policy.drift_action, "data_sha256": data_sha256, "policy": asdict(policy)}
    champion = registry.champion()
    if champion is None:
        return DriftGateOutcome(
            decision=TRAIN,
            reason=None,
            drifted=False,
            deploy_allowed=True,
            reasons=[],
            champion=None,
            notes=["no champion yet: nothing to compare the batch with"],
            **base,
        )
    try:
        manifest, raw = registry.read_verified_files(
            champion.version, (REFERENCE_PROFILE_FILE, FEATURE_METADATA_FILE), champion.manifest_sha256
        )
        raw_profile = raw[REFERENCE_PROFILE_FILE]
    except RegistryError as exc:
        raise RegistryError(
            f"the champion's reference profile could not be read, so the drift gate fails closed: {exc}"
        ) from exc
    if manifest.get("data_sha256") == data_sha256 and not policy.force_retrain:
        return DriftGateOutcome(
            decision=SKIP,
            reason=NO_NEW_DATA,
            drifted=False,
            deploy_allowed=False,
            champion=champion.version,
            notes=[],
            reasons=[
                f"no_new_data: the batch (SHA-256 {data_sha256}) is the data champion {champion.version} was "
                "trained on; set force_retrain=true to train anyway"
            ],
            **base,
        )
    if raw_profile is None:
        return DriftGateOutcome(
            decision=TRAIN,
            reason=None,
            drifted=False,
            deploy_allowed=True,
            reasons=[],
            champion=champion.version,
            notes=[
                f"champion {champion.version} has no reference profile (deployed before drift "
                "checks existed): drift not checked"
            ],
            **base,
        )
    profile = json.loads(raw_profile)
    critical_unknown = [f for f in policy.critical_features if f not in profile["features"]]
    if critical_unknown:
        raise ConfigError(
            f"parameter drift_critical_features: {', '.join(critical_unknown)} not among the "
            f"profiled features of champion {champion.version}: {', '.join(profile['features'])}"
        )
    frame = load_batch()
    contract = champion_features(raw[FEATURE_METADATA_FILE])
    schema_reasons, warnings, ignored = (
        schema_contract([str(c) for c in frame.columns], target, contract, policy, champion.version)
        if contract is not None
        else ([], [], [])
    )
    tallies = tally(frame, profile, target, ignored)
    report = compare_tallies(profile, tallies.features, tallies.rows, policy)
    notes = [] if contract is not None else [f"champion {champion.version} records no feature list: schema not checked"]
    shifts, shift_notes = label_shifts(
        profile, tallies, target, policy, champion.version, {f.feature for f in report.features if f.drifted}
    )
    notes += shift_notes
    shifted = [shift for shift in shifts if shift.shifted]
    shift_reasons = [shift.sentence(target) for shift in shifted[:5]]
    if len(shifted) > 5:
        shift_reasons.append(
            f"... and {len(shifted) - 5} more segment(s) with a label shift (the drift record lists them)"
        )
    reasons = schema_reasons + list(report.reasons)
    if policy.label_shift_action == "block":
        reasons += shift_reasons
    else:
        warnings += [f"{text} (label_shift_action=warn)" for text in shift_reasons]
    if schema_reasons:
        decision, reason = BLOCK, SCHEMA
    elif report.drifted and policy.drift_action == "block":
        decision, reason = BLOCK, DRIFT
    elif shifted and policy.label_shift_action == "block":
        decision, reason = BLOCK, LABEL_SHIFT
    else:
        decision, reason = TRAIN, None
        if report.drifted and policy.drift_action == "retrain_only":
            notes.append(
                "drift_action=retrain_only: a candidate is trained and evaluated on this batch, but it is not deployed"
            )
    return DriftGateOutcome(
        decision=decision,
        reason=reason,
        drifted=report.drifted,
        deploy_allowed=not (report.drifted and policy.drift_action == "retrain_only"),
        reasons=reasons,
        notes=notes,
        champion=champion.version,
        report=report.to_json(),
        ignored_columns=ignored,
        warnings=warnings,
        label_shift=[shift.to_json() for shift in shifts[: max(LISTED_SEGMENTS, len(shifted))]],
        **base,
    )


def label_shifts(
    profile: dict[str, Any],
    tallies: BatchTallies,
    target: str,
    policy: DriftPolicy,
    champion_version: str,
    drifted: set[str],
) -> tuple[list[Any], list[str]]:
    """The batch's label shares per segment against the champion's training rows (segments.label_shift)."""
    from gated_training.drift.segments import label_shift_from_tallies

    if "labels" not in profile:
        return [], [
            f"champion {champion_version}'s profile holds no label counts (deployed before label-shift "
            "checks): label shift not checked"
        ]
    if tallies.labels is None:
        return [], [f"the batch has no {target!r} column: label shift not checked"]
    shifts = label_shift_from_tallies(
        profile["labels"], tallies.labels, policy.drift_alpha, policy.label_shift_min_difference, drifted
    )
    notes = (
        [f"label shift not tested in segments of the drifted feature(s) {', '.join(sorted(drifted))}"]
        if drifted
        else []
    )
    return shifts, notes
