"""The run summary: one JSON shape for deployed, blocked and failed runs, plus its Markdown.

Terminal pipeline steps write it as an artifact (shown in the KFP UI); the CLI copies it to
``summary.json`` in the workdir, or builds a ``failed`` one when a step raised.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from gated_training import logs
from gated_training.data import json_safe
from gated_training.decisions import DriftGate, ModelGate, Outcome
from gated_training.errors import ConfigError
from gated_training.reports.escaping import markdown_text

DEPLOYED, BLOCKED, SKIPPED, FAILED = Outcome.DEPLOYED, Outcome.BLOCKED, Outcome.SKIPPED, Outcome.FAILED
CONTINUED = Outcome.CONTINUED


def data_checks(validation: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "gate": "data",
            "name": check["rule"] + (f"[{check['column']}]" if check.get("column") else ""),
            "severity": check["severity"],
            "value": check["observed"],
            "threshold": check.get("expected") or None,
            "passed": check["passed"],
        }
        for check in validation["checks"]
    ] + [
        {
            "gate": "data",
            "name": "min_quality_score",
            "severity": "critical",
            "value": validation["quality_score"],
            "threshold": validation["min_quality_score"],
            "passed": validation["quality_score"] >= validation["min_quality_score"],
        }
    ]


def drift_checks(drift: dict[str, Any]) -> list[dict[str, Any]]:
    report = drift.get("report")
    if not report:
        return []
    from gated_training.reports.markdown import number_or_dash as num

    severity = "critical" if drift["drift_action"] != "warn" else "warning"
    thresholds = report["thresholds"]
    return [
        {
            "gate": "drift",
            "name": f"drift[{f['feature']}] {_judged_on(f, thresholds)[0]}",
            "severity": severity,
            "value": _judged_on(f, thresholds)[1],
            "threshold": _judged_on(f, thresholds)[2],
            "comparison": _judged_on(f, thresholds)[3],
            "passed": not f["drifted"],
            "detail": (
                "missing from the batch"
                if f["test"] == "missing"
                else f"{f['test']} statistic {num(f['statistic'])}, p={num(f['p_value'])}, effect {num(f['effect'])}"
            ),
        }
        for f in report["features"]
    ]


EFFECT_NAMES = {"ks": ("KS statistic", "drift_min_ks_statistic"), "chi2": ("Cramér's V", "drift_min_cramers_v")}


def _judged_on(feature: dict[str, Any], thresholds: dict[str, Any]) -> tuple[str, Any, Any, str]:
    """(what a feature was judged on, its value, the threshold, the comparison): the statistic that drifted it, not
    always the PSI (a feature can drift on a significant test with a material effect while its PSI is small)."""
    psi, limit = feature.get("psi"), thresholds.get("drift_psi_threshold")
    if feature.get("test") == "missing":
        return "missing", "missing from the batch", None, ""
    effect_name, effect_setting = EFFECT_NAMES.get(str(feature.get("test")), ("effect", ""))
    significant = (feature.get("p_value") is not None and feature["p_value"] < thresholds.get("drift_alpha", 0)) and (
        feature.get("effect") is not None and feature["effect"] >= thresholds.get(effect_setting, float("inf"))
    )
    if feature.get("drifted") and not (psi is not None and limit is not None and psi > limit) and significant:
        return f"{effect_name} (p={feature['p_value']:.2g})", feature["effect"], thresholds.get(effect_setting), "<"
    return "PSI", psi, limit, "<="


def drift_digest(drift: dict[str, Any]) -> dict[str, Any]:
    report = drift.get("report") or {}
    return {
        "decision": drift["decision"],
        "drift_action": drift["drift_action"],
        "drifted": drift["drifted"],
        "deploy_allowed": drift["deploy_allowed"],
        "champion": drift["champion"],
        "notes": drift["notes"],
        "drifted_share": report.get("drifted_share"),
        "max_psi": report.get("max_psi"),
        "drifted_features": [f["feature"] for f in report.get("features", []) if f["drifted"]],
        "missing_features": list(report.get("missing_features") or []),
        "label_shift": [shift for shift in (drift.get("label_shift") or []) if shift.get("shifted")][:5],
    }


def drift_line(digest: dict[str, Any]) -> str | None:
    """One line on how much the batch drifted, when it was compared at all."""
    from gated_training.reports.markdown import number_or_dash, percent

    if digest["drifted_share"] is None:
        return None
    drifted = f" ({', '.join(digest['drifted_features'])})" if digest["drifted_features"] else ""
    missing = digest.get("missing_features") or []
    line = (
        f"Drift vs champion {digest['champion']}: {percent(digest['drifted_share'])} of features drifted, "
        f"max PSI {number_or_dash(digest['max_psi'])}" + (" over the features present" if missing else "") + drifted
    )
    if missing:
        line += f"; missing from the batch: {', '.join(missing)}"
    return line


def model_checks(gate: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "gate": "model",
            "name": c["name"],
            "severity": c.get("severity", "critical"),
            "value": c["value"],
            "threshold": c["threshold"],
            "comparison": c["comparison"],
            "passed": c["passed"],
            "detail": c["detail"],
        }
        for c in gate["checks"]
    ]


def build_summary(
    *,
    validation: dict[str, Any] | None,
    drift: dict[str, Any] | None = None,
    gate: dict[str, Any] | None = None,
    deployment: dict[str, Any] | None = None,
    serving: dict[str, Any] | None = None,
    kfp_run_id: str = "",
    error: str | None = None,
    failed_step: str | None = None,
    continuing_after: str | None = None,
) -> dict[str, Any]:
    """Assemble the summary; the outcome follows from which pieces exist and what they say.
    ``continuing_after``: the gate step writing it passed and the run goes on (outcome ``continued``)."""
    reasons: list[str] = []
    blocked_by = skip_reason = None
    warnings: list[str] = list((drift or {}).get("warnings") or [])
    if drift is not None and drift["drifted"] and drift["decision"] == DriftGate.TRAIN:
        warnings += [f"drift ({drift['drift_action']}): {reason}" for reason in drift["reasons"]]
    warnings += [f"model gate: {warning}" for warning in (gate or {}).get("warnings") or []]
    if error is not None:
        outcome = FAILED
        reasons.append(f"{failed_step or 'a step'} failed: {error}")
    elif continuing_after is not None:
        outcome = CONTINUED
    elif validation is not None and not validation["passed"]:
        outcome, blocked_by = BLOCKED, "data"
        reasons = list(validation["blocking_reasons"])
    elif drift is not None and drift["decision"] == DriftGate.SKIP:
        outcome, skip_reason = SKIPPED, drift["reason"]
        reasons = list(drift["reasons"])
    elif drift is not None and drift["decision"] == DriftGate.BLOCK:
        outcome, blocked_by = BLOCKED, drift.get("reason") or DriftGate.DRIFT  # drift or schema
        reasons = list(drift["reasons"])
    elif gate is not None and gate["decision"] != ModelGate.DEPLOY:
        failed = {c["name"] for c in gate["checks"] if not c["passed"] and c.get("severity", "critical") == "critical"}
        outcome, blocked_by = BLOCKED, DriftGate.DRIFT if failed == {ModelGate.DRIFT_HOLD_CHECK} else "model"
        reasons = list(gate["reasons"])
    elif deployment is not None and not deployment["promoted"]:
        outcome, blocked_by = BLOCKED, "champion_changed"
        reasons = [deployment["blocked_reason"]]
    elif serving is not None and not serving["served"]:
        # The version could not serve: no traffic reached it, and the champion went back.
        outcome, blocked_by = BLOCKED, "serving"
        restored = serving.get("champion_restored_to")
        reasons = [
            f"InferenceService {serving['namespace']}/{serving['service']} ({serving['mode']}): version "
            f"{serving['version']} did not become Ready ({serving['why']}); {serving['action'].replace('_', ' ')}, "
            + (f"champion restored to {restored}" if restored else "no earlier champion to restore")
        ]
    elif deployment is not None:
        outcome = DEPLOYED
    else:
        outcome = FAILED
        reasons.append("the run ended without a validation, gate or deployment record")

    champion = (gate or {}).get("champion")
    if champion is None and drift is not None and drift.get("champion"):
        # Stopped at the drift gate (skipped, or blocked): it compared against this champion.
        champion = {"version": drift["champion"], "metrics": None}
    deployed = None
    if deployment is not None and deployment["promoted"] and not (serving or {}).get("champion_restored_to"):
        deployed = {
            "version": deployment["version"],
            "uri": deployment["version_uri"],
            "mlflow_model_version": deployment["mlflow_model_version"],
            "mlflow_mirror": deployment["mlflow_mirror"],
        }
    return {
        "outcome": outcome,
        "blocked_by": blocked_by,
        "skip_reason": skip_reason,
        "reasons": reasons,
        "warnings": warnings,
        "checks": (data_checks(validation) if validation else [])
        + (drift_checks(drift) if drift else [])
        + (model_checks(gate) if gate else []),
        "drift": drift_digest(drift) if drift else None,
        "candidate_metrics": (gate or {}).get("candidate", {}).get("metrics"),
        "champion": {"version": champion["version"], "metrics": champion["metrics"]} if champion else None,
        "deployed": deployed,
        "serving": serving,
        "mlflow_run_id": (gate or {}).get("candidate", {}).get("mlflow_run_id"),
        "data_sha256": (validation or {}).get("data_sha256"),
        "quality_score": (validation or {}).get("quality_score"),
        "kfp_run_id": kfp_run_id or None,
        **({"passed_gate": continuing_after, "continues_at": _next_step(continuing_after)} if continuing_after else {}),
        "notification": "not sent",  # record_and_notify and the runners replace it with what happened
    }


def _next_step(step: str) -> str | None:
    from gated_training.step_table import STEPS

    return next((s.id for s in STEPS if s.after == step), None)


def summary_markdown(summary: dict[str, Any]) -> str:
    """The run's outcome for the KFP UI (report_text: code spans, tables, 4 significant digits, one
    paragraph per fact). Text from the data (reasons, names, values) is escaped."""
    from gated_training.reports.markdown import code, number, table, value, verdict
    from gated_training.step_table import STEP

    md = markdown_text
    title = {
        DEPLOYED: "Deployed",
        BLOCKED: f"Blocked by the {md(summary['blocked_by'])} gate",
        SKIPPED: f"Skipped: {md(summary.get('skip_reason'))}",
        FAILED: "Failed",
    }
    if summary["outcome"] == CONTINUED:
        gate, following = STEP[summary["passed_gate"]], STEP[summary["continues_at"]]
        title[CONTINUED] = f"Passed: {md(gate.display_name)}. The run continues with {md(following.display_name)}"
    lines = [f"# {title[summary['outcome']]}", ""]
    if summary.get("kfp_run_id"):
        lines += [f"Run {code(summary['kfp_run_id'], in_table=False)}", ""]
    if summary["reasons"]:
        lines += ["## Reasons", ""] + [f"- {md(reason)}" for reason in summary["reasons"]] + [""]
    if summary.get("warnings"):
        lines += ["## Warnings", ""] + [f"- {md(warning)}" for warning in summary["warnings"]] + [""]
    drift = summary.get("drift")
    if drift and drift_line(drift):
        lines += [md(drift_line(drift)), ""]
    elif drift:
        lines += [f"- Drift: {md(note)}" for note in drift["notes"]] + [""]
    if summary["deployed"]:
        deployed = summary["deployed"]
        lines += [
            f"New champion {code(deployed['version'], in_table=False)} at {md(deployed['uri'])} "
            f"(MLflow mirror: {md(deployed['mlflow_mirror'])})",
            "",
        ]
    serving = summary.get("serving")
    if serving:
        share = (
            f"a canary with {serving['canary_percent']} % of the traffic (stable "
            f"{code(serving['stable_version'], in_table=False)})"
            if serving["canary_percent"] and serving.get("stable_version")
            else "all of the traffic"
        )
        state = f"ready, serving {share}" if serving["served"] else f"not ready ({md(serving['why'])}), no traffic"
        lines += [
            f"Serving: InferenceService {code(serving['namespace'] + '/' + serving['service'], in_table=False)} "
            f"({md(serving['mode'])} mode), version {code(serving['version'], in_table=False)} {state}",
            "",
        ]
    candidate, champion = summary["candidate_metrics"], summary["champion"]
    if candidate:
        champion_metrics = (champion or {}).get("metrics") or {}
        headers = ["metric", "candidate"] + ([f"champion {code(champion['version'])}"] if champion else [])
        rows = [
            [code(name), number(score)] + ([value(champion_metrics.get(name))] if champion else [])
            for name, score in candidate.items()
        ]
        lines += ["## Metrics on the test split", ""] + table(headers, rows)
    elif champion:
        lines += [f"Champion {code(champion['version'], in_table=False)}", ""]
    checks = summary["checks"]
    failed = [c for c in checks if not c["passed"]]
    shown = failed if summary["outcome"] in (BLOCKED, FAILED) and failed else checks
    # What failed first, then the model gate's checks, the drift gate's, the data gate's: the verdict's evidence
    # leads, the long list of data checks that passed comes last.
    order = {"model": 0, "drift": 1, "data": 2}
    shown = sorted(shown, key=lambda c: (c["passed"], order.get(c["gate"], 3)))
    # The data gate's passed checks (one per expectation and column: most of a long list) are counted, not listed:
    # the summary JSON and the data gate's page hold every one of them.
    collapsed = [c for c in shown if c["gate"] == "data" and c["passed"]] if shown is not failed else []
    if len(collapsed) > 3:
        shown = [c for c in shown if c not in collapsed]
    else:
        collapsed = []
    if shown:
        heading = "Checks that failed" if shown is failed else "Checks"
        rows = [
            [
                md(c["gate"]),
                code(c["name"]),
                md(c["severity"]),
                value(c["value"]),
                (f"{md(c['comparison'])} " if c.get("comparison") else "") + value(c["threshold"]),
                verdict(c["passed"], c["severity"]),
            ]
            for c in shown
        ]
        lines += [f"## {heading}", ""] + table(["gate", "check", "severity", "value", "threshold", "verdict"], rows)
    if collapsed:
        critical = sum(c["severity"] == "critical" for c in collapsed)
        lines += [
            f"The data gate's other {len(collapsed)} checks passed ({critical} critical, {len(collapsed) - critical} "
            "warning); each is listed in `run_summary` and on the data gate's page.",
            "",
        ]
    if summary.get("data_sha256"):
        lines += [f"Data SHA-256 {code(summary['data_sha256'], in_table=False)}", ""]
    if summary["mlflow_run_id"]:
        lines += [f"MLflow run {code(summary['mlflow_run_id'], in_table=False)}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_summary(summary: dict[str, Any], summary_json_out: str, markdown_out: str) -> None:
    Path(summary_json_out).write_text(json.dumps(summary, indent=2))
    Path(markdown_out).write_text(summary_markdown(summary))


@dataclass(frozen=True, kw_only=True)
class RunRecords:
    """The JSON records of the steps that ran, by path; None where the run stopped before that step."""

    validation_report: str  # always there: every branch follows the data gate
    drift_report: str | None = None
    gate_decision: str | None = None
    deployment: str | None = None
    serving: str | None = None

    def load(self) -> dict[str, dict[str, Any] | None]:
        def read(path: str | None) -> dict[str, Any] | None:
            return json.loads(Path(path).read_text()) if path else None

        return {
            "validation": read(self.validation_report),
            "drift": read(self.drift_report),
            "gate": read(self.gate_decision),
            "deployment": read(self.deployment),
            "serving": read(self.serving),
        }


class StepIdentity(Protocol):
    """What a gate step's record needs of its step (``kubeflow.records.recorded_step``)."""

    id: str
    run_id: str
    retrain_ticket: str
    model_name: str


