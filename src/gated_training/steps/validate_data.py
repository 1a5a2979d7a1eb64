"""validate-data, the data gate: validate the incoming batch with the GX suite.

Built-in checks (target present, not null, two classes or more, no all-null column, no
constant feature, no infinities, no value beyond float32's range) always run as critical: a lax
suite must not let training crash later.
"""

from __future__ import annotations

import gc
import html
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gated_training.config import DEFAULT_MAX_INPUT_MB, ENGINES, check_sha256_parameter, require_choice
from gated_training.data import (
    FLOAT32_MAX,
    TableFacts,
    json_safe,
    load_table,
    normalise_labels,
    table_facts,
    write_parquet,
)
from gated_training.errors import SuiteError
from gated_training.validation import build_gx_suite, read_suite_document, resolve_suite_uri, suite_sha256

MAX_LISTED_VALUES = 10
MAX_REASON_CHARS = 300


def _observed_text(observed: Any) -> str:
    """What a check observed, as words: ``unexpected percent 12.5, unexpected count 3, sample unexpected: a, b``
    rather than a Python dict."""
    if isinstance(observed, dict):
        parts = []
        for key, value in observed.items():
            shown = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            parts.append(f"{str(key).replace('_', ' ')}{':' if isinstance(value, (list, tuple)) else ''} {shown}")
        return "; ".join(parts)
    if isinstance(observed, (list, tuple)):
        return ", ".join(map(str, observed))
    return str(observed)


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    rule: str  # GX expectation type, or "builtin:<name>"
    column: str | None
    severity: str
    passed: bool
    observed: Any
    expected: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f" on column {self.column!r}" if self.column else ""
        observed = _observed_text(self.observed)
        if len(observed) > MAX_REASON_CHARS:  # a reason names the problem; the report holds every value
            observed = observed[:MAX_REASON_CHARS] + f"… ({len(observed) - MAX_REASON_CHARS} more characters)"
        return f"{self.severity} rule {self.rule}{where} failed: observed {observed}"


@dataclass(frozen=True, kw_only=True)
class ValidationOutcome:
    passed: bool
    quality_score: float
    min_quality_score: float
    data_uri: str
    suite_uri: str
    suite_sha256: str
    data_sha256: str  # content fingerprint: the same table as CSV or Parquet, with or without a BOM
    file_sha256: str
    row_count: int
    column_count: int
    blocking_reasons: list[str]
    warnings: list[str]
    checks: list[CheckResult]
    excluded_columns: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> "ValidationOutcome":
        """The outcome a report holds (a Spark step's driver wrote it): ``passed`` a boolean, every check one."""
        if not isinstance(document.get("passed"), bool):
            raise ValueError(f"passed={document.get('passed')!r} is not a boolean")
        return cls(**{**document, "checks": [CheckResult(**check) for check in document["checks"]]})


def builtin_checks(facts: TableFacts, target: str) -> list[CheckResult]:
    """Checks no suite can switch off, because training cannot proceed without them; judged on the
    table's facts, which either engine computes (``data.table_facts``, ``spark.table_facts``)."""
    names = facts.column_names()
    present = target in names
    checks = [
        CheckResult(
            rule="builtin:target_present",
            column=target,
            severity="critical",
            passed=present,
            observed="present" if present else f"missing; columns are {names}",
        )
    ]
    if present:
        checks.append(
            CheckResult(
                rule="builtin:target_not_null",
                column=target,
                severity="critical",
                passed=facts.target_nulls == 0,
                observed=f"{facts.target_nulls} null value(s)",
            )
        )
        checks.append(
            CheckResult(
                rule="builtin:target_has_two_classes",
                column=target,
                severity="critical",
                passed=facts.target_class_count >= 2,
                observed=f"{facts.target_class_count} class(es): {facts.target_classes[:MAX_LISTED_VALUES]}",
                expected={"min_classes": 2},
            )
        )
    all_null = [c.name for c in facts.columns if c.nulls == facts.rows]
    checks.append(
        CheckResult(
            rule="builtin:no_all_null_columns",
            column=", ".join(all_null) or None,
            severity="critical",
            passed=not all_null,
            observed=f"all-null columns: {all_null}" if all_null else "none",
        )
    )
    # One value in every row of a feature is a broken feed (an upstream default), never a signal.
    constant = [
        c.name
        for c in facts.columns
        if c.name != target and c.name not in all_null and facts.rows > 1 and c.distinct_with_null == 1
    ]
    checks.append(
        CheckResult(
            rule="builtin:no_constant_columns",
            column=", ".join(constant) or None,
            severity="critical",
            passed=not constant,
            observed=f"columns with one value in every row: {constant}" if constant else "none",
        )
    )
    infinite = {c.name: c.infinite for c in facts.columns if c.numeric and c.infinite}
    checks.append(
        CheckResult(
            rule="builtin:no_infinite_values",
            column=", ".join(infinite) or None,
            severity="critical",
            passed=not infinite,
            observed=f"infinite values per column: {infinite}" if infinite else "none",
        )
    )
    # The trees compute in float32: a finite float64 beyond its range (1e308) would fail training with
    # scikit-learn's message about float32, naming no column. Named here instead, with the largest value.
    overflowing = {
        c.name: f"{c.overflowing} value(s), largest {c.largest_overflow:.4g}"
        for c in facts.columns
        if c.numeric and c.overflowing
    }
    checks.append(
        CheckResult(
            rule="builtin:no_overflowing_values",
            column=", ".join(overflowing) or None,
            severity="critical",
            passed=not overflowing,
            observed=(
                f"values beyond ±{FLOAT32_MAX:.4g}, the largest magnitude the model computes with "
                f"(float32), per column: {overflowing}"
            )
            if overflowing
            else "none",
        )
    )
    return checks


