"""Answers kept on disk: ``--cache`` reuses them, replay mode serves only them.

An answer is stored as the exact event sequence the server produced, so replaying it
drives the same live display (and the same Result) as the original request.

**Key.** sha256 of the canonical JSON (sorted keys, no whitespace) of the endpoint and
the body *without* ``stream`` and ``stream_options``: those change how an answer
arrives, not what it is, so a streamed and a non-streamed identical request share an
entry (a non-streamed recording replays as one piece). Everything else counts,
``random_seed`` and the whole message history included.

**File.** One JSON Lines file, so a teacher can ship it next to the notebook, read it,
and diff it in git: a header line ``{"format": "writer-magics-cache", "version": 1}``
then one entry per line; a later line for the same request wins. Entries are only
ever appended (one ``write`` each, ``O_APPEND``); a new file appears with its header
already in it (written to a temporary file and hard-linked into place), so two
processes creating the cache at once never write the header twice. The key is
recomputed from the stored body on load, so hand-editing a body is safe.

**Damage.** Any line that cannot be read (bad UTF-8 from a disk that filled up, a torn
or hand-broken line, JSON nested too deeply to parse) is skipped and counted; every
good entry still answers, and ``%writer cache --info`` / ``--export`` / ``--clear``
keep working. The count is told once (:meth:`ResponseCache.take_notice`).

**Secrets.** With ``secrets`` (the current API key), every string written (the
request body, answer text, tool-call arguments, tool results, Writer's data) goes
through :func:`errors.redact`, as in the prompt log; a key split over several
streamed pieces is caught because a choice's pieces are redacted joined. Lookups
redact the same way, so a request that quotes the key still finds its entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeAlias, cast

from writer_magics.errors import REDACTED, CacheError, ReplayMissError, redact
from writer_magics.files import check_readable, data_dir, write_atomically
from writer_magics.request import JSON, Endpoint
from writer_magics.transport.events import (
    STATUS_EVENTS,
    ChoiceFinished,
    DataDelta,
    Event,
    LogprobsDelta,
    ResponseInfo,
    StreamEnd,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
    merge_info,
)

FORMAT = "writer-magics-cache"
VERSION = 1
#: Fields that say how an answer travels, not what it is; left out of the key.
TRANSPORT_FIELDS = ("stream", "stream_options")
#: Environment variable naming a cache file to replay (only cached answers, no key).
REPLAY_VARIABLE = "WRITER_MAGICS_REPLAY"
_ENDPOINTS: tuple[Endpoint, ...] = ("completions", "chat")


# --------------------------------------------------------------------------- keys


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, non-ASCII kept: the same request gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(endpoint: str, body: Mapping[str, Any]) -> str:
    """The cache key of a request (see the module docstring for what counts)."""
    content = {k: v for k, v in body.items() if k not in TRANSPORT_FIELDS}
    data = canonical_json({"endpoint": endpoint, "body": content})
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- events


def event_to_json(event: Event) -> JSON:
    """A typed event as a small tagged JSON object (None fields left out)."""
    if isinstance(event, TextDelta):
        data: JSON = {"event": "text", "text": event.text, "choice": event.choice}
    elif isinstance(event, ToolCallDelta):
        data = {
            "event": "tool_call",
            "index": event.index,
            "id": event.id,
            "type": event.type,
            "name": event.name,
            "arguments": event.arguments,
            "choice": event.choice,
        }
    elif isinstance(event, LogprobsDelta):
        data = {"event": "logprobs", "tokens": list(event.tokens), "choice": event.choice}
    elif isinstance(event, DataDelta):
        data = {"event": "data", "name": event.name, "value": event.value, "choice": event.choice}
    elif isinstance(event, ChoiceFinished):
        data = {"event": "finish", "reason": event.reason, "choice": event.choice}
    elif isinstance(event, UsageReport):
        u = event.usage
        usage = {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens,
            "cached_tokens": u.cached_tokens,
            "reasoning_tokens": u.reasoning_tokens,
        }
        data = {"event": "usage", "usage": {k: v for k, v in usage.items() if v is not None}}
    elif isinstance(event, StreamEnd):
        data = {"event": "end"}
    elif isinstance(event, ResponseInfo):
        data = {"event": "response", "fields": event.fields, "whole": event.whole or None}
    else:  # pragma: no cover - a status event (a retry...) is never stored
        raise TypeError(f"not an event to store: {event!r}")
    return {k: v for k, v in data.items() if v is not None}


def event_from_json(data: Any) -> Event:
    """The inverse of :func:`event_to_json`; anything else is a ``ValueError``."""
    if not isinstance(data, dict):
        raise ValueError("an event is not a JSON object")
    kind = data.get("event")
    choice = _int(data, "choice", 0)
    if kind == "text":
        return TextDelta(_str(data, "text"), choice)
    if kind == "tool_call":
        return ToolCallDelta(
            index=_int(data, "index", 0),
            id=_opt_str(data, "id"),
            type=_opt_str(data, "type"),
            name=_opt_str(data, "name"),
            arguments=_opt_str(data, "arguments"),
            choice=choice,
        )
    if kind == "logprobs":
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, dict) for t in tokens):
            raise ValueError("a logprobs event needs a list of token objects")
        return LogprobsDelta(tuple(tokens), choice)
    if kind == "data":
        return DataDelta(_str(data, "name"), data.get("value"), choice)
    if kind == "finish":
        return ChoiceFinished(_opt_str(data, "reason"), choice)
    if kind == "usage":
        usage = data.get("usage")
        if not isinstance(usage, dict):
            raise ValueError("a usage event needs a usage object")
        return UsageReport(Usage(**{f: _opt_int(usage, f) for f in _USAGE_FIELDS}))
    if kind == "end":
        return StreamEnd()
    if kind == "response":
        fields = data.get("fields")
        if not isinstance(fields, dict):
            raise ValueError("a response event needs a 'fields' object")
        return ResponseInfo(fields, whole=data.get("whole") is True)
    raise ValueError(f"unknown event type {kind!r}")


_USAGE_FIELDS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "reasoning_tokens",
)


def _str(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{data.get('event')} event: {name!r} must be a string")
    return value


def _opt_str(data: Mapping[str, Any], name: str) -> str | None:
    return None if data.get(name) is None else _str(data, name)


def _int(data: Mapping[str, Any], name: str, default: int) -> int:
    value = data.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{data.get('event')} event: {name!r} must be an integer")
    return value


def _opt_int(data: Mapping[str, Any], name: str) -> int | None:
    return None if data.get(name) is None else _int(data, name, 0)


# --------------------------------------------------------------------------- entries

#: Deepest nesting an entry may have. Real requests and answers stay far below (a
#: nested JSON schema is a few dozen levels); deeper lines come from damage or a
#: hostile file, and would exhaust Python's recursion in copies, comparisons and
#: redaction (the limit is 1000 frames), so they are refused as unreadable.
MAX_DEPTH = 200


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """``ValueError`` if ``value`` nests lists/objects deeper than ``limit`` (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                raise ValueError(f"nested deeper than {limit} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


@dataclass(frozen=True)
class CachedAnswer:
    """One recorded answer: the request it answers and the events to replay."""

    key: str
    endpoint: Endpoint
    body: JSON
    events: tuple[Event, ...]
    created: str = ""
    """ISO 8601 UTC time of the recording."""

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    def to_json(self) -> JSON:
        return {
            "key": self.key,
            "endpoint": self.endpoint,
            "body": self.body,
            "events": [event_to_json(e) for e in self.events],
            "created": self.created,
        }

    @classmethod
    def from_json(cls, data: Any) -> CachedAnswer:
        """Validate one entry line; the key is recomputed from the body."""
        if not isinstance(data, dict):
            raise ValueError("an entry is not a JSON object")
        check_depth(data)
        endpoint = data.get("endpoint")
        if endpoint not in _ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        body = data.get("body")
        if not isinstance(body, dict):
            raise ValueError("an entry needs a 'body' object")
        raw_events = data.get("events")
        if not isinstance(raw_events, list) or not raw_events:
            raise ValueError("an entry needs a non-empty 'events' list")
        created = data.get("created", "")
        return cls(
            key=request_key(endpoint, body),
            endpoint=cast(Endpoint, endpoint),
            body=body,
            events=tuple(event_from_json(e) for e in raw_events),
            created=created if isinstance(created, str) else "",
        )


@dataclass(frozen=True)
class CacheInfo:
    """What ``%writer cache --info`` shows."""

    path: Path
    entries: int
    size: int
    skipped: int
    read_only: bool


def _header() -> str:
    return canonical_json({"format": FORMAT, "version": VERSION})


def parse_lines(
    lines: Iterable[str | bytes], *, source: str, strict: bool
) -> tuple[list[CachedAnswer], int]:
    """Entries of a cache file and the number of bad lines skipped.

    ``lines`` may be bytes (the file opened in binary): each line is decoded on its
    own, so one line of bad UTF-8 costs one entry, not the file. ``strict`` (imports)
    turns the first bad line into a :class:`CacheError` naming it; otherwise (the live
    cache) bad lines are skipped so one torn write loses one entry. A missing or
    foreign header is an error in both modes: it is not a cache file.
    """
    entries: list[CachedAnswer] = []
    skipped = 0
    header_seen = False
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            if not header_seen:
                raise CacheError(
                    f"{source} is not a writer-magics cache file (its first line is not "
                    "UTF-8 text)."
                ) from None
            if strict:
                raise CacheError(f"{source}, line {number}: not UTF-8 text") from None
            skipped += 1
            continue
        if not line.strip():
            continue
        if not header_seen:
            _check_header(line, source)
            header_seen = True
            continue
        try:
            entries.append(CachedAnswer.from_json(json.loads(line)))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
            if strict:
                reason = (
                    "nested too deeply"
                    if isinstance(exc, RecursionError)
                    else str(exc).splitlines()[0]
                )
                raise CacheError(f"{source}, line {number}: {reason}") from None
            skipped += 1
    return entries, skipped


def _check_header(line: str, source: str) -> None:
    try:
        header = json.loads(line)
    except (ValueError, RecursionError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CacheError(f"{source} is not a writer-magics cache file (no cache header line).")
    version = header.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CacheError(
            f"{source} is a cache of format version {version!r}; this writer-magics "
            f"reads version {VERSION}. Upgrade writer-magics to use it."
        )


# --------------------------------------------------------------------------- the cache


Secrets: TypeAlias = Callable[[], Sequence[str | None]]


def _no_secrets() -> Sequence[str | None]:
    return ()


class ResponseCache:
    """Recorded answers in one JSON Lines file, loaded lazily and reloaded when it changes.

    Safe to use from the cell thread and worker threads of one process (one lock);
    other processes appending to the same file are picked up on the next read.
    ``read_only`` (replay mode) never writes the shipped file. ``secrets`` returns the
    strings to redact from everything written and looked up (the current API key).
    """

    def __init__(
        self, path: Path | str, *, read_only: bool = False, secrets: Secrets = _no_secrets
    ) -> None:
        self.path = Path(path).expanduser()
        self.read_only = read_only
        self.secrets = secrets
        self._lock = threading.Lock()
        self._entries: dict[str, CachedAnswer] = {}
        self._skipped = 0
        self._told = 0  # the skipped count last told to the user
        self._signature: tuple[int, int] | None = None

    def __repr__(self) -> str:
        mode = ", read_only=True" if self.read_only else ""
        return f"ResponseCache({str(self.path)!r}{mode})"

    def _secrets(self) -> list[str]:
        try:
            return [s for s in self.secrets() if s]
        except Exception:  # a bad key setting is reported where the key is used
            return []

    # -- reading

    def _load(self) -> dict[str, CachedAnswer]:
        """The entries by key, re-read only if the file changed (caller holds the lock)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._entries, self._skipped, self._signature = {}, 0, None
            return self._entries
        except OSError as exc:
            raise CacheError(f"Cannot read the cache {self.path}: {_reason(exc)}") from None
        signature = (stat.st_size, stat.st_mtime_ns)
        if signature != self._signature:
            try:
                with self.path.open("rb") as file:
                    entries, self._skipped = parse_lines(file, source=str(self.path), strict=False)
            except OSError as exc:
                raise CacheError(f"Cannot read the cache {self.path}: {_reason(exc)}") from None
            self._entries = {e.key: e for e in entries}
            self._signature = signature
        return self._entries

    def get(self, endpoint: str, body: Mapping[str, Any]) -> CachedAnswer | None:
        """The recorded answer to this request, or None.

        The body is redacted as :meth:`put` stores it, so a request quoting the key
        finds the entry recorded for it.
        """
        secrets = self._secrets()
        if secrets:
            body = _redact_json(dict(body), secrets)
        with self._lock:
            return self._load().get(request_key(endpoint, body))

    def __len__(self) -> int:
        with self._lock:
            return len(self._load())

    @property
    def skipped(self) -> int:
        """Unreadable lines skipped at the last read."""
        return self._skipped

    def take_notice(self) -> str | None:
        """``skipped 2 unreadable lines in PATH`` once per new count, else None."""
        with self._lock:
            if self._skipped == self._told:
                return None
            self._told = self._skipped
            if not self._skipped:
                return None
            return f"skipped {unreadable(self._skipped)} in the cache {self.path}"

    def info(self) -> CacheInfo:
        with self._lock:
            count = len(self._load())
            try:
                size = self.path.stat().st_size
            except OSError:
                size = 0
            self._told = self._skipped  # --info shows the count itself
            return CacheInfo(self.path, count, size, self._skipped, self.read_only)

    def ensure_readable(self) -> None:
        """Replay mode: fail now, clearly, if the file is missing or not a cache."""
        if not self.path.is_file():
            raise CacheError(f"The replay file {self.path} does not exist.")
        with self._lock:
            self._load()

    # -- writing

    def put(
        self,
        endpoint: Endpoint,
        body: Mapping[str, Any],
        events: Sequence[Event],
        *,
        usage: Usage | None = None,
    ) -> str:
        """Record a finished answer (all its events, in order); returns its key.

        Call it only for complete answers (status ``done``, no error). ``usage`` is
        added as a final usage event when the events carry none. No-op when read-only.
        Body and events are redacted with :attr:`secrets` first.
        """
        secrets = self._secrets()
        content = {k: v for k, v in body.items() if k not in TRANSPORT_FIELDS}
        try:
            check_depth(content, MAX_DEPTH - 2)
            if secrets:
                content = _redact_json(content, secrets)
            key = request_key(endpoint, content)
        except (RecursionError, ValueError):
            raise CacheError("the request is nested too deeply to cache") from None
        if self.read_only:
            return key
        recorded = list(events)
        if usage is not None and not any(isinstance(e, UsageReport) for e in recorded):
            at = len(recorded) - (1 if recorded and isinstance(recorded[-1], StreamEnd) else 0)
            recorded.insert(at, UsageReport(usage))
        if not recorded:
            raise ValueError("an answer with no events cannot be cached")
        recorded = collapse_info(recorded)
        try:
            if secrets:
                recorded = redact_events(recorded, secrets)
            answer = CachedAnswer(
                key=key,
                endpoint=endpoint,
                body=content,
                events=tuple(recorded),
                created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            )
            data = answer.to_json()
            check_depth(data)
            line = canonical_json(data)
        except (RecursionError, ValueError):
            raise CacheError("the answer is nested too deeply to cache") from None
        with self._lock:
            self._load()
            self._append([answer], [line])
        return key

    def _append(self, answers: Sequence[CachedAnswer], lines: Sequence[str]) -> None:
        """One ``O_APPEND`` write per call (caller holds the lock).

        A new file is made with its header already in it (a temporary file hard-linked
        into place, which fails if another process made it first), so concurrent
        creators never write the header twice.
        """
        text = "".join(line + "\n" for line in lines)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                _create_with_header(self.path)
            with self.path.open("a+b") as file:
                size = file.seek(0, os.SEEK_END)
                prefix = ""
                if size:
                    file.seek(size - 1)
                    if file.read(1) != b"\n":
                        prefix = "\n"  # end a torn line so it stays one bad line
                file.write((prefix + text).encode("utf-8"))
            stat = self.path.stat()
        except OSError as exc:
            raise CacheError(f"Cannot write the cache {self.path}: {_reason(exc)}") from None
        for answer in answers:
            self._entries[answer.key] = answer
        # The caller loaded the file just before; if nobody else wrote since (the size
        # we appended at is the size we read), our index is the file's content.
        known = len(_header()) + 1 if self._signature is None else self._signature[0]
        self._signature = (stat.st_size, stat.st_mtime_ns) if size == known else None

    def clear(self) -> int:
        """Remove every entry (the file is deleted); returns how many there were.

        Works on a damaged file too (unreadable lines are not answers); a file that
        is not a cache at all is left alone (:class:`CacheError`), and a file that
        cannot be removed (read-only file system) is one :class:`CacheError` line.
        """
        self._writable("clear")
        with self._lock:
            try:
                count = len(self._load())
            except CacheError as exc:
                raise CacheError(f"{exc.message} Nothing was removed.") from None
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise CacheError(
                    f"Cannot clear the cache {self.path}: {_reason(exc)}; nothing was removed."
                ) from None
            self._entries, self._skipped, self._told, self._signature = {}, 0, 0, None
            return count

    def export(self, path: Path | str) -> int:
        """Write every entry (one per request, newest wins) to a new cache file; returns count.

        The copy is written to a temporary file and moved into place, so a failure
        never leaves half a file behind. Unreadable lines are not copied; everything
        is redacted with :attr:`secrets` (entries recorded before a key was known too).
        """
        target = Path(path).expanduser()
        secrets = self._secrets()
        with self._lock:
            entries = list(self._load().values())
        lines = [_header()]
        for entry in entries:
            data = entry.to_json()
            if secrets:
                data = {
                    **data,
                    "body": _redact_json(data["body"], secrets),
                    "events": [
                        event_to_json(e) for e in redact_events(list(entry.events), secrets)
                    ],
                }
            lines.append(canonical_json(data))
        _write_atomically(target, "\n".join(lines) + "\n")
        return len(entries)

    def import_(self, path: Path | str) -> int:
        """Merge another cache file in; returns how many entries were new or changed.

        The whole file is validated first: a bad file is one clear :class:`CacheError`
        and changes nothing.
        """
        self._writable("import into")
        source = Path(path).expanduser()
        try:
            check_readable(source)
            with source.open("rb") as file:
                entries, _ = parse_lines(file, source=str(source), strict=True)
        except FileNotFoundError:
            raise CacheError(f"{source} does not exist.") from None
        except OSError as exc:
            raise CacheError(f"Cannot read {source}: {_reason(exc)}") from None
        with self._lock:
            current = self._load()
            new = {e.key: e for e in entries}
            changed = [e for k, e in new.items() if not _same(current.get(k), e)]
            if changed:
                self._append(changed, [canonical_json(e.to_json()) for e in changed])
            return len(changed)

    def _writable(self, action: str) -> None:
        if self.read_only:
            raise CacheError(f"Cannot {action} {self.path}: it is open read-only (replay mode).")


def unreadable(count: int) -> str:
    """``1 unreadable line`` / ``2 unreadable lines``."""
    return f"{count} unreadable line" + ("" if count == 1 else "s")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _create_with_header(path: Path) -> None:
    """Make ``path`` holding only the header, unless it exists (then leave it alone)."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write((_header() + "\n").encode("utf-8"))
        try:
            os.link(temp, path)  # atomic, and fails if another process was first
        except FileExistsError:
            pass
        except OSError:  # no hard links here: exclusive create, header in one write
            with contextlib.suppress(FileExistsError):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                with os.fdopen(fd, "wb") as file:
                    file.write((_header() + "\n").encode("utf-8"))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


# --------------------------------------------------------------------------- redaction


def _redact_json(value: Any, secrets: Sequence[str]) -> Any:
    """Every string inside ``value`` (keys too) through :func:`errors.redact`."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {redact(str(k), secrets): _redact_json(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_json(v, secrets) for v in value]
    return value


def collapse_info(events: Sequence[Event]) -> list[Event]:
    """The per-chunk :class:`ResponseInfo` events merged into one, where the last was.

    A stream carries one per chunk (thousands); the cache keeps what they add up to,
    so a replayed answer has the same ``Result.raw`` at a fraction of the size.
    """
    streamed = [e for e in events if isinstance(e, ResponseInfo) and not e.whole]
    if len(streamed) < 2:
        return list(events)
    info: JSON = {}
    for chunk in streamed:
        merge_info(info, chunk.fields)
    last = streamed[-1]
    merged: list[Event] = []
    for event in events:
        if event is last:
            merged.append(ResponseInfo(info))
        elif not (isinstance(event, ResponseInfo) and not event.whole):
            merged.append(event)
    return merged


def redact_events(events: Sequence[Event], secrets: Sequence[str]) -> list[Event]:
    """The events with ``secrets`` redacted, a secret split over pieces included.

    A choice's text pieces (and a tool call's argument pieces) are checked joined; if
    the joined text needs redacting, the redacted whole goes in the first piece and
    the other pieces become empty (the replay shows the same, redacted, answer).
    """
    texts: dict[int, str] = {}
    arguments: dict[tuple[int, int], str] = {}
    for event in events:
        if isinstance(event, TextDelta):
            texts[event.choice] = texts.get(event.choice, "") + event.text
        elif isinstance(event, ToolCallDelta) and event.arguments is not None:
            where = (event.choice, event.index)
            arguments[where] = arguments.get(where, "") + event.arguments
    new_texts = {c: redact(t, secrets) for c, t in texts.items()}
    new_args = {w: redact(a, secrets) for w, a in arguments.items()}
    placed_texts: set[int] = set()
    placed_args: set[tuple[int, int]] = set()
    result: list[Event] = []
    for event in events:
        if isinstance(event, TextDelta):
            if new_texts[event.choice] == texts[event.choice]:
                result.append(event)
            elif event.choice not in placed_texts:
                placed_texts.add(event.choice)
                result.append(TextDelta(new_texts[event.choice], event.choice))
        elif isinstance(event, ToolCallDelta):
            where = (event.choice, event.index)
            args = event.arguments
            if args is not None and new_args[where] != arguments[where]:
                args = None if where in placed_args else new_args[where]
                placed_args.add(where)
            result.append(
                ToolCallDelta(
                    index=event.index,
                    id=None if event.id is None else redact(event.id, secrets),
                    type=event.type,
                    name=None if event.name is None else redact(event.name, secrets),
                    arguments=args,
                    choice=event.choice,
                )
            )
        elif isinstance(event, DataDelta):
            result.append(DataDelta(event.name, _redact_json(event.value, secrets), event.choice))
        elif isinstance(event, LogprobsDelta):
            result.append(
                LogprobsDelta(tuple(_redact_json(t, secrets) for t in event.tokens), event.choice)
            )
        else:
            result.append(event)
    return _redact_split_tokens(result, secrets)


def _redact_split_tokens(events: list[Event], secrets: Sequence[str]) -> list[Event]:
    """Logprob tokens that together spell a secret: each such token (and its
    alternatives) becomes ``[REDACTED]``, so the key cannot be read off the tokens."""
    tokens: dict[int, list[str]] = {}
    for event in events:
        if isinstance(event, LogprobsDelta):
            tokens.setdefault(event.choice, []).extend(
                str(t.get("token", "")) for t in event.tokens
            )
    hidden: dict[int, set[int]] = {}
    for choice, texts in tokens.items():
        joined = "".join(texts)
        spans = [
            (at, at + len(secret))
            for secret in secrets
            if len(secret) >= 4
            for at in _occurrences(joined, secret)
        ]
        if not spans:
            continue
        start, marked = 0, set()
        for number, text in enumerate(texts):
            end = start + len(text)
            if any(start < stop and begin < end for begin, stop in spans):
                marked.add(number)
            start = end
        hidden[choice] = marked
    if not hidden:
        return events
    seen: dict[int, int] = {}
    redacted: list[Event] = []
    for event in events:
        if isinstance(event, LogprobsDelta) and event.choice in hidden:
            first = seen.get(event.choice, 0)
            seen[event.choice] = first + len(event.tokens)
            marked = hidden[event.choice]
            event = LogprobsDelta(
                tuple(
                    {**t, "token": REDACTED, "bytes": None, "top_logprobs": []}
                    if first + i in marked
                    else t
                    for i, t in enumerate(event.tokens)
                ),
                event.choice,
            )
        redacted.append(event)
    return redacted


def _occurrences(text: str, part: str) -> Iterator[int]:
    at = text.find(part)
    while at >= 0:
        yield at
        at = text.find(part, at + 1)


def _same(old: CachedAnswer | None, new: CachedAnswer) -> bool:
    """Same request and same answer; when it was recorded does not matter."""
    return old is not None and (old.body, old.events) == (new.body, new.events)


def _write_atomically(target: Path, text: str) -> None:
    try:
        write_atomically(target, text)  # a user path: its folder must exist
    except OSError as exc:
        raise CacheError(f"Cannot write {target}: {_reason(exc)}") from None


# --------------------------------------------------------------------------- replay


async def replay_events(answer: CachedAnswer, *, pace: float = 0.0) -> AsyncIterator[Event]:
    """Yield a recorded answer's events, as an opener for ``execute(openers=...)``.

    ``pace`` seconds pass before each text or tool-call piece so the live view looks
    live; with 0 the loop is still yielded to now and then, so Ctrl-C stays prompt.
    """
    for number, event in enumerate(answer.events):
        if pace > 0 and isinstance(event, TextDelta | ToolCallDelta):
            await asyncio.sleep(pace)
        elif number % 64 == 0:
            await asyncio.sleep(0)
        yield event


def replay_opener(answer: CachedAnswer, *, pace: float = 0.0) -> Callable[[], AsyncIterator[Event]]:
    """``lambda: replay_events(answer, pace=pace)`` with the types spelled out."""
    return lambda: replay_events(answer, pace=pace)


def recording(
    opener: Callable[[], AsyncIterable[Event]], sink: list[Event]
) -> Callable[[], AsyncIterator[Event]]:
    """Wrap an opener so every event it yields is also appended to ``sink`` (except the
    progress reports of :data:`~.events.STATUS_EVENTS`, such as a retry).

    The caller reads ``sink`` after ``execute()`` returned (the stream has ended by
    then) and passes it to :meth:`ResponseCache.put`.
    """

    async def stream() -> AsyncIterator[Event]:
        sink.clear()  # an opener called again records afresh
        async for event in opener():
            if not isinstance(event, STATUS_EVENTS):  # progress reports are not the answer
                sink.append(event)
            yield event

    return stream


def miss_error(endpoint: str, body: Mapping[str, Any]) -> ReplayMissError:
    """The replay-mode error for a request that was never recorded, naming it briefly."""
    prompt = _prompt_of(endpoint, body)
    shown = " ".join(prompt.split())
    if len(shown) > 60:
        shown = shown[:60] + "..."
    key = request_key(endpoint, body)[:12]
    return ReplayMissError(  # one line, for a student: no key, nothing to record with
        f"Replay mode has no recorded answer for {endpoint} {body.get('model', '?')} "
        f"{shown!r} (key {key}): it answers only the exact prompts and settings it was "
        "recorded with; undo the change, or ask for a new recording."
    )


def _prompt_of(endpoint: str, body: Mapping[str, Any]) -> str:
    """The prompt, or the last user message's text (content may be a list of parts)."""
    if endpoint == "completions":
        return str(body.get("prompt", ""))
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, dict)
                ).strip()
            return str(content or "")
    return ""


def default_cache_path() -> Path:
    """``cache.jsonl`` in the user's data directory (see :func:`files.data_dir`)."""
    return data_dir() / "cache.jsonl"


def replay_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The replay file named by ``WRITER_MAGICS_REPLAY``, or None when not replaying."""
    value = (os.environ if environ is None else environ).get(REPLAY_VARIABLE, "").strip()
    return Path(value).expanduser() if value else None
