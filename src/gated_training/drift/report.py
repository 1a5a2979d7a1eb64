"""The drift report as one self-contained HTML page (KFP ``HTML`` artifact, ``check-drift --report``).

Per feature: the reference and batch distributions overlaid (an SVG drawn here, embedded as a base64
image, so the page works offline and in the KFP UI's sandboxed viewer, and no script in it would run) and
the statistics table. Drifted features come first.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
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


WIDTH, HEIGHT = 400, 192  # pixels: the size matplotlib's 5 × 2.4 in at 80 dpi gave, so the page's grid is unchanged
LEFT, RIGHT, TOP, BOTTOM = 52, 392, 24, 150  # the plot area


def _symlog(linthresh: float) -> Any:
    """matplotlib's ``symlog`` transform: linear within ±``linthresh``, one decade per unit beyond."""

    def transform(value: float) -> float:
        if abs(value) <= linthresh:
            return value / linthresh
        return math.copysign(1.0 + math.log10(abs(value) / linthresh), value)

    return transform


def _finite_values(values: Any) -> list[float]:
    """Shares as drawn: a missing, negative or non-finite share is drawn as none."""
    return [
        float(v) if isinstance(v, numbers.Real) and math.isfinite(float(v)) and float(v) > 0 else 0.0 for v in values
    ]


