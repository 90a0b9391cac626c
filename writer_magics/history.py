"""Per-kernel chat conversations, keyed by notebook cell id.

A notebook is not a linear chat: cells are re-run, edited and run out of order. So a
conversation is an ordered list of :class:`Turn` objects, one per cell, in the order the
cells *first* ran. Re-running a cell replaces that cell's turn in place and sends only the
turns before it, so the model never sees its own earlier answer to the same cell nor
answers to cells that came later. Cells without an id (terminal IPython) always append.

Policies (chosen here, relied on by the magics):

* A failed request records nothing: the caller simply does not call :meth:`record`.
* An interrupted answer IS kept: the caller records the partial text with
  ``partial=True``. It is marked "(interrupted)" in :meth:`Conversation.to_markdown` and
  sent to the model on later turns exactly as it is, so the model knows what it had said.
* The system prompt belongs to the conversation. ``-s`` on a cell is used for that
  request and, once the request succeeds, replaces the stored system prompt
  (``record(..., system=...)``); an empty string clears it. Earlier turns are kept.
* ``--load`` replaces the target session, atomically, after the whole file validated;
  it never merges. A bad file raises :class:`HistoryFileError` and changes nothing.

Everything stored is plain JSON data, so a session saves to and loads from a JSON file
with a format version (:func:`save`, :func:`load`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from writer_magics.files import write_atomically

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Conversation",
    "HistoryFileError",
    "Message",
    "Sessions",
    "Turn",
    "load",
    "pick",
    "save",
]

FORMAT_NAME = "writer-magics-history"
FORMAT_VERSION = 1
ROLES = frozenset({"system", "user", "assistant", "tool"})

Message = dict[str, Any]
"""One chat message as sent on the wire: ``{"role": ..., "content": ...}`` and friends."""


class HistoryFileError(UsageError):
    """A history file cannot be read, written or understood; state is left unchanged."""

    def _render_traceback_(self) -> list[str]:
        # IPython prints the short one-line form only for exactly UsageError; a subclass
        # would get a full traceback without this hook.
        return [f"UsageError: {self}"]


@dataclass(frozen=True)
class Turn:
    """What one cell contributed to a conversation.

    ``messages`` is the full list of messages this turn adds (user, assistant with
    ``tool_calls``, tool results, final assistant); when empty, the turn is the plain
    pair ``user`` / ``assistant``. The messages are deep-copied on the way in and out,
    so nobody can edit history through a reference they kept.
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


