"""What Writer's built-in tools returned, as Markdown shown under the answer.

Their output arrives as ``*_data`` on the message (``graph_data``,
``web_search_data``, ``translation_data``, ``llm_data``); the shapes follow
``shared/writer-api.md`` section 4.2. Pure functions, no IPython.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlsplit

__all__ = ["SNIPPET_CHARS", "Source", "sources", "sources_markdown"]

#: How much of a snippet to show under an answer.
SNIPPET_CHARS = 160


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
