"""Operating the registry by hand: history, rollback, audited promotion, MLflow re-sync, cleanup.

Every pointer move goes the same way as a pipeline deploy: the target's SHA-256s are verified,
its stored smoke rows must predict as recorded, and the pointer is swapped with
compare-and-swap against the state that was read, with who, when and why in its history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from gated_training.errors import RegistryError, TrackingError
from gated_training.registry import ModelRegistry, check_version, smoke_test
from gated_training.tracking import CHAMPION_ALIAS


@dataclass(frozen=True, kw_only=True)
class VersionRow:
    version: str
    complete: bool
    champion: bool
    created_at: str
    metrics: dict[str, float]
    gate: str
    data_sha256: str
    promotions: list[dict[str, Any]]
    drift: str = ""  # the drift gate at deploy time (drift_summary); "" for versions from before it was recorded


def history(registry: ModelRegistry) -> tuple[list[VersionRow], list[str]]:
    """Every version, newest first, with its metrics, gate verdict and promotion events, and the
    problems found: a version refused (unsigned, forged, unreadable), or a pointer naming a
    version that is not a complete, verified one."""
    champion = registry.champion()
    events = (champion.pointer.get("history") or []) if champion else []
    rows, problems = [], []
    for version in reversed(registry.versions()):
        if not registry.is_complete(version):
            rows.append(VersionRow(version=version, complete=False, champion=False, created_at="", metrics={}, gate="incomplete (no manifest)", data_sha256="", promotions=[]))
            continue
        try:
            manifest, _ = registry.read_manifest(version)
        except RegistryError as exc:
            rows.append(VersionRow(version=version, complete=False, champion=bool(champion and champion.version == version), created_at="", metrics={},
                                   gate="REFUSED", data_sha256="", promotions=[]))
            problems.append(str(exc))
            continue
        rows.append(VersionRow(
            version=version, complete=True, champion=bool(champion and champion.version == version),
            created_at=manifest.get("created_at", ""), metrics=manifest.get("metrics") or {},
            gate=(manifest.get("gate") or {}).get("decision", ""), data_sha256=manifest.get("data_sha256", ""),
            promotions=[e for e in events if e.get("version") == version],
            drift=drift_summary(manifest.get("drift")),
        ))
    if champion is not None and not any(row.version == champion.version and row.complete for row in rows):
        problems.append(f"{registry.pointer_uri}: the champion pointer names {champion.version}, which is not a complete, "
                        "verified version of this registry; roll back with `gated-training rollback --to VERSION`")
    return rows, problems


def drift_summary(drift: dict[str, Any] | None) -> str:
    """One line on the drift gate a version was deployed through."""
    if not drift:
        return ""
    if drift.get("drifted"):
        features = ", ".join(drift.get("drifted_features") or []) or "—"
        share = drift.get("drifted_share")
        amount = f" ({share:.0%} of features)" if isinstance(share, (int, float)) else ""
        return f"deployed over drift ({drift.get('drift_action')}){amount}: {features}"
    warnings = drift.get("warnings") or []
    return f"no drift; {len(warnings)} warning(s)" if warnings else "no drift"


def move_champion(registry: ModelRegistry, version: str, reason: str, action: str) -> dict[str, Any]:
    """Verify, smoke-test and swap the pointer to ``version``; the history records the move."""
    check_version(version)
    if not reason.strip():
        raise RegistryError(f"{action} needs a reason: it is recorded in the champion's history")
    current = registry.champion()
    if current is not None and current.version == version:
        raise RegistryError(f"model version {version} is already the champion")
    _, manifest_sha = registry.read_manifest(version)
    smoke_test(registry, version, manifest_sha)
    return registry.promote(version, manifest_sha, current.token if current else None, reason=reason, action=action)


def previous_champion(registry: ModelRegistry) -> str:
    """The version that was champion before the current one."""
    current = registry.champion()
    if current is None:
        raise RegistryError(f"{registry.pointer_uri}: there is no champion to roll back from")
    previous = current.pointer.get("previous_version")
    if not previous:
        raise RegistryError(f"champion {current.version} has no previous version to roll back to; use --to VERSION")
    return previous


def rollback(registry: ModelRegistry, to: str | None, reason: str) -> dict[str, Any]:
    target = to or previous_champion(registry)
    return move_champion(registry, target, reason, "rollback")


def sync_mlflow(registry: ModelRegistry, tracking_uri: str) -> str:
    """Make MLflow's ``champion`` alias name the registry's champion; a no-op when it already does."""
    from gated_training import tracking
    from gated_training.tracking import mirror_to_mlflow

    champion = registry.champion()
    if champion is None:
        raise RegistryError(f"{registry.pointer_uri}: there is no champion to mirror")
    manifest, _ = registry.read_manifest(champion.version)
    mlflow_info = manifest.get("mlflow") or {}
    if not mlflow_info.get("model_uri"):
        raise RegistryError(f"model version {champion.version}: its manifest records no MLflow model to register")
    with tracking.tracking_errors(tracking_uri, "reading the champion alias"):
        from mlflow.exceptions import MlflowException

        client = tracking.client(tracking_uri)
        try:
            aliased = client.get_model_version_by_alias(registry.model_name, CHAMPION_ALIAS)
        except MlflowException as exc:  # no registered model or no alias yet: nothing mirrored
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
            aliased = None
    if aliased is not None and (aliased.tags or {}).get("registry_version") == champion.version:
        return f"already in sync: MLflow {registry.model_name} version {aliased.version} is the champion"
    version, status = mirror_to_mlflow(tracking_uri, registry.model_name, mlflow_info["model_uri"],
                                       mlflow_info.get("run_id", ""), champion.version)
    if version is None:
        raise TrackingError(status.removeprefix("pending: "))
    return f"synced: MLflow {registry.model_name} version {version} is the champion ({champion.version})"


def _created(version: str) -> datetime:
    return datetime.strptime(version.split("Z-")[0][:15], "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)


def cleanup(registry: ModelRegistry, delete: bool, older_than: timedelta) -> list[tuple[str, str]]:
    """Incomplete versions (a deploy that crashed before its manifest) and what is done to them.

    Only versions older than ``older_than`` are deleted, so a deploy in progress is never touched.
    """
    now = datetime.now(timezone.utc)
    results = []
    for version in registry.incomplete_versions():
        if not delete:
            results.append((version, "incomplete"))
        elif now - _created(version) < older_than:
            results.append((version, f"incomplete, younger than {older_than}: kept"))
        else:
            removed = registry.delete_incomplete(version)
            results.append((version, f"deleted ({len(removed)} files)"))
    return results
