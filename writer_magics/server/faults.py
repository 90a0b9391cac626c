"""Per-request test controls: latency, pacing and injected faults.

They come from headers (``X-Mock-Latency``, ``X-Mock-Tokens-Per-Second``,
``X-Mock-Fault``, ``X-Mock-Fault-Times``) or from markers in the prompt / last user
message (``[[latency:0.5]]``, ``[[tps:20]]``, ``[[fault:503x2]]``) so notebooks can
trigger them. Markers are stripped from every message before generation.

Fault names: any HTTP status 400-599 (``429`` gets ``Retry-After: 1``; variants
``429:retry-after=0.2`` and ``429:retry-after-ms=150``), ``drop[:N]``,
``stall[:SECONDS]``, ``malformed``, ``error-event``, ``no-done``. A suffix ``xN``
(or the ``X-Mock-Fault-Times: N`` header) makes the fault fire only for the first N
requests with the same fault and body; later retries succeed.

Server-wide, :class:`RateLimiter` (``--rate-limit-fraction F``, ``start_server(
rate_limit_fraction=F)``) answers a fixed share of all requests with 429 and
``Retry-After`` (``--rate-limit-retry-after``, default 1 s), as a busy API would.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .protocol import bad_request

MARKER_RE = re.compile(
    r"\[\[\s*(fault|latency|tps|tokens-per-second)\s*:\s*([^\]]*?)\s*\]\]", re.IGNORECASE
)
_TIMES_RE = re.compile(r"^(?P<spec>.+?)x(?P<times>\d+)$")
#: Content events sent before a mid-stream fault (drop, stall, malformed, error-event).
DEFAULT_CHUNKS_BEFORE_FAULT = 3
DEFAULT_STALL_SECONDS = 30.0
STREAM_FAULTS = ("drop", "stall", "malformed", "error-event", "no-done")


@dataclass(frozen=True)
class Fault:
    """One injected fault; ``spec`` (plus the body hash) keys the attempt counter."""

    spec: str
    kind: str  # "status" or one of STREAM_FAULTS
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    chunks: int = DEFAULT_CHUNKS_BEFORE_FAULT
    seconds: float = DEFAULT_STALL_SECONDS
    times: int | None = None


def parse_fault(text: str, times: int | None = None) -> Fault:
    """Parse ``503``, ``429:retry-after=0.2x2``, ``stall:5``, ``drop:1`` ..."""
    raw = text.strip()
    match = _TIMES_RE.match(raw)
    if match and times is None:
        raw, times = match.group("spec"), int(match.group("times"))
    name, _, arg = raw.partition(":")
    name = name.strip().lower()
    arg = arg.strip()
    try:
        if name.isdigit() and 400 <= int(name) <= 599:
            status = int(name)
            headers: list[tuple[str, str]] = []
            if arg:
                key, _, value = arg.partition("=")
                if key.lower() not in ("retry-after", "retry-after-ms") or not value:
                    raise ValueError(arg)
                float(value)
                headers.append((key.lower(), value))
            elif status == 429:
                headers.append(("retry-after", "1"))
            return Fault(raw, "status", status=status, headers=tuple(headers), times=times)
        if name in ("drop", "malformed", "error-event"):
            chunks = int(arg) if arg else DEFAULT_CHUNKS_BEFORE_FAULT
            return Fault(raw, name, chunks=chunks, times=times)
        if name == "stall":
            seconds = float(arg) if arg else DEFAULT_STALL_SECONDS
            return Fault(raw, name, seconds=seconds, times=times)
        if name == "no-done" and not arg:
            return Fault(raw, name, times=times)
    except ValueError:
        pass
    raise bad_request(f"Unknown mock fault {text!r}", "error.mock.unknown_fault")


def _positive_float(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise bad_request(
            f"{name}: expected a number, got {value!r}", "error.mock.invalid"
        ) from None
    if number < 0:
        raise bad_request(f"{name}: must be >= 0, got {value!r}", "error.mock.invalid")
    return number


@dataclass
class Directives:
    """Test controls for one request."""

    latency: float | None = None
    tokens_per_second: float | None = None
    faults: list[Fault] = field(default_factory=list)


def _strip(text: str) -> str:
    cleaned = MARKER_RE.sub("", text)
    return re.sub(r"[ \t]{2,}", " ", cleaned).strip() if cleaned != text else text


def _strip_content(content: Any) -> Any:
    if isinstance(content, str):
        return _strip(content)
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part = {**part, "text": _strip(part["text"])}
            out.append(part)
        return out
    return content


def _marker_text(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("prompt"), str):
        return str(body["prompt"])
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return " ".join(
                        str(p.get("text")) for p in content if isinstance(p, dict) and "text" in p
                    )
                return ""
    return ""


def strip_markers(body: Any) -> Any:
    """A copy of ``body`` with markers removed from the prompt and every message."""
    if not isinstance(body, dict):
        return body
    clean = copy.copy(body)
    if isinstance(body.get("prompt"), str):
        clean["prompt"] = _strip(body["prompt"])
    if isinstance(body.get("messages"), list):
        clean["messages"] = [
            {**m, "content": _strip_content(m.get("content"))}
            if isinstance(m, dict) and "content" in m
            else m
            for m in body["messages"]
        ]
    return clean


def directives(headers: Mapping[str, str], body: Any) -> Directives:
    """Collect controls from headers, then markers (markers win)."""
    out = Directives()
    if "x-mock-latency" in headers:
        out.latency = _positive_float("X-Mock-Latency", headers["x-mock-latency"])
    if "x-mock-tokens-per-second" in headers:
        out.tokens_per_second = _positive_float(
            "X-Mock-Tokens-Per-Second", headers["x-mock-tokens-per-second"]
        )
    times = None
    if "x-mock-fault-times" in headers:
        times = int(_positive_float("X-Mock-Fault-Times", headers["x-mock-fault-times"]))
    for spec in filter(None, (s.strip() for s in headers.get("x-mock-fault", "").split(","))):
        out.faults.append(parse_fault(spec, times))
    for kind, value in MARKER_RE.findall(_marker_text(body)):
        kind = kind.lower()
        if kind == "fault":
            out.faults.append(parse_fault(value))
        elif kind == "latency":
            out.latency = _positive_float("latency marker", value)
        else:
            out.tokens_per_second = _positive_float("tokens-per-second marker", value)
    return out


def body_hash(body: Any) -> str:
    """Stable hash of a request body (retries of one request share it)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class RateLimiter:
    """Server-wide knob: answer a fixed share of requests with 429 (``--rate-limit-fraction``).

    Deterministic: request number ``n`` (counted from 1 over every chat / completions
    request) is refused when ``floor(n * fraction)`` grows, so 1/3 refuses every third
    request. A refused request gets ``Retry-After: retry_after`` seconds.
    """

    def __init__(self, fraction: float = 0.0, retry_after: float = 1.0) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError(f"the rate-limit fraction must be between 0 and 1, not {fraction}")
        self.fraction = fraction
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._count = 0
        #: How many requests were refused.
        self.refused = 0

    def fires(self) -> bool:
        """Whether this request is refused (and count it)."""
        if self.fraction <= 0:
            return False
        with self._lock:
            self._count += 1
            fired = int(self._count * self.fraction + 1e-9) > int(
                (self._count - 1) * self.fraction + 1e-9
            )
            self.refused += fired
        return fired

    def clear(self) -> None:
        with self._lock:
            self._count = self.refused = 0


class FaultCounter:
    """Counts attempts per (fault, body) so ``xN`` faults fire only N times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

    def fires(self, fault: Fault, key: str) -> bool:
        """Whether ``fault`` applies to this attempt (and count it)."""
        if fault.times is None:
            return True
        with self._lock:
            count = self._counts.get((fault.spec, key), 0) + 1
            self._counts[(fault.spec, key)] = count
        return count <= fault.times

    def clear(self) -> None:
        """Forget all attempts."""
        with self._lock:
            self._counts.clear()
