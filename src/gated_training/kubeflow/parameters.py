"""The run form: the pipeline's parameters and how a run's parameters are given and checked.

A pipeline's run form (``config.RunForm``: the training pipeline's, the monitoring pipeline's) has the
run-level parameters flat (``config.RunSettings``: data, suite, registry, MLflow, webhook) and one JSON object
per settings class it takes (``config.GROUPS``: ``gate``, ``drift``, ``features``, ``split``, ``training``,
``serving``, ``monitoring``), whose keys are the settings' names. A run's parameters come from
the compiled YAML's defaults, then params files, the CLI's options and ``--set``, in that order; a
setting may be given flat (``min_accuracy: 0.9``, as before the groups), dotted (``gate.min_accuracy``)
or inside its group (``gate: {min_accuracy: 0.9}``). Unknown names are errors, and everything is checked
before anything runs (:func:`validate`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any, Sequence

from gated_training.config import (
    ENGINES,
    FORMS,
    GROUPS,
    TRAINING_FORM,
    RunForm,
    RunSettings,
    check_sha256_parameter,
    check_spark_training,
    field_kind,
    from_group,
    group_of,
    max_input_bytes,
    require_choice,
    require_fraction,
)
from gated_training.errors import ConfigError

RUN_PARAMETERS = tuple(f.name for f in fields(RunSettings))


def coerce_parameter(name: str, kfp_type: str, value: Any) -> Any:
    """Cast a value from the command line or a params file to the type the YAML declares."""
    try:
        if kfp_type == "Boolean":
            return _boolean(value)
        if kfp_type == "Integer":
            number = float(value)
            if not number.is_integer():
                raise ValueError("expected a whole number")
            return int(number)
        if kfp_type == "Float":
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if kfp_type in ("Dict", "STRUCT"):
            value = json.loads(value) if isinstance(value, str) else value
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return dict(value)
        return "" if value is None else str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"parameter {name}={value!r}: {exc}") from exc


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError("expected true or false")
    return lowered in ("true", "1", "yes")


def coerce_setting(group: str, name: str, value: Any) -> Any:
    """A group's setting given as text (``--set``) read as its field's type; other values pass as they are
    (the settings class checks them)."""
    if not isinstance(value, str):
        return value
    kind = field_kind(GROUPS[group], name)
    try:
        if kind == "bool":
            return _boolean(value)
        if kind == "int":
            number = float(value)
            if not number.is_integer():
                raise ValueError("expected a whole number")
            return int(number)
        if kind == "float":
            return float(value)
    except ValueError as exc:
        raise ConfigError(f"parameter {group}.{name}={value!r}: {exc}") from exc
    return value


def _set(parameters: dict[str, Any], group: str, name: str, value: Any) -> None:
    known = [f.name for f in fields(GROUPS[group])]
    if name not in known:
        raise ConfigError(f"parameter {group}.{name}: unknown setting; {group}'s settings are: {', '.join(known)}")
    parameters[group][name] = coerce_setting(group, name, value)


def resolve_parameters(declared: dict[str, tuple[str, Any]], layers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The YAML's defaults (``declared``: name → (KFP type, default)), overridden layer by layer. A layer's key is
    a run-level parameter, a group (a mapping of its settings), ``group.setting`` or a setting's flat name."""
    parameters = {name: coerce_parameter(name, kfp_type, default) for name, (kfp_type, default) in declared.items()}
    for group in GROUPS:
        if group in parameters:
            parameters[group] = dict(parameters[group] or {})
    for layer in layers:
        for key, value in layer.items():
            if key in GROUPS and key in declared:
                for name, setting_value in coerce_parameter(key, "Dict", value).items():
                    _set(parameters, key, name, setting_value)
            elif "." in key and key.split(".", 1)[0] in GROUPS and key.split(".", 1)[0] in declared:
                group, name = key.split(".", 1)
                _set(parameters, group, name, value)
            elif key in declared:
                parameters[key] = coerce_parameter(key, declared[key][0], value)
            elif (owner := group_of(key)) is not None and owner in declared:
                _set(parameters, owner, key, value)
            else:
                raise ConfigError(
                    f"unknown parameter {key!r}; the pipeline's parameters are: {', '.join(sorted(declared))} "
                    "(and every setting of a group by its name)"
                )
    return parameters


