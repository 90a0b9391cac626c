"""Stage 1, the magic line and the cell body: text in, checked values out.

In: the ``%%chat`` / ``%%complete`` line, the cell body and the user namespace. Out:
frozen ``Options`` (one ``Params`` per sweep combination) and the prompt text after
the interpolation rule (``prompt``). Bad input is one ``UsageError`` line and nothing
is sent. Also here: the option table that ``%%chat?`` prints, the ``?``-question input
transformer (``questions``) and Tab completion on the magic lines (``completion``,
which reads a ``Sources`` the magics hand it). Imports only errors/config/files.
"""
