"""A small hostile stand-in for Writer's chat endpoint (stdlib ``http.server``, port 0).

It answers ``POST /v1/chat`` with a stream of the given text chunks, exactly as
Writer sends them (``chat.completion.chunk`` events, usage last), or with an error
status whose message names the request's temperature, so two panels of a sweep
fail with two different reasons. Everything it received is kept in ``bodies``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Callable[[dict[str, Any]], tuple[int, Sequence[str]]]


@dataclass
class StandIn:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)


def chunk(content: str | None, finish: str | None = None, **extra: Any) -> str:
    delta: dict[str, Any] = {"role": "assistant", "content": content, **extra}
    event = {
        "id": "standin",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "palmyra-x5",
        "choices": [{"index": 0, "finish_reason": finish, "logprobs": None, "delta": delta}],
    }
    return f"data: {json.dumps(event)}\n\n"


def text_reply(*pieces: str, pause: float = 0.0) -> Reply:
    """Stream ``pieces`` as content deltas, then ``finish_reason: stop`` and usage.

    ``pause`` seconds pass between pieces (so a live view sees a stream, not a burst).
    """

    def reply(_body: dict[str, Any]) -> tuple[int, Sequence[str]]:
        events = [chunk(p) for p in pieces] + [chunk("", "stop")]
        usage = {"prompt_tokens": 3, "completion_tokens": len(pieces), "total_tokens": 3}
        usage["total_tokens"] += len(pieces)
        events.append(
            "data: "
            + json.dumps(
                {"id": "standin", "object": "chat.completion.chunk", "choices": [], "usage": usage}
            )
            + "\n\n"
        )
        return 200, events

    reply.pause = pause  # type: ignore[attr-defined]
    return reply


def failing_by_temperature(body: dict[str, Any]) -> tuple[int, Sequence[str]]:
    """A 400 whose message names the temperature asked for."""
    message = f"temperature {body.get('temperature')} is not allowed here"
    return 400, [json.dumps({"errors": [{"description": message}], "tpe": "bad_request"})]


@contextmanager
def stand_in(reply: Reply) -> Iterator[StandIn]:
    """Serve ``reply`` on 127.0.0.1 (a free port) for the duration of the block."""
    handle = StandIn("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            handle.bodies.append(body)
            status, parts = reply(body)
            streaming = status == 200 and body.get("stream")
            self.send_response(status)
            self.send_header(
                "Content-Type", "text/event-stream" if streaming else "application/json"
            )
            self.send_header("Connection", "close")
            self.end_headers()
            pause = float(getattr(reply, "pause", 0.0))
            if not pause:  # a burst: one write, so the client reads it in a few large reads
                self.wfile.write("".join(parts).encode())
                self.wfile.flush()
                return
            for part in parts:
                self.wfile.write(part.encode())
                self.wfile.flush()
                time.sleep(pause)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    handle.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield handle
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
