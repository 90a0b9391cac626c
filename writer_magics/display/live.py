"""The live view of one answer in a kernel or a rich shell: plain display outputs, no widgets.

The cell's outputs, in order, each a display with its own ``display_id``:

1. **head**: one small quiet line (HTML + ``text/plain``): the header and, while the
   answer streams, the live status (``waiting… 1.2 s``, ``streaming · ~42 tokens ·
   1.3 s``); at the finish the header only, on the same one line (no reflow).
2. **pieces**: the answer, ``text/markdown`` (escaped by ``answer/markdown.py``). The
   last piece, the tail, is updated in place (throttled, byte budget) and shows its
   text with half-written Markdown held back (:func:`~writer_magics.display.blocks.hold_back`).
   Every frame sends at most one answer message. A seal is the tail's final message:
   its whole text up to a place where it can end (a finished block, or a long block's
   latest line break or sentence end), which is at or after what it showed, so it only
   grows, with ``text/plain`` (its raw text) beside it; the rest, a partial line or
   sentence, opens the next piece at the next frame (appended: never a frame where
   text shows twice or vanishes). The tail's frames before its final one carry only
   ``text/markdown``. So a piece costs about two frames (its display, its final
   text): each byte is sent about 2.5 times (BENCHMARKS.md). Pieces are paced (at most
   ``PIECES_PER_SECOND`` a second, at most ``MAX_PIECES``: JupyterLab shows 50 outputs a
   cell) and sized to the stream's rate, so the bytes stay linear in the answer.
3. **footer** (at the finish, appended: growth only): the usage/status lines, small and
   quiet like the head, with the provenance metadata.

Nothing here opens a comm, so a notebook saved at any moment holds only readable
outputs: the head saying it was streaming and the pieces so far. At the finish the
answer becomes one clean Markdown answer (issue 19): every block cut into pieces while
it streamed is joined back (the joined text moves up into the first piece of the run,
with its ``text/plain``, and the others empty, one step), and an answer of at most
``JOIN_ALL`` bytes is joined into one output whole; a longer one keeps its whole blocks
in separate outputs. When the finish shows another text than the one streamed (a whole
JSON answer is pretty-printed), the first piece takes it and the others empty. The
footer follows.
"""

from __future__ import annotations

import html
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from writer_magics.answer.markdown import escape_markdown
from writer_magics.answer.result import Accumulator
from writer_magics.display.blocks import cut_piece, hold_back, renderable, scan
from writer_magics.display.finish import Stamp, display, update_display
from writer_magics.display.panel import (
    Outcome,
    PanelSet,
    Section,
    json_size,
    sections,
    status_lines,
)
from writer_magics.display.throttle import ByteBudget, Clock, Throttle
from writer_magics.errors import redact_answer
from writer_magics.transport.events import Event

