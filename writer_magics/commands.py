"""``%chat --show/--reset/--undo/--sessions/--save/--load``: managing conversations.

Each command is a small function of the sessions and the parsed options, so the
magic only dispatches. Output is Markdown with a readable ``text/plain`` (one
show_markdown for both) or one plain line.
"""

from __future__ import annotations

from writer_magics.display.markup import show_markdown
from writer_magics.history import Sessions
from writer_magics.options import ChatCommand, ChatOptions


def run_chat_command(opts: ChatOptions, sessions: Sessions) -> None:
    """Carry out the one management command in ``opts``."""
    name = opts.session
    command = opts.command
    if command is ChatCommand.SHOW:
        show_markdown(sessions[name].to_markdown(name))
    elif command is ChatCommand.SESSIONS:
        show_markdown(sessions.to_markdown())
    elif command is ChatCommand.RESET:
        dropped = len(sessions[name]) if name in sessions else 0
        sessions.new(name)
        print(f"Session {name!r} reset ({_turns(dropped)} dropped).")
    elif command is ChatCommand.UNDO:
        turn = sessions[name].undo() if name in sessions else None
        if turn is None:
            print(f"Nothing to undo in session {name!r}.")
        else:
            print(f"Dropped the last turn of session {name!r}: {_preview(turn.user)}")
    elif command is ChatCommand.SAVE:
        assert opts.path is not None
        target = sessions.save(opts.path, name)
        print(f"Saved session {name!r} ({_turns(len(sessions[name]))}) to {target}.")
    elif command is ChatCommand.LOAD:
        assert opts.path is not None
        conversation = sessions.load(opts.path, name)
        print(f"Loaded {_turns(len(conversation))} into session {name!r} from {opts.path}.")


def _turns(count: int) -> str:
    return f"{count} turn{'' if count == 1 else 's'}"


def _preview(text: str, width: int = 60) -> str:
    line = " ".join(text.split())
    return repr(line if len(line) <= width else line[: width - 3] + "...")
