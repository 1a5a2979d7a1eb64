"""Kubeflow commands: ``upload``, ``submit``, ``schedule create|list|enable|disable|delete``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gated_training.cli.common import (
    DEFAULT_PIPELINE,
    EXIT_FAILED,
    EXIT_OK,
    load_params_file,
    parse_assignments,
    resolve_parameters,
)

if TYPE_CHECKING:
    from gated_training.kubeflow import Connection, PipelinePackage


def connection_from(args: argparse.Namespace) -> "Connection":
    from gated_training.kubeflow import Connection, read_token

    return Connection(
        host=args.host,
        namespace=args.namespace,
        token=read_token(args.token_file),
        sa_token_path=args.sa_token_path,
        kube_context=args.kube_context,
        ca_cert=args.ca_cert,
        ui_host=args.ui_host,
        shared=getattr(args, "shared", False),
    )


def cluster_parameters(args: argparse.Namespace, package: "PipelinePackage") -> dict[str, Any]:
    """The parameters given (params files, then --set), typed by the YAML and validated with the defaults.

    Only what was given is sent: the run form in the UI shows the compiled defaults for the rest.
    """
    from gated_training.kubeflow import form_of
    from gated_training.kubeflow import validate as validate_run_parameters
    from gated_training.run_context import check_cluster_parameters

    given: dict[str, Any] = {}
    for layer in [*(load_params_file(p) for p in args.params), parse_assignments(args.set)]:
        given.update(layer)
    merged = resolve_parameters(package.parameters, [given])  # types every value, rejects unknown names
    validate_run_parameters(merged, form_of(package.parameters))
    check_cluster_parameters(merged, args.allow_pod_local_state)
    from gated_training.kubeflow import touched

    # A setting given flat or dotted sends its whole group: the compiled defaults (PARAMS included) plus the change.
    return {name: merged[name] for name in touched([given], package.parameters)}


def run_name_for(package_name: str) -> str:
    from datetime import datetime, timezone

    return f"{package_name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def _backend_line(client: Any, connection: "Connection") -> None:
    from gated_training.kubeflow import pipeline_namespace

    backend = client.backend
    namespace = pipeline_namespace(client, connection)
    scope = f"private pipeline in namespace {namespace!r}" if namespace else "shared pipeline"
    print(f"KFP backend {backend.tag_name}{' (multi-user)' if backend.multi_user else ''}; {scope}")


def command_upload(args: argparse.Namespace) -> int:
    from gated_training.kubeflow import check_pullable, connect, default_version_name, read_package, upload

    package = read_package(Path(args.pipeline))
    check_pullable(package)
    version = args.version_name or default_version_name(package)
    connection = connection_from(args)
    client = connect(connection, needs=package.needs)
    _backend_line(client, connection)
    result = upload(
        client, connection, package, version, pipeline_name=args.pipeline_name, description=args.description
    )
    name = args.pipeline_name or package.name
    if result.created_pipeline:
        print(f"created pipeline {name!r} (id {result.pipeline_id})")
    state = "uploaded" if result.created_version else "already uploaded, unchanged"
    print(f"pipeline version {version!r} {state} (id {result.version_id})")
    print(f"  schedule it: gated-training schedule create --version {version} --cron '0 0 2 * * *' ...")
    return EXIT_OK


def command_submit(args: argparse.Namespace) -> int:
    from gated_training.kubeflow import (
        RunRequest,
        check_pullable,
        connect,
        default_version_name,
        read_package,
        resolve_version,
        submit,
        wait_for_run,
    )

    package = read_package(Path(args.pipeline))
    if not args.version:
        check_pullable(package)  # the YAML itself is sent
    parameters = cluster_parameters(args, package)
    connection = connection_from(args)
    client = connect(connection, needs=package.needs)
    pipeline_name = args.pipeline_name or package.name
    version = resolve_version(client, connection, pipeline_name, args.version) if args.version else None
    if "pipeline_version" in package.parameters:  # recorded in the registry manifest
        parameters.setdefault("pipeline_version", args.version or default_version_name(package))
    request = RunRequest(
        experiment=args.experiment,
        run_name=args.run_name or run_name_for(pipeline_name),
        parameters=parameters,
        package=None if version else package,
        version=version,
        pipeline_root=args.pipeline_root,
        service_account=args.service_account,
    )
    run_id = submit(client, connection, request)
    source = f"version {args.version!r}" if version else str(package.path)
    print(f"run {request.run_name!r} created from {source} in experiment {args.experiment!r} (id {run_id})")
    print(f"  {connection.run_url(run_id)}")
    if not args.wait:
        return EXIT_OK
    result = wait_for_run(
        client,
        connection,
        run_id,
        args.timeout,
        args.poll_seconds,
        on_state=lambda state: print(f"  state: {state}", flush=True),
    )
    for task, state in result.tasks:
        print(f"    {task}: {state}")
    print(f"run {result.state}: {result.outcome}" + (f" ({result.error})" if result.error else ""))
    return EXIT_OK if result.state == "SUCCEEDED" else EXIT_FAILED


def command_schedule_create(args: argparse.Namespace) -> int:
    from gated_training.kubeflow import (
        ScheduleRequest,
        connect,
        create_schedule,
        default_version_name,
        parse_interval,
        read_package,
        resolve_version,
        validate_cron,
    )

    cron = validate_cron(args.cron) if args.cron else None
    interval = parse_interval(args.interval) if args.interval else None
    package = read_package(Path(args.pipeline))
    parameters = cluster_parameters(args, package)
    version = args.version or default_version_name(package)
    pipeline_name = args.pipeline_name or package.name
    connection = connection_from(args)
    client = connect(connection, needs=package.needs)
    pipeline_id, version_id = resolve_version(client, connection, pipeline_name, version)
    if "pipeline_version" in package.parameters:
        parameters.setdefault("pipeline_version", version)
    request = ScheduleRequest(
        name=args.name or f"{pipeline_name}-{'nightly' if cron else 'periodic'}",
        experiment=args.experiment,
        pipeline_id=pipeline_id,
        version_id=version_id,
        parameters=parameters,
        cron=cron,
        interval_seconds=interval,
        max_concurrency=args.max_concurrency,
        catchup=args.catchup,
        enabled=not args.disabled,
        pipeline_root=args.pipeline_root,
        service_account=args.service_account,
        description=f"{pipeline_name} version {version}",
    )
    schedule = create_schedule(client, connection, request)
    trigger = f"cron {cron!r}" if cron else f"every {interval} s"
    print(
        f"recurring run {request.name!r} created (id {schedule.recurring_run_id}): {trigger}, pinned to version "
        f"{version!r}, max {request.max_concurrency} at a time, {'catch-up' if args.catchup else 'no catch-up'}, "
        f"{'enabled' if request.enabled else 'disabled'}"
    )
    return EXIT_OK


def command_schedule_list(args: argparse.Namespace) -> int:
    from gated_training.kubeflow import connect, describe_trigger, find_schedules

    connection = connection_from(args)
    schedules = find_schedules(connect(connection), connection)
    if not schedules:
        print("no recurring runs")
    for schedule in schedules:
        reference = schedule.pipeline_version_reference
        pinned = f"version id {reference.pipeline_version_id}" if reference else "embedded spec"
        state = {"ENABLE": "enabled", "DISABLE": "disabled"}.get(schedule.mode or "", schedule.mode or "")
        print(
            f"{schedule.recurring_run_id}  {schedule.display_name}  {state}  {describe_trigger(schedule)}  "
            f"{pinned}  {schedule.description or ''}".rstrip()
        )
    return EXIT_OK


def command_schedule_change(args: argparse.Namespace) -> int:
    from gated_training.kubeflow import change_schedule, connect

    connection = connection_from(args)
    schedule = change_schedule(connect(connection), connection, args.schedule, args.action)
    print(f"recurring run {schedule.display_name!r} (id {schedule.recurring_run_id}): {args.action}d")
    return EXIT_OK


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Kubeflow connection (default: KF_PIPELINES_ENDPOINT, in-cluster, kube context)")
    group.add_argument("--host", help="KFP API endpoint, e.g. https://kubeflow.example.com/pipeline")
    group.add_argument(
        "--namespace",
        help="your profile namespace on a multi-user Kubeflow (pipelines are private to it unless --shared)",
    )
    group.add_argument(
        "--shared",
        action="store_true",
        help="multi-user Kubeflow: upload to, and look pipelines up in, the shared pipelines instead of "
        "your namespace's private ones",
    )
    group.add_argument(
        "--token-file", dest="token_file", help="file holding a bearer token (default: $KF_PIPELINES_TOKEN)"
    )
    group.add_argument(
        "--sa-token-path",
        dest="sa_token_path",
        help="projected service-account token, e.g. /var/run/secrets/kubeflow/pipelines/token",
    )
    group.add_argument("--kube-context", dest="kube_context", help="kubeconfig context, when no host is given")
    group.add_argument("--ca-cert", dest="ca_cert", help="CA bundle for a private TLS certificate")
    group.add_argument(
        "--ui-host", dest="ui_host", help="UI base URL for links (default: $KF_PIPELINES_UI_ENDPOINT or --host)"
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", action="append", default=[], metavar="FILE", help="YAML/JSON file of parameters")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="any pipeline parameter")
    parser.add_argument("--experiment", default="gated-training", help="KFP experiment (created if missing)")
    parser.add_argument(
        "--pipeline-root", dest="pipeline_root", help="where KFP stores artifacts, e.g. gs://bucket/kfp"
    )
    parser.add_argument(
        "--service-account",
        dest="service_account",
        help="Kubernetes service account the run's pods use (Workload Identity binds it to GCS)",
    )
    parser.add_argument(
        "--allow-pod-local-state",
        dest="allow_pod_local_state",
        action="store_true",
        help="accept a non-gs:// registry and a non-server MLflow URI (only with mounted volumes)",
    )


def add_kubeflow_commands(commands: Any) -> None:
    upload = commands.add_parser("upload", help="upload the compiled YAML to Kubeflow as a pipeline version")
    upload.add_argument("--pipeline", default=str(DEFAULT_PIPELINE), help="the compiled pipeline YAML")
    upload.add_argument("--pipeline-name", dest="pipeline_name", help="default: the name compiled into the YAML")
    upload.add_argument(
        "--version-name", dest="version_name", help="default: <package version>-<git commit>[-dirty]-<spec hash>"
    )
    upload.add_argument("--description", default="", help="shown in the UI")
    add_connection_arguments(upload)
    upload.set_defaults(handler=command_upload)

    submit = commands.add_parser("submit", help="start a run on Kubeflow and print its URL")
    submit.add_argument("--pipeline", default=str(DEFAULT_PIPELINE), help="the compiled YAML (read for parameters)")
    submit.add_argument("--pipeline-name", dest="pipeline_name", help="default: the name compiled into the YAML")
    submit.add_argument("--version", help="run this uploaded pipeline version instead of sending the YAML")
    submit.add_argument("--run-name", dest="run_name", help="default: <pipeline>-<UTC timestamp>")
    submit.add_argument("--wait", action="store_true", help="follow the run; exit 1 unless it succeeds")
    submit.add_argument("--timeout", type=float, default=4 * 3600, help="seconds --wait waits (default 4 h)")
    submit.add_argument("--poll-seconds", dest="poll_seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    add_run_arguments(submit)
    add_connection_arguments(submit)
    submit.set_defaults(handler=command_submit)

    schedule = commands.add_parser("schedule", help="recurring runs: create, list, enable, disable, delete")
    schedule_commands = schedule.add_subparsers(dest="schedule_command", required=True)
    create = schedule_commands.add_parser("create", help="create a recurring run pinned to an uploaded version")
    trigger = create.add_mutually_exclusive_group(required=True)
    trigger.add_argument("--cron", help="6 fields, seconds first: '0 0 2 * * *' is 02:00 daily")
    trigger.add_argument("--interval", help="a period: 3600, 90m, 6h or 1d")
    create.add_argument("--name", help="default: <pipeline>-nightly (cron) or <pipeline>-periodic (interval)")
    create.add_argument("--pipeline", default=str(DEFAULT_PIPELINE), help="the compiled YAML (read for parameters)")
    create.add_argument("--pipeline-name", dest="pipeline_name", help="default: the name compiled into the YAML")
    create.add_argument("--version", help="the pipeline version to pin (default: this checkout's `upload` name)")
    create.add_argument(
        "--max-concurrency",
        dest="max_concurrency",
        type=int,
        default=1,
        help="runs allowed at once (default 1: a slow night never overlaps the next)",
    )
    create.add_argument("--catchup", action="store_true", help="backfill intervals missed while paused (default: no)")
    create.add_argument("--disabled", action="store_true", help="create it paused")
    add_run_arguments(create)
    add_connection_arguments(create)
    create.set_defaults(handler=command_schedule_create)
    listing = schedule_commands.add_parser("list", help="list recurring runs")
    add_connection_arguments(listing)
    listing.set_defaults(handler=command_schedule_list)
    for action in ("enable", "disable", "delete"):
        change = schedule_commands.add_parser(action, help=f"{action} a recurring run, by id or name")
        change.add_argument("schedule", help="recurring run id or name")
        add_connection_arguments(change)
        change.set_defaults(handler=command_schedule_change, action=action)
