"""The monitoring run's reports: Markdown for the KFP UI (rendered as the UI renders it, see ``reports.markdown``)
and a self-contained HTML page (no script, no external asset; every value from the log or the labels escaped)."""

from __future__ import annotations

import html
from typing import Any

from gated_training.reports import code, markdown_text, number, number_or_dash, percent, table, value

HEADLINES = {
    "ok": "OK",
    "warn": "WARN",
    "alert": "ALERT",
    "retrain": "RETRAIN",
    "no_traffic": "NO TRAFFIC",
    "no_labels_yet": "NO LABELS YET",
}


def _interval(item: dict[str, Any] | None, key: str = "accuracy") -> str:
    if not item or item.get(key) is None:
        return "—"
    return f"{number_or_dash(item[key])} [{number_or_dash(item.get('low'))}, {number_or_dash(item.get('high'))}]"


def render_markdown(result: dict[str, Any]) -> str:
    lines = [
        f"## Monitoring: {HEADLINES.get(result['outcome'], markdown_text(result['outcome']))}",
        "",
        f"Model {code(result['model_name'], False)} (InferenceService {code(result['service'], False)}), window "
        f"{code(result['window_start'], False)} – {code(result['window_end'], False)}; champion "
        f"{code(result['champion'] or 'none', False)}.",
        "",
    ]
    if result["reasons"]:
        lines += ["**Why**", ""] + [f"- {markdown_text(reason)}" for reason in result["reasons"]] + [""]
    if result["warnings"] and result["outcome"] != "warn":
        lines += ["**Warnings**", ""] + [f"- {markdown_text(w)}" for w in result["warnings"]] + [""]
    rows = []
    for item in result["versions"]:
        drift = item.get("drift") or {}
        rows.append(
            [
                code(item["version"]),
                markdown_text(item["role"]),
                number(item["calls"]),
                percent(drift.get("drifted_share")) if drift else "—",
                number_or_dash(item.get("prediction_psi")),
                _interval(item.get("realized")),
                number_or_dash((item.get("realized") or {}).get("rows")),
                _interval(item.get("estimated"))
                + ("" if (item.get("estimated") or {}).get("trusted") else " (not trusted)")
                if item.get("estimated")
                else "—",
                percent(item.get("label_coverage")),
            ]
        )
    if rows:
        lines += [
            "**Served versions**",
            "",
            *table(
                [
                    "version",
                    "role",
                    "calls",
                    "drifted features",
                    "prediction PSI",
                    "realized accuracy [95%]",
                    "labelled",
                    "estimated accuracy",
                    "label coverage",
                ],
                rows,
            ),
        ]
    measured = []
    for item in result["versions"]:
        realized = item.get("realized") or {}
        if realized.get("metrics"):
            gate = realized.get("gate_metrics") or {}
            pairs = ", ".join(
                f"{markdown_text(name.replace('_', ' '))} {number_or_dash(value)}"
                + (f" (gate {number_or_dash(gate[name])})" if isinstance(gate.get(name), (int, float)) else "")
                for name, value in realized["metrics"].items()
            )
            measured.append(f"- {code(item['version'], False)}, {number(realized['rows'])} labelled calls: {pairs}")
    if measured:
        lines += ["**The gate's metrics on the labelled calls**", "", *measured, ""]
    notes = [
        f"- {code(item['version'], False)}: {markdown_text(note)}"
        for item in result["versions"]
        for note in item.get("notes") or []
    ]
    if notes:
        lines += ["**Notes**", "", *notes[:30], ""]
    findings = [
        [markdown_text(f["level"]), code(f["code"]), code(f["version"] or "—"), value(f["text"], 400)]
        for f in result["findings"]
    ]
    if findings:
        lines += ["**Findings**", "", *table(["level", "check", "version", "what"], findings)]
    comparison = result.get("comparison")
    if comparison:
        lines += [
            "**Champion and the other served version on the same labelled calls**",
            "",
            f"- {markdown_text(comparison['text'])}",
            "",
        ]
    canary = result.get("canary")
    if canary:
        lines += [
            f"**Canary {markdown_text(canary['canary'])} against {markdown_text(canary['stable'])}: "
            f"{markdown_text(str(canary['verdict']).upper())}**, {canary['healthy_windows']} of "
            f"{canary['needed_windows']} healthy windows; {markdown_text(canary['action_result'])}",
            "",
            "| criterion | result | evidence |",
            "|---|---|---|",
        ]
        lines += [
            f"| {markdown_text(e['criterion'])} | {markdown_text(e['result'])} | {markdown_text(e['text'])} |"
            for e in canary["evidence"]
        ]
        lines += ["", f"Canary and stable, from: {markdown_text(canary.get('source', ''))}", ""]
    retrain = result.get("retrain") or {}
    if retrain.get("text"):
        lines += ["**Retrain**", "", f"- {markdown_text(retrain['text'])}", ""]
    log, labels = result.get("log") or {}, result.get("labels") or {}
    lines += [
        "**What was read**",
        "",
        *table(
            ["source", "counts"],
            [
                ["prediction log", value(log.get("counts") or {}, 600)],
                ["sinks (their own counters)", value(log.get("sink") or {}, 600)],
                ["labels", value(labels.get("counts") or {}, 600)],
                ["label join", value(labels.get("join") or {}, 600)],
            ],
        ),
    ]
    problems = (log.get("problems") or []) + (labels.get("problems") or [])
    if problems:
        lines += ["**Skipped**", ""] + [f"- {markdown_text(p)}" for p in problems[:10]] + [""]
    return "\n".join(lines) + "\n"


