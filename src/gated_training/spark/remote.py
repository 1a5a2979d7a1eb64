"""A Spark step on the cluster, seen from its component: the request, the SparkApplication, the result.

KFP cannot create a custom resource, so a Spark step's component does it. When the pipeline was compiled with a
Spark image and a staging prefix (``SPARK_IMAGE``, ``SPARK_STAGING_URI``: ``pipelines/cluster.py`` sets the
variables below in the step's pod), :func:`run_remotely`:

1. writes ``request.json`` under ``<staging>/<run id>/<application>/``: the step, its arguments (URIs and
   settings, never a secret) and the names of its outputs;
2. creates the SparkApplication (``application.run_application``: the run's service account, the Spark
   image, the step's Spark resources, the step's secrets by name), logs each state, waits with a deadline,
   and deletes it;
3. reads ``result.json``, which the driver (``steps/spark_driver.py``) writes in every case it can: a driver
   that failed on purpose (a batch that cannot be read) fails the step with the driver's own error and words,
   as the pandas engine would; one that wrote nothing fails it with the operator's reason;
4. copies the outputs into the component's output paths: files as they are, a Parquet folder part by part
   (only after Spark's ``_SUCCESS`` marker), and deletes the staging prefix: after a failure too (what it
   knows of it: the request, the result, the inputs, the outputs' files and parts).

Every byte read back from the bucket is checked: ``result.json`` has a size limit and one exact shape, an
output name must be one the request asked for, a part file's name must be Spark's.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gated_training import errors, logs
from gated_training.data import storage
from gated_training.errors import ConfigError, GatedTrainingError
from gated_training.kubernetes_names import is_dns1123_label, is_dns1123_subdomain
from gated_training.spark.application import (
    DRIVER_ENV,
    SparkApplicationError,
    SparkJob,
    SparkOperatorClient,
    SparkResources,
    application_name,
    run_application,
)

IMAGE_ENV = "GATED_TRAINING_SPARK_IMAGE"
STAGING_ENV = "GATED_TRAINING_SPARK_STAGING_URI"
SERVICE_ACCOUNT_ENV = "GATED_TRAINING_SPARK_SERVICE_ACCOUNT"
NAMESPACE_ENV = "GATED_TRAINING_SPARK_NAMESPACE"  # default: the pod's own namespace
RESOURCES_ENV = "GATED_TRAINING_SPARK_RESOURCES"  # the step's SparkResources as JSON (the step table's row)
DEADLINE_ENV = "GATED_TRAINING_SPARK_DEADLINE_SECONDS"
SECRETS_ENV = "GATED_TRAINING_SPARK_SECRETS"  # {"gcp_key_secret": name, "env": {VARIABLE: [secret, key]}}
POLL_ENV = "GATED_TRAINING_SPARK_POLL_SECONDS"  # how often the application's state is read (default 5 s)
KUBE_API_ENV = "GATED_TRAINING_SPARK_KUBE_API_URL"  # an authenticated endpoint (kubectl proxy, the tests' stand-in)
# Plain settings of the step's pod that the driver must see alike (never a secret: those go by name).
FORWARDED_ENV = (
    "KFP_POD_NAME",  # run_context.on_cluster: the driver refuses pod-local state as the step would
    "GATED_TRAINING_ALLOW_POD_LOCAL_STATE",
    "GATED_TRAINING_REGISTRY_UNSIGNED",
    "GATED_TRAINING_GCS_RETRY_SECONDS",
)
POD_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

REQUEST_FORMAT = 1
MAX_RESULT_BYTES = 1 << 20
MAX_INPUT_BYTES = 64 << 20  # a report or a profile the step reads, never a table
MAX_MESSAGE_CHARS = 4000
DEFAULT_DEADLINE_SECONDS = 3600.0
OUTPUT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PART_FILE = re.compile(r"^part-[A-Za-z0-9._-]{1,200}$")
SUCCESS_MARKER = "_SUCCESS"
# The errors a driver may report by kind; anything else arrives as a GatedTrainingError with its words.
ERROR_KINDS: dict[str, type[GatedTrainingError]] = {
    kind.__name__: kind
    for kind in (
        errors.ConfigError,
        errors.DataError,
        errors.SuiteError,
        errors.TrackingError,
        errors.RegistryError,
        errors.GatedTrainingError,
    )
}


@dataclass(frozen=True, kw_only=True)
class RemoteSettings:
    image: str
    staging_uri: str
    service_account: str
    namespace: str
    resources: SparkResources = field(default_factory=SparkResources)
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS
    gcp_key_secret: str = ""
    env_secrets: dict[str, tuple[str, str]] = field(default_factory=dict)
    api_url: str = ""
    poll_seconds: float = 5.0
    env: dict[str, str] = field(default_factory=dict)


def remote_settings(environ: dict[str, str] | None = None) -> RemoteSettings | None:
    """The cluster's Spark settings from the pod's environment, or None: no Spark image was compiled in (the
    step runs Spark in its own process, as ``make run ENGINE=spark`` does), or this is the driver itself."""
    env = dict(os.environ if environ is None else environ)
    if env.get(DRIVER_ENV) or not env.get(IMAGE_ENV, "").strip():
        return None

    def required(variable: str) -> str:
        value = env.get(variable, "").strip()
        if not value:
            raise ConfigError(f"{variable} is not set: a Spark step on the cluster needs it (pipelines/cluster.py)")
        return value

    image = required(IMAGE_ENV)
    staging = required(STAGING_ENV).rstrip("/")
    if not storage.is_gcs(staging) and not os.path.isabs(staging):
        raise ConfigError(f"{STAGING_ENV}={staging!r}: expected a gs:// prefix (or, for tests, an absolute path)")
    service_account = required(SERVICE_ACCOUNT_ENV)
    namespace = env.get(NAMESPACE_ENV, "").strip()
    if not namespace:
        try:
            namespace = Path(POD_NAMESPACE_FILE).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"{NAMESPACE_ENV} is not set and the pod's namespace file {POD_NAMESPACE_FILE} cannot be read"
            ) from exc
    try:
        resources = SparkResources(**json.loads(env.get(RESOURCES_ENV) or "{}"))
        secrets = json.loads(env.get(SECRETS_ENV) or "{}")
        deadline = float(env.get(DEADLINE_ENV) or DEFAULT_DEADLINE_SECONDS)
        poll = float(env.get(POLL_ENV) or 5.0)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the Spark settings in the step's environment are malformed: {exc}") from exc
    if not 60 <= deadline <= 7 * 86400:
        raise ConfigError(f"{DEADLINE_ENV}={deadline}: expected 60 s to 7 days")
    if not 0.05 <= poll <= 60:
        raise ConfigError(f"{POLL_ENV}={poll}: expected 0.05 to 60 s")
    if not isinstance(secrets, dict) or set(secrets) - {"gcp_key_secret", "env"}:
        raise ConfigError(f"{SECRETS_ENV}: expected an object with gcp_key_secret and env")
    gcp_key_secret = str(secrets.get("gcp_key_secret") or "")
    if gcp_key_secret and not is_dns1123_subdomain(gcp_key_secret):
        raise ConfigError(f"{SECRETS_ENV}: gcp_key_secret={gcp_key_secret!r} is not a secret name")
    env_secrets: dict[str, tuple[str, str]] = {}
    for variable, pair in (secrets.get("env") or {}).items():
        if (
            not re.match(r"^[A-Z_][A-Z0-9_]*$", str(variable))
            or not isinstance(pair, list)
            or len(pair) != 2
            or not is_dns1123_subdomain(str(pair[0]))
            or not re.match(r"^[-._a-zA-Z0-9]{1,253}$", str(pair[1]))
        ):
            raise ConfigError(f"{SECRETS_ENV}: {variable!r}: expected [secret name, key]")
        env_secrets[str(variable)] = (str(pair[0]), str(pair[1]))
    if not is_dns1123_label(namespace):
        raise ConfigError(f"the namespace {namespace!r} is not a Kubernetes name")
    return RemoteSettings(
        image=image,
        staging_uri=staging,
        service_account=service_account,
        namespace=namespace,
        resources=resources,
        deadline_seconds=deadline,
        gcp_key_secret=gcp_key_secret,
        env_secrets=env_secrets,
        api_url=env.get(KUBE_API_ENV, "").strip(),
        poll_seconds=poll,
        env={name: env[name] for name in FORWARDED_ENV if env.get(name)},
    )


@dataclass(frozen=True, kw_only=True)
class StepFiles:
    """The step's small local inputs the driver needs (``inputs``: a report the step reads, sent through the
    bucket), and where the component wants each output: ``files`` (JSON, HTML) and ``folders`` (Parquet written
    by Spark). Each is named after the step's argument. An input given as an empty path is optional and not
    given: it is neither sent nor named in the request, and the driver leaves the step's default."""

    inputs: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", {name: path for name, path in self.inputs.items() if path})
        for name in [*self.inputs, *self.files, *self.folders]:
            if not OUTPUT_NAME.match(name):
                raise ConfigError(f"Spark step output {name!r}: not an output name")


