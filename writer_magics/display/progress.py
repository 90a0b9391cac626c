"""The one live view of a batch: a progress bar and the last few answers, never a panel a row.

:func:`progress_text` / :func:`progress_markdown` are pure (a :class:`Progress`
snapshot in, text out). :class:`BatchView` shows them: in a notebook (``widget`` or
``markdown`` view) one display updated in place, at most ``max_per_second`` times a
second, each update a few hundred bytes whatever the answers' length; in terminal
IPython (``text``) one progress line rewritten with ``\\r``. ``finish`` replaces the
live display with the static summary (the Batch's table), which is what a saved
notebook keeps.
"""

from __future__ import annotations

import html
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

from writer_magics.display.throttle import Throttle

__all__ = ["BatchView", "Progress", "progress_markdown", "progress_text"]

#: Answers shown under the bar.
RECENT = 3
PREVIEW_CHARS = 80
BAR_WIDTH = 20


@dataclass
class Progress:
    """Counts of one batch so far; ``recent`` holds ``(label, line, ok)`` of the last rows."""

    title: str
    total: int
    done: int = 0
    failed: int = 0
    cached: int = 0
    tokens: int = 0
    rate_limited: int = 0
    started: float = field(default_factory=time.monotonic)
    recent: deque[tuple[str, str, bool]] = field(default_factory=lambda: deque(maxlen=RECENT))

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cached

    @property
    def remaining(self) -> int:
        return self.total - self.finished

    def add(self, label: str, text: str, ok: bool) -> None:
        flat = " ".join(text.split())
        if len(flat) > PREVIEW_CHARS:
            flat = flat[: PREVIEW_CHARS - 1] + "…"
        self.recent.append((label, flat, ok))

    def estimate(self, now: float) -> float | None:
        """Seconds left at the rate of the rows answered over the network so far."""
        sent = self.done + self.failed
        if not sent or not self.remaining:
            return None
        return (now - self.started) / sent * self.remaining


def _bar(progress: Progress) -> str:
    share = progress.finished / progress.total if progress.total else 1.0
    filled = round(share * BAR_WIDTH)
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def _counts(progress: Progress, now: float) -> str:
    parts = [
        f"{progress.finished}/{progress.total}",
        f"{progress.done} done",
        f"{progress.failed} failed",
        f"{progress.cached} cached",
        f"{progress.remaining} remaining",
    ]
    if progress.tokens:
        parts.append(f"{progress.tokens:,} tokens")
    parts.append(f"{now - progress.started:.1f} s")
    left = progress.estimate(now)
    if left is not None:
        parts.append(f"~{left:.0f} s left")
    if progress.rate_limited:
        parts.append(f"{progress.rate_limited} rate-limited (slowed down)")
    return " · ".join(parts)


def progress_text(progress: Progress, now: float) -> str:
    """One line: ``[██████░░░░] 412/1000 · 400 done · 3 failed · … · ~18 s left``."""
    return f"{progress.title} [{_bar(progress)}] {_counts(progress, now)}"


def progress_markdown(progress: Progress, now: float) -> str:
    """The bar and counts, then the last few answers (escaped, one line each)."""
    lines = [f"**{html.escape(progress.title)}** `{_bar(progress)}` {_counts(progress, now)}"]
    for label, text, ok in progress.recent:
        mark = "" if ok else "✗ "
        shown = html.escape(text, quote=False).replace("$", "\\$").replace("`", "\\`")
        lines.append(f"- {mark}**{html.escape(label)}**: {shown}")
    return lines[0] + ("\n\n" + "\n".join(lines[1:]) if lines[1:] else "")


class BatchView:
    """Shows a :class:`Progress` in place; ``finish`` leaves the static summary."""

    def __init__(
        self,
        kind: Literal["widget", "markdown", "text"],
        progress: Progress,
        *,
        max_per_second: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
    ) -> None:
        self.kind = kind
        self.progress = progress
        self.clock = clock
        self.throttle = Throttle(max_per_second, clock)
        self.stream = stream
        self._handle: Any = None
        self._line_width = 0

    def start(self) -> None:
        self.update(force=True)

    def update(self, *, force: bool = False) -> None:
        """Redraw if the rate allows (or ``force``)."""
        if not force and not self.throttle.due():
            return
        self.throttle.mark()
        now = self.clock()
        if self.kind == "text":
            line = progress_text(self.progress, now)
            out = self.stream or sys.stdout
            out.write("\r" + line.ljust(self._line_width))
            out.flush()
            self._line_width = len(line)
            return
        bundle = {
            "text/markdown": progress_markdown(self.progress, now),
            "text/plain": progress_text(self.progress, now),
        }
        self._show(bundle)

    def _show(self, bundle: dict[str, str], metadata: dict[str, Any] | None = None) -> None:
        from IPython.display import DisplayHandle, display

        if self._handle is None:
            self._handle = DisplayHandle()
            display(bundle, raw=True, metadata=metadata, display_id=self._handle.display_id)
        else:
            self._handle.update(bundle, raw=True, metadata=metadata)

    def finish(self, markdown: str, text: str, metadata: dict[str, Any] | None = None) -> None:
        """Replace the live view with the summary (Markdown, and plain text in a terminal);
        ``metadata`` (the rows' provenance) goes on the summary output."""
        if self.kind == "text":
            out = self.stream or sys.stdout
            out.write("\r" + progress_text(self.progress, self.clock()).ljust(self._line_width))
            out.write("\n" + text + "\n")
            out.flush()
            return
        self._show({"text/markdown": markdown, "text/plain": text}, metadata)
