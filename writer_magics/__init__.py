"""writer-magics: `%%complete` and `%%chat` for the Writer API in Jupyter.

``%load_ext writer_magics`` registers the magics; loading and unloading are mirror
images so that ``%reload_ext`` leaves no stale state behind: the magics (with their
client and loop thread) and the input transformer that keeps ``%chat What is RAG?``
from being read as a help request (:mod:`writer_magics.line.questions`).

The map: one cell flows through the stages in this order, and each stage imports only
the ones above it (``server/`` and ``demo/`` stand beside and may use anything)::

    errors       every exception, redact, one_line
    config       defaults, removed models, where the key / URL / .env come from
    files        the data dir, atomic writes
    line/        magic line -> Options (frozen); cell body -> prompt text
    request      Options + text + history messages + extras -> Request (pure JSON)
    transport/   Request -> typed events (client, retries, loop thread, cache, model list)
    answer/      the one fold of events -> Result / Sweep / Batch; checks; history; prompt log
    display/     events and the fold's state -> live view -> static Markdown finish
    tools/       function calling: answer -> calls -> results -> next Request
    send         plan (cache / replay / live) -> stream into one view -> settle
    commands/    %chat --show/--undo/... and %writer log/cache/models/status
    magics       WriterMagics: settings, the ~10-line %%complete / %%chat scripts
    __init__     load / unload; public types: ``from writer_magics import Result, Sweep, Batch``

``Result``, ``Sweep`` and ``Batch`` are imported on first use (module ``__getattr__``), so
``%load_ext`` does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "Batch",
    "Result",
    "Sweep",
    "__version__",
    "load_ipython_extension",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from writer_magics.answer.batch import Batch
    from writer_magics.answer.result import Result
    from writer_magics.answer.sweep import Sweep

#: The public types, imported on first use so that ``%load_ext`` stays fast.
_LAZY = {
    "Batch": "writer_magics.answer.batch",
    "Result": "writer_magics.answer.result",
    "Sweep": "writer_magics.answer.sweep",
}


def __getattr__(name: str) -> Any:
    """``from writer_magics import Batch, Result, Sweep`` (loaded when first asked for)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register the magics and the line-form question transformer on one shell."""
    from writer_magics.line.questions import magic_questions
    from writer_magics.magics import with_settings_checked

    ipython.register_magics(with_settings_checked(ipython))
    cleanup = ipython.input_transformers_cleanup
    if magic_questions not in cleanup:
        cleanup.append(magic_questions)


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """Remove the transformer, close the client and loop thread, remove the magics."""
    from writer_magics.line.questions import magic_questions
    from writer_magics.magics import WriterMagics

    cleanup = ipython.input_transformers_cleanup
    while magic_questions in cleanup:
        cleanup.remove(magic_questions)
    manager = ipython.magics_manager
    assert manager is not None
    magics = manager.registry.pop("WriterMagics", None)
    if isinstance(magics, WriterMagics):
        magics.close()
        for kind in ("line", "cell"):
            for name in ("complete", "chat", "writer"):
                manager.magics[kind].pop(name, None)
