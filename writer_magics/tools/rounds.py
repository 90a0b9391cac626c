"""The function-calling loop: send, run the requested functions, send their results, repeat.

Independent of IPython and of the display: the caller passes ``send`` (one request
in, one :class:`Result` out; the magic streams it into a live view) and gets back the
final answer plus every message the exchange added, ready for the history.

Rules, decided here:

* A *round* is one request. ``max_rounds`` bounds the requests of one cell (default
  5): four rounds of tool calls and a final answer at most. When the model still asks
  for tools in the last round, :class:`ToolRoundsExceeded` is raised *without* running
  those calls, carrying the messages of the completed rounds (a valid history prefix:
  every assistant ``tool_calls`` message is followed by its ``tool`` answers) and the
  last result.
* Tool calls are read from the first choice (``Result.tool_calls``); a round with no
  calls is the final answer, whatever its finish reason.
* A call to a function that was not offered, a call the user declined (``confirm``)
  and an exception in the function are all answered with a ``tool`` message, so the
  model always gets one answer per ``tool_call_id`` and can carry on.
* ``tool_choice`` that forces a call (``"required"`` or a function name) applies to
  the first round only; later rounds send ``"auto"``, or the model could never answer
  in text and every cell would end at the round limit.
* A failed ``send`` (its exception) ends the loop and propagates: nothing is recorded.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from writer_magics.answer.result import Result
from writer_magics.errors import ToolRoundsExceeded
from writer_magics.request import JSON, Request
from writer_magics.tools.functions import run_call

__all__ = [
    "DECLINED",
    "DEFAULT_MAX_ROUNDS",
    "ToolLoopOutcome",
    "assistant_message",
    "next_request",
    "run_tool_rounds",
]

DEFAULT_MAX_ROUNDS = 5
#: The ``tool`` message content when ``--confirm`` was answered "no".
DECLINED = "The user declined this call."

Send = Callable[[Request], Result]
Confirm = Callable[[str, str], bool]
OnCall = Callable[[str, str, str, bool], None]
OnRun = Callable[[str, str], None]


@dataclass(frozen=True)
class ToolLoopOutcome:
    """The final answer, the messages added after the user message, and the rounds used.

    ``messages``: each tool round's assistant message with ``tool_calls`` and its
    ``tool`` messages, then the final assistant message. ``results`` holds every
    round's Result (for usage totals); ``result`` is the last one.
    """

    result: Result
    messages: list[JSON]
    rounds: int
    results: list[Result] = field(default_factory=list)


def assistant_message(result: Result) -> JSON:
    """The assistant turn to echo back: text, or ``content: null`` with ``tool_calls``."""
    if result.tool_calls:
        return {
            "role": "assistant",
            "content": result.text or None,
            "tool_calls": [copy.deepcopy(dict(call)) for call in result.tool_calls],
        }
    return {"role": "assistant", "content": result.text}


def next_request(first: Request, added: list[JSON]) -> Request:
    """``first`` with the exchange so far appended, and a forcing tool_choice relaxed."""
    body = dict(first.body)
    body["messages"] = [*first.body.get("messages", []), *copy.deepcopy(added)]
    choice = body.get("tool_choice")
    if choice == "required" or isinstance(choice, dict):
        body["tool_choice"] = "auto"
    return replace(first, body=body)


def run_tool_rounds(
    first: Request,
    tools: Mapping[str, Callable[..., Any]],
    send: Send,
    *,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    confirm: Confirm | None = None,
    on_call: OnCall | None = None,
    on_run: OnRun | None = None,
) -> ToolLoopOutcome:
    """Drive the rounds until the model answers in text (see the module rules).

    ``confirm(name, arguments)`` is asked before each call; ``on_run(name, arguments)``
    is told just before a function runs (not for a declined or unknown one);
    ``on_call(name, arguments, content, failed)`` is told each call's outcome
    (``failed``: the function raised, does not exist or got unusable arguments; a
    declined call is not a failure).
    """
    if max_rounds < 1:
        raise ValueError("max_rounds must be at least 1")
    added: list[JSON] = []
    results: list[Result] = []
    request = first
    for round_number in range(1, max_rounds + 1):
        result = send(request)
        results.append(result)
        if not result.tool_calls:
            added.append(assistant_message(result))
            return ToolLoopOutcome(result, added, round_number, results)
        if round_number == max_rounds:
            names = ", ".join(_name(call) for call in result.tool_calls)
            raise ToolRoundsExceeded(
                f"the model still asked for tools ({names}) after {max_rounds} rounds; "
                "those calls were not run",
                messages=added,
                result=result,
                results=results,
            )
        added.append(assistant_message(result))
        for call in result.tool_calls:
            added.append(_answer(call, tools, confirm, on_call, on_run))
        request = next_request(first, added)
    raise AssertionError("unreachable")  # pragma: no cover (the loop returns or raises)


def _name(call: Mapping[str, Any]) -> str:
    function = call.get("function") or {}
    return str(function.get("name") or "")


def _answer(
    call: Mapping[str, Any],
    tools: Mapping[str, Callable[..., Any]],
    confirm: Confirm | None,
    on_call: OnCall | None,
    on_run: OnRun | None = None,
) -> JSON:
    """Run (or decline) one call and build its ``tool`` message."""
    name = _name(call)
    arguments = str((call.get("function") or {}).get("arguments") or "")
    func = tools.get(name)
    if func is None:
        offered = ", ".join(tools) or "none"
        content, failed = f"Error: there is no function named {name!r} (offered: {offered})", True
    elif confirm is not None and not confirm(name, arguments):
        content, failed = DECLINED, False
    else:
        if on_run is not None:
            on_run(name, arguments)
        content, failed = run_call(func, arguments)
    if on_call is not None:
        on_call(name, arguments, content, failed)
    return {"role": "tool", "tool_call_id": str(call.get("id") or ""), "content": content}
