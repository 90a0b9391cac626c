"""A local SQLite log of every request and its answer, for ``%writer log``.

The log is a convenience, never a reason for a cell to fail: :meth:`PromptLog.append`
swallows every error (locked, corrupt, read-only, full disk) and says so at most once
per log object on stderr. Nothing is written before the answer is complete, each
append is one short transaction on its own connection (so any thread may call it),
and every text goes through :func:`errors.redact` with the caller's key.

The schema is versioned with ``PRAGMA user_version``; a log written by a newer
writer-magics is left alone rather than migrated backwards.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from writer_magics.answer.result import Result
from writer_magics.errors import PromptLogError, one_line, redact
from writer_magics.files import data_dir, write_atomically
from writer_magics.line.images import for_log, text_of
from writer_magics.request import JSON

SCHEMA_VERSION = 1
#: Seconds an append waits for another writer before giving up (never stall a cell long).
LOCK_TIMEOUT = 0.5
#: Request fields that have their own columns instead of living in ``params``.
_OWN_COLUMNS = ("model", "prompt", "messages")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    prompt TEXT,
    messages TEXT,
    answer TEXT NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    first_token REAL,
    total_time REAL,
    status TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS entries_time ON entries (time);
PRAGMA user_version = {SCHEMA_VERSION};
"""
_COLUMNS = (
    "id, time, endpoint, model, params, prompt, messages, answer, prompt_tokens, "
    "completion_tokens, total_tokens, first_token, total_time, status, error"
)


def default_log_path() -> Path:
    return data_dir() / "log.sqlite3"


@dataclass(frozen=True)
class LogEntry:
    """One logged request and answer, as read back."""

    id: int
    time: str
    endpoint: str
    model: str
    params: JSON
    prompt: str | None
    messages: list[JSON] | None
    answer: str
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    first_token: float | None
    total_time: float | None
    status: str
    error: str | None

    @property
    def prompt_text(self) -> str:
        """The completion prompt, or the last user message of a chat."""
        if self.prompt is not None:
            return self.prompt
        for message in reversed(self.messages or []):
            if isinstance(message, dict) and message.get("role") == "user":
                return text_of(message.get("content"))
        return ""

    def to_json(self) -> JSON:
        return asdict(self)


