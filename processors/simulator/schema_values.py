"""A small value that satisfies a (subset of) JSON Schema / OpenAPI schema.

The simulator needs one wherever a real model would fill a schema: a structured
answer for `response_format` json_schema (every property), and a tool call's
arguments (the required properties, as a model calling a tool would). Both read
`const`, `enum`, `anyOf`/`oneOf`, nullable type lists, nested objects and arrays,
and numeric minimums; anything else becomes a string naming the field and model.
"""

from __future__ import annotations

from typing import Any


def value_for(
    schema: Any, name: str, model: str, *, required_only: bool = False, depth: int = 0
) -> Any:
    """A value for `schema`; objects get every property, or with `required_only` the
    required ones (all of them when the schema lists none)."""
    if not isinstance(schema, dict) or depth > 6:
        return f"{name} from {model}"
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]

    def inner(sub: Any, key: str) -> Any:
        return value_for(sub, key, model, required_only=required_only, depth=depth + 1)

    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return inner(options[0], name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((t for t in kind if str(t).lower() != "null"), "string")
    kind = str(kind).lower() if kind is not None else ("object" if "properties" in schema else "")
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, dict):
            return {}
        required = schema.get("required") if required_only else None
        keys = [k for k in required if k in props] if isinstance(required, list) else list(props)
        return {k: inner(props[k], k) for k in keys}
    if kind == "array":
        return [inner(schema.get("items"), name)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 0.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return f"{name} from {model}"
