"""monitor-window, the monitoring pipeline's step: one window of the prediction log, held per served version against
the version's own contract, joined with the labels that came, decided (``monitoring.decide``), reported, and on
``retrain`` a ticket and the batch the nested training run trains on (docs/monitoring.md).

Nothing read here is trusted: every version file is read through the registry's verified reads, the suite through
the allowlist, the calls and the labels through the decoders that count what they leave out. Nothing here writes
to the registry: a retrain writes under the prediction log, and the training run it starts faces every gate.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gated_training import logs
from gated_training.config import DriftPolicy, MonitoringRunSettings, MonitoringSettings, ServingSettings
from gated_training.data import label_key, sha256_hex, storage
from gated_training.drift import compare, prediction_counts, prediction_psi, schema_contract
from gated_training.errors import DataError, RegistryError
from gated_training.monitoring import (
    BATCH_FILE,
    BATCH_SUITE_FILE,
    Finding,
    MonitoringOutcome,
    VersionWindow,
    decide,
    estimated,
    join_labels,
    may_retrain,
    open_ticket,
    read_labels,
    read_tickets,
    realized,
    render_html,
    render_markdown,
)
from gated_training.predictionlog import DecodedCalls, decode_calls, read_window
from gated_training.registry import FEATURE_METADATA_FILE, REFERENCE_PROFILE_FILE, SUITE_FILE, ModelRegistry
from gated_training.serving import service_name
from gated_training.validation import read_suite_document, suite_sha256

ALPHA = 0.05
LISTED_CHECKS = 20


@dataclass
class Retrain:
    """What the nested training run is started with (all empty when none is)."""

    data_uri: str = ""
    suite_uri: str = ""
    suite_sha256: str = ""
    target_column: str = ""
    ticket: str = ""


@dataclass
class _Version:
    """A known version's verified files and its decoded calls (kept for the paired comparison and a retrain)."""

    version: str
    manifest: dict[str, Any]
    metadata: dict[str, Any]
    profile: dict[str, Any] | None
    suite: bytes | None
    decoded: DecodedCalls
    labelled: list[int] = field(default_factory=list)  # positions in decoded.rows
    labels: list[Any] = field(default_factory=list)

    @property
    def classes(self) -> list[Any]:
        return list(self.metadata.get("classes") or [])

    @property
    def target(self) -> str:
        return str(self.metadata.get("target") or "")


def _gate_accuracy(manifest: dict[str, Any]) -> tuple[float | None, int]:
    accuracy = (manifest.get("metrics") or {}).get("accuracy")
    rows = int((manifest.get("calibration") or {}).get("rows") or (manifest.get("split") or {}).get("test_rows") or 0)
    return (float(accuracy) if isinstance(accuracy, (int, float)) else None), rows


def _role(version: str, champion: Any, registry_versions: set[str]) -> str:
    if champion is not None and version == champion.version:
        return "champion"
    if champion is not None and version == champion.stable_version:
        return "stable"
    return "registered" if version in registry_versions else "unknown"


def _contract_suite(raw: bytes, target: str, where: str) -> dict[str, Any]:
    """The version's suite as the data gate ran it, without the label's expectations and the table-level ones
    (row counts and column sets describe a training table, not a window of calls)."""
    document = read_suite_document(where, raw)
    kept = [
        item
        for item in document.get("expectations") or []
        if (item.get("kwargs") or {}).get("column") not in (None, target)
    ]
    return {**document, "expectations": kept}


def _check_contract(
    item: _Version, features: pd.DataFrame, settings: MonitoringSettings, view: VersionWindow, findings: list[Finding]
) -> None:
    from gated_training.steps.validate_data import run_suite

    version, rows = item.version, len(features)
    problems = item.decoded.problems
    if problems.get("missing_inputs"):
        findings.append(
            Finding(
                "alert",
                "schema",
                f"version {version}: {problems['missing_inputs']} call(s) did not send every input the model takes "
                f"({'; '.join(e for e in item.decoded.examples if 'not sent' in e)[:300]})",
                version,
            )
        )
    if problems.get("unexpected_inputs"):
        findings.append(
            Finding(
                "warn",
                "schema",
                f"version {version}: {problems['unexpected_inputs']} call(s) sent inputs the model does not take "
                "(ignored by the model; the callers' schema moved)",
                version,
            )
        )
    undecoded = sum(n for kind, n in problems.items() if kind not in ("missing_inputs", "unexpected_inputs"))
    if undecoded:
        findings.append(
            Finding(
                "warn",
                "log",
                f"version {version}: {undecoded} call(s) could not be decoded and were left out "
                f"({', '.join(f'{k}: {n}' for k, n in sorted(problems.items()))})",
                version,
            )
        )
    if item.suite is None:
        view.notes.append(f"version {version} keeps no expectation suite (deployed before monitoring): not checked")
        return
    if rows < settings.min_rows:
        view.notes.append(f"{rows} rows < min_rows {settings.min_rows}: the contract was not judged")
        return
    where = f"the suite of version {version}"
    document = _contract_suite(item.suite, item.target, where)
    checks = run_suite(features, document, where)
    failed = [c for c in checks if not c.passed]
    critical = [c for c in failed if c.severity == "critical"]
    view.contract = {
        "rows": rows,
        "checks": len(checks),
        "failed_critical": [c.describe() for c in critical[:LISTED_CHECKS]],
        "failed_warning": [c.describe() for c in failed if c.severity != "critical"][:LISTED_CHECKS],
    }
    if critical:
        findings.append(
            Finding(
                "alert",
                "contract",
                f"version {version}: {len(critical)} of {len(checks)} expectations of its suite failed on {rows} "
                f"logged rows: {critical[0].describe()}",
                version,
            )
        )
    elif len(failed):
        findings.append(
            Finding(
                "warn",
                "contract",
                f"version {version}: {len(failed)} warning-level expectation(s) failed on {rows} logged rows: "
                f"{failed[0].describe()}",
                version,
            )
        )


