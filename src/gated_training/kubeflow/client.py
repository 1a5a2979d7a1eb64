"""Upload, run and schedule the compiled pipeline on a Kubeflow Pipelines backend (``kfp.Client``).

Like ``local_run``, this module imports kfp only inside functions: the pipeline steps never
need it. Every backend error comes back as :class:`KubeflowError` with a message that says
what was attempted, on which host, and what to do about it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from gated_training.errors import GatedTrainingError
from gated_training.step_table import MAIN_LINE, STEP, STEPS

TERMINAL_RUN_STATES = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}
# A real backend's task_details carry Argo node names: the task key ("deploy-model"), its
# "<task>-driver", an "executor" pod per task, "condition-N"/"condition-N-driver" per branch, "root".
# kfp.local-style display names are accepted too. Both map to the step id.
TASK_NAMES = {**{step.display_name: step.id for step in STEPS}, **{step.id: step.id for step in STEPS}}
# Images a cluster cannot pull: built here and never pushed.
UNPULLABLE_IMAGE_PREFIXES = ("localhost/", "localhost:", "127.0.0.1", "[::1]")


class KubeflowError(GatedTrainingError):
    """The Kubeflow Pipelines backend could not be reached or refused a request."""


@dataclass(frozen=True, kw_only=True)
class Connection:
    """Where the backend is and who we are. Unset fields fall back to kfp's own discovery:
    ``KF_PIPELINES_ENDPOINT``, the in-cluster service and its service-account token, then the
    kube context (through the API server proxy)."""

    host: str | None = None
    namespace: str | None = None
    token: str | None = field(default=None, repr=False)
    sa_token_path: str | None = None
    kube_context: str | None = None
    ca_cert: str | None = None
    ui_host: str | None = None
    shared: bool = False  # the pipeline lives in the shared space, not the namespace (multi-user)

    @property
    def target(self) -> str:
        return self.host or os.environ.get("KF_PIPELINES_ENDPOINT") or "the in-cluster or kube-context endpoint"

    def run_url(self, run_id: str) -> str:
        base = (
            self.ui_host
            or os.environ.get("KF_PIPELINES_UI_ENDPOINT")
            or self.host
            or os.environ.get("KF_PIPELINES_ENDPOINT")
            or ""
        )
        base = base.rstrip("/") if base.startswith("http") else (f"http://{base}" if base else "/pipeline")
        return f"{base}/#/runs/details/{run_id}"


def _api_exception_types() -> tuple[type[BaseException], ...]:
    import kfp_server_api
    import urllib3

    return kfp_server_api.ApiException, urllib3.exceptions.HTTPError


def _server_message(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        document = json.loads(body or "")
    except (TypeError, ValueError):
        return str(body or "").strip()[:300]
    if isinstance(document, dict):
        return str(document.get("error_message") or document.get("message") or document.get("error") or "")[:300]
    return ""


def describe_error(exc: BaseException, action: str, connection: Connection) -> KubeflowError:
    """Turn a kfp/urllib3 exception into a message that says what to do."""
    import kfp_server_api

    where = connection.target
    if isinstance(exc, kfp_server_api.ApiException):
        detail = _server_message(exc.body)
        suffix = f": {detail}" if detail else ""
        if exc.status == 401:
            return KubeflowError(
                f"{action}: {where} rejected our credentials (401 Unauthorized){suffix}. Provide a token with "
                "KF_PIPELINES_TOKEN or --token-file, or --sa-token-path for a projected service-account token"
            )
        if exc.status == 403:
            namespace = connection.namespace or "the default namespace"
            return KubeflowError(
                f"{action}: permission denied (403 Forbidden) in {namespace} on {where}{suffix}. "
                "Use --namespace for your profile namespace, or ask for access to it"
            )
        if exc.status == 404:
            return KubeflowError(f"{action}: not found (404) on {where}{suffix}")
        if exc.status == 409:
            return KubeflowError(f"{action}: already exists (409 Conflict) on {where}{suffix}")
        if exc.status == 0 or exc.status is None:  # kfp_server_api maps SSL errors to status 0
            return KubeflowError(
                f"{action}: TLS error talking to {where}: {exc.reason}. Use --ca-cert for a private CA"
            )
        return KubeflowError(f"{action}: {where} answered {exc.status} {exc.reason or ''}{suffix}".rstrip())
    reason = getattr(exc, "reason", None) or exc
    return KubeflowError(
        f"{action}: cannot reach Kubeflow Pipelines at {where} ({reason}). Check --host or KF_PIPELINES_ENDPOINT "
        "(e.g. `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80` then --host http://localhost:8080)"
    )


@contextlib.contextmanager
def api_call(action: str, connection: Connection) -> Iterator[None]:
    """Map backend errors to KubeflowError and keep kfp's own prints and warnings off the terminal."""
    errors = _api_exception_types()
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except errors as exc:
        raise describe_error(exc, action, connection) from exc


