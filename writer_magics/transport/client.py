"""The thin I/O layer: one pooled ``httpx.AsyncClient`` talking to Writer.

It authenticates, enforces the safety rules on where the key may go, retries what
is safe to retry (only before the first event of a stream: text a user has seen is
never replayed), and turns HTTP and SSE into the typed events of :mod:`.events`.
All decoding lives in :mod:`.events`; all messages live in :mod:`errors`.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import json
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource

from writer_magics import __version__
from writer_magics.config import (
    BASE_URL_VARIABLE,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    KEY_VARIABLE,
    key_problem,
    removed_model_warning,
)
from writer_magics.errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    MalformedEventError,
    NotFoundError,
    RateLimitError,
    RedirectError,
    RequestTimeoutError,
    ServerError,
    StreamInterrupted,
    WriterError,
    printable,
    redact,
)
from writer_magics.request import JSON, Endpoint, Request
from writer_magics.transport.events import (
    PATHS,
    ChoiceFinished,
    Event,
    Retrying,
    StreamEnd,
    TextDelta,
    decode_response,
    decode_sse_data,
    error_description,
)

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({408, 409, 429})
#: At most this much of an error body is read (its description is all we show).
MAX_ERROR_BODY = 64 * 1024
#: After ``[DONE]``, how long the rest of the body may take (so the connection is reused).
DRAIN_SECONDS = 1.0
#: At most this many bytes may arrive between two SSE events (a streamed event is a few
#: hundred bytes; a line that never ends would otherwise fill memory until read_timeout).
MAX_EVENT_BYTES = 8 * 1024 * 1024
#: At most this many bytes of a whole (non-streamed) answer body.
MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ClientSettings:
    """Where to send requests and how patiently; the key never appears in a repr.

    Times are seconds. ``read_timeout`` bounds the wait for each next event (the
    response headers, each SSE event, a whole non-streamed body); ``total_timeout``
    (``None``: no bound) bounds a cell's requests from sending to the last event,
    retries included. ``key_source`` / ``base_url_source`` say where the values came
    from (for the messages). The key and URL are stripped of surrounding whitespace.
    """

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 2
    max_retry_wait: float = 60.0
    total_timeout: float | None = None
    key_source: str = f"the {KEY_VARIABLE} environment variable"
    base_url_source: str = f"the {BASE_URL_VARIABLE} environment variable"

    def __post_init__(self) -> None:
        key = str.strip(self.api_key) if self.api_key is not None else None
        object.__setattr__(self, "api_key", key or None)
        object.__setattr__(self, "base_url", self.base_url.strip())

    def __repr__(self) -> str:
        key = "set" if self.api_key else "missing"
        return (
            f"ClientSettings(base_url={self.base_url!r}, api_key=<{key}>, "
            f"connect_timeout={self.connect_timeout}, read_timeout={self.read_timeout}, "
            f"max_retries={self.max_retries}, total_timeout={self.total_timeout})"
        )


def is_loopback(host: str) -> bool:
    """Exactly ``localhost``, or a literal IP address in the loopback range (no DNS)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_settings(settings: ClientSettings) -> None:
    """Refuse to send anything that would leak the key or could never work.

    Raises :class:`ConfigurationError` (one line; the key never shown) when the key is
    missing or cannot go in a header, the base URL is malformed, or it is plain http
    to anything but a literal loopback address or ``localhost``. Nothing is resolved
    or sent before this passes.
    """
    if not settings.api_key:
        raise ConfigurationError(
            f"No Writer API key is set (looked in {settings.key_source}).",
            hint="Set WRITER_API_KEY in the environment or a .env file, or run "
            '%config WriterMagics.api_key = "..." (or use the bundled server: '
            "python -m writer_magics serve).",
        )
    problem = key_problem(settings.api_key)
    if problem is not None:
        raise ConfigurationError(
            f"The API key from {settings.key_source} cannot be sent: it has {problem}.",
            hint="Copy the key again: only its surrounding whitespace is removed for you.",
        )
    shown = repr(_clip(settings.base_url, 200))
    source = settings.base_url_source
    try:
        url = httpx.URL(settings.base_url)
        port = url.port
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"The base URL {shown} (from {source}) is not a valid URL: {exc}."
        ) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"The base URL {shown} (from {source}) is not an http(s) URL.")
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(
            f"The base URL {shown} (from {source}) has port {port}; ports are 1 to 65535."
        )
    if url.scheme == "http" and not is_loopback(url.host):
        raise ConfigurationError(
            f"Refusing to send the API key over plain http to {shown} (from {source}); "
            "use https (plain http is only allowed to a loopback address such as "
            "127.0.0.1 or ::1, or to localhost).",
        )


