"""writer-magics: `%%complete` and `%%chat` for the Writer API in Jupyter.

The extension is loaded with ``%load_ext writer_magics``; loading and unloading are
mirror images so that ``%reload_ext`` leaves no stale state behind: the magics (with
their client and loop thread) and the input transformer that keeps
``%chat What is RAG?`` from being read as a help request (:mod:`writer_magics.line.questions`).
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
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'writer_magics' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """Register the magics and the line-form question transformer on one shell."""
    from writer_magics.line.questions import magic_questions
    from writer_magics.magics import WriterMagics

    ipython.register_magics(WriterMagics(shell=ipython))
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