def touched(layers: Sequence[dict[str, Any]], declared: dict[str, Any]) -> list[str]:
    """The top-level parameters the layers set (a setting given flat or dotted touches its group)."""
    names: list[str] = []
    for layer in layers:
        for key in layer:
            top = key if key in declared else (key.split(".", 1)[0] if "." in key else group_of(key)) or key
            if top not in names:
                names.append(top)
    return names


def form_of(declared: dict[str, Any]) -> RunForm:
    """The run form a compiled YAML's parameters are (the monitoring pipeline's has ``prediction_log_uri``)."""
    return FORMS["monitoring"] if "prediction_log_uri" in declared else TRAINING_FORM


def validate(parameters: dict[str, Any], form: RunForm = TRAINING_FORM) -> dict[str, Any]:
    """Check a run's parameters as the steps will: required ones, ranges, the registry's names, the webhook, and
    every group strictly through its settings class. Returns each group's settings as plain dicts."""
    from gated_training.registry import check_registry_parameters
    from gated_training.reports import check_ticket, check_webhook_url

    required = ("data_uri", "target_column") if form is TRAINING_FORM else ("prediction_log_uri",)
    for name in required:
        if not str(parameters.get(name) or "").strip():
            raise ConfigError(f"parameter {name} is required")
    run = form.run()
    if form is TRAINING_FORM:
        require_fraction("min_quality_score", parameters.get("min_quality_score", run.min_quality_score))
        max_input_bytes(parameters.get("max_input_mb", run.max_input_mb))
        require_choice("engine", parameters.get("engine", run.engine), ENGINES)
        check_sha256_parameter("suite_sha256", str(parameters.get("suite_sha256") or ""))
        check_ticket(str(parameters.get("retrain_ticket") or ""))
    else:
        from gated_training.run_context import parse_window_end

        parse_window_end(str(parameters.get("window_end") or ""))
    check_registry_parameters(
        str(parameters.get("registry_uri", run.registry_uri)), str(parameters.get("model_name", run.model_name))
    )
    check_webhook_url(str(parameters.get("notify_webhook_url") or ""))
    groups = {group: from_group(cls, parameters.get(group) or {}, group) for group, cls in form.group_classes().items()}
    if form is TRAINING_FORM and parameters.get("engine", run.engine) == "spark":
        check_spark_training(groups["training"])  # before the first step, not at train-model
    return {group: asdict(settings) for group, settings in groups.items()}


def markdown_tables() -> str:
    """docs/parameters.md's tables, written from the settings classes (``make docs``; a test compares them): the
    training pipeline's run-level parameters, the monitoring pipeline's, then every group once."""
    from gated_training.config import MONITORING_FORM

    def row(name: str, default: Any, doc: str) -> str:
        shown = "empty" if default == "" else ("true" if default is True else "false" if default is False else default)
        return f"| `{name}` | `{shown}` | {doc} |" if shown != "empty" else f"| `{name}` | empty | {doc} |"

    lines = ["### Run-level: the training pipeline", "", "| parameter | default | |", "|---|---|---|"]
    lines += [row(f.name, f.default, f.metadata["doc"]) for f in fields(TRAINING_FORM.run)]
    lines += [
        "",
        "### Run-level: the monitoring pipeline",
        "",
        f"Its groups: {', '.join(f'`{g}`' for g in MONITORING_FORM.groups)} (the training groups are its retrains').",
        "",
        "| parameter | default | |",
        "|---|---|---|",
    ]
    lines += [row(f.name, f.default, f.metadata["doc"]) for f in fields(MONITORING_FORM.run)]
    for group, cls in GROUPS.items():
        lines += [
            "",
            f"### `{group}`",
            "",
            (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
            "",
            "| setting | default | |",
            "|---|---|---|",
        ]
        lines += [row(f.name, f.default, f.metadata["doc"]) for f in fields(cls)]
    return "\n".join(lines) + "\n"
