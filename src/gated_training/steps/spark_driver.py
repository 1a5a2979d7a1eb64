"""The driver of a Spark step's SparkApplication: ``spark_driver.py <step> <request URI>`` in the Spark image.

The step's component wrote the request (``spark.remote``); this reads it back as hostile input (one exact
shape, a size limit, the step's own arguments and types, its prefix the request's own folder), runs the step
function with ``engine=spark`` on the session spark-submit started, uploads its small outputs (Spark writes
the Parquet folders there itself), and writes ``result.json``: ``ok``, or the step's error by kind and words,
which the component raises as its own. A request it cannot trust gets no result: the step then fails with
the operator's reason.
"""

from __future__ import annotations

import json
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gated_training import logs
from gated_training.config import group_settings
from gated_training.data import storage
from gated_training.errors import ConfigError, GatedTrainingError
from gated_training.spark import remote
from gated_training.steps.check_drift import check_drift
from gated_training.steps.engineer_features import engineer_features
from gated_training.steps.evaluate_model import evaluate_model
from gated_training.steps.train_model import train_model
from gated_training.steps.validate_data import validate_data

MAX_REQUEST_BYTES = 1 << 20


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 4096:
        raise ConfigError(f"request argument {name}: expected text of at most 4096 characters")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"request argument {name}: expected a number")
    return float(value)


def _group(group: str) -> Callable[[str, Any], Any]:
    """A request argument holding the run form's group ``group``: its settings, checked as the components check them."""
    return lambda name, value: group_settings(group, value)


@dataclass(frozen=True)
class DriverStep:
    function: Callable[..., Any]
    arguments: dict[str, Callable[[str, Any], Any]]
    inputs: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()  # inputs a request may leave out (the step's default: none)
    files: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()


STEPS = {
    "validate-data": DriverStep(
        validate_data,
        {
            "data_uri": _text,
            "suite_uri": _text,
            "target": _text,
            "min_quality_score": _number,
            "pinned_suite_sha256": _text,
            "max_input_mb": _number,
        },
        files=("report_out", "data_docs_out"),
        folders=("dataset_out",),
    ),
    "check-drift": DriverStep(
        check_drift,
        {"dataset_path": _text, "target": _text, "registry_uri": _text, "model_name": _text, "policy": _group("drift")},
        inputs=("validation_report_path",),
        files=("report_out", "html_out"),
    ),
    "engineer-features": DriverStep(
        engineer_features,
        {
            "dataset_path": _text,
            "target": _text,
            "feature_settings": _group("features"),
            "split_settings": _group("split"),
        },
        inputs=("drift_report_path",),
        files=("metadata_out", "preprocessor_out"),
        folders=("test_out", "train_out"),
    ),
    "train-model": DriverStep(
        train_model,
        {
            "train_path": _text,
            "test_path": _text,
            "target": _text,
            "settings": _group("training"),
            "tracking_uri": _text,
            "experiment": _text,
            "data_sha256": _text,
            "kfp_run_id": _text,
            "data_uri": _text,
            "pipeline_version": _text,
        },
        inputs=("feature_metadata_path", "preprocessor_path"),
        optional=("drift_report_path",),
        files=("importances_out", "model_out", "report_out"),
    ),
    "evaluate-model": DriverStep(
        evaluate_model,
        {"test_path": _text, "target": _text, "thresholds": _group("gate"), "registry_uri": _text, "model_name": _text},
        inputs=("model_path", "training_report_path"),
        optional=("drift_html_path", "drift_report_path", "feature_metadata_path"),
        files=("decision_out", "report_out"),
    ),
}