@dataclass(frozen=True, kw_only=True)
class Backend:
    """What the backend's healthz says: its release (``tag_name``) and whether it is multi-user."""

    tag_name: str
    version: tuple[int, ...] | None
    multi_user: bool


def read_backend(client: Any) -> Backend:
    """GET healthz as raw JSON: kfp_server_api's model drops ``tag_name``. Every backend from 2.0
    writes ``{"commit_sha": …, "tag_name": …, "multi_user": …}`` (``backend/src/apiserver/main.go``)."""
    from gated_training.kubeflow.spec import parse_version

    response = client._healthz_api.healthz_service_get_healthz(_preload_content=False)
    try:
        document = json.loads(response.data or b"{}")
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    # Printed and put in messages: only what a release tag holds, never a reply's control characters.
    tag = re.sub(r"[^0-9A-Za-z._+-]", "", str(document.get("tag_name") or ""))[:40] or "unknown"
    return Backend(tag_name=tag, version=parse_version(tag), multi_user=bool(document.get("multi_user")))


def check_backend_version(backend: Backend, needed: tuple[tuple[int, ...], list[str]], connection: Connection) -> None:
    """Refuse a backend older than what the YAML needs; a backend that does not say (``unknown``) passes."""
    from gated_training.kubeflow.spec import version_text

    floor, reasons = needed
    if backend.version is not None and backend.version < floor:
        why = "; ".join(reasons) or "the support floor"
        raise KubeflowError(
            f"{connection.target} runs KFP {backend.tag_name}, older than the {version_text(floor)} this pipeline "
            f"needs ({why}). Upgrade Kubeflow Pipelines, or compile without those features (`make compile`)"
        )


def connect(connection: Connection, needs: tuple[tuple[int, ...], list[str]] | None = None) -> Any:
    """A ``kfp.Client`` for the connection, checked with one health request: a multi-user backend
    needs a namespace, and a backend older than ``needs`` (``pipeline_spec.required_backend``) is
    refused. The client carries ``backend`` (:class:`Backend`)."""
    import kfp
    from kfp.client import set_volume_credentials

    class _Client(kfp.Client):
        # kfp retries the health check 5 times, 5 s apart, even on 401: fail fast and clearly instead,
        # and remember the answer so connecting costs one request.
        def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
            if getattr(self, "_health", None) is None:
                self._health = read_backend(self)
            return self._health

    credentials = None
    if connection.sa_token_path:
        if not Path(connection.sa_token_path).is_file():
            raise KubeflowError(f"--sa-token-path {connection.sa_token_path}: no such file")
        credentials = set_volume_credentials.ServiceAccountTokenVolumeCredentials(path=connection.sa_token_path)
    with api_call("connecting", connection):
        client = _Client(
            host=connection.host,
            namespace=connection.namespace or "kubeflow",
            existing_token=connection.token,
            credentials=credentials,
            kube_context=connection.kube_context,
            ssl_ca_cert=connection.ca_cert,
            ui_host=connection.ui_host,
        )
        if connection.namespace:
            client._context_setting["namespace"] = connection.namespace  # also when it is literally "kubeflow"
        backend = client.get_kfp_healthz()
    if backend.multi_user and not client.get_user_namespace():
        raise KubeflowError(
            f"{connection.target} is a multi-user Kubeflow: pass --namespace with your profile namespace"
        )
    if needs is not None:
        check_backend_version(backend, needs, connection)
    client.backend = backend
    return client


