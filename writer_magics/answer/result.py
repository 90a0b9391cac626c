"""What a cell leaves behind: the answer as a value a notebook can keep using.

``-o NAME`` stores a :class:`Result`; ``str(result)`` is the text, so it drops into
f-strings and the next prompt (``{name}``) naturally.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias, TypeVar

from writer_magics.answer.markdown import escape_markdown, markdown_of
from writer_magics.request import JSON, Endpoint
from writer_magics.transport.events import (
    ChoiceFinished,
    DataDelta,
    Event,
    LogprobsDelta,
    ResponseInfo,
    StreamEnd,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
    merge_data,
    merge_info,
)

if TYPE_CHECKING:
    from writer_magics.answer.checks import CheckResult

# --------------------------------------------------------------------------- the one fold


@dataclass
class ToolCall:
    """A tool call accumulated from its streamed pieces (or read whole)."""

    index: int
    id: str = ""
    type: str = "function"
    name: str = ""
    arguments: str = ""

    def to_message(self) -> JSON:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.name, "arguments": self.arguments},
        }


#: Text pieces are joined in runs of this many: one small string per chunk would cost
#: about 60 bytes each (a 1 MB answer of 250,000 chunks took 15 MB).
COMPACT_EVERY = 256


@dataclass
class ChoiceState:
    """Everything one choice has received so far."""

    index: int
    text_parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    tool_calls: dict[int, ToolCall] = field(default_factory=dict)
    logprobs: list[JSON] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    _joined: int = 0  # text_parts[:_joined] are already runs of joined pieces

    def append_text(self, text: str) -> None:
        parts = self.text_parts
        parts.append(text)
        if len(parts) - self._joined >= COMPACT_EVERY:
            run = "".join(parts[self._joined :])
            del parts[self._joined :]
            parts.append(run)
            self._joined += 1

    @property
    def text(self) -> str:
        if len(self.text_parts) > 1:  # join once, keep one part: O(n) over the stream
            self.text_parts[:] = ["".join(self.text_parts)]
            self._joined = 1
        return self.text_parts[0] if self.text_parts else ""


class Accumulator:
    """Folds events into per-choice state; the one place Writer's deltas are merged.

    One per request, fed by :func:`writer_magics.send.execute`; the live view reads
    this same state (it folds nothing itself), and :func:`build_result` turns it into
    the :class:`Result`.

    Nothing received is lost to a later piece: text, tool-call arguments and logprobs
    are appended; a tool call's id/type/name and a finish reason are only replaced by
    a non-empty value; Writer's data (sources, subqueries, ...) and usage are merged
    field by field (:func:`merge_data`, :meth:`Usage.merge`); the response's own fields
    keep the latest non-null value of each (:attr:`info`), a whole body is kept as is
    (:attr:`body`).
    """

    def __init__(self) -> None:
        self.choices: dict[int, ChoiceState] = {}
        self.usage: Usage | None = None
        self.done = False
        #: The streamed chunks' own fields, merged (latest non-null value wins).
        self.info: JSON = {}
        #: A non-streamed response's body, exactly as the server sent it.
        self.body: JSON | None = None
        #: Text pieces received (a stream's chunks: about one token each).
        self.pieces = 0

    def choice(self, index: int) -> ChoiceState:
        state = self.choices.get(index)
        if state is None:
            state = self.choices[index] = ChoiceState(index)
        return state

    def add(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.choice(event.choice).append_text(event.text)
            self.pieces += event.pieces
        elif isinstance(event, ResponseInfo):
            if event.whole:
                self.body = event.fields
            else:
                merge_info(self.info, event.fields)
        elif isinstance(event, ToolCallDelta):
            calls = self.choice(event.choice).tool_calls
            call = calls.get(event.index)
            if call is None:
                call = calls[event.index] = ToolCall(event.index)
            # Set id/type/name only when non-empty; append arguments only when a string.
            if event.id:
                call.id = event.id
            if event.type:
                call.type = event.type
            if event.name:
                call.name = event.name
            if event.arguments is not None:
                call.arguments += event.arguments
        elif isinstance(event, LogprobsDelta):
            self.choice(event.choice).logprobs.extend(event.tokens)
        elif isinstance(event, DataDelta):
            data = self.choice(event.choice).data
            old = data.get(event.name)
            if isinstance(old, str) and isinstance(event.value, str):
                data[event.name] = old + event.value  # refusal text arrives in pieces
            else:
                data[event.name] = merge_data(old, event.value)
        elif isinstance(event, ChoiceFinished):
            state = self.choice(event.choice)
            if event.reason is not None or state.finish_reason is None:
                state.finish_reason = event.reason
        elif isinstance(event, UsageReport):
            self.usage = event.usage if self.usage is None else self.usage.merge(event.usage)
        elif isinstance(event, StreamEnd):
            self.done = True

    @property
    def finished(self) -> bool:
        """True when every choice seen has a finish reason (or [DONE] came)."""
        return self.done or (
            bool(self.choices) and all(c.finish_reason is not None for c in self.choices.values())
        )

    def ordered(self) -> list[ChoiceState]:
        return [self.choices[i] for i in sorted(self.choices)]


Status: TypeAlias = Literal["done", "interrupted", "failed", "cached"]


@dataclass(frozen=True)
class Choice:
    """One of the answers (``n`` > 1 or ``best_of`` give several)."""

    index: int
    text: str
    finish_reason: str | None = None
    tool_calls: tuple[JSON, ...] = ()
    logprobs: tuple[JSON, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Timing:
    """Seconds from sending the request to the first text and to the end."""

    first_token: float | None = None
    total: float | None = None

    def summary(self, completion_tokens: int | None = None) -> str:
        """``first token 0.21 s, 2.40 s total, 33 tokens/s`` (what is known of it)."""
        parts = []
        if self.first_token is not None:
            parts.append(f"first token {self.first_token:.2f} s")
        if self.total is not None:
            parts.append(f"{self.total:.2f} s total")
            streaming_time = self.total - (self.first_token or 0.0)
            if completion_tokens and streaming_time >= 0.05:
                parts.append(f"{completion_tokens / streaming_time:.0f} tokens/s")
        return ", ".join(parts)


@dataclass(frozen=True)
class Result:
    """A finished (or partial) answer with everything needed to inspect it."""

    endpoint: Endpoint
    model: str
    choices: tuple[Choice, ...]
    request: JSON
    usage: Usage | None = None
    #: The response as the server sent it: its own body with ``--no-stream``; for a
    #: stream, the body the chunks add up to with every field they carried (the
    #: latest ``id``, ``model``, ``created``, ``system_fingerprint``, ``service_tier``,
    #: ``usage`` with its details). See :func:`raw_response`.
    raw: Any = None
    timing: Timing = field(default_factory=Timing)
    status: Status = "done"
    #: ``--schema``: the answer as a model instance or plain data.
    parsed: Any = None
    #: ``--expect``: one CheckResult per check (``passed``, ``reason``), in order.
    checks: tuple[CheckResult, ...] = ()
    #: Text pieces received (a stream's chunks, about one token each): the token count
    #: shown when the server reports no usage (``/v1/completions`` never does).
    pieces: int = 0

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""

    @property
    def interrupted(self) -> bool:
        """True when Ctrl-C (or the stop button) cut the answer short: the text is partial."""
        return self.status == "interrupted"

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def tool_calls(self) -> tuple[JSON, ...]:
        return self.choices[0].tool_calls if self.choices else ()

    @property
    def logprobs(self) -> list[JSON]:
        """Token records ``{token, logprob, probability, top}`` of the first choice."""
        records = []
        for item in self.choices[0].logprobs if self.choices else ():
            logprob = float(item.get("logprob", 0.0))
            records.append(
                {
                    "token": item.get("token", ""),
                    "logprob": logprob,
                    "probability": math.exp(logprob),
                    "top": [
                        {
                            "token": t.get("token", ""),
                            "probability": math.exp(t.get("logprob", 0.0)),
                        }
                        for t in item.get("top_logprobs") or []
                    ],
                }
            )
        return records

    def usage_line(self, *, model: bool = True) -> str:
        """``palmyra-x5 · 12 prompt + 80 completion = 92 tokens · first token 0.21 s,
        2.40 s total, 33 tokens/s``, with ``stopped at the token limit (80)`` when the
        answer was cut there; ``~42 tokens`` (text pieces received) when the server
        reported no usage. ``model=False`` leaves the model out (a panel titled by it)."""
        parts = [self.model] if model else []
        if self.status != "done":
            parts.append(self.status)
        completion = self.usage.completion_tokens if self.usage else None
        if self.usage is not None and self.usage.summary():
            parts.append(self.usage.summary())
        elif (estimate := self.estimated_tokens()) is not None:
            parts.append(f"~{estimate} token{'' if estimate == 1 else 's'}")
            completion = estimate
        note = self.stop_note()
        if note:
            parts.append(note)
        timing = self.timing.summary(completion)
        if timing:
            parts.append(timing)
        return " · ".join(parts)

    def estimated_tokens(self) -> int | None:
        """The answer's tokens when the server did not say: the streamed pieces (about
        one token each), else (one whole body) about four characters a token."""
        if self.pieces > 1:
            return self.pieces
        text = "".join(c.text for c in self.choices)
        return max(1, round(len(text) / 4)) if text else None

    def stop_note(self) -> str | None:
        """``stopped at the token limit (N)`` when the answer was cut by ``max_tokens``
        (finish reason ``length``; for completions, which send no finish reason, when
        the reported or streamed tokens reached it). ``N`` is the request's
        ``max_tokens``; without one, the model's own limit (its size is not known here)."""
        limit = self.request.get("max_tokens")
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
        cut = any(c.finish_reason == "length" for c in self.choices)
        if not cut and self.endpoint == "completions" and limit is not None:
            produced = self.usage.completion_tokens if self.usage else None
            produced = produced if produced is not None else self.pieces
            cut = self.status in ("done", "cached") and produced >= limit
        if not cut:
            return None
        if limit is None:
            return "stopped at the model's token limit"
        return f"stopped at the token limit ({limit})"

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        preview = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"<Result {self.model} {self.status} {preview!r}>"

    def _repr_markdown_(self) -> str:
        """The answer as Markdown, escaped for Jupyter's renderer (the text stays raw)."""
        return escape_markdown(markdown_of(self))

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.text if not cycle else "<Result ...>")

    def to_json(self) -> JSON:
        """A key-free JSON record (the request never holds the key)."""
        return {
            "endpoint": self.endpoint,
            "model": self.model,
            "status": self.status,
            "choices": [
                {
                    "index": c.index,
                    "text": c.text,
                    "finish_reason": c.finish_reason,
                    "tool_calls": list(c.tool_calls),
                    "data": c.data,
                }
                for c in self.choices
            ],
            "usage": None if self.usage is None else usage_json(self.usage),
            "request": self.request,
            "timing": {"first_token": self.timing.first_token, "total": self.timing.total},
        }


