"""The converters of option values: one typed value from one word, or one ``UsageError``.

Each converter takes ``(option, text)`` (the long flag, for the message, and the word as
given) and returns the value for the options dataclass; the option table
(:mod:`writer_magics.line.table`) names one converter per row. The checks of the
built-in tool options (language codes, ``MODEL:DESCRIPTION``, Knowledge Graph UUIDs,
one built-in tool type per request) live here too, so the parsing layer needs nothing
from the request or tools layers. Every message is one sentence; nothing is sent.
"""

from __future__ import annotations

import builtins
import keyword
import math
import re
from collections.abc import Iterable, Mapping

from IPython.core.error import UsageError

from writer_magics.line.prompt import is_reference

__all__ = [
    "INT32_MAX",
    "LANGUAGE_CODE",
    "MAX_N",
    "OPTION_OF",
    "check_language",
    "one_builtin_type",
    "parse_llm_tool",
]

INT32_MAX = 2**31 - 1
#: -n: Writer documents no upper bound; each choice is a panel, so a practical one.
MAX_N = 128
#: ISO-639-1 (or -2) language code, optionally with an ISO-3166 region: en, fr, pt-BR.
LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z]{2})?")
#: The magic option that adds each built-in tool type (for error messages).
OPTION_OF: Mapping[str, str] = {
    "web_search": "--web-search",
    "graph": "--graph",
    "llm": "--llm-tool",
    "translation": "--translate",
    "vision": "a vision tool",
}
_DOMAIN = re.compile(r"[A-Za-z0-9*](?:[A-Za-z0-9.*-]*[A-Za-z0-9])?")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_BUILTIN_NAMES = frozenset(dir(builtins))
# Names IPython itself keeps in the namespace (output history, input history, helpers).
_IPYTHON_NAMES = re.compile(r"_+|_i+|_i\d+|_\d+|_oh|_ih|_dh|In|Out|get_ipython|exit|quit")


def number(low: float, high: float) -> _Float:
    """A converter to a finite float in ``[low, high]``."""
    return _Float(low, high)


def whole(low: int = 1, high: int | None = None) -> _Int:
    """A converter to an int in ``[low, high]`` (no upper bound when ``high`` is None)."""
    return _Int(low, high)


