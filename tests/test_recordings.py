"""Issue 12 §6: real Writer responses (``tests/data/writer-recordings``, copied from
``shared/writer-recordings`` with their README) replayed byte for byte.

Every byte boundary: the recorded bytes in two pieces split at offset k, for every k,
through the same decoding stack the client uses (httpx's line reader, httpx-sse, then
:mod:`writer_magics.transport.events`) and the one fold (:func:`result.build_result`).
Then whole and
at a few splits over real HTTP: a stdlib server on 127.0.0.1 writes the two pieces
with a flush between them, and a real shell runs ``%%chat`` against it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource
from IPython.core.interactiveshell import InteractiveShell

from tests.conftest import API_KEY, run
from writer_magics.answer.result import Accumulator, Result, build_result
from writer_magics.request import Endpoint
from writer_magics.transport import events as api
from writer_magics.transport.client import status_error

DATA = Path(__file__).parent / "data" / "writer-recordings"
STREAM = (DATA / "writer-framework_palmyra-x-004_tool-calls.sse").read_bytes()
TOOL_JSON = (DATA / "langchain-writer_palmyra-x5_tool-call_reconstructed.json").read_bytes()
ANSWER_JSON = (DATA / "langchain-writer_palmyra-x5_json-answer_reconstructed.json").read_bytes()
INVALID_KEY = (DATA / "writer_401_invalid-key.json").read_bytes()
NO_KEY = (DATA / "writer_401_no-key_partial.json").read_bytes()

LAST_CHUNK = json.loads(STREAM.strip().split(b"\n\n")[-1].removeprefix(b"data: "))
INVALID_KEY_LINE = (
    "AuthenticationError: Writer rejected the API key (401): Authentication Error, Invalid "
    "proxy server token passed. Received API Key = sk-...0000, Key Hash (Token) =<redacted: "
    "sha256 of the invalid probe key>. Unable to find token in cache or "
    "`LiteLLM_VerificationTokenTable`"
)
NO_KEY_LINE = "AuthenticationError: Writer rejected the API key (401): No api key passed in."


def splits(data: bytes) -> Iterator[list[bytes]]:
    """The bytes whole, then in two pieces at every offset."""
    yield [data]
    for k in range(1, len(data)):
        yield [data[:k], data[k:]]


def fold(endpoint: Endpoint, events: list[api.Event], model: str = "palmyra-x5") -> Result:
    acc = Accumulator()
    for event in events:
        acc.add(event)
    return build_result(acc, endpoint=endpoint, model=model, request={"model": model})


def stream_result(pieces: list[bytes]) -> Result:
    """The client's decoding stack on these network reads, without a network."""
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=iter(pieces)
    )
    events: list[api.Event] = []
    for sse in EventSource(response).iter_sse():
        events.extend(api.decode_sse_data("chat", sse.data, sse.event))
    return fold("chat", events)


def body_result(pieces: list[bytes]) -> Result:
    response = httpx.Response(
        200, headers={"content-type": "application/json"}, content=iter(pieces)
    )
    response.read()
    return fold("chat", api.decode_response("chat", response.json()))


def check_stream(result: Result) -> None:
    assert result.text == "\n"
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls == (
        {
            "id": "chatcmpl-tool-1ff1df7d81074e5995ec77af2911f7c1",
            "type": "function",
            "function": {"name": "test_function", "arguments": '{"arg1": 5}'},
        },
        {
            "id": "chatcmpl-tool-22538c865437437e8ace8076a5755749",
            "type": "function",
            "function": {"name": "test_function", "arguments": '{"arg1": 7}'},
        },
    )
    raw = result.raw
    # The server's own fields, from the last chunk, not the requested model.
    assert raw["model"] == "palmyra-x-004" != result.request["model"]
    assert raw["id"] == LAST_CHUNK["id"] == "168bc578-1916-448b-8373-1c473383c0cb"
    assert raw["created"] == 1731919162
    assert raw["system_fingerprint"] == "v1"
    assert "service_tier" in raw and raw["service_tier"] is None
    assert raw["object"] == "chat.completion"
    message = raw["choices"][0]["message"]
    assert [c["function"]["arguments"] for c in message["tool_calls"]] == [
        '{"arg1": 5}',
        '{"arg1": 7}',
    ]


def check_tool_json(result: Result) -> None:
    assert result.text == ""
    assert result.finish_reason == "tool_calls"
    (call,) = result.tool_calls
    assert call["id"] == "chatcmpl-tool-zsHrm9K2nfygJMQylrBLhb47lPZskFvW"
    assert call["function"]["name"] == "AnswerWithJustification"
    assert json.loads(call["function"]["arguments"])["answer"] == "They weigh the same."
    assert result.usage == api.Usage(prompt_tokens=202, completion_tokens=70, total_tokens=272)
    assert result.raw == json.loads(TOOL_JSON)  # the server's body, as sent


def check_answer_json(result: Result) -> None:
    assert json.loads(result.text)["answer"] == "They weigh the same."
    assert result.finish_reason == "stop" and not result.tool_calls
    assert result.usage == api.Usage(prompt_tokens=66, completion_tokens=69, total_tokens=135)
    assert result.raw == json.loads(ANSWER_JSON)
    assert result.raw["system_fingerprint"] == "v1"


