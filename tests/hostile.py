"""Small hostile HTTP servers on 127.0.0.1 for fault tests (stdlib only).

A :class:`Hostile` server answers every request with one ``Reply``: a function of the
request handler and the request's number (0, 1, ...), so a test can script exactly
what goes on the wire (bad headers, lying encodings, endless trickles). It counts and
keeps what it received. Every loop is bounded (``MAX_SECONDS``) and stops when the
client goes away or the server is stopped, so no test can hang on it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

#: No hostile reply writes for longer than this.
MAX_SECONDS = 20.0

Reply = Callable[["Handler", int], None]


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    reply: Reply
    received: list[Received]
    stopping: threading.Event
    lock: threading.Lock


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.0: the body ends when the handler returns and the connection closes."""

    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            number = len(self.server.received)
            self.server.received.append(
                Received(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
            )
        # The client going away (a timeout, Ctrl-C) ends the reply.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.server.reply(self, number)

    # -------------------------------------------------------------- helpers for replies

    @property
    def stopping(self) -> bool:
        return self.server.stopping.is_set()

    def head(self, status: int, headers: Mapping[str, str] = {}) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()

    def write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()


class Hostile:
    """``with Hostile(reply) as h:`` a server at ``h.url``; ``h.received`` lists requests."""

    def __init__(self, reply: Reply) -> None:
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.reply = reply
        self._server.received = []
        self._server.stopping = threading.Event()
        self._server.lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def received(self) -> list[Received]:
        with self._server.lock:
            return list(self._server.received)

    def __enter__(self) -> Hostile:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ------------------------------------------------------------------ reply builders


def status(
    code: int,
    body: bytes | str | Mapping[str, Any] = b"",
    headers: Mapping[str, str] = {},
) -> Reply:
    """Every request gets this status, headers and body (a mapping is sent as JSON)."""
    if isinstance(body, Mapping):
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **headers}
    else:
        data = body.encode() if isinstance(body, str) else body

    def reply(handler: Handler, _number: int) -> None:
        handler.head(code, {"Content-Length": str(len(data)), **headers})
        handler.write(data)

    return reply


def sse(events: Iterable[str], headers: Mapping[str, str] = {}) -> Reply:
    """A 200 event stream of these SSE blocks (each sent as written, then the body ends)."""
    blocks = list(events)

    def reply(handler: Handler, _number: int) -> None:
        handler.head(200, {"Content-Type": "text/event-stream", **headers})
        for block in blocks:
            handler.write(block.encode())

    return reply


def chunk(text: str, finish: str | None = None) -> str:
    """One chat SSE event carrying ``text`` (and a finish reason)."""
    choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    data = {
        "id": "x",
        "object": "chat.completion.chunk",
        "model": "palmyra-x5",
        "choices": [choice],
    }
    return f"data: {json.dumps(data)}\n\n"


def logprob_chunk(tokens: list[str], finish: str | None = None) -> str:
    """One chat SSE event carrying ``tokens`` with their log-probabilities (Writer's shape)."""
    records = [{"token": t, "logprob": -0.1, "top_logprobs": []} for t in tokens]
    delta = {"content": "".join(tokens)}
    choice = {"index": 0, "delta": delta, "logprobs": {"content": records}, "finish_reason": finish}
    data = {"id": "x", "object": "chat.completion.chunk", "model": "palmyra-x5"}
    return f"data: {json.dumps({**data, 'choices': [choice]})}\n\n"


def tool_call_chunk(name: str, arguments: str) -> str:
    """One chat SSE event asking for one tool call (finish reason ``tool_calls``)."""
    call = {"index": 0, "id": "call-1", "type": "function"}
    call["function"] = {"name": name, "arguments": arguments}
    choice = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "tool_calls"}
    data = {"id": "x", "object": "chat.completion.chunk", "model": "palmyra-x5"}
    return f"data: {json.dumps({**data, 'choices': [choice]})}\n\n"


def forever(
    first: Iterable[str] = (),
    every: str = ": keepalive\n\n",
    gap: float = 0.1,
    content_type: str = "text/event-stream",
) -> Reply:
    """A 200 event stream (or a body of ``content_type``): ``first`` blocks, then ``every``
    each ``gap`` seconds, endlessly (until the client leaves, the server stops or
    MAX_SECONDS pass)."""
    opening = list(first)

    def reply(handler: Handler, _number: int) -> None:
        handler.head(200, {"Content-Type": content_type})
        for block in opening:
            handler.write(block.encode())
        end = time.monotonic() + MAX_SECONDS
        while not handler.stopping and time.monotonic() < end:
            handler.write(every.encode())
            time.sleep(gap)

    return reply


def trickle_headers(gap: float = 0.2) -> Reply:
    """A status line, then one header byte every ``gap`` seconds, never ending the headers."""

    def reply(handler: Handler, _number: int) -> None:
        handler.write(b"HTTP/1.0 200 OK\r\n")
        end = time.monotonic() + MAX_SECONDS
        while not handler.stopping and time.monotonic() < end:
            handler.write(b"X")
            time.sleep(gap)

    return reply


def sequence(*replies: Reply) -> Reply:
    """The n-th request gets the n-th reply (the last one repeats)."""

    def reply(handler: Handler, number: int) -> None:
        replies[min(number, len(replies) - 1)](handler, number)

    return reply