PAGE_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#222}
h1{margin:0 0 .3em}.ok{color:#1a7f37}.warn{color:#9a6700}.alert,.retrain{color:#b3261e}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}code{background:#f3f3f3;padding:0 .2em}
""".strip()


def _e(item: Any) -> str:
    if item is None:
        return "—"
    if isinstance(item, float):
        return html.escape(number(item))
    return html.escape(str(item)[:2000])


def render_html(result: dict[str, Any]) -> str:
    outcome = result["outcome"]
    level = outcome if outcome in ("ok", "warn", "alert", "retrain") else "warn"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Monitoring</title>",
        f"<style>{PAGE_STYLE}</style></head><body>",
        f"<h1 class='{level}'>Monitoring: {_e(HEADLINES.get(outcome, outcome))}</h1>",
        f"<p>Model <code>{_e(result['model_name'])}</code>, window <code>{_e(result['window_start'])}</code> – "
        f"<code>{_e(result['window_end'])}</code>, champion <code>{_e(result['champion'])}</code></p>",
    ]
    if result["reasons"]:
        parts.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in result["reasons"]) + "</ul>")
    for item in result["versions"]:
        parts.append(
            f"<h2>Version <code>{_e(item['version'])}</code> ({_e(item['role'])}): {_e(item['calls'])} calls</h2>"
        )
        drift = item.get("drift") or {}
        if drift.get("features"):
            parts.append(
                "<table><tr><th>feature</th><th>test</th><th>statistic</th><th>p</th><th>PSI</th><th>drifted</th></tr>"
            )
            for feature in drift["features"]:
                parts.append(
                    "<tr>"
                    + "".join(
                        f"<td>{_e(feature.get(key))}</td>"
                        for key in ("feature", "test", "statistic", "p_value", "psi", "drifted")
                    )
                    + "</tr>"
                )
            parts.append("</table>")
        for name in ("realized", "estimated"):
            if item.get(name):
                parts.append(
                    f"<p>{name}: "
                    + ", ".join(f"{_e(k)} {_e(v)}" for k, v in item[name].items() if k != "rule")
                    + "</p>"
                )
        contract = item.get("contract") or {}
        failed = (contract.get("failed_critical") or []) + (contract.get("failed_warning") or [])
        if contract:
            parts.append(
                f"<p>contract: {_e(contract.get('checks'))} expectations on {_e(contract.get('rows'))} rows</p>"
            )
        if failed:
            parts.append("<ul>" + "".join(f"<li>{_e(f)}</li>" for f in failed[:20]) + "</ul>")
        if item.get("notes"):
            parts.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in item["notes"][:20]) + "</ul>")
    parts.append("<h2>Findings</h2><table><tr><th>level</th><th>check</th><th>version</th><th>what</th></tr>")
    for finding in result["findings"]:
        parts.append(
            f"<tr><td class='{_e(finding['level'])}'>{_e(finding['level'])}</td><td>{_e(finding['code'])}</td>"
            f"<td>{_e(finding['version'])}</td><td>{_e(finding['text'])}</td></tr>"
        )
    parts.append("</table>")
    retrain = result.get("retrain") or {}
    if retrain.get("text"):
        parts.append(f"<h2>Retrain</h2><p>{_e(retrain['text'])}</p>")
    canary = result.get("canary")
    if canary:
        parts.append(
            f"<h2>Canary {_e(canary['canary'])} against {_e(canary['stable'])}: {_e(str(canary['verdict']).upper())}"
            f"</h2><p>{_e(canary['healthy_windows'])} of {_e(canary['needed_windows'])} healthy windows; "
            f"{_e(canary['action_result'])}. {_e(canary.get('source', ''))}</p>"
            "<table><tr><th>criterion</th><th>result</th><th>evidence</th></tr>"
        )
        for e in canary["evidence"]:
            parts.append(f"<tr><td>{_e(e['criterion'])}</td><td>{_e(e['result'])}</td><td>{_e(e['text'])}</td></tr>")
        parts.append("</table>")
    if result.get("comparison"):
        parts.append(f"<h2>Champion and the other served version</h2><p>{_e(result['comparison'].get('text'))}</p>")
    parts.append("</body></html>")
    return "".join(parts)
