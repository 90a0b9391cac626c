"""The wire format: request JSON and event decoding, without a network."""

from __future__ import annotations

import json
from typing import Any

import pytest

from writer_magics.answer.result import Accumulator
from writer_magics.config import removed_model_warning
from writer_magics.errors import MalformedEventError, ServerSentError
from writer_magics.request import chat_request, completion_request
from writer_magics.transport import events as api
from writer_magics.transport.events import (
    ChoiceFinished,
    DataDelta,
    LogprobsDelta,
    ResponseInfo,
    StreamEnd,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)


def test_completion_request_omits_unset_fields() -> None:
    body = completion_request(model="palmyra-x5", prompt="Hi")
    assert body == {"model": "palmyra-x5", "prompt": "Hi", "stream": True}


def test_completion_request_maps_every_field() -> None:
    body = completion_request(
        model="palmyra-x4",
        prompt="Hi",
        max_tokens=5,
        temperature=0.2,
        top_p=0.9,
        stop=["."],
        best_of=2,
        random_seed=7,
        stream=False,
    )
    assert body == {
        "model": "palmyra-x4",
        "prompt": "Hi",
        "max_tokens": 5,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["."],
        "best_of": 2,
        "random_seed": 7,
        "stream": False,
    }


def test_chat_request_streams_with_usage_and_bare_tool_choice() -> None:
    body = chat_request(
        model="palmyra-x5",
        messages=[{"role": "user", "content": "Hi"}],
        n=2,
        logprobs=True,
        tool_choice="auto",
    )
    assert body["stream_options"] == {"include_usage": True}
    assert body["tool_choice"] == "auto"
    assert body["n"] == 2 and body["logprobs"] is True
    assert "temperature" not in body and "tools" not in body


def test_chat_request_tool_choice_by_name_is_the_function_form() -> None:
    body = chat_request(model="m", messages=[], tool_choice="get_weather", stream=False)
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert "stream_options" not in body


def test_removed_model_warning_names_the_replacement() -> None:
    warning = removed_model_warning("palmyra-med")
    assert warning is not None and "palmyra-x5" in warning and "2026-07-13" in warning
    assert removed_model_warning("palmyra-x5") is None


def chunk(**choice: object) -> str:
    return json.dumps({"id": "x", "object": "chat.completion.chunk", "choices": [choice]})


def content(events: list[api.Event]) -> list[api.Event]:
    """The events without the chunk's own fields (those go to ``Result.raw``)."""
    return [e for e in events if not isinstance(e, ResponseInfo)]


def test_chat_chunk_text_and_finish_in_one_chunk() -> None:
    data = chunk(index=0, delta={"content": "Hi", "role": "assistant"}, finish_reason="stop")
    assert api.decode_sse_data("chat", data) == [
        ResponseInfo({"id": "x", "object": "chat.completion.chunk"}),
        TextDelta("Hi", 0),
        ChoiceFinished("stop", 0),
    ]


def test_chat_chunk_ignores_null_and_empty_content_and_empty_graph_data() -> None:
    data = chunk(
        index=0,
        delta={
            "content": None,
            "graph_data": {"sources": None, "status": None, "subqueries": None},
            "tool_calls": None,
        },
        finish_reason=None,
    )
    assert content(api.decode_sse_data("chat", data)) == []


def test_usage_chunk_has_no_choices() -> None:
    data = json.dumps(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": 4,
                "total_tokens": 7,
                "completion_token_details": {"reasoning_tokens": 1},
            },
        }
    )
    info, event = api.decode_sse_data("chat", data)
    assert isinstance(info, ResponseInfo) and info.fields["usage"]["total_tokens"] == 7
    assert isinstance(event, UsageReport)
    assert event.usage.total_tokens == 7 and event.usage.reasoning_tokens == 1
    assert event.usage.summary() == "3 prompt + 4 completion = 7 tokens"


def test_done_ends_the_stream() -> None:
    assert api.decode_sse_data("chat", "[DONE]") == [StreamEnd()]