def request_document(step: str, arguments: dict[str, Any], files: StepFiles, prefix: str) -> dict[str, Any]:
    return {
        "format": REQUEST_FORMAT,
        "step": step,
        "prefix": prefix,
        "arguments": arguments,
        "inputs": sorted(files.inputs),
        "outputs": {"files": sorted(files.files), "folders": sorted(files.folders)},
    }


def output_uri(prefix: str, name: str) -> str:
    return storage.join_uri(prefix, "outputs", name)


def input_uri(prefix: str, name: str) -> str:
    return storage.join_uri(prefix, "inputs", name)


def read_result(prefix: str, step: str) -> dict[str, Any] | None:
    """The driver's ``result.json``, checked, or None when it wrote none (it never started, or was killed)."""
    uri = storage.join_uri(prefix, "result.json")
    if not storage.exists(uri):
        return None
    try:
        raw = storage.read_bytes(uri, max_bytes=MAX_RESULT_BYTES)
    except errors.DataError as exc:
        raise SparkApplicationError(
            f"{uri}: the driver's result is not readable within {MAX_RESULT_BYTES} bytes"
        ) from exc
    try:
        result = json.loads(raw)
    except ValueError as exc:
        raise SparkApplicationError(f"{uri}: the driver's result is not JSON: {exc}") from exc
    error = result.get("error") if isinstance(result, dict) else None
    shape_ok = (
        isinstance(result, dict)
        and set(result) <= {"format", "step", "ok", "error"}
        and result.get("format") == REQUEST_FORMAT
        and result.get("step") == step
        and isinstance(result.get("ok"), bool)
        and (
            (result["ok"] and error is None)
            or (
                not result["ok"]
                and isinstance(error, dict)
                and set(error) == {"kind", "message"}
                and isinstance(error["kind"], str)
                and isinstance(error["message"], str)
            )
        )
    )
    if not shape_ok:
        raise SparkApplicationError(
            f"{uri}: the driver's result is not of the expected shape (format, step, ok, error)"
        )
    return result


