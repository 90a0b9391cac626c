"""The HTTP/1.1 server: routing, auth, latency, pacing, faults and disconnect detection.

Standard library only (``ThreadingHTTPServer``, keep-alive, chunked SSE). Each
connection runs in a daemon thread; every wait (latency, pacing, stalls) polls a
stop event and the client socket, so ``stop()`` returns quickly and a client that
hangs up is recorded as ``disconnected`` instead of printing a traceback.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from . import faults, protocol, service
from .log import ReceivedRequest, RequestLog
from .tokens import count_prompt_tokens, count_tokens

#: How often waits re-check the stop event and the client socket (seconds).
POLL_INTERVAL = 0.05
#: Idle keep-alive connections are closed after this many seconds.
IDLE_TIMEOUT = 120.0
#: A request body over this many bytes is answered 413 without being read (a classroom
#: server must not fill its memory for one client).
MAX_REQUEST_BYTES = 64 * 1024 * 1024

_STATUS_TPE = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    408: "RequestTimeout",
    409: "Conflict",
    410: "Gone",
    413: "PayloadTooLarge",
    422: "UnprocessableEntity",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
_CONNECTION_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class _Disconnected(Exception):
    """The client went away (or the server is stopping) mid-response."""


@dataclass(frozen=True)
class ServerConfig:
    """Server-wide settings."""

    api_key: str | None = None
    latency: float = 0.0
    tokens_per_second: float | None = None
    verbose: bool = False
    #: Context window for every model, in the server's tokens (None: per model).
    context_limit: int | None = None
    #: Share of chat / completions requests answered 429 (see ``faults.RateLimiter``).
    rate_limit_fraction: float = 0.0
    #: The Retry-After seconds of those 429s.
    rate_limit_retry_after: float = 1.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], config: ServerConfig) -> None:
        super().__init__(address, _Handler)
        self.config = config
        self.log = RequestLog()
        self.counter = faults.FaultCounter()
        self.rate_limiter = faults.RateLimiter(
            config.rate_limit_fraction, config.rate_limit_retry_after
        )
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hang up; report real bugs."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError) or self.stopping.is_set():
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Shut down every open client socket so handler threads exit."""
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    server_version = "WriterMock/1.0"

    @property
    def srv(self) -> _Server:
        server = self.server
        assert isinstance(server, _Server)
        return server

    def setup(self) -> None:
        super().setup()
        # Small SSE writes must leave at once (Nagle + delayed ACK would add ~40 ms each).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.srv.connections_lock:
            self.srv.connections.add(self.connection)

    def finish(self) -> None:
        with self.srv.connections_lock:
            self.srv.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: per-request lines are printed by :meth:`_finish_record` when verbose."""

    # ------------------------------------------------------------------ request plumbing

    def _read_body(self) -> bytes | None:
        """The request body; None when it is over MAX_REQUEST_BYTES (left unread)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return data
                if len(data) + size > MAX_REQUEST_BYTES:
                    return None
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _begin(self, method: str) -> tuple[ReceivedRequest, bytes]:
        started = time.monotonic()
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        read = self._read_body()
        self._too_large = read is None
        raw = read or b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        record = ReceivedRequest(method, self.path, headers, body, started)
        self.srv.log.add(record)
        self._record = record
        self._headers_sent = False
        return record, raw

    def _finish_record(self, disconnected: bool = False) -> None:
        record = self._record
        self.srv.log.finish(record, disconnected)
        if self.srv.config.verbose:
            duration = (record.ended or record.started) - record.started
            note = " (client disconnected)" if record.disconnected else ""
            print(
                f"{record.method} {record.path} {record.status} {duration:.3f}s{note}",
                flush=True,
            )

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable:
                peeked: bytes = self.connection.recv(1, socket.MSG_PEEK)
                return peeked == b""
        except (OSError, ValueError):
            return True
        return False

    def _pause(self, seconds: float) -> None:
        """Wait, raising :class:`_Disconnected` if the client leaves or the server stops."""
        deadline = time.monotonic() + seconds
        while True:
            if self.srv.stopping.is_set() or self._client_gone():
                raise _Disconnected
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.srv.stopping.wait(min(remaining, POLL_INTERVAL))

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except _CONNECTION_ERRORS as error:
            raise _Disconnected from error
        except OSError as error:
            raise _Disconnected from error

    def _start(self, status: int, headers: dict[str, str]) -> None:
        self._record.status = status
        self._headers_sent = True
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
        except OSError as error:
            raise _Disconnected from error

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self._start(
            status,
            {
                "Content-Type": "application/json",
                "Content-Length": str(len(data)),
                **(headers or {}),
            },
        )
        self._write(data)

    def _send_error(self, error: protocol.ApiError) -> None:
        self._send_json(error.status, error.body(), error.headers)

    def _abort(self) -> None:
        """Close the socket abruptly (no chunked terminator, no Content-Length satisfied)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------------ routes

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        record, raw = self._begin(method)
        disconnected = False
        try:
            if self._too_large:
                self.close_connection = True  # the unread body would be read as a request
                raise protocol.ApiError(
                    413,
                    "PayloadTooLarge",
                    f"Request body over {MAX_REQUEST_BYTES >> 20} MB",
                    "error.request.too_large",
                )
            self._dispatch(method, record, raw)
        except _Disconnected:
            disconnected = not self.srv.stopping.is_set()
            self.close_connection = True
        except protocol.ApiError as error:
            if self._headers_sent:
                self.close_connection = True
            else:
                try:
                    self._send_error(error)
                except _Disconnected:
                    disconnected = True
        except Exception as error:  # a server bug: answer 500 and show it
            traceback.print_exc()
            self.close_connection = True
            if not self._headers_sent:
                try:
                    self._send_error(
                        protocol.ApiError(
                            500,
                            "InternalServerError",
                            f"Mock server error: {error}",
                            "error.internal",
                        )
                    )
                except _Disconnected:
                    disconnected = True
        finally:
            self._finish_record(disconnected)

    def _check_auth(self) -> None:
        key = self.srv.config.api_key
        if key is None:
            return
        header = self._record.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != key:
            description = "Missing Authorization header" if not header else "Invalid API key"
            raise protocol.ApiError(
                401,
                "Unauthorized",
                f"{description}; send 'Authorization: Bearer <key>'",
                "error.auth.invalid_api_key",
            )

    def _dispatch(self, method: str, record: ReceivedRequest, raw: bytes) -> None:
        path = record.path.split("?", 1)[0].rstrip("/")
        routes = {("GET", "/v1/models"), ("POST", "/v1/chat"), ("POST", "/v1/completions")}
        if (method, path) not in routes:
            known = {p for _, p in routes}
            if path in known:
                raise protocol.ApiError(
                    405,
                    "MethodNotAllowed",
                    f"{method} is not allowed on {path}",
                    "error.route.method_not_allowed",
                )
            raise protocol.not_found(f"No route for {method} {path}", "error.route.not_found")
        self._check_auth()
        if path == "/v1/models":
            self._send_json(200, protocol.MODEL_LIST)
            return
        if record.body is None:
            raise protocol.bad_request(
                "Request body is not valid JSON" if raw else "Request body is required",
                "error.request.invalid_json",
            )
        body = record.body
        controls = faults.directives(record.headers, body)
        clean = faults.strip_markers(body)
        key = faults.body_hash(body)
        active = [f for f in controls.faults if self.srv.counter.fires(f, key)]
        latency = controls.latency if controls.latency is not None else self.srv.config.latency
        tps = controls.tokens_per_second
        if tps is None:
            tps = self.srv.config.tokens_per_second
        if latency > 0:
            self._pause(latency)
        if self.srv.rate_limiter.fires():
            wait = self.srv.rate_limiter.retry_after
            raise protocol.ApiError(
                429,
                "TooManyRequests",
                "Simulated rate limit (--rate-limit-fraction)",
                "error.mock.rate_limit",
                {"retry-after": f"{wait:g}"},
            )
        for fault in active:
            if fault.kind == "status":
                raise protocol.ApiError(
                    fault.status,
                    _STATUS_TPE.get(fault.status, "Error"),
                    f"Simulated {fault.status} error (mock fault '{fault.spec}')",
                    "error.mock.fault",
                    dict(fault.headers),
                )
        stream_faults = {f.kind: f for f in active}
        if path == "/v1/chat":
            chat = protocol.parse_chat(clean)
            protocol.check_context(
                chat.params.model,
                count_prompt_tokens(chat.messages),
                self.srv.config.context_limit,
            )
            reply = service.chat_reply(chat, clean)
            if chat.params.stream:
                self._stream(reply.events(), tps, stream_faults)
            else:
                tokens = sum(c.completion_tokens for c in reply.choices)
                self._respond(reply.body(), tokens, tps, stream_faults)
        else:
            completion = protocol.parse_completion(clean)
            protocol.check_context(
                completion.params.model,
                count_tokens(completion.prompt),
                self.srv.config.context_limit,
            )
            cut = service.completion_reply(completion, clean)
            if completion.params.stream:
                self._stream(service.completion_events(cut), tps, stream_faults)
            else:
                body_out = protocol.completion_body(completion.params.model, cut.text)
                self._respond(body_out, len(cut.steps), tps, stream_faults)

    # ------------------------------------------------------------------ responses

    def _respond(
        self,
        payload: dict[str, Any],
        tokens: int,
        tps: float | None,
        active: dict[str, faults.Fault],
    ) -> None:
        """A non-streaming answer, delayed as if generated at ``tps``."""
        if tps:
            self._pause(tokens / tps)
        if "error-event" in active:
            raise protocol.ApiError(
                500,
                "InternalServerError",
                "Simulated error (mock fault 'error-event')",
                "error.mock.fault",
            )
        data = json.dumps(payload).encode("utf-8")
        if "malformed" in active:
            data = b'{"choices": [{not json'
        headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
        if "drop" in active or "stall" in active:
            self._start(200, headers)
            half = len(data) // 2
            self._write(data[:half])
            if "drop" in active:
                self._abort()
                raise _Disconnected
            self._pause(active["stall"].seconds)
            self._write(data[half:])
            return
        self._start(200, headers)
        self._write(data)

    def _chunk(self, text: str) -> None:
        data = text.encode("utf-8")
        self._write(b"%x\r\n%s\r\n" % (len(data), data))

    def _stream(
        self,
        events: list[service.Event],
        tps: float | None,
        active: dict[str, faults.Fault],
    ) -> None:
        """SSE over chunked transfer encoding, one flushed event per chunk."""
        self._start(
            200,
            {
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "Transfer-Encoding": "chunked",
            },
        )
        interrupt = next(
            (active[k] for k in ("drop", "stall", "malformed", "error-event") if k in active),
            None,
        )
        for i, (payload, tokens) in enumerate(events):
            if interrupt is not None and i == interrupt.chunks:
                if self._interrupt(interrupt):
                    return
                interrupt = None
            if tps and tokens:
                self._pause(tokens / tps)
            self._chunk(f"data: {json.dumps(payload)}\n\n")
        if interrupt is not None and self._interrupt(interrupt):
            return
        if "no-done" not in active:
            self._chunk("data: [DONE]\n\n")
        self._write(b"0\r\n\r\n")

    def _interrupt(self, fault: faults.Fault) -> bool:
        """Apply a mid-stream fault; True when the stream is over."""
        if fault.kind == "drop":
            self._abort()
            raise _Disconnected
        if fault.kind == "stall":
            self._pause(fault.seconds)
            return False
        if fault.kind == "malformed":
            self._chunk("data: {not json\n\n")
        else:
            body = protocol.error_body(
                "InternalServerError",
                "Simulated mid-stream error (mock fault 'error-event')",
                "error.mock.fault",
            )
            self._chunk(f"event: error\ndata: {json.dumps(body)}\n\n")
        self._write(b"0\r\n\r\n")
        return True


class ServerHandle:
    """A running server; ``requests`` logs every request received (tests read it)."""

    def __init__(self, server: _Server, thread: threading.Thread | None) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        self.url = f"http://{self.host}:{self.port}"
        self.requests: list[ReceivedRequest] = server.log.items
        self._stopped = False

    def clear(self) -> None:
        """Forget logged requests and ``xN`` fault attempt counters."""
        self._server.log.clear()
        self._server.counter.clear()
        self._server.rate_limiter.clear()

    @property
    def rate_limited(self) -> int:
        """How many requests the ``rate_limit_fraction`` knob answered with 429."""
        return self._server.rate_limiter.refused

    def wait_for_requests(self, n: int, timeout: float = 5) -> list[ReceivedRequest]:
        """Block until ``n`` requests have finished; raise ``TimeoutError`` otherwise."""
        return self._server.log.wait(n, timeout)

    def stop(self) -> None:
        """Stop serving, end stalled streams and close keep-alive connections."""
        if self._stopped:
            return
        self._stopped = True
        self._server.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _make_server(
    host: str,
    port: int,
    api_key: str | None,
    latency: float,
    tokens_per_second: float | None,
    verbose: bool = False,
    context_limit: int | None = None,
    rate_limit_fraction: float = 0.0,
    rate_limit_retry_after: float = 1.0,
) -> _Server:
    config = ServerConfig(
        api_key,
        latency,
        tokens_per_second,
        verbose,
        context_limit,
        rate_limit_fraction,
        rate_limit_retry_after,
    )
    return _Server((host, port), config)


def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    latency: float = 0.0,
    tokens_per_second: float | None = None,
    context_limit: int | None = None,
    rate_limit_fraction: float = 0.0,
    rate_limit_retry_after: float = 1.0,
) -> ServerHandle:
    """Start the server in a daemon thread (port 0 picks a free port).

    ``context_limit`` makes every model's context window that many tokens, so a test
    can reach "the conversation is too long" in a few turns. ``rate_limit_fraction``
    answers that share of requests with 429 and ``Retry-After: rate_limit_retry_after``.
    """
    server = _make_server(
        host,
        port,
        api_key,
        latency,
        tokens_per_second,
        context_limit=context_limit,
        rate_limit_fraction=rate_limit_fraction,
        rate_limit_retry_after=rate_limit_retry_after,
    )
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="writer-mock-server",
        daemon=True,
    )
    thread.start()
    return ServerHandle(server, thread)


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8765,
    api_key: str | None = None,
    latency: float = 0.0,
    tokens_per_second: float | None = None,
    verbose: bool = False,
    context_limit: int | None = None,
    rate_limit_fraction: float = 0.0,
    rate_limit_retry_after: float = 1.0,
) -> None:
    """Serve in the foreground until Ctrl-C (for the CLI)."""
    server = _make_server(
        host,
        port,
        api_key,
        latency,
        tokens_per_second,
        verbose,
        context_limit,
        rate_limit_fraction,
        rate_limit_retry_after,
    )
    handle = ServerHandle(server, None)
    print(f"Writer-compatible server on {handle.url}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("\nStopping.", flush=True)
    finally:
        handle.stop()
