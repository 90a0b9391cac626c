"""Options to requests: which JSON each parameter set sends, and how it is labelled.

Pure functions between :mod:`options` (what the user typed) and :mod:`api` (the wire
format), so "every option maps to the right field" is tested without a network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from writer_magics.answer.history import visible_text
from writer_magics.line.options import ChatOptions, CompleteOptions, Options, Params
from writer_magics.transport import events as api
from writer_magics.transport.events import Request


def completion(opts: CompleteOptions, params: Params, prompt: str, *, stream: bool) -> Request:
    body = api.completion_request(
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
    """``extras``: ``tools``, ``tool_choice``, ``response_format`` (see features.py)."""
    body = api.chat_request(
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


def label(
    params: Params,
    varied: Sequence[str] = ("model", "temperature", "top_p", "max_tokens", "system"),
) -> str:
    """``palmyra-x5 · t=0.2 · top_p=0.9`` with only the parameters that were given."""
    parts = []
    if "model" in varied:
        parts.append(params.model)
    if params.temperature is not None and "temperature" in varied:
        parts.append(f"t={params.temperature:g}")
    if params.top_p is not None and "top_p" in varied:
        parts.append(f"top_p={params.top_p:g}")
    if params.max_tokens is not None and "max_tokens" in varied:
        parts.append(f"max_tokens={params.max_tokens}")
    if params.system is not None and "system" in varied:
        system = params.system if len(params.system) <= 30 else params.system[:27] + "..."
        parts.append(f"system={system!r}")
    return " · ".join(parts)


def header(opts: Options, session: str | None = None, system: str | None = None) -> str:
    """The live view's first line: what is being asked, in a few words.

    ``system`` is the system prompt the request carries (from ``-s`` or the session),
    shown shortened so it is never invisible; a sweep of system prompts shows each
    one in its panel title instead.
    """
    params = opts.params
    if len(params) > 1:
        text = f"sweep of {len(params)} requests"
    else:
        text = label(params[0], ("model", "temperature", "top_p", "max_tokens"))
    if session is not None:
        text += f" · session {visible_text(session)}"
    if system:
        text += f" · system “{shorten(system, 40)}”"
    if isinstance(opts, ChatOptions) and opts.n and opts.n > 1:
        text += f" · n={opts.n}"
    if opts.stop:
        text += f" · stop={list(opts.stop)}"
    return text


def shorten(text: str, width: int) -> str:
    """``text`` on one line (whitespace runs become one space), at most ``width`` chars."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def panel_titles(keys: Sequence[Params], requests: Mapping[Params, Request]) -> list[str] | int:
    """One titled panel per sweep combination, or one per choice of a single request."""
    if len(keys) == 1:
        n = requests[keys[0]].body.get("n")
        return [f"choice {i + 1}" for i in range(n)] if isinstance(n, int) and n > 1 else 1
    varied = [
        name
        for name in ("model", "temperature", "top_p", "max_tokens", "system")
        if len({getattr(k, name) for k in keys}) > 1
    ]
    return [label(k, varied) for k in keys]
