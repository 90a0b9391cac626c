"""The thin I/O layer: one pooled ``httpx.AsyncClient`` talking to Writer.

It authenticates, enforces the safety rules on where the key may go, retries what
is safe to retry (only before the first event of a stream: text a user has seen is
never replayed), and turns HTTP and SSE into the typed events of :mod:`api`. All
decoding lives in :mod:`api`; all messages live in :mod:`errors`.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource

from writer_magics import __version__
from writer_magics.api import (
    DEFAULT_MODEL,
    JSON,
    PATHS,
    ChoiceFinished,
    Endpoint,
    Event,
    Request,
    StreamEnd,
    decode_response,
    decode_sse_data,
    error_description,
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
    RequestTimeoutError,
    ServerError,
    StreamInterrupted,
    WriterError,
)
from writer_magics.settings import DEFAULT_BASE_URL

RETRYABLE_STATUSES = frozenset({408, 409, 429})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclass(frozen=True)
class ClientSettings:
    """Where to send requests and how patiently; the key never appears in a repr."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_retries: int = 2
    max_retry_wait: float = 60.0

    def __repr__(self) -> str:
        key = "set" if self.api_key else "missing"
        return (
            f"ClientSettings(base_url={self.base_url!r}, api_key=<{key}>, "
            f"connect_timeout={self.connect_timeout}, read_timeout={self.read_timeout}, "
            f"max_retries={self.max_retries})"
        )


def check_settings(settings: ClientSettings) -> None:
    """Refuse to send anything that would leak the key or could never work."""
    if not settings.api_key:
        raise ConfigurationError(
            "No Writer API key is set.",
            hint="Set WRITER_API_KEY in the environment or a .env file, or run "
            '%config WriterMagics.api_key = "..." (or use the bundled server: '
            "python -m writer_magics serve).",
        )
    url = httpx.URL(settings.base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"The base URL {settings.base_url!r} is not an http(s) URL.")
    if url.scheme == "http" and url.host not in LOOPBACK_HOSTS and not url.host.startswith("127."):
        raise ConfigurationError(
            f"Refusing to send the API key over plain http to {settings.base_url}; "
            "use https (plain http is only allowed to 127.0.0.1/localhost).",
        )


def retry_wait(response: httpx.Response | None, retries_taken: int, cap: float) -> float:
    """The SDK's rule: honour ``retry-after-ms``/``retry-after`` within the cap, else backoff."""
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
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else parsed.timestamp() - time.time()


def should_retry(response: httpx.Response) -> bool:
    override = str(response.headers.get("x-should-retry", ""))
    if override in ("true", "false"):
        return override == "true"
    status: int = response.status_code
    return status in RETRYABLE_STATUSES or status >= 500


def status_error(status: int, body: Any, text: str, model: str | None) -> APIStatusError:
    """One readable sentence for an HTTP error, Writer's own description first."""
    description = error_description(body) or text.strip()[:300] or f"HTTP {status}"
    if status in (401, 403):
        return AuthenticationError(
            f"Writer rejected the API key ({status}): {description}", status=status
        )
    if status == 404:
        hint = None
        if model and removed_model_warning(model):
            hint = removed_model_warning(model)
        elif model and model != DEFAULT_MODEL:
            hint = f"Check the model name; {DEFAULT_MODEL} is the current default."
        return NotFoundError(f"Not found (404): {description}", status=status, hint=hint)
    if status == 429:
        return RateLimitError(f"Rate limited (429): {description}", status=status)
    if status in RETRYABLE_STATUSES or status >= 500:
        return ServerError(f"Writer had a problem ({status}): {description}", status=status)
    return BadRequestError(f"Writer refused the request ({status}): {description}", status=status)


RetryHook = Callable[[int, float, str], None]