def _observed(result: dict[str, Any], column: str | None, frame: Any) -> Any:
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


def is_spark_frame(frame: Any) -> bool:
    return type(frame).__module__.startswith("pyspark.")


def run_suite(frame: Any, suite_document: dict[str, Any], suite_uri: str) -> list[CheckResult]:
    """Validate ``frame`` (pandas, or a Spark frame through GX's Spark data source) with GX; return our check
    results, in the suite's order."""
    from gated_training.validation import ephemeral_context

    context = ephemeral_context()
    spark = is_spark_frame(frame)
    build_gx_suite(
        suite_document, suite_uri, engine="spark" if spark else "pandas"
    )  # the whole suite first: its errors name the expectation
    source = context.data_sources.add_spark("incoming") if spark else context.data_sources.add_pandas("incoming")

    def validate(name: str, data: Any, expectations: Any) -> Any:
        batch = (
            source.add_dataframe_asset(name)
            .add_batch_definition_whole_dataframe("whole")
            .get_batch(batch_parameters={"dataframe": data})
        )
        try:
            return batch.validate(expectations, result_format="SUMMARY")
        finally:
            # The data source's execution engine keeps every batch it loaded and every metric it computed (GX 1.x:
            # BatchManager, _metric_cache), which held 100 MiB of per-column results at 1M rows: each part gets a
            # new engine. An attribute of GX's own; without it (another GX) the engine is kept, as GX does.
            if hasattr(source, "_execution_engine"):
                source._execution_engine = None
            source.delete_asset(name)
            gc.collect()  # GX's results hold reference cycles: without a collection the next part's come first

    # GX's pandas engine filters the rows a column expectation checks with a mask over the frame it is given
    # (a copy of every column: 318 MiB at 1M rows × 30 columns). On pandas each column's expectations are
    # validated on a frame of that column alone (a copy-on-write selection: no data is copied); on Spark, which
    # copies nothing, together. Expectations about the table, several columns, a row condition or a missing
    # column see the whole frame, one at a time: GX returns a suite's results in an order of its own, and
    # rewrites a row condition in the result, so the others are matched back by type and arguments
    # (_by_position). Either engine lists the checks in the suite's order.
    # An expectation about the table's shape reads no values: the row count is validated on a frame of the same
    # rows and no columns, the column names (and expect_column_to_exist, whose column_index is a position among
    # all columns) on one of the same columns and no rows; GX copies neither.
    specs = suite_document["expectations"]
    parts: list[tuple[Any, list[int]]] = []
    together: list[int] = []
    for columns, positions in _column_groups(specs, frame):
        if columns is None:
            parts.extend((frame, [position]) for position in positions)
        elif spark:
            together.extend(positions)
        elif columns == ROW_COUNT:
            parts.append((frame[[]], positions))
        elif columns == COLUMN_NAMES:
            parts.append((frame.iloc[:0], positions))
        elif isinstance(columns, tuple):
            parts.append((frame[list(columns)], positions))
    if together:
        parts.append((frame, sorted(together)))
    by_position: dict[tuple[int, int, int], dict[str, Any]] = {}
    # What exists now (modules, GX's context) is moved out of the collector's sight for the loop: the collection
    # after each part then scans only what that part made.
    gc.freeze()
    try:
        for number, (data, positions) in enumerate(parts):
            part = build_gx_suite(
                {**suite_document, "expectations": [specs[i] for i in positions]},
                suite_uri,
                engine="spark" if spark else "pandas",
            )
            outcome = validate(f"batch-{number}", data, part).to_json_dict()["results"]
            if len(positions) == 1 and len(outcome) == 1:
                by_position[(0, positions[0], 0)] = outcome[0]
            else:  # matched against the built expectations' arguments (on Spark, with Spark's type names)
                built = {
                    position: {
                        "type": specs[position]["type"],
                        "kwargs": expectation.configuration.to_json_dict()["kwargs"],
                    }
                    for position, expectation in zip(positions, part.expectations, strict=True)
                }
                by_position.update(_by_position(built, positions, outcome, number))
    finally:
        gc.unfreeze()

    results = [by_position[key] for key in sorted(by_position)]
    checks = []
    for result in results:
        config = result["expectation_config"]
        kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        column = kwargs.get("column")
        checks.append(
            CheckResult(
                rule=config["type"],
                column=column,
                severity=str(config.get("severity") or "critical"),
                passed=bool(result["success"]) and (column is None or column in frame.columns),
                observed=_observed(result, column, frame),
                expected=json_safe(kwargs),
            )
        )
    return checks


