"""Step 1, the data gate: validate the incoming batch with the GX suite.

Built-in checks (target present, not null, two classes or more, no all-null column, no
infinities) always run as critical: a lax suite must not let training crash later.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gated_training.data import json_safe, load_table, write_parquet
from gated_training.suite import build_gx_suite, read_suite_document, resolve_suite_uri

MAX_LISTED_VALUES = 10


@dataclass(frozen=True)
class CheckResult:
    rule: str  # GX expectation type, or "builtin:<name>"
    column: str | None
    severity: str
    passed: bool
    observed: Any
    expected: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f" on column {self.column!r}" if self.column else ""
        return f"{self.severity} rule {self.rule}{where} failed: observed {self.observed}"


@dataclass(frozen=True)
class ValidationOutcome:
    passed: bool
    quality_score: float
    min_quality_score: float
    data_uri: str
    suite_uri: str
    data_sha256: str
    row_count: int
    column_count: int
    blocking_reasons: list[str]
    warnings: list[str]
    checks: list[CheckResult]

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))  # type: ignore[return-value]


def builtin_checks(frame: pd.DataFrame, target: str) -> list[CheckResult]:
    """Checks no suite can switch off, because training cannot proceed without them."""
    checks = [CheckResult("builtin:target_present", target, "critical", target in frame.columns,
                          "present" if target in frame.columns else f"missing; columns are {list(frame.columns)}")]
    if target in frame.columns:
        null_targets = int(frame[target].isna().sum())
        checks.append(CheckResult("builtin:target_not_null", target, "critical", null_targets == 0,
                                  f"{null_targets} null value(s)"))
        classes = frame[target].dropna().unique()
        checks.append(CheckResult("builtin:target_has_two_classes", target, "critical", len(classes) >= 2,
                                  f"{len(classes)} class(es): {[json_safe(c) for c in classes[:MAX_LISTED_VALUES]]}",
                                  {"min_classes": 2}))
    all_null = [str(c) for c in frame.columns if frame[c].isna().all()]
    checks.append(CheckResult("builtin:no_all_null_columns", ", ".join(all_null) or None, "critical",
                              not all_null, f"all-null columns: {all_null}" if all_null else "none"))
    # One value in every row of a feature is a broken feed (an upstream default), never a signal.
    constant = [str(c) for c in frame.columns if c != target and str(c) not in all_null and len(frame) > 1
                and frame[c].nunique(dropna=False) == 1]
    checks.append(CheckResult("builtin:no_constant_columns", ", ".join(constant) or None, "critical",
                              not constant, f"columns with one value in every row: {constant}" if constant else "none"))
    numeric = frame.select_dtypes(include="number")
    infinite = {str(c): int(np.isinf(numeric[c].to_numpy(dtype=float, na_value=np.nan)).sum())
                for c in numeric.columns}
    infinite = {c: n for c, n in infinite.items() if n}
    checks.append(CheckResult("builtin:no_infinite_values", ", ".join(infinite) or None, "critical",
                              not infinite, f"infinite values per column: {infinite}" if infinite else "none"))
    return checks


def _observed(result: dict[str, Any], column: str | None, frame: pd.DataFrame) -> Any:
    if column is not None and column not in frame.columns:
        return f"column {column!r} is missing"
    exception = result.get("exception_info") or {}
    if exception.get("raised_exception"):
        return f"error: {exception.get('exception_message')}"
    details = result.get("result") or {}
    if "observed_value" in details:
        return json_safe(details["observed_value"])
    if details.get("unexpected_percent") is not None:
        return {
            "unexpected_percent": round(float(details["unexpected_percent"]), 4),
            "unexpected_count": details.get("unexpected_count"),
            "sample_unexpected": json_safe(list(details.get("partial_unexpected_list") or [])[:MAX_LISTED_VALUES]),
        }
    return json_safe(details)


def run_suite(frame: pd.DataFrame, suite_document: dict[str, Any], suite_uri: str):
    """Validate ``frame`` with GX; return (GX result object, our check results)."""
    from gated_training.gx_runtime import ephemeral_context

    context = ephemeral_context()
    suite = build_gx_suite(suite_document, suite_uri)
    batch = (
        context.data_sources.add_pandas("incoming")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    gx_result = batch.validate(suite, result_format="SUMMARY")
    checks = []
    for result in gx_result.to_json_dict()["results"]:
        config = result["expectation_config"]
        kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        column = kwargs.get("column")
        checks.append(CheckResult(
            rule=config["type"], column=column, severity=str(config.get("severity") or "critical"),
            passed=bool(result["success"]) and (column is None or column in frame.columns),
            observed=_observed(result, column, frame), expected=json_safe(kwargs),
        ))
    return gx_result, checks


def render_data_docs(gx_result: Any, outcome: ValidationOutcome) -> str:
    """GX Data Docs for the validation result, headed by the gate verdict and built-in checks."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    page = DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(gx_result))
    verdict = "PASSED" if outcome.passed else "BLOCKED"
    rows = "".join(
        f"<tr><td>{html.escape(c.rule)}</td><td>{html.escape(str(c.column or ''))}</td>"
        f"<td>{'pass' if c.passed else 'FAIL'}</td><td>{html.escape(str(c.observed))}</td></tr>"
        for c in outcome.checks if c.rule.startswith("builtin:")
    )
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in outcome.blocking_reasons) or "<li>none</li>"
    banner = (
        f'<div class="container" style="margin-top:1em"><h2>Data gate: {verdict}</h2>'
        f"<p>Quality score {outcome.quality_score:.3f} (minimum {outcome.min_quality_score:.3f}), "
        f"{outcome.row_count} rows, data SHA-256 <code>{outcome.data_sha256}</code></p>"
        f"<p>Blocking reasons:</p><ul>{reasons}</ul>"
        f'<table class="table table-sm"><tr><th>built-in check</th><th>column</th><th>verdict</th>'
        f"<th>observed</th></tr>{rows}</table></div>"
    )
    return page.replace("<body>", "<body>" + banner, 1) if "<body>" in page else banner + page


