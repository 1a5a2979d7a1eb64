"""MLflow access: resolve the tracking URI once, fail with a message that names it.

mlflow is imported inside functions (~1.5 s), so steps that never track do not pay for it.
"""

from __future__ import annotations

import base64
import os
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

from gated_training import logs
from gated_training.errors import TrackingError
from gated_training.redirects import NoRedirect
from gated_training.run_context import check_outlives_pod

DEFAULT_TRACKING_URI = "sqlite:///.gated-training/mlflow.db"
SQLITE_PREFIX = "sqlite:///"
CHAMPION_ALIAS = "champion"  # the MLflow alias that mirrors the registry's champion pointer
# Every network wait has a budget. MLflow's own defaults (120 s per request, 7 retries with
# exponential backoff) can hold a step about 20 minutes on a dead server; these bound a request
# to about 5 minutes (5 x 60 s plus 30 s of backoff). Set the variables to override.
HTTP_BUDGET_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
}
for _name, _value in HTTP_BUDGET_DEFAULTS.items():
    os.environ.setdefault(_name, _value)


def resolve_tracking_uri(parameter: str) -> str:
    """The parameter if set, else ``MLFLOW_TRACKING_URI``, else a local SQLite file."""
    uri = (parameter or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI).strip()
    check_outlives_pod(mlflow_tracking_uri=uri)  # on a cluster: not inside the pod (run_context)
    if uri.startswith(SQLITE_PREFIX):
        Path(uri[len(SQLITE_PREFIX) :]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def _local_artifact_root(tracking_uri: str) -> str | None:
    """Keep a SQLite store's artifacts beside its database instead of ./mlruns in the cwd."""
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    database = Path(tracking_uri[len(SQLITE_PREFIX) :]).resolve()
    return (database.parent / "mlflow-artifacts").as_uri()


@contextmanager
def tracking_errors(tracking_uri: str, action: str) -> Iterator[None]:
    """Re-raise MLflow and connection failures as :class:`TrackingError` naming the URI."""
    try:
        yield
    except TrackingError:
        raise
    except Exception as exc:  # MlflowException, requests errors, sqlalchemy errors...
        from mlflow.exceptions import MlflowException

        if isinstance(exc, (MlflowException, OSError, ConnectionError)) or "sqlalchemy" in type(exc).__module__:
            detail = " ".join(str(exc).split())[:500]
            raise TrackingError(f"MLflow at {tracking_uri}: {action} failed: {detail}") from exc
        raise


URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def global_uris(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (``mlflow.start_run``, ``register_model``) at ``tracking_uri`` for the
    block, then put back what was there. ``mlflow.set_tracking_uri`` also writes
    ``MLFLOW_TRACKING_URI`` (and the registry's variable) into ``os.environ``: left there, a CLI call
    or a test in the same process would hand the next run, and every step process it starts, a
    server that may be gone by then."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    _route_mlflow_prints()
    saved_env = {name: os.environ.get(name) for name in URI_VARIABLES}
    saved_globals = (getattr(tracking_utils, "_tracking_uri", None), getattr(registry_utils, "_registry_uri", None))
    try:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        yield
    finally:
        # None is what MLflow's globals hold before anything was set; it puts the default back.
        mlflow.set_tracking_uri(saved_globals[0])  # type: ignore[arg-type]
        mlflow.set_registry_uri(saved_globals[1])  # type: ignore[arg-type]
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _route_mlflow_prints() -> None:
    """MLflow prints some news (``Successfully registered model``) to its own stream instead of logging it:
    in JSON mode that stream becomes events (``logs.LineStream``), so a pod's log stays one object per line."""
    if logs.log_format() == "json":
        from mlflow.utils import logging_utils

        if not isinstance(logging_utils.MLFLOW_LOGGING_STREAM, logs.LineStream):
            logging_utils.MLFLOW_LOGGING_STREAM = logs.LineStream("mlflow.print", "mlflow")  # type: ignore[assignment]


def client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    _route_mlflow_prints()

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """Return the experiment id for ``name``, creating the experiment when needed."""
    with tracking_errors(tracking_uri, f"opening experiment {name!r}"):
        mlflow_client = client(tracking_uri)
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        return str(mlflow_client.create_experiment(name, artifact_location=_local_artifact_root(tracking_uri)))


# What the probe answers when the experiment does not exist yet: the logging after the fit creates it.
TO_BE_CREATED = ""


def probe_experiment(tracking_uri: str, name: str, timeout: float = 30.0) -> str | None:
    """The experiment's id (``TO_BE_CREATED`` when the store has none of that name), read without importing
    MLflow: over its REST API from a tracking server, or read-only from a SQLite store's file. None whenever the
    answer is not clear-cut (no reply, an error status, a store or an authentication this does not speak, a
    file without MLflow's tables): the caller then asks MLflow's client, which retries, creates and words its
    errors as always. MLflow resident through a fit costs its import (~56 MiB) and, on SQLite, its store
    (~60 MiB more); train-model probes first and imports MLflow after the fit."""
    import json
    import sqlite3
    import urllib.error
    import urllib.request

    parts = urlsplit(tracking_uri)
    if parts.scheme == "sqlite" and tracking_uri.startswith(SQLITE_PREFIX):
        database = Path(tracking_uri[len(SQLITE_PREFIX) :].split("?", 1)[0])
        if not database.exists():  # MLflow creates the file and its tables when it logs, in a folder it can write
            return TO_BE_CREATED if os.access(database.parent, os.W_OK | os.X_OK) else None
        if not database.is_file():
            return None
        try:
            with closing(sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)) as db:
                row = db.execute("SELECT experiment_id FROM experiments WHERE name = ?", (name,)).fetchone()
        except sqlite3.Error:
            return None
        return TO_BE_CREATED if row is None else (str(row[0]) if str(row[0]).isdigit() else None)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if os.environ.get("MLFLOW_TRACKING_AUTH") or os.environ.get("MLFLOW_TRACKING_AWS_SIGV4", "").lower() == "true":
        return None  # an authentication plugin or AWS signing: only MLflow's client speaks them
    request = urllib.request.Request(
        f"{without_credentials(tracking_uri).rstrip('/')}/api/2.0/mlflow/experiments/get-by-name?"
        + urlencode({"experiment_name": name}),
        headers={"Accept": "application/json"},
    )
    username = os.environ.get("MLFLOW_TRACKING_USERNAME") or (unquote(parts.username) if parts.username else None)
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD") or (unquote(parts.password or "") if parts.username else None)
    if username is not None and password is not None:
        credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {credentials}")
    elif os.environ.get("MLFLOW_TRACKING_TOKEN"):
        request.add_header("Authorization", f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}")
    try:
        handlers: list[Any] = [NoRedirect()]  # a redirect would carry the credentials to wherever it points
        if parts.scheme == "https":
            import ssl

            context = ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
            if os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
                context.load_cert_chain(os.environ["MLFLOW_TRACKING_CLIENT_CERT_PATH"])
            if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=context))
        with urllib.request.build_opener(*handlers).open(request, timeout=timeout) as reply:
            body = json.loads(reply.read(1 << 20))
    except urllib.error.HTTPError as error:
        if error.code != 404:
            return None
        try:
            code = json.loads(error.read(1 << 16)).get("error_code")
        except (ValueError, AttributeError, OSError):
            return None
        return TO_BE_CREATED if code == "RESOURCE_DOES_NOT_EXIST" else None
    except (OSError, ValueError):  # no reply, TLS or a certificate file that does not load, a body that is not JSON
        return None
    experiment = body.get("experiment") if isinstance(body, dict) else None
    if not isinstance(experiment, dict) or experiment.get("name") != name:
        return None
    identifier = experiment.get("experiment_id")
    return identifier if isinstance(identifier, str) and identifier.isdigit() else None


