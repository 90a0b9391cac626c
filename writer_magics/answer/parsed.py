"""Structured output: ``response_format`` from a pydantic model or a JSON schema, and parsing.

``--schema NAME`` names a pydantic model class or a JSON-schema dict in the notebook.
:func:`response_format` builds Writer's ``{"type": "json_schema", "json_schema": ...}``
(section 3.4 of the reference) and :func:`parse` turns the answer back into a model
instance or plain data, or raises :class:`StructuredOutputError` with one line saying
what is wrong and the raw text kept on ``.raw``.

Both pydantic and jsonschema are optional: without jsonschema a dict schema is checked
by a small validator here (types, enum/const, required, properties, items, unions,
local ``$ref``), enough to catch the usual mismatch of a model answer.

``strict`` is not sent unless asked for: Writer documents it as optional and its strict
rules for schemas are not documented, so a user's ordinary schema is never rejected
for a rule they cannot see.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from IPython.core.error import UsageError

from writer_magics.errors import PromptError, StructuredOutputError
from writer_magics.line.prompt import resolve_reference
from writer_magics.request import JSON

__all__ = [
    "is_model_class",
    "parse",
    "pretty",
    "pretty_markdown",
    "resolve_schema",
    "response_format",
    "schema_name",
    "schema_of",
    "validation_problem",
]

_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")
_FENCE = re.compile(r"\A\s*```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?```\s*\Z", re.DOTALL)


# --------------------------------------------------------------------------- the request


def _pydantic_base() -> type | None:
    try:
        from pydantic import BaseModel
    except ImportError:  # pydantic is optional
        return None
    return BaseModel


def is_model_class(obj: Any) -> bool:
    """True for a pydantic model class (not an instance)."""
    base = _pydantic_base()
    return base is not None and isinstance(obj, type) and issubclass(obj, base)


def resolve_schema(name: str, user_ns: Mapping[str, Any]) -> Any:
    """The model class or schema dict ``--schema NAME`` refers to (``name.attr`` works too)."""
    try:
        obj = resolve_reference(name, user_ns)
    except PromptError as exc:
        raise UsageError(f"{exc} (used in --schema)") from None
    schema_of(obj, name)  # check it now: a UsageError before anything is sent
    return obj


def schema_of(obj: Any, where: str | None = None) -> JSON:
    """The JSON schema of a pydantic model class, or a JSON-schema dict checked as one.

    ``where`` is the variable's name, for the UsageError when ``obj`` is neither.
    """
    label = f"--schema {where}" if where else "--schema"
    if is_model_class(obj):
        return dict(obj.model_json_schema())
    if isinstance(obj, Mapping):
        schema = dict(obj)
        problem = _schema_problem(schema)
        if problem:
            raise UsageError(f"{label} is not a valid JSON schema: {problem}")
        return schema
    what = "a pydantic model instance" if is_model_class(type(obj)) else type(obj).__name__
    raise UsageError(f"{label} expects a pydantic model class or a JSON-schema dict, got {what}")


def schema_name(obj: Any, fallback: str = "response") -> str:
    """``json_schema.name``: the model's class name or the schema's title, sanitised.

    Writer accepts ``[a-zA-Z0-9_-]``, at most 64 characters.
    """
    if is_model_class(obj):
        raw = str(obj.__name__)
    elif isinstance(obj, Mapping) and isinstance(obj.get("title"), str):
        raw = str(obj["title"])
    else:
        raw = fallback
    name = _NAME_CHARS.sub("_", raw.strip()).strip("_")[:64]
    return name or "response"


def response_format(obj: Any, name: str | None = None, *, strict: bool | None = None) -> JSON:
    """``{"type": "json_schema", "json_schema": {"name", "description"?, "schema"}}``.

    ``name`` is the fallback when a dict schema has no ``title`` (the magic passes the
    variable's name).
    """
    schema = schema_of(obj, name)
    spec: JSON = {"name": schema_name(obj, name or "response")}
    description = schema.get("description")
    if isinstance(description, str) and description.strip():
        spec["description"] = description.strip()
    if strict is not None:
        spec["strict"] = strict
    spec["schema"] = schema
    return {"type": "json_schema", "json_schema": spec}


# --------------------------------------------------------------------------- the answer


def _strip_fence(text: str) -> str:
    """Models sometimes wrap JSON in a ```json fence despite the schema; accept that."""
    match = _FENCE.match(text)
    return match.group(1) if match else text


def parse(text: str, obj: Any) -> Any:
    """The answer as a model instance (model class) or plain data (dict schema).

    Raises :class:`StructuredOutputError` with one line and ``.raw`` set to ``text``.
    """
    body = _strip_fence(text)
    if not body.strip():
        raise StructuredOutputError("the answer is empty, not JSON", raw=text)
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise StructuredOutputError(
            f"the answer is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            raw=text,
        ) from None
    if is_model_class(obj):
        try:
            return obj.model_validate(data)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise StructuredOutputError(
                f"the answer does not match {obj.__name__}: {_pydantic_problem(exc)}", raw=text
            ) from None
    schema = schema_of(obj)
    problem = validation_problem(data, schema)
    if problem:
        title = schema.get("title")
        name = title if isinstance(title, str) and title else "the schema"
        raise StructuredOutputError(f"the answer does not match {name}: {problem}", raw=text)
    return data


def _pydantic_problem(exc: ValueError) -> str:
    errors_of = getattr(exc, "errors", None)
    errors = errors_of() if callable(errors_of) else []
    if not errors:
        return str(exc).splitlines()[0]
    first = errors[0]
    where = _path(first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def _path(parts: Any) -> str:
    """``answer.items[2]``, or ``the top level`` for the whole document."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the top level"


def pretty(text: str) -> str:
    """The answer re-indented when it is JSON, unchanged otherwise."""
    try:
        return json.dumps(json.loads(_strip_fence(text)), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def pretty_markdown(text: str) -> str:
    """The answer as a fenced ``json`` block (what the cell shows)."""
    body = pretty(text)
    fence = "```"
    while fence in body:
        fence += "`"
    return f"{fence}json\n{body}\n{fence}"


# --------------------------------------------------------------------------- validation


def _jsonschema() -> ModuleType | None:
    try:
        return importlib.import_module("jsonschema")
    except ImportError:  # optional dependency
        return None


def _schema_problem(schema: JSON) -> str | None:
    js = _jsonschema()
    if js is None:
        kind = schema.get("type")
        if kind is not None and not isinstance(kind, str | list):
            return f"'type' must be a string or a list, not {type(kind).__name__}"
        return None
    try:
        js.validators.validator_for(schema).check_schema(schema)
    except js.exceptions.SchemaError as exc:
        return f"{_path(exc.absolute_path)}: {exc.message}"
    return None


def validation_problem(data: Any, schema: JSON) -> str | None:
    """Why ``data`` does not match ``schema`` (one line), or None when it does."""
    js = _jsonschema()
    if js is None:
        return _check(data, schema, schema, [])
    validator = js.validators.validator_for(schema)(schema)
    error = js.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return None
    return f"{_path(error.absolute_path)}: {error.message}"


_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _is_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(kind, (object,)))