def join_url(base_url: str, path: str) -> str:
    """``base_url`` + ``path`` (``/v1/chat``), without doubling a ``/v1`` the base already has.

    Writer's base URL is ``https://api.writer.com``; OpenAI-style clients spell it with
    ``/v1`` at the end, and users paste that: ``https://api.writer.com/v1`` + ``/v1/chat``
    must not become ``/v1/v1/chat`` (a 404 whose message hides the cause).
    """
    base = base_url.rstrip("/")
    if base.endswith("/v1") and path.startswith("/v1/"):
        base = base[: -len("/v1")]
    return base + path


def retry_wait(response: httpx.Response | None, retries_taken: int, cap: float) -> float:
    """The SDK's rule: honour ``retry-after-ms``/``retry-after`` within the cap, else backoff.

    A header that is not a number or an HTTP date (``Retry-After: x``) counts as absent.
    """
    if response is not None:
        header_wait = _retry_after(response.headers)
        if header_wait is not None and 0 < header_wait <= cap:
            return header_wait
    backoff: float = min(1.0 * 2**retries_taken, cap)
    return backoff * (1 - 0.25 * random.random())


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        return parsed.timestamp() - time.time()
    except (ValueError, OverflowError, OSError):
        return None


def should_retry(response: httpx.Response) -> bool:
    override = str(response.headers.get("x-should-retry", ""))
    if override in ("true", "false"):
        return override == "true"
    status: int = response.status_code
    return status in RETRYABLE_STATUSES or status >= 500


def status_error(
    status: int,
    body: Any,
    text: str,
    model: str | None,
    *,
    secrets: Iterable[str | None] = (),
    key_source: str | None = None,
) -> APIStatusError:
    """One readable sentence for an HTTP error, Writer's own description first.

    The description is redacted (``secrets``) before it is cut to 300 characters, and
    kept on one line. ``key_source`` names where the key came from for a 401/403.
    """
    description = error_description(body) or text.strip() or f"HTTP {status}"
    description = _clip(" ".join(printable(redact(description, secrets)).split()), 300)
    if status in (401, 403):
        hint = f"Check the key from {key_source}." if key_source else None
        return AuthenticationError(
            f"Writer rejected the API key ({status}): {description}", status=status, hint=hint
        )
    if status == 404:
        hint = None
        # A removed model's migration hint was shown as a warning before the request.
        if model and model != DEFAULT_MODEL and not removed_model_warning(model):
            hint = f"Check the model name; {DEFAULT_MODEL} is the current default."
        return NotFoundError(f"Not found (404): {description}", status=status, hint=hint)
    if status == 429:
        return RateLimitError(f"Rate limited (429): {description}", status=status)
    if status in RETRYABLE_STATUSES or status >= 500:
        return ServerError(f"Writer had a problem ({status}): {description}", status=status)
    return BadRequestError(f"Writer refused the request ({status}): {description}", status=status)


def redirect_error(response: httpx.Response) -> RedirectError:
    """A 3xx: where the server pointed (resolved against the request URL), not followed."""
    status = response.status_code
    location = response.headers.get("location")
    where = ""
    if location:
        try:
            target = str(response.request.url.join(location))
        except (httpx.InvalidURL, ValueError, TypeError):
            target = location
        where = f" to {_clip(printable(target), 200)}"
    return RedirectError(
        f"The server redirected the request ({status}){where}; "
        "it was not followed, so the key was not sent there.",
        status=status,
        hint="If that address is right, set WRITER_BASE_URL (or %config WriterMagics.base_url)"
        " to it.",
    )