def driver_error(result: dict[str, Any]) -> GatedTrainingError:
    """The driver's error as the step would have raised it in-process (its kind, its words)."""
    error = result["error"]
    kind = ERROR_KINDS.get(error["kind"], GatedTrainingError)
    message = error["message"][:MAX_MESSAGE_CHARS]
    return kind(message if kind is not GatedTrainingError else f"{error['kind']}: {message}")


def copy_outputs(prefix: str, files: StepFiles) -> None:
    """Each output from the staging prefix into the component's paths; a folder only when Spark committed it."""
    for name, local in files.files.items():
        if not storage.exists(output_uri(prefix, name)):
            raise SparkApplicationError(
                f"{output_uri(prefix, name)}: the driver reported success, but this output is missing"
            )
        _copy_file(output_uri(prefix, name), local)
    for name, local in files.folders.items():
        source = output_uri(prefix, name)
        names = storage.list_files(source)
        if SUCCESS_MARKER not in names:
            raise SparkApplicationError(f"{source}: Spark did not commit this output (no {SUCCESS_MARKER} marker)")
        parts = [part for part in names if PART_FILE.match(part) and not part.endswith(".crc")]
        if not parts:
            raise SparkApplicationError(f"{source}: the output holds no part files")
        Path(local).mkdir(parents=True, exist_ok=True)
        for part in parts:
            _copy_file(storage.join_uri(source, part), str(Path(local, part)))


def _copy_file(uri: str, local: str) -> None:
    Path(local).parent.mkdir(parents=True, exist_ok=True)
    with open(local, "wb") as handle:
        for chunk in storage.iter_chunks(uri):
            handle.write(chunk)


def delete_prefix(prefix: str, files: StepFiles) -> None:
    """The request, the result and the outputs: nothing of a finished step stays in the staging prefix."""
    if not storage.is_gcs(prefix):
        import shutil

        shutil.rmtree(prefix, ignore_errors=True)
        return
    for name in ("request.json", "result.json"):
        storage.delete(storage.join_uri(prefix, name))
    for name in files.inputs:
        storage.delete(input_uri(prefix, name))
    for name in files.files:
        storage.delete(output_uri(prefix, name))
    for name in files.folders:
        folder = output_uri(prefix, name)
        for part in storage.list_files(folder):
            storage.delete(storage.join_uri(folder, part))


