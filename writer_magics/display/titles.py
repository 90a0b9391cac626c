"""What the view calls things: the header line, sweep labels and panel titles.

Pure functions of the parsed options and the built requests (no IPython), moved out
of the request builder so that the request layer only builds bodies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from writer_magics.answer.history import visible_text
from writer_magics.line.options import ChatOptions, Options, Params
from writer_magics.request import Request


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
        kept = " (not kept in its history)" if len(params) > 1 else ""
        text += f" · session {visible_text(session)}{kept}"
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
    """One titled panel per sweep combination, or the number of choices of a single request.

    A count gets the view's own ``Choice N`` titles (:func:`views.panel_titles`), the same
    words the finished answer uses, so no second spelling of them is made here.
    """
    if len(keys) == 1:
        n = requests[keys[0]].body.get("n")
        return n if isinstance(n, int) and n > 1 else 1
    varied = [
        name
        for name in ("model", "temperature", "top_p", "max_tokens", "system")
        if len({getattr(k, name) for k in keys}) > 1
    ]
    return [label(k, varied) for k in keys]