def retry_reason(error: WriterError) -> str:
    """A retried failure in a few words for the live status: ``429 rate limited``,
    ``503 server error``, ``connection failed``, ``timed out`` (the full message is kept
    for the one line shown if the last attempt fails too)."""
    if isinstance(error, RateLimitError):
        return f"{error.status} rate limited"
    if isinstance(error, APIStatusError):
        return f"{error.status} server error"
    if isinstance(error, RequestTimeoutError):
        return "timed out"
    if isinstance(error, APIConnectionError):
        return "connection failed"
    return _clip(error.message, 60)


class WriterClient:
    """One per kernel: keep-alive connections are reused across cells."""

    def __init__(self, settings: ClientSettings) -> None:
        #: Replaceable between requests (a new key or timeout); the pool is kept.
        self.settings = settings
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
            headers={"User-Agent": f"writer-magics/{__version__}"},
            follow_redirects=False,
        )

    def check(self) -> None:
        """Raise the one-line ConfigurationError before anything is shown or sent."""
        try:
            check_settings(self.settings)
        except WriterError as exc:
            raise exc.redacted([self.settings.api_key]) from None

    async def aclose(self) -> None:
        await self._http.aclose()

    def opener(self, request: Request) -> Callable[[], AsyncIterator[Event]]:
        """A function that starts this request's event stream (for the runner).

        The ``total_timeout`` clock starts now, so the requests a cell opens together
        share one deadline (a request waiting for a free slot uses up its time too).
        """
        deadline = self.deadline()
        return lambda: self.events(
            request.endpoint, request.body, timeout=request.timeout, deadline=deadline
        )

    def deadline(self) -> float | None:
        """``time.monotonic()`` by which requests opened now must end (None: no bound)."""
        total = self.settings.total_timeout
        return None if not total else time.monotonic() + total

    def url(self, endpoint: Endpoint) -> str:
        return join_url(self.settings.base_url, PATHS[endpoint])

    async def get_json(self, path: str, *, timeout: float | None = None) -> Any:
        """``GET`` one JSON document (``path`` like ``/v1/models``); no retries.

        ``timeout`` (seconds, for connecting and reading) defaults to the settings'.
        Raises the same one-line errors as a POST: ConfigurationError (no key, bad URL),
        APIConnectionError, RequestTimeoutError, APIStatusError subclasses,
        MalformedEventError (not JSON); the key is redacted from all of them.
        """
        check_settings(self.settings)
        url = join_url(self.settings.base_url, path)
        headers = {"Authorization": f"Bearer {self.settings.api_key}", "Accept": "application/json"}
        limit = httpx.Timeout(
            timeout or self.settings.read_timeout,
            connect=timeout or self.settings.connect_timeout,
        )
        request = self._http.build_request("GET", url, headers=headers, timeout=limit)
        overflow = f"The answer to GET {path} is over {MAX_BODY_BYTES >> 20} MB."
        try:
            try:
                response = await self._http.send(request, stream=True)
                try:
                    _Bounded.wrap(response, MAX_BODY_BYTES, overflow)
                    await response.aread()
                finally:
                    await response.aclose()
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise APIConnectionError(
                    f"Could not connect to {self.settings.base_url}: {_reason(exc)}",
                    hint="Check your network and WRITER_BASE_URL.",
                ) from None
            except httpx.TimeoutException:
                raise RequestTimeoutError(
                    f"No answer from {self.settings.base_url} within {limit.read:g} s."
                ) from None
            except httpx.HTTPError as exc:
                raise APIConnectionError(f"The request to {url} failed: {_reason(exc)}") from None
            try:
                parsed: Any = response.json()
            except (ValueError, RecursionError):
                if not response.is_error:
                    raise MalformedEventError(
                        f"the server's answer to GET {path} is not JSON"
                    ) from None
                parsed = None
            if response.is_error:
                raise status_error(
                    response.status_code,
                    parsed,
                    response.text,
                    None,
                    secrets=[self.settings.api_key],
                    key_source=self.settings.key_source,
                )
            return parsed
        except WriterError as exc:
            raise exc.redacted([self.settings.api_key]) from None

    async def events(
        self,
        endpoint: Endpoint,
        body: JSON,
        *,
        timeout: float | None = None,
        deadline: float | None = None,
        retry_rate_limit: bool = True,
    ) -> AsyncIterator[Event]:
        """POST the body and yield its events, streaming or not, with retries.

        ``timeout`` (seconds, default ``read_timeout``) bounds the wait for each next
        event; ``deadline`` (a ``time.monotonic()`` value) bounds everything, retries
        included. Retries happen only while nothing has been yielded; afterwards a
        failure is raised as it is so that the text already shown stays the truth.
        Before each retry's wait a :class:`~.events.Retrying` event is yielded (the live
        status shows it; nothing folds or caches it), so a retry that then succeeds
        leaves no trace on screen, and only the last attempt's failure is raised.
        Every error raised is a :class:`WriterError` with the key redacted. With
        ``retry_rate_limit=False`` a 429 is raised at once as a :class:`RateLimitError`
        whose ``retry_after`` holds the server's Retry-After seconds (a batch paces
        itself instead of each request waiting in its slot).
        """
        self.check()
        settings = self.settings  # one request, one set of settings
        secrets = [settings.api_key]
        retries = 0
        while True:
            yielded = False
            try:
                attempt = _Attempt(self._http, settings, endpoint, body, timeout, deadline)
                # The attempt's stream is read here, not re-yielded by a generator of the
                # attempt: a long stream has tens of thousands of events (the hot path).
                try:
                    stream = await attempt.open(retries)
                    async for event in stream:
                        yielded = True
                        yield event
                except httpx.HTTPError as exc:
                    raise attempt.failure(exc) from None
                finally:
                    await attempt.close()
                return
            except _Retry as retry:
                error = retry.error.redacted(secrets)
                if not retry_rate_limit and isinstance(error, RateLimitError):
                    if retry.response is not None:
                        error.retry_after = _retry_after(retry.response.headers)
                    raise error from None
                if yielded or retries >= settings.max_retries:
                    raise error from None
                wait = retry_wait(retry.response, retries, settings.max_retry_wait)
                if deadline is not None and time.monotonic() + wait >= deadline:
                    raise error from None
                retries += 1
                reason = redact(retry_reason(error), secrets)
                yield Retrying(wait, retries + 1, settings.max_retries + 1, reason)
                await asyncio.sleep(wait)
            except WriterError as exc:
                raise exc.redacted(secrets) from None