class _Float:
    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high

    def __call__(self, option: str, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise UsageError(
                f"{option} expects a number between {self.low:g} and {self.high:g}, got {text!r}"
            )
        return 0.0 if value == 0 else value  # -0 is sent and shown as 0


class _Int:
    def __init__(self, low: int, high: int | None) -> None:
        self.low, self.high = low, high

    def __call__(self, option: str, text: str) -> int:
        low, high = self.low, self.high
        try:
            value = int(text.strip())
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            if high is not None:
                what = f"a whole number between {low} and {high}"
            elif low == 1:
                what = "a positive whole number"
            else:
                what = f"a whole number of at least {low}"
            raise UsageError(f"{option} expects {what}, got {text!r}")
        return value


def seconds(option: str, text: str) -> float:
    """A positive finite number of seconds (``--timeout``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option} expects a positive number of seconds, got {text!r}")
    return value


def model(option: str, text: str) -> str:
    """A model id: non-empty, no spaces."""
    if not text or any(c.isspace() for c in text):
        raise UsageError(f"{option} expects a model name such as palmyra-x5, got {text!r}")
    return text


def text(option: str, value: str) -> str:
    """Any text, as given."""
    return value


def stripped(option: str, value: str) -> str:
    """Text without surrounding white space."""
    return value.strip()


def items_source(option: str, value: str) -> str:
    """``--over``: a variable name or a .csv / .jsonl path, without surrounding white space."""
    if not value.strip():
        raise UsageError(f"{option} expects a variable name or a .csv / .jsonl path")
    return value.strip()


def check_spec(option: str, value: str) -> str:
    """``--expect``: a check as written (parsed later by ``answer.checks``); never blank."""
    if not value.strip():
        raise UsageError(f"{option} needs a check, e.g. {option} contains:Paris")
    return value


def stop(option: str, value: str) -> str:
    """A stop sequence with ``\\n``, ``\\t`` and ``\\\\`` understood; never empty."""
    out: list[str] = []
    i = 0
    while i < len(value):
        pair = value[i : i + 2]
        if pair in ("\\n", "\\t", "\\\\"):
            out.append({"\\n": "\n", "\\t": "\t", "\\\\": "\\"}[pair])
            i += 2
        else:
            out.append(value[i])
            i += 1
    if not out:
        raise UsageError(f"{option} expects a non-empty stop sequence")
    return "".join(out)


def out_name(option: str, name: str) -> str:
    """``-o NAME``: a plain variable name that shadows nothing Python or IPython needs."""
    name = name.strip()
    if not name.isidentifier():
        raise UsageError(f"{option} expects a Python variable name such as answer, got {name!r}")
    if keyword.iskeyword(name):
        raise UsageError(f"{option} {name}: {name} is a Python keyword; choose another name")
    if name in _BUILTIN_NAMES or (name.startswith("__") and name.endswith("__")):
        raise UsageError(
            f"{option} {name} would hide Python's own {name}; choose another name such as answer"
        )
    if _IPYTHON_NAMES.fullmatch(name):
        raise UsageError(f"{option} {name}: IPython uses {name} itself; choose another name")
    return name


def function_name(option: str, name: str) -> str:
    """``--tools``: the name of a Python function."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"{option} expects names of Python functions, got {name!r}")
    return name


def domain(option: str, item: str) -> str:
    """A web domain such as ``python.org`` (``*`` wildcards allowed)."""
    if not _DOMAIN.fullmatch(item):
        raise UsageError(f"{option} expects a domain such as python.org, got {item!r}")
    return item


def graph_id(option: str, item: str) -> str:
    """A Knowledge Graph id: a UUID."""
    if not _UUID.fullmatch(item):
        raise UsageError(
            f"{option} expects Knowledge Graph ids, which are UUIDs such as "
            f"6e2a7f0c-1d5b-4e0a-9c3f-2b8d1a4e5f60; got {item!r}"
        )
    return item


def parse_llm_tool(value: str, option: str = "--llm-tool") -> tuple[str, str]:
    """``MODEL:DESCRIPTION`` (``palmyra-med:Medical questions``) as ``(model, description)``."""
    name, colon, description = value.partition(":")
    name, description = name.strip(), description.strip()
    if not colon or not name or not description or any(c.isspace() for c in name):
        raise UsageError(
            f"{option} expects MODEL:DESCRIPTION, e.g. {option} "
            f"'palmyra-med:Medical questions', got {value!r}"
        )
    return name, description


def llm_tool(option: str, value: str) -> tuple[str, str]:
    """The converter form of :func:`parse_llm_tool`."""
    return parse_llm_tool(value, option)


def check_language(option: str, code: str) -> str:
    """An ISO language code such as ``fr`` or ``pt-BR``; a UsageError otherwise."""
    if not LANGUAGE_CODE.fullmatch(code):
        raise UsageError(f"{option} expects a language code such as fr or pt-BR, got {code!r}")
    return code


def tool_choice(option: str, value: str) -> str:
    """``--tool-choice``: stripped here; checked against ``--tools`` by the options rules."""
    return value.strip()


def schema_name(option: str, value: str) -> str:
    """``--schema``: a name or reference (``Answer``, ``schemas['a']``) of a Python object."""
    if not is_reference(value.strip()):
        raise UsageError(
            f"{option} expects the name of a pydantic model class or a JSON-schema dict, "
            f"got {value!r}"
        )
    return value.strip()


def one_builtin_type(kinds: Iterable[str]) -> None:
    """Writer's rule: at most one built-in tool type per request.

    ``kinds`` are tool types (``web_search``, ``graph``, ``llm``, ``translation``...), in
    the order given; a type given twice counts once. A second type is a UsageError.
    """
    unique = list(dict.fromkeys(kinds))
    if len(unique) > 1:
        flags = [OPTION_OF.get(k, k) for k in unique]
        named = ", ".join(flags[:-1]) + " and " + flags[-1]
        raise UsageError(
            f"Writer allows one built-in tool per request; got {named}. Use one of them per cell"
        )
