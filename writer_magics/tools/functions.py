"""Python functions as chat tools: a JSON schema from a signature, and running a call.

The model only sees a function through its schema, so the schema is built from what
the author already wrote: the signature, the type hints and the docstring (its first
part is the tool's description, the Google / NumPy / reST argument sections give each
parameter's text).

Supported hints: ``str``, ``int``, ``float``, ``bool``, ``list[T]`` (also ``tuple``,
``set``, ``Sequence``), ``dict[str, T]``, ``Literal[...]``, ``Optional[T]`` /
``T | None``, unions, ``Enum`` classes, ``Annotated[T, "text"]`` (the text becomes the
description), ``Any`` and pydantic model classes (when pydantic is installed).

Decision (strict over lenient): a parameter without a type hint is accepted only when
its default value shows the type (``n=3`` is an integer). Otherwise the function gets a
one-line :class:`ToolSchemaError` and nothing is sent: guessing "string" would make the
model send ``"2"`` to ``def add(a, b)`` and the answer would silently be ``"22"``.
``*args`` / ``**kwargs``, async functions and hints without a JSON form are refused the
same way.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime
import difflib
import enum
import inspect
import json
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from IPython.core.error import UsageError

from writer_magics.answer.parsed import is_model_class
from writer_magics.errors import ToolSchemaError
from writer_magics.request import JSON

__all__ = [
    "Docstring",
    "encode_result",
    "error_text",
    "function_tool",
    "parse_docstring",
    "resolve_tools",
    "run_call",
    "schema_for",
    "tool_definitions",
]

#: Tool (function) names Writer accepts.
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")

_SIMPLE: Mapping[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_ARRAYS = (
    list,
    set,
    frozenset,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Set,
    collections.abc.MutableSet,
    collections.abc.Iterable,
    collections.abc.Collection,
)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_SUPPORTED = (
    "str, int, float, bool, list[...], dict[str, ...], Literal[...], Optional[...], "
    "an Enum or a pydantic model"
)


# --------------------------------------------------------------------------- resolving


def resolve_tools(
    names: Sequence[str], user_ns: Mapping[str, Any]
) -> dict[str, Callable[..., Any]]:
    """The functions named by ``--tools``, keyed by the name the model will see.

    The key is the name as typed (not ``__name__``), so ``tool = lambda ...`` or an
    alias works and the model's calls map back without surprises.
    """
    found: dict[str, Callable[..., Any]] = {}
    for name in names:
        if name not in user_ns:
            candidates = [k for k, v in user_ns.items() if callable(v) and not k.startswith("_")]
            close = difflib.get_close_matches(name, candidates, 1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise UsageError(f"--tools: no function named {name!r} is defined{hint}")
        value = user_ns[name]
        if not callable(value):
            raise UsageError(f"--tools: {name} is a {type(value).__name__}, not a function")
        found[name] = value
    return found


def tool_definitions(functions: Mapping[str, Callable[..., Any]]) -> list[JSON]:
    """The ``tools`` entries for the functions of :func:`resolve_tools`, in order."""
    return [function_tool(func, name=name) for name, func in functions.items()]


# --------------------------------------------------------------------------- docstrings


@dataclass(frozen=True)
class Docstring:
    """A docstring split into the tool description and per-argument texts."""

    description: str = ""
    arguments: dict[str, str] = field(default_factory=dict)


_GOOGLE_ARGS = re.compile(
    r"(args|arguments|parameters|params|keyword args|keyword arguments|other parameters)\s*:",
    re.IGNORECASE,
)
_GOOGLE_SECTION = re.compile(
    r"(returns?|yields?|raises|examples?|notes?|attributes|see also|warnings?|warns|todo|"
    r"references|methods)\s*:",
    re.IGNORECASE,
)
_GOOGLE_ENTRY = re.compile(r"\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:(.*)")
_NUMPY_RULE = re.compile(r"\s*-{3,}\s*")
_NUMPY_ENTRY = re.compile(r"\*{0,2}(\w+)\s*(?::.*)?")
_REST_FIELD = re.compile(r":(\w+)((?:\s+[^:]+?)?)\s*:(.*)")
_NUMPY_ARG_SECTIONS = frozenset({"parameters", "other parameters", "keyword arguments"})


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def parse_docstring(doc: str | None) -> Docstring:
    """Read the description and argument texts of a Google, NumPy or reST docstring."""
    lines = inspect.cleandoc(doc or "").splitlines()
    description: list[str] = []
    arguments: dict[str, str] = {}
    in_description = True
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if stripped and _NUMPY_RULE.fullmatch(following):  # NumPy: "Parameters\n----------"
            in_description = False
            end = _numpy_end(lines, i + 2)
            if stripped.lower() in _NUMPY_ARG_SECTIONS:
                _numpy_entries(lines[i + 2 : end], arguments)
            i = end
            continue
        if _GOOGLE_ARGS.fullmatch(stripped) or _GOOGLE_SECTION.fullmatch(stripped):
            in_description = False
            end = _block_end(lines, i + 1, _indent(line))
            if _GOOGLE_ARGS.fullmatch(stripped):
                _google_entries(lines[i + 1 : end], arguments)
            i = end
            continue
        rest = _REST_FIELD.match(stripped)
        if rest:
            in_description = False
            end = _block_end(lines, i + 1, _indent(line))
            kind, names = rest.group(1).lower(), rest.group(2).split()
            if kind in ("param", "parameter", "arg", "argument", "key", "keyword") and names:
                text = " ".join([rest.group(3).strip(), *(x.strip() for x in lines[i + 1 : end])])
                arguments[names[-1]] = " ".join(text.split())
            i = end
            continue
        if in_description:
            description.append(line)
        i += 1
    return Docstring("\n".join(description).strip(), arguments)


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """The end of a block whose lines are indented deeper than ``indent`` (blanks allowed)."""
    end = start
    for j in range(start, len(lines)):
        if lines[j].strip() and _indent(lines[j]) <= indent:
            break
        end = j + 1
    return end


def _numpy_end(lines: list[str], start: int) -> int:
    for j in range(start, len(lines) - 1):
        if lines[j].strip() and _NUMPY_RULE.fullmatch(lines[j + 1]):
            return j
    return len(lines)


def _entries(block: list[str], entry: re.Pattern[str], arguments: dict[str, str]) -> None:
    """Entries at the block's smallest indent; deeper lines continue the entry above."""
    present = [line for line in block if line.strip()]
    if not present:
        return
    base = min(_indent(line) for line in present)
    name: str | None = None
    parts: list[str] = []
    for line in [*present, ""]:
        if line and _indent(line) > base:
            parts.append(line.strip())
            continue
        if name is not None:
            arguments[name] = " ".join(" ".join(parts).split())
        match = entry.fullmatch(line.strip()) if line else None
        name = match.group(1) if match else None
        parts = [match.group(2).strip()] if match and match.lastindex == 2 else []


