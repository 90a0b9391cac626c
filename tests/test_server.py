"""The bundled Writer-compatible server, exercised over real HTTP with httpx."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from writer_magics.server import ServerHandle, protocol, service, start_server

MODEL = "palmyra-x5"
TIMEOUT = httpx.Timeout(5.0)


@pytest.fixture
def client(server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def chat_body(text: str = "Tell me about camping gear", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": user(text), **extra}


def sse_data(text: str) -> list[str]:
    """The ``data`` of each SSE event (events without a data line are skipped)."""
    out = []
    for block in text.split("\n\n"):
        lines = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
        if lines:
            out.append("\n".join(lines))
    return out


def chunks(text: str) -> list[dict[str, Any]]:
    return [json.loads(d) for d in sse_data(text) if d != "[DONE]"]


def streamed_text(events: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(
        c["delta"]["content"] or "" for e in events for c in e["choices"] if c["index"] == index
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"tpe", "errors", "extras"}
    assert body["extras"] == {}
    (error,) = body["errors"]
    assert set(error) == {"description", "key", "extras"}
    result: dict[str, Any] = body
    return result


# --------------------------------------------------------------------------- shapes


def test_models_list(client: httpx.Client) -> None:
    r = client.get("/v1/models")
    assert r.status_code == 200
    assert r.json() == {
        "models": [
            {"id": "palmyra-x5", "name": "Palmyra X5"},
            {"id": "palmyra-x4", "name": "Palmyra X4"},
        ]
    }


def test_chat_non_streaming_shape(client: httpx.Client) -> None:
    r = client.post("/v1/chat", json=chat_body())
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == MODEL
    assert body["system_fingerprint"] == "v1"
    assert body["service_tier"] == "standard"
    assert isinstance(body["created"], int) and len(body["id"]) == 36
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["logprobs"] is None
    message = choice["message"]
    assert set(message) == {
        "role",
        "content",
        "refusal",
        "tool_calls",
        "graph_data",
        "llm_data",
        "translation_data",
        "web_search_data",
    }
    assert message["role"] == "assistant" and message["refusal"] is None
    assert message["tool_calls"] is None
    assert message["graph_data"] == {"sources": None, "status": None, "subqueries": None}
    assert "camping" in message["content"] and "**" in message["content"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_token_details"] == {"cached_tokens": 0}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_chat_stream_shape_matches_non_streaming(client: httpx.Client) -> None:
    full = client.post("/v1/chat", json=chat_body()).json()
    r = client.post("/v1/chat", json=chat_body(stream=True))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    data = sse_data(r.text)
    assert data[-1] == "[DONE]"
    events = chunks(r.text)
    for e in events:
        assert e["object"] == "chat.completion.chunk"
        assert e["usage"] is None and e["model"] == MODEL
        (c,) = e["choices"]
        assert set(c) == {"index", "finish_reason", "logprobs", "delta"}
        delta = c["delta"]
        assert delta["role"] == "assistant" and delta["tool_calls"] is None
        assert delta["graph_data"] == {"sources": None, "status": None, "subqueries": None}
        assert delta["llm_data"] is None and delta["translation_data"] is None
        assert delta["refusal"] is None
    assert len({e["id"] for e in events}) == len(events)
    assert [e["choices"][0]["finish_reason"] for e in events][-1] == "stop"
    assert all(e["choices"][0]["finish_reason"] is None for e in events[:-1])
    assert streamed_text(events) == full["choices"][0]["message"]["content"]


def test_usage_chunk(client: httpx.Client) -> None:
    full = client.post("/v1/chat", json=chat_body()).json()
    r = client.post("/v1/chat", json=chat_body(stream=True, stream_options={"include_usage": True}))
    events = chunks(r.text)
    last = events[-1]
    assert last["choices"] == [] and last["object"] == "chat.completion.chunk"
    assert last["usage"] == full["usage"]
    assert all(e["usage"] is None for e in events[:-1])
    assert sse_data(r.text)[-1] == "[DONE]"


@pytest.mark.parametrize("how", ["header", "marker"])
def test_no_done(client: httpx.Client, how: str) -> None:
    if how == "header":
        r = client.post(
            "/v1/chat", json=chat_body(stream=True), headers={"X-Mock-Fault": "no-done"}
        )
    else:
        r = client.post("/v1/chat", json=chat_body("Hi [[fault:no-done]]", stream=True))
    data = sse_data(r.text)
    assert "[DONE]" not in data
    assert json.loads(data[-1])["choices"][0]["finish_reason"] == "stop"


def test_completions_shapes(client: httpx.Client) -> None:
    body = {"model": MODEL, "prompt": "Write a tagline for an ice cream shop"}
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200
    full = r.json()
    assert set(full) == {"choices", "model"} and full["model"] == MODEL
    (choice,) = full["choices"]
    assert set(choice) == {"text", "log_probs"} and choice["log_probs"] is None
    assert "cream" in choice["text"]
    s = client.post("/v1/completions", json={**body, "stream": True})
    assert s.headers["content-type"].startswith("text/event-stream")
    data = sse_data(s.text)
    assert data[-1] == "[DONE]"
    values = [json.loads(d) for d in data[:-1]]
    assert values[0] == {"value": ""}
    assert all(set(v) == {"value"} for v in values)
    assert "".join(v["value"] for v in values) == choice["text"]


def test_completions_default_max_tokens(client: httpx.Client) -> None:
    text = client.post(
        "/v1/completions", json={"model": MODEL, "prompt": "List ten reasons to learn SQL"}
    ).json()["choices"][0]["text"]
    longer = client.post(
        "/v1/completions",
        json={"model": MODEL, "prompt": "List ten reasons to learn SQL", "max_tokens": 1000},
    ).json()["choices"][0]["text"]
    assert len(longer) > len(text) and longer.startswith(text)


# --------------------------------------------------------------------------- generation


def content(client: httpx.Client, body: dict[str, Any]) -> str:
    r = client.post("/v1/chat", json=body)
    assert r.status_code == 200, r.text
    text: str = r.json()["choices"][0]["message"]["content"]
    return text


def test_deterministic_and_seeded(client: httpx.Client) -> None:
    body = chat_body("Explain gradient descent", random_seed=1)
    assert content(client, body) == content(client, body)
    others = {content(client, {**body, "random_seed": seed}) for seed in range(2, 6)}
    assert len(others - {content(client, body)}) >= 3


def test_markers_are_stripped_and_do_not_change_text(client: httpx.Client) -> None:
    plain = content(client, chat_body("Explain gradient descent"))
    marked = content(client, chat_body("Explain gradient descent [[latency:0.01]]"))
    assert plain == marked and "[[" not in marked


def test_conversation_is_visible(client: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "You are a friendly pirate."},
        {"role": "user", "content": "Recommend camping gear"},
        {"role": "assistant", "content": "Take a tent."},
        {"role": "user", "content": "Give me three ideas for a hiking trip in Norway"},
    ]
    text = content(client, {"model": MODEL, "messages": messages})
    assert "pirate" in text
    assert "turn 2" in text and "camping" in text.lower()
    assert text.count("\n- ") == 3 and "Norway" in text


def test_code_request_has_code_block(client: httpx.Client) -> None:
    text = content(client, chat_body("Write a python function to count words", temperature=0))
    assert "```python\n" in text and "def count_words(" in text


def test_temperature_zero_is_greedy(client: httpx.Client) -> None:
    r = client.post(
        "/v1/chat", json=chat_body("Explain caching", temperature=0, logprobs=True)
    ).json()
    entries = r["choices"][0]["logprobs"]["content"]
    assert all(e["token"] == e["top_logprobs"][0]["token"] for e in entries)


def test_max_tokens_length(client: httpx.Client) -> None:
    full = content(client, chat_body())
    r = client.post("/v1/chat", json=chat_body(max_tokens=5)).json()
    assert r["choices"][0]["finish_reason"] == "length"
    assert r["usage"]["completion_tokens"] == 5
    cut = r["choices"][0]["message"]["content"]
    assert full.startswith(cut) and len(cut) < len(full)
    s = client.post("/v1/chat", json=chat_body(max_tokens=5, stream=True))
    events = chunks(s.text)
    assert len(events) == 5 and events[-1]["choices"][0]["finish_reason"] == "length"
    assert streamed_text(events) == cut


@pytest.mark.parametrize("stop", ["camping", ["zzz", "**"]])
def test_stop_sequences(client: httpx.Client, stop: str | list[str]) -> None:
    full = content(client, chat_body())
    r = client.post("/v1/chat", json=chat_body(stop=stop)).json()
    choice = r["choices"][0]
    text = choice["message"]["content"]
    first = min(full.find(s) for s in ([stop] if isinstance(stop, str) else stop) if s in full)
    assert choice["finish_reason"] == "stop"
    assert text == full[:first]
    s = client.post("/v1/chat", json=chat_body(stop=stop, stream=True))
    assert streamed_text(chunks(s.text)) == text


def test_n_choices(client: httpx.Client) -> None:
    r = client.post("/v1/chat", json=chat_body(n=3)).json()
    texts = [c["message"]["content"] for c in r["choices"]]
    assert [c["index"] for c in r["choices"]] == [0, 1, 2]
    assert len(set(texts)) == 3
    assert texts[0] == content(client, chat_body())
    s = client.post("/v1/chat", json=chat_body(n=3, stream=True))
    events = chunks(s.text)
    for i in range(3):
        assert streamed_text(events, i) == texts[i]
        finals = [c["finish_reason"] for e in events for c in e["choices"] if c["index"] == i]
        assert finals[-1] == "stop" and set(finals[:-1]) == {None}


def test_best_of_returns_most_probable(client: httpx.Client) -> None:
    body = {"model": MODEL, "prompt": "Describe a lighthouse", "best_of": 4}
    text = client.post("/v1/completions", json=body).json()["choices"][0]["text"]
    candidates = service.completion_candidates(protocol.parse_completion(body), body)
    best = max(candidates, key=lambda c: c.total_logprob())
    assert text == best.text
    assert len({c.text for c in candidates}) > 1
    single = client.post("/v1/completions", json={**body, "best_of": 1}).json()
    assert single["choices"][0]["text"] == candidates[0].text


def check_logprob_entries(entries: list[dict[str, Any]]) -> None:
    for e in entries:
        assert 0 < math.exp(e["logprob"]) <= 1
        assert e["bytes"] == list(e["token"].encode())
        tops = [t["logprob"] for t in e["top_logprobs"]]
        assert tops == sorted(tops, reverse=True)
        assert e["token"] in [t["token"] for t in e["top_logprobs"]]
        assert math.isclose(sum(math.exp(t) for t in tops), 1.0, rel_tol=1e-6)


def test_logprobs(client: httpx.Client) -> None:
    r = client.post("/v1/chat", json=chat_body(logprobs=True)).json()
    choice = r["choices"][0]
    entries = choice["logprobs"]["content"]
    assert choice["logprobs"]["refusal"] is None
    assert "".join(e["token"] for e in entries) == choice["message"]["content"]
    check_logprob_entries(entries)
    assert any(len(e["top_logprobs"]) > 1 for e in entries)
    s = client.post("/v1/chat", json=chat_body(logprobs=True, stream=True))
    streamed = [e["choices"][0]["logprobs"]["content"][0] for e in chunks(s.text)]
    assert streamed == entries


def test_temperature_sharpens_distribution(client: httpx.Client) -> None:
    def mean_top(t: float) -> float:
        r = client.post("/v1/chat", json=chat_body(logprobs=True, temperature=t)).json()
        entries = r["choices"][0]["logprobs"]["content"]
        return sum(math.exp(e["top_logprobs"][0]["logprob"]) for e in entries) / len(entries)

    assert mean_top(0.2) > mean_top(1.0) > mean_top(2.0)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("path", "body", "key", "words"),
    [
        ("/v1/chat", {"messages": user("hi")}, "error.validation.required", "model"),
        ("/v1/chat", {"model": MODEL}, "error.validation.required", "messages"),
        ("/v1/chat", {"model": MODEL, "messages": []}, "error.validation.min_items", "messages"),
        (
            "/v1/chat",
            {"model": MODEL, "messages": "hi"},
            "error.validation.invalid_type",
            "messages",
        ),
        ("/v1/completions", {"model": MODEL}, "error.validation.required", "prompt"),
        (
            "/v1/completions",
            {"model": MODEL, "prompt": 3},
            "error.validation.invalid_type",
            "prompt",
        ),
        ({"/v1/chat"}, {"temperature": "hot"}, "error.validation.invalid_type", "temperature"),
        ({"/v1/chat"}, {"temperature": 2.5}, "error.validation.out_of_range", "temperature"),
        ({"/v1/chat"}, {"top_p": 1.5}, "error.validation.out_of_range", "top_p"),
        ({"/v1/chat"}, {"max_tokens": 0}, "error.validation.out_of_range", "max_tokens"),
        ({"/v1/chat"}, {"max_tokens": 1.5}, "error.validation.invalid_type", "max_tokens"),
        ({"/v1/chat"}, {"n": 6}, "error.validation.out_of_range", "n"),
        ({"/v1/chat"}, {"n": True}, "error.validation.invalid_type", "n"),
        ({"/v1/chat"}, {"stop": 5}, "error.validation.invalid_type", "stop"),
        ({"/v1/chat"}, {"stream": "yes"}, "error.validation.invalid_type", "stream"),
        ({"/v1/chat"}, {"stream_options": {}}, "error.validation.invalid_type", "stream_options"),
        ({"/v1/chat"}, {"tool_choice": "maybe"}, "error.validation.invalid_value", "tool_choice"),
        (
            {"/v1/chat"},
            {"response_format": {"type": "json_object"}},
            "error.validation.invalid_value",
            "response_format",
        ),
        (
            {"/v1/chat"},
            {"messages": [{"role": "robot", "content": "hi"}]},
            "error.validation.invalid_role",
            "role",
        ),
        ({"/v1/completions"}, {"best_of": 0}, "error.validation.out_of_range", "best_of"),
        (
            {"/v1/chat"},
            {
                "tools": [
                    {
                        "type": "web_search",
                        "function": {"include_domains": [], "exclude_domains": []},
                    },
                    {"type": "llm", "function": {"model": MODEL, "description": "x"}},
                ]
            },
            "error.validation.multiple_builtin_tools",
            "built-in",
        ),
    ],
)
def test_validation_errors(
    client: httpx.Client, path: Any, body: dict[str, Any], key: str, words: str
) -> None:
    if isinstance(path, set):  # a valid base body with one field overridden
        (path,) = path
        base = chat_body() if path == "/v1/chat" else {"model": MODEL, "prompt": "hi"}
        body = {**base, **body}
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert err["tpe"] == "BadRequest"
    assert err["errors"][0]["key"] == key
    assert words in err["errors"][0]["description"]


def test_invalid_json(client: httpx.Client) -> None:
    r = client.post("/v1/chat", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert error_of(r)["errors"][0]["key"] == "error.request.invalid_json"


def test_unknown_model_and_route(client: httpx.Client) -> None:
    r = client.post("/v1/chat", json={**chat_body(), "model": "gpt-4"})
    assert r.status_code == 404
    err = error_of(r)
    assert err["tpe"] == "NotFound" and "palmyra-x5" in err["errors"][0]["description"]
    assert client.post("/v1/nope", json={}).status_code == 404


@pytest.mark.parametrize("model", protocol.REMOVED_MODELS)
def test_removed_models(client: httpx.Client, model: str) -> None:
    r = client.post("/v1/completions", json={"model": model, "prompt": "hi"})
    assert r.status_code == 404
    err = error_of(r)
    assert err["tpe"] == "NotFound"
    description = err["errors"][0]["description"]
    assert "removed on 2026-07-13" in description and "use palmyra-x5" in description


def test_auth() -> None:
    with start_server(api_key="secret") as s, httpx.Client(base_url=s.url, timeout=TIMEOUT) as c:
        missing = c.post("/v1/chat", json=chat_body())
        wrong = c.post("/v1/chat", json=chat_body(), headers={"Authorization": "Bearer nope"})
        right = c.post("/v1/chat", json=chat_body(), headers={"Authorization": "Bearer secret"})
        assert missing.status_code == wrong.status_code == 401
        assert error_of(wrong)["tpe"] == "Unauthorized"
        assert "secret" not in wrong.text
        assert right.status_code == 200
        assert c.get("/v1/models").status_code == 401


def test_request_log(server: ServerHandle, client: httpx.Client) -> None:
    client.post("/v1/chat", json=chat_body(), headers={"X-Custom": "1"})
    (record,) = server.wait_for_requests(1)
    assert record.method == "POST" and record.path == "/v1/chat"
    assert record.headers["x-custom"] == "1" and "content-type" in record.headers
    assert record.body == chat_body()
    assert record.status == 200 and not record.disconnected
    assert record.ended is not None and record.ended >= record.started
    server.clear()
    assert server.requests == []


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("fault", "status", "tpe"),
    [
        ("500", 500, "InternalServerError"),
        ("503", 503, "ServiceUnavailable"),
        ("408", 408, "RequestTimeout"),
        ("409", 409, "Conflict"),
    ],
)
def test_status_faults(client: httpx.Client, fault: str, status: int, tpe: str) -> None:
    r = client.post("/v1/chat", json=chat_body(), headers={"X-Mock-Fault": fault})
    assert r.status_code == status and error_of(r)["tpe"] == tpe
    m = client.post("/v1/completions", json={"model": MODEL, "prompt": f"x [[fault:{fault}]]"})
    assert m.status_code == status


@pytest.mark.parametrize(
    ("fault", "header", "value"),
    [
        ("429", "retry-after", "1"),
        ("429:retry-after=0.2", "retry-after", "0.2"),
        ("429:retry-after-ms=150", "retry-after-ms", "150"),
    ],
)
def test_rate_limit_fault(client: httpx.Client, fault: str, header: str, value: str) -> None:
    r = client.post("/v1/chat", json=chat_body(f"hi [[fault:{fault}]]", stream=True))
    assert r.status_code == 429 and r.headers[header] == value
    assert error_of(r)["tpe"] == "TooManyRequests"


def test_counted_fault_marker_then_success(client: httpx.Client) -> None:
    body = chat_body("Explain retries [[fault:503x2]]")
    statuses = [client.post("/v1/chat", json=body).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    other = chat_body("Another question [[fault:503x2]]")
    assert client.post("/v1/chat", json=other).status_code == 503


def test_counted_fault_header(server: ServerHandle, client: httpx.Client) -> None:
    headers = {"X-Mock-Fault": "429:retry-after=0.1", "X-Mock-Fault-Times": "1"}
    first = client.post("/v1/chat", json=chat_body(), headers=headers)
    second = client.post("/v1/chat", json=chat_body(), headers=headers)
    assert (first.status_code, second.status_code) == (429, 200)
    server.clear()  # clear() also resets the counters
    assert client.post("/v1/chat", json=chat_body(), headers=headers).status_code == 429


def test_unknown_fault_is_rejected(client: httpx.Client) -> None:
    r = client.post("/v1/chat", json=chat_body(), headers={"X-Mock-Fault": "explode"})
    assert r.status_code == 400 and "explode" in r.text


def test_drop_fault(server: ServerHandle, client: httpx.Client) -> None:
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream("POST", "/v1/chat", json=chat_body("hi [[fault:drop]]", stream=True)) as r,
    ):
        assert r.status_code == 200
        received.extend(r.iter_lines())
    assert 1 <= len([line for line in received if line.startswith("data: ")]) <= 3
    (record,) = server.wait_for_requests(1)
    assert record.status == 200


def test_drop_fault_non_streaming(client: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/chat", json=chat_body(), headers={"X-Mock-Fault": "drop"})


def test_malformed_fault(client: httpx.Client) -> None:
    r = client.post("/v1/chat", json=chat_body("hi [[fault:malformed]]", stream=True))
    data = sse_data(r.text)
    assert len(data) == 4 and data[-1] == "{not json"
    for d in data[:3]:
        json.loads(d)


def test_error_event_fault(client: httpx.Client) -> None:
    r = client.post(
        "/v1/chat", json=chat_body(stream=True), headers={"X-Mock-Fault": "error-event"}
    )
    blocks = [b for b in r.text.split("\n\n") if b]
    assert len(blocks) == 4 and blocks[-1].startswith("event: error\ndata: ")
    body = json.loads(blocks[-1].split("data: ", 1)[1])
    assert body["tpe"] == "InternalServerError" and body["errors"][0]["description"]


def test_stall_fault_and_disconnect(server: ServerHandle) -> None:
    body = chat_body("hi [[fault:stall]]", stream=True)
    timeout = httpx.Timeout(5.0, read=0.5)
    started = time.monotonic()
    with (
        httpx.Client(base_url=server.url, timeout=timeout) as c,
        pytest.raises(httpx.ReadTimeout),
        c.stream("POST", "/v1/chat", json=body) as r,
    ):
        for _ in r.iter_lines():
            pass
    (record,) = server.wait_for_requests(1, timeout=3)
    assert record.disconnected and record.status == 200
    assert record.ended is not None and record.ended - started < 3


def test_client_disconnect_is_recorded(server: ServerHandle) -> None:
    headers = {"X-Mock-Tokens-Per-Second": "50"}
    with (
        httpx.Client(base_url=server.url, timeout=TIMEOUT) as c,
        c.stream("POST", "/v1/chat", json=chat_body(stream=True), headers=headers) as r,
    ):
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
    (record,) = server.wait_for_requests(1, timeout=3)
    assert record.disconnected and record.ended is not None


def test_latency(client: httpx.Client) -> None:
    started = time.monotonic()
    client.post("/v1/chat", json=chat_body(), headers={"X-Mock-Latency": "0.3"})
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    client.post("/v1/chat", json=chat_body("hi [[latency:0.2]]"))
    assert time.monotonic() - started >= 0.2


def test_server_wide_latency_and_pacing() -> None:
    with (
        start_server(latency=0.2, tokens_per_second=100) as s,
        httpx.Client(base_url=s.url, timeout=TIMEOUT) as c,
    ):
        started = time.monotonic()
        r = c.post("/v1/chat", json=chat_body(max_tokens=20, stream=True))
        assert r.status_code == 200
        assert time.monotonic() - started >= 0.2 + 19 / 100


def test_pacing_spreads_chunks(client: httpx.Client) -> None:
    times = []
    with client.stream(
        "POST", "/v1/chat", json=chat_body("hi [[tps:40]]", max_tokens=6, stream=True)
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                times.append(time.monotonic())
    assert len(times) == 6 and times[-1] - times[0] >= 5 / 40 * 0.8


def test_stop_is_quick_while_stalled_and_keep_alive() -> None:
    s = start_server()
    idle = httpx.Client(base_url=s.url, timeout=TIMEOUT)
    assert idle.get("/v1/models").status_code == 200  # leaves a keep-alive connection

    def stalled() -> None:
        with (
            httpx.Client(base_url=s.url, timeout=TIMEOUT) as c,
            c.stream("POST", "/v1/chat", json=chat_body("hi [[fault:stall]]", stream=True)) as r,
        ):
            try:
                for _ in r.iter_lines():
                    pass
            except httpx.HTTPError:
                pass

    thread = threading.Thread(target=stalled, daemon=True)
    thread.start()
    deadline = time.monotonic() + 3
    while not s.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    started = time.monotonic()
    s.stop()
    assert time.monotonic() - started < 1.5
    thread.join(timeout=3)
    assert not thread.is_alive()
    idle.close()


# --------------------------------------------------------------------------- tools

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}


def test_tool_call_non_streaming(client: httpx.Client) -> None:
    body = chat_body("Use get_weather for Paris over 3 days in fahrenheit", tools=[WEATHER_TOOL])
    r = client.post("/v1/chat", json=body).json()
    choice = r["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    (call,) = message["tool_calls"]
    assert call["id"].startswith("chatcmpl-tool-") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {
        "city": "Paris",
        "days": 3,
        "unit": "fahrenheit",
    }
    assert r["usage"]["completion_tokens"] > 0


def test_tool_call_streamed_with_explicit_nulls(client: httpx.Client) -> None:
    body = chat_body("What does get_weather say for Oslo?", tools=[WEATHER_TOOL], stream=True)
    events = chunks(client.post("/v1/chat", json=body).text)
    pieces = [e["choices"][0]["delta"]["tool_calls"][0] for e in events]
    first, *rest = pieces
    assert first["index"] == 0 and first["id"].startswith("chatcmpl-tool-")
    assert first["type"] == "function"
    assert first["function"] == {"name": "get_weather", "arguments": None}
    assert rest and all(
        p["id"] is None
        and p["type"] is None
        and p["function"]["name"] is None
        and isinstance(p["function"]["arguments"], str)
        for p in rest
    )
    assert all(e["choices"][0]["delta"]["content"] is None for e in events)
    arguments = json.loads("".join(p["function"]["arguments"] for p in rest))
    assert arguments["city"] == "Oslo"
    assert [e["choices"][0]["finish_reason"] for e in events][-1] == "tool_calls"


def test_tool_round_trip_terminates(client: httpx.Client) -> None:
    messages = user("Check get_weather in Rome")
    first = client.post(
        "/v1/chat", json={"model": MODEL, "messages": messages, "tools": [WEATHER_TOOL]}
    ).json()["choices"][0]["message"]
    call = first["tool_calls"][0]
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "18C, cloudy"},
    ]
    r = client.post(
        "/v1/chat", json={"model": MODEL, "messages": messages, "tools": [WEATHER_TOOL]}
    )
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["tool_calls"] is None
    assert '"18C, cloudy"' in choice["message"]["content"]
    assert "get_weather" in choice["message"]["content"]


def test_tool_choice(client: httpx.Client) -> None:
    tools = [WEATHER_TOOL]
    none = client.post(
        "/v1/chat", json=chat_body("get_weather for Paris", tools=tools, tool_choice="none")
    ).json()["choices"][0]
    assert none["finish_reason"] == "stop" and none["message"]["tool_calls"] is None
    auto = client.post("/v1/chat", json=chat_body("Hello there", tools=tools)).json()
    assert auto["choices"][0]["finish_reason"] == "stop"
    required = client.post(
        "/v1/chat", json=chat_body("Hello there", tools=tools, tool_choice="required")
    ).json()["choices"][0]
    assert required["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    named = {"type": "function", "function": {"name": "get_weather"}}
    forced = client.post(
        "/v1/chat", json=chat_body("Hello there", tools=tools, tool_choice=named)
    ).json()["choices"][0]
    assert forced["finish_reason"] == "tool_calls"


def test_json_schema_output_validates(client: httpx.Client) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = {
        "type": "object",
        "$defs": {
            "Step": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "minutes": {"type": "integer", "minimum": 1},
                },
                "required": ["title", "minutes"],
                "additionalProperties": False,
            }
        },
        "properties": {
            "recipe": {"type": "string", "minLength": 3},
            "servings": {"type": "integer", "minimum": 2, "maximum": 6},
            "rating": {"type": "number", "maximum": 5},
            "vegan": {"type": "boolean"},
            "difficulty": {"enum": ["easy", "hard"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}},
            "source": {"anyOf": [{"type": "string", "format": "uri"}, {"type": "null"}]},
            "meta": {"type": "object", "properties": {"author": {"type": "string"}}},
        },
        "required": ["recipe", "servings", "steps"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "Recipe", "schema": schema}}
    for stream in (False, True):
        body = chat_body("A pancake recipe please", response_format=fmt, stream=stream)
        r = client.post("/v1/chat", json=body)
        text = (
            streamed_text(chunks(r.text))
            if stream
            else r.json()["choices"][0]["message"]["content"]
        )
        document = json.loads(text)
        jsonschema.validate(document, schema)
        assert "pancake" in text


def test_web_search_tool(client: httpx.Client) -> None:
    tool = {
        "type": "web_search",
        "function": {"include_domains": [], "exclude_domains": ["example.org"]},
    }
    r = client.post("/v1/chat", json=chat_body("Latest on solar panels", tools=[tool])).json()
    message = r["choices"][0]["message"]
    sources = message["web_search_data"]["sources"]
    assert sources and all(set(s) == {"url", "raw_content"} for s in sources)
    assert not any("example.org" in s["url"] for s in sources)
    # Issue 14 §17: the sources travel in web_search_data only (the view lists them)
    assert "https://" not in message["content"] and "Sources" not in message["content"]
    only = {
        "type": "web_search",
        "function": {"include_domains": ["docs.python.org"], "exclude_domains": []},
    }
    r = client.post("/v1/chat", json=chat_body("asyncio tasks", tools=[only], stream=True))
    events = chunks(r.text)
    last = events[-1]["choices"][0]["delta"]
    assert all(
        s["url"].startswith("https://docs.python.org/") for s in last["web_search_data"]["sources"]
    )
    assert all("web_search_data" not in e["choices"][0]["delta"] for e in events[:-1])


@pytest.mark.parametrize("subqueries", [True, False])
def test_graph_tool(client: httpx.Client, subqueries: bool) -> None:
    tool = {"type": "graph", "function": {"graph_ids": ["g1"], "subqueries": subqueries}}
    r = client.post("/v1/chat", json=chat_body("What is our refund policy?", tools=[tool])).json()
    data = r["choices"][0]["message"]["graph_data"]
    assert data["status"] == "finished" and data["sources"]
    assert all(set(s) == {"file_id", "snippet"} for s in data["sources"])
    assert bool(data["subqueries"]) is subqueries
    assert data["references"]["files"][0]["fileId"] == data["sources"][0]["file_id"]


def test_translation_tool(client: httpx.Client) -> None:
    tool = {
        "type": "translation",
        "function": {
            "model": "palmyra-translate",
            "formality": True,
            "length_control": False,
            "mask_profanity": False,
            "target_language_code": "fr",
        },
    }
    body = chat_body('Translate "Hello world, good morning"', tools=[tool])
    message = client.post("/v1/chat", json=body).json()["choices"][0]["message"]
    assert message["content"] == "[fr] Bonjour monde, bon matin"
    assert message["translation_data"] == {
        "source_language_code": "en",
        "source_text": "Hello world, good morning",
        "target_language_code": "fr",
    }
    events = chunks(client.post("/v1/chat", json={**body, "stream": True}).text)
    assert len(events) == 1  # the translation tool does not stream
    assert events[0]["choices"][0]["delta"]["translation_data"]["target_language_code"] == "fr"


def test_llm_tool(client: httpx.Client) -> None:
    tool = {"type": "llm", "function": {"model": "palmyra-x4", "description": "helper"}}
    message = client.post(
        "/v1/chat", json=chat_body("Summarise quantum computing", tools=[tool])
    ).json()["choices"][0]["message"]
    assert message["llm_data"] == {"prompt": "Summarise quantum computing", "model": "palmyra-x4"}
    assert "palmyra-x4" in message["content"]


def test_removed_vision_tool(client: httpx.Client) -> None:
    tool = {"type": "vision", "function": {"model": "palmyra-vision", "variables": []}}
    r = client.post("/v1/chat", json=chat_body(tools=[tool]))
    assert r.status_code == 404 and "2026-07-13" in r.text


# --------------------------------------------------------------------------- CLI


def test_cli_serves_and_stops_on_ctrl_c() -> None:
    code = "from writer_magics.server.cli import main; raise SystemExit(main(['--port', '0']))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert banner.startswith("Writer-compatible server on http://127.0.0.1:")
        url = banner.split(" on ", 1)[1].strip()
        assert httpx.get(f"{url}/v1/models", timeout=TIMEOUT).status_code == 200
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=5)
        assert proc.returncode == 0 and "Traceback" not in err
    finally:
        proc.kill()


@pytest.mark.parametrize("seed", range(8))
def test_web_search_answer_has_no_link_list_to_bend(client: httpx.Client, seed: int) -> None:
    """Issue 14 §17: the answer listed its sources a second time, and sampled prose
    bent a link into ``[2](https:./python.org/latest/2)``; now the text holds no links
    and every source URL is whole, even at a high temperature."""
    tool = {
        "type": "web_search",
        "function": {"include_domains": ["python.org"], "exclude_domains": []},
    }
    body = chat_body("What is latest in Python?", tools=[tool], temperature=2.0, random_seed=seed)
    message = client.post("/v1/chat", json=body).json()["choices"][0]["message"]
    text = message["content"]
    assert "](" not in text and "http" not in text and "Sources" not in text
    urls = [s["url"] for s in message["web_search_data"]["sources"]]
    assert urls == [f"https://python.org/latest/{i}" for i in (1, 2, 3)]


def test_builtin_tool_answers_count_what_their_data_holds(client: httpx.Client) -> None:
    """The same kind as §17: the graph answer said "3 files" whatever graph_data held."""
    graph = {"type": "graph", "function": {"graph_ids": ["g1"], "subqueries": False}}
    counts = set()
    for question in ("Refunds?", "Refund policy details?"):
        body = chat_body(question, tools=[graph], temperature=0)
        message = client.post("/v1/chat", json=body).json()["choices"][0]["message"]
        count = len(message["graph_data"]["sources"])
        counts.add(count)
        noun = "file" if count == 1 else "files"
        assert f" in {count} {noun}." in message["content"], message["content"]
    assert 1 in counts and len(counts) == 2
    web = {"type": "web_search", "function": {"include_domains": [], "exclude_domains": []}}
    body = chat_body("Latest on tides", tools=[web], temperature=0)
    message = client.post("/v1/chat", json=body).json()["choices"][0]["message"]
    assert f"found {len(message['web_search_data']['sources'])} sources." in message["content"]


def test_a_request_body_over_the_limit_is_refused_unread(server: ServerHandle) -> None:
    """A client announcing a huge body gets 413 at once (nothing is read or kept), and
    the server goes on answering others."""
    import http.client

    from writer_magics.server.http import MAX_REQUEST_BYTES

    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", "/v1/chat")
    connection.putheader("Authorization", "Bearer x")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(MAX_REQUEST_BYTES + 1))
    connection.endheaders()  # and no body: the answer must not wait for it
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["errors"][0]["description"].startswith("Request body over")
    connection.close()
    assert httpx.post(f"{server.url}/v1/chat", json=chat_body(), timeout=10).status_code == 200