def test_writer_tool_call_pieces_with_explicit_nulls_accumulate_per_index() -> None:
    pieces = [
        {
            "index": 0,
            "id": "call-1",
            "type": "function",
            "function": {"name": "f", "arguments": None},
        },
        {"index": 0, "id": None, "type": None, "function": {"name": None, "arguments": '{"a": 5'}},
        {"index": 0, "id": None, "type": None, "function": {"name": None, "arguments": "}"}},
        {
            "index": 1,
            "id": "call-2",
            "type": "function",
            "function": {"name": "g", "arguments": None},
        },
        {"index": 1, "id": None, "type": None, "function": {"name": None, "arguments": "{}"}},
    ]
    acc = Accumulator()
    for piece in pieces:
        events = api.decode_sse_data("chat", chunk(index=0, delta={"tool_calls": [piece]}))
        for event in content(events):
            assert isinstance(event, ToolCallDelta)
            acc.add(event)
    calls = acc.choice(0).tool_calls
    assert calls[0].to_message() == {
        "id": "call-1",
        "type": "function",
        "function": {"name": "f", "arguments": '{"a": 5}'},
    }
    assert calls[1].name == "g" and calls[1].arguments == "{}"


def test_logprobs_and_writer_data_become_events() -> None:
    data = chunk(
        index=1,
        delta={"content": "A", "web_search_data": {"sources": [{"url": "https://x"}]}},
        logprobs={"content": [{"token": "A", "logprob": -0.1, "top_logprobs": []}]},
    )
    events = api.decode_sse_data("chat", data)
    assert TextDelta("A", 1) in events
    assert DataDelta("web_search_data", {"sources": [{"url": "https://x"}]}, 1) in events
    assert any(isinstance(e, LogprobsDelta) and e.choice == 1 for e in events)


def test_completions_chunk_value() -> None:
    assert api.decode_sse_data("completions", '{"value": ""}') == []
    assert api.decode_sse_data("completions", '{"value": "Hello"}') == [TextDelta("Hello")]


@pytest.mark.parametrize(
    ("event_name", "data"),
    [
        ("error", '{"tpe": "BadRequest", "errors": [{"description": "boom"}]}'),
        ("", '{"tpe": "BadRequest", "errors": [{"description": "boom"}]}'),
    ],
)
def test_error_events_are_surfaced_not_dropped(event_name: str, data: str) -> None:
    with pytest.raises(ServerSentError, match="boom"):
        api.decode_sse_data("chat", data, event_name)


def test_malformed_event_is_a_clear_error() -> None:
    with pytest.raises(MalformedEventError, match="not JSON"):
        api.decode_sse_data("chat", "{not json")


def test_non_streaming_responses_decode_to_the_same_events() -> None:
    chat = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Done", "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    events = api.decode_response("chat", chat)
    assert events[:3] == [ResponseInfo(chat, whole=True), TextDelta("Done"), ChoiceFinished("stop")]
    completions = {"choices": [{"text": "Once", "log_probs": None}], "model": "palmyra-x5"}
    assert api.decode_response("completions", completions)[1] == TextDelta("Once")


def test_error_description_reads_writer_error_body() -> None:
    body = {"tpe": "BadRequest", "errors": [{"description": "a"}, {"description": "b"}]}
    assert api.error_description(body) == "a b"
    assert api.error_description({"message": "plain"}) == "plain"
    assert api.error_description("text") is None


def test_accumulator_joins_text_and_knows_when_finished() -> None:
    acc = Accumulator()
    for event in (TextDelta("a"), TextDelta("b"), TextDelta("c", 1)):
        acc.add(event)
    assert acc.choice(0).text == "ab" and not acc.finished
    acc.add(ChoiceFinished("stop", 0))
    acc.add(ChoiceFinished("length", 1))
    assert acc.finished
    assert [c.finish_reason for c in acc.ordered()] == ["stop", "length"]


# --------------------------------------------------------------------------- nothing lost


