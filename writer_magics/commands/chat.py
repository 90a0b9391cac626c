"""``%chat --show/--reset/--undo/--sessions/--save/--load``: managing conversations.

Each command is a small function of the sessions and the parsed options, so the
magic only dispatches. Output is Markdown with a readable ``text/plain`` (one
show_markdown for both) or one plain line. Looking (``--show``, ``--sessions``,
``--save``) never creates a session; naming a session that does not exist is one line
that lists the ones that do.
"""

from __future__ import annotations

from collections.abc import Iterable

from IPython.core.error import UsageError

from writer_magics.answer.history import Conversation, Sessions
from writer_magics.answer.preview import preview
from writer_magics.display.finish import show_markdown
from writer_magics.errors import redact_answer
from writer_magics.line.options import ChatCommand, ChatOptions


def run_chat_command(
    opts: ChatOptions,
    sessions: Sessions,
    *,
    secrets: Iterable[str | None] = (),
    system: str | None = None,
) -> None:
    """Carry out the one management command in ``opts``.

    ``secrets`` (the API key) are redacted from what ``--show`` and ``--sessions`` show
    and what ``--save`` writes (the history itself keeps what the model said).
    ``system`` is a system prompt the class file pins: ``--show`` shows it, the one sent.
    Raises ``UsageError`` for a session that does not exist (``--show``, ``--save``).
    """
    name = opts.session
    command = opts.command
    if command is ChatCommand.SHOW:
        if _unknown(name, sessions):
            raise no_such_session(name, sessions)
        if name not in sessions:  # a fresh kernel: the empty default, not stored
            show_markdown(Conversation().to_markdown(name, pinned=system))
            return
        shown = sessions[name]
        show_markdown(
            redact_answer(shown.to_markdown(name, pinned=system), secrets),
            plain=redact_answer(shown.to_markdown(name, thumbnails=False, pinned=system), secrets),
        )
    elif command is ChatCommand.SESSIONS:
        show_markdown(redact_answer(sessions.to_markdown(), secrets))
    elif command in (ChatCommand.RESET, ChatCommand.UNDO) and _unknown(name, sessions):
        raise no_such_session(name, sessions)  # a typo must not read as done
    elif command is ChatCommand.RESET:
        dropped = len(sessions[name]) if name in sessions else 0
        if name in sessions:
            sessions.new(name)
        print(f"Session {name!r} reset ({_turns(dropped)} dropped).")
    elif command is ChatCommand.UNDO:
        turn = sessions[name].undo() if name in sessions else None
        if turn is None:
            print(f"Nothing to undo in session {name!r}.")
        else:
            dropped_turn = redact_answer(preview(turn.user, 60), secrets)
            print(f"Dropped the last turn of session {name!r}: {dropped_turn!r}")
    elif command is ChatCommand.SAVE:
        assert opts.path is not None
        if name not in sessions:
            raise no_such_session(name, sessions)
        target = sessions.save(opts.path, name, secrets=secrets)
        print(f"Saved session {name!r} ({_turns(len(sessions[name]))}) to {target}.")
    elif command is ChatCommand.LOAD:
        assert opts.path is not None
        replaced = len(sessions[name]) if name in sessions else 0
        conversation = sessions.load(opts.path, name)
        instead = f", replacing its {_turns(replaced)}" if replaced else ""
        print(
            f"Loaded {_turns(len(conversation))} into session {name!r} from {opts.path}{instead}."
        )


def no_such_session(name: str, sessions: Sessions) -> UsageError:
    """``There is no chat session 'nope'; the sessions are 'default', 'ideas'``."""
    if not sessions:
        return UsageError(f"There is no chat session {name!r}; no session has a turn yet")
    names = ", ".join(repr(n) for n in sessions)
    return UsageError(
        f"There is no chat session {name!r}; the sessions are {names} (choose with --session NAME)"
    )


def _turns(count: int) -> str:
    return f"{count} turn{'' if count == 1 else 's'}"


def _unknown(name: str, sessions: Sessions) -> bool:
    """No session ``name`` (the empty ``default`` of a fresh kernel counts as existing)."""
    return name not in sessions and (bool(sessions) or name != "default")
