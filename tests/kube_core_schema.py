"""Kubernetes' own schemas for core objects (Deployment, Service, ...), as structural OpenAPI schemas that
``tests/kube_schema.violations`` checks: derived from the models of the ``kubernetes`` Python client (kfp
installs it; generated from the API server's OpenAPI document of its release): every field's JSON name and
type (``openapi_types`` and ``attribute_map``), and a field is required where the model's setter refuses
``None``. An object a test sends through the stand-in API server is therefore checked field by field, as the
real server checks it with ``fieldValidation=Strict``."""

from __future__ import annotations

import inspect
import re
from functools import lru_cache
from typing import Any

PRIMITIVES = {"str": "string", "int": "integer", "bool": "boolean", "float": "number", "datetime": "string"}


@lru_cache(maxsize=None)
def model_schema(model_name: str) -> dict[str, Any]:
    import kubernetes.client.models as models

    cls = getattr(models, model_name)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for attribute, type_text in cls.openapi_types.items():
        json_name = cls.attribute_map[attribute]
        properties[json_name] = {"$ref": type_text}
        setter = getattr(cls, attribute).fset
        if setter is not None and "must not be `None`" in inspect.getsource(setter):
            required.append(json_name)
    return {"type": "object", "properties": properties, "required": required}


def type_schema(type_text: str, depth: int = 0) -> dict[str, Any]:
    """A resolved schema for one client type (``list[V1Container]``, ``dict(str, str)``, ``V1PodSpec``)."""
    if depth > 40:
        return {}
    if type_text in PRIMITIVES:
        return {"type": PRIMITIVES[type_text]}
    if type_text == "object":  # IntOrString, RawExtension: anything
        return {}
    listed = re.fullmatch(r"list\[(.+)\]", type_text)
    if listed:
        return {"type": "array", "items": type_schema(listed.group(1), depth + 1)}
    mapping = re.fullmatch(r"dict\(str, (.+)\)", type_text)
    if mapping:
        return {"type": "object", "additionalProperties": type_schema(mapping.group(1), depth + 1)}
    base = model_schema(type_text)
    return {
        "type": "object",
        "required": base["required"],
        "properties": {name: type_schema(ref["$ref"], depth + 1) for name, ref in base["properties"].items()},
    }


@lru_cache(maxsize=None)
def schema_for_kind(kind: str) -> dict[str, Any]:
    """The schema of a top-level object: ``Deployment`` (apps/v1), ``Service`` (v1)."""
    return type_schema(f"V1{kind}")