@dataclass
class Conversation:
    """One chat session: an optional system prompt and the turns in first-run order."""

    system: str | None = None
    _turns: list[Turn] = field(default_factory=list, init=False, repr=False)
    _next_auto: int = field(default=1, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, turns: Iterable[Turn], system: str | None = None) -> Conversation:
        """A conversation holding ``turns`` (keys must be unique)."""
        conv = cls(system=system)
        for turn in turns:
            if conv.index_of(turn.key) is not None:
                raise ValueError(f"duplicate turn key {turn.key!r}")
            conv._turns.append(turn)
        return conv

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The turns, read-only, in the order their cells first ran."""
        return tuple(self._turns)

    def __len__(self) -> int:
        return len(self._turns)

    def index_of(self, key: str | None) -> int | None:
        """Position of the turn recorded for cell ``key``, or None."""
        if not key:
            return None
        for i, turn in enumerate(self._turns):
            if turn.key == key:
                return i
        return None

    def messages_for(
        self, cell_id: str | None, user_text: str, system: str | None = None
    ) -> list[Message]:
        """The messages to send when cell ``cell_id`` asks ``user_text``.

        ``system`` (from ``-s``) overrides the stored system prompt for this request;
        an empty system prompt sends no system message. A re-run cell carries only the
        turns recorded before its own turn.
        """
        effective = self.system if system is None else system
        messages: list[Message] = []
        if effective:
            messages.append({"role": "system", "content": effective})
        position = self.index_of(cell_id)
        earlier = self._turns if position is None else self._turns[:position]
        for turn in earlier:
            messages.extend(turn.to_messages())
        messages.append({"role": "user", "content": user_text})
        return messages

    def record(self, cell_id: str | None, turn: Turn, *, system: str | None = None) -> Turn:
        """Store ``turn`` for ``cell_id`` (replacing that cell's turn in place) and return it.

        The stored turn's key is the cell id, or a fresh ``auto-N`` key when the cell has
        no id. ``system``, if given, becomes the stored system prompt ("" clears it).
        """
        key = cell_id or self._auto_key()
        stored = dataclasses.replace(turn, key=key)
        position = self.index_of(cell_id)
        if position is None:
            self._turns.append(stored)
        else:
            self._turns[position] = stored
        if system is not None:
            self.system = system or None
        return stored

    def _auto_key(self) -> str:
        while True:
            key = f"auto-{self._next_auto}"
            self._next_auto += 1
            if self.index_of(key) is None:
                return key

    def undo(self) -> Turn | None:
        """Drop the last turn and return it (None if there is nothing to undo)."""
        return self._turns.pop() if self._turns else None

    def reset(self) -> None:
        """Forget all turns and the system prompt."""
        self._turns.clear()
        self.system = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (the inverse of :meth:`from_json`)."""
        return {"system": self.system, "turns": [t.to_json() for t in self._turns]}

    @classmethod
    def from_json(cls, data: object, where: str = "session") -> Conversation:
        """Validate and build a conversation; raises :class:`HistoryFileError`."""
        obj = _expect_dict(data, where)
        system = obj.get("system")
        if system is not None and not isinstance(system, str):
            raise HistoryFileError(f"{where}.system must be a string or null")
        turns_data = obj.get("turns")
        if not isinstance(turns_data, list):
            raise HistoryFileError(f"{where}.turns must be a list")
        turns = [Turn.from_json(t, f"{where}.turns[{i}]") for i, t in enumerate(turns_data)]
        seen: set[str] = set()
        for i, turn in enumerate(turns):
            if turn.key in seen:
                raise HistoryFileError(f"{where}.turns[{i}].key {turn.key!r} is used twice")
            seen.add(turn.key)
        return cls.of(turns, system=system or None)

    def to_markdown(self, name: str | None = None) -> str:
        """The conversation as Markdown for ``%chat --show``."""
        title = f"Chat session `{name}`" if name is not None else "Chat session"
        count = len(self._turns)
        lines = [f"### {title} ({count} turn{'' if count == 1 else 's'})", ""]
        if self.system:
            lines += ["**System:**", "", self.system, ""]
        if not self._turns:
            lines += ["*No turns yet.*", ""]
        for turn in self._turns:
            # Labels on their own line, so a message that starts with a list or a code
            # fence still renders as one.
            lines += ["**You:**", "", turn.user, ""]
            tools = _tool_names(turn)
            if tools:
                lines += [f"*Tools called: {', '.join(tools)}*", ""]
            mark = " *(interrupted)*" if turn.partial else ""
            lines += [f"**Palmyra:**{mark}", "", turn.assistant, ""]
        return "\n".join(lines).rstrip() + "\n"


def _tool_names(turn: Turn) -> list[str]:
    names: list[str] = []
    for message in turn.messages:
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                names.append(function["name"])
    return names


class Sessions(Mapping[str, Conversation]):
    """Named conversations of one kernel; ``sessions[name]`` creates a session on demand."""

    def __init__(self) -> None:
        self._data: dict[str, Conversation] = {}

    def __getitem__(self, name: str) -> Conversation:
        conv = self._data.get(name)
        if conv is None:
            conv = self._data[name] = Conversation()
        return conv

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def names(self) -> list[str]:
        """Session names in creation order."""
        return list(self._data)

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

    def save(self, path: str | os.PathLike[str], name: str | None = None) -> Path:
        """Save session ``name``, or every session when ``name`` is None."""
        if name is None:
            return save(path, self._data)
        return save(path, {name: self[name]})

    def load(self, path: str | os.PathLike[str], name: str) -> Conversation:
        """Replace session ``name`` with the one in ``path`` (see :func:`pick`)."""
        conv = pick(load(path), name, path)
        self.replace(name, conv)
        return conv

    def to_markdown(self) -> str:
        """The session list for ``%chat --sessions``."""
        if not self._data:
            return "*No chat sessions yet.*\n"
        rows = ["| Session | Turns |", "|---|---:|"]
        rows += [f"| `{n}` | {c} |" for n, c in self.counts().items()]
        return "\n".join(rows) + "\n"


def save(
    path: str | os.PathLike[str],
    sessions: Conversation | Mapping[str, Conversation],
    *,
    name: str = "default",
) -> Path:
    """Write sessions (or one conversation, stored under ``name``) as versioned JSON.

    The file is written to a temporary file in the same directory and moved into place
    with ``os.replace``, so an existing file is never left half-written.
    """
    target = Path(os.path.expanduser(os.fspath(path)))
    data = {name: sessions} if isinstance(sessions, Conversation) else dict(sessions)
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "sessions": {n: conv.to_json() for n, conv in data.items()},
    }
    text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    try:
        write_atomically(target, text)
    except OSError as exc:
        raise HistoryFileError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def load(path: str | os.PathLike[str]) -> dict[str, Conversation]:
    """Read and fully validate a history file; raises :class:`HistoryFileError`."""
    target = Path(os.path.expanduser(os.fspath(path)))
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise HistoryFileError(f"cannot read {target}: {reason}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HistoryFileError(
            f"{target} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise HistoryFileError(f"{target} is not a writer-magics history file")
    version = document.get("version")
    if version != FORMAT_VERSION:
        raise HistoryFileError(
            f"{target} has format version {version!r}; "
            f"this writer-magics reads version {FORMAT_VERSION}"
        )
    sessions = document.get("sessions")
    if not isinstance(sessions, dict) or not sessions:
        raise HistoryFileError(f"{target} holds no sessions")
    try:
        return {str(n): Conversation.from_json(c, f"sessions[{n!r}]") for n, c in sessions.items()}
    except HistoryFileError as exc:
        raise HistoryFileError(f"{target}: {exc}") from None


def pick(
    loaded: Mapping[str, Conversation], name: str, path: str | os.PathLike[str] = "file"
) -> Conversation:
    """The session to load into ``name``: the one called ``name``, else the only one."""
    if name in loaded:
        return loaded[name]
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    choices = ", ".join(sorted(loaded))
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
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise HistoryFileError(f"{where}.tool_call_id must be a string on a tool message")
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise HistoryFileError(f"{where}.tool_calls must be a list or null")
