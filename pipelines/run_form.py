"""The run form's descriptions, written from the settings classes (``config.py``): the pipeline's docstring
``Args:`` (what the KFP UI shows under each parameter) is never typed by hand."""

from __future__ import annotations

from dataclasses import fields

from gated_training.config import TRAINING_FORM, RunForm


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def pipeline_docstring(summary: str, form: RunForm = TRAINING_FORM) -> str:
    """The pipeline function's docstring: ``summary``, then one ``Args:`` line per run-form parameter."""
    lines = [summary, "", "Args:"]
    lines += [f"    {f.name}: {_sentence(f.metadata['doc'])}" for f in fields(form.run)]
    for group, cls in form.group_classes().items():
        title = (cls.__doc__ or group).strip().split("\n\n")[0].replace("\n", " ")
        keys = ", ".join(f.name for f in fields(cls))
        lines.append(
            f"    {group}: {_sentence(title)} A JSON object; change any of its settings, the rest keep their "
            f"defaults (docs/parameters.md#{group}): {keys}."
        )
    return "\n".join(lines) + "\n"
