"""A Writer-shaped SSE server for benchmarks: any number of chunks, at any pace.

The bundled server plans short, readable answers (about a hundred tokens), so it
cannot send a 50,000-chunk stream or a 1 MB answer. This one replays realistic
Markdown (answers of the bundled server to a few prompts: prose, lists, code, a
poem), one token per ``chat.completion.chunk`` in exactly the bundled server's
shape (:func:`writer_magics.server.protocol.chat_chunk`), then a usage chunk and
``[DONE]``.

Markers in the last user message pick the answer (all optional):

* ``[[chunks:N]]``: N chunks (one token each);
* ``[[bytes:N]]``: as many tokens as make N bytes of answer text;
* ``[[tps:N]]``: N chunks per second (default: as fast as the socket takes them);
* ``[[latency:S]]``: S seconds before the response starts;
* ``[[shape:NAME]]``: the answer's shape (:data:`SHAPES`; default ``paragraphs``, the
  corpus above).

``GET /bench/log`` returns, per chat request, the ``time.monotonic()`` at which the
first and the last chunk were written (one clock for every process on Linux), the
first token and the answer's size. Run it in its own process so that its CPU time is
never counted as the client's: ``python bench/fixture.py`` prints its URL and serves.
"""

from __future__ import annotations

import functools
import json
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from writer_magics.server import protocol, service
from writer_magics.server.tokens import tokenize

_MARKER = re.compile(r"\[\[\s*(chunks|bytes|tps|latency)\s*:\s*([0-9.]+)\s*\]\]")
_SHAPE = re.compile(r"\[\[\s*shape\s*:\s*([a-z]+)\s*\]\]")
_PROMPTS = (
    "Explain tides in several paragraphs",
    "List five tips for camping gear",
    "Write a python function to count words",
    "Write a poem about the sea",
    "Compare rivers and lakes",
    "Give me 7 steps to bake bread",
    "Write javascript code to sort a list",
    "What is retrieval-augmented generation?",
)
MODEL = "palmyra-x5"


def corpus_tokens() -> list[str]:
    """Tokens of a few answers of the bundled server (about 3.4 KB of Markdown)."""
    texts = []
    for prompt in _PROMPTS:
        body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
        reply = service.chat_reply(protocol.parse_chat(body), body)
        texts.append(reply.choices[0].cut.text)
    return tokenize("\n\n".join(texts) + "\n\n")


CORPUS = corpus_tokens()

_SENTENCES = (
    "The tide rises and falls twice a day because the moon pulls on the oceans. ",
    "Where the coast is shallow and wide, the water can travel a long way inland. ",
    "Sailors once timed their departures by it, and fishers still do. ",
    "A spring tide comes when the sun and the moon line up, a neap tide when they do not. ",
)
_CODE = (
    "def count_words(text: str) -> dict[str, int]:\n",
    "    counts: dict[str, int] = {}\n",
    "    for word in text.split():\n",
    "        counts[word.lower()] = counts.get(word.lower(), 0) + 1\n",
    "    return counts\n",
    "\n",
)
_ROWS = (
    "| Brittany | 13.5 m | semidiurnal | strong currents near the islands |\n",
    "| Bay of Fundy | 16.3 m | semidiurnal | the highest tides in the world |\n",
    "| Mediterranean | 0.3 m | mixed | barely noticeable on most beaches |\n",
)
_ITEMS = (
    "- Check the tide table before you walk out on the flats.\n",
    "- Carry a light, warm layer: wind over water is colder than it looks.\n",
    "- Tell someone on shore where you are going and when you will be back.\n",
)
_TABLE_HEAD = "| Place | Range | Kind | Note |\n|---|---|---|---|\n"


def _mix() -> str:
    """One section of each shape, every block closed: prose, a list, code, a table."""
    return (
        "".join(_SENTENCES)
        + "\n\n"
        + "".join(_ITEMS * 2)
        + "\n```python\n"
        + "".join(_CODE * 2)
        + "```\n\n"
        + _TABLE_HEAD
        + "".join(_ROWS * 2)
        + "\n"
    )


