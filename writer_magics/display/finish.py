"""The one way to show Markdown and HTML (always with a readable ``text/plain``).

``show_markdown`` / ``show_html`` publish a bundle whose ``text/plain`` is readable in
a terminal; the live views (``live.py``, ``grid.py``) publish through the same
``display`` / ``update_display`` and finish as plain outputs that need no widget state
(what saved notebooks, nbconvert and GitHub show).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core import display_functions, getipython

from writer_magics.answer.markdown import markdown_bundle
from writer_magics.display.panel import (
    Outcome,
)
from writer_magics.errors import terminal_text

# IPython's display functions are untyped; these are the same functions, typed.
display: Callable[..., Any] = display_functions.display
update_display: Callable[..., Any] = display_functions.update_display

#: Builds the static finish's ``metadata`` (provenance.stamp) from how the cell ended.
Stamp = Callable[[Outcome], dict[str, Any]]


def show_markdown(markdown: str, plain: str | None = None, **kwargs: Any) -> None:
    """Display Markdown the one way: escaped for the renderer, with readable ``text/plain``.

    ``plain`` is what a terminal or a frontend without Markdown shows (default: the
    Markdown source, which reads well as text). ``kwargs`` go to IPython's ``display``
    (``display_id=...``).
    """
    bundle = markdown_bundle(markdown, plain)
    if in_terminal(getipython.get_ipython()):
        bundle["text/plain"] = terminal_text(bundle["text/plain"])
    display(bundle, raw=True, **kwargs)


def show_html(html: str, plain: str, **kwargs: Any) -> None:
    """Display HTML with a readable ``text/plain`` (what a terminal prints)."""
    if in_terminal(getipython.get_ipython()):
        plain = terminal_text(plain)
    display({"text/html": html, "text/plain": plain}, raw=True, **kwargs)


def in_terminal(shell: Any) -> bool:
    """Terminal IPython, which prints ``text/plain`` as it is (there, control characters
    from an answer are shown as pictures: :func:`~writer_magics.errors.terminal_text`)."""
    return any(cls.__name__ == "TerminalInteractiveShell" for cls in type(shell).__mro__)
