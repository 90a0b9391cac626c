"""The one request builder: options and messages in, a :class:`Request` (endpoint + body) out.

Pure functions between :mod:`writer_magics.line` (what the user typed) and
:mod:`writer_magics.transport` (which sends it), so "every option maps to the right
field" is tested without a network. Each body key is spelled once per endpoint, in
:func:`completion_request` / :func:`chat_request`; unset fields are omitted, never
sent as null. Chat requests take plain messages (``{"role": ..., "content": ...}``),
never a conversation object. Titles and labels for the view live in
:mod:`writer_magics.display.titles`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from writer_magics.line.options import ChatOptions, CompleteOptions, Params

#: The two endpoints (``/v1/completions`` and ``/v1/chat``).
Endpoint: TypeAlias = Literal["completions", "chat"]
#: A JSON object as Python data (the one alias of the package).
JSON: TypeAlias = dict[str, Any]
#: The model Writer's translation tool runs on.
TRANSLATION_MODEL = "palmyra-translate"


@dataclass(frozen=True)
class Request:
    """One HTTP request to make: where, what, and how long to wait between events (seconds)."""

    endpoint: Endpoint
    body: JSON
    timeout: float | None = None

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))


def completion(opts: CompleteOptions, params: Params, prompt: str, *, stream: bool) -> Request:
    """The ``%%complete`` request of one parameter set (one cell of a sweep)."""
    body = completion_request(
        model=params.model,
        prompt=prompt,
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        stop=opts.stop,
        best_of=opts.best_of,
        random_seed=opts.random_seed,
        stream=stream,
    )
    return Request("completions", body, opts.timeout)


def chat(
    opts: ChatOptions,
    params: Params,
    messages: Sequence[Mapping[str, Any]],
    *,
    stream: bool,
    extras: Mapping[str, Any] | None = None,
) -> Request:
    """The ``%%chat`` request of one parameter set; ``messages`` are plain message dicts.

    ``extras``: ``tools``, ``tool_choice``, ``response_format`` (see tools/prepare.py).
    """
    body = chat_request(
        model=params.model,
        messages=messages,
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        n=opts.n,
        stop=opts.stop,
        logprobs=opts.logprobs,
        stream=stream,
        **(extras or {}),
    )
    return Request("chat", body, opts.timeout)


def completion_request(
    *,
    model: str,
    prompt: str,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    stop: Sequence[str] | None = None,
    best_of: int | None = None,
    random_seed: int | None = None,
    stream: bool = True,
) -> JSON:
    """The body of ``POST /v1/completions``; unset fields are omitted, never null."""
    return _drop_unset(
        {
            "model": model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "stop": list(stop) if stop else None,
            "best_of": best_of,
            "random_seed": random_seed,
            "stream": stream,
        }
    )


def chat_request(
    *,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    n: int | None = None,
    stop: Sequence[str] | None = None,
    logprobs: bool | None = None,
    stream: bool = True,
    include_usage: bool = True,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    response_format: Mapping[str, Any] | None = None,
) -> JSON:
    """The body of ``POST /v1/chat``; unset fields are omitted, never null.

    ``stream_options.include_usage`` is asked for on streams so that the status line
    can show real token counts instead of estimates.
    """
    return _drop_unset(
        {
            "model": model,
            "messages": [dict(m) for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "n": n,
            "stop": list(stop) if stop else None,
            "logprobs": logprobs or None,
            "stream": stream,
            "stream_options": {"include_usage": True} if stream and include_usage else None,
            "tools": [dict(t) for t in tools] if tools else None,
            "tool_choice": _tool_choice(tool_choice),
            "response_format": dict(response_format) if response_format else None,
        }
    )


def _tool_choice(choice: str | Mapping[str, Any] | None) -> str | JSON | None:
    """Bare strings or the function form; never the SDK's ``{"value": ...}`` wrapper."""
    if choice is None or (isinstance(choice, str) and choice in ("auto", "none", "required")):
        return choice
    if isinstance(choice, str):
        return {"type": "function", "function": {"name": choice}}
    return dict(choice)


def _drop_unset(body: JSON) -> JSON:
    return {k: v for k, v in body.items() if v is not None}


# --------------------------------------------------------------------------- built-in tools
# The exact tool JSON of ``shared/writer-api.md`` section 3.2, built here and nowhere else.


def builtin_tool(opts: ChatOptions) -> JSON | None:
    """The JSON of the one built-in tool ``opts`` asks for, or None.

    The option parser has already refused two built-in tool types in one cell
    (:func:`writer_magics.tools.builtin.one_builtin`); were there more, the first wins.
    """
    tools: list[JSON] = []
    if opts.web_search:
        tools.append(web_search_tool(opts.include_domains, opts.exclude_domains))
    if opts.graph_ids:
        tools.append(graph_tool(opts.graph_ids, opts.subqueries))
    if opts.llm_tool is not None:
        tools.append(llm_tool(*opts.llm_tool))
    if opts.translate_to is not None:
        tools.append(translation_tool(opts.translate_to, opts.translate_from))
    return tools[0] if tools else None


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
