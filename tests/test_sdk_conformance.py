"""The official Writer SDK (``writerai``) parses every response kind of the bundled server.

If the SDK accepts our wire format and exposes the expected values, the server is a
faithful stand-in for api.writer.com in the other test suites and in demos.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from writer_magics.server import ServerHandle

writerai = pytest.importorskip("writerai")

MODEL = "palmyra-x5"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def sdk(server: ServerHandle) -> Iterator[Any]:
    client = writerai.Writer(api_key="test", base_url=server.url, max_retries=0, timeout=5)
    yield client
    client.close()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def test_chat_non_streaming(sdk: Any, server: ServerHandle) -> None:
    completion = sdk.chat.chat(model=MODEL, messages=user("Tell me about camping gear"))
    assert isinstance(completion, writerai.types.ChatCompletion)
    assert completion.object == "chat.completion" and completion.model == MODEL
    assert completion.system_fingerprint == "v1" and completion.service_tier == "standard"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.index == 0
    assert choice.message.role == "assistant" and "camping" in choice.message.content
    assert choice.message.graph_data is not None and choice.message.graph_data.sources is None
    usage = completion.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_token_details is not None
    assert usage.prompt_token_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    (request,) = server.wait_for_requests(1)
    assert request.headers["authorization"] == "Bearer test"
    assert request.body == {"model": MODEL, "messages": user("Tell me about camping gear")}


def test_chat_streaming_with_usage(sdk: Any) -> None:
    full = sdk.chat.chat(model=MODEL, messages=user("Explain caching"))
    stream = sdk.chat.chat(
        model=MODEL,
        messages=user("Explain caching"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(isinstance(c, writerai.types.ChatCompletionChunk) for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == full.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_streaming_without_done(sdk: Any) -> None:
    stream = sdk.chat.chat(
        model=MODEL, messages=user("Hello [[fault:no-done]]"), stream=True, max_tokens=5
    )
    chunks = list(stream)
    assert len(chunks) == 5 and chunks[-1].choices[0].finish_reason == "length"


def test_chat_n_and_logprobs(sdk: Any) -> None:
    completion = sdk.chat.chat(
        model=MODEL, messages=user("Name a good habit"), n=2, logprobs=True, max_tokens=12
    )
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.choices[0].message.content != completion.choices[1].message.content
    for choice in completion.choices:
        assert choice.finish_reason == "length"
        tokens = choice.logprobs.content
        assert len(tokens) == 12
        assert "".join(t.token for t in tokens) == choice.message.content
        assert all(t.logprob <= 0 and t.top_logprobs for t in tokens)
        assert tokens[0].top_logprobs[0].logprob >= tokens[0].top_logprobs[-1].logprob
    stream = sdk.chat.chat(
        model=MODEL,
        messages=user("Name a good habit"),
        n=2,
        logprobs=True,
        max_tokens=12,
        stream=True,
    )
    per_index: dict[int, str] = {0: "", 1: ""}
    for chunk in stream:
        for c in chunk.choices:
            per_index[c.index] += c.delta.content or ""
            assert c.logprobs is not None and len(c.logprobs.content) == 1
    assert per_index == {i: completion.choices[i].message.content for i in (0, 1)}


def test_completions(sdk: Any) -> None:
    completion = sdk.completions.create(model=MODEL, prompt="Write a tagline for a bakery")
    assert isinstance(completion, writerai.types.Completion)
    assert completion.model == MODEL and "bakery" in completion.choices[0].text
    assert completion.choices[0].log_probs is None
    stream = sdk.completions.create(model=MODEL, prompt="Write a tagline for a bakery", stream=True)
    values = [chunk.value for chunk in stream]
    assert values[0] == "" and "".join(values) == completion.choices[0].text
    best = sdk.completions.create(
        model=MODEL, prompt="Write a tagline for a bakery", best_of=3, max_tokens=8
    )
    assert best.choices[0].text


def test_tool_calls(sdk: Any) -> None:
    completion = sdk.chat.chat(
        model=MODEL, messages=user("Call get_weather for Lisbon"), tools=[WEATHER_TOOL]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id.startswith("chatcmpl-tool-") and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Lisbon"}

    stream = sdk.chat.chat(
        model=MODEL,
        messages=user("Call get_weather for Lisbon"),
        tools=[WEATHER_TOOL],
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        for piece in choice.delta.tool_calls or []:
            entry = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            if piece.id:
                entry["id"] = piece.id
            if piece.function and piece.function.name:
                entry["name"] = piece.function.name
            if piece.function and isinstance(piece.function.arguments, str):
                entry["arguments"] += piece.function.arguments
        finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert calls[0]["name"] == "get_weather" and calls[0]["id"].startswith("chatcmpl-tool-")
    assert json.loads(calls[0]["arguments"]) == {"city": "Lisbon"}


def test_builtin_tool_data(sdk: Any) -> None:
    tool = {"type": "web_search", "function": {"include_domains": [], "exclude_domains": []}}
    completion = sdk.chat.chat(model=MODEL, messages=user("Solar panels"), tools=[tool])
    sources = completion.choices[0].message.web_search_data.sources
    assert sources and sources[0].url.startswith("https://example.org/")
    translation = {
        "type": "translation",
        "function": {
            "model": "palmyra-translate",
            "formality": True,
            "length_control": False,
            "mask_profanity": False,
            "target_language_code": "es",
        },
    }
    chunks = list(
        sdk.chat.chat(
            model=MODEL, messages=user("Translate: hello friend"), tools=[translation], stream=True
        )
    )
    delta = chunks[0].choices[0].delta
    assert delta.content == "[es] hola amigo"
    assert delta.translation_data.target_language_code == "es"


def test_json_schema_with_parse(sdk: Any) -> None:
    pydantic = pytest.importorskip("pydantic")

    class Step(pydantic.BaseModel):  # type: ignore[misc,name-defined]
        title: str
        minutes: int

    class Recipe(pydantic.BaseModel):  # type: ignore[misc,name-defined]
        name: str
        steps: list[Step]

    parsed = sdk.chat.parse(model=MODEL, messages=user("A pancake recipe"), response_format=Recipe)
    recipe = parsed.choices[0].message.parsed
    assert isinstance(recipe, Recipe) and "pancake" in recipe.name.lower()
    assert all(isinstance(s, Step) for s in recipe.steps)


@pytest.mark.parametrize(
    ("kwargs", "headers", "error"),
    [
        ({"temperature": 5}, {}, "BadRequestError"),
        ({"model": "palmyra-med"}, {}, "NotFoundError"),
        ({}, {"X-Mock-Fault": "429:retry-after=0.1"}, "RateLimitError"),
        ({}, {"X-Mock-Fault": "500"}, "InternalServerError"),
        ({}, {"X-Mock-Fault": "503"}, "InternalServerError"),
    ],
)
def test_error_classes(
    sdk: Any, kwargs: dict[str, Any], headers: dict[str, str], error: str
) -> None:
    arguments = {"model": MODEL, "messages": user("hi"), **kwargs}
    with pytest.raises(getattr(writerai, error)) as caught:
        sdk.chat.chat(**arguments, extra_headers=headers)
    body = caught.value.body
    assert isinstance(body, dict) and body["errors"][0]["description"]
    if error == "RateLimitError":
        assert caught.value.response.headers["retry-after"] == "0.1"


def test_removed_model_message(sdk: Any) -> None:
    with pytest.raises(writerai.NotFoundError) as caught:
        sdk.completions.create(model="palmyra-fin", prompt="hi")
    assert caught.value.status_code == 404
    assert "removed on 2026-07-13; use palmyra-x5" in str(caught.value)


def test_authentication_error() -> None:
    from writer_magics.server import start_server

    with start_server(api_key="right") as server:
        client = writerai.Writer(api_key="wrong", base_url=server.url, max_retries=0, timeout=5)
        with pytest.raises(writerai.AuthenticationError) as caught:
            client.chat.chat(model=MODEL, messages=user("hi"))
        assert caught.value.body["tpe"] == "Unauthorized"
        good = writerai.Writer(api_key="right", base_url=server.url, max_retries=0, timeout=5)
        assert good.chat.chat(model=MODEL, messages=user("hi")).choices[0].message.content


def test_sdk_retries_counted_fault(server: ServerHandle) -> None:
    client = writerai.Writer(api_key="test", base_url=server.url, max_retries=2, timeout=5)
    completion = client.chat.chat(
        model=MODEL, messages=user("Retry me [[fault:429:retry-after=0.05x2]]")
    )
    assert completion.choices[0].message.content
    requests = server.wait_for_requests(3)
    assert [r.status for r in requests] == [429, 429, 200]
    assert [r.headers["x-stainless-retry-count"] for r in requests] == ["0", "1", "2"]


def test_mid_stream_error_event(sdk: Any) -> None:
    stream = sdk.chat.chat(model=MODEL, messages=user("hi [[fault:error-event]]"), stream=True)
    received = []
    with pytest.raises(writerai.APIStatusError) as caught:
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    assert caught.value.body["tpe"] == "InternalServerError"
