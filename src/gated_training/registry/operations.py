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
from gated_training.registry.store import ModelRegistry, check_version, smoke_test
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
    rows, problems = [], []
    try:
        champion = registry.champion()
    except RegistryError as exc:  # unsigned, forged, replayed or inconsistent: listed, never trusted
        champion = None
        problems.append(str(exc))
    events = (champion.pointer.get("history") or []) if champion else []
    for version in reversed(registry.versions()):
        if not registry.is_complete(version):
            rows.append(
                VersionRow(
                    version=version,
                    complete=False,
                    champion=False,
                    created_at="",
                    metrics={},
                    gate="incomplete (no manifest)",
                    data_sha256="",
                    promotions=[],
                )
            )
            continue
        try:
            manifest, _ = registry.read_manifest(version)
        except RegistryError as exc:
            rows.append(
                VersionRow(
                    version=version,
                    complete=False,
                    champion=bool(champion and champion.version == version),
                    created_at="",
                    metrics={},
                    gate="REFUSED",
                    data_sha256="",
                    promotions=[],
                )
            )
            problems.append(str(exc))
            continue
        rows.append(
            VersionRow(
                version=version,
                complete=True,
                champion=bool(champion and champion.version == version),
                created_at=manifest.get("created_at", ""),
                metrics=manifest.get("metrics") or {},
                gate=(manifest.get("gate") or {}).get("decision", ""),
                data_sha256=manifest.get("data_sha256", ""),
                promotions=[e for e in events if e.get("version") == version],
                drift=drift_summary(manifest.get("drift")),
            )
        )
    if champion is not None and not any(row.version == champion.version and row.complete for row in rows):
        problems.append(
            f"{registry.pointer_uri}: the champion pointer names {champion.version}, which is not a complete, "
            "verified version of this registry; roll back with `gated-training rollback --to VERSION`"
        )
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
    return str(previous)


def rollback(registry: ModelRegistry, to: str | None, reason: str) -> dict[str, Any]:
    target = to or previous_champion(registry)
    return move_champion(registry, target, reason, "rollback")


def sync_mlflow(registry: ModelRegistry, tracking_uri: str) -> str:
    """Make MLflow's ``champion`` alias name the registry's champion; a no-op when it already does."""
    from gated_training.tracking import mirror_to_mlflow
    from gated_training.tracking import runs as tracking

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
    version, status = mirror_to_mlflow(
        tracking_uri, registry.model_name, mlflow_info["model_uri"], mlflow_info.get("run_id", ""), champion.version
    )
    if version is None:
        raise TrackingError(status.removeprefix("pending: "))
    return f"synced: MLflow {registry.model_name} version {version} is the champion ({champion.version})"


@dataclass(frozen=True, kw_only=True)
class LegacySigning:
    version: str
    outcome: str  # "signed", "already signed", or "refused: <why>"


def _promoted_versions(registry: ModelRegistry) -> set[str]:
    """Versions the registry's own records say were deployed: the pointer and its history (read without
    trusting a signature: this is the registry from before signing)."""
    pointer = registry.read_pointer_unverified()
    if pointer is None:
        return set()
    recorded = pointer.get("history")
    history: list[Any] = recorded if isinstance(recorded, list) else []
    named = {pointer.get("version")} | {e.get("version") for e in history if isinstance(e, dict)}
    return {v for v in named if isinstance(v, str)}


def sign_legacy(registry: ModelRegistry, version: str | None = None, manifest_sha256: str = "") -> list[LegacySigning]:
    """Sign versions published before signing existed, and only those.

    - A registry that already holds a signed version is past its upgrade: nothing is signed in bulk, and
      one version is signed only when named with the manifest SHA-256 the operator checked
      (``--version V --manifest-sha256 D``). An unsigned version there is a planted one until someone
      looks at it.
    - In a registry with no signed version, a version is signed when the registry's own records name it
      (the champion pointer or its promotion history), it is not dated in the future, and every file
      matches its manifest. Any other version needs ``--manifest-sha256``.
    Nothing here unpickles anything.
    """
    from gated_training.config import check_sha256_parameter

    manifest_sha256 = check_sha256_parameter("manifest_sha256", manifest_sha256)
    complete = [v for v in registry.versions() if registry.is_complete(v)]
    signed = [v for v in complete if registry.is_signed(v)]
    if version is not None:
        check_version(version)
        if version not in complete:
            raise RegistryError(f"model version {version} is not a complete version of {registry.root}")
        if registry.is_signed(version):
            return [LegacySigning(version=version, outcome=registry.sign_unsigned(version))]
        proven = not signed and version in _promoted_versions(registry) and not _future(version)
        if not manifest_sha256 and not proven:
            why = (
                f"the registry already holds {len(signed)} signed version(s)"
                if signed
                else "the registry's records (the champion pointer and its history) never name it"
            )
            return [
                LegacySigning(
                    version=version,
                    outcome=f"refused: {why}; check the version, then sign it with "
                    "--manifest-sha256 <its manifest's SHA-256>",
                )
            ]
        return [LegacySigning(version=version, outcome=registry.sign_unsigned(version, manifest_sha256))]
    if signed:
        unsigned = [v for v in complete if v not in signed]
        return [
            LegacySigning(
                version=v,
                outcome=f"refused: the registry already holds {len(signed)} signed "
                "version(s), so an unsigned one was not written by the pipeline before signing; "
                "if you know it, sign it alone with --version and --manifest-sha256",
            )
            for v in unsigned
        ]
    promoted = _promoted_versions(registry)
    results = []
    for candidate in complete:
        if _future(candidate):
            results.append(LegacySigning(version=candidate, outcome="refused: dated in the future"))
        elif candidate not in promoted:
            results.append(
                LegacySigning(
                    version=candidate,
                    outcome="refused: the champion pointer and its history "
                    "never name it; sign it alone with --version and --manifest-sha256",
                )
            )
        else:
            try:
                results.append(LegacySigning(version=candidate, outcome=registry.sign_unsigned(candidate)))
            except RegistryError as exc:  # a file that no longer matches its manifest: never signed
                results.append(LegacySigning(version=candidate, outcome=f"refused: {exc}"))
    return results


def _future(version: str) -> bool:
    return _created(version) > datetime.now(timezone.utc) + timedelta(minutes=5)


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
