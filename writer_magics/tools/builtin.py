"""Writer's built-in tools: the one-type rule for a request's whole tool list.

Built-in tools run on Writer's side; their output arrives as ``*_data`` on the message
(``graph_data``, ``web_search_data``, ``translation_data``, ``llm_data``), never as tool
calls to execute. Writer accepts only one built-in tool *type* per request, so
:func:`one_builtin` refuses a second one before anything is sent. The option values are
checked in :mod:`writer_magics.line.values`, the tool JSON is built in
:mod:`writer_magics.request`, and what the tools return is shown by
:mod:`writer_magics.display.sources`; the data shapes follow ``shared/writer-api.md``
section 4.2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from writer_magics.line.values import one_builtin_type

__all__ = ["one_builtin"]


def one_builtin(tools: Iterable[Mapping[str, Any]]) -> None:
    """Writer's rule: at most one built-in tool type per request (functions do not count)."""
    one_builtin_type(str(t.get("type")) for t in tools if t.get("type") != "function")
