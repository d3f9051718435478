"""A small JSON Schema validator: the subset structured-output schemas use.

Enough to tell whether a model's JSON answer has the shape a request asked
for in `response_format.json_schema.schema`: `type` (one or a list),
`enum`, `const`, `properties`, `required`, `additionalProperties` (true, false
or a schema), `items`, `minItems`/`maxItems`, `minLength`/`maxLength`,
`pattern`, `minimum`/`maximum` and their exclusive forms, `anyOf`, `oneOf`,
`allOf`, `not`, and local `$ref`s (`#/$defs/...`, `#/definitions/...`).
Other keywords are ignored, so an unusual schema is checked less strictly,
never refused. No dependency: the cascade check runs on every cheap answer.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

MAX_ERRORS = 5
MAX_DEPTH = 64

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def validate(instance: Any, schema: Any) -> list[str]:
    """Where `instance` breaks `schema` (at most `MAX_ERRORS` messages); empty = it conforms."""
    errors: list[str] = []
    _check(instance, schema, schema, "$", errors, 0)
    return errors[:MAX_ERRORS]


def _check(value: Any, schema: Any, root: Any, path: str, errors: list[str], depth: int) -> None:
    if len(errors) >= MAX_ERRORS or not isinstance(schema, Mapping):
        return  # `true`, `{}` or not a schema: anything goes
    if depth > MAX_DEPTH:
        errors.append(f"{path}: schema nests too deep")
        return
    if "$ref" in schema:
        target = _resolve(root, schema["$ref"])
        if target is None:
            return  # a remote or unknown reference: not checked
        _check(value, target, root, path, errors, depth + 1)
    if "type" in schema:
        wanted = schema["type"]
        names = wanted if isinstance(wanted, list) else [wanted]
        if not any(_TYPES.get(str(n), lambda _: True)(value) for n in names):
            errors.append(f"{path}: expected {'/'.join(map(str, names))}, got {_kind(value)}")
            return
    if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']!r}"[:300])
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {schema['const']!r}"[:300])
    if isinstance(value, dict):
        _object(value, schema, root, path, errors, depth)
    elif isinstance(value, list):
        _array(value, schema, root, path, errors, depth)
    elif isinstance(value, str):
        _string(value, schema, path, errors)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _number(value, schema, path, errors)
    _combinators(value, schema, root, path, errors, depth)


def _object(
    value: dict[str, Any], schema: Mapping[str, Any], root: Any, path: str, errors: list[str],
    depth: int,
) -> None:  # fmt: skip
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    for name in schema.get("required") or ():
        if name not in value:
            errors.append(f"{path}: missing required property {name!r}")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        where = f"{path}.{name}"
        if name in properties:
            _check(item, properties[name], root, where, errors, depth + 1)
        elif extra is False:
            errors.append(f"{path}: unexpected property {name!r}")
        elif isinstance(extra, Mapping):
            _check(item, extra, root, where, errors, depth + 1)


def _array(
    value: list[Any], schema: Mapping[str, Any], root: Any, path: str, errors: list[str],
    depth: int,
) -> None:  # fmt: skip
    if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
        errors.append(f"{path}: fewer than {schema['minItems']} items")
    if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
        errors.append(f"{path}: more than {schema['maxItems']} items")
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            _check(item, items, root, f"{path}[{index}]", errors, depth + 1)


# A group that repeats and holds a repeat, like (a+)+ or (x*)*: the shape of patterns whose
# backtracking explodes. The client writes the schema and the model writes the value, and
# the check runs on the worker's event loop, so such patterns are not run at all.
_NESTED_REPEAT = re.compile(r"\([^)]*[+*}][^)]*\)\s*[+*{]")
MAX_PATTERN_CHARS = 200
MAX_MATCHED_CHARS = 2000


def _safe_to_run(pattern: str, value: str) -> bool:
    """Whether a client's `pattern` may run against `value` without risking a stall."""
    return (
        len(pattern) <= MAX_PATTERN_CHARS
        and len(value) <= MAX_MATCHED_CHARS
        and _NESTED_REPEAT.search(pattern) is None
    )


def _string(value: str, schema: Mapping[str, Any], path: str, errors: list[str]) -> None:
    if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
        errors.append(f"{path}: shorter than {schema['minLength']} characters")
    if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
        errors.append(f"{path}: longer than {schema['maxLength']} characters")
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and _safe_to_run(pattern, value):
        try:
            if re.search(pattern, value) is None:
                errors.append(f"{path}: does not match {pattern!r}")
        except re.error:
            pass  # a pattern Python's re does not speak: not checked


def _number(value: float, schema: Mapping[str, Any], path: str, errors: list[str]) -> None:
    for key, holds, sign in _BOUNDS:
        bound = schema.get(key)
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            continue
        if not holds(value, bound):
            errors.append(f"{path}: {value} is not {sign} {bound}")


_BOUNDS: tuple[tuple[str, Callable[[float, float], bool], str], ...] = (
    ("minimum", operator.ge, ">="),
    ("maximum", operator.le, "<="),
    ("exclusiveMinimum", operator.gt, ">"),
    ("exclusiveMaximum", operator.lt, "<"),
)


def _combinators(
    value: Any, schema: Mapping[str, Any], root: Any, path: str, errors: list[str], depth: int
) -> None:
    for sub in schema.get("allOf") or ():
        _check(value, sub, root, path, errors, depth + 1)
    any_of = schema.get("anyOf")
    if (
        isinstance(any_of, list)
        and any_of
        and not any(_conforms(value, sub, root, depth) for sub in any_of)
    ):
        errors.append(f"{path}: matches none of anyOf")
    one_of = schema.get("oneOf")
    if isinstance(one_of, list) and one_of:
        matching = sum(_conforms(value, sub, root, depth) for sub in one_of)
        if matching != 1:
            errors.append(f"{path}: matches {matching} of oneOf, not exactly one")
    negated = schema.get("not")
    if isinstance(negated, Mapping) and _conforms(value, negated, root, depth):
        errors.append(f"{path}: matches a schema it must not")


def _conforms(value: Any, schema: Any, root: Any, depth: int) -> bool:
    found: list[str] = []
    _check(value, schema, root, "$", found, depth + 1)
    return not found


def _resolve(root: Any, ref: Any) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    node = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