def validate_dataset(
    data_uri: str,
    suite_uri: str,
    target: str,
    min_quality_score: float,
    dataset_out: str,
    report_out: str,
    data_docs_out: str,
) -> ValidationOutcome:
    """Load, check and snapshot the batch.

    Writes the batch as Parquet (later steps never re-parse CSV), the JSON report with every
    check's observed value, and the Data Docs HTML. Raises only when the inputs cannot be
    read at all; a batch that breaks rules returns ``passed=False``.
    """
    resolved_suite = resolve_suite_uri(data_uri, suite_uri)
    suite_document = read_suite_document(resolved_suite)
    table = load_table(data_uri)
    frame = table.frame

    checks = builtin_checks(frame, target)
    gx_result, suite_checks = run_suite(frame, suite_document, resolved_suite)
    checks.extend(suite_checks)

    failed = [c for c in checks if not c.passed]
    blocking = [c.describe() for c in failed if c.severity == "critical"]
    quality_score = (len(checks) - len(failed)) / len(checks)
    if quality_score < min_quality_score:
        blocking.append(
            f"quality score {quality_score:.3f} ({len(checks) - len(failed)}/{len(checks)} checks passed) "
            f"is below the minimum {min_quality_score:.3f}"
        )
    outcome = ValidationOutcome(
        passed=not blocking,
        quality_score=round(quality_score, 6),
        min_quality_score=min_quality_score,
        data_uri=data_uri,
        suite_uri=resolved_suite,
        data_sha256=table.sha256,
        row_count=len(frame),
        column_count=frame.shape[1],
        blocking_reasons=blocking,
        warnings=[c.describe() for c in failed if c.severity != "critical"],
        checks=checks,
    )
    write_parquet(frame, dataset_out)
    Path(report_out).write_text(json.dumps(outcome.to_json(), indent=2))
    Path(data_docs_out).write_text(render_data_docs(gx_result, outcome))
    return outcome