def usage_json(usage: Usage) -> JSON:
    """Usage in Writer's field names."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def build_result(
    acc: Accumulator,
    *,
    endpoint: Endpoint,
    model: str,
    request: JSON,
    raw: Any = None,
    timing: Timing | None = None,
    status: Status = "done",
) -> Result:
    """Freeze an accumulator into a Result (partial ones too)."""
    choices = tuple(
        Choice(
            index=c.index,
            text=c.text,
            finish_reason=c.finish_reason,
            tool_calls=tuple(t.to_message() for t in sorted(c.tool_calls.values(), key=_index)),
            logprobs=tuple(c.logprobs),
            data=dict(c.data),
        )
        for c in acc.ordered()
    ) or (Choice(index=0, text=""),)
    return Result(
        endpoint=endpoint,
        model=model,
        choices=choices,
        request=request,
        usage=acc.usage,
        raw=raw if raw is not None else raw_response(acc, endpoint, model, choices),
        timing=timing or Timing(),
        status=status,
        pieces=acc.pieces,
    )


def raw_response(
    acc: Accumulator, endpoint: Endpoint, model: str, choices: tuple[Choice, ...]
) -> JSON:
    """``Result.raw``: the server's own body when it sent one (``--no-stream``), else
    the body a stream adds up to (:func:`response_json`) with every field the chunks
    carried (the latest ``id``, ``model``, ``created``, ``system_fingerprint``,
    ``service_tier``, ``usage`` with its details, ...) as the server sent them.
    """
    if acc.body is not None:
        return acc.body
    body = response_json(endpoint, model, choices, acc.usage)
    if not acc.info:
        return body
    info = {k: v for k, v in acc.info.items() if k != "object"}  # "chat.completion.chunk"
    if isinstance(info.get("usage"), dict) and "usage" in body:
        info["usage"] = {**body["usage"], **info["usage"]}
    elif info.get("usage") is None:
        info.pop("usage", None)
    if "object" in body:
        info = {"object": body.pop("object"), **info}
    return {**info, **{k: v for k, v in body.items() if k not in info}}


def response_json(
    endpoint: Endpoint, model: str, choices: tuple[Choice, ...], usage: Usage | None
) -> JSON:
    """The response in Writer's non-streaming shape, assembled from what arrived.

    A stream has no single response body; this is the one it adds up to (as the
    SDK's ``get_final_completion`` builds it), so ``result.raw`` reads the same either way.
    """
    if endpoint == "completions":
        return {
            "model": model,
            "choices": [{"text": c.text, "log_probs": None} for c in choices],
        }
    body: JSON = {
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": c.index,
                "finish_reason": c.finish_reason,
                "logprobs": {"content": list(c.logprobs)} if c.logprobs else None,
                "message": {
                    "role": "assistant",
                    "content": c.text if c.text or not c.tool_calls else None,
                    "tool_calls": list(c.tool_calls) or None,
                    **c.data,
                },
            }
            for c in choices
        ],
    }
    if usage is not None:
        body["usage"] = usage_json(usage)
    return body


def _index(call: Any) -> int:
    return int(call.index)


K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Outcomes(Generic[K]):
    """A cell's results by key (its parameter sets), and each key's failure.

    ``results`` has a Result for every key, partial for the keys in ``errors``.
    """

    results: dict[K, Result]
    errors: dict[K, BaseException]