class _Attempt:
    """One try of one request: HTTP status, body and SSE to events, every wait bounded."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: ClientSettings,
        endpoint: Endpoint,
        body: JSON,
        timeout: float | None,
        deadline: float | None,
    ) -> None:
        self.http = http
        self.settings = settings
        self.endpoint = endpoint
        self.body = body
        self.idle = timeout if timeout is not None else settings.read_timeout
        self.deadline = deadline
        self.base = settings.base_url
        #: The response's Content-Encoding, for the message when it lies.
        self.encoding = ""
        self.response: httpx.Response | None = None
        self.watch = _Watchdog(self.idle, deadline)

    async def within(self, awaitable: Awaitable[T]) -> T:
        """Await one step (headers, an event, a body) under the idle bound and the deadline."""
        try:
            return await self.watch.wait(awaitable)
        except _Expired as expired:
            raise self.timeout_error(expired.total) from None

    def timeout_error(self, total: bool) -> RequestTimeoutError:
        if total:
            return RequestTimeoutError(
                f"The request to {self.base} was stopped after WriterMagics.total_timeout "
                f"({self.settings.total_timeout or 0:g} s); anything received so far is kept.",
                hint="Raise it with %config WriterMagics.total_timeout = S (0: no limit).",
            )
        return RequestTimeoutError(
            f"No new event from {self.base} within {self.idle:g} s; "
            "anything received so far is kept.",
            hint="Raise it with --timeout S or %config WriterMagics.read_timeout "
            "(seconds without a new event).",
        )

    async def open(self, retries: int) -> AsyncIterator[Event]:
        """Send the request; its events, read lazily (a failed status raises here).

        Raises :class:`_Retry` for what may be retried, a :class:`WriterError` for the
        rest, and httpx errors as they are (:meth:`failure` turns them into one line);
        :meth:`close` must follow in every case. (A coroutine returning the stream
        rather than a generator re-yielding it: one asynchronous hand-off less per
        event.)
        """
        headers = {
            "Authorization": f"Bearer {self.settings.api_key}",
            "Accept": "text/event-stream" if self.body.get("stream") else "application/json",
            "X-Retry-Count": str(retries),
        }
        http_timeout = httpx.Timeout(self.idle, connect=self.settings.connect_timeout)
        request = self.http.build_request(
            "POST",
            join_url(self.base, PATHS[self.endpoint]),
            json=self.body,
            headers=headers,
            timeout=http_timeout,
        )
        # Headers may take a connection plus one idle wait (a trickle cannot stretch it).
        self.watch.allow(self.settings.connect_timeout)
        response = await self.within(self.http.send(request, stream=True))
        self.response = response
        self.encoding = printable(response.headers.get("content-encoding", ""))[:40]
        if 300 <= response.status_code < 400:  # never followed: the key would go along
            raise redirect_error(response)
        if response.is_error:
            raise await self._status_failure(response)
        if "text/event-stream" in response.headers.get("content-type", ""):
            overflow = (
                f"The server at {self.base} sent over {MAX_EVENT_BYTES >> 20} MB "
                "without ending an event; "
                "the text received so far is kept."
            )
            return self._stream_events(response, _Bounded.wrap(response, MAX_EVENT_BYTES, overflow))
        overflow = (
            f"The answer from {self.base} is over {MAX_BODY_BYTES >> 20} MB; nothing is kept."
        )
        _Bounded.wrap(response, MAX_BODY_BYTES, overflow)
        await self.within(response.aread())
        try:
            events = decode_response(self.endpoint, self._json(response))
        except RecursionError:
            raise MalformedEventError("the server's answer is nested too deeply to read") from None
        return _each(events)

    async def close(self) -> None:
        """Close the response (if one came) and stop the watchdog's timer."""
        try:
            if self.response is not None:
                await self.response.aclose()
        except httpx.HTTPError as exc:
            raise self.failure(exc) from None
        finally:
            self.watch.close()

    def failure(self, exc: httpx.HTTPError) -> Exception:
        """An httpx error while sending or reading, as the one-line error (or a _Retry)."""
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return _Retry(
                APIConnectionError(
                    f"Could not connect to {self.base}: {_reason(exc)}",
                    hint="Check your network and WRITER_BASE_URL.",
                )
            )
        if isinstance(exc, httpx.TimeoutException):
            return self.timeout_error(False)
        if isinstance(exc, httpx.DecodingError):
            claim = (
                f"it is marked Content-Encoding: {self.encoding} but is not"
                if self.encoding
                else _reason(exc)
            )
            return MalformedEventError(
                f"The answer from {self.base} could not be decoded ({claim}); "
                "the text received so far is kept."
            )
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            return StreamInterrupted(
                f"The connection to {self.base} broke ({_reason(exc)}); "
                "the text received so far is kept."
            )
        return APIConnectionError(f"The request to {self.base} failed ({_reason(exc)}).")

    async def _status_failure(self, response: httpx.Response) -> Exception:
        text = await self._error_text(response)
        try:
            parsed: Any = json.loads(text)
        except (ValueError, RecursionError):
            parsed = None
        error = status_error(
            response.status_code,
            parsed,
            text,
            self.body.get("model"),
            secrets=[self.settings.api_key],
            key_source=self.settings.key_source,
        )
        if should_retry(response):
            return _Retry(error, response)
        return error

    async def _error_text(self, response: httpx.Response) -> str:
        """Up to MAX_ERROR_BODY of an error body, decoded; what arrived if it stalls or lies."""
        chunks: list[bytes] = []
        size = 0
        stream = response.aiter_bytes()
        try:
            while size < MAX_ERROR_BODY:
                chunk = await self.within(anext(stream))
                chunks.append(chunk)
                size += len(chunk)
        except (StopAsyncIteration, RequestTimeoutError, httpx.HTTPError):
            pass
        raw = b"".join(chunks)[:MAX_ERROR_BODY]
        return raw.decode(response.encoding or "utf-8", errors="replace")

    async def _stream_events(
        self, response: httpx.Response, bound: _Bounded
    ) -> AsyncIterator[Event]:
        """The SSE events as typed events; the watchdog bounds the wait for each one,
        ``bound`` the bytes between two of them (:data:`MAX_EVENT_BYTES`).

        (``begin``/``end`` around the read rather than :meth:`within` per event: a long
        stream has tens of thousands of events, and this loop is the hot path.)
        """
        endpoint = self.endpoint
        finished = endpoint == "completions"  # completions streams carry no finish reason
        sse_events = EventSource(response).aiter_sse()
        watch = self.watch
        task = asyncio.current_task()  # the one task reading this stream
        watch.begin(task)
        try:
            async for sse in sse_events:
                watch.end()
                bound.size = 0
                try:
                    decoded = decode_sse_data(endpoint, sse.data, sse.event)
                except RecursionError:
                    raise MalformedEventError(
                        "the server sent an event nested too deeply to read"
                    ) from None
                for event in decoded:
                    if type(event) is not TextDelta:  # nearly all are: no other check
                        if type(event) is StreamEnd:
                            await _drain(sse_events)
                            return
                        if type(event) is ChoiceFinished:
                            finished = True
                    yield event
                watch.begin(task)
        except asyncio.CancelledError:
            expired = watch.expired()
            if expired is None:
                raise
            raise self.timeout_error(expired) from None
        finally:
            watch.end()
        if not finished:
            raise StreamInterrupted(
                "The stream ended before the model finished; the text received so far is kept."
            )

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except RecursionError:
            raise MalformedEventError("the server's answer is nested too deeply to read") from None
        except ValueError:
            shown = _clip(printable(redact(response.text, [self.settings.api_key])), 80)
            raise MalformedEventError(f"the server's answer is not JSON: {shown!r}") from None