def _google_entries(block: list[str], arguments: dict[str, str]) -> None:
    _entries(block, _GOOGLE_ENTRY, arguments)


def _numpy_entries(block: list[str], arguments: dict[str, str]) -> None:
    _entries(block, _NUMPY_ENTRY, arguments)


# --------------------------------------------------------------------------- schemas


def function_tool(func: Callable[..., Any], name: str | None = None) -> JSON:
    """The exact ``{"type": "function", "function": {...}}`` entry for ``func``.

    Raises :class:`ToolSchemaError` (one line) when the function cannot be described.
    """
    name = name if name is not None else str(getattr(func, "__name__", ""))
    if not TOOL_NAME.fullmatch(name):
        raise ToolSchemaError(
            f"{name!r} cannot be a tool name: use letters, digits, _ and - (at most 64)"
        )
    what = f"{name} cannot be used as a tool"
    if inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 (an instance's async __call__)
    ):
        raise ToolSchemaError(f"{what}: it is async; wrap it in a plain function")
    params = _parameters(func, what)
    doc = parse_docstring(inspect.getdoc(func))
    properties: dict[str, JSON] = {}
    required: list[str] = []
    defs: dict[str, JSON] = {}
    for param in params:
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise ToolSchemaError(f"{what}: *{param.name} cannot be described; name each argument")
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            raise ToolSchemaError(f"{what}: **{param.name} cannot be described; name each argument")
        schema = _parameter_schema(param, f"{what}: parameter {param.name!r}", defs)
        text = doc.arguments.get(param.name)
        if text and _annotated_text(param.annotation) is None:  # Annotated text wins
            schema = _described(schema, text)
        properties[param.name] = schema
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
    parameters: JSON = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    if defs:
        parameters["$defs"] = defs
    function: JSON = {"name": name}
    if doc.description:
        function["description"] = doc.description
    function["parameters"] = parameters
    return {"type": "function", "function": function}


