"""The one way to show Markdown and HTML (always with a readable ``text/plain``).

``show_markdown`` / ``show_html`` publish a bundle whose ``text/plain`` is readable in
a terminal; the live views (``live.py``, ``grid.py``) publish through the same
``display`` / ``update_display`` and finish as plain outputs that need no widget state
(what saved notebooks, nbconvert and GitHub show).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core import display_functions

from writer_magics.answer.markdown import markdown_bundle
from writer_magics.display.panel import (
    Outcome,
)

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
    display(markdown_bundle(markdown, plain), raw=True, **kwargs)


def show_html(html: str, plain: str, **kwargs: Any) -> None:
    """Display HTML with a readable ``text/plain`` (what a terminal prints)."""
    display({"text/html": html, "text/plain": plain}, raw=True, **kwargs)
