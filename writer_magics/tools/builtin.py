"""Writer's built-in tools: the exact tool JSON to send, and what they return as sources.

Built-in tools run on Writer's side; their output arrives as ``*_data`` on the message
(``graph_data``, ``web_search_data``, ``translation_data``, ``llm_data``), never as tool
calls to execute. Writer accepts only one built-in tool *type* per request, so
:func:`one_builtin` refuses a second one before anything is sent.
The JSON shapes follow ``shared/writer-api.md`` section 3.2; the data shapes 4.2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias
from urllib.parse import quote, urlsplit

from IPython.core.error import UsageError

__all__ = [
    "OPTION_OF",
    "Source",
    "builtin_tool",
    "check_language",
    "graph_tool",
    "llm_tool",
    "one_builtin",
    "parse_llm_tool",
    "sources",
    "sources_markdown",
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
#: How much of a snippet to show under an answer.
SNIPPET_CHARS = 160


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


@dataclass(frozen=True)
class Source:
    """One thing a built-in tool used: a web page (``url``) or a graph file (``file_id``)."""

    kind: Literal["web", "file"]
    title: str = ""
    url: str | None = None
    file_id: str | None = None
    snippet: str = ""
    page: int | None = None
    score: float | None = None


def sources(data: Mapping[str, Any]) -> list[Source]:
    """The sources in a choice's ``data`` (graph sources and references, web search).

    Graph files listed both as ``sources`` and ``references.files`` appear once; so do
    repeated URLs.
    """
    found: list[Source] = []
    seen: set[str] = set()

    def add(source: Source) -> None:
        key = source.url or source.file_id or ""
        if key and key not in seen:
            seen.add(key)
            found.append(source)

    graph = _dict(data.get("graph_data"))
    for item in _dicts(graph.get("sources")):
        add(Source("file", file_id=_str(item.get("file_id")), snippet=_str(item.get("snippet"))))
    references = _dict(graph.get("references"))
    for item in _dicts(references.get("files")):
        file_id = _str(item.get("fileId") or item.get("file_id"))
        page = item.get("page")
        add(
            Source(
                "file",
                title=_str(item.get("cite")),
                file_id=file_id,
                snippet=_str(item.get("text")),
                page=page if isinstance(page, int) and not isinstance(page, bool) else None,
                score=_number(item.get("score")),
            )
        )
    for item in _dicts(references.get("web")):
        add(
            Source(
                "web",
                title=_str(item.get("title")),
                url=_str(item.get("url")),
                snippet=_str(item.get("text")),
                score=_number(item.get("score")),
            )
        )
    for item in _dicts(_dict(data.get("web_search_data")).get("sources")):
        add(
            Source(
                "web",
                title=_str(item.get("title")),
                url=_str(item.get("url")),
                snippet=_str(item.get("raw_content")),
            )
        )
    return found


def sources_markdown(data: Mapping[str, Any]) -> str:
    """What the built-in tool returned, as Markdown to show under the answer.

    Numbered sources (web pages as links, graph files by id), then a line for a
    translation or an ``llm`` delegation. Empty when the tools returned nothing.
    """
    lines: list[str] = []
    found = sources(data)
    if found:
        lines.append("**Sources**")
        lines.append("")
        lines += [f"{i}. {_source_line(s)}" for i, s in enumerate(found, 1)]
    translation = _dict(data.get("translation_data"))
    if translation:
        source = _str(translation.get("source_language_code")) or "?"
        target = _str(translation.get("target_language_code")) or "?"
        text = _snippet(_str(translation.get("source_text")))
        line = f"*Translated from {_escape(source)} to {_escape(target)}*"
        lines += [*([""] if lines else []), line + (f": “{text}”" if text else "")]
    llm = _dict(data.get("llm_data"))
    if llm.get("model"):
        line = f"*Answered with {_escape(_str(llm.get('model')))} (llm tool)*"
        lines += [*([""] if lines else []), line]
    return "\n".join(lines)


def _source_line(source: Source) -> str:
    snippet = _snippet(source.snippet)
    tail = f" — {snippet}" if snippet else ""
    if source.kind == "web" and source.url:
        if urlsplit(source.url).scheme in ("http", "https"):
            label = _escape(source.title) if source.title else _escape(_short_url(source.url))
            return f"[{label}]({_link_target(source.url)}){tail}"
        title = f"{_escape(source.title)} " if source.title else ""
        return f"{title}`{source.url.replace('`', '%60')}`{tail}"  # shown, never a link
    page = f", page {source.page}" if source.page is not None else ""
    title = f"{_escape(source.title)}, " if source.title else ""
    return f"{title}file `{source.file_id}`{page}{tail}"


def _short_url(url: str) -> str:
    parts = urlsplit(url)
    text = parts.netloc + parts.path.rstrip("/")
    return text or url


def _link_target(url: str) -> str:
    """Percent-encode what would end a Markdown link target early."""
    return quote(url, safe=":/?#[]@!$&'*+,;=%~-._")


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def _escape(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > SNIPPET_CHARS:
        flat = flat[: SNIPPET_CHARS - 1].rstrip() + "…"
    return _escape(flat)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