# --------------------------------------------------------------------------- every boundary


def test_the_real_stream_at_every_byte_boundary() -> None:
    for pieces in splits(STREAM):
        check_stream(stream_result(pieces))


@pytest.mark.parametrize(
    ("data", "check"),
    [(TOOL_JSON, check_tool_json), (ANSWER_JSON, check_answer_json)],
    ids=["tool-call", "json-answer"],
)
def test_the_real_whole_answers_at_every_byte_boundary(data: bytes, check: Any) -> None:
    for pieces in splits(data):
        check(body_result(pieces))


@pytest.mark.parametrize(
    ("data", "line"),
    [(INVALID_KEY, INVALID_KEY_LINE), (NO_KEY, NO_KEY_LINE)],
    ids=["invalid", "none"],
)
def test_the_real_401_bodies_at_every_byte_boundary(data: bytes, line: str) -> None:
    for pieces in splits(data):
        response = httpx.Response(
            401, headers={"content-type": "application/json"}, content=iter(pieces)
        )
        response.read()
        error = status_error(401, response.json(), response.text, "palmyra-x5")
        assert error.lines()[0] == line


# --------------------------------------------------------------------------- real HTTP


@dataclass
class Reply:
    status: int = 200
    content_type: str = "text/event-stream"
    data: bytes = b""
    split: int = 0


class Recorded(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply = Reply()
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorded

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.server.requests.append(json.loads(self.rfile.read(length)))
        reply = self.server.reply
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Connection", "close")  # close-delimited, like a proxy's stream
        self.end_headers()
        head, tail = reply.data[: reply.split], reply.data[reply.split :]
        for piece in (head, tail):
            if piece:
                self.wfile.write(piece)
                self.wfile.flush()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def recorded() -> Iterator[Recorded]:
    server = Recorded()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def real(recorded: Recorded, shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> Recorded:
    monkeypatch.setenv("WRITER_BASE_URL", recorded.url)
    shell.run_line_magic("config", "WriterMagics.log = False")
    recorded.requests.clear()
    return recorded


def offsets(data: bytes) -> list[int]:
    """Whole, then splits inside the first line, at an event boundary, and near the end."""
    boundary = data.find(b"\n\n") + 1
    return [0, 1, 7, boundary, boundary + 1, len(data) // 2, len(data) - 1]


@pytest.mark.parametrize("split", offsets(STREAM))
def test_the_real_stream_over_http(real: Recorded, shell: InteractiveShell, split: int) -> None:
    real.reply = Reply(data=STREAM, split=split)
    captured = run(shell, "%%chat --new -o r\nCall the test function twice")
    assert captured.result.success, captured.stdout + captured.stderr
    assert len(real.requests) == 1 and real.requests[0]["stream"] is True
    check_stream(shell.user_ns["r"])
    assert "Traceback" not in captured.stdout + captured.stderr


@pytest.mark.parametrize(
    ("data", "check"),
    [(TOOL_JSON, check_tool_json), (ANSWER_JSON, check_answer_json)],
    ids=["tool-call", "json-answer"],
)
@pytest.mark.parametrize("where", [0, 0.5])
def test_the_real_whole_answers_over_http(
    real: Recorded, shell: InteractiveShell, data: bytes, check: Any, where: float
) -> None:
    real.reply = Reply(content_type="application/json", data=data, split=int(len(data) * where))
    captured = run(shell, "%%chat --new --no-stream -o r\nWhich is heavier?")
    assert captured.result.success, captured.stdout + captured.stderr
    assert len(real.requests) == 1 and real.requests[0]["stream"] is False
    check(shell.user_ns["r"])


@pytest.mark.parametrize(
    ("data", "line"),
    [(INVALID_KEY, INVALID_KEY_LINE), (NO_KEY, NO_KEY_LINE)],
    ids=["invalid", "none"],
)
@pytest.mark.parametrize("where", [0, 0.5])
def test_the_real_401_bodies_over_http(
    real: Recorded, shell: InteractiveShell, data: bytes, line: str, where: float
) -> None:
    real.reply = Reply(401, "application/json", data, int(len(data) * where))
    captured = run(shell, "%%chat --new\nHello")
    assert not captured.result.success
    lines = captured.rendered_error()
    assert lines[0] == line and len(lines) <= 2
    assert len(real.requests) == 1  # a 401 is not retried
    shown = captured.stdout + captured.stderr + "\n".join(lines)
    assert "Traceback" not in shown and API_KEY not in shown


def test_a_cached_answer_keeps_raw_and_stores_the_chunk_fields_once(
    real: Recorded, shell: InteractiveShell, tmp_path: Path
) -> None:
    path = tmp_path / "cache.jsonl"
    shell.run_line_magic("config", f"WriterMagics.cache_path = {str(path)!r}")
    real.reply = Reply(data=STREAM)
    run(shell, "%%chat --cache --new -o first\nCall it")
    again = run(shell, "%%chat --cache --new -o second\nCall it")
    assert again.result.success and len(real.requests) == 1
    first, second = shell.user_ns["first"], shell.user_ns["second"]
    assert second.status == "cached" and second.raw == first.raw
    check_stream(second)
    (entry,) = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    assert [e["event"] for e in entry["events"]].count("response") == 1