def without_credentials(uri: str) -> str:
    """A tracking URI fit for a manifest: ``https://user:pass@host`` loses ``user:pass@``."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))
    return uri


def mirror_to_mlflow(
    tracking_uri: str, model_name: str, model_uri: str, run_id: str, version: str, description: str = ""
) -> tuple[str | None, str]:
    """Register the model in MLflow and point its ``champion`` alias at it. Never raises."""
    try:
        # models:/m-<id> sources resolve through the global tracking URI, not the client's.
        with tracking_errors(tracking_uri, "registering the champion"), global_uris(tracking_uri):
            import mlflow

            mlflow_client = client(tracking_uri)
            # register_model resolves MLflow 3's models:/m-<id> to its logged model for any backend.
            registered = mlflow.register_model(model_uri, model_name, tags={"registry_version": version})
            if description:
                mlflow_client.update_model_version(model_name, registered.version, description=description)
            mlflow_client.set_registered_model_alias(model_name, CHAMPION_ALIAS, registered.version)
            mlflow_client.set_tag(run_id, OUTCOME_TAG, "deployed")
            _name_outcome(
                mlflow_client,
                run_id,
                "deployed",
                f"Deployed as registry version {version} (MLflow model version {registered.version}); "
                "every gate passed.",
            )
            return str(registered.version), "synced"
    except TrackingError as exc:
        return None, f"pending: {exc}"


OUTCOME_TAG = "gated_training.outcome"
NAME_SEPARATOR = " · "


def _name_outcome(mlflow_client: Any, run_id: str, verdict: str, description: str) -> None:
    """Put how the run ended in front of its name (what the MLflow runs list shows without adding a column) and in
    its description: ``deployed · random_forest-data-1a2b3c4d-20261204T180000Z``."""
    run = mlflow_client.get_run(run_id)
    base = (run.data.tags.get("mlflow.runName") or run.info.run_name or run_id).split(NAME_SEPARATOR)[-1]
    mlflow_client.set_tag(run_id, "mlflow.runName", f"{verdict}{NAME_SEPARATOR}{base}"[:250])
    mlflow_client.set_tag(run_id, "mlflow.note.content", description[:5000])


BLOCKED_BY_TAG = "gated_training.blocked_by"


def _mlflow_key(name: str) -> str:
    """A metric, param or tag key MLflow accepts (letters, digits, _ - . / space)."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)[:250]