class WriterClient:
    """One per kernel: keep-alive connections are reused across cells."""

    def __init__(self, settings: ClientSettings, *, on_retry: RetryHook | None = None) -> None:
        #: Replaceable between requests (a new key or timeout); the pool is kept.
        self.settings = settings
        self.on_retry = on_retry
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
            headers={"User-Agent": f"writer-magics/{__version__}"},
        )

    def check(self) -> None:
        """Raise the one-line ConfigurationError before anything is shown or sent."""
        check_settings(self.settings)

    async def aclose(self) -> None:
        await self._http.aclose()

    def opener(self, request: Request) -> Callable[[], AsyncIterator[Event]]:
        """A function that starts this request's event stream (for the runner)."""
        return lambda: self.events(request.endpoint, request.body, timeout=request.timeout)

    def url(self, endpoint: Endpoint) -> str:
        return self.settings.base_url.rstrip("/") + PATHS[endpoint]

    async def events(
        self,
        endpoint: Endpoint,
        body: JSON,
        *,
        timeout: float | None = None,
        retry_rate_limit: bool = True,
    ) -> AsyncIterator[Event]:
        """POST the body and yield its events, streaming or not, with retries.

        Retries happen only while nothing has been yielded; afterwards a failure is
        raised as it is so that the text already shown stays the truth. With
        ``retry_rate_limit=False`` a 429 is raised at once as a :class:`RateLimitError`
        whose ``retry_after`` holds the server's Retry-After seconds (a batch paces
        itself instead of each request waiting in its slot).
        """
        check_settings(self.settings)
        retries = 0
        while True:
            yielded = False
            try:
                async for event in self._attempt(endpoint, body, timeout, retries):
                    yielded = True
                    yield event
                return
            except _Retry as retry:
                if not retry_rate_limit and isinstance(retry.error, RateLimitError):
                    error = retry.error.redacted([self.settings.api_key])
                    assert isinstance(error, RateLimitError)
                    if retry.response is not None:
                        error.retry_after = _retry_after(retry.response.headers)
                    raise error from None
                if yielded or retries >= self.settings.max_retries:
                    raise retry.error.redacted([self.settings.api_key]) from None
                wait = retry_wait(retry.response, retries, self.settings.max_retry_wait)
                if self.on_retry is not None:
                    self.on_retry(retries + 1, wait, retry.error.message)
                retries += 1
                await asyncio.sleep(wait)
            except WriterError as exc:
                raise exc.redacted([self.settings.api_key]) from None

    async def _attempt(
        self, endpoint: Endpoint, body: JSON, timeout: float | None, retries: int
    ) -> AsyncIterator[Event]:
        headers = {
            "Authorization": f"Bearer {self.settings.api_key}",
            "Accept": "text/event-stream" if body.get("stream") else "application/json",
            "X-Retry-Count": str(retries),
        }
        read_timeout = timeout if timeout is not None else self.settings.read_timeout
        request_timeout = httpx.Timeout(read_timeout, connect=self.settings.connect_timeout)
        url = self.url(endpoint)
        try:
            async with self._http.stream(
                "POST", url, json=body, headers=headers, timeout=request_timeout
            ) as response:
                if response.is_error:
                    await response.aread()
                    raise self._status_failure(response, body)
                if "text/event-stream" in response.headers.get("content-type", ""):
                    async for event in self._stream_events(endpoint, response, read_timeout):
                        yield event
                else:
                    await response.aread()
                    for event in decode_response(endpoint, _json(response)):
                        yield event
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _Retry(
                APIConnectionError(
                    f"Could not connect to {self.settings.base_url}: {_reason(exc)}",
                    hint="Check your network and WRITER_BASE_URL.",
                )
            ) from None
        except httpx.TimeoutException:
            raise RequestTimeoutError(
                f"No answer from {self.settings.base_url} within {read_timeout:g} s; "
                "anything received so far is kept.",
                hint="Raise it with --timeout S or %config WriterMagics.read_timeout.",
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise StreamInterrupted(
                f"The connection to {self.settings.base_url} broke ({_reason(exc)}); "
                "the text received so far is kept."
            ) from None

    def _status_failure(self, response: httpx.Response, body: JSON) -> Exception:
        error = status_error(
            response.status_code, _json_or_none(response), response.text, body.get("model")
        )
        if should_retry(response):
            return _Retry(error, response)
        return error

    async def _stream_events(
        self, endpoint: Endpoint, response: httpx.Response, read_timeout: float
    ) -> AsyncIterator[Event]:
        finished = endpoint == "completions"  # completions streams carry no finish reason
        done = False
        async for sse in EventSource(response).aiter_sse():
            if done:  # read to the end so the connection goes back to the pool
                continue
            for event in decode_sse_data(endpoint, sse.data, sse.event):
                if isinstance(event, StreamEnd):
                    done = True
                    break
                if isinstance(event, ChoiceFinished):
                    finished = True
                yield event
        if not finished and not done:
            raise StreamInterrupted(
                "The stream ended before the model finished; the text received so far is kept."
            )


class _Retry(Exception):
    """Internal: a failure that may be retried if nothing was yielded yet."""

    def __init__(self, error: WriterError, response: httpx.Response | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.response = response


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise MalformedEventError(
            f"the server's answer is not JSON: {response.text[:80]!r}"
        ) from None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
