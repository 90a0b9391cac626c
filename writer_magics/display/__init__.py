"""Stage 5, what the user sees while and after an answer streams.

In: the events and the fold's state (``answer.result``) of each request. Out: one
live view per cell (``open_view``: one answer as plain display outputs, ``live``,
in a kernel or a rich shell; several panels as widgets in a kernel or stacked
Markdown; plain text in a terminal; all share the ``LiveView`` protocol), rate- and
byte-limited (``throttle``), with finished Markdown blocks sealed once and
half-written Markdown held back (``blocks``), and a finish that needs no widget state.
"""

from writer_magics.display.blocks import cut_long_tail, renderable, scan, split_finished
from writer_magics.display.panel import Outcome, PanelState
from writer_magics.display.throttle import ByteBudget, Throttle
from writer_magics.display.views import (
    LiveView,
    MarkdownView,
    TextView,
    ViewKind,
    auto_kind,
    open_view,
)


def __getattr__(name: str) -> object:
    """``WidgetView`` imports ipywidgets only when asked for."""
    if name == "WidgetView":
        from writer_magics.display.widget import WidgetView

        return WidgetView
    raise AttributeError(name)


__all__ = [
    "ByteBudget",
    "LiveView",
    "MarkdownView",
    "Outcome",
    "PanelState",
    "TextView",
    "Throttle",
    "ViewKind",
    "WidgetView",
    "auto_kind",
    "cut_long_tail",
    "open_view",
    "renderable",
    "scan",
    "split_finished",
]
