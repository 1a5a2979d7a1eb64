"""What a Kubernetes API server does with a custom object: RFC 7386 merge patches, and validation
against the CRD's structural OpenAPI schema with ``fieldValidation=Strict`` (an unknown field is an
error, not silently pruned). Schemas: tests/conformance/kserve/ (vendored from KServe's CRDs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).parent / "conformance" / "kserve"
KSERVE_VERSIONS = ("v0.15.2", "v0.16.0", "v0.20.0")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def spark_schema(operator_version: str) -> dict[str, Any]:
    """The Spark Operator's SparkApplication schema (tests/conformance/spark_operator/, vendored small)."""
    path = SCHEMAS.parent / "spark_operator" / f"{operator_version}.SparkApplication.json"
    return json.loads(path.read_text())["schema"]


def schema_for(kserve_version: str, kind: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{kserve_version}.{kind}.json").read_text())["schema"]


def violations(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """The API server's complaints about ``value``: wrong types, missing required fields, values
    outside an enum or range, and (strict field validation) fields the schema does not declare."""
    errors: list[str] = []
    where = path or "<root>"
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            errors.append(f"{where}: must be an integer or a string")
        return errors
    kind = schema.get("type")
    checks = {"object": dict, "array": list, "string": str, "boolean": bool}
    if kind in checks and not isinstance(value, checks[kind]):
        return [f"{where}: must be of type {kind}"]
    if kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
        return [f"{where}: must be of type integer"]
    if kind == "number" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        return [f"{where}: must be of type number"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: Unsupported value: {value!r}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: should be greater than or equal to {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{where}: should be less than or equal to {schema['maximum']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path + '.' if path else ''}{name}: Required value")
        properties = schema.get("properties")
        for key, item in value.items():
            child = f"{path}.{key}" if path else key
            if properties is not None and key in properties:
                errors += violations(item, properties[key], child)
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += violations(item, schema["additionalProperties"], child)
            elif properties is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f'unknown field "{child}"')
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += violations(item, schema["items"], f"{path}[{index}]")
    return errors