def log_gate(tracking_uri: str, run_id: str, decision: dict[str, Any], files: dict[str, str]) -> str:
    """Put the model gate on the training run: each threshold as a ``gate.<name>`` param, each check's
    value as a ``gate.<check>`` metric and its verdict as a tag, the decision, the outcome of a blocked
    run (``gated_training.outcome=blocked`` with ``blocked_by``), and the reports as artifacts
    (``files``: artifact name → local path). Never raises: returns "synced" or "pending: <why>"."""
    import math

    try:
        with tracking_errors(tracking_uri, "recording the gate"):
            mlflow_client = client(tracking_uri)
            for name, value in (decision.get("thresholds") or {}).items():
                mlflow_client.log_param(run_id, _mlflow_key(f"gate.{name}"), value)
            for check in decision["checks"]:
                key = _mlflow_key(f"gate.{check['name']}")
                if isinstance(check.get("value"), (int, float)) and math.isfinite(check["value"]):
                    mlflow_client.log_metric(run_id, key, float(check["value"]))
                blocking = check.get("severity", "critical") == "critical"
                mlflow_client.set_tag(
                    run_id, f"{key}.verdict", "pass" if check["passed"] else ("fail" if blocking else "warning")
                )
            mlflow_client.set_tag(run_id, "gate.decision", decision["decision"])
            reasons = "; ".join(str(r) for r in decision.get("reasons") or [])
            if decision["decision"] == "deploy":
                _name_outcome(mlflow_client, run_id, "gate passed", "The model gate passed; deploying.")
            else:
                _name_outcome(
                    mlflow_client, run_id, "blocked by the model gate", f"Blocked by the model gate: {reasons}"
                )
            if decision["decision"] != "deploy":
                failed = {
                    check["name"]
                    for check in decision["checks"]
                    if not check["passed"] and check.get("severity", "critical") == "critical"
                }
                mlflow_client.set_tag(run_id, OUTCOME_TAG, "blocked")
                mlflow_client.set_tag(run_id, BLOCKED_BY_TAG, "drift" if failed == {"drift_action"} else "model")
            for name, path in files.items():
                if path and Path(path).is_file():
                    import shutil
                    import tempfile

                    with tempfile.TemporaryDirectory() as scratch:
                        named = Path(scratch, name)
                        shutil.copyfile(path, named)
                        mlflow_client.log_artifact(run_id, str(named), artifact_path="gate")
            return "synced"
    except TrackingError as exc:
        return f"pending: {exc}"