def read_record(path: str, build: Callable[[dict[str, Any]], Any], what: str) -> Any:
    """The step's record the driver wrote (copied to ``path``), built into the step's outcome; a record of
    another shape is refused by name, never half-read."""
    try:
        document = json.loads(storage.read_bytes(path, max_bytes=MAX_INPUT_BYTES))
        if not isinstance(document, dict):
            raise TypeError(f"a JSON {type(document).__name__}, not an object")
        return build(document)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise SparkApplicationError(f"{what}: the driver's record is not of the expected shape ({exc})") from exc


def finite_number(name: str, value: Any, optional: bool = False) -> float | None:
    """A number of a driver's record: finite, not a boolean (None only when ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: {value!r} is not a finite number")
    return float(value)


def named_numbers(name: str, value: Any) -> dict[str, float | None]:
    """An object of named scores in a driver's record: text names, each a finite number or None."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name}: not an object of named scores")
    return {k: finite_number(f"{name}.{k}", v, optional=True) for k, v in value.items()}


def run_on_cluster(
    step: str, arguments: dict[str, Any], files: StepFiles, *, record: str, build: Callable[[dict[str, Any]], Any]
) -> Any | None:
    """On the cluster (:func:`remote_settings` is set): run ``step`` in a SparkApplication and return the record it
    wrote to ``record``, built by ``build`` (which refuses any other shape). None when the step runs in this
    process: Spark local, or the driver itself."""
    settings = remote_settings()
    if settings is None:
        return None
    run_remotely(step, arguments, files, settings)
    return read_record(record, build, step)


def run_remotely(
    step: str,
    arguments: dict[str, Any],
    files: StepFiles,
    settings: RemoteSettings,
    *,
    client: SparkOperatorClient | None = None,
    log: Callable[[str], None] | None = None,
) -> None:
    """Run ``step`` in a SparkApplication and copy its outputs here; raise the driver's error if it failed."""
    run_id = logs.bound_value("run_id") or "run"
    name = application_name(step, run_id)
    prefix = storage.join_uri(settings.staging_uri, re.sub(r"[^A-Za-z0-9._-]", "-", run_id), name)
    request_uri = storage.join_uri(prefix, "request.json")
    for input_name, local in files.inputs.items():
        storage.write_bytes(input_uri(prefix, input_name), storage.read_bytes(local, max_bytes=MAX_INPUT_BYTES))
    storage.write_bytes(request_uri, json.dumps(request_document(step, arguments, files, prefix)).encode())
    job = SparkJob(
        step=step,
        request_uri=request_uri,
        namespace=settings.namespace,
        image=settings.image,
        service_account=settings.service_account,
        run_id=run_id,
        resources=settings.resources,
        gcp_key_secret=settings.gcp_key_secret,
        env_secrets=settings.env_secrets,
        env=settings.env,
    )
    say = log or (lambda message: logs.event("spark.application", message, application=name))
    try:
        _run_and_collect(client or SparkOperatorClient(settings.api_url), job, settings, name, prefix, files, say)
    except BaseException:
        # A failed step leaves nothing either: its copies of the inputs (the batch itself, for validate-data)
        # would otherwise stay in the bucket. A deletion that fails is said, and the step's own error raised.
        try:
            delete_prefix(prefix, files)
        except Exception as exc:  # the step's error matters more than the clean-up's
            say(f"the staging prefix {prefix} of the failed step was not deleted: {str(exc)[:300]}")
        raise
    delete_prefix(prefix, files)


def _run_and_collect(
    client: SparkOperatorClient,
    job: SparkJob,
    settings: RemoteSettings,
    name: str,
    prefix: str,
    files: StepFiles,
    say: Callable[[str], None],
) -> None:
    """Run the application to its end, raise the driver's (or the operator's) error, copy the outputs here."""
    failure: SparkApplicationError | None = None
    try:
        run_application(
            client,
            job,
            deadline_seconds=settings.deadline_seconds,
            poll_seconds=settings.poll_seconds,
            log=say,
            name=name,
        )
    except SparkApplicationError as exc:
        failure = exc
    result = read_result(prefix, job.step)
    if result is not None and not result["ok"]:
        raise driver_error(result) from failure
    if failure is not None:
        raise failure
    if result is None:
        raise SparkApplicationError(f"SparkApplication {name} completed but its driver wrote no result under {prefix}")
    copy_outputs(prefix, files)


def resources_json(resources: SparkResources) -> str:
    return json.dumps(asdict(resources), sort_keys=True)