def record_gate(
    step: StepIdentity,
    *,
    stopped: bool,
    records: RunRecords,
    summary_json_out: str,
    markdown_out: str,
    webhook_url: str = "",
    links: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What a gate step leaves in its ``run_summary`` and Markdown outputs: the run's summary when the run stops
    at it (blocked and skipped runs notify), else a ``continued`` summary of what it passed."""
    return record_and_notify(
        records=records,
        kfp_run_id=step.run_id,
        summary_json_out=summary_json_out,
        markdown_out=markdown_out,
        webhook_url=webhook_url,
        links=links,
        continuing_after=None if stopped else step.id,
        retrain_ticket=step.retrain_ticket,
        model_name=step.model_name,
    )


def record_and_notify(
    *,
    records: RunRecords,
    kfp_run_id: str,
    summary_json_out: str,
    markdown_out: str,
    webhook_url: str = "",
    links: dict[str, str] | None = None,
    continuing_after: str | None = None,
    retrain_ticket: str = "",
    model_name: str = "",
) -> dict[str, Any]:
    """Build and write the summary from the JSON records of the steps that ran, then post it to the
    webhook when the outcome calls for it (blocked, skipped, failed); a run the monitoring pipeline started
    (``retrain_ticket``) also writes how it ended there.

    Args:
        records: the records of the steps that ran.
        kfp_run_id: recorded and shown in the notification.
        summary_json_out, markdown_out: the ``run_summary`` JSON and the Markdown summary.
        webhook_url: the webhook, or empty for ``GATED_TRAINING_WEBHOOK_URL``.
        links: named links to put in the notification (report artifacts).
        continuing_after: the gate step writing it, when the run goes on past it (a ``continued``
            summary, never posted).

    Returns:
        The summary, with ``notification`` saying what the webhook got.
    """
    from gated_training.reports.notify import notify_outcome

    loaded = records.load()
    summary = build_summary(
        validation=loaded["validation"],
        drift=loaded["drift"],
        gate=loaded["gate"],
        deployment=loaded["deployment"],
        serving=loaded["serving"],
        kfp_run_id=kfp_run_id,
        continuing_after=continuing_after,
    )
    summary["notification"] = notify_outcome(webhook_url, summary, links)
    if model_name and summary["outcome"] != "continued":
        from gated_training.reports.push import push_training

        summary["pushgateway"] = push_training(model_name, summary)
    write_summary(summary, summary_json_out, markdown_out)
    logs.event(
        "run.outcome" if summary["outcome"] != "continued" else "gate.passed",
        f"[gated-training] outcome {summary['outcome']}"
        + (f" after {continuing_after}" if continuing_after else "")
        + (f": {'; '.join(str(r) for r in summary.get('reasons', [])[:3])}" if summary.get("reasons") else ""),
        severity="WARNING" if summary["outcome"] in ("blocked", "failed") else "INFO",
        outcome=summary["outcome"],
        blocked_by=summary.get("blocked_by"),
        reasons=summary.get("reasons", []),
        notification=summary.get("notification"),
        pushgateway=summary.get("pushgateway"),
    )
    if retrain_ticket and summary["outcome"] != "continued":
        close_ticket(retrain_ticket, summary)
    return summary


TICKET_OUTCOME_FILE = "outcome.json"
_TICKET = re.compile(r".*/retrain/\d{8}T\d{6}Z-[0-9a-f]{8}")


def check_ticket(ticket: str) -> str:
    """A retrain ticket is a folder the monitoring pipeline made (``…/retrain/<time>-<id>``), or empty."""
    if ticket and not _TICKET.fullmatch(ticket.rstrip("/")):
        raise ConfigError(f"parameter retrain_ticket={ticket!r}: not a ticket of the monitoring pipeline")
    return ticket.rstrip("/")


def close_ticket(ticket: str, summary: dict[str, Any]) -> None:
    """Write how the retrain ended beside its ticket (once: a second writer finds it there and leaves it)."""
    from gated_training.data import storage
    from gated_training.errors import RegistryError

    document = {
        key: summary.get(key)
        for key in ("outcome", "blocked_by", "skip_reason", "reasons", "kfp_run_id", "deployed", "failed_step")
    }
    document["ended"] = datetime.now(timezone.utc).isoformat()
    try:
        storage.write_bytes(
            storage.join_uri(check_ticket(ticket), TICKET_OUTCOME_FILE),
            json.dumps(json_safe(document), indent=2).encode(),
            create_only=True,
        )
    except RegistryError as exc:
        logs.event("ticket.not_written", f"retrain ticket {ticket}: outcome not written: {exc}", severity="WARNING")
