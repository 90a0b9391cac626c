"""The one way to show Markdown (always with ``text/plain``) and the static finish.

``show_markdown`` / ``show_html`` publish a bundle whose ``text/plain`` is readable in
a terminal; :func:`static_finish` replaces a live view with output that needs no
widget state (what saved notebooks, nbconvert and GitHub show).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from IPython.core import display_functions

from writer_magics.answer.markdown import markdown_bundle
from writer_magics.display.panel import (
    Outcome,
    final_markdown,
    json_size,
    sections,
    status_lines,
)

# IPython's display functions are untyped; these are the same functions, typed.
display: Callable[..., Any] = display_functions.display
update_display: Callable[..., Any] = display_functions.update_display


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


def static_finish(display_id: str, started: bool, outcome: Outcome, titles: Sequence[str]) -> int:
    """Replace the live display with static output; returns the bytes it published.

    The answer becomes one ``text/markdown`` (escaped for the renderer) + ``text/plain``
    (as received) bundle, what saved notebooks, nbconvert and GitHub show with no
    widget state, followed by the usage line as a separate ``text/plain`` output so it
    never pollutes the answer.
    """
    answer = final_markdown(sections(outcome, titles))
    usage = "\n".join(status_lines(outcome, titles))
    first = markdown_bundle(answer) if answer else {"text/plain": usage}
    show = update_display if started else display
    show(first, raw=True, display_id=display_id)
    sent = json_size(first)
    if answer:
        display({"text/plain": usage}, raw=True)
        sent += json_size(usage)
    return sent