def tag_outcome(tracking_uri: str, run_id: str, outcome: str, blocked_by: str | None = None) -> str:
    """``gated_training.outcome`` (``deployed``, ``blocked``, ``failed``) on the training run. Never raises."""
    try:
        with tracking_errors(tracking_uri, f"tagging the run {outcome}"):
            mlflow_client = client(tracking_uri)
            mlflow_client.set_tag(run_id, OUTCOME_TAG, outcome)
            if blocked_by:
                mlflow_client.set_tag(run_id, BLOCKED_BY_TAG, blocked_by)
            verdict = f"{outcome} by {blocked_by}" if blocked_by else outcome
            _name_outcome(mlflow_client, run_id, verdict, f"The run ended {verdict}.")
            return "synced"
    except TrackingError as exc:
        return f"pending: {exc}"


@contextmanager
def outcome_failed_on_error(training_report_path: str) -> Iterator[None]:
    """A step after training that raises marks the training run ``failed`` in MLflow, then re-raises."""
    try:
        yield
    except BaseException:
        try:
            import json

            training = json.loads(Path(training_report_path).read_text())
            tagged = tag_outcome(training["tracking_uri"], training["mlflow_run_id"], "failed")
            logs.event("mlflow.outcome_tag", f"MLflow outcome tag: {tagged}", status=tagged, outcome="failed")
        except Exception:
            pass
        raise


def log_monitoring(
    tracking_uri: str,
    experiment: str,
    run_name: str,
    tags: dict[str, str],
    metrics: dict[str, float],
    files: dict[str, str],
) -> str:
    """One MLflow run per served version and monitoring window, in the monitoring experiment: the window's numbers
    as metrics, ``registry_version``, the role and the outcome as tags, the reports as artifacts (``files``: artifact
    name → local path). Never raises: returns "synced" or "pending: <why>"."""
    import math
    import shutil
    import tempfile

    try:
        experiment_id = ensure_experiment(tracking_uri, experiment)
        with tracking_errors(tracking_uri, "recording the monitoring window"):
            mlflow_client = client(tracking_uri)
            run = mlflow_client.create_run(
                experiment_id, run_name=run_name[:250], tags={_mlflow_key(k): str(v)[:5000] for k, v in tags.items()}
            )
            run_id = run.info.run_id
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    mlflow_client.log_metric(run_id, _mlflow_key(name), float(value))
            for name, path in files.items():
                if path and Path(path).is_file():
                    with tempfile.TemporaryDirectory() as scratch:
                        named = Path(scratch, name)
                        shutil.copyfile(path, named)
                        mlflow_client.log_artifact(run_id, str(named), artifact_path="monitoring")
            mlflow_client.set_terminated(run_id, "FINISHED")
            return "synced"
    except TrackingError as exc:
        return f"pending: {exc}"