def pipeline_namespace(client: Any, connection: Connection) -> str | None:
    """Where the pipeline lives: the profile namespace on a multi-user backend (a private pipeline),
    unless ``--shared``; None (the shared space) otherwise. kfp.Client.get_pipeline_id lists only
    shared pipelines, so lookups here always pass this namespace."""
    backend = getattr(client, "backend", None)
    if connection.shared or backend is None or not backend.multi_user:
        return None
    return connection.namespace


def read_token(token_file: str | None) -> str | None:
    """A bearer token from --token-file, else KF_PIPELINES_TOKEN; never from the command line itself."""
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise KubeflowError(f"--token-file {token_file}: {exc.strerror}") from exc
        if not token:
            raise KubeflowError(f"--token-file {token_file} is empty")
        return token
    return os.environ.get("KF_PIPELINES_TOKEN") or None


# ---- what is uploaded ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PipelinePackage:
    path: Path
    name: str
    sha256: str
    parameters: dict[str, tuple[str, Any]]
    needs: tuple[tuple[int, ...], list[str]] = ((2, 2), [])  # pipeline_spec.required_backend
    images: list[str] = field(default_factory=list)


def read_package(path: Path) -> PipelinePackage:
    if not path.is_file():
        from gated_training.kubeflow.spec import missing_pipeline_message

        raise KubeflowError(missing_pipeline_message(path))
    content = path.read_bytes()
    try:
        documents = [document for document in yaml.safe_load_all(content) if document]
        name = documents[0]["pipelineInfo"]["name"]
    except (yaml.YAMLError, IndexError, KeyError, TypeError) as exc:
        raise KubeflowError(f"{path} is not a compiled KFP pipeline: {exc}") from exc
    # The same typed parameters `gated-training run` reads, so local and cluster runs coerce alike.
    from gated_training.kubeflow.spec import backend_floor, component_inputs

    return PipelinePackage(
        path=path,
        name=name,
        sha256=hashlib.sha256(content).hexdigest(),
        parameters=component_inputs(path),
        needs=backend_floor(documents),
        images=_images(documents[0]),
    )


def _images(spec: dict[str, Any]) -> list[str]:
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    return sorted({e["container"]["image"] for e in executors.values() if "container" in e})


def check_pullable(package: PipelinePackage) -> None:
    """Refuse a YAML whose image only this machine has (``localhost/…``, as ``make image`` builds it)."""
    local = [image for image in package.images if image.startswith(UNPULLABLE_IMAGE_PREFIXES)]
    if local:
        raise KubeflowError(
            f"{package.path} runs the image {local[0]}, which no cluster can pull: push the image (`make image PUSH=1 "
            "IMAGE=<registry>/kfp-gated-training:<tag>`) and compile for it (`make compile IMAGE=…`) first"
        )


