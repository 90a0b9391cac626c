"""Kernel messages -> terminal text, for the demo: the answers stream as they arrive.

One answer is shown as plain displays (``display/live.py``): a head line, the answer's
pieces (each sealed piece's last frame carries its raw text as ``text/plain``) and a
footer; :class:`TerminalEcho` prints each piece's text as it is sealed, the last one
at the finish, then the footer line. Several panels still show a live *widget*: each
finished Markdown block arrives once as a new Output widget whose ``comm_open`` state
holds it, the unfinished tail is re-sent as the ``outputs`` state of a "tail" Output
widget, and at the end the whole display is replaced by a static ``text/markdown``
bundle. A terminal has no widgets, so :class:`TerminalEcho` rebuilds the answer text
from those messages and prints only what is new, then reconciles with the static
answer so nothing is lost or printed twice.

Pure: feed it iopub message dicts; it writes to a text stream. No nbclient import.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

JSON = dict[str, Any]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Classes of the live view's head and footer (``display/live.py``), and the tail's
#: intermediate ``text/plain``.
HEAD_MARK = 'class="writer-magics-head"'
FOOTER_MARK = 'class="writer-magics-footer"'
TAIL_PLAIN = "…"
_BARE_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})$")
_OPEN_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^`]*$")


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def _last_line(text: str) -> str:
    return text.rstrip("\n").rsplit("\n", 1)[-1]


def _joined(parts: list[str]) -> str:
    """Finished blocks in order, without the close/reopen fence pair of a cut code block.

    The live view cuts a long code block by closing its fence in one block and
    reopening it at the start of the next; the terminal shows the block whole.
    """
    text = ""
    for part in parts:
        if text.endswith("\n") and part:
            closing, opening = _last_line(text), _first_line(part)
            if (
                _BARE_FENCE.match(closing)
                and _OPEN_FENCE.match(opening)
                and closing.strip()[0] == opening.strip()[0]
                and part.startswith(opening + "\n")
            ):
                text = text[: len(text) - len(closing) - 1]
                part = part[len(opening) + 1 :]
        text += part
    return text


def stable_tail(tail: str) -> str:
    """The tail without the closing fence the live view adds to an unfinished code block.

    That fence (and the line break before it, which may be added too) is not part of
    the answer yet; everything before it is, whatever arrives next.
    """
    cut = tail.rfind("\n")
    if cut >= 0 and _BARE_FENCE.match(tail[cut + 1 :]):
        return tail[:cut]
    return tail


@dataclass
class PieceAnswer:
    """One answer shown as pieces: their final raw texts in order, and what was printed."""

    order: list[str] = field(default_factory=list)  # display ids of the pieces
    final: dict[str, str] = field(default_factory=dict)
    printed: str = ""

    def piece(self, display_id: str, data: JSON) -> str:
        """Note a frame of a piece; returns the text that is new to print."""
        if display_id not in self.order:
            self.order.append(display_id)
        plain = data.get("text/plain")
        if not isinstance(plain, str) or plain == TAIL_PLAIN or "text/markdown" not in data:
            return ""
        self.final[display_id] = plain
        done = []
        for key in self.order:
            if key not in self.final:
                break
            done.append(self.final[key])
        text = _joined(done)
        if not text.startswith(self.printed):
            return ""  # joined back at the finish: already printed
        new, self.printed = text[len(self.printed) :], text
        return new


@dataclass
class LiveAnswer:
    """One live display's answer: sealed blocks + the current tail, and what was printed."""

    sealed: list[str] = field(default_factory=list)
    tail: str = ""
    printed: str = ""
    outputs_widgets: int = 0
    diverged: bool = False

    @property
    def several(self) -> bool:
        """More than one panel (a sweep or ``-n``): shown whole at the end, not interleaved."""
        return self.outputs_widgets > 1  # one tail Output per panel

    def text(self) -> str:
        return _joined([*self.sealed, stable_tail(self.tail)])

    def new_text(self) -> str:
        """What to print now: the part of the answer that is new since the last call."""
        if self.several:
            return ""
        current = self.text()
        if not current.startswith(self.printed):
            self.diverged = True
            return ""
        new, self.printed = current[len(self.printed) :], current
        return new

    def rest(self, final: str) -> str:
        """What to print when the static answer arrives, so the terminal ends up with it."""
        if final.startswith(self.printed):
            return final[len(self.printed) :]
        return "" if self.printed else final


def _markdown_of(outputs: list[JSON]) -> str:
    """The Markdown source the outputs show (escapes for the renderer undone)."""
    from writer_magics.answer.markdown import unescape_markdown

    return unescape_markdown(
        "".join(
            str(o.get("data", {}).get("text/markdown", "")) for o in outputs if isinstance(o, dict)
        )
    )