def _check_drift(
    item: _Version,
    role: str,
    features: pd.DataFrame,
    predicted: pd.Series,
    settings: MonitoringSettings,
    policy: DriftPolicy,
    view: VersionWindow,
    findings: list[Finding],
) -> None:
    version, rows = item.version, len(features)
    if item.profile is None:
        view.notes.append(f"version {version} keeps no reference profile: drift not checked")
        return
    if rows < settings.min_rows:
        view.notes.append(f"{rows} rows < min_rows {settings.min_rows}: drift was not judged")
        return
    contract = [str(c["name"]) for c in item.metadata.get("inputs") or []]
    schema_reasons, _, _ = schema_contract(list(features.columns), item.target, contract, policy, version)
    report = compare(item.profile, features, policy).to_json()
    view.drift = report
    if report["drifted"]:
        act = "retrain" if role == "champion" and settings.on_drift == "retrain" else "alert"
        findings.append(
            Finding(
                act,
                "drift",
                f"version {version}: its live inputs drifted from its reference profile on {rows} rows "
                f"({'; '.join(report['reasons'])[:400]})",
                version,
            )
        )
    for reason in schema_reasons:
        findings.append(Finding("alert", "schema", f"version {version}: {reason}", version))
    reference = (item.profile or {}).get("predictions")
    if reference:
        view.predicted_share = {k: v / max(len(predicted), 1) for k, v in prediction_counts(predicted).items()}
        view.prediction_psi = prediction_psi(reference, predicted.to_numpy())
        if view.prediction_psi > settings.prediction_psi_threshold:
            findings.append(
                Finding(
                    "alert",
                    "prediction_drift",
                    f"version {version}: PSI {view.prediction_psi:.3f} of its predicted classes on {rows} rows "
                    f"against the predictions its gate recorded on {sum(reference.values())} test rows "
                    f"(> prediction_psi_threshold {settings.prediction_psi_threshold:g})",
                    version,
                )
            )


def _named_suite(manifest: dict[str, Any], view: VersionWindow) -> bytes | None:
    """A version deployed before versions kept their suite: the suite its manifest names, only while its bytes
    still have the SHA-256 the data gate recorded."""
    named = manifest.get("suite") or {}
    if not named.get("uri") or not named.get("sha256"):
        return None
    try:
        raw, digest = suite_sha256(str(named["uri"]))
    except (DataError, OSError) as exc:
        view.notes.append(f"the suite its manifest names cannot be read ({str(exc)[:200]}): contract not checked")
        return None
    if digest != named["sha256"]:
        view.notes.append(
            f"the suite its manifest names changed since its data gate ran (SHA-256 {digest}, recorded "
            f"{named['sha256']}): contract not checked"
        )
        return None
    return raw


def _codes(values: list[Any], classes: list[Any]) -> np.ndarray:
    index = {label_key(c): i for i, c in enumerate(classes)}
    return np.array([index.get(label_key(v), -1) for v in values], dtype=int)


