"""The management commands: parsed options or a ``%writer`` line in, output out.

``chat``: ``%chat --show/--undo/--reset/--sessions/--save/--load`` on the sessions.
``writer``: ``%writer log`` / ``cache`` (the prompt log and the cache files).
``status``: ``%writer status`` and ``%writer models``, from a ``Snapshot`` of the
kernel the magics take (nothing here imports the magics). Output is Markdown with a
readable ``text/plain``, or one line; bad input is one ``UsageError`` line.
"""
