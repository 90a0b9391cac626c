"""Writer's built-in tools: the one-type rule (the tool JSON is built by
:mod:`writer_magics.request`; what they return is shown by :mod:`writer_magics.display.sources`).

Built-in tools run on Writer's side; their output arrives as ``*_data`` on the message
(``graph_data``, ``web_search_data``, ``translation_data``, ``llm_data``), never as tool
calls to execute. Writer accepts only one built-in tool *type* per request, so
:func:`one_builtin` refuses a second one before anything is sent.
The tool JSON is built in :mod:`writer_magics.request`; the data shapes follow
``shared/writer-api.md`` section 4.2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from IPython.core.error import UsageError

__all__ = [
    "OPTION_OF",
    "check_language",
    "one_builtin",
    "parse_llm_tool",
]

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


def one_builtin(tools: Iterable[Mapping[str, Any]]) -> None:
    """Writer's rule: at most one built-in tool type per request (functions do not count)."""
    kinds = list(dict.fromkeys(str(t.get("type")) for t in tools if t.get("type") != "function"))
    if len(kinds) > 1:
        flags = [OPTION_OF.get(k, k) for k in kinds]
        named = ", ".join(flags[:-1]) + " and " + flags[-1]
        raise UsageError(
            f"Writer allows one built-in tool per request; got {named}. Use one of them per cell"
        )