def _parameters(func: Callable[..., Any], what: str) -> list[inspect.Parameter]:
    """The signature with string annotations evaluated (``from __future__`` users)."""
    try:
        signature = inspect.signature(func, eval_str=True)
    except (TypeError, ValueError) as exc:
        raise ToolSchemaError(f"{what}: Python cannot read its signature ({exc})") from None
    except Exception as exc:  # NameError & co. from a string annotation
        raise ToolSchemaError(
            f"{what}: a type hint cannot be evaluated ({type(exc).__name__}: {exc})"
        ) from None
    return list(signature.parameters.values())


def _parameter_schema(param: inspect.Parameter, where: str, defs: dict[str, JSON]) -> JSON:
    annotation = param.annotation
    default = param.default
    if annotation is inspect.Parameter.empty:
        inferred = type(default) if default is not inspect.Parameter.empty else None
        if inferred not in (str, int, float, bool, list, dict):
            raise ToolSchemaError(f"{where} has no type hint; annotate it (e.g. {param.name}: str)")
        annotation = inferred
    schema = schema_for(annotation, where, defs)
    if default is not inspect.Parameter.empty:
        value = default.value if isinstance(default, enum.Enum) else default
        if _is_json(value):
            schema["default"] = value
    return schema


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def schema_for(tp: Any, where: str, defs: dict[str, JSON]) -> JSON:
    """The JSON schema of one type hint; nested pydantic ``$defs`` are collected in ``defs``."""
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is Any:
        return {}
    if origin is Annotated:
        schema = schema_for(args[0], where, defs)
        text = _annotated_text(tp)
        return schema if text is None else _described(schema, text)
    if tp is None or tp is type(None):
        return {"type": "null"}
    if tp in _SIMPLE:
        return {"type": _SIMPLE[tp]}
    if tp in (list, tuple, set, frozenset):
        return {"type": "array", **({"uniqueItems": True} if tp in (set, frozenset) else {})}
    if tp is dict:
        return {"type": "object"}
    if origin is Literal:
        return _enum_schema(list(args), where)
    if origin is Union or (origin is not None and origin is getattr(types, "UnionType", None)):
        options = [a for a in args if a is not type(None)]
        schemas = [schema_for(a, where, defs) for a in options]
        if len(args) > len(options):
            schemas.append({"type": "null"})
        return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_for(args[0], where, defs)}
        items = [schema_for(a, where, defs) for a in args]
        return {
            "type": "array",
            "prefixItems": items,
            "minItems": len(items),
            "maxItems": len(items),
        }
    if origin in _ARRAYS:
        schema = {"type": "array"}
        if args:
            schema["items"] = schema_for(args[0], where, defs)
        if origin in (set, frozenset, collections.abc.Set, collections.abc.MutableSet):
            schema["uniqueItems"] = True
        return schema
    if origin in _MAPPINGS:
        if args and args[0] is not str:
            raise ToolSchemaError(f"{where}: JSON object keys are strings, not {_name(args[0])}")
        schema = {"type": "object"}
        if args and args[1] is not Any:
            schema["additionalProperties"] = schema_for(args[1], where, defs)
        return schema
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_schema([m.value for m in tp], where)
    if is_model_class(tp):
        schema = dict(tp.model_json_schema())
        defs.update(schema.pop("$defs", None) or {})
        return schema
    raise ToolSchemaError(f"{where} has type {_name(tp)}, which has no JSON form; use {_SUPPORTED}")


def _described(schema: JSON, text: str) -> JSON:
    """``schema`` with ``text`` as its description, put first so the JSON reads well."""
    return {"description": text, **{k: v for k, v in schema.items() if k != "description"}}


def _annotated_text(tp: Any) -> str | None:
    """The string metadata of ``Annotated[T, "text"]``, the most explicit description."""
    if get_origin(tp) is not Annotated:
        return None
    texts = [m for m in get_args(tp)[1:] if isinstance(m, str)]
    return " ".join(texts) if texts else None