def _by_position(
    specs: Mapping[int, dict[str, Any]] | list[dict[str, Any]],
    positions: list[int],
    results: list[dict[str, Any]],
    group: int,
) -> dict[tuple[int, int, int], dict[str, Any]]:
    """GX's results of the expectations at ``positions``, keyed by their place in the suite. GX returns them in
    an order of its own: each is matched to the first expectation left with its type and arguments (two
    identical expectations have identical results). A result that matches none is kept, after them all."""
    left = list(positions)
    keyed = {}
    for order, result in enumerate(results):
        config = result.get("expectation_config") or {}
        arguments = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        candidates = [p for p in left if specs[p]["type"] == config.get("type")]
        # the same arguments first; then the expectation whose every argument the result repeats (GX may add
        # defaults to what it returns)
        match = next((p for p in candidates if (specs[p].get("kwargs") or {}) == arguments), None)
        if match is None:
            match = next(
                (
                    p
                    for p in candidates
                    if all(arguments.get(key) == value for key, value in (specs[p].get("kwargs") or {}).items())
                ),
                None,
            )
        if match is None:
            keyed[(1, group, order)] = result
        else:
            left.remove(match)
            keyed[(0, match, 0)] = result
    return keyed


# Expectations that read the table's shape only (validate-data gives them a frame without values), by what they read.
ROW_COUNT_EXPECTATIONS = frozenset({"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"})
COLUMN_NAME_EXPECTATIONS = frozenset(
    {
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_column_to_exist",
    }
)
# _column_groups' keys for them: strings, while a group of columns is a tuple of names (a column named so is no match)
ROW_COUNT = "row count"
COLUMN_NAMES = "column names"


def _column_groups(specs: list[dict[str, Any]], frame: Any) -> list[tuple[tuple[str, ...] | str | None, list[int]]]:
    """The suite's expectations (by position) grouped by the frame each is validated on: the row count's and the
    column names' without a row condition (:data:`ROW_COUNT`, :data:`COLUMN_NAMES`); a single- or pair-column
    expectation (``expect_column_*``) without a row condition, on columns the frame has, on those columns
    alone; everything else (column lists, row conditions, a missing column) on the whole frame (None). Groups
    in the order of their first expectation."""
    groups: dict[tuple[str, ...] | str | None, list[int]] = {}
    present = set(map(str, frame.columns))
    for position, spec in enumerate(specs):
        kwargs = spec.get("kwargs") or {}
        kind = str(spec.get("type", ""))
        if not kwargs.get("row_condition") and kind in ROW_COUNT_EXPECTATIONS | COLUMN_NAME_EXPECTATIONS:
            groups.setdefault(ROW_COUNT if kind in ROW_COUNT_EXPECTATIONS else COLUMN_NAMES, []).append(position)
            continue
        columns = tuple(
            dict.fromkeys(str(kwargs[key]) for key in ("column", "column_A", "column_B") if kwargs.get(key) is not None)
        )
        narrow = (
            str(spec.get("type", "")).startswith("expect_column")
            and "column_list" not in kwargs
            and not kwargs.get("row_condition")
            and columns
            and set(columns) <= present
        )
        groups.setdefault(columns if narrow else None, []).append(position)
    return list(groups.items())