#: At chat speeds (below ``FAST_RATE`` bytes a second) a block is cut only past this
#: many bytes: ordinary paragraphs, lists and code never show a seam while they stream.
SLOW_PIECE = 1024
FAST_RATE = 1000.0
#: Faster than that, a piece is sealed once it holds about this many seconds of stream
#: (but not below ``MIN_PIECE`` bytes nor above ``MAX_PIECE``): at ``max_updates_per_second``
#: (6) that is its second frame, so each frame appends instead of re-sending a growing tail.
PIECE_SECONDS = 0.25
MIN_PIECE = 512
MAX_PIECE = 8192
#: New pieces (outputs) open at most this many a second of stream, plus ``HEAD_START``:
#: about one every two frames, so a 13-second fast answer fits in ``MAX_PIECES``.
PIECES_PER_SECOND = 3.5
HEAD_START = 1
#: A finished block is sealed (rather than joined to the next) once the piece holds a
#: ``1 / SEAL_AT_BLOCK`` of a long block's size: a new output must be worth it.
SEAL_AT_BLOCK = 4
#: With only this many pieces left before ``MAX_PIECES``, each new piece holds at least a
#: sixth of the answer so far, so a longer answer still fits (its pieces grow
#: geometrically: the last eight cover 3.4 times the text before them).
PIECES_LEFT = 8
#: However tight the byte budget, new text never waits longer than this (seconds)...
MAX_QUIET = 0.15
#: ...until ``MAX_PIECES`` are open, or the tail has grown past four times the size a
#: piece is sealed at with no place to cut (one long line of JSON): then it grows in
#: place, and re-sending it at every frame would cost the square of its length, so its
#: frames thin out to about this many bytes a second (a 16 KB tail shows once a second,
#: a 64 KB one every 4 s).
STUCK_BYTES_PER_SECOND = 16384
#: The head's status changes on every tick; it is re-sent at most this often (seconds)
#: while waiting (the time ticks), and while text streams (the text itself shows
#: progress: the head says ``streaming…`` at the first token, then its counts every 5 s;
#: the footer gives the tokens and times at the finish).
STATUS_INTERVAL = 0.5
STREAMING_STATUS_INTERVAL = 5.0
#: Bytes sent at most, as a multiple of the answer's bytes (+ ``BUDGET_SLACK``).
BUDGET_RATIO = 2.6
BUDGET_SLACK = 2048
#: An answer of at most this many bytes ends as one output (its pieces joined): even
#: spacing between its blocks. Longer answers keep whole blocks in separate outputs;
#: a block cut while streaming is always joined back (see ``AnswerView._join``).
JOIN_ALL = 8192
#: JupyterLab (and Notebook 7) show a cell's first 50 outputs and hide the rest behind
#: "Show more outputs" (``maxNumberOutputs``). An answer stops opening new pieces at this
#: many, leaving room for the head, the footer, tool lines and thumbnails: the last piece
#: then grows in place and its updates thin out under the byte budget (very long answers
#: only; see BENCHMARKS.md).
MAX_PIECES = 45
#: Small and quiet (JupyterLab CSS variables, with fallbacks for other frontends).
_QUIET = "font-size:var(--jp-ui-font-size0,.83em);color:var(--jp-ui-font-color2,#777)"
_HEAD_STYLE = f"{_QUIET};white-space:nowrap;overflow:hidden;text-overflow:ellipsis"
_FOOT_STYLE = f"{_QUIET};margin-top:.3em"

#: CSS classes of the head and the footer (for tests, and for users who style them).
HEAD_CLASS = "writer-magics-head"
FOOTER_CLASS = "writer-magics-footer"

JSONDict = dict[str, Any]


def _new_id() -> str:
    return f"wm-{uuid.uuid4().hex[:16]}"


def _segments(line: str) -> str:
    """``a · b`` as HTML that wraps only at the separators (never mid-word)."""
    parts = (f'<span style="white-space:nowrap">{html.escape(p)}</span>' for p in line.split(" · "))
    return " · ".join(parts)


def head_bundle(line: str) -> JSONDict:
    """The head: one small quiet line that never wraps (same height live and finished)."""
    shown = html.escape(line) if line else "&nbsp;"
    return {
        "text/html": f'<div class="{HEAD_CLASS}" style="{_HEAD_STYLE}">{shown}</div>',
        "text/plain": line,
    }


def footer_bundle(lines: Sequence[str]) -> JSONDict:
    """The footer: the usage/status lines, small and quiet, wrapping only at separators."""
    body = "".join(f"<div>{_segments(line)}</div>" for line in lines)
    html_ = f'<div class="{FOOTER_CLASS}" style="{_FOOT_STYLE}">{body}</div>'
    return {"text/html": html_, "text/plain": "\n".join(lines)}


@dataclass
class Piece:
    """One display of the answer: where its raw text starts, what prefixes it, how it ends."""

    display_id: str
    start: int  # offset in the answer's raw text
    carry: str = ""  # a reopened fence line or a repeated table header before it
    cut: bool = False  # it ends inside a block (the next piece continues it): joined at the end
    after_break: bool = False  # something else (a tool call's line) is displayed above it
    sealed: bool = False  # it got its final text
    markdown: str = ""  # what it shows now (escaped)
    size: int = 0  # bytes of its last frame


