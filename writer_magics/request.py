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