def _check_performance(
    item: _Version,
    role: str,
    labels: pd.DataFrame,
    end: datetime,
    perf_start: datetime,
    labels_expected: bool,
    settings: MonitoringSettings,
    view: VersionWindow,
    findings: list[Finding],
    join_counts: dict[str, int],
) -> None:
    version = item.version
    rows = item.decoded.rows
    in_perf = rows["request_time"] >= pd.Timestamp(perf_start)
    perf_rows = rows[in_perf]
    view.performance_rows = len(perf_rows)
    gate_accuracy, gate_rows = _gate_accuracy(item.manifest)
    if labels_expected and len(perf_rows):
        joined = join_labels(perf_rows, labels, item.classes, timedelta(hours=settings.label_delay_hours))
        positions = perf_rows.index.to_numpy()[joined.positions] if joined.positions else np.array([], dtype=int)
        item.labelled, item.labels = positions.tolist(), joined.labels
        view.labels = joined.counts
        for key, count in joined.counts.items():
            join_counts[key] = join_counts.get(key, 0) + count
        due = perf_rows["request_time"] <= pd.Timestamp(end - timedelta(hours=settings.label_delay_hours))
        due_calls = int(due.sum())
        if due_calls:
            due_positions = set(perf_rows.index[due])
            labelled_due = sum(1 for p in item.labelled if p in due_positions)
            view.label_coverage = labelled_due / due_calls
            if view.label_coverage < settings.min_label_coverage:
                findings.append(
                    Finding(
                        "warn",
                        "coverage",
                        f"version {version}: {labelled_due} of {due_calls} rows older than label_delay_hours "
                        f"({settings.label_delay_hours} h) have a label ({view.label_coverage:.0%} < "
                        f"min_label_coverage {settings.min_label_coverage:.0%}): realized accuracy describes few calls",
                        version,
                    )
                )
        if item.labelled and gate_accuracy is not None and gate_rows:
            y_true = _codes(item.labels, item.classes)
            y_pred = _codes(rows.loc[item.labelled, "predicted"].tolist(), item.classes)
            result = realized(y_true, y_pred, len(item.classes), gate_accuracy, gate_rows, settings)
            view.realized = result.to_json()
            view.realized["metrics"] = _gate_metrics(item, y_true, y_pred)
            view.realized["gate_metrics"] = item.manifest.get("metrics") or {}
            if result.verdict == "drop":
                act = "retrain" if role == "champion" and settings.on_performance_drop == "retrain" else "alert"
                findings.append(
                    Finding(
                        act,
                        "performance",
                        f"version {version}: realized accuracy {result.accuracy:.3f} [{result.low:.3f}, "
                        f"{result.high:.3f}] on {result.rows} labelled rows, {-result.difference:.3f} below its "
                        f"gate's {gate_accuracy:.3f} on {gate_rows} test rows (difference 95% "
                        f"[{result.difference_low:.3f}, {result.difference_high:.3f}], Newcombe; max_accuracy_drop "
                        f"{settings.max_accuracy_drop:g})",
                        version,
                    )
                )
            elif result.verdict == "drop_within_noise":
                findings.append(
                    Finding(
                        "warn",
                        "performance",
                        f"version {version}: realized accuracy {result.accuracy:.3f} on {result.rows} labelled rows is "
                        f"{-result.difference:.3f} below its gate's {gate_accuracy:.3f}, within noise (difference 95% "
                        f"[{result.difference_low:.3f}, {result.difference_high:.3f}] includes 0)",
                        version,
                    )
                )
            elif result.verdict == "too_few":
                view.notes.append(
                    f"{result.rows} labelled rows < min_labelled_rows {settings.min_labelled_rows}: realized "
                    "accuracy shown, not judged"
                )
    if gate_accuracy is not None and len(perf_rows):
        window_rows = rows["request_time"] >= pd.Timestamp(end - timedelta(hours=settings.window_hours))
        confidence = (
            item.decoded.probabilities[window_rows.to_numpy()].max(axis=1) if window_rows.any() else np.array([])
        )
        estimate = estimated(confidence, item.manifest.get("calibration"), gate_accuracy, settings)
        view.estimated = estimate.to_json()
        if estimate.verdict == "drop":
            findings.append(
                Finding(
                    "alert",
                    "estimate",
                    f"version {version}: estimated accuracy {estimate.accuracy:.3f} [{estimate.low:.3f}, "
                    f"{estimate.high:.3f}] from its probabilities on {estimate.rows} rows is below its gate's "
                    f"{gate_accuracy:.3f} by more than max_accuracy_drop {settings.max_accuracy_drop:g} "
                    f"({estimate.why})",
                    version,
                )
            )
        elif not estimate.trusted:
            view.notes.append(f"estimated accuracy not trusted: {estimate.why}")