def test_a_later_empty_sources_list_does_not_wipe_sources_already_received() -> None:
    """Issue 12 §6: built-in tool data was last-one-wins per field."""
    acc = Accumulator()
    first = {"sources": [{"url": "https://a"}], "status": "searching", "subqueries": None}
    later = {"sources": [], "status": "done", "subqueries": [{"query": "q"}]}
    more = {"sources": [{"url": "https://a"}, {"url": "https://b"}]}  # cumulative
    for value in (first, later, more):
        acc.add(DataDelta("graph_data", value))
    assert acc.choice(0).data["graph_data"] == {
        "sources": [{"url": "https://a"}, {"url": "https://b"}],
        "status": "done",
        "subqueries": [{"query": "q"}],
    }
    acc.add(DataDelta("refusal", "I can"))
    acc.add(DataDelta("refusal", "not."))
    assert acc.choice(0).data["refusal"] == "I cannot."


def test_no_other_field_is_lost_to_a_later_piece() -> None:
    acc = Accumulator()
    acc.add(ToolCallDelta(index=0, id="c1", type="function", name="f", arguments='{"a":'))
    acc.add(ToolCallDelta(index=0, id="", type="", name="", arguments="1}"))  # empty, not null
    acc.add(ChoiceFinished("tool_calls"))
    acc.add(ChoiceFinished(None))
    acc.add(UsageReport(api.Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7)))
    acc.add(UsageReport(api.Usage(total_tokens=7, reasoning_tokens=2)))
    call = acc.choice(0).tool_calls[0]
    assert (call.id, call.type, call.name, call.arguments) == ("c1", "function", "f", '{"a":1}')
    assert acc.choice(0).finish_reason == "tool_calls"
    assert acc.usage == api.Usage(
        prompt_tokens=3, completion_tokens=4, total_tokens=7, reasoning_tokens=2
    )
    acc.add(ResponseInfo({"id": "1", "model": "palmyra-x5", "service_tier": None}))
    acc.add(ResponseInfo({"id": "2", "model": None, "usage": {"total_tokens": 7}}))
    assert acc.info == {
        "id": "2",
        "model": "palmyra-x5",
        "service_tier": None,
        "usage": {"total_tokens": 7},
    }


def test_whole_tool_calls_with_null_indexes_stay_apart() -> None:
    """Writer's non-streamed answers say ``"index": null`` on every tool call."""
    body = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {
                            "id": "a",
                            "type": "function",
                            "index": None,
                            "function": {"name": "f", "arguments": "{}"},
                        },
                        {
                            "id": "b",
                            "type": "function",
                            "index": None,
                            "function": {"name": "g", "arguments": "[]"},
                        },
                    ],
                },
            }
        ]
    }
    acc = Accumulator()
    for event in api.decode_response("chat", body):
        acc.add(event)
    calls = acc.choice(0).tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls.values()] == [
        ("a", "f", "{}"),
        ("b", "g", "[]"),
    ]
    assert acc.body is body


# Body keys as Writer's reference spells them (shared/writer-docs: completions-openapi.md
# ``completions_request.properties``; chat-api-reference.md "Body").
COMPLETIONS_SPEC_KEYS = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "stop", "best_of",
    "random_seed", "stream",
}  # fmt: skip
CHAT_SPEC_KEYS = {
    "model", "messages", "max_tokens", "temperature", "top_p", "n", "stop", "logprobs",
    "stream", "tools", "tool_choice", "stream_options", "response_format",
}  # fmt: skip


def test_every_body_key_is_spelled_as_the_spec_says() -> None:
    completion = completion_request(
        model="m", prompt="p", max_tokens=1, temperature=0.1, top_p=0.5, stop=["x"],
        best_of=1, random_seed=2, stream=True,
    )  # fmt: skip
    chat = chat_request(
        model="m", messages=[{"role": "user", "content": "q"}], max_tokens=1,
        temperature=0.1, top_p=0.5, n=2, stop=["x"], logprobs=True, stream=True,
        tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="auto",
        response_format={"type": "text"},
    )  # fmt: skip
    assert set(completion) == COMPLETIONS_SPEC_KEYS
    assert set(chat) == CHAT_SPEC_KEYS
    assert chat["stream_options"] == {"include_usage": True}


