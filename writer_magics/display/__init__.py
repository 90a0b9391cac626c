"""Live display of a streaming answer, and the static output it leaves behind.

``open_view`` picks a view for the frontend: widgets in a kernel, Markdown updates
in a rich shell without a kernel, plain text in a terminal. All share the
:class:`LiveView` protocol and finish with static output that needs no widget state.
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