def _plot(feature: dict[str, Any]) -> str:
    """An SVG (base64, for an ``<img>``: a browser runs no script in an image) of the reference and batch shares of
    one feature, drawn by hand: 30 matplotlib figures cost check-drift 3 s of its 5 s fixed cost. Every text in it
    (the feature's name, category labels) is escaped; numbers are formatted, never copied."""
    import numpy as np

    e = html.escape
    distribution = feature["distribution"]
    reference, batch = _finite_values(distribution["reference"]), _finite_values(distribution["batch"])
    shapes: list[str] = []  # (in drawing order)
    texts: list[str] = []
    numeric = feature["kind"] == "numeric" and len(distribution.get("edges", [])) > 1
    if numeric:
        edges = np.asarray(distribution["edges"], dtype=float)
        widths = np.clip(np.diff(edges), 1e-12, None)
        scale = x_scale(edges)
        # Quantile bins have unequal widths: densities on the real axis; on a log axis each quantile bin is drawn
        # about as wide as the others, so its share is what to compare.
        per = np.ones_like(widths) if scale == "symlog" else widths
        inside = _finite_values(distribution.get("batch_in_range", batch))
        width = float(np.mean(widths))
        below, above = _finite_values([distribution.get("below", 0.0), distribution.get("above", 0.0)])
        # Mass beyond the reference range, drawn beyond it (a bar one mean bin wide on each side), so values far
        # outside show as such instead of vanishing into the outermost bin.
        outside = [(share, left) for share, left in ((below, edges[0] - width), (above, edges[-1])) if share > 0]
        positive = widths[widths > 1e-12]
        transform = _symlog(float(positive.min()) if len(positive) else 1.0) if scale == "symlog" else float
        low = min([float(edges[0])] + [left for _, left in outside])
        high = max([float(edges[-1])] + [left + width for _, left in outside])
        t_low, t_high = transform(low), transform(high)
        span = (t_high - t_low) or 1.0

        def x(value: float) -> float:
            return LEFT + (transform(value) - t_low) / span * (RIGHT - LEFT)

        bars = [
            (edges[i], edges[i + 1], values[i] / per[i], colour, 0.45, False)
            for values, colour in ((reference, REFERENCE_COLOUR), (inside, BATCH_COLOUR))
            for i in range(min(len(values), len(widths)))
        ] + [
            (left, left + width, share / (1.0 if scale == "symlog" else width), BATCH_COLOUR, 0.9, True)
            for share, left in outside
        ]
        y_label = "share per bin (log x)" if scale == "symlog" else "density"
        ticks = sorted({float(edges[0]), float(edges[len(edges) // 2]), float(edges[-1])})
        tick_texts = [(x(value), _number(value), 0) for value in ticks]
        if outside:
            shapes.append(
                f"<rect x='{x(edges[0]):.1f}' y='{TOP}' width='{x(edges[-1]) - x(edges[0]):.1f}' "
                f"height='{BOTTOM - TOP}' fill='grey' fill-opacity='0.06'/>"
            )
            texts.append(
                f"<text x='{LEFT + 3}' y='{TOP + 9}' font-size='7'>outside the reference range: "
                f"{below:.1%} below, {above:.1%} above</text>"
            )
    else:
        labels = list(distribution["labels"])
        count = max(len(labels), 1)
        slot = (RIGHT - LEFT) / count

        def x(value: float) -> float:
            return LEFT + (value + 0.5) * slot

        bars = [
            (i + offset - 0.2, i + offset + 0.2, values[i], colour, 1.0, False)
            for values, colour, offset in ((reference, REFERENCE_COLOUR, -0.2), (batch, BATCH_COLOUR, 0.2))
            for i in range(min(len(values), len(labels)))
        ]
        y_label = "share"
        tick_texts = [(x(i), e(str(label)[:14]), 30) for i, label in enumerate(labels)]
    top = max([height for _, _, height, *_ in bars] + [1e-12])
    for left, right, height, colour, opacity, hatched in bars:
        y = BOTTOM - height / top * (BOTTOM - TOP - 12)
        box = (
            f"<rect x='{x(left):.1f}' y='{y:.1f}' width='{max(x(right) - x(left), 0.5):.1f}' height='{BOTTOM - y:.1f}'"
        )
        outline = " stroke='black' stroke-width='0.5'" if hatched else ""  # beyond the reference range
        shapes.append(f"{box} fill='{colour}' fill-opacity='{opacity}'{outline}/>")
        if hatched:
            shapes.append(f"{box} fill='url(#hatch)'/>")
    axis_texts = [
        f"<text x='{WIDTH / 2:.0f}' y='14' font-size='9' text-anchor='middle'>"
        f"{e(str(feature['feature'])[:60])} — PSI {e(_number(feature['psi']))}</text>",
        f"<text transform='translate(12 {(TOP + BOTTOM) / 2:.0f}) rotate(-90)' font-size='8' "
        f"text-anchor='middle'>{e(y_label)}</text>",
        f"<text x='{LEFT - 4}' y='{BOTTOM + 3}' font-size='7' text-anchor='end'>0</text>",
        f"<text x='{LEFT - 4}' y='{TOP + 15}' font-size='7' text-anchor='end'>{e(_number(top))}</text>",
        f"<line x1='{LEFT}' y1='{BOTTOM}' x2='{RIGHT}' y2='{BOTTOM}' stroke='black' stroke-width='0.8'/>",
        f"<line x1='{LEFT}' y1='{TOP}' x2='{LEFT}' y2='{BOTTOM}' stroke='black' stroke-width='0.8'/>",
    ]
    for position, text, angle in tick_texts:
        anchor = "end" if angle else "middle"
        axis_texts.append(
            f"<line x1='{position:.1f}' y1='{BOTTOM}' x2='{position:.1f}' y2='{BOTTOM + 3}' stroke='black'/>"
            f"<text transform='translate({position:.1f} {BOTTOM + 11}) rotate(-{angle})' font-size='7' "
            f"text-anchor='{anchor}'>{text}</text>"
        )
    legend = f"<rect x='{RIGHT - 74}' y='{TOP}' width='72' height='24' fill='white' fill-opacity='0.8'/>" + "".join(
        f"<rect x='{RIGHT - 70}' y='{TOP + 2 + 11 * i}' width='9' height='7' fill='{colour}' fill-opacity='0.6'/>"
        f"<text x='{RIGHT - 58}' y='{TOP + 9 + 11 * i}' font-size='7'>{name}</text>"
        for i, (name, colour) in enumerate((("reference", REFERENCE_COLOUR), ("batch", BATCH_COLOUR)))
    )
    svg = (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}' font-family='sans-serif'>"
        "<defs><pattern id='hatch' width='4' height='4' patternUnits='userSpaceOnUse'>"
        "<path d='M0,4 L4,0' stroke='black' stroke-width='0.5'/></pattern></defs>"
        f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>"
        + "".join(shapes)
        + "".join(texts)
        + "".join(axis_texts)
        + legend
        + "</svg>"
    )
    return base64.b64encode(svg.encode()).decode()


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
            + "".join(f"<img alt='{e(f['feature'])}' src='data:image/svg+xml;base64,{_plot(f)}'>" for f in plotted)
            + "</div>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _finite(value: Any) -> float:
    """Sort key: a feature with no PSI (missing from the batch) sorts first among the drifted."""
    return 1e9 if value is None else float(value)
