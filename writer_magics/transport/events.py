"""The Writer wire format coming back: typed events, SSE and JSON decoding.

Everything here is a pure function of its arguments (no I/O, no IPython), so the
way we read Writer's quirks (explicit nulls in streamed
tool calls, the usage chunk with ``choices: []``, an optional ``[DONE]``) are unit
tested without a network. The bodies we send are built in :mod:`writer_magics.request`;
see ``shared/writer-api.md`` for the reference.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from writer_magics.errors import MalformedEventError, ServerSentError
from writer_magics.request import JSON, Endpoint

PATHS: Mapping[Endpoint, str] = {"completions": "/v1/completions", "chat": "/v1/chat"}

#: Message fields Writer returns on a chat message that carry tool output, kept as data.
WRITER_DATA_FIELDS = ("graph_data", "llm_data", "web_search_data", "translation_data", "refusal")


# --------------------------------------------------------------------------- events


@dataclass(slots=True)
class TextDelta:
    """A piece of answer text for one choice.

    ``pieces`` is how many streamed chunks it holds: 1 as decoded; more when the cell
    thread joins a run of a fast stream's chunks that crossed from the loop thread
    together (:func:`writer_magics.send.joined`), so one fold and one view call serve
    the run while token counts still count chunks.

    Not frozen, unlike the other events: one is made per chunk on the hot path, and a
    frozen dataclass's ``__init__`` costs three times as much. Nothing changes one
    after it is made.
    """

    text: str
    choice: int = 0
    pieces: int = 1


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call; Writer sends explicit nulls in later pieces."""

    index: int
    id: str | None = None
    type: str | None = None
    name: str | None = None
    arguments: str | None = None
    choice: int = 0


@dataclass(frozen=True, slots=True)
class LogprobsDelta:
    """Token log-probabilities for one choice (chat ``logprobs.content`` records)."""

    tokens: tuple[JSON, ...]
    choice: int = 0


@dataclass(frozen=True, slots=True)
class DataDelta:
    """Writer's extra message data (graph, web search, translation, llm, refusal)."""

    name: str
    value: Any
    choice: int = 0