class _Bounded(httpx.AsyncByteStream):
    """A response body that raises ``MalformedEventError(overflow)`` once ``size`` (bytes
    received since the reader last set it to 0) passes ``limit``.

    Raw bytes, as received (a compressed body is counted before decoding).
    """

    def __init__(self, inner: httpx.AsyncByteStream, limit: int, overflow: str) -> None:
        self.inner = inner
        self.limit = limit
        self.overflow = overflow
        self.size = 0

    @classmethod
    def wrap(cls, response: httpx.Response, limit: int, overflow: str) -> _Bounded:
        """Put a bound around ``response``'s body (before anything of it is read)."""
        if not isinstance(response.stream, httpx.AsyncByteStream):  # pragma: no cover
            raise TypeError("an asynchronous response was expected")
        bounded = cls(response.stream, limit, overflow)
        response.stream = bounded
        return bounded

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.size += len(chunk)
            if self.size > self.limit:
                raise MalformedEventError(self.overflow)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Expired(Exception):
    """Internal: the watchdog stopped a wait (``total``: the deadline, else the idle bound)."""

    def __init__(self, total: bool) -> None:
        super().__init__("expired")
        self.total = total


class _Watchdog:
    """Bounds the time without progress (``idle`` seconds) and in total (a deadline).

    As ``asyncio.timeout`` does, it cancels the waiting task and turns that into an
    error; but with one timer per idle window instead of one per event (a long stream
    has tens of thousands of events): :meth:`end` notes progress, and the timer re-arms
    itself until ``idle`` seconds pass with a wait pending (between :meth:`begin` and
    :meth:`end`) and no progress, or the deadline passes. It only ever cancels a task
    inside a wait, never while the stream's consumer runs. Times are
    ``time.monotonic()`` seconds.
    """

    def __init__(self, idle: float, deadline: float | None) -> None:
        self.loop = asyncio.get_running_loop()
        self.idle = idle
        self.deadline = deadline
        self.last = time.monotonic()
        #: Extra seconds for the next wait only (the connection, before the headers).
        self.grace = 0.0
        self.task: asyncio.Task[Any] | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.fired: bool | None = None  # True: the deadline; False: the idle bound
        self.closed = False

    def allow(self, seconds: float) -> None:
        """Give the next :meth:`wait` ``seconds`` more than the idle bound."""
        self.grace = seconds
        self._arm()

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """``await awaitable`` under the bounds; raises :class:`_Expired` when they stop it."""
        self.begin()
        try:
            return await awaitable
        except asyncio.CancelledError:
            expired = self.expired()
            if expired is None:
                raise
            raise _Expired(expired) from None
        finally:
            self.end()
            if self.grace:
                self.grace = 0.0
                self._arm()

    def begin(self, task: asyncio.Task[Any] | None = None) -> None:
        """A wait starts in ``task`` (default: the current task): from now on the timer
        may cancel it. (The hot loop passes its task: no lookup per event.)"""
        self.task = task if task is not None else asyncio.current_task()
        if self.handle is None:
            self._arm()

    def end(self) -> None:
        """The wait is over (something arrived): progress, and no cancelling until ``begin``."""
        self.task = None
        self.last = time.monotonic()

    def expired(self) -> bool | None:
        """After a ``CancelledError`` in a wait: True (deadline) / False (idle) if it was ours.

        ``None``: someone else cancelled too (Ctrl-C), so the cancellation goes on.
        """
        fired, self.fired = self.fired, None
        if fired is None:
            return None
        if sys.version_info >= (3, 11) and self.task is not None and self.task.uncancel() > 0:
            return None
        return fired

    def close(self) -> None:
        self.closed = True
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _due(self) -> float:
        when = self.last + self.idle + self.grace
        return when if self.deadline is None else min(when, self.deadline)

    def _arm(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if not self.closed:
            delay = max(0.0, self._due() - time.monotonic())
            self.handle = self.loop.call_later(delay, self._check)

    def _check(self) -> None:
        self.handle = None
        now = time.monotonic()
        past_deadline = self.deadline is not None and now >= self.deadline
        if self.task is not None and (past_deadline or now >= self.last + self.idle + self.grace):
            self.fired = past_deadline
            self.task.cancel()
        elif not past_deadline:
            self._arm()


async def _wait(awaitable: Awaitable[T], seconds: float) -> T:
    """``await`` bounded by ``seconds``, in this task (the HTTP stream stays in one task)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10


async def _drain(events: AsyncIterator[Any]) -> None:
    """Read what follows ``[DONE]`` for a moment so the connection can be reused."""
    end = time.monotonic() + DRAIN_SECONDS
    try:
        while (left := end - time.monotonic()) > 0:
            await _wait(anext(events), left)
    except (StopAsyncIteration, asyncio.TimeoutError, httpx.HTTPError, WriterError):
        pass


async def _each(events: list[Event]) -> AsyncIterator[Event]:
    """A whole (non-streamed) answer's events, one by one."""
    for event in events:
        yield event


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Retry(Exception):
    """Internal: a failure that may be retried if nothing was yielded yet."""

    def __init__(self, error: WriterError, response: httpx.Response | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.response = response


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