class TerminalEcho:
    """Prints a notebook's outputs to a terminal while its cells run.

    Call :meth:`cell` before each cell and :meth:`message` for every iopub message
    (``captured`` says whether nbclient routed it into an Output widget).
    """

    def __init__(self, out: TextIO | None = None, color: bool | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        if color is None:
            color = self.out.isatty() and not os.environ.get("NO_COLOR")
        self.color = color
        self.live: dict[str, LiveAnswer] = {}  # display_id -> answer of a live display
        self.pending = LiveAnswer()  # widgets created before their display is shown
        self.current: LiveAnswer | None = None
        self.at_line_start = True
        self.after_live = False  # the next plain display is the answer's usage line
        self.pieces: PieceAnswer | None = None  # the answer shown as pieces, while it streams
        self.heads: set[str] = set()  # display ids of the live views' heads

    # -------------------------------------------------------------- writing

    def _style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text

    def write(self, text: str, style: str = "") -> None:
        if not text:
            return
        self.out.write(self._style(text, style) if style else text)
        self.out.flush()
        self.at_line_start = text.endswith("\n")

    def newline(self) -> None:
        """End the current line if something is on it."""
        if not self.at_line_start:
            self.write("\n")

    def line(self, text: str, style: str = "") -> None:
        self.newline()
        self.write(text + "\n", style)

    # -------------------------------------------------------------- cells

    def cell(self, number: int, total: int, source: str) -> None:
        """A progress line for a code cell about to run."""
        first = _first_line(source.strip())
        more = " …" if "\n" in source.strip() else ""
        self.newline()
        self.write("\n")
        self.line(f"[{number}/{total}] {first}{more}", "1;36")

    def markdown_cell(self, source: str) -> None:
        """Headings of Markdown cells, so the terminal follows the notebook's sections."""
        for text in source.splitlines():
            if text.startswith("#"):
                self.newline()
                self.write("\n")
                self.line(text, "1")

    # -------------------------------------------------------------- messages

    def message(self, msg: JSON, captured: bool = False) -> None:
        """Show what a kernel message adds to the cell's output."""
        kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type", "")
        content: JSON = msg.get("content", {})
        transient = content.get("transient") or {}
        display_id = transient.get("display_id") if isinstance(transient, dict) else None
        data: JSON = content.get("data") or {}
        if self._piece_message(kind, data, display_id):
            return
        if kind in ("comm_open", "comm_msg"):
            self._comm(data.get("state") or {}, opening=kind == "comm_open")
        elif kind == "stream":
            self.after_live = False
            style = "33" if content.get("name") == "stderr" else ""
            self.write(str(content.get("text", "")), style)
        elif kind in ("display_data", "execute_result") and captured:
            if self.current is not None and "text/markdown" in data:
                # The tail state still holds these blocks until its own update follows.
                self.current.sealed.append(_markdown_of([{"data": data}]))
                self.current.tail = ""
                self._print_new()
        elif kind in ("display_data", "execute_result"):
            if WIDGET_VIEW in data:
                self._live_display(display_id)
            else:
                self._static(data)
        elif kind == "update_display_data" and display_id in self.live:
            self._finish(self.live.pop(display_id), data)

    def _piece_message(self, kind: str, data: JSON, display_id: str | None) -> bool:
        """Head, pieces and footer of the one-answer view; False for anything else."""
        if kind not in ("display_data", "update_display_data"):
            return False
        html = str(data.get("text/html", ""))
        if HEAD_MARK in html:
            if kind == "display_data" and display_id:
                self.heads.add(display_id)
                self.pieces = PieceAnswer()
                self.newline()
            return True
        if FOOTER_MARK in html:
            self.pieces = None
            self.newline()
            self.write(str(data.get("text/plain", "")) + "\n", "2")
            return True
        if display_id in self.heads:
            return True
        if self.pieces is not None and display_id and "text/plain" in data:
            self.write(self.pieces.piece(display_id, data))
            return True
        return False

    def _comm(self, state: JSON, opening: bool) -> None:
        answer = self.current or self.pending
        if opening and state.get("_model_name") == "OutputModel":
            sealed = _markdown_of(list(state.get("outputs") or []))
            if not sealed:
                answer.outputs_widgets += 1  # a panel's tail Output
            elif self.current is not None and not self.current.several:
                # A finished block; the tail state still holds it until its own update.
                self.current.sealed.append(sealed)
                self.current.tail = ""
                self._print_new()
            return
        if not opening and "outputs" in state and self.current is not None:
            self.current.tail = _markdown_of(list(state.get("outputs") or []))
            self._print_new()

    def _live_display(self, display_id: str | None) -> None:
        """A live widget display opened: its answer starts now."""
        answer, self.pending = self.pending, LiveAnswer()
        self.current = answer
        if display_id:
            self.live[display_id] = answer
        self.newline()
        if answer.several:
            self.line("(several answers side by side: shown when they are complete)", "2")

    def _print_new(self) -> None:
        if self.current is not None:
            self.write(self.current.new_text())

    def _finish(self, answer: LiveAnswer, data: JSON) -> None:
        final = _markdown_of([{"data": data}])
        if final:
            self.write(answer.rest(final))
        else:
            self.write(str(data.get("text/plain", "")), "2")
        self.newline()
        self.after_live = True
        if answer is self.current:
            self.current = None

    def _static(self, data: JSON) -> None:
        """Ordinary output: Markdown source (the usage line and prints stay plain)."""
        text = _markdown_of([{"data": data}]) or data.get("text/plain") or ""
        if not text:
            return
        text = str(text)
        usage = self.after_live and "text/markdown" not in data
        self.after_live = False
        self.newline()
        self.write(text if text.endswith("\n") else text + "\n", "2" if usage else "")
