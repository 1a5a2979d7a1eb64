"""Where a step runs: the run it belongs to, and whether a path it writes outlives its pod.

Both come from what every supported KFP backend (2.2 to 2.17) and kfp.local give a step, not from
placeholders that only newer backends resolve:

- **The run id.** ``{{$.pipeline_job_uuid}}`` resolves only from backend 2.5; on 2.2-2.4 its
  literal text would reach manifests and summaries. Every backend writes a task's outputs under
  ``<pipeline root>/<pipeline name>/<run id>/<task name>/…`` (2.2-2.4: ``…/<task>/<output>``;
  2.5+: ``…/<task>/<salt>/<output>``; ``backend/src/v2/driver``), and kfp.local under
  ``<pipeline root>/<pipeline name>-<timestamp>/<task>/<output>``. So the segment before the
  task's own folder in any output artifact's URI names the run.
- **Pod-local state.** A KFP backend sets ``KFP_POD_NAME`` in every executor pod (from 2.2;
  ``argocompiler/common.go``); kfp.local does not. There, a registry or MLflow store on the
  container's root file system vanishes with the pod while the run goes green, so steps refuse
  it unless the path is on a mounted volume or ``GATED_TRAINING_ALLOW_POD_LOCAL_STATE=1`` (the
  ``ALLOW_POD_LOCAL_STATE`` compile option) says so.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from gated_training.errors import ConfigError

ON_CLUSTER_ENV = "KFP_POD_NAME"
ALLOW_POD_LOCAL_ENV = "GATED_TRAINING_ALLOW_POD_LOCAL_STATE"
MOUNTINFO = Path("/proc/self/mountinfo")
# Allocator settings every step process runs with (the image's ENV; the local runner sets them for its step
# processes). glibc raises its mmap threshold after each large free, so later large arrays come from the heap,
# which is never given back: at 1M rows that held 300 MiB more at train-model's peak. Arrow's default pool
# (mimalloc/jemalloc) keeps freed arenas too. Measured: docs/scaling.md.
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "ARROW_DEFAULT_MEMORY_POOL": "system"}
REMOTE_TRACKING_SCHEMES = ("http", "https", "databricks", "databricks-uc", "uc")


def run_id_from_uri(artifact_uri: str, task: str) -> str:
    """The run id in an output artifact's URI (see the module docstring), or "" when the URI does
    not have the layout (a test calling a component function directly)."""
    parts = [part for part in urlsplit(artifact_uri).path.split("/") if part]
    if task not in parts:
        return ""
    index = len(parts) - 1 - parts[::-1].index(task)
    return parts[index - 1] if index >= 1 else ""


def on_cluster() -> bool:
    return bool(os.environ.get(ON_CLUSTER_ENV))


def pod_local_allowed() -> bool:
    return os.environ.get(ALLOW_POD_LOCAL_ENV, "").strip().lower() in ("1", "true", "yes")


def mount_point(path: Path, mountinfo: str) -> str:
    """The mount point holding ``path`` (the longest mount point that is a prefix of it)."""
    best = "/"
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best = point
    return best


def is_pod_local(path: str, mountinfo: str | None = None) -> bool:
    """Whether ``path`` is on the container's own root file system, not on a mounted volume."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text()
        except OSError:
            return False  # not Linux: cannot tell, so do not refuse
    return mount_point(Path(os.path.abspath(path)), mountinfo) == "/"


def check_outlives_pod(*, registry_uri: str | None = None, mlflow_tracking_uri: str | None = None) -> None:
    """On a cluster, refuse a registry or MLflow store that would vanish with the pod.

    ``mlflow_tracking_uri`` is the resolved URI (the parameter, else ``MLFLOW_TRACKING_URI``, else
    the SQLite fallback). Off the cluster, or when explicitly allowed, nothing is refused.
    """
    if not on_cluster() or pod_local_allowed():
        return
    hint = (
        f"use a gs:// registry and an MLflow server, mount a volume there, or set {ALLOW_POD_LOCAL_ENV}=1 "
        "(compile option ALLOW_POD_LOCAL_STATE=1) to accept it"
    )
    if registry_uri is not None and not registry_uri.startswith("gs://") and is_pod_local(registry_uri):
        raise ConfigError(
            f"parameter registry_uri={registry_uri!r} is inside this pod's own file system and would "
            f"vanish with the pod (the deploy would look green and be lost): {hint}"
        )
    if mlflow_tracking_uri is not None:
        scheme = urlsplit(mlflow_tracking_uri).scheme
        if scheme in REMOTE_TRACKING_SCHEMES:
            return
        location = urlsplit(mlflow_tracking_uri).path if scheme else mlflow_tracking_uri
        if scheme == "sqlite":
            location = mlflow_tracking_uri.split(":///", 1)[-1]
        if is_pod_local(location or "."):
            raise ConfigError(
                f"MLflow tracking URI {mlflow_tracking_uri!r} (parameter mlflow_tracking_uri, else "
                f"MLFLOW_TRACKING_URI) is inside this pod's own file system: {hint}"
            )


def check_cluster_parameters(parameters: dict[str, object], allow_pod_local_state: bool = False) -> None:
    """Before a run is sent to a cluster (``submit``, ``schedule``) or cluster defaults are baked
    into the YAML (``make compile PARAMS=…``): the registry and MLflow must outlive the pod."""
    if allow_pod_local_state:
        return
    registry, tracking = str(parameters.get("registry_uri") or ""), str(parameters.get("mlflow_tracking_uri") or "")
    if not registry.startswith("gs://"):
        raise ConfigError(
            f"registry_uri={registry!r} is a path inside the pod and is lost when the pod ends: "
            "set registry_uri=gs://bucket/prefix (or allow pod-local state for a mounted volume)"
        )
    for name in ("prediction_log_uri", "labels_uri"):  # the monitoring pipeline's: read (and written) from a pod
        value = str(parameters.get(name) or "")
        if value and not value.startswith("gs://"):
            raise ConfigError(
                f"{name}={value!r} is a path inside the pod, where neither the sink's log nor the label tables are: "
                f"set {name}=gs://bucket/prefix (or allow pod-local state for a mounted volume)"
            )
    if urlsplit(tracking).scheme not in REMOTE_TRACKING_SCHEMES:
        raise ConfigError(
            f"mlflow_tracking_uri={tracking!r} would track into the pod's own file system: "
            "set mlflow_tracking_uri=https://your-mlflow-server (or allow pod-local state)"
        )


def parse_window_end(text: str) -> datetime:
    """A monitoring window's end: ISO 8601 with ``Z`` or an offset (``2026-12-04T18:00:00Z``), as UTC; empty: now.
    A time without a zone is refused: a window an hour off reads the wrong calls silently."""
    from gated_training.errors import ConfigError

    if not text.strip():
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"parameter window_end={text!r}: not an ISO 8601 time (2026-12-04T18:00:00Z)") from exc
    if moment.tzinfo is None:
        raise ConfigError(f"parameter window_end={text!r}: give the zone (Z for UTC, or +01:00)")
    return moment.astimezone(timezone.utc)