#: Shape name -> (text sent once at the start, tokens repeated after it as needed).
SHAPES: dict[str, tuple[str, list[str]]] = {
    "paragraphs": ("", CORPUS),
    "paragraph": ("", tokenize("".join(_SENTENCES))),
    "code": ("```python\n", tokenize("".join(_CODE))),
    "table": (_TABLE_HEAD, tokenize("".join(_ROWS))),
    "list": ("", tokenize("".join(_ITEMS))),
    "mix": ("", tokenize(_mix())),
}


def answer_tokens(chunks: int | None, size: int | None, shape: str = "paragraphs") -> list[str]:
    """The first ``chunks`` tokens (or ``size`` bytes) of a shape, its unit repeated as needed."""
    prefix, unit = SHAPES[shape]
    if chunks is None and size is None:
        chunks = len(unit)
    out: list[str] = tokenize(prefix)
    total = len(prefix.encode())
    i = 0
    while (chunks is not None and len(out) < chunks) or (size is not None and total < size):
        token = unit[i % len(unit)]
        out.append(token)
        total += len(token.encode())
        i += 1
    return out


def markers(body: Any) -> dict[str, float]:
    """The ``[[name:value]]`` markers of the last user message."""
    messages = body.get("messages") if isinstance(body, dict) else None
    text = ""
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            text = str(message.get("content") or "")
            break
    return {name: float(value) for name, value in _MARKER.findall(text)}


def shape_of(body: Any) -> str:
    """The ``[[shape:NAME]]`` of the last user message, ``paragraphs`` when none or unknown."""
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            found = _SHAPE.search(str(message.get("content") or ""))
            if found and found.group(1) in SHAPES:
                return found.group(1)
            break
    return "paragraphs"


@functools.lru_cache(maxsize=8)
def stream_frames(
    chunks: int | None, size: int | None, usage: bool, shape: str = "paragraphs"
) -> tuple[list[str], list[bytes]]:
    """The tokens of an answer and its SSE ``data:`` lines (cached: 50,000 take a second)."""
    tokens = answer_tokens(chunks, size, shape)
    frames = [
        b"data: " + json.dumps(protocol.chat_chunk(MODEL, 0, protocol.chat_delta(t))).encode()
        for t in tokens[:-1]
    ]
    last = protocol.chat_chunk(MODEL, 0, protocol.chat_delta(tokens[-1]), "stop")
    frames.append(b"data: " + json.dumps(last).encode())
    if usage:
        body = protocol.usage_chunk(MODEL, protocol.usage_body(10, len(tokens)))
        frames.append(b"data: " + json.dumps(body).encode())
    frames.append(b"data: [DONE]")
    return tokens, frames


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def srv(self) -> _Server:
        assert isinstance(self.server, _Server)
        return self.server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _json(self, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith("/bench/log"):
            with self.srv.lock:
                self._json(list(self.srv.log))
        elif self.path.startswith("/bench/clear"):
            with self.srv.lock:
                self.srv.log.clear()
            self._json({"ok": True})
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        received = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.startswith("/v1/chat"):
            self.send_error(404)
            return
        found = markers(body)
        chunks = int(found["chunks"]) if "chunks" in found else None
        size = int(found["bytes"]) if "bytes" in found else None
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        tokens, frames = stream_frames(chunks, size, usage, shape_of(body))
        if found.get("latency"):
            time.sleep(found["latency"])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        tps = found.get("tps")
        start = time.monotonic()
        first = last = start
        send = self.connection.sendall
        try:
            for i, frame in enumerate(frames):
                if tps and i < len(tokens):
                    due = start + i / tps
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                data = frame + b"\n\n"
                if i == 0:
                    first = time.monotonic()
                send(b"%x\r\n%s\r\n" % (len(data), data))
                if i == len(tokens) - 1:
                    last = time.monotonic()
            send(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
        with self.srv.lock:
            self.srv.log.append(
                {
                    "received": received,
                    "first_sent": first,
                    "last_sent": last,
                    "first_token": tokens[0],
                    "chunks": len(tokens),
                    "answer_bytes": sum(len(t.encode()) for t in tokens),
                }
            )


def serve(port: int = 0) -> None:
    """Serve on 127.0.0.1 until killed; the first line of stdout is the URL."""
    server = _Server(("127.0.0.1", port))
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