class PromptLog:
    """The log file at ``path``; nothing is created until the first append."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        #: Appends from this process's threads (a batch's requests) take turns here, so
        #: they never wait on each other through SQLite's file lock (``LOCK_TIMEOUT``,
        #: meant for another process holding the file).
        self._writing = threading.Lock()
        self._warned = False

    def __repr__(self) -> str:
        return f"PromptLog({str(self.path)!r})"

    # -- writing

    def append(
        self,
        result: Result,
        *,
        status: str | None = None,
        error: str | None = None,
        api_key: str | None = None,
    ) -> bool:
        """Log one request and its (possibly partial) answer; False if it could not be.

        ``status`` defaults to the result's; ``error`` is the one-line reason of a
        failure. Never raises: a broken log must not break a request.
        """
        try:
            row = _row(result, status or result.status, error, api_key)
            with self._writing, self._connect(create=True) as db, db:
                db.execute(
                    "INSERT INTO entries (time, endpoint, model, params, prompt, messages, "
                    "answer, prompt_tokens, completion_tokens, total_tokens, first_token, "
                    "total_time, status, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    row,
                )
        except Exception as exc:
            self._warn_once(exc, api_key)
            return False
        return True

    def _warn_once(self, exc: Exception, api_key: str | None) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
        reason = redact(one_line(exc), [api_key])
        print(
            f"writer-magics: could not write the prompt log {self.path} ({reason}); "
            "answers are not affected. Turn it off with %config WriterMagics.log = False.",
            file=sys.stderr,
        )

    # -- reading

    def recent(self, n: int = 20, search: str | None = None) -> list[LogEntry]:
        """The last ``n`` entries, newest first, optionally only those mentioning ``search``.

        ``search`` matches the prompt, the newest message (the turns a chat request
        carries from its history were found with their own entries already), the answer
        and the model, case-insensitively (ASCII).
        """
        if n < 1:
            return []
        where, args = "", []
        if search:
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern += "%"
            where = " WHERE " + " OR ".join(
                f"{c} LIKE ? ESCAPE '\\'"
                for c in ("prompt", "json_extract(messages, '$[#-1]')", "answer", "model")
            )
            args = [pattern] * 4
        query = f"SELECT {_COLUMNS} FROM entries{where} ORDER BY id DESC LIMIT ?"
        return list(self._read(query, [*args, n]))

    def export_jsonl(self, path: Path | str) -> int:
        """Every entry, oldest first, one JSON object per line; returns the count."""
        target = Path(path).expanduser()
        entries = list(self._read(f"SELECT {_COLUMNS} FROM entries ORDER BY id", []))
        text = "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in entries)
        try:
            write_atomically(target, text)  # a user path: its folder must exist
        except OSError as exc:
            raise PromptLogError(f"Cannot write {target}: {exc.strerror or exc}") from None
        return len(entries)

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        if not self.path.is_file():
            raise PromptLogError(f"Cannot read the prompt log {self.path}: it is not a file.")
        try:
            with self._connect(create=False) as db:
                count: int = db.execute("SELECT count(*) FROM entries").fetchone()[0]
        except (sqlite3.Error, OSError) as exc:
            raise PromptLogError(f"Cannot read the prompt log {self.path}: {exc}") from None
        return count

    def _read(self, query: str, args: list[Any]) -> Iterator[LogEntry]:
        if not self.path.exists():
            return iter(())
        if not self.path.is_file():
            raise PromptLogError(f"Cannot read the prompt log {self.path}: it is not a file.")
        try:
            with self._connect(create=False) as db:
                rows = db.execute(query, args).fetchall()
            return iter([_entry(row) for row in rows])
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise PromptLogError(f"Cannot read the prompt log {self.path}: {exc}") from None

    # -- connections

    @contextlib.contextmanager
    def _connect(self, *, create: bool) -> Iterator[sqlite3.Connection]:
        """A fresh connection (any thread), closed afterwards; the schema made if needed."""
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT)
        else:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        # A row of bad UTF-8 (a damaged file) reads with U+FFFD instead of failing the
        # whole query: one damaged row must not hide the rest of the log.
        db.text_factory = _text
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"the log has schema version {version}, newer than this writer-magics"
                )
            if version < SCHEMA_VERSION:
                if not create:
                    raise sqlite3.DatabaseError("the file is not a writer-magics prompt log")
                db.executescript(_SCHEMA)
            yield db
        finally:
            db.close()


def _row(result: Result, status: str, error: str | None, api_key: str | None) -> tuple[Any, ...]:
    def clean(text: str) -> str:
        return redact(text, [api_key])

    request: Mapping[str, Any] = result.request
    params = {k: v for k, v in request.items() if k not in _OWN_COLUMNS}
    prompt = request.get("prompt")
    messages = request.get("messages")
    usage = result.usage
    return (
        datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        result.endpoint,
        result.model,
        clean(_dumps(params)),
        None if prompt is None else clean(str(prompt)),
        None if messages is None else clean(_dumps(for_log(messages))),
        clean(result.text),
        usage.prompt_tokens if usage else None,
        usage.completion_tokens if usage else None,
        usage.total_tokens if usage else None,
        result.timing.first_token,
        result.timing.total,
        status,
        None if error is None else clean(error),
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _loads(text: Any) -> Any:
    """A JSON column, or None when the row is damaged (not JSON, nested too deeply)."""
    try:
        return json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        return None


def _entry(row: tuple[Any, ...]) -> LogEntry:
    params = _loads(row[4])
    messages = _loads(row[6])
    return LogEntry(
        id=row[0],
        time=row[1],
        endpoint=row[2],
        model=row[3],
        params=params if isinstance(params, dict) else {},
        prompt=row[5],
        messages=messages if isinstance(messages, list) else None,
        answer=row[7],
        prompt_tokens=row[8],
        completion_tokens=row[9],
        total_tokens=row[10],
        first_token=row[11],
        total_time=row[12],
        status=row[13],
        error=row[14],
    )
