"""Registry commands: ``history``, ``rollback``, ``promote``, ``sync-mlflow``, ``cleanup``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gated_training.cli.common import EXIT_FAILED, EXIT_OK, add_registry_arguments, registry_from
from gated_training.errors import ConfigError


def command_history(args: argparse.Namespace) -> int:
    from gated_training.registry import history

    registry = registry_from(args)
    rows, problems = history(registry)
    if not rows:
        print(f"no versions in {registry.root}")
    for row in rows:
        marker = "*" if row.champion else " "
        from gated_training.reports import number_or_dash

        metrics = ", ".join(f"{k}={number_or_dash(v)}" for k, v in row.metrics.items())
        print(f"{marker} {row.version}  {row.created_at or '-':20}  gate {row.gate or '-':8}  {metrics}")
        if row.drift:
            print(f"      drift: {row.drift}")
        for event in row.promotions:
            print(
                f"      {event['action']} {event['at']} by {event['by']}: {event['reason']}"
                + (f" (from {event['previous_version']})" if event.get("previous_version") else "")
            )
    champion = next((row.version for row in rows if row.champion), None)
    print(f"champion: {champion or 'none'}  (* marks it)")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


def command_move_champion(args: argparse.Namespace) -> int:
    from gated_training.registry import move_champion, rollback

    registry = registry_from(args)
    if args.command == "rollback":
        pointer = rollback(registry, args.to, args.reason)
    else:
        pointer = move_champion(registry, args.version, args.reason, "manual_promote")
    print(
        f"champion: {pointer['version']} (was {pointer['previous_version'] or 'none'}); "
        f"{pointer['action']} by {pointer['promoted_by']} at {pointer['promoted_at']}: {pointer['reason']}"
    )
    print("MLflow's champion alias is not moved by this command: run `gated-training sync-mlflow` to mirror it")
    from gated_training.cli.serving_commands import follow_after_move

    return follow_after_move(args)  # with --serving-namespace: the InferenceService follows the pointer


def command_sync_mlflow(args: argparse.Namespace) -> int:
    from gated_training.registry import sync_mlflow
    from gated_training.tracking import resolve_tracking_uri

    print(sync_mlflow(registry_from(args), resolve_tracking_uri(args.tracking_uri or "")))
    return EXIT_OK


def command_cleanup(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from gated_training.registry import cleanup

    results = cleanup(registry_from(args), args.delete, timedelta(minutes=args.older_than_minutes))
    if not results:
        print("no incomplete versions")
    for version, state in results:
        print(f"{version}  {state}")
    return EXIT_OK


def command_sign_legacy(args: argparse.Namespace) -> int:
    """Sign what a registry holds from before signing, once, when upgrading (registry_ops.sign_legacy)."""
    from gated_training.registry import sign_legacy

    registry = registry_from(args)
    if args.pointer:
        if not args.pointer_sha256:
            raise ConfigError(
                "--pointer needs --pointer-sha256: the SHA-256 of champion.json you checked "
                f"(sha256sum {registry.pointer_uri})"
            )
        from gated_training.config import check_sha256_parameter

        pointer = registry.sign_legacy_pointer(check_sha256_parameter("pointer_sha256", args.pointer_sha256))
        print(f"champion pointer signed: {pointer['version']} (generation {pointer['generation']})")
        return EXIT_OK
    results = sign_legacy(registry, args.version, args.manifest_sha256 or "")
    if not results:
        print(f"no complete versions in {registry.root}")
    for result in results:
        print(f"{result.version}  {result.outcome}")
    return EXIT_FAILED if any(r.outcome.startswith("refused") for r in results) else EXIT_OK


def add_serving_follow(parser: argparse.ArgumentParser) -> None:
    """``--serving-namespace``: the InferenceService follows the champion (cli/serving_commands.py)."""
    from gated_training.cli.serving_commands import add_kube_arguments

    add_kube_arguments(parser, "--serving-namespace", required=False)


def add_registry_commands(commands: Any) -> None:
    history = commands.add_parser("history", help="registry versions, metrics, gate verdicts; * marks the champion")
    add_registry_arguments(history)
    history.set_defaults(handler=command_history)
    rollback = commands.add_parser("rollback", help="move the champion back (verified, smoke-tested, audited)")
    rollback.add_argument("--to", help="the version to return to (default: the previous champion)")
    rollback.add_argument("--reason", default="rollback", help="recorded in the champion's history")
    add_registry_arguments(rollback)
    add_serving_follow(rollback)
    rollback.set_defaults(handler=command_move_champion)
    promote = commands.add_parser("promote", help="make a version the champion by hand (audited override)")
    promote.add_argument("version", help="the version to make the champion, as `history` lists it")
    promote.add_argument("--reason", required=True, help="why: recorded in the champion's history")
    add_registry_arguments(promote)
    add_serving_follow(promote)
    promote.set_defaults(handler=command_move_champion)
    sync = commands.add_parser("sync-mlflow", help="point MLflow's champion alias at the registry's champion")
    sync.add_argument(
        "--tracking-uri",
        dest="tracking_uri",
        help="default: $MLFLOW_TRACKING_URI, else sqlite:///.gated-training/mlflow.db",
    )
    add_registry_arguments(sync)
    sync.set_defaults(handler=command_sync_mlflow)
    cleanup = commands.add_parser("cleanup", help="find (and --delete) versions a crashed deploy left incomplete")
    cleanup.add_argument("--delete", action="store_true", help="delete them (default: only list)")
    cleanup.add_argument(
        "--older-than-minutes",
        dest="older_than_minutes",
        type=float,
        default=60.0,
        help="never delete a version younger than this: its deploy may be running (default 60)",
    )
    add_registry_arguments(cleanup)
    cleanup.set_defaults(handler=command_cleanup)
    sign = commands.add_parser(
        "sign-legacy",
        help="sign the versions published before registry signing existed "
        "(once, when upgrading: only versions the registry's records name, never in a registry "
        "that already holds signed versions unless named with their manifest's SHA-256)",
    )
    sign.add_argument("--version", help="one version (default: every version the champion pointer's history names)")
    sign.add_argument(
        "--manifest-sha256",
        dest="manifest_sha256",
        help="the SHA-256 of that version's manifest.json, as you checked it",
    )
    sign.add_argument("--pointer", action="store_true", help="sign the champion pointer written before pointer signing")
    sign.add_argument("--pointer-sha256", dest="pointer_sha256", help="the SHA-256 of champion.json, as you checked it")
    add_registry_arguments(sign)
    sign.set_defaults(handler=command_sign_legacy)
