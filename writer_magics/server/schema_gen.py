"""Builds JSON values that validate against a JSON Schema.

Used for ``response_format: json_schema`` and for tool-call arguments. Supports
the subset real schemas use (pydantic output included): ``type`` (also lists),
``properties``/``required``, ``items``/``minItems``/``maxItems``, ``enum``,
``const``, ``default``, ``minimum``/``maximum`` (and exclusive forms),
``minLength``/``maxLength``, common ``format`` values, ``anyOf``/``oneOf``/``allOf``
and local ``$ref`` into ``$defs``/``definitions``. Strings prefer ``hints`` taken
from the user's message so the output visibly relates to the request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from .generator import Sampler

_FORMATS = {
    "date": "2026-01-15",
    "date-time": "2026-01-15T09:30:00Z",
    "time": "09:30:00",
    "email": "user@example.org",
    "uri": "https://example.org/",
    "url": "https://example.org/",
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "hostname": "example.org",
    "ipv4": "192.0.2.1",
}
_MAX_DEPTH = 8

#: A hook that may supply a value for a named property (or return ``None``).
Override = Callable[[str, dict[str, Any]], Any]


class SchemaFaker:
    """Generates schema-valid values, deterministically from the sampler's RNG."""

    def __init__(
        self,
        root: dict[str, Any],
        sampler: Sampler,
        hints: Sequence[str] = (),
        override: Override | None = None,
    ) -> None:
        self.root = root
        self.sampler = sampler
        self.hints = list(hints) or ["example"]
        self.override = override
        self._string_index = 0

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow a local ``$ref`` and merge ``allOf``."""
        for _ in range(_MAX_DEPTH):
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#/"):
                break
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**(target if isinstance(target, dict) else {}), **rest}
        parts = schema.get("allOf")
        if isinstance(parts, list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for item in parts:
                if isinstance(item, dict):
                    resolved = self.resolve(item)
                    for key, value in resolved.items():
                        if key == "properties" and isinstance(value, dict):
                            merged["properties"] = {**merged.get("properties", {}), **value}
                        elif key == "required" and isinstance(value, list):
                            merged["required"] = [*merged.get("required", []), *value]
                        else:
                            merged.setdefault(key, value)
            schema = merged
        return schema

    def value(self, schema: Any, name: str = "value", depth: int = 0) -> Any:
        """A value valid for ``schema``."""
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return self.string({}, name)
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self._enum(schema["enum"])
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                non_null = [
                    o for o in options if not (isinstance(o, dict) and o.get("type") == "null")
                ]
                return self.value((non_null or options)[0], name, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"] or ["null"]
            kind = kinds[0]
        if kind is None:
            kind = (
                "object" if "properties" in schema else "array" if "items" in schema else "string"
            )
        if kind == "object":
            return self.obj(schema, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return self.sampler.rng.random() < 0.5
        if kind == "null":
            return None
        return self.string(schema, name)

    def _enum(self, options: list[Any]) -> Any:
        lowered = {h.lower() for h in self.hints}
        for option in options:
            if isinstance(option, str) and option.lower() in lowered:
                return option
        return self.sampler.pick(options)

    def obj(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        """Every declared property (required and optional)."""
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        out: dict[str, Any] = {}
        for key, sub in props.items():
            found = (
                self.override(key, self.resolve(sub) if isinstance(sub, dict) else {})
                if (self.override and depth == 0)
                else None
            )
            out[key] = found if found is not None else self.value(sub, key, depth + 1)
        for key in schema.get("required") or []:
            if isinstance(key, str) and key not in out:
                out[key] = self.string({}, key)
        return out

    def array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        """Between ``minItems`` and ``maxItems`` items (2 by default)."""
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, 3)))
        count = min(max(low, min(2, high)), high)
        items = schema.get("items", {})
        values = [self.value(items, name, depth + 1) for _ in range(count)]
        if schema.get("uniqueItems"):
            unique: list[Any] = []
            for v in values:
                if v not in unique:
                    unique.append(v)
            values = unique if len(unique) >= low else values
        return values

    def _bounds(
        self, schema: dict[str, Any], default_low: float, default_high: float
    ) -> tuple[float, float]:
        low = schema.get("minimum", default_low)
        high = schema.get("maximum", max(default_high, low))
        if "exclusiveMinimum" in schema and isinstance(schema["exclusiveMinimum"], (int, float)):
            low = max(low, schema["exclusiveMinimum"] + 1e-6)
        if "exclusiveMaximum" in schema and isinstance(schema["exclusiveMaximum"], (int, float)):
            high = min(high, schema["exclusiveMaximum"] - 1e-6)
        return float(low), float(high)

    def integer(self, schema: dict[str, Any]) -> int:
        """An integer in range (honouring ``multipleOf`` when it is simple)."""
        if isinstance(schema.get("default"), int) and not isinstance(schema["default"], bool):
            return int(schema["default"])
        low, high = self._bounds(schema, 1, 10)
        lo, hi = math.ceil(low), math.floor(high)
        value = self.sampler.rng.randint(lo, max(lo, hi))
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            value = max(lo, (value // step) * step)
            if value < lo or value % step:
                value = math.ceil(lo / step) * step
        return value

    def number(self, schema: dict[str, Any]) -> float:
        """A number in range, rounded to two decimals."""
        if isinstance(schema.get("default"), (int, float)) and not isinstance(
            schema["default"], bool
        ):
            return float(schema["default"])
        low, high = self._bounds(schema, 0, 100)
        value = round(self.sampler.rng.uniform(low, high), 2)
        return min(max(value, low), high)

    def string(self, schema: dict[str, Any], name: str) -> str:
        """A string: a format sample, or a hint word from the user's message."""
        if isinstance(schema.get("default"), str):
            return str(schema["default"])
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt]
        hint = self.hints[self._string_index % len(self.hints)]
        self._string_index += 1
        text = hint if name in ("value", "") else f"{hint} {name.replace('_', ' ')}".strip()
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and not re.search(pattern, text):
            text = hint
        while len(text) < low:
            text += " " + hint
        if isinstance(high, int):
            text = text[:high]
        return text


def fake(
    schema: dict[str, Any],
    sampler: Sampler,
    hints: Sequence[str] = (),
    override: Override | None = None,
) -> Any:
    """A value valid for ``schema`` (see :class:`SchemaFaker`)."""
    return SchemaFaker(schema, sampler, hints, override).value(schema)
