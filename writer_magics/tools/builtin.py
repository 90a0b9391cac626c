"""Writer's built-in tools: the exact tool JSON to send (what they return is shown by
:mod:`writer_magics.display.sources`).

Built-in tools run on Writer's side; their output arrives as ``*_data`` on the message
(``graph_data``, ``web_search_data``, ``translation_data``, ``llm_data``), never as tool
calls to execute. Writer accepts only one built-in tool *type* per request, so
:func:`one_builtin` refuses a second one before anything is sent.
The JSON shapes follow ``shared/writer-api.md`` section 3.2; the data shapes 4.2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from IPython.core.error import UsageError

__all__ = [
    "OPTION_OF",
    "builtin_tool",
    "check_language",
    "graph_tool",
    "llm_tool",
    "one_builtin",
    "parse_llm_tool",
    "translation_tool",
    "web_search_tool",
]

JSON: TypeAlias = dict[str, Any]
TRANSLATION_MODEL = "palmyra-translate"
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


# --------------------------------------------------------------------------- builders


def web_search_tool(
    include_domains: Sequence[str] = (), exclude_domains: Sequence[str] = ()
) -> JSON:
    """``web_search``: both domain lists are required by Writer, even when empty."""
    return {
        "type": "web_search",
        "function": {
            "include_domains": list(include_domains),
            "exclude_domains": list(exclude_domains),
        },
    }


def graph_tool(graph_ids: Sequence[str], subqueries: bool = False) -> JSON:
    """``graph`` (Knowledge Graph): ``graph_ids`` and ``subqueries`` are both required."""
    return {"type": "graph", "function": {"graph_ids": list(graph_ids), "subqueries": subqueries}}


def llm_tool(model: str, description: str) -> JSON:
    """``llm``: delegate questions matching ``description`` to another Palmyra model."""
    return {"type": "llm", "function": {"description": description, "model": model}}


def translation_tool(
    target: str,
    source: str | None = None,
    *,
    formality: bool = True,
    length_control: bool = False,
    mask_profanity: bool = False,
) -> JSON:
    """``translation`` with ``palmyra-translate``; the three switches are required keys.

    The defaults are those of Writer's reference example.
    """
    function: JSON = {
        "model": TRANSLATION_MODEL,
        "formality": formality,
        "length_control": length_control,
        "mask_profanity": mask_profanity,
    }
    if source is not None:
        function["source_language_code"] = source
    function["target_language_code"] = target
    return {"type": "translation", "function": function}


def parse_llm_tool(value: str) -> tuple[str, str]:
    """``MODEL:DESCRIPTION`` (``palmyra-med:Medical questions``) as ``(model, description)``."""
    model, colon, description = value.partition(":")
    model, description = model.strip(), description.strip()
    if not colon or not model or not description or any(c.isspace() for c in model):
        raise UsageError(
            f"--llm-tool expects MODEL:DESCRIPTION, e.g. --llm-tool "
            f"'palmyra-med:Medical questions', got {value!r}"
        )
    return model, description


def check_language(option: str, code: str) -> str:
    """An ISO language code such as ``fr`` or ``pt-BR``; a UsageError otherwise."""
    if not LANGUAGE_CODE.fullmatch(code):
        raise UsageError(f"{option} expects a language code such as fr or pt-BR, got {code!r}")
    return code


def builtin_tool(
    *,
    web_search: bool = False,
    include_domains: Sequence[str] = (),
    exclude_domains: Sequence[str] = (),
    graph_ids: Sequence[str] = (),
    subqueries: bool = False,
    llm: tuple[str, str] | None = None,
    translate: str | None = None,
    source: str | None = None,
) -> JSON | None:
    """The one built-in tool the option values ask for, or None; two are a UsageError."""
    tools: list[JSON] = []
    if web_search:
        tools.append(web_search_tool(include_domains, exclude_domains))
    if graph_ids:
        tools.append(graph_tool(graph_ids, subqueries))
    if llm is not None:
        tools.append(llm_tool(*llm))
    if translate is not None:
        tools.append(translation_tool(translate, source))
    one_builtin(tools)
    return tools[0] if tools else None


def one_builtin(tools: Iterable[Mapping[str, Any]]) -> None:
    """Writer's rule: at most one built-in tool type per request (functions do not count)."""
    kinds = list(dict.fromkeys(str(t.get("type")) for t in tools if t.get("type") != "function"))
    if len(kinds) > 1:
        flags = [OPTION_OF.get(k, k) for k in kinds]
        named = ", ".join(flags[:-1]) + " and " + flags[-1]
        raise UsageError(
            f"Writer allows one built-in tool per request; got {named}. Use one of them per cell"
        )


# --------------------------------------------------------------------------- sources