def read_request(step_id: str, request_uri: str) -> dict[str, Any]:
    """The request, checked against the step's own row above; anything else is a ConfigError."""
    if step_id not in STEPS:
        raise ConfigError(f"the Spark driver runs {', '.join(STEPS)}, not {step_id!r}")
    step = STEPS[step_id]
    try:
        request = json.loads(storage.read_bytes(request_uri, max_bytes=MAX_REQUEST_BYTES))
    except ValueError as exc:
        raise ConfigError(f"{request_uri}: the request is not JSON: {exc}") from exc
    prefix = request_uri.rsplit("/", 1)[0] if request_uri.endswith("/request.json") else None
    expected = {
        "format": remote.REQUEST_FORMAT,
        "step": step_id,
        "prefix": prefix,
        "outputs": {"files": sorted(step.files), "folders": sorted(step.folders)},
    }
    inputs = request.get("inputs") if isinstance(request, dict) else None
    if (
        not isinstance(request, dict)
        or set(request) != {*expected, "inputs", "arguments"}
        or any(request[key] != value for key, value in expected.items())
        or not isinstance(inputs, list)
        or inputs != sorted(set(inputs))
        or not set(step.inputs) <= set(inputs) <= {*step.inputs, *step.optional}
    ):
        raise ConfigError(f"{request_uri}: not a request for {step_id} in its own folder")
    arguments = request["arguments"]
    if not isinstance(arguments, dict) or set(arguments) != set(step.arguments):
        raise ConfigError(f"{request_uri}: the arguments of {step_id} are {', '.join(sorted(step.arguments))}")
    request["arguments"] = {name: convert(name, arguments[name]) for name, convert in step.arguments.items()}
    return request


def run_request(step_id: str, request: dict[str, Any], scratch: str) -> None:
    step, prefix = STEPS[step_id], request["prefix"]
    keywords = dict(request["arguments"])
    for name in request["inputs"]:  # checked: every required input, and optional ones the component sent
        local = Path(scratch, "inputs", name)
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(storage.read_bytes(remote.input_uri(prefix, name), max_bytes=remote.MAX_INPUT_BYTES))
        keywords[name] = str(local)
    for name in step.files:
        keywords[name] = str(Path(scratch, "outputs", name))
        Path(keywords[name]).parent.mkdir(parents=True, exist_ok=True)
    for name in step.folders:  # Spark's executors write these themselves, straight to the bucket
        keywords[name] = remote.output_uri(prefix, name)
    step.function(**keywords, engine="spark")
    for name in step.files:
        storage.write_bytes(remote.output_uri(prefix, name), Path(keywords[name]).read_bytes())


def write_result(prefix: str, step_id: str, error: BaseException | None) -> None:
    result: dict[str, Any] = {"format": remote.REQUEST_FORMAT, "step": step_id, "ok": error is None}
    if error is not None:
        result["error"] = {"kind": type(error).__name__, "message": str(error)[: remote.MAX_MESSAGE_CHARS]}
    storage.write_bytes(storage.join_uri(prefix, "result.json"), json.dumps(result).encode())


def main(argv: list[str] | None = None) -> int:
    logs.configure()
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: spark_driver.py <step> <request URI>", file=sys.stderr)
        return 2
    step_id, request_uri = args
    with logs.bound(step=step_id):
        return run(step_id, request_uri)


def run(step_id: str, request_uri: str) -> int:
    try:
        request = read_request(step_id, request_uri)
    except GatedTrainingError as exc:  # no trusted prefix to answer in: the operator reports the exit
        logs.event("spark.driver", f"refused the request: {exc}", severity="ERROR", stream=sys.stderr)
        return 2
    error: BaseException | None = None
    with tempfile.TemporaryDirectory(prefix="gated-training-driver-") as scratch:
        try:
            run_request(step_id, request, scratch)
        except GatedTrainingError as exc:
            error = exc
        except Exception as exc:  # a bug or a library's failure: its words, and the trace in the driver's log
            traceback.print_exc()
            error = exc
    write_result(request["prefix"], step_id, error)
    if error is not None:
        logs.event("spark.driver", f"{step_id} failed: {error}", severity="ERROR", stream=sys.stderr)
        return 1
    logs.event("spark.driver", f"{step_id} finished")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
