"""Per-kernel chat conversations: turns belong to the cells that produced them.

A notebook is not a linear chat: cells are re-run, edited and run out of order, and one
cell may ask several times (two ``%chat`` lines, or a loop calling
``run_cell_magic('chat', ...)``). So a conversation is an ordered list of :class:`Turn`
objects grouped by cell: a cell's *group* is the turns one execution of that cell
produced, kept together in the order the cells *first* ran.

* Calls within one execution of a cell append to its group in order, and each carries
  every turn before the group plus the ones the same execution already added.
* Re-running the cell (a new execution) sends only the turns before its group; its
  first successful answer replaces **the whole group** in place, later calls of that
  execution append to the new group. The model never sees its own earlier answers to
  the same cell nor answers to cells that came later.
* Cells without an id (terminal IPython) always append, each call its own group.

The caller names the cell and the execution with a :class:`Call` (the magics count
executions in IPython's ``pre_run_cell`` event); a bare cell id, or a ``Call`` without
an execution, means "a new execution" each time.

Policies (chosen here, relied on by the magics):

* A failed request records nothing: the caller simply does not call :meth:`record`,
  and a session that did not exist before is not created (see :class:`Sessions`).
* An interrupted answer records nothing either: the history stays as it was. The
  partial :class:`~writer_magics.answer.result.Result` (``result.interrupted``) goes to
  ``-o NAME`` and ``WriterMagics.last_result`` instead. ``Turn.partial`` remains for
  files written by older versions and is shown as "(interrupted)".
* The system prompt belongs to the cell that set it. ``-s`` on a call is used for that
  request and, once it succeeds, becomes the stored system prompt owned by that cell
  (``record(..., system=...)``); an empty string clears it. Re-running the owning cell
  without ``-s`` sends no system prompt and removes it; undoing the owner's last turn
  removes it too. Other cells leave it alone, and a re-run of a cell before the owner
  sends none (the system prompt is carried like the owner's turns).
* ``--load`` replaces the target session, atomically, after the whole file validated;
  it never merges. A bad file raises :class:`HistoryFileError` and changes nothing.

Everything stored is plain JSON data, so a session saves to and loads from a JSON file
with a format version (:func:`save`, :func:`load`). Format 2 adds groups (a key may
repeat on consecutive turns) and ``system_key``; format 1 files still load.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from writer_magics.errors import APIStatusError, ContextLengthError, HistoryFileError, redact
from writer_magics.files import read_limited, write_atomically

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_DEPTH",
    "Call",
    "Conversation",
    "Message",
    "Sessions",
    "Turn",
    "context_length_error",
    "load",
    "markdown_name",
    "pick",
    "save",
    "visible_text",
]

FORMAT_NAME = "writer-magics-history"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: Roles a turn's messages may have; the system prompt is the session's, never a turn's.
ROLES = frozenset({"user", "assistant", "tool"})
#: Deepest nesting of JSON values a history file may hold (a message is 3-5 levels).
MAX_DEPTH = 64
#: Characters per token for the estimate in :meth:`Conversation.estimate_tokens`.
CHARS_PER_TOKEN = 4

Message = dict[str, Any]
"""One chat message as sent on the wire: ``{"role": ..., "content": ...}`` and friends."""


@dataclass(frozen=True)
class Call:
    """Which cell asks, and in which execution of it.

    ``cell`` is the notebook cell id (None in terminal IPython); ``run`` identifies one
    execution of the cell (any value that differs between executions; None means "a
    new execution" on every call).
    """

    cell: str | None = None
    run: object = None


def _as_call(call: Call | str | None) -> Call:
    return call if isinstance(call, Call) else Call(call)


@dataclass(frozen=True)
class Turn:
    """What one call of a cell contributed to a conversation.

    ``key`` names the cell's group (its id, or ``auto-N``). ``messages`` is the full
    list of messages this turn adds (user, assistant with ``tool_calls``, tool results,
    final assistant); when empty, the turn is the plain pair ``user`` / ``assistant``.
    The messages are deep-copied on the way in and out, so nobody can edit history
    through a reference they kept.
    """

    key: str
    user: str
    assistant: str
    messages: tuple[Message, ...] = ()
    partial: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", tuple(copy.deepcopy(list(self.messages))))

    def to_messages(self) -> list[Message]:
        """The messages to send for this turn on later requests."""
        if self.messages:
            return copy.deepcopy(list(self.messages))
        return [
            {"role": "user", "content": self.user},
            {"role": "assistant", "content": self.assistant},
        ]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (the inverse of :meth:`from_json`)."""
        return {
            "key": self.key,
            "user": self.user,
            "assistant": self.assistant,
            "partial": self.partial,
            "messages": copy.deepcopy(list(self.messages)),
        }

    @classmethod
    def from_json(cls, data: object, where: str = "turn") -> Turn:
        """Validate and build a turn; raises :class:`HistoryFileError` naming ``where``."""
        obj = _expect_dict(data, where)
        key = _expect_str(obj.get("key"), f"{where}.key")
        if not key:
            raise HistoryFileError(f"{where}.key must not be empty")
        messages = obj.get("messages", [])
        if not isinstance(messages, list):
            raise HistoryFileError(f"{where}.messages must be a list")
        for i, message in enumerate(messages):
            _check_message(message, f"{where}.messages[{i}]")
        partial = obj.get("partial", False)
        if not isinstance(partial, bool):
            raise HistoryFileError(f"{where}.partial must be true or false")
        return cls(
            key=key,
            user=_expect_str(obj.get("user"), f"{where}.user"),
            assistant=_expect_str(obj.get("assistant"), f"{where}.assistant"),
            messages=tuple(messages),
            partial=partial,
        )

    def characters(self) -> int:
        """Characters of text this turn sends (contents and tool-call arguments)."""
        return sum(len(text) for message in self.to_messages() for text in _texts(message))


@dataclass
class Conversation:
    """One chat session: an optional system prompt and the turns, grouped by cell.

    ``system_key`` is the group (cell) that set ``system``; None when unknown (set
    directly, or loaded from a format-1 file).
    """

    system: str | None = None
    system_key: str | None = None
    _turns: list[Turn] = field(default_factory=list, init=False, repr=False)
    _next_auto: int = field(default=1, init=False, repr=False, compare=False)
    #: group key -> the execution (``Call.run``) that last wrote the group; per kernel.
    _runs: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def of(
        cls, turns: Iterable[Turn], system: str | None = None, system_key: str | None = None
    ) -> Conversation:
        """A conversation holding ``turns`` (a key's turns must be consecutive)."""
        conv = cls(system=system, system_key=system_key if system else None)
        for turn in turns:
            if conv._turns and conv._turns[-1].key != turn.key and conv.has_group(turn.key):
                raise ValueError(f"the turns of {turn.key!r} are not consecutive")
            conv._turns.append(turn)
        return conv

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The turns, read-only, in the order their cells first ran."""
        return tuple(self._turns)

    def __len__(self) -> int:
        return len(self._turns)

    def has_group(self, key: str | None) -> bool:
        """Whether cell ``key`` has turns here."""
        return self._group(key) is not None

    def _group(self, key: str | None) -> tuple[int, int] | None:
        """``(start, end)`` slice of the turns of group ``key``, or None."""
        if not key:
            return None
        start = next((i for i, t in enumerate(self._turns) if t.key == key), None)
        if start is None:
            return None
        end = start
        while end < len(self._turns) and self._turns[end].key == key:
            end += 1
        return start, end

    def _same_run(self, call: Call) -> bool:
        """True when ``call`` comes from the execution that wrote its cell's group."""
        return (
            call.run is not None and call.cell in self._runs and self._runs[call.cell] == (call.run)
        )

    def earlier(self, call: Call | str | None) -> list[Turn]:
        """The turns a call carries: those before its cell's group, plus the ones the
        same execution already added (a re-run drops its cell's old group)."""
        call = _as_call(call)
        group = self._group(call.cell)
        if group is None:
            return list(self._turns)
        start, end = group
        return list(self._turns[: end if self._same_run(call) else start])

    def carried(self, call: Call | str | None, history: int | None = None) -> list[Turn]:
        """:meth:`earlier`, cut to the last ``history`` turns (``--history N``) if given."""
        earlier = self.earlier(call)
        if history is None or history >= len(earlier):
            return earlier
        return earlier[len(earlier) - history :] if history > 0 else []

    def system_for(self, call: Call | str | None, system: str | None = None) -> str | None:
        """The system prompt a call sends: its own ``-s``, else the stored one if the
        cell that set it comes before the call's cell (a re-run of an earlier cell, or of
        the owner itself, sends none: the same turns as a fresh Run All would)."""
        if system is not None:
            return system or None
        call = _as_call(call)
        group = self._group(call.cell)
        owner = self._group(self.system_key)
        if self.system is None or group is None or owner is None:
            return self.system
        if self.system_key == call.cell:
            return self.system if self._same_run(call) else None
        return self.system if owner[0] < group[0] else None

    def messages_for(
        self,
        call: Call | str | None,
        user_text: str,
        system: str | None = None,
        *,
        history: int | None = None,
    ) -> list[Message]:
        """The messages to send when ``call`` asks ``user_text``.

        ``system`` (from ``-s``) overrides the stored system prompt for this request;
        an empty system prompt sends no system message. ``history`` (``--history N``)
        keeps only the last N of the turns the call would carry (the rest stay stored).
        """
        effective = self.system_for(call, system)
        messages: list[Message] = []
        if effective:
            messages.append({"role": "system", "content": effective})
        for turn in self.carried(call, history):
            messages.extend(turn.to_messages())
        messages.append({"role": "user", "content": user_text})
        return messages

    def record(self, call: Call | str | None, turn: Turn, *, system: str | None = None) -> Turn:
        """Store ``turn`` for ``call`` and return the stored turn.

        A new cell appends a group; a second call of the same execution appends to its
        cell's group; a new execution replaces the cell's whole group with this turn.
        Cells without an id get a fresh ``auto-N`` key (always appended). ``system``,
        if given, becomes the stored system prompt owned by this cell ("" clears it);
        if not, a re-run of the cell that owned the system prompt removes it.
        """
        call = _as_call(call)
        key = call.cell or self._auto_key()
        stored = replace(turn, key=key)
        group = self._group(call.cell)
        if group is None:
            self._turns.append(stored)
        elif self._same_run(call):
            self._turns.insert(group[1], stored)
        else:
            self._turns[group[0] : group[1]] = [stored]
            if system is None and self.system_key == key:
                self.system = self.system_key = None
        if call.cell is not None:
            self._runs[key] = call.run
        if system is not None:
            self.system = system or None
            self.system_key = key if system else None
        return stored

    def _auto_key(self) -> str:
        while True:
            key = f"auto-{self._next_auto}"
            self._next_auto += 1
            if not self.has_group(key):
                return key

    def undo(self) -> Turn | None:
        """Drop the last turn and return it (None if there is nothing to undo).

        When that was the last turn of the cell that set the system prompt, the
        system prompt goes with it.
        """
        if not self._turns:
            return None
        turn = self._turns.pop()
        if not self.has_group(turn.key):
            self._runs.pop(turn.key, None)
            if self.system_key == turn.key:
                self.system = self.system_key = None
        return turn

    def estimate_tokens(self, turns: Sequence[Turn] | None = None) -> int:
        """A rough token count of ``turns`` (default: all) and the system prompt:
        characters / :data:`CHARS_PER_TOKEN`, rounded up."""
        chosen = self._turns if turns is None else turns
        chars = sum(t.characters() for t in chosen) + len(self.system or "")
        return -(-chars // CHARS_PER_TOKEN)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (the inverse of :meth:`from_json`)."""
        return {
            "system": self.system,
            "system_key": self.system_key,
            "turns": [t.to_json() for t in self._turns],
        }

    @classmethod
    def from_json(cls, data: object, where: str = "session") -> Conversation:
        """Validate and build a conversation; raises :class:`HistoryFileError`."""
        obj = _expect_dict(data, where)
        system = obj.get("system")
        if system is not None and not isinstance(system, str):
            raise HistoryFileError(f"{where}.system must be a string or null")
        system_key = obj.get("system_key")
        if system_key is not None and not isinstance(system_key, str):
            raise HistoryFileError(f"{where}.system_key must be a string or null")
        turns_data = obj.get("turns")
        if not isinstance(turns_data, list):
            raise HistoryFileError(f"{where}.turns must be a list")
        turns = [Turn.from_json(t, f"{where}.turns[{i}]") for i, t in enumerate(turns_data)]
        seen: set[str] = set()
        for i, turn in enumerate(turns):
            if turn.key in seen and turns[i - 1].key != turn.key:
                raise HistoryFileError(
                    f"{where}.turns[{i}].key {turn.key!r} is used twice, apart"
                    " (the turns of one cell must be consecutive)"
                )
            seen.add(turn.key)
        return cls.of(turns, system=system or None, system_key=system_key)

    def to_markdown(
        self, name: str | None = None, *, thumbnails: bool = True, pinned: str | None = None
    ) -> str:
        """The conversation as Markdown for ``%chat --show``; a question's images as small
        Markdown images (``thumbnails``) or as ``[image: 640×480 PNG, 34 KB]`` lines.
        ``pinned``: the class file's system prompt, shown instead of the stored one (it is
        the one sent)."""
        title = f"Chat session {markdown_name(name)}" if name is not None else "Chat session"
        count = len(self._turns)
        lines = [f"### {title} ({count} turn{'' if count == 1 else 's'})", ""]
        if pinned is not None:
            lines += ["**System** (pinned by the class file):", "", pinned, ""]
        elif self.system:
            lines += ["**System:**", "", self.system, ""]
        if not self._turns:
            lines += ["*No turns yet.*", ""]
        for turn in self._turns:
            # Labels on their own line, so a message that starts with a list or a code
            # fence still renders as one.
            lines += ["**You:**", "", turn.user, ""]
            lines += _image_lines(turn, thumbnails)
            tools = _tool_names(turn)
            if tools:
                lines += [f"*Tools called: {', '.join(tools)}*", ""]
            mark = " *(interrupted)*" if turn.partial else ""
            lines += [f"**Palmyra:**{mark}", "", turn.assistant, ""]
        return "\n".join(lines).rstrip() + "\n"


#: What "too long for the model" looks like in an error description: Writer documents
#: no wording, so this matches the ways APIs say it (context window/length, too long,
#: N tokens exceeding a limit) but not a bad ``max_tokens`` value.
_TOO_LONG = re.compile(
    r"context|too long|too many tokens|token limit"
    r"|\bexceed\w*\b[^.]{0,80}\b(?:tokens?|limit|length)\b"
    r"|\b(?:prompt|input|messages?|conversation|request)\b[^.]{0,80}\bexceed",
    re.IGNORECASE,
)


def is_too_long(error: BaseException) -> bool:
    """Whether an HTTP error says the request is longer than the model accepts.

    413 always counts; 400 and 422 count when the description says so (see
    ``_TOO_LONG``). A description about ``max_tokens`` without "context" does not.
    """
    if not isinstance(error, APIStatusError):
        return False
    if error.status == 413:
        return True
    text = error.message.lower()
    if error.status not in (400, 422) or ("max_tokens" in text and "context" not in text):
        return False
    return _TOO_LONG.search(text) is not None


def context_length_error(
    error: BaseException,
    conversation: Conversation,
    call: Call | str | None,
    *,
    session: str,
    history: int | None = None,
) -> ContextLengthError | None:
    """The one-line error for a request refused as too long, or None for other errors.

    It keeps the server's own words and adds how many turns the session holds, how
    many this request carried (after ``--history N``), about how many tokens they
    make, and how to trim them: ``%chat --undo``, ``--history N``, ``--new``.
    """
    if isinstance(error, ContextLengthError) or not is_too_long(error):
        return None
    assert isinstance(error, APIStatusError)
    earlier = conversation.carried(call, history)
    said = error.message.rstrip(". ")
    held = f"{_count(len(conversation), 'turn')} of session {session!r}"
    if not earlier:
        advice = f"The request carried none of the {held}, so the prompt itself is too long"
        return ContextLengthError(f"{said}. {advice}: shorten it.", status=error.status)
    tokens = conversation.estimate_tokens(earlier)
    return ContextLengthError(
        f"{said}. The request carried {len(earlier)} of the {held} "
        f"(about {tokens:,} tokens, estimated); trim them with %chat --undo (drops the last "
        "turn), --history N (sends only the last N turns) or --new (starts afresh).",
        status=error.status,
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _texts(message: Message) -> Iterator[str]:
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            yield function["arguments"]


def _image_lines(turn: Turn, thumbnails: bool) -> list[str]:
    """The images the turn's question carried (none for most turns)."""
    if not turn.messages:
        return []
    from writer_magics.line.images import markdown_lines

    return markdown_lines(turn.messages, thumbnails=thumbnails)


def _tool_names(turn: Turn) -> list[str]:
    names: list[str] = []
    for message in turn.messages:
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.append(function["name"])
    return names


def markdown_name(name: str, *, table: bool = False) -> str:
    """A session name as an inline code span that cannot break a line or a table.

    Control characters are shown as escapes (``\n``), a pipe is escaped when the span
    sits in a GFM table (``table=True``), and the fence is one backtick longer than any
    run of backticks in the name.
    """
    visible = visible_text(name)
    if table:
        visible = visible.replace("|", "\\|")
    run = longest = 0
    for char in visible:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if visible.startswith(("`", " ")) or visible.endswith(("`", " ")) else ""
    return f"{fence}{pad}{visible}{pad}{fence}"


_VISIBLE = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible_text(text: str) -> str:
    """``text`` on one line: control and other unprintable characters as escapes."""
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


def _escape_char(char: str) -> str:
    if char in _VISIBLE:
        return _VISIBLE[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Sessions(Mapping[str, Conversation]):
    """Named conversations of one kernel.

    A session exists once a turn was recorded into it or it was loaded: looking at one
    (``--show``, ``--save``, ``--dry-run``) or a failed cell never creates it. Use
    :meth:`conversation` for the stored one or a fresh, detached one, and
    :meth:`replace` to store it after a successful answer.
    """

    def __init__(self) -> None:
        self._data: dict[str, Conversation] = {}

    def __getitem__(self, name: str) -> Conversation:
        return self._data[name]

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def conversation(self, name: str) -> Conversation:
        """Session ``name``, or a new empty conversation that is not stored yet."""
        stored = self._data.get(name)
        return Conversation() if stored is None else stored

    def counts(self) -> dict[str, int]:
        """Number of turns per session."""
        return {name: len(conv) for name, conv in self._data.items()}

    def new(self, name: str) -> Conversation:
        """Start session ``name`` afresh (``--new``) and return the empty conversation."""
        conv = self._data[name] = Conversation()
        return conv

    def replace(self, name: str, conversation: Conversation) -> None:
        """Put ``conversation`` in place of session ``name`` (one assignment)."""
        self._data[name] = conversation

    def save(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        *,
        secrets: Iterable[str | None] = (),
    ) -> Path:
        """Save session ``name``, or every session when ``name`` is None (see :func:`save`)."""
        if name is None:
            return save(path, self._data, secrets=secrets)
        return save(path, {name: self[name]}, secrets=secrets)

    def load(self, path: str | os.PathLike[str], name: str) -> Conversation:
        """Replace session ``name`` with the one in ``path`` (see :func:`pick`)."""
        conv = pick(load(path), name, path)
        self.replace(name, conv)
        return conv

    def to_markdown(self) -> str:
        """The session list for ``%chat --sessions`` (names escaped, see :func:`markdown_name`)."""
        if not self._data:
            return "*No chat sessions yet.*\n"
        rows = ["| Session | Turns |", "|---|---:|"]
        rows += [f"| {markdown_name(n, table=True)} | {c} |" for n, c in self.counts().items()]
        return "\n".join(rows) + "\n"


def save(
    path: str | os.PathLike[str],
    sessions: Conversation | Mapping[str, Conversation],
    *,
    name: str = "default",
    secrets: Iterable[str | None] = (),
) -> Path:
    """Write sessions (or one conversation, stored under ``name``) as versioned JSON.

    Every string is passed through :func:`writer_magics.errors.redact` with ``secrets``
    (the current API key) first, so a key the model or a tool echoed never reaches the
    file. The file is written with :func:`writer_magics.files.write_atomically`: a full
    disk or a crash leaves the old file as it was. Raises :class:`HistoryFileError`.
    """
    target = Path(os.path.expanduser(os.fspath(path)))
    data = {name: sessions} if isinstance(sessions, Conversation) else dict(sessions)
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "sessions": {n: conv.to_json() for n, conv in data.items()},
    }
    text = json.dumps(_redacted(document, list(secrets)), ensure_ascii=False, indent=1) + "\n"
    try:
        write_atomically(target, text)
    except OSError as exc:
        raise HistoryFileError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def _redacted(data: Any, secrets: list[str | None]) -> Any:
    """``data`` with :func:`redact` applied to every string (keys included)."""
    if isinstance(data, str):
        return redact(data, secrets)
    if isinstance(data, dict):
        return {redact(str(k), secrets): _redacted(v, secrets) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_redacted(v, secrets) for v in data]
    return data


def load(path: str | os.PathLike[str]) -> dict[str, Conversation]:
    """Read and fully validate a history file; raises :class:`HistoryFileError`.

    Whatever the file holds (bad UTF-8, JSON nested deeper than :data:`MAX_DEPTH`,
    wrong shapes), the answer is one line naming the file and the problem.
    """
    target = Path(os.path.expanduser(os.fspath(path)))
    try:
        raw = read_limited(target)
    except OSError as exc:
        raise HistoryFileError(f"cannot read {target}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise HistoryFileError(
            f"{target} is not UTF-8 text (byte {exc.start}, line {line}); "
            "it may be damaged or not a history file"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HistoryFileError(
            f"{target} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        document = _TOO_DEEP
    except ValueError as exc:  # e.g. an integer with too many digits
        raise HistoryFileError(f"{target} cannot be read as JSON: {exc}") from None
    if document is _TOO_DEEP or _depth(document) > MAX_DEPTH:
        raise HistoryFileError(
            f"{target} nests JSON deeper than {MAX_DEPTH} levels; "
            "it is damaged or not a history file"
        )
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise HistoryFileError(f"{target} is not a writer-magics history file")
    version = document.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise HistoryFileError(
            f"{target} has format version {version!r}; "
            f"this writer-magics reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    sessions = document.get("sessions")
    if not isinstance(sessions, dict) or not sessions:
        raise HistoryFileError(f"{target} holds no sessions")
    try:
        return {str(n): Conversation.from_json(c, f"sessions[{n!r}]") for n, c in sessions.items()}
    except HistoryFileError as exc:
        raise HistoryFileError(f"{target}: {exc}") from None


_TOO_DEEP = object()


def _depth(data: Any) -> int:
    """How deeply lists and objects nest in parsed JSON (without recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((child, level + 1) for child in item)
    return deepest


def pick(
    loaded: Mapping[str, Conversation], name: str, path: str | os.PathLike[str] = "file"
) -> Conversation:
    """The session to load into ``name``: the one called ``name``, else the only one."""
    if name in loaded:
        return loaded[name]
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    choices = ", ".join(repr(n) for n in sorted(loaded))
    raise HistoryFileError(
        f"{os.fspath(path)} holds sessions {choices}; choose one with --session NAME"
    )


def _expect_dict(data: object, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise HistoryFileError(f"{where} must be an object")
    return data


def _expect_str(data: object, where: str) -> str:
    if not isinstance(data, str):
        raise HistoryFileError(f"{where} must be a string")
    return data


def _check_message(data: object, where: str) -> None:
    message = _expect_dict(data, where)
    role = message.get("role")
    if role not in ROLES:
        raise HistoryFileError(
            f"{where}.role must be one of {', '.join(sorted(ROLES))}, got {role!r}"
        )
    content = message.get("content")
    if not (content is None or isinstance(content, (str, list))):
        raise HistoryFileError(f"{where}.content must be a string, a list or null")
    if isinstance(content, list):
        for i, part in enumerate(content):
            _expect_dict(part, f"{where}.content[{i}]")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise HistoryFileError(f"{where}.tool_call_id must be a string on a tool message")
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise HistoryFileError(f"{where}.tool_calls must be a list or null")
    for i, call in enumerate(calls or []):
        call = _expect_dict(call, f"{where}.tool_calls[{i}]")
        function = _expect_dict(call.get("function"), f"{where}.tool_calls[{i}].function")
        _expect_str(function.get("name"), f"{where}.tool_calls[{i}].function.name")
        _expect_str(function.get("arguments"), f"{where}.tool_calls[{i}].function.arguments")