def _enum_schema(values: list[Any], where: str) -> JSON:
    if not values or not all(v is None or isinstance(v, str | int | float) for v in values):
        raise ToolSchemaError(f"{where}: only str, int, float, bool or None values can be choices")
    kinds = {_SIMPLE.get(type(v), "null") for v in values}
    schema: JSON = {"enum": values}
    if len(kinds) == 1:
        schema = {"type": kinds.pop(), **schema}
    return schema


def _name(tp: Any) -> str:
    return str(getattr(tp, "__name__", None) or tp).replace("typing.", "")


# --------------------------------------------------------------------------- calling


def run_call(func: Callable[..., Any], arguments_json: str) -> tuple[str, bool]:
    """Run one tool call; return the ``tool`` message content and whether it failed.

    Failures (bad JSON, wrong arguments, an exception in the function) come back as
    ``"Error: ExcType: message"`` so the model can see them and recover; a result that
    is not a string is sent JSON-encoded. ``KeyboardInterrupt`` is not caught.
    """
    try:
        arguments = json.loads(arguments_json) if arguments_json.strip() else {}
    except ValueError as exc:
        return f"Error: the arguments are not valid JSON ({exc})", True
    if not isinstance(arguments, dict):
        return f"Error: the arguments must be a JSON object, got {arguments_json[:80]}", True
    try:
        args, kwargs = _bind(func, arguments)
        value = func(*args, **kwargs)
    except Exception as exc:
        return error_text(exc), True
    return encode_result(value), False


def error_text(exc: BaseException) -> str:
    """``Error: ExcType: message``, what the model (and the user) see of a failure."""
    message = str(exc)
    return f"Error: {type(exc).__name__}: {message}" if message else f"Error: {type(exc).__name__}"


def _bind(func: Callable[..., Any], arguments: dict[str, Any]) -> tuple[list[Any], JSON]:
    """Positional-only parameters by position, the rest by name; JSON -> model/Enum values.

    Unknown names are passed on, so the call fails with Python's own TypeError text.
    """
    try:
        params = inspect.signature(func, eval_str=True).parameters
    except Exception:
        return [], dict(arguments)
    args: list[Any] = []
    kwargs: JSON = {}
    gap = False  # a missing positional-only argument: the call raises Python's TypeError
    for name, param in params.items():
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            if gap:
                continue
            if name in arguments:
                args.append(_convert(param.annotation, arguments[name]))
            elif param.default is not inspect.Parameter.empty:
                args.append(param.default)  # keeps later positional values in place
            else:
                gap = True
        elif name in arguments:
            kwargs[name] = _convert(param.annotation, arguments[name])
    kwargs.update({k: v for k, v in arguments.items() if k not in params})
    return args, kwargs


def _convert(tp: Any, value: Any) -> Any:
    """JSON values to the richer types a hint asks for (models, enums, tuples, sets)."""
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Annotated:
        return _convert(args[0], value)
    if value is None:
        return None
    if origin is Union or (origin is not None and origin is getattr(types, "UnionType", None)):
        options = [a for a in args if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if is_model_class(tp) and isinstance(value, dict):
        return tp.model_validate(value)
    if isinstance(value, list):
        if origin is tuple or tp is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(args[0], v) for v in value)
            if args and len(args) == len(value):
                return tuple(_convert(a, v) for a, v in zip(args, value, strict=True))
            return tuple(value)
        items = [_convert(args[0], v) for v in value] if args else value
        if origin in (set, collections.abc.Set, collections.abc.MutableSet) or tp is set:
            return set(items)
        if origin is frozenset or tp is frozenset:
            return frozenset(items)
        return items
    if isinstance(value, dict) and origin in _MAPPINGS and len(args) == 2:
        return {k: _convert(args[1], v) for k, v in value.items()}
    return value


def encode_result(value: Any) -> str:
    """A function's result as ``tool`` message content: strings as they are, else JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=_jsonable)
    except (TypeError, ValueError):  # circular data, NaN in strict encoders...
        return str(value)


def _jsonable(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and is_model_class(type(obj)):
        return dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, datetime.date | datetime.time):
        return obj.isoformat()
    return str(obj)