def _resolve(schema: JSON, root: JSON) -> JSON:
    for _ in range(16):
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#"):
            return schema
        target: Any = root
        for part in [p for p in ref[1:].split("/") if p]:
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema = target if isinstance(target, dict) else {}
    return schema


def _check(data: Any, schema: Any, root: JSON, path: list[str | int]) -> str | None:
    """The minimal validator used when jsonschema is not installed."""
    if not isinstance(schema, dict):
        return None
    schema = _resolve(schema, root)
    here = _path(path)
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else kind if isinstance(kind, list) else []
    if kinds and not any(_is_type(data, k) for k in kinds):
        return f"{here}: {json.dumps(data)[:40]} is not of type {' or '.join(kinds)}"
    if "const" in schema and data != schema["const"]:
        return f"{here}: {json.dumps(schema['const'])} was expected"
    if isinstance(schema.get("enum"), list) and data not in schema["enum"]:
        return f"{here}: {json.dumps(data)[:40]} is not one of {json.dumps(schema['enum'])}"
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if (
            isinstance(options, list)
            and options
            and all(_check(data, o, root, path) for o in options)
        ):
            return f"{here}: matches none of the allowed forms"
    for part in schema.get("allOf") or []:
        problem = _check(data, part, root, path)
        if problem:
            return problem
    if isinstance(data, dict):
        for name in schema.get("required") or []:
            if name not in data:
                return f"{here}: {name!r} is a required property"
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for name, value in data.items():
            if name in properties:
                problem = _check(value, properties[name], root, [*path, name])
            elif extra is False:
                problem = f"{here}: {name!r} is not an allowed property"
            else:
                problem = _check(value, extra, root, [*path, name])
            if problem:
                return problem
    if isinstance(data, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(data):
            problem = _check(value, schema["items"], root, [*path, i])
            if problem:
                return problem
    return None