PAGE_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#222}
h1{margin:0 0 .3em}.passed{color:#1a7f37}.blocked{color:#b3261e}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.pass{color:#1a7f37;font-weight:bold}td.FAIL{color:#b3261e;font-weight:bold}
td.warn{color:#9a6700;font-weight:bold}code{background:#f3f3f3;padding:0 .2em}
""".strip()
MAX_CELL_CHARS = 2000


def _cell(value: Any) -> str:
    """Any value from the data or the suite, as escaped text: nothing in it becomes markup."""
    text = value if isinstance(value, str) else json.dumps(json_safe(value), ensure_ascii=False, default=str)
    if len(text) > MAX_CELL_CHARS:
        text = text[:MAX_CELL_CHARS] + f"… ({len(text) - MAX_CELL_CHARS} more characters)"
    return html.escape(text, quote=True)


def render_data_gate_html(outcome: "ValidationOutcome") -> str:
    """The data gate's report: one self-contained page (no script, no external asset), verdict first.

    Every value that comes from the data or the suite (column names, sampled unexpected values,
    expectation arguments) is HTML-escaped; the page renders the same offline and in the KFP UI.
    """
    verdict = "PASSED" if outcome.passed else "BLOCKED"
    reasons = "".join(f"<li>{_cell(reason)}</li>" for reason in outcome.blocking_reasons) or "<li>none</li>"
    warnings = "".join(f"<li>{_cell(warning)}</li>" for warning in outcome.warnings)
    rows = []
    for check in sorted(outcome.checks, key=lambda c: (c.passed, c.severity != "critical")):
        state = "pass" if check.passed else ("FAIL" if check.severity == "critical" else "warn")
        rows.append(
            f'<tr><td class="{state}">{state}</td><td>{_cell(check.severity)}</td><td><code>{_cell(check.rule)}'
            f"</code></td><td>{_cell(check.column or '')}</td><td>{_cell(check.observed)}</td>"
            f"<td>{_cell(check.expected or '')}</td></tr>"
        )
    excluded = (
        f"<p>Columns excluded from the features by the suite: {_cell(', '.join(outcome.excluded_columns))}</p>"
        if outcome.excluded_columns
        else ""
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Data gate: ' + verdict + "</title>"
        f"<style>{PAGE_STYLE}</style></head><body>"
        f'<h1 class="{verdict.lower()}">Data gate: {verdict}</h1>'
        f"<p>Quality score {outcome.quality_score:.3f} (minimum {outcome.min_quality_score:.3f}); "
        f"{outcome.row_count} rows, {outcome.column_count} columns.</p>"
        f"<p>Data <code>{_cell(outcome.data_uri)}</code>, content SHA-256 <code>{_cell(outcome.data_sha256)}</code>; "
        f"suite <code>{_cell(outcome.suite_uri)}</code>, SHA-256 <code>{_cell(outcome.suite_sha256)}</code></p>"
        f"<h2>Blocking reasons</h2><ul>{reasons}</ul>"
        + (f"<h2>Warnings</h2><ul>{warnings}</ul>" if warnings else "")
        + excluded
        + "<h2>Checks</h2><table><tr><th>verdict</th><th>severity</th><th>rule</th><th>column</th><th>observed</th>"
        f"<th>expected</th></tr>{''.join(rows)}</table></body></html>\n"
    )


def excluded_columns(suite_document: dict[str, Any], suite_uri: str, frame: Any, target: str) -> list[str]:
    """Columns the suite keeps out of the features (``meta.excluded_features``: IDs, free text)."""
    meta = suite_document.get("meta") or {}
    listed = (meta.get("excluded_features") if isinstance(meta, dict) else None) or []
    if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
        raise SuiteError(f"{suite_uri}: meta.excluded_features must be a list of column names")
    if target in listed:
        raise SuiteError(f"{suite_uri}: meta.excluded_features lists the target column {target!r}")
    features = [str(column) for column in frame.columns if column != target]
    if features and set(features) <= set(listed):
        raise SuiteError(
            f"{suite_uri}: meta.excluded_features excludes every feature of the batch "
            f"({', '.join(features)[:300]}), so nothing is left to train on; list only IDs and free text"
        )
    return [name for name in listed if name in frame.columns]


def suite_pin_check(actual: str, pinned: str) -> CheckResult:
    return CheckResult(
        rule="builtin:suite_pinned",
        column=None,
        severity="critical",
        passed=actual == pinned,
        observed=f"suite SHA-256 {actual}" + ("" if actual == pinned else f", pinned {pinned}"),
        expected={"suite_sha256": pinned},
    )


def validate_data(
    *,
    data_uri: str,
    suite_uri: str,
    target: str,
    min_quality_score: float,
    dataset_out: str,
    report_out: str,
    data_docs_out: str,
    pinned_suite_sha256: str = "",
    max_input_mb: float = DEFAULT_MAX_INPUT_MB,
    engine: str = "pandas",
) -> ValidationOutcome:
    """Load, check and snapshot the batch.

    Writes the batch as Parquet (later steps never re-parse CSV; columns the suite excludes are
    left out), the JSON report with every check's observed value, and the data gate's HTML page.
    Raises only when the inputs cannot be read at all; a batch that breaks rules returns
    ``passed=False``. With ``pinned_suite_sha256``, a suite with another digest is not run: the
    batch is blocked by ``builtin:suite_pinned``.

    Args:
        data_uri: the batch: a regular file or gs:// object, CSV (optionally compressed) or Parquet.
        suite_uri: the GX suite, or empty for ``<data name>.expectations.json`` beside the data.
        target: the label column.
        min_quality_score: the share of passed checks below which the batch blocks.
        dataset_out, report_out, data_docs_out: the batch (Parquet), the JSON report, the HTML page.
        pinned_suite_sha256: empty, or the suite's required SHA-256.
        max_input_mb: the largest data file accepted, also once decompressed.
        engine: ``pandas`` (the batch in this process) or ``spark`` (read, typed, fingerprinted, checked and
            validated in Spark; the same checks, words and fingerprint; the batch is written as a Parquet folder).

    Returns:
        The outcome; ``passed`` decides the gate.
    """
    require_choice("engine", engine, ENGINES)
    if engine == "spark":
        from gated_training import spark

        outcome = spark.remote.run_on_cluster(
            "validate-data",
            {
                "data_uri": data_uri,
                "suite_uri": suite_uri,
                "target": target,
                "min_quality_score": min_quality_score,
                "pinned_suite_sha256": pinned_suite_sha256,
                "max_input_mb": max_input_mb,
            },
            spark.StepFiles(
                files={"report_out": report_out, "data_docs_out": data_docs_out},
                folders={"dataset_out": dataset_out},
            ),
            record=report_out,
            build=ValidationOutcome.from_json,
        )
        if outcome is not None:  # on the cluster: this step's work runs in a SparkApplication
            return outcome
    pinned = check_sha256_parameter("suite_sha256", pinned_suite_sha256)
    resolved_suite = resolve_suite_uri(data_uri, suite_uri)
    suite_raw, suite_digest = suite_sha256(resolved_suite)
    suite_document = read_suite_document(resolved_suite, suite_raw) if not pinned or pinned == suite_digest else None
    if engine == "spark":
        from gated_training import spark

        table: Any = spark.read_table(data_uri, max_input_mb)
        frame = spark.normalise_labels(table.frame, target)
        facts = spark.table_facts(frame, target)
    else:
        table = load_table(data_uri, max_input_mb)
        frame = table.frame
        if target in frame.columns:
            frame[target] = normalise_labels(frame[target])
        facts = table_facts(frame, target)

    checks = builtin_checks(facts, target)
    excluded: list[str] = []
    if suite_document is None:
        checks.append(suite_pin_check(suite_digest, pinned))
    else:
        if pinned:
            checks.append(suite_pin_check(suite_digest, pinned))
        excluded = excluded_columns(suite_document, resolved_suite, frame, target)
        suite_checks = run_suite(frame, suite_document, resolved_suite)
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
        suite_sha256=suite_digest,
        data_sha256=table.sha256,
        file_sha256=table.file_sha256,
        row_count=facts.rows,
        column_count=len(facts.columns),
        blocking_reasons=blocking,
        warnings=[c.describe() for c in failed if c.severity != "critical"],
        checks=checks,
        excluded_columns=excluded,
    )
    if engine == "spark":
        frame.drop(*excluded).write.mode("overwrite").parquet(dataset_out)
        table.frame.unpersist()  # the cached read (normalised labels are a view of it)
    else:
        write_parquet(frame.drop(columns=excluded), dataset_out)
    Path(report_out).write_text(json.dumps(outcome.to_json(), indent=2))
    Path(data_docs_out).write_text(render_data_gate_html(outcome))
    return outcome
