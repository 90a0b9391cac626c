"""The HTTP client against the bundled server on 127.0.0.1: retries, errors, timeouts,
cancellation and key safety. Counts and timings are read from the server's own log."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from writer_magics.answer.result import Accumulator
from writer_magics.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    MalformedEventError,
    NotFoundError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    ServerSentError,
    StreamInterrupted,
    WriterError,
    redact,
)
from writer_magics.request import chat_request, completion_request
from writer_magics.server import ServerHandle, start_server
from writer_magics.transport.client import ClientSettings, WriterClient, is_loopback, retry_wait
from writer_magics.transport.events import Event, Retrying, TextDelta
from writer_magics.transport.loop import LoopThread

KEY = "sk-client-test-SECRET-42"


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def make_client(server: ServerHandle, **overrides: Any) -> WriterClient:
    settings: dict[str, Any] = {"base_url": server.url, "api_key": KEY, "max_retries": 2}
    settings.update(overrides)
    return WriterClient(ClientSettings(**settings))


def chat_body(text: str, **extra: Any) -> dict[str, Any]:
    return chat_request(
        model=extra.pop("model", "palmyra-x5"),
        messages=[{"role": "user", "content": text}],
        **extra,
    )


def collect(
    loop: LoopThread, client: WriterClient, body: dict[str, Any], endpoint: Any = "chat"
) -> tuple[Accumulator, BaseException | None]:
    """Run one request to the end; return what arrived and the error that ended it."""
    acc = Accumulator()
    error: BaseException | None = None
    for item in loop.merge({0: lambda: client.events(endpoint, body)}):
        if item.error is not None:
            error = item.error
        elif item.value is not None:
            acc.add(item.value)
    loop.run(client.aclose)
    return acc, error


def test_streamed_chat_arrives_in_pieces_with_usage(loop: LoopThread, server: ServerHandle) -> None:
    acc, error = collect(loop, make_client(server), chat_body("Explain tokens"))
    assert error is None
    assert len(acc.choice(0).text) > 20
    assert acc.choice(0).finish_reason in ("stop", "length")
    assert acc.usage is not None and acc.usage.completion_tokens
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["stream"] is True


def test_non_streaming_chat_and_completions(loop: LoopThread, server: ServerHandle) -> None:
    acc, error = collect(loop, make_client(server), chat_body("Hello", stream=False))
    assert error is None and acc.choice(0).text
    body = completion_request(model="palmyra-x5", prompt="Once upon a time", stream=False)
    acc, error = collect(loop, make_client(server), body, "completions")
    assert error is None and acc.choice(0).text


def test_retries_503_then_succeeds(loop: LoopThread, server: ServerHandle) -> None:
    acc, error = collect(loop, make_client(server), chat_body("Hi [[fault:503x2]]"))
    assert error is None and acc.choice(0).text
    statuses = [r.status for r in server.requests]
    assert statuses == [503, 503, 200]


def test_retry_after_header_is_honoured(loop: LoopThread, server: ServerHandle) -> None:
    _, error = collect(loop, make_client(server), chat_body("Hi [[fault:429:retry-after=0.4x1]]"))
    assert error is None
    first, second = server.requests
    gap = second.started - first.started
    assert 0.4 <= gap < 1.5


def test_retry_after_ms_is_honoured() -> None:
    import httpx

    response = httpx.Response(429, headers={"retry-after-ms": "150"})
    assert retry_wait(response, 0, 60) == pytest.approx(0.15)
    too_long = httpx.Response(429, headers={"retry-after": "120"})
    assert 0.75 <= retry_wait(too_long, 0, 60) <= 1.0  # over the cap: backoff instead


@pytest.mark.parametrize(
    "header", ["x", "", "Mon, 99 Foo 2026", "sk-not-a-date-0123456789", "nan", "inf", "-3"]
)
def test_unparseable_retry_after_falls_back_to_backoff(header: str) -> None:
    import httpx

    response = httpx.Response(429, headers={"retry-after": header})
    assert 0.75 <= retry_wait(response, 0, 60) <= 1.0


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        ("127.evil.example", False),
        ("localhost.evil.example", False),
        ("127.1", False),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_loopback_is_a_literal_address_or_exactly_localhost(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_redaction_catches_whole_cut_and_escaped_keys() -> None:
    key = 'wk-abc"def\\ghi-0123456789'
    assert KEY not in redact(f"key={KEY}!", [KEY])
    cut = f"...and then {KEY[:11]}"  # a message truncated in the middle of the key
    assert redact(cut, [KEY]) == "...and then [REDACTED]"
    escaped = json.dumps({"k": key})
    assert "abc" not in redact(escaped, [key])
    assert redact("Authorization: Bearer abc.def", []) == "Authorization: Bearer [REDACTED]"
    assert redact("short key abc", ["abc"]) == "short key abc"  # under 4 characters: kept


def test_settings_strip_the_key_and_the_url() -> None:
    settings = ClientSettings(base_url=" http://127.0.0.1:1 \n", api_key=f"  {KEY}\r\n")
    assert settings.api_key == KEY
    assert settings.base_url == "http://127.0.0.1:1"
    assert ClientSettings(api_key=" \n").api_key is None


def test_rate_limit_after_retries_run_out(loop: LoopThread, server: ServerHandle) -> None:
    client = make_client(server, max_retries=1)
    _, error = collect(loop, client, chat_body("Hi [[fault:429:retry-after=0.05]]"))
    assert isinstance(error, RateLimitError)
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_not_retried(loop: LoopThread, server: ServerHandle, status: int) -> None:
    _, error = collect(loop, make_client(server), chat_body(f"Hi [[fault:{status}]]"))
    assert isinstance(error, WriterError)
    assert len(server.requests) == 1


def test_no_retry_once_text_was_shown(loop: LoopThread, server: ServerHandle) -> None:
    acc, error = collect(loop, make_client(server), chat_body("Tell me more [[fault:drop]]"))
    assert isinstance(error, StreamInterrupted)
    assert "kept" in str(error)
    assert acc.choice(0).text  # the partial text is there
    assert len(server.requests) == 1


def test_malformed_and_error_events_mid_stream(loop: LoopThread, server: ServerHandle) -> None:
    acc, error = collect(loop, make_client(server), chat_body("Hi [[fault:malformed]]"))
    assert isinstance(error, MalformedEventError) and acc.choice(0).text
    acc, error = collect(loop, make_client(server), chat_body("Hi [[fault:error-event]]"))
    assert isinstance(error, ServerSentError) and acc.choice(0).text


def test_stream_without_done_ends_cleanly(loop: LoopThread, server: ServerHandle) -> None:
    acc, error = collect(loop, make_client(server), chat_body("Hi [[fault:no-done]]"))
    assert error is None and acc.choice(0).finish_reason is not None


def test_bad_request_shows_writers_description(loop: LoopThread, server: ServerHandle) -> None:
    body = chat_body("Hi")
    body["temperature"] = 7
    _, error = collect(loop, make_client(server), body)
    assert isinstance(error, BadRequestError)
    assert "temperature" in str(error)


def test_removed_model_404_suggests_palmyra_x5(loop: LoopThread, server: ServerHandle) -> None:
    _, error = collect(loop, make_client(server), chat_body("Hi", model="palmyra-med"))
    assert isinstance(error, NotFoundError)
    assert "palmyra-x5" in "\n".join(error.lines())


def test_wrong_key_is_an_authentication_error_without_the_key() -> None:
    with start_server(api_key="the-right-key") as server:
        thread = LoopThread()
        try:
            _, error = collect(thread, make_client(server), chat_body("Hi"))
        finally:
            thread.close()
    assert isinstance(error, AuthenticationError)
    assert KEY not in "\n".join(error.lines())


def test_read_timeout_mid_stream_keeps_text(loop: LoopThread, server: ServerHandle) -> None:
    client = make_client(server, read_timeout=0.5)
    started = time.monotonic()
    acc, error = collect(loop, client, chat_body("Hi [[fault:stall:10]]"))
    assert isinstance(error, RequestTimeoutError)
    assert time.monotonic() - started < 5
    assert acc.choice(0).text
    assert len(server.requests) == 1


def test_connection_refused_is_retried_then_reported(loop: LoopThread) -> None:
    with start_server() as server:
        url = server.url
    client = WriterClient(ClientSettings(base_url=url, api_key=KEY, max_retries=1))
    _, error = collect(loop, client, chat_body("Hi"))
    assert isinstance(error, APIConnectionError)
    assert url in str(error)


def test_cancellation_closes_the_http_stream(loop: LoopThread, server: ServerHandle) -> None:
    client = make_client(server)
    got_text = False
    started = time.monotonic()
    stream = loop.merge({0: lambda: client.events("chat", chat_body("Go [[tps:20]]"))})
    assert isinstance(stream, Generator)  # merge is a generator: close() cancels
    for item in stream:
        if isinstance(item.value, TextDelta):
            got_text = True
            break
    stream.close()  # what a KeyboardInterrupt in the cell does: cancel and wait
    assert got_text
    assert time.monotonic() - started < 3
    (request,) = server.wait_for_requests(1, timeout=5)
    assert request.disconnected
    loop.run(client.aclose)


def test_missing_key_sends_nothing(loop: LoopThread, server: ServerHandle) -> None:
    client = make_client(server, api_key=None)
    _, error = collect(loop, client, chat_body("Hi"))
    assert isinstance(error, ConfigurationError)
    assert "WRITER_API_KEY" in "\n".join(error.lines())
    assert server.requests == []


def test_plain_http_to_a_remote_host_is_refused(loop: LoopThread) -> None:
    client = WriterClient(ClientSettings(base_url="http://api.example.com", api_key=KEY))
    _, error = collect(loop, client, chat_body("Hi"))
    assert isinstance(error, ConfigurationError)
    assert "http://api.example.com" in str(error)
    assert KEY not in str(error)


def test_key_never_in_reprs_or_errors(loop: LoopThread, server: ServerHandle) -> None:
    settings = ClientSettings(base_url=server.url, api_key=KEY)
    assert KEY not in repr(settings)
    # A server that echoes the key back in its error must not get it onto the screen.
    error = ServerError(f"upstream said Bearer {KEY}", status=500).redacted([KEY])
    assert KEY not in "\n".join(error.lines())
    assert KEY not in "\n".join(error._render_traceback_())


def test_each_retry_is_an_event_before_its_wait(loop: LoopThread, server: ServerHandle) -> None:
    client = make_client(server)  # max_retries=2: three attempts in all
    body = chat_body("Hi [[fault:500:retry-after=0.05x2]]")
    seen = [item.value for item in loop.merge({0: lambda: client.events("chat", body)})]
    retries = [e for e in seen if isinstance(e, Retrying)]
    assert [(r.attempt, r.attempts, r.reason) for r in retries] == [
        (2, 3, "500 server error"),
        (3, 3, "500 server error"),
    ]
    assert all(r.wait == pytest.approx(0.05) for r in retries)
    assert seen.index(retries[-1]) < next(i for i, e in enumerate(seen) if isinstance(e, TextDelta))
    loop.run(client.aclose)


def test_keep_alive_reuses_one_connection(loop: LoopThread, server: ServerHandle) -> None:
    client = make_client(server)

    async def two_requests() -> list[Event]:
        events: list[Event] = []
        for text in ("one", "two"):
            events.extend([e async for e in client.events("chat", chat_body(text))])
        return events

    loop.run(two_requests)
    pool = client._http._transport._pool  # type: ignore[attr-defined]
    connections = len(pool.connections)
    loop.run(client.aclose)
    assert len(server.requests) == 2
    assert connections == 1


def test_asyncio_cancel_inside_loop() -> None:
    """The async API alone: cancelling the consuming task raises CancelledError."""

    async def main() -> None:
        with start_server() as server:
            client = make_client(server)

            async def consume() -> None:
                async for _ in client.events("chat", chat_body("Go [[tps:20]]")):
                    pass

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await client.aclose()

    asyncio.run(main())


def test_model_list_body_is_bounded(loop: LoopThread) -> None:
    """GET /v1/models reads at most MAX_BODY_BYTES: a server flooding an endless body
    gets one clear error, not a kernel filling its memory until read_timeout."""
    from tests import hostile
    from writer_magics.transport.client import MAX_BODY_BYTES
    from writer_magics.transport.models import fetch_models

    flood = hostile.forever(every="x" * 65536, gap=0, content_type="application/json")
    with hostile.Hostile(flood) as server:
        client = WriterClient(ClientSettings(base_url=server.url, api_key=KEY, read_timeout=30))
        with pytest.raises(MalformedEventError, match=f"over {MAX_BODY_BYTES >> 20} MB"):
            loop.run(lambda: fetch_models(client, timeout=30))
        loop.run(client.aclose)
        assert [(r.method, r.path) for r in server.received] == [("GET", "/v1/models")]