def _gate_metrics(item: _Version, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """The gate's headline metrics (accuracy, balanced accuracy, F1, ROC AUC, Brier) on the labelled calls, from
    the answers as served, to set beside the ones the version was deployed with."""
    from gated_training.gate import score_predictions

    known = (y_true >= 0) & (y_pred >= 0)
    if not known.any():
        return {}
    classes = np.asarray(item.classes)  # their own dtype: scikit-learn reads an object array of ints as "unknown"
    proba = item.decoded.probabilities[np.asarray(item.labelled)[known]]
    scores = score_predictions(pd.Series(classes[y_true[known]]), classes[y_pred[known]], proba, classes)
    return scores.headline()


def _paired(champion: _Version, other: _Version, registry: ModelRegistry) -> dict[str, Any] | None:
    """Champion and another served version scored on the same labelled calls (both models verified), with the
    gate's paired statistics (exact McNemar, paired bootstrap interval)."""
    from gated_training.stats import DEFAULT_RESAMPLES, paired_confusion

    frames, truths = [], []
    for item in (champion, other):
        if item.labelled:
            frames.append(item.decoded.features.loc[item.labelled])
            truths += item.labels
    if len(truths) < 2 or champion.classes != other.classes:
        return None
    features = pd.concat(frames, ignore_index=True)
    champion_model, _ = registry.load_verified(champion.version, champion.manifest.get("__sha256"))
    other_model, _ = registry.load_verified(other.version, other.manifest.get("__sha256"))
    y_true = _codes(truths, champion.classes)
    a = _codes(list(champion_model.predict(features)), champion.classes)
    b = _codes(list(other_model.predict(features)), champion.classes)
    comparison = paired_confusion("accuracy", y_true, a, b, len(champion.classes), ALPHA, DEFAULT_RESAMPLES)
    record = comparison.to_json()
    record["versions"] = [champion.version, other.version]
    record["text"] = (
        f"on {len(y_true)} labelled calls scored by both, champion {champion.version} − version {other.version}: "
        f"accuracy {comparison.difference:+.3f} [{comparison.low:+.3f}, {comparison.high:+.3f}] "
        "(95%, paired bootstrap), "
        f"{comparison.test} p={comparison.p_value:.3g}"
    )
    record["worse"] = bool(comparison.high < 0 and comparison.p_value < ALPHA)
    return record


def _canary_pair(
    champion: Any, known: dict[str, _Version], serving: ServingSettings | None, kube_api_url: str, service: str
) -> tuple[str, str, str, Any]:
    """(canary, stable, where that came from, the KServe client) while a canary runs, else empty strings.

    With ``serving_namespace`` the InferenceService says (the truth of what serves); without it, the registry's
    champion and the version before it, both answering in the window's log (judged, reported, not acted on)."""
    if serving is not None and serving.serving_namespace:
        from gated_training.serving import KServeClient, manifests

        client = KServeClient(kube_api_url)
        state = manifests.describe(client.get(manifests.ISVC_PLURAL, serving.serving_namespace, service))
        if not state.exists or state.canary_percent <= 0 or not state.stable_version:
            return "", "", "", client
        where = (
            f"InferenceService {serving.serving_namespace}/{service}: {state.canary_percent} % to {state.version}, "
            f"the rest to {state.stable_version}"
        )
        return str(state.version), str(state.stable_version), where, client
    previous = str(champion.pointer.get("previous_version") or "")
    if previous and champion.version in known and previous in known:
        where = f"registry champion {champion.version} and the version before it, {previous}, both in the log"
        return champion.version, previous, where, None
    return "", "", "", None


def _judge_canary(
    *,
    run: MonitoringRunSettings,
    settings: MonitoringSettings,
    serving: ServingSettings | None,
    kube_api_url: str,
    registry: ModelRegistry,
    champion: Any,
    known: dict[str, _Version],
    views: list[VersionWindow],
    service: str,
    start: datetime,
    end: datetime,
    labels_expected: bool,
    findings: list[Finding],
) -> dict[str, Any] | None:
    """While a canary runs: judge it against the stable version on this window, record the judgement beside the log,
    and promote it after enough healthy windows or abort it on evidence that it is worse (with a namespace)."""
    from gated_training.errors import GatedTrainingError
    from gated_training.monitoring import (
        Side,
        action_for,
        healthy_in_a_row,
        judge,
        read_history,
        read_live,
        write_judgement,
    )
    from gated_training.reports import notify_lines

    try:
        canary, stable, where, client = _canary_pair(champion, known, serving, kube_api_url, service)
    except GatedTrainingError as exc:
        findings.append(
            Finding("warn", "canary", f"the canary was not judged: the InferenceService was not read: {exc}")
        )
        return None
    if not canary:
        return None
    sides = {}
    for version in (canary, stable):
        item = known.get(version)
        if item is None:
            continue
        mask = (item.decoded.rows["request_time"] >= pd.Timestamp(start)).to_numpy()
        sides[version] = Side(
            calls=int(mask.sum()),
            predicted=list(item.decoded.rows.loc[mask, "predicted"]),
            undecodable=int(sum((item.decoded.problems or {}).values())),
        )
    comparison, labelled = None, 0
    if canary in known and stable in known:
        labelled = len(known[canary].labelled) + len(known[stable].labelled)
        if known[canary].labelled or known[stable].labelled:
            comparison = _paired(known[canary], known[stable], registry)
    manifest = known[canary].manifest if canary in known else {}
    margin = ((manifest.get("gate") or {}).get("thresholds") or {}).get("max_regression")
    live = (
        read_live(settings.prometheus_url, service, settings.window_hours, end).to_json()
        if settings.prometheus_url
        else None
    )
    serving_settings = serving or ServingSettings()
    window = judge(
        canary=canary,
        stable=stable,
        window_end=end.isoformat(),
        sides=sides,
        live=live,
        comparison=comparison,
        labels_expected=labels_expected,
        labelled=labelled,
        min_calls=serving_settings.canary_min_calls,
        min_labelled=settings.min_labelled_rows,
        max_error_rate_increase=serving_settings.canary_max_error_rate_increase,
        max_latency_ratio=serving_settings.canary_max_latency_ratio,
        psi_threshold=settings.prediction_psi_threshold,
        max_regression=float(margin) if isinstance(margin, (int, float)) else 0.0,
    )
    window.source = where
    history, problems = read_history(run.prediction_log_uri, service, canary)
    window.healthy_windows = healthy_in_a_row(history, window, settings.window_hours)
    window.needed_windows = serving_settings.canary_analysis_windows
    window.action = action_for(window, window.needed_windows)
    worse = [e.text for e in window.evidence if e.result == "worse"]
    if window.action == "hold":
        window.action_result = f"held: {window.healthy_windows} of {window.needed_windows} healthy windows"
    elif client is None:
        window.action_result = f"not taken ({window.action}): serving_namespace is not set; the analysis advises it"
    else:
        from gated_training.serving import rollout

        assert serving is not None
        try:
            if window.action == "promote":
                window.action_result = rollout.promote(
                    registry=registry,
                    client=client,
                    namespace=serving.serving_namespace,
                    timeout=serving.serving_ready_timeout_seconds,
                    poll=2.0,
                )
            else:
                window.action_result = rollout.abort(
                    registry=registry,
                    client=client,
                    namespace=serving.serving_namespace,
                    reason=f"canary analysis, window to {end.isoformat()}: {'; '.join(worse)}"[:1000],
                    timeout=serving.serving_ready_timeout_seconds,
                    poll=2.0,
                )
        except GatedTrainingError as exc:
            window.action_result = f"failed ({window.action}): {exc}"
    failed = window.action_result.startswith("failed")
    if window.verdict == "worse":
        findings.append(
            Finding(
                "alert",
                "canary",
                f"canary {canary} is worse than stable {stable}: {'; '.join(worse)}; {window.action_result}",
                canary,
            )
        )
    elif failed:
        findings.append(Finding("alert", "canary", f"canary {canary}: {window.action_result}", canary))
    for problem in problems:
        findings.append(Finding("warn", "canary", problem, canary))
    try:
        recorded = write_judgement(run.prediction_log_uri, service, window)
    except (DataError, RegistryError, OSError) as exc:
        recorded = ""
        findings.append(Finding("warn", "canary", f"the canary's judgement was not recorded: {exc}", canary))
    document = window.to_json()
    document["recorded"] = recorded
    if window.action in ("promote", "abort"):
        headline = (
            f"Canary {'promoted' if window.action == 'promote' else 'aborted'}: {run.model_name} {canary} "
            f"against {stable}, window to {end.isoformat()}"
        )
        lines = [window.action_result] + [f"{e.criterion}: {e.result}: {e.text}" for e in window.evidence]
        document["notification"] = notify_lines(run.notify_webhook_url, headline, lines)
    logs.event(
        "canary.judged",
        f"canary {canary} against {stable}: {window.verdict}; {window.action_result}",
        severity="WARNING" if window.verdict == "worse" or failed else "INFO",
        version=canary,
        stable=stable,
        verdict=window.verdict,
        action=window.action,
        healthy_windows=window.healthy_windows,
        needed_windows=window.needed_windows,
        evidence={e.criterion: e.result for e in window.evidence},
    )
    for view in views:
        if view.version == canary:
            view.notes.append(f"canary against {stable}: {window.verdict}, {window.action_result}")
    return document


def _retrain_batch(
    champion: _Version, others: list[_Version], ticket: str, settings: MonitoringSettings
) -> tuple[Retrain | None, str]:
    """The labelled calls (every version with the champion's inputs and classes) as a training table, with the
    champion's suite beside it; or None and why not."""
    frames, truths = [], []
    for item in [champion, *others]:
        if item.labelled and item.classes == champion.classes:
            frames.append(item.decoded.features.loc[item.labelled])
            truths += item.labels
    if len(truths) < settings.min_labelled_rows:
        return None, (
            f"{len(truths)} labelled calls < min_labelled_rows {settings.min_labelled_rows}: too few to retrain on; "
            "set retrain_data_uri to a training table"
        )
    if champion.suite is None:
        return None, f"champion {champion.version} keeps no suite: set retrain_data_uri to a table with its own suite"
    batch = pd.concat(frames, ignore_index=True)
    batch[champion.target] = truths
    data_uri = storage.join_uri(ticket, BATCH_FILE)
    suite_uri = storage.join_uri(ticket, BATCH_SUITE_FILE)
    buffer = io.BytesIO()
    batch.to_parquet(buffer, index=False)
    storage.write_bytes(data_uri, buffer.getvalue(), create_only=True)
    storage.write_bytes(suite_uri, champion.suite, create_only=True)
    return (
        Retrain(
            data_uri=data_uri,
            suite_uri=suite_uri,
            suite_sha256=sha256_hex(champion.suite),
            target_column=champion.target,
            ticket=ticket,
        ),
        f"{len(batch)} labelled calls written to {data_uri}",
    )


def monitor_window(
    *,
    run: MonitoringRunSettings,
    settings: MonitoringSettings,
    policy: DriftPolicy,
    end: datetime,
    result_out: str,
    markdown_out: str,
    html_out: str,
    kfp_run_id: str = "",
    now: datetime | None = None,
    serving: ServingSettings | None = None,
    kube_api_url: str = "",
) -> tuple[MonitoringOutcome, Retrain]:
    """The pipeline step: decide the window, write the JSON record and the reports, open a retrain ticket; while a
    canary runs, judge it (``serving``: its namespace and the canary settings; ``kube_api_url`` as in serve-model)."""
    now = now or end
    start = end - timedelta(hours=settings.window_hours)
    perf_start = end - timedelta(hours=settings.performance_window_hours)
    service = service_name(run.model_name)
    registry = ModelRegistry(run.registry_uri, run.model_name)
    champion = registry.champion()
    findings: list[Finding] = []
    views: list[VersionWindow] = []
    known: dict[str, _Version] = {}
    log_record: dict[str, Any] = {}
    labels_record: dict[str, Any] = {}
    comparison = None
    canary_record: dict[str, Any] | None = None
    labels_expected = bool(run.labels_uri)
    total_calls = labelled_total = 0
    if champion is not None:
        window = read_window(run.prediction_log_uri, service, min(start, perf_start), end, settings.max_window_rows)
        log_record = {"counts": window.counts, "sink": window.sink, "problems": window.problems}
        labels = read_labels(run.labels_uri, end) if labels_expected else None
        table = labels.table if labels is not None else pd.DataFrame()
        join_counts: dict[str, int] = {}
        registry_versions = set(registry.versions())
        for version in window.versions:
            calls = window.calls[window.calls["version"] == version]
            in_window = calls["request_time"] >= pd.Timestamp(start)
            total_calls += int(in_window.sum())
            role = _role(version, champion, registry_versions)
            endpoints = sorted(set(calls["endpoint"].astype(str)))
            view = VersionWindow(version=version, role=role, calls=int(in_window.sum()), rows=0)
            views.append(view)
            if endpoints:
                view.notes.append(f"served on endpoint(s) {', '.join(endpoints)}")
            if role == "unknown":
                findings.append(
                    Finding(
                        "alert",
                        "version",
                        f"{len(calls)} call(s) answered as version {version!r}, which registry {run.registry_uri} "
                        f"does not hold for {run.model_name}: not analysed (a model served outside the registry?)",
                        version,
                    )
                )
                continue
            try:
                manifest, raw = registry.read_verified_files(
                    version, (FEATURE_METADATA_FILE, REFERENCE_PROFILE_FILE, SUITE_FILE)
                )
                _, manifest_sha = registry.read_manifest(version)
                if raw[FEATURE_METADATA_FILE] is None:
                    raise RegistryError(f"model version {version}: no {FEATURE_METADATA_FILE}")
                metadata = json.loads(raw[FEATURE_METADATA_FILE] or b"{}")
            except (RegistryError, ValueError) as exc:
                findings.append(
                    Finding("alert", "version", f"version {version} cannot be verified, not analysed: {exc}", version)
                )
                continue
            manifest = {**manifest, "__sha256": manifest_sha}
            suite = raw[SUITE_FILE] or _named_suite(manifest, view)
            inputs = [str(c["name"]) for c in metadata.get("inputs") or []]
            decoded = decode_calls(calls, inputs, list(metadata.get("classes") or []), settings.label_key_header)
            view.decode_problems = decoded.problems
            item = _Version(
                version=version,
                manifest=manifest,
                metadata=metadata,
                profile=json.loads(profile_raw) if (profile_raw := raw[REFERENCE_PROFILE_FILE]) else None,
                suite=suite,
                decoded=decoded,
            )
            known[version] = item
            minimum = ((manifest.get("gate") or {}).get("thresholds") or {}).get("min_accuracy")
            view.gate_min_accuracy = float(minimum) if isinstance(minimum, (int, float)) else None
            mask = (decoded.rows["request_time"] >= pd.Timestamp(start)).to_numpy()
            features = decoded.features[mask]
            view.rows = int(mask.sum())
            if view.rows:
                _check_contract(item, features, settings, view, findings)
                _check_drift(
                    item, role, features, decoded.rows.loc[mask, "predicted"], settings, policy, view, findings
                )
            _check_performance(
                item, role, table, end, perf_start, labels_expected, settings, view, findings, join_counts
            )
            labelled_total += len(item.labelled)
        if labels is not None:
            labels_record = {"counts": labels.counts, "join": join_counts, "problems": labels.problems}
            if join_counts.get("conflicting"):
                findings.append(
                    Finding(
                        "warn",
                        "labels",
                        f"{join_counts['conflicting']} call(s) labelled twice with different classes: left out",
                    )
                )
            if join_counts.get("unseen_class"):
                findings.append(
                    Finding(
                        "warn",
                        "labels",
                        f"{join_counts['unseen_class']} label(s) of a class the model does not know: left out "
                        "(a new class needs a new model, trained on purpose)",
                    )
                )
            if join_counts.get("before_call"):
                findings.append(
                    Finding(
                        "warn",
                        "labels",
                        f"{join_counts['before_call']} label(s) known before their call (beyond 5 min of clock skew): "
                        "left out; a clock is wrong or request ids are reused",
                    )
                )
        refused = sum(window.sink.get(k, 0) for k in ("refused_full", "write_errors"))
        if refused or window.sink.get("malformed") or window.sink.get("oversized"):
            findings.append(
                Finding(
                    "warn",
                    "sink",
                    f"the sink could not keep every event of the window: {window.sink.get('refused_full', 0)} refused "
                    f"(buffer full), {window.sink.get('write_errors', 0)} failed writes, "
                    f"{window.sink.get('malformed', 0)} malformed, {window.sink.get('oversized', 0)} oversized",
                )
            )
        if champion.version in known:
            for other in known.values():
                if other.version != champion.version and other.labelled and known[champion.version].labelled:
                    comparison = _paired(known[champion.version], other, registry)
                    if comparison and comparison["worse"]:
                        findings.append(
                            Finding(
                                "alert",
                                "canary",
                                f"champion {champion.version} is significantly less accurate than version "
                                f"{other.version} on the same labelled calls: {comparison['text']}",
                                champion.version,
                            )
                        )
                    break
        canary_record = _judge_canary(
            run=run,
            settings=settings,
            serving=serving,
            kube_api_url=kube_api_url,
            registry=registry,
            champion=champion,
            known=known,
            views=views,
            service=service,
            start=start,
            end=end,
            labels_expected=labels_expected,
            findings=findings,
        )
        outcome, reasons, warnings = decide(findings, total_calls, labels_expected, labelled_total)
    else:
        outcome, reasons, warnings = (
            "no_traffic",
            [f"registry {run.registry_uri} has no champion for {run.model_name}: nothing is served to watch"],
            [],
        )
    retrain = Retrain()
    retrain_record: dict[str, Any] = {}
    if outcome == "retrain" and champion is not None:
        retrain, retrain_record = _start_retrain(
            run, settings, service, now, champion.version, known, reasons, kfp_run_id
        )
        if not retrain.ticket:
            outcome = "alert"
            reasons = reasons + [retrain_record["text"]]
    result = MonitoringOutcome(
        outcome=outcome,
        reasons=reasons,
        warnings=warnings,
        model_name=run.model_name,
        service=service,
        window_start=start.isoformat(),
        window_end=end.isoformat(),
        performance_window_start=perf_start.isoformat(),
        champion=champion.version if champion else None,
        versions=views,
        findings=findings,
        log=log_record,
        labels=labels_record,
        comparison=comparison,
        canary=canary_record,
        retrain=retrain_record,
        settings={"monitoring": settings.__dict__, "drift": policy.__dict__},
        kfp_run_id=kfp_run_id,
    )
    document = result.to_json()
    Path(result_out).write_text(json.dumps(document, indent=2))
    Path(markdown_out).write_text(render_markdown(document))
    Path(html_out).write_text(render_html(document))
    return result, retrain


def _start_retrain(
    run: MonitoringRunSettings,
    settings: MonitoringSettings,
    service: str,
    now: datetime,
    champion: str,
    known: dict[str, _Version],
    reasons: list[str],
    kfp_run_id: str,
) -> tuple[Retrain, dict[str, Any]]:
    tickets, problems = read_tickets(run.prediction_log_uri, service)
    allowed, why = may_retrain(tickets, now, settings.retrain_cooldown_hours, settings.retrain_timeout_hours)
    record: dict[str, Any] = {"started": False, "problems": problems}
    if not allowed:
        return Retrain(), {**record, "text": f"no retrain: {why}"}
    if champion not in known:
        return Retrain(), {**record, "text": f"no retrain: champion {champion} served no call in the window"}
    item = known[champion]
    ticket = open_ticket(
        run.prediction_log_uri,
        service,
        now,
        {"model_name": run.model_name, "champion": champion, "why": reasons, "monitoring_run": kfp_run_id},
    )
    if settings.retrain_data_uri:
        target = item.target
        started = Retrain(data_uri=settings.retrain_data_uri, target_column=target, ticket=ticket)
        text = f"retrain started on retrain_data_uri {settings.retrain_data_uri} (ticket {ticket})"
    else:
        try:
            batch, text = _retrain_batch(item, [v for k, v in known.items() if k != champion], ticket, settings)
        except (DataError, RegistryError, OSError) as exc:
            batch, text = None, f"the retrain batch could not be written: {exc}"
        if batch is None:
            from gated_training.reports import close_ticket

            close_ticket(ticket, {"outcome": "failed", "reasons": [text], "ended": now.isoformat()})
            return Retrain(), {**record, "ticket": ticket, "text": f"no retrain: {text}"}
        started = batch
        text = f"retrain started: {text} (ticket {ticket}); the training run faces every gate"
    if note := why:
        text += f"; {note}"
    return started, {**record, "started": True, "ticket": ticket, "data_uri": started.data_uri, "text": text}


def version_metrics(view: dict[str, Any]) -> dict[str, float]:
    """A served version's numbers of the window (finite ones only: KFP's launcher refuses NaN)."""
    import math

    drift = view.get("drift") or {}
    numbers = {
        "calls": view.get("calls"),
        "rows": view.get("rows"),
        "drifted_share": drift.get("drifted_share"),
        "max_psi": drift.get("max_psi"),
        "prediction_psi": view.get("prediction_psi"),
        "realized_accuracy": (view.get("realized") or {}).get("accuracy"),
        "realized_rows": (view.get("realized") or {}).get("rows"),
        "estimated_accuracy": (view.get("estimated") or {}).get("accuracy"),
        "label_coverage": view.get("label_coverage"),
    }
    return {
        name: float(value)
        for name, value in numbers.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


def finish_window(
    run: MonitoringRunSettings,
    outcome: MonitoringOutcome,
    result_path: str,
    markdown_path: str,
    html_path: str,
    links: dict[str, str],
) -> dict[str, float]:
    """After the decision: each served version's window in MLflow (one run per version, tagged with its registry
    version, role and the window's outcome), the webhook on alert and retrain, the record updated with both.
    Neither can change the outcome. Returns the champion's numbers for the KFP metrics view."""
    from gated_training.monitoring import HEADLINES
    from gated_training.reports import notify_lines, push_monitoring
    from gated_training.tracking import log_monitoring, resolve_tracking_uri

    document = json.loads(Path(result_path).read_text())
    tracking_uri = resolve_tracking_uri(run.mlflow_tracking_uri)
    synced = {}
    for view in document["versions"]:
        synced[view["version"]] = log_monitoring(
            tracking_uri,
            run.mlflow_experiment,
            f"{outcome.outcome} · {view['role']} {view['version']} · window to {outcome.window_end}",
            {
                "registry_version": view["version"],
                "role": view["role"],
                "model_name": run.model_name,
                "gated_training.monitoring_outcome": outcome.outcome,
                "window_end": outcome.window_end,
                "kfp_run_id": outcome.kfp_run_id,
                "mlflow.note.content": "; ".join(outcome.reasons)[:4000] or outcome.outcome,
            },
            version_metrics(view),
            {"monitoring_report.json": result_path, "monitoring_report.md": markdown_path, "report.html": html_path},
        )
    document["mlflow"] = synced
    notification = "not needed"
    if outcome.outcome in ("alert", "retrain"):
        headline = f"{HEADLINES[outcome.outcome]}: {run.model_name}, window to {outcome.window_end}"
        notification = notify_lines(run.notify_webhook_url, headline, outcome.reasons + outcome.warnings, links)
    document["notification"] = notification
    window_hours = ((document.get("settings") or {}).get("monitoring") or {}).get("window_hours") or 24
    document["pushgateway"] = push_monitoring(document, float(window_hours) * 3600)
    Path(result_path).write_text(json.dumps(document, indent=2))
    logs.event(
        "monitoring.outcome",
        f"monitoring: {outcome.outcome}; MLflow {synced or 'no served version'}; webhook {notification}; "
        f"Pushgateway {document['pushgateway']}",
        severity="WARNING" if outcome.outcome in ("alert", "retrain") else "INFO",
        outcome=outcome.outcome,
        reasons=outcome.reasons,
        warnings=outcome.warnings,
        mlflow=synced,
        notification=notification,
        pushgateway=document["pushgateway"],
    )
    champion = next((v for v in document["versions"] if v["role"] == "champion"), None)
    return version_metrics(champion) if champion else {}
