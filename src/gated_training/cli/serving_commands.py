"""Serving commands: ``serving status | promote | rollback | sync``, and the InferenceService half
of ``rollback`` and ``promote`` (``--serving-namespace``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gated_training.cli.common import EXIT_FAILED, EXIT_OK, add_registry_arguments, registry_from


def kserve_client(args: argparse.Namespace) -> Any:
    from gated_training.serving import KServeClient

    return KServeClient(args.kube_api or "")


def add_kube_arguments(parser: argparse.ArgumentParser, namespace_flag: str, required: bool) -> None:
    parser.add_argument(
        namespace_flag,
        dest="serving_namespace",
        required=required,
        help="the namespace of the InferenceService (the pipeline's serving_namespace)",
    )
    parser.add_argument(
        "--kube-api",
        dest="kube_api",
        default="",
        help="the Kubernetes API server (e.g. http://127.0.0.1:8001 from `kubectl proxy`); "
        "default: in-cluster credentials, else your kubeconfig",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds to wait for the InferenceService to become Ready (default 600)",
    )


def command_serving(args: argparse.Namespace) -> int:
    from gated_training.serving import rollout

    registry = registry_from(args)
    client = kserve_client(args)
    where = {"registry": registry, "client": client, "namespace": args.serving_namespace}
    if args.serving_command == "status":
        result = rollout.status(**where)
        service = result.service
        print(f"champion: {result.champion or 'none'}")
        if service.exists:
            print(
                f"InferenceService {service.namespace}/{service.name} ({service.mode} mode): newest version "
                f"{service.version}, stable {service.stable_version}, canary {service.canary_percent} %, "
                f"{'Ready' if service.ready else 'not Ready: ' + service.why}"
                + (f", {service.url}" if service.url else "")
            )
        else:
            print("InferenceService: none")
        if result.note:
            print(result.note)
        print("in step" if result.in_step else f"OUT OF STEP: {result.behind} is behind; {result.repair}")
        if args.json:
            print(json.dumps(result.to_json(), indent=2, sort_keys=True))
        return EXIT_OK if result.in_step else EXIT_FAILED
    if args.serving_command == "promote":
        print(rollout.promote(**where, timeout=args.timeout))
    elif args.serving_command == "rollback":
        print(rollout.abort(**where, reason=args.reason, timeout=args.timeout))
    else:
        print(rollout.follow(**where, timeout=args.timeout))
    return EXIT_OK


def command_pod_monitor(args: argparse.Namespace) -> int:
    """Print the PodMonitor for the model's predictor pods (apply it where the Prometheus Operator watches)."""
    import yaml

    from gated_training.config import ServingSettings
    from gated_training.serving import manifests

    settings = ServingSettings(serving_namespace=args.namespace, serving_mode=args.mode)  # validated as the run's
    document = manifests.pod_monitor(
        namespace=settings.serving_namespace, model_name=args.model_name, mode=settings.serving_mode
    )
    print(yaml.safe_dump(document, sort_keys=False), end="")
    return EXIT_OK


def follow_after_move(args: argparse.Namespace) -> int:
    """After ``rollback``/``promote`` moved the pointer: bring the InferenceService to it."""
    from gated_training.serving import rollout

    if not getattr(args, "serving_namespace", None):
        return EXIT_OK
    print(
        rollout.follow(
            registry=registry_from(args),
            client=kserve_client(args),
            namespace=args.serving_namespace,
            timeout=args.timeout,
            moved=True,
        )
    )
    return EXIT_OK


def add_serving_commands(commands: Any) -> None:
    group = commands.add_parser(
        "serving", help="the champion's InferenceService: status, canary promote/rollback, sync"
    )
    actions = group.add_subparsers(dest="serving_command", required=True)
    for name, summary in (
        ("status", "the champion and what the InferenceService serves; exit 1 when they disagree"),
        ("promote", "the canary (the registry champion) gets all the traffic"),
        (
            "rollback",
            "back to the version before: the canary loses its traffic (or the previous "
            "champion serves all of it), and the registry champion moves back with it",
        ),
        ("sync", "make the InferenceService serve the registry champion with all traffic (repair)"),
    ):
        parser = actions.add_parser(name, help=summary)
        add_kube_arguments(parser, "--namespace", required=True)
        add_registry_arguments(parser)
        if name == "status":
            parser.add_argument("--json", action="store_true", help="also print the status as JSON")
        if name == "rollback":
            parser.add_argument("--reason", default="serving rollback", help="recorded in the champion's history")
        parser.set_defaults(handler=command_serving)
    monitor = actions.add_parser(
        "pod-monitor", help="print the Prometheus Operator PodMonitor that scrapes the model's predictor pods"
    )
    monitor.add_argument("--namespace", required=True, help="the serving namespace")
    monitor.add_argument("--model-name", dest="model_name", default="tabular-classifier", help="the registry's model")
    monitor.add_argument("--mode", default="Knative", help="KServe deployment mode: Knative or Standard")
    monitor.set_defaults(handler=command_pod_monitor)
