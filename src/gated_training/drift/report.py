"""The drift report as one self-contained HTML page (KFP ``HTML`` artifact, ``check-drift --report``).

Per feature: the reference and batch distributions overlaid (matplotlib, PNG embedded as
base64, so the page works offline and in the KFP UI's sandboxed viewer) and the statistics
table. Drifted features come first.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

MAX_PLOTTED_FEATURES = 60  # beyond this the page gets heavy; the table still lists every feature
REFERENCE_COLOUR, BATCH_COLOUR = "#4c72b0", "#dd8452"


def x_scale(edges: Any) -> str:
    """``symlog`` for a skewed feature whose quantile bins span orders of magnitude (fares from 0 to 512: on a linear
    axis every bin but the last is a sliver and a shift among them cannot be seen), else ``linear``."""
    import numpy as np

    edges = np.asarray(edges, dtype=float)
    if len(edges) < 3 or edges[0] < 0:
        return "linear"
    widths = np.diff(edges)
    positive = widths[widths > 0]
    if not len(positive):
        return "linear"
    return "symlog" if float(positive.max()) / max(float(np.median(positive)), 1e-12) > 20 else "linear"


def _plot(feature: dict[str, Any]) -> str:
    """A PNG (base64) of the reference and batch shares of one feature."""
    import matplotlib

    matplotlib.use("Agg")  # no display in a pod
    import matplotlib.pyplot as plt
    import numpy as np

    distribution = feature["distribution"]
    reference, batch = np.asarray(distribution["reference"]), np.asarray(distribution["batch"])
    figure, axis = plt.subplots(figsize=(5.0, 2.4), dpi=80)
    try:
        if feature["kind"] == "numeric" and len(distribution.get("edges", [])) > 1:
            # Quantile bins have unequal widths: plot densities on the real axis.
            edges = np.asarray(distribution["edges"])
            widths = np.clip(np.diff(edges), 1e-12, None)
            scale = x_scale(edges)
            # On a log axis each quantile bin is drawn about as wide as the others: its share is what to compare.
            per = np.ones_like(widths) if scale == "symlog" else widths
            axis.stairs(reference / per, edges, fill=True, alpha=0.45, color=REFERENCE_COLOUR, label="reference")
            inside = np.asarray(distribution.get("batch_in_range", batch))
            axis.stairs(inside / per, edges, fill=True, alpha=0.45, color=BATCH_COLOUR, label="batch")
            # Mass beyond the reference range, drawn beyond it (a bar one mean bin wide on each side),
            # so values far outside show as such instead of vanishing into the outermost bin.
            width = float(np.mean(widths))
            below, above = float(distribution.get("below", 0.0)), float(distribution.get("above", 0.0))
            for share, left in ((below, edges[0] - width), (above, edges[-1])):
                if share > 0:
                    axis.bar(
                        left,
                        share / (1.0 if scale == "symlog" else width),
                        width=width,
                        align="edge",
                        color=BATCH_COLOUR,
                        alpha=0.9,
                        hatch="//",
                        edgecolor="black",
                        linewidth=0.5,
                    )
            if below > 0 or above > 0:
                axis.axvspan(edges[0], edges[-1], color="grey", alpha=0.06, lw=0)
                axis.text(
                    0.01,
                    0.97,
                    f"outside the reference range: {below:.1%} below, {above:.1%} above",
                    transform=axis.transAxes,
                    fontsize=7,
                    va="top",
                )
            if scale == "symlog":
                positive = widths[widths > 1e-12]
                axis.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 1.0)
                axis.set_ylabel("share per bin (log x)")
            else:
                axis.set_ylabel("density")
        else:
            positions = np.arange(len(distribution["labels"]))
            axis.bar(positions - 0.2, reference, width=0.4, color=REFERENCE_COLOUR, label="reference")
            axis.bar(positions + 0.2, batch, width=0.4, color=BATCH_COLOUR, label="batch")
            axis.set_xticks(
                positions, [str(label)[:14] for label in distribution["labels"]], rotation=30, ha="right", fontsize=7
            )
            axis.set_ylabel("share")
        axis.set_title(f"{feature['feature']} — PSI {_number(feature['psi'])}", fontsize=9)
        axis.legend(fontsize=7)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    return "∞" if math.isinf(value) else f"{value:.3g}"


def _shifts(feature: dict[str, Any]) -> str:
    parts = []
    for shift in feature["top_shifts"]:
        where = shift.get("bin") or shift.get("category")
        if "unseen_levels" in shift:
            parts.append(f"new levels: {', '.join(map(str, shift['unseen_levels']))}")
        else:
            parts.append(f"{where}: {shift['reference_share']:.1%} → {shift['batch_share']:.1%}")
    return "; ".join(parts)


def render_drift_html(outcome: dict[str, Any]) -> str:
    """The page for a drift gate outcome (``drift_gate.DriftGateOutcome.to_json()``)."""
    e = html.escape
    verdict = {
        "train": (
            "DRIFTED — training goes on"
            if outcome["drifted"]
            else ("no drift" if outcome.get("report") else "not compared: " + "; ".join(outcome.get("notes") or []))
        ),
        "skip": "SKIPPED",
        "block": "BLOCKED",
    }[outcome["decision"]]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Drift report</title><style>"
        "body{font-family:sans-serif;margin:1.5em;max-width:1100px}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}.drifted{background:#fde2e1}"
        ".grid{display:flex;flex-wrap:wrap;gap:8px}</style></head><body>",
        f"<h1>Drift gate: {e(verdict)}</h1>",
        f"<p>drift_action <b>{e(outcome['drift_action'])}</b>; champion {e(str(outcome['champion'] or 'none'))}; "
        f"batch SHA-256 <code>{e(outcome['data_sha256'])}</code></p>",
    ]
    for title, items in (("Reasons", outcome["reasons"]), ("Notes", outcome["notes"])):
        if items:
            parts.append(f"<h3>{title}</h3><ul>" + "".join(f"<li>{e(item)}</li>" for item in items) + "</ul>")
    report = outcome.get("report")
    if report:
        thresholds = report["thresholds"]
        parts.append(
            f"<p>{report['rows_batch']} batch rows against a reference of {report['rows_reference']} rows. "
            f"{report['drifted_share']:.0%} of features drifted (dataset threshold "
            f"{thresholds['drift_max_drifted_share']:.0%}); max PSI {_number(report['max_psi'])}. A feature drifts "
            f"when "
            f"PSI &gt; {thresholds['drift_psi_threshold']}, or when p &lt; {thresholds['drift_alpha']} and the effect "
            f"size "
            f"(KS statistic or Cramér's V) reaches {thresholds['drift_min_ks_statistic']} / "
            f"{thresholds['drift_min_cramers_v']}. "
            "KS runs against the reference's stored sample of 1,000 values; PSI on the reference's decile bins.</p>"
        )
        features = sorted(report["features"], key=lambda f: (not f["drifted"], -_finite(f["psi"])))
        rows = "".join(
            f"<tr class='{'drifted' if f['drifted'] else ''}'><td>{e(f['feature'])}</td><td>{f['kind']}</td>"
            f"<td>{f['test']}</td><td>{_number(f['statistic'])}</td><td>{_number(f['p_value'])}</td>"
            f"<td>{_number(f['effect'])}</td><td>{_number(f['psi'])}</td>"
            f"<td>{float(f.get('out_of_range_share') or 0.0):.1%}</td><td>{'DRIFTED' if f['drifted'] else 'ok'}</td>"
            f"<td>{e(_shifts(f))}</td></tr>"
            for f in features
        )
        parts.append(
            "<table><tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th><th>p-value</th>"
            f"<th>effect</th><th>PSI</th><th>outside the reference (range or categories)</th><th>verdict</th>"
            f"<th>top shifts</th></tr>{rows}</table>"
        )
        plotted = [f for f in features if f.get("distribution")][:MAX_PLOTTED_FEATURES]
        parts.append(
            "<h2>Distributions (reference vs batch)</h2><div class='grid'>"
            + "".join(f"<img alt='{e(f['feature'])}' src='data:image/png;base64,{_plot(f)}'>" for f in plotted)
            + "</div>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _finite(value: Any) -> float:
    """Sort key: a feature with no PSI (missing from the batch) sorts first among the drifted."""
    return 1e9 if value is None else float(value)
