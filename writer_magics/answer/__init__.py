"""Stage 4, what an answer is: events in, Result / Sweep / history / log out.

In: the typed events of ``transport``. Out: the one fold of events (``result``:
``Accumulator`` -> ``Result``, which the live view reads too), a ``Sweep`` of several
Results (``sweep``), a ``--schema`` answer parsed (``parsed``), the per-kernel
conversations and their saved files (``history``), the SQLite prompt log
(``promptlog``), Markdown of a Result (``markdown``) and the one ``preview``.
Never imports display.
"""
