"""The function-calling loop against the bundled server: what the server receives.

The bundled server calls a function when the last user message names it, and answers
in text once the last message is a tool result; so one tool round plus the answer is
two requests.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from writer_magics.answer.result import Choice, Result
from writer_magics.display import TextView
from writer_magics.errors import ToolRoundsExceeded, WriterError
from writer_magics.request import Request, chat_request
from writer_magics.send import execute
from writer_magics.server import ServerHandle
from writer_magics.tools.functions import tool_definitions
from writer_magics.tools.rounds import DECLINED, next_request, run_tool_rounds
from writer_magics.transport.client import ClientSettings, WriterClient
from writer_magics.transport.loop import LoopThread

Send = Callable[[Request], Result]


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def send(server: ServerHandle, loop: LoopThread) -> Iterator[Send]:
    """One request through execute() into a text view; failures raise."""
    client = WriterClient(ClientSettings(base_url=server.url, api_key="test-key", max_retries=0))

    def run(request: Request) -> Result:
        outcome = execute(
            {0: request}, loop=loop, client=client, view=TextView(stream=io.StringIO())
        )
        if outcome.errors:
            raise outcome.errors[0]
        return outcome.results[0]

    yield run
    loop.run(client.aclose)


def get_weather(city: str) -> str:
    """Current weather for a city.

    Args:
        city: The city name.
    """
    return f"18C and cloudy in {city}"


def get_time(city: str) -> dict[str, str]:
    """Local time in a city."""
    return {"city": city, "time": "09:30"}


def first_request(text: str, funcs: dict[str, Callable[..., Any]], **extra: Any) -> Request:
    body = chat_request(
        model="palmyra-x5",
        messages=[{"role": "user", "content": text}],
        tools=tool_definitions(funcs),
        **extra,
    )
    return Request("chat", body)


# --------------------------------------------------------------------------- the loop


def test_two_round_loop_sends_the_tool_result_back(server: ServerHandle, send: Send) -> None:
    tools = {"get_weather": get_weather}
    calls: list[tuple[str, str, str, bool]] = []
    outcome = run_tool_rounds(
        first_request("What is the weather in Paris? Use get_weather.", tools),
        tools,
        send,
        on_call=lambda *call: calls.append(call),
    )
    assert outcome.rounds == 2 and len(outcome.results) == 2
    first, second = (r.body for r in server.requests)
    assert [m["role"] for m in first["messages"]] == ["user"]
    assistant, tool = second["messages"][1:]
    call = outcome.results[0].tool_calls[0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert assistant == {"role": "assistant", "content": None, "tool_calls": [call]}
    assert tool == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": "18C and cloudy in Paris",
    }
    assert call["id"].startswith("chatcmpl-tool-")
    assert second["tools"] == first["tools"]  # the functions stay offered
    assert calls == [("get_weather", '{"city": "Paris"}', "18C and cloudy in Paris", False)]
    # The history the cell records: the exchange after the user message, then the answer.
    assert outcome.messages == [
        assistant,
        tool,
        {"role": "assistant", "content": outcome.result.text},
    ]
    assert "18C and cloudy in Paris" in outcome.result.text
    assert outcome.result.finish_reason == "stop" and not outcome.result.tool_calls


def test_several_calls_in_one_round_each_get_a_tool_message(
    server: ServerHandle, send: Send
) -> None:
    tools = {"get_weather": get_weather, "get_time": get_time}
    outcome = run_tool_rounds(
        first_request("Use get_weather and get_time for Oslo.", tools), tools, send
    )
    assistant, *answers, final = outcome.messages
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert [a["tool_call_id"] for a in answers] == ids and len(set(ids)) == 2
    assert [a["content"] for a in answers] == [
        "18C and cloudy in Oslo",
        json.dumps({"city": "Oslo", "time": "09:30"}),
    ]
    assert server.requests[1].body["messages"][1:] == [assistant, *answers]
    assert final["role"] == "assistant" and outcome.rounds == 2


def test_a_raising_function_is_sent_back_and_reported(server: ServerHandle, send: Send) -> None:
    def get_weather(city: str) -> str:
        raise ConnectionError(f"weather service down for {city}")

    tools = {"get_weather": get_weather}
    calls: list[tuple[str, str, str, bool]] = []
    outcome = run_tool_rounds(
        first_request("Weather in Rome? Use get_weather.", tools),
        tools,
        send,
        on_call=lambda *call: calls.append(call),
    )
    error = "Error: ConnectionError: weather service down for Rome"
    assert calls == [("get_weather", '{"city": "Rome"}', error, True)]
    tool = server.requests[1].body["messages"][-1]
    assert tool["role"] == "tool" and tool["content"] == error
    assert outcome.rounds == 2 and "weather service down" in outcome.result.text


def test_round_limit_stops_before_running_the_calls(server: ServerHandle, send: Send) -> None:
    ran: list[str] = []

    def get_weather(city: str) -> str:
        ran.append(city)
        return "sunny"

    tools = {"get_weather": get_weather}
    with pytest.raises(ToolRoundsExceeded) as info:
        run_tool_rounds(
            first_request("Weather in Oslo? Use get_weather.", tools), tools, send, max_rounds=1
        )
    assert ran == [] and len(server.requests) == 1
    exc = info.value
    assert isinstance(exc, WriterError) and exc.messages == []
    assert exc.result.tool_calls[0]["function"]["name"] == "get_weather"
    assert exc.lines()[0] == (
        "ToolRoundsExceeded: the model still asked for tools (get_weather) after 1 rounds; "
        "those calls were not run"
    )
    assert "\n" not in exc.lines()[0]


def test_confirm_declined_sends_the_refusal(server: ServerHandle, send: Send) -> None:
    ran: list[str] = []
    asked: list[tuple[str, str]] = []

    def get_weather(city: str) -> str:
        ran.append(city)
        return "sunny"

    def confirm(name: str, arguments: str) -> bool:
        asked.append((name, arguments))
        return False

    tools = {"get_weather": get_weather}
    outcome = run_tool_rounds(
        first_request("Weather in Oslo? Use get_weather.", tools), tools, send, confirm=confirm
    )
    assert asked == [("get_weather", '{"city": "Oslo"}')] and ran == []
    assert server.requests[1].body["messages"][-1]["content"] == DECLINED
    assert outcome.messages[1]["content"] == "The user declined this call."


def test_forcing_tool_choice_applies_to_the_first_round_only(
    server: ServerHandle, send: Send
) -> None:
    tools = {"get_weather": get_weather}
    run_tool_rounds(
        first_request("Weather in Lima?", tools, tool_choice="get_weather"), tools, send
    )
    first, second = (r.body for r in server.requests)
    assert first["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert second["tool_choice"] == "auto"


def test_no_tool_call_is_one_round(server: ServerHandle, send: Send) -> None:
    tools = {"get_weather": get_weather}
    outcome = run_tool_rounds(first_request("Say hello.", tools), tools, send)
    assert outcome.rounds == 1 and len(server.requests) == 1
    assert outcome.messages == [{"role": "assistant", "content": outcome.result.text}]


# --------------------------------------------------------------------------- scripted model


def tool_result(*names: str, text: str = "") -> Result:
    calls = tuple(
        {
            "id": f"call-{i}",
            "type": "function",
            "function": {"name": n, "arguments": '{"city": "Oslo"}'},
        }
        for i, n in enumerate(names)
    )
    choice = Choice(0, text, "tool_calls" if calls else "stop", tool_calls=calls)
    return Result(endpoint="chat", model="m", choices=(choice,), request={})


def test_round_limit_with_a_model_that_never_stops() -> None:
    sent: list[Request] = []

    def send(request: Request) -> Result:
        sent.append(request)
        return tool_result("get_weather", text="Checking.")

    tools = {"get_weather": get_weather}
    with pytest.raises(ToolRoundsExceeded) as info:
        run_tool_rounds(first_request("x", tools), tools, send, max_rounds=3)
    assert len(sent) == 3
    messages = info.value.messages
    assert [m["role"] for m in messages] == ["assistant", "tool", "assistant", "tool"]
    assert messages[0]["content"] == "Checking."  # text next to calls is kept
    assert len(info.value.results) == 3
    assert sent[2].body["messages"][1:] == messages


def test_unknown_function_is_answered_not_run() -> None:
    replies = iter([tool_result("launch_rockets"), tool_result()])
    outcome = run_tool_rounds(
        first_request("x", {"get_weather": get_weather}),
        {"get_weather": get_weather},
        lambda request: next(replies),
    )
    assert outcome.messages[1] == {
        "role": "tool",
        "tool_call_id": "call-0",
        "content": "Error: there is no function named 'launch_rockets' (offered: get_weather)",
    }


def test_a_failed_send_propagates() -> None:
    def send(request: Request) -> Result:
        raise WriterError("connection lost")

    with pytest.raises(WriterError, match="connection lost"):
        run_tool_rounds(first_request("x", {}), {}, send)
    with pytest.raises(ValueError):
        run_tool_rounds(first_request("x", {}), {}, send, max_rounds=0)


def test_next_request_does_not_touch_the_first() -> None:
    first = first_request("x", {"get_weather": get_weather}, tool_choice="required")
    added = [{"role": "tool", "tool_call_id": "a", "content": "b"}]
    later = next_request(first, added)
    assert first.body["tool_choice"] == "required" and len(first.body["messages"]) == 1
    assert later.body["tool_choice"] == "auto" and later.body["messages"][1:] == added
    assert later.endpoint == "chat" and later.timeout == first.timeout