def checkout_revision(directory: Path) -> tuple[str, bool]:
    """(commit, dirty) of the git checkout holding ``directory``; ("nogit", False) outside git.

    ``compiled/`` does not count as dirty: compiling for your registry (``IMAGE=...``) rewrites
    it, and the spec hash in the version name already tells those specs apart.
    """
    try:
        commit = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            [
                "git",
                "-C",
                str(directory),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ":(top)",
                ":(top,exclude)compiled/",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "nogit", False
    return commit, bool(status.strip())


def version_name(package_version: str, commit: str, dirty: bool, spec_sha256: str) -> str:
    """``<package version>-<commit>[-dirty]-<spec hash>``: the same name always means the same spec."""
    return f"{package_version}-{commit[:7]}{'-dirty' if dirty else ''}-{spec_sha256[:8]}"


def default_version_name(package: PipelinePackage) -> str:
    from gated_training import __version__

    commit, dirty = checkout_revision(package.path.resolve().parent)
    return version_name(__version__, commit, dirty, package.sha256)


# ---- pipelines and versions ---------------------------------------------------------------------


def _equals(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


def find_pipeline_id(client: Any, name: str, connection: Connection) -> str | None:
    """The pipeline named ``name`` in its namespace (``pipeline_namespace``), all pages."""
    namespace = pipeline_namespace(client, connection)
    where = f" in namespace {namespace!r}" if namespace else ""
    found, token = [], ""
    while True:
        with api_call(f"looking up pipeline {name!r}{where}", connection):
            response = client.list_pipelines(
                page_token=token, page_size=100, filter=_equals("display_name", name), namespace=namespace
            )
        found += [p for p in (response.pipelines or []) if p.display_name == name]
        token = response.next_page_token or ""
        if not token:
            break
    if len(found) > 1:
        raise KubeflowError(f"{len(found)} pipelines are named {name!r}{where}: pass --pipeline-name with another name")
    return found[0].pipeline_id if found else None


def find_version_id(client: Any, pipeline_id: str, name: str, connection: Connection) -> str | None:
    with api_call(f"looking up pipeline version {name!r}", connection):
        response = client.list_pipeline_versions(pipeline_id=pipeline_id, filter=_equals("display_name", name))
    versions = [v for v in (response.pipeline_versions or []) if v.display_name == name]
    return versions[0].pipeline_version_id if versions else None


@dataclass(frozen=True, kw_only=True)
class UploadResult:
    pipeline_id: str
    version_id: str
    version_name: str
    created_pipeline: bool
    created_version: bool


def upload(
    client: Any,
    connection: Connection,
    package: PipelinePackage,
    version: str,
    pipeline_name: str | None = None,
    description: str = "",
) -> UploadResult:
    """Create the pipeline if needed, then the named version; an existing name is left as it is."""
    name = pipeline_name or package.name
    pipeline_id = find_pipeline_id(client, name, connection)
    created_pipeline = pipeline_id is None
    if pipeline_id is None:
        # KFP names a new pipeline's first version after the pipeline; the named version follows.
        with api_call(f"uploading pipeline {name!r}", connection):
            pipeline_id = client.upload_pipeline(
                str(package.path),
                pipeline_name=name,
                description=description or None,
                namespace=pipeline_namespace(client, connection),
            ).pipeline_id
    existing = find_version_id(client, pipeline_id, version, connection)
    if existing:
        return UploadResult(
            pipeline_id=pipeline_id,
            version_id=existing,
            version_name=version,
            created_pipeline=created_pipeline,
            created_version=False,
        )
    with api_call(f"uploading version {version!r} of pipeline {name!r}", connection):
        uploaded = client.upload_pipeline_version(
            str(package.path), pipeline_version_name=version, pipeline_id=pipeline_id, description=description or None
        )
    return UploadResult(
        pipeline_id=pipeline_id,
        version_id=uploaded.pipeline_version_id,
        version_name=version,
        created_pipeline=created_pipeline,
        created_version=True,
    )


def resolve_version(client: Any, connection: Connection, pipeline_name: str, version: str) -> tuple[str, str]:
    """(pipeline id, version id), or an error that says how to upload it."""
    pipeline_id = find_pipeline_id(client, pipeline_name, connection)
    if pipeline_id is None:
        namespace = pipeline_namespace(client, connection)
        space = f"namespace {namespace!r}" if namespace else "the shared pipelines"
        other = "--shared" if namespace else "--namespace without --shared"
        raise KubeflowError(
            f"pipeline {pipeline_name!r} not found in {space} on {connection.target}: run `make upload` "
            f"first (or pass {other} if it was uploaded there)"
        )
    version_id = find_version_id(client, pipeline_id, version, connection)
    if version_id is None:
        raise KubeflowError(
            f"pipeline {pipeline_name!r} has no version {version!r} on {connection.target}: "
            "run `make upload` from this checkout, or pass --version with an uploaded version"
        )
    return pipeline_id, version_id


def ensure_experiment(client: Any, connection: Connection, name: str) -> str:
    with api_call(f"creating or finding experiment {name!r}", connection):
        return client.create_experiment(name=name, namespace=connection.namespace).experiment_id


# ---- runs ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    experiment: str
    run_name: str
    parameters: dict[str, Any]
    package: PipelinePackage | None = None  # a one-off run of the local YAML...
    version: tuple[str, str] | None = None  # ...or an uploaded (pipeline id, version id)
    pipeline_root: str | None = None
    service_account: str | None = None


def submit(client: Any, connection: Connection, request: RunRequest) -> str:
    """Create the run; returns its id. Caching stays as compiled (off for every step)."""
    experiment_id = ensure_experiment(client, connection, request.experiment)
    if request.package:
        source = {"pipeline_package_path": str(request.package.path)}
    else:
        assert request.version is not None  # a RunRequest names a package or a version
        source = {"pipeline_id": request.version[0], "version_id": request.version[1]}
    with api_call(f"creating run {request.run_name!r}", connection):
        run = client.run_pipeline(
            experiment_id=experiment_id,
            job_name=request.run_name,
            params=request.parameters,
            pipeline_root=request.pipeline_root,
            service_account=request.service_account,
            **source,
        )
    return run.run_id


@dataclass(frozen=True, kw_only=True)
class RunResult:
    run_id: str
    state: str
    outcome: str
    tasks: list[tuple[str, str]]
    error: str


def run_result(run: Any) -> RunResult:
    """The run's outcome from what a real backend returns: ``task_details`` named after Argo nodes
    (task keys, ``-driver`` nodes, ``executor`` pods, ``condition-N``), with API states. The run
    stopped at the last main-line step that succeeded; that gate's ``stops_run`` is the outcome
    (each gate writes the run summary when the run stops at it)."""
    details = getattr(run, "run_details", None)
    tasks = [(t.display_name or t.task_id, t.state or "") for t in (getattr(details, "task_details", None) or [])]
    steps = {TASK_NAMES[name]: state for name, state in tasks if name in TASK_NAMES}
    state = run.state or "RUNTIME_STATE_UNSPECIFIED"
    succeeded = [step for step in MAIN_LINE if steps.get(step) == "SUCCEEDED"]
    failed = [step for step in MAIN_LINE if steps.get(step) == "FAILED"]
    if failed:
        outcome = f"failed at {failed[0]}"
    elif state in ("FAILED", "CANCELED"):
        outcome = "failed" if state == "FAILED" else "canceled"
    elif state == "SUCCEEDED" and succeeded and STEP[succeeded[-1]].stops_run:
        outcome = STEP[succeeded[-1]].stops_run or ""
    else:
        outcome = state.lower()
    error = getattr(getattr(run, "error", None), "message", None) or ""
    return RunResult(
        run_id=run.run_id,
        state=state,
        outcome=outcome,
        tasks=[(step, steps[step]) for step in MAIN_LINE if step in steps],
        error=error,
    )


def wait_for_run(
    client: Any,
    connection: Connection,
    run_id: str,
    timeout_seconds: float,
    poll_seconds: float,
    on_state: Callable[[str], None] = lambda state: None,
) -> RunResult:
    """Poll until the run ends (CANCELED included, which kfp's own wait misses) or the timeout passes."""
    deadline = time.monotonic() + timeout_seconds
    last_state = None
    while True:
        with api_call(f"reading run {run_id}", connection):
            run = client.get_run(run_id)
        if run.state != last_state:
            last_state = run.state
            on_state(run.state or "RUNTIME_STATE_UNSPECIFIED")
        if run.state in TERMINAL_RUN_STATES:
            return run_result(run)
        if time.monotonic() >= deadline:
            raise KubeflowError(
                f"run {run_id} is still {run.state} after {timeout_seconds:.0f} s; it keeps running: "
                f"follow it at {connection.run_url(run_id)}"
            )
        time.sleep(poll_seconds)


# ---- recurring runs -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ScheduleRequest:
    name: str
    experiment: str
    pipeline_id: str
    version_id: str
    parameters: dict[str, Any]
    cron: str | None = None
    interval_seconds: int | None = None
    max_concurrency: int = 1
    catchup: bool = False
    enabled: bool = True
    pipeline_root: str | None = None
    service_account: str | None = None
    description: str = ""


def find_schedules(client: Any, connection: Connection, name_or_id: str | None = None) -> list[Any]:
    """Recurring runs in the namespace, all pages; optionally only those with this id or display name."""
    schedules: list[Any] = []
    token = ""
    while True:
        with api_call("listing recurring runs", connection):
            response = client.list_recurring_runs(page_token=token, page_size=100, namespace=connection.namespace)
        schedules.extend(response.recurring_runs or [])
        token = response.next_page_token or ""
        if not token:
            break
    if name_or_id is None:
        return schedules
    return [s for s in schedules if name_or_id in (s.recurring_run_id, s.display_name)]


def create_schedule(client: Any, connection: Connection, request: ScheduleRequest) -> Any:
    if request.max_concurrency < 1:
        raise KubeflowError(f"--max-concurrency {request.max_concurrency}: must be at least 1")
    duplicates = find_schedules(client, connection, request.name)
    if duplicates:
        raise KubeflowError(
            f"a recurring run named {request.name!r} already exists "
            f"(id {duplicates[0].recurring_run_id}): delete it first or choose another --name"
        )
    experiment_id = ensure_experiment(client, connection, request.experiment)
    with api_call(f"creating recurring run {request.name!r}", connection):
        return client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=request.name,
            description=request.description or None,
            cron_expression=request.cron,
            interval_second=request.interval_seconds,
            max_concurrency=request.max_concurrency,
            no_catchup=not request.catchup,
            params=request.parameters,
            pipeline_id=request.pipeline_id,
            version_id=request.version_id,
            enabled=request.enabled,
            pipeline_root=request.pipeline_root,
            service_account=request.service_account,
        )


def one_schedule(client: Any, connection: Connection, name_or_id: str) -> Any:
    matches = find_schedules(client, connection, name_or_id)
    if not matches:
        raise KubeflowError(f"no recurring run with id or name {name_or_id!r} on {connection.target}")
    if len(matches) > 1:
        ids = ", ".join(s.recurring_run_id for s in matches)
        raise KubeflowError(f"{len(matches)} recurring runs are named {name_or_id!r} ({ids}): pass the id")
    return matches[0]


def change_schedule(client: Any, connection: Connection, name_or_id: str, action: str) -> Any:
    """``enable``, ``disable`` or ``delete`` one recurring run, found by id or display name."""
    schedule = one_schedule(client, connection, name_or_id)
    method = {
        "enable": client.enable_recurring_run,
        "disable": client.disable_recurring_run,
        "delete": client.delete_recurring_run,
    }[action]
    with api_call(f"{action} recurring run {schedule.display_name!r}", connection):
        method(schedule.recurring_run_id)
    return schedule


def describe_trigger(schedule: Any) -> str:
    trigger = schedule.trigger
    if trigger and trigger.cron_schedule and trigger.cron_schedule.cron:
        return f"cron {trigger.cron_schedule.cron}"
    if trigger and trigger.periodic_schedule and trigger.periodic_schedule.interval_second:
        return f"every {trigger.periodic_schedule.interval_second} s"
    return "no trigger"