@dataclass(frozen=True, slots=True)
class ChoiceFinished:
    """The model finished a choice (``stop``, ``length``, ``tool_calls``, ...)."""

    reason: str | None
    choice: int = 0


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Token usage, from the ``include_usage`` chunk or a whole response."""

    usage: Usage


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Usage:
        """Accept both spellings: Writer's ``prompt_token_details`` /
        ``completion_token_details`` and OpenAI's ``*_tokens_details``."""
        prompt_details = _details(data, "prompt_token_details", "prompt_tokens_details")
        completion_details = _details(data, "completion_tokens_details", "completion_token_details")
        return cls(
            prompt_tokens=_int_or_none(data.get("prompt_tokens")),
            completion_tokens=_int_or_none(data.get("completion_tokens")),
            total_tokens=_int_or_none(data.get("total_tokens")),
            cached_tokens=_int_or_none(prompt_details.get("cached_tokens")),
            reasoning_tokens=_int_or_none(completion_details.get("reasoning_tokens")),
        )

    def merge(self, later: Usage) -> Usage:
        """``later``'s counts where it has them, this one's elsewhere (nothing is lost)."""
        return Usage(
            *(
                mine if theirs is None else theirs
                for mine, theirs in zip(_usage_tuple(self), _usage_tuple(later), strict=True)
            )
        )

    def summary(self) -> str:
        """``12 prompt + 80 completion = 92 tokens``; blanks where the server said nothing."""
        parts = []
        if self.prompt_tokens is not None:
            parts.append(f"{self.prompt_tokens} prompt")
        if self.completion_tokens is not None:
            parts.append(f"{self.completion_tokens} completion")
        text = " + ".join(parts)
        if self.total_tokens is not None:
            total = f"{self.total_tokens} token{'' if self.total_tokens == 1 else 's'}"
            text = f"{text} = {total}" if text else total
        return text


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The server said ``[DONE]``."""


@dataclass(frozen=True, slots=True)
class ResponseInfo:
    """What the server said about the response itself, for ``Result.raw``.

    From a stream: one chunk's top-level fields except ``choices`` (``id``, ``object``,
    ``created``, ``model``, ``system_fingerprint``, ``service_tier``, ``usage`` exactly
    as sent, ...). With ``whole``: a non-streamed response's body, as the server sent it.
    """

    fields: JSON
    whole: bool = False


# --------------------------------------------------------------------------- status events
# Not from the wire: what the transport and the runner say about a request's progress.
# The fold ignores them and the cache never stores them; the live status shows them.


@dataclass(frozen=True, slots=True)
class Queued:
    """The request waits for a free slot (a sweep over ``max_concurrency``)."""


@dataclass(frozen=True, slots=True)
class Started:
    """The request got its slot and is being sent; ``at`` is a ``time.monotonic()`` value."""

    at: float


@dataclass(frozen=True, slots=True)
class Retrying:
    """The client waits ``wait`` seconds, then makes attempt ``attempt`` of ``attempts``.

    ``reason`` is short and redacted (``429 rate limited``); yielded by
    :meth:`~writer_magics.transport.client.WriterClient.events` before it sleeps.
    """

    wait: float
    attempt: int
    attempts: int
    reason: str


@dataclass(frozen=True, slots=True)
class ToolRunning:
    """A Python function the model asked for runs now (``%%chat --tools``)."""

    name: str
    arguments: str


#: The events that only report progress: nothing to fold, cache or replay.
STATUS_EVENTS = (Queued, Started, Retrying, ToolRunning)


Event: TypeAlias = (
    TextDelta
    | ToolCallDelta
    | LogprobsDelta
    | DataDelta
    | ChoiceFinished
    | UsageReport
    | StreamEnd
    | ResponseInfo
    | Queued
    | Started
    | Retrying
    | ToolRunning
)


def _details(data: Mapping[str, Any], *names: str) -> Mapping[str, Any]:
    """The first of these detail objects that is an object (a damaged one is ignored)."""
    for name in names:
        value = data.get(name)
        if isinstance(value, dict):
            return value
    return {}


def _usage_tuple(usage: Usage) -> tuple[int | None, ...]:
    return (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
        usage.cached_tokens,
        usage.reasoning_tokens,
    )


def merge_data(old: Any, new: Any) -> Any:
    """Writer's data received so far (``old``) with a later piece (``new``) added.

    Objects merge key by key; a list gains the items it does not hold yet (so both
    cumulative and incremental streams of sources end complete); an empty or null
    value never replaces one already received; otherwise the later value wins.
    """
    if old is None:
        return new
    if new is None or (isinstance(new, list | str | dict) and not new):
        return old
    if isinstance(old, dict) and isinstance(new, dict):
        merged = dict(old)
        for key, value in new.items():
            merged[key] = merge_data(merged.get(key), value)
        return merged
    if isinstance(old, list) and isinstance(new, list):
        return old + [item for item in new if item not in old]
    return new


#: Choices one response may have; a larger index is a broken or hostile server (each
#: choice gets a panel, so an index of 10**9 would build panels for hours).
MAX_CHOICES = 1000


def _choice_index(value: Any, default: int) -> int:
    index = _int_or_none(value)
    if index is None:
        return default
    if not 0 <= index < MAX_CHOICES:
        raise MalformedEventError(f"the server sent a choice index out of range: {index}")
    return index


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------- decoding


def decode_sse_data(endpoint: Endpoint, data: str, event_name: str = "") -> list[Event]:
    """One SSE event's ``data`` to typed events.

    ``[DONE]`` ends the stream; ``event: error`` and a data-only error object (Writer's
    ``tpe``/``errors`` body) become :class:`ServerSentError` instead of being silently
    dropped as the official SDK does.
    """
    if data.startswith("[DONE]"):
        return [StreamEnd()]
    if not data or (data[0].isspace() and not data.strip()):
        return []
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise MalformedEventError(
            f"the server sent an event that is not JSON: {data[:80]!r}"
        ) from exc
    if not isinstance(chunk, dict):
        raise MalformedEventError(
            f"the server sent an event that is not a JSON object: {data[:80]!r}"
        )
    if event_name == "error" or "errors" in chunk or "tpe" in chunk or "error" in chunk:
        raise ServerSentError(error_description(chunk) or "the server reported an error mid-stream")
    if event_name not in ("", "message"):
        return []
    if endpoint == "completions":
        return decode_completion_chunk(chunk)
    return decode_chat_chunk(chunk)


def decode_completion_chunk(chunk: Mapping[str, Any]) -> list[Event]:
    """``{"value": "..."}``: the only documented completions chunk."""
    value = chunk.get("value")
    if isinstance(value, str):
        return [TextDelta(value)] if value else []
    if "choices" in chunk:  # be lenient: a chat-like chunk from a compatible server
        return decode_chat_chunk(chunk)
    raise MalformedEventError(f"a completions event has no text value: {json.dumps(chunk)[:80]}")


def decode_chat_chunk(chunk: Mapping[str, Any]) -> list[Event]:
    """A ``chat.completion.chunk``: read ``choices[i].delta``, apply it, then the finish.

    The chunk's own fields (``id``, ``model``, ``usage`` as sent, ...) come first as a
    :class:`ResponseInfo` on every chunk except plain text pieces (content only, no
    finish, no usage): Writer repeats those fields on every chunk, the last chunk (a
    finish or the usage chunk) carries them all, and skipping the text pieces keeps a
    long stream's cost where it was (one more event per chunk cost a quarter more CPU).
    """
    text = _plain_text(chunk)
    if text is not None:
        return [text]
    return _decode_chat_chunk_fully(chunk)


def _decode_chat_chunk_fully(chunk: Mapping[str, Any]) -> list[Event]:
    """:func:`decode_chat_chunk` without the fast path for plain text pieces."""
    events: list[Event] = []
    choices = chunk.get("choices")
    if choices is not None and not isinstance(choices, list):
        raise MalformedEventError("a chat event has 'choices' that is not a list")
    plain = bool(choices)
    for raw_choice in choices or []:
        if not isinstance(raw_choice, dict):
            raise MalformedEventError("a chat event has a choice that is not an object")
        index = _choice_index(raw_choice.get("index"), 0)
        delta = raw_choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise MalformedEventError("a chat event has a delta that is not an object")
        before = len(events)
        events.extend(_message_events(delta, index))
        events.extend(_logprob_events(raw_choice.get("logprobs"), index))
        reason = raw_choice.get("finish_reason")
        if reason is not None:
            events.append(ChoiceFinished(str(reason), index))
            plain = False
        elif plain and not all(isinstance(e, TextDelta | LogprobsDelta) for e in events[before:]):
            plain = False
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        events.append(UsageReport(Usage.from_json(usage)))
        plain = False
    if not plain or not events:
        info = {k: v for k, v in chunk.items() if k != "choices"}
        if info:
            events.insert(0, ResponseInfo(info))
    return events


def _plain_text(chunk: Mapping[str, Any]) -> TextDelta | None:
    """The one event of a plain text piece, or None when the chunk needs the full reading.

    Nearly every chunk of a long stream is one choice with some text and nothing
    else (Writer's all-null ``graph_data`` and friends included); this reads those in
    a few lookups and gives exactly what :func:`decode_chat_chunk`'s general path
    gives for them. Anything else (a finish, usage, tool calls, log-probabilities,
    data, several choices, an odd type anywhere) returns None.
    """
    choices = chunk.get("choices")
    if type(choices) is not list or len(choices) != 1 or chunk.get("usage") is not None:
        return None
    choice = choices[0]
    if type(choice) is not dict:
        return None
    get = choice.get
    if get("finish_reason") is not None or get("logprobs") is not None:
        return None
    delta = get("delta")
    if type(delta) is not dict:
        return None
    content = delta.get("content")
    if type(content) is not str or not content or delta.get("tool_calls") is not None:
        return None
    for name in WRITER_DATA_FIELDS:
        value = delta.get(name)
        if value is None:
            continue
        if type(value) is dict and list(value.values()).count(None) == len(value):
            continue  # every value None (== None holds for no other JSON value)
        return None
    index = get("index")
    if index is None:
        index = 0
    elif type(index) is not int or not 0 <= index < MAX_CHOICES:
        return None
    return TextDelta(content, index)


def _message_events(message: Mapping[str, Any], index: int) -> Iterator[Event]:
    content = message.get("content")
    if isinstance(content, str) and content:
        yield TextDelta(content, index)
    for position, call in enumerate(message.get("tool_calls") or []):
        if not isinstance(call, dict):
            raise MalformedEventError("a tool call in the stream is not an object")
        function = call.get("function") or {}
        if not isinstance(function, dict):
            raise MalformedEventError("a tool call's 'function' is not an object")
        # Writer's non-streamed answers say "index": null; two calls must not merge.
        call_index = _int_or_none(call.get("index"))
        yield ToolCallDelta(
            index=position if call_index is None else call_index,
            id=_str_or_none(call.get("id")),
            type=_str_or_none(call.get("type")),
            name=_str_or_none(function.get("name")),
            arguments=_str_or_none(function.get("arguments")),
            choice=index,
        )
    for name in WRITER_DATA_FIELDS:
        value = message.get(name)
        if value is not None and _has_content(value):
            yield DataDelta(name, value, index)


def _has_content(value: Any) -> bool:
    """Writer repeats ``graph_data: {all null}`` on every delta; that is not data."""
    if isinstance(value, dict):
        return any(_has_content(v) for v in value.values())
    if isinstance(value, list | str):
        return bool(value)
    return value is not None


def _logprob_events(logprobs: Any, index: int) -> Iterator[Event]:
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        tokens = tuple(t for t in logprobs["content"] if isinstance(t, dict))
        if tokens:
            yield LogprobsDelta(tokens, index)


def decode_response(endpoint: Endpoint, body: Any) -> list[Event]:
    """A whole (non-streaming) response as the same events a stream would give.

    One code path then builds results and displays for both modes.
    """
    if not isinstance(body, dict):
        raise MalformedEventError("the server's response is not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list):
        raise MalformedEventError("the server's response has no 'choices' list")
    events: list[Event] = [ResponseInfo(body, whole=True)]
    for position, raw_choice in enumerate(choices):
        if not isinstance(raw_choice, dict):
            raise MalformedEventError("the server's response has a choice that is not an object")
        index = _choice_index(raw_choice.get("index"), position)
        if endpoint == "completions":
            text = raw_choice.get("text")
            if isinstance(text, str) and text:
                events.append(TextDelta(text, index))
            events.extend(_logprob_events(raw_choice.get("log_probs"), index))
        else:
            message = raw_choice.get("message") or {}
            if not isinstance(message, dict):
                raise MalformedEventError(
                    "the server's response has a message that is not an object"
                )
            events.extend(_message_events(message, index))
            events.extend(_logprob_events(raw_choice.get("logprobs"), index))
        events.append(ChoiceFinished(_str_or_none(raw_choice.get("finish_reason")), index))
    usage = body.get("usage")
    if isinstance(usage, dict):
        events.append(UsageReport(Usage.from_json(usage)))
    return events


def error_description(body: Any) -> str | None:
    """Writer's ``errors[].description`` texts joined, or a plain ``message``/``detail``."""
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, list):
        texts = [
            str(e["description"]) for e in errors if isinstance(e, dict) and e.get("description")
        ]
        if texts:
            return " ".join(texts)
    error = body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    for key in ("message", "detail", "error"):
        if isinstance(body.get(key), str):
            return str(body[key])
    return None


def merge_info(info: JSON, fields: Mapping[str, Any]) -> None:
    """Merge one streamed chunk's own fields into ``info``: the latest non-null value of
    each wins, objects are merged key by key (:func:`merge_data`), a field only ever
    seen as null is kept as null."""
    for key, value in fields.items():
        if value is not None:
            old = info.get(key)
            info[key] = (
                merge_data(old, value)
                if isinstance(value, dict) and isinstance(old, dict)
                else value
            )
        elif key not in info:
            info[key] = None