class AnswerView:
    """The live view of one answer: head, pieces, footer (see the module docstring).

    ``panels`` is accepted for the factory's sake; only the first panel is shown live
    (several panels take the sweep view). ``stamp`` builds the provenance metadata, set
    on the footer. ``secrets`` are redacted from everything shown (raw text, before
    escaping). Fed on the cell thread; ``tick()`` is called while no event arrives.
    """

    def __init__(
        self,
        header: str = "",
        *,
        panels: Sequence[str] | int = 1,
        max_updates_per_second: float = 6.0,
        clock: Clock = time.monotonic,
        stamp: Stamp | None = None,
        budget_ratio: float = BUDGET_RATIO,
        secrets: Sequence[str | None] = (),
    ) -> None:
        self.header = header
        self.stamp = stamp
        self.clock = clock
        self.secrets = tuple(secrets)
        self.panels = PanelSet(panels, clock)
        self.state = self.panels.states[0]
        self.throttle = Throttle(max_per_second=max_updates_per_second, clock=clock)
        self.budget = ByteBudget(ratio=budget_ratio, slack=BUDGET_SLACK)
        self.head_id = _new_id()
        self.head_line = ""
        self.status_at: float | None = None
        self.pieces: list[Piece] = []
        self.pos = 0  # text[:pos] is in sealed pieces
        self.carry = ""  # what prefixes text[pos:] in the tail piece
        self.shown = 0  # how much of carry + text[pos:] the tail piece's last frame covered
        self.waiting_since: float | None = None  # new text not yet shown, since when
        self.frame_at = 0.0  # when the last frame was sent or decided
        self.hold_until = 0.0  # the byte budget refused a frame: no new try before this
        self.started = False
        self.finished = False
        self.broken = False  # the next piece opens below another display (break_piece)
        self.frames = 0  # answer frames sent (displays and updates of pieces)

    def _clean(self, text: str) -> str:
        """``text`` without the secrets in play (the answer may echo a key: shown, never)."""
        return redact_answer(text, self.secrets)

    # --- the head -------------------------------------------------------------------

    def _line(self, live: bool) -> str:
        if not live:
            return self.header
        status = self.state.status()
        if status.startswith("streaming ·") and "streaming" not in self.head_line:
            status = "streaming…"  # its first token: counts a moment old would look stuck
        return f"{self.header} · {status}" if self.header else status

    def _kind(self, line: str) -> str:
        """A head line's kind of status, its first word: ``waiting``, ``streaming``, ..."""
        status = line[len(self.header) :].removeprefix(" · ") if self.header else line
        return status.split(" ", 1)[0].rstrip("…")

    def _head(self, live: bool, now: float, force: bool = False) -> None:
        """Re-send the head when its status changed kind (waiting -> streaming) or is due."""
        line = self._line(live)
        if live and not force and self.status_at is not None:
            kind = self._kind(line)
            every = STREAMING_STATUS_INTERVAL if kind == "streaming" else STATUS_INTERVAL
            if kind == self._kind(self.head_line) and now - self.status_at < every:
                return
        if line == self.head_line and self.started:
            return
        bundle = head_bundle(line)
        (update_display if self.started else display)(bundle, raw=True, display_id=self.head_id)
        self.budget.spend(json_size(bundle))
        self.head_line = line
        self.status_at = now

    # --- the protocol ---------------------------------------------------------------

    def start(self) -> None:
        """Show the head (header · waiting…)."""
        self._head(True, self.clock(), force=True)
        self.started = True

    def add(self, event: Event, panel: int = 0, fold: Accumulator | None = None) -> None:
        state = self.panels.get(panel)
        before = state.text_events
        state.add(event, fold)
        first = before == 0 and state.text_events > 0  # the first text: shown at once
        if panel == 0 and (first or self.throttle.due()):
            self._frame(self.clock(), first=first)

    def tick(self) -> None:
        """No event for a while: let the status tick and show text the budget held back."""
        if not self.finished:
            self._frame(self.clock(), idle=True)

    def break_piece(self) -> None:
        """Something else is displayed below the answer now (a tool call's line): the text
        so far gets its final frame (it only grows), and later text opens a new piece
        below that display instead of growing the one above it."""
        pending = self.carry + self.state.text[self.pos :]
        if self.finished or not pending.strip():
            return
        self._final(pending, cut=False)
        self.pos = len(self.state.text)
        self.carry = ""
        self.shown = 0
        self.waiting_since = None
        self.broken = True

    # --- streaming --------------------------------------------------------------------

    def _produced(self) -> int:
        return len(self.state.text.encode())

    def _limit(self, now: float) -> int:
        """How long a piece may grow before it is sealed (bytes).

        ``PIECE_SECONDS`` of stream, or ``1 / PIECE_SPREAD`` of the time streamed so
        far once that is longer (a long answer's pieces grow, so it opens few
        outputs), or a sixth of the answer once most of ``MAX_PIECES`` are open.
        """
        first = self.state.first_text
        if first is None or now - first < 0.5:  # too early to know the rate
            return SLOW_PIECE
        elapsed = now - first
        rate = len(self.state.text) / elapsed
        limit = SLOW_PIECE
        if rate >= FAST_RATE:
            limit = int(min(MAX_PIECE, max(MIN_PIECE, rate * PIECE_SECONDS)))
        if self._growing():
            limit = max(limit, self.pos // 6)
        return limit

    def _growing(self) -> bool:
        """Few pieces are left before ``MAX_PIECES``: each new one holds a sixth of the answer."""
        return len(self.pieces) >= MAX_PIECES - PIECES_LEFT

    def _frame(self, now: float, idle: bool = False, first: bool = False) -> None:
        """One frame: at most one answer message, and the head's tick.

        When the tail has a place to end (a finished block, or a long block's latest
        line break or sentence end past what it showed), the frame is the tail's final
        message (its whole text; with ``text/plain`` unless its block goes on in the next
        piece, see :meth:`_final`) and the text after the cut, a partial line or sentence,
        opens the next piece at the next frame. Otherwise it shows the tail with
        half-written Markdown held back. A frame the byte budget refuses is retried once
        the oldest unshown text has waited ``MAX_QUIET`` (longer for a stuck tail: see
        ``STUCK_BYTES_PER_SECOND``).
        """
        if self.started:
            self._head(True, now)
        if not first and (now < self.hold_until or (not idle and not self.throttle.due())):
            return
        text = self.state.text
        pending = self.carry + text[self.pos :]
        extras = self.state.extras()
        if len(pending) > self.shown and self.waiting_since is None:
            self.waiting_since = self.frame_at  # the new text arrived after the last frame
        self.frame_at = now
        if not extras and self._seal(pending, now):
            rest = self.carry + text[self.pos :]
            self.waiting_since = now if len(rest) > len(self.carry) else None
            self.throttle.mark()
            return
        pending = self.carry + text[self.pos :]  # blank lines after a seal may have gone
        shows = hold_back(pending) if pending else ""
        md = escape_markdown(self._clean(Section("", shows, extras).markdown()))
        tail = self._tail()
        current = tail.markdown if tail is not None else ""
        if md == current or (not md.strip() and tail is None):
            if md == current:
                self.shown, self.waiting_since = len(pending), None
            return
        bundle = {"text/markdown": md}
        cost = json_size(bundle)
        waited = now - (self.waiting_since if self.waiting_since is not None else now)
        stuck = len(self.pieces) >= MAX_PIECES or len(pending) > 4 * self._limit(now)
        quiet = max(MAX_QUIET, len(pending) / STUCK_BYTES_PER_SECOND) if stuck else MAX_QUIET
        if tail is not None and waited < quiet and not self.budget.allows(cost, self._produced()):
            self.hold_until = now + quiet - waited  # no rebuild on every event
            return
        self._show(bundle, md, new=tail is None)
        self.shown = len(pending)
        self.waiting_since = None
        self.throttle.mark()

    def _tail(self) -> Piece | None:
        """The piece being written (``None`` until the text after the last seal shows)."""
        return self.pieces[-1] if self.pieces and not self.pieces[-1].sealed else None

    def _show(self, bundle: JSONDict, md: str, *, new: bool) -> None:
        if new:
            piece = Piece(_new_id(), self.pos, self.carry, after_break=self.broken)
            self.broken = False
            self.pieces.append(piece)
            display(bundle, raw=True, display_id=piece.display_id)
        else:
            piece = self.pieces[-1]
            update_display(bundle, raw=True, display_id=piece.display_id)
        piece.markdown = md
        piece.size = json_size(bundle)
        self.budget.spend(piece.size)
        self.frames += 1

    def _seal(self, pending: str, now: float) -> bool:
        """Seal the finished blocks (and a long block's head) at or after what the tail showed."""
        if len(self.pieces) >= MAX_PIECES:
            return False  # the output limit: the last piece grows from here on
        first = self.state.first_text
        paced = PIECES_PER_SECOND * (now - first) + HEAD_START if first is not None else 1.0
        if len(self.pieces) >= paced:
            return False  # about one new output every two frames
        end, _ = scan(pending)
        limit = self._limit(now)
        # A block boundary seals once the piece is worth an output (when few are left,
        # only at the growing size, or boundaries would use them up).
        least = limit if self._growing() else limit // SEAL_AT_BLOCK
        if end < self.shown or end <= len(self.carry) or end < least:
            end = 0  # a new output must be worth it: a cell shows 50 (MAX_PIECES)
        at_least = max(self.shown, len(self.carry) + 1) - end  # past the carried header
        head, carry, consumed = cut_piece(pending[end:], max(0, at_least), limit)
        if not end and not consumed:
            return False
        sealed = pending[:end] + head
        if not consumed and not sealed.strip() and self._tail() is None:
            self.pos += end - len(self.carry)  # blank lines between pieces: nothing to show
            self.carry = ""
            self.shown = 0
            return False
        # A block cut here is joined back at the finish, which sends its text/plain then.
        self._final(sealed, cut=consumed > 0)
        self.pos += end + consumed - len(self.carry)
        self.carry = carry if consumed else ""
        self.shown = len(self.carry)
        return True

    def _final(self, sealed: str, *, cut: bool) -> None:
        """The tail piece's last frame: its whole text (it grows), with ``text/plain``
        unless it ends inside a block (``cut``): the finish joins that block back into
        one piece and sends its ``text/plain`` then."""
        sealed = self._clean(sealed)
        md = escape_markdown(renderable(sealed))
        bundle = {"text/markdown": md} if cut else {"text/markdown": md, "text/plain": sealed}
        self._show(bundle, md, new=self._tail() is None)
        self.pieces[-1].cut = cut
        self.pieces[-1].sealed = True

    # --- the finish -------------------------------------------------------------------

    def finish(self, outcome: Outcome) -> None:
        """The last piece's final text and extras, joins where affordable, head, footer."""
        self.finished = True
        found = sections(outcome, self.panels.titles)
        final = found[0] if found else Section("", "", "")
        text = final.text
        sealed = self.state.text[: self.pos]
        if self.pieces and not text.startswith(sealed):
            self._rewrite(final)  # the finish shows another text (pretty JSON): one piece
        else:
            tail = self._tail()
            body = self.carry + text[self.pos :]
            if tail is None and not self.carry:
                body = body.lstrip("\r\n")  # a new piece does not start with blank lines
            rest = self._clean(Section("", body, final.extras).markdown())
            if rest != self.carry:
                md = escape_markdown(rest)
                self._show({"text/markdown": md, "text/plain": rest}, md, new=tail is None)
            elif tail is not None:  # it showed what the finish does not keep (a tool call)
                update_display({"text/plain": ""}, raw=True, display_id=tail.display_id)
            self._join(text, final.extras)
        self._head(False, self.clock(), force=True)
        lines = status_lines(outcome, self.panels.titles)
        bundle = footer_bundle(lines)
        metadata = self.stamp(outcome) if self.stamp is not None else None
        display(bundle, raw=True, metadata=metadata)

    def _rewrite(self, final: Section) -> None:
        """Show ``final`` in the first piece and empty the others (the text changed)."""
        shown = self._clean(final.markdown())
        first, *others = self.pieces
        update_display(
            {"text/markdown": escape_markdown(shown), "text/plain": shown},
            raw=True,
            display_id=first.display_id,
        )
        for piece in others:
            update_display({"text/plain": ""}, raw=True, display_id=piece.display_id)

    def _join(self, text: str, extras: str) -> None:
        """Join runs of pieces into their first one (the others empty), never across another
        display: every block cut while streaming (the final answer has no seam inside a
        paragraph, list, table or code block), and the whole answer into one output when
        it is at most ``JOIN_ALL`` bytes (even spacing between its blocks)."""
        everything = len(text.encode()) <= JOIN_ALL
        pieces = self.pieces
        i = 0
        while i < len(pieces):
            j = i
            while (
                j < len(pieces) - 1
                and (pieces[j].cut or everything)
                and not pieces[j + 1].after_break
            ):
                j += 1
            if j > i:
                run = pieces[i : j + 1]
                last = j == len(pieces) - 1
                end = len(text) if last else pieces[j + 1].start
                raw = run[0].carry + text[run[0].start : end]
                joined = self._clean(Section("", raw, extras if last else "").markdown())
                if not last:
                    joined = renderable(joined)
                bundle = {"text/markdown": escape_markdown(joined), "text/plain": joined}
                update_display(bundle, raw=True, display_id=run[0].display_id)
                for piece in run[1:]:
                    update_display({"text/plain": ""}, raw=True, display_id=piece.display_id)
            i = j + 1