def test_hostile_shapes_are_one_clear_error_or_ignored() -> None:
    huge = chunk(index=10**9, delta={"content": "x"})
    with pytest.raises(MalformedEventError, match="choice index out of range: 1000000000"):
        api.decode_sse_data("chat", huge)
    with pytest.raises(MalformedEventError, match="out of range"):
        api.decode_response("chat", {"choices": [{"index": -1, "message": {"content": "x"}}]})
    odd = chunk(
        index=0,
        delta={"tool_calls": [{"index": 0, "id": 7, "type": [], "function": {"name": 1}}]},
    )
    (call,) = content(api.decode_sse_data("chat", odd))
    assert call == ToolCallDelta(index=0)
    usage = {"choices": [], "usage": {"total_tokens": 3, "prompt_token_details": ["x"]}}
    events = api.decode_sse_data("chat", json.dumps(usage))
    assert UsageReport(api.Usage(total_tokens=3)) in events
    whole = {"choices": [{"message": {"content": "a"}, "finish_reason": 5}]}
    assert ChoiceFinished(None) in api.decode_response("chat", whole)


_PLAIN = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "model": "palmyra-x5",
    "usage": None,
    "choices": [
        {
            "index": 0,
            "finish_reason": None,
            "logprobs": None,
            "delta": {
                "content": "Hi",
                "role": "assistant",
                "tool_calls": None,
                "graph_data": {"sources": None, "status": None, "subqueries": None},
                "llm_data": None,
                "refusal": None,
            },
        }
    ],
}


def _variant(path: tuple[str | int, ...], value: object) -> dict[str, object]:
    chunk: dict[str, object] = json.loads(json.dumps(_PLAIN))
    target: Any = chunk
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return chunk


@pytest.mark.parametrize(
    "chunk",
    [
        _PLAIN,
        _variant(("choices", 0, "index"), 2),
        _variant(("choices", 0, "index"), None),
        _variant(("choices", 0, "index"), True),
        _variant(("choices", 0, "index"), "1"),
        _variant(("choices", 0, "finish_reason"), "stop"),
        _variant(("choices", 0, "logprobs"), {"content": [{"token": "Hi", "logprob": -0.1}]}),
        _variant(("choices", 0, "logprobs"), {}),
        _variant(("choices", 0, "delta", "content"), ""),
        _variant(("choices", 0, "delta", "content"), None),
        _variant(("choices", 0, "delta", "content"), 5),
        _variant(("choices", 0, "delta", "tool_calls"), []),
        _variant(
            ("choices", 0, "delta", "tool_calls"),
            [{"index": 0, "id": "t", "function": {"name": "f", "arguments": "{}"}}],
        ),
        _variant(("choices", 0, "delta", "graph_data"), {"sources": [{"url": "u"}]}),
        _variant(("choices", 0, "delta", "graph_data"), {"sources": []}),
        _variant(("choices", 0, "delta", "graph_data"), {}),
        _variant(("choices", 0, "delta", "llm_data"), {"prompt": "p"}),
        _variant(("choices", 0, "delta", "refusal"), "no"),
        _variant(("choices", 0, "delta", "refusal"), ""),
        _variant(("usage",), {"prompt_tokens": 1, "completion_tokens": 2}),
        _variant(("usage",), "odd"),
        _variant(("choices",), []),
        _variant(("choices",), [_PLAIN["choices"][0], _PLAIN["choices"][0]]),  # type: ignore[index]
    ],
)
def test_plain_text_fast_path_reads_exactly_like_the_full_reading(chunk: dict[str, object]) -> None:
    # The fast path for plain text pieces (most of a long stream) must never change what
    # a chunk means: every variant decodes to the same events as the full reading.
    assert api.decode_chat_chunk(chunk) == api._decode_chat_chunk_fully(chunk)


def test_plain_text_fast_path_still_checks_the_choice_index() -> None:
    with pytest.raises(MalformedEventError):
        api.decode_chat_chunk(_variant(("choices", 0, "index"), 10**9))
