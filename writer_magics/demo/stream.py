"""Kernel messages -> terminal text, for the demo: the answers stream as they arrive.

One answer is shown as plain displays (``display/live.py``): a head line, the answer's
pieces (each sealed piece's last frame carries its raw text as ``text/plain``) and a
footer; :class:`TerminalEcho` prints each piece's text as it is sealed, the last one
at the finish, then the footer line, so nothing is lost or printed twice. Several
panels (``display/grid.py``) are one HTML display re-sent whole: the terminal says they
are coming and prints their stacked ``text/plain`` once they are complete.

Pure: feed it iopub message dicts; it writes to a text stream. No nbclient import.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from writer_magics.errors import terminal_text

JSON = dict[str, Any]
#: The class of the side-by-side grid (display/grid.py): one HTML display per cell.
GRID = "writer-magics-grid"
#: Classes of the live view's head and footer (``display/live.py``).
HEAD_MARK = 'class="writer-magics-head"'
FOOTER_MARK = 'class="writer-magics-footer"'
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


@dataclass
class PieceAnswer:
    """One answer shown as pieces: what each shows, in order, and what was printed.

    A sealed piece's last frame carries its raw text as ``text/plain``; the tail's
    frames carry only the Markdown it shows, of which the complete lines are printed as
    they arrive. Inside an open code block the view closes the fence for the renderer,
    so the line before that fence may be unfinished: it is held back with the fence
    until the next frame (or the piece's seal) shows it whole. At the finish the live
    view joins a block's pieces into its first one and empties the others
    (``{"text/plain": ""}``); from the first such rewrite nothing is printed until
    :meth:`rest`, when every piece holds its final text.
    """

    order: list[str] = field(default_factory=list)  # display ids of the pieces
    final: dict[str, str] = field(default_factory=dict)  # sealed pieces' raw text
    shown: dict[str, str] = field(default_factory=dict)  # the tail's complete lines
    printed: str = ""
    rewritten: bool = False  # a sealed piece changed: the finish is joining pieces

    def piece(self, display_id: str, data: JSON) -> str:
        """Note a frame of a piece; returns the text that is new to print."""
        if display_id not in self.order:
            self.order.append(display_id)
        plain = data.get("text/plain")
        if "text/markdown" not in data and plain != "":
            return ""
        if isinstance(plain, str):
            if self.final.get(display_id, plain) != plain:
                self.rewritten = True
            self.final[display_id] = plain
        else:
            self.shown[display_id] = _complete_lines(_markdown_of([{"data": data}]))
        return "" if self.rewritten else self._new(self._text(), hold=True)

    def rest(self) -> str:
        """At the finish: whatever is not printed yet."""
        return self._new(self._text(), hold=False)

    def _text(self) -> str:
        parts = []
        for key in self.order:
            if key in self.final:
                parts.append(self.final[key])
                continue
            parts.append(_without_closing_fence(self.shown.get(key, "")))
            break  # the tail: what follows it is not shown yet
        return _joined(parts)

    def _new(self, text: str, *, hold: bool) -> str:
        if hold:
            text = _without_closing_fence(text)
        if text.startswith(self.printed):
            new, self.printed = text[len(self.printed) :], text
            return new
        if hold:
            return ""  # rewritten before the finish: wait for the final text
        # The final text differs from what was printed (it should not): print the rest
        # from where they part, on a line of its own, rather than lose it.
        pairs = zip(self.printed, text, strict=False)
        same = next((i for i, (a, b) in enumerate(pairs) if a != b), len(self.printed))
        same = text.rfind("\n", 0, same) + 1
        self.printed = text
        return "\n" + text[same:]


def _complete_lines(markdown: str) -> str:
    """The lines of a tail frame that are surely whole.

    The last line is unfinished and not shown. When the text ends in a bare fence
    (the view closing an open code block for the renderer), the line before it may be
    unfinished too: both are held back.
    """
    text = markdown[:-1] if markdown.endswith("\n") else markdown
    head, _, last = text.rpartition("\n")
    if _BARE_FENCE.match(last):
        return head[: head.rfind("\n") + 1]
    return markdown[: markdown.rfind("\n") + 1]


def _without_closing_fence(text: str) -> str:
    """``text`` without a bare fence as its last line (it may be reopened next)."""
    body = text[:-1] if text.endswith("\n") else text
    cut = body.rfind("\n") + 1
    return text[:cut] if _BARE_FENCE.match(body[cut:]) else text


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

    Call :meth:`cell` before each cell and :meth:`message` for every iopub message.
    """

    def __init__(self, out: TextIO | None = None, color: bool | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        if color is None:
            color = self.out.isatty() and not os.environ.get("NO_COLOR")
        self.color = color
        self.at_line_start = True
        self.grids: set[str] = set()  # display_ids of side-by-side grids still live
        self.pieces: PieceAnswer | None = None  # the answer shown as pieces, while it streams
        self.heads: set[str] = set()  # display ids of the live views' heads

    # -------------------------------------------------------------- writing

    def _style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text

    def write(self, text: str, style: str = "") -> None:
        """Print ``text`` (its control characters shown, never acted on), styled."""
        if not text:
            return
        text = terminal_text(text)
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

    def message(self, msg: JSON) -> None:
        """Show what a kernel message adds to the cell's output."""
        kind = msg.get("msg_type") or msg.get("header", {}).get("msg_type", "")
        content: JSON = msg.get("content", {})
        transient = content.get("transient") or {}
        display_id = transient.get("display_id") if isinstance(transient, dict) else None
        data: JSON = content.get("data") or {}
        if self._piece_message(kind, data, display_id):
            return
        if kind == "stream":
            style = "33" if content.get("name") == "stderr" else ""
            self.write(str(content.get("text", "")), style)
        elif kind in ("display_data", "execute_result"):
            if display_id and GRID in str(data.get("text/html", "")):
                self.grids.add(display_id)
                self.newline()
                self.line("(several answers side by side: shown when they are complete)", "2")
            else:
                self._static(data)
        elif (
            kind == "update_display_data"
            and display_id in self.grids
            and "text/markdown" in data  # the finish (live frames are HTML only)
        ):
            self.grids.discard(display_id)
            self.newline()
            self.write(str(data.get("text/plain", "")) + "\n")

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
            if self.pieces is not None:
                self.write(self.pieces.rest())
            self.pieces = None
            self.newline()
            self.write(str(data.get("text/plain", "")) + "\n", "2")
            return True
        if display_id in self.heads:
            return True
        piece = "text/markdown" in data or "text/plain" in data  # emptied at a join: plain ""
        if self.pieces is not None and display_id and piece:
            self.write(self.pieces.piece(display_id, data))
            return True
        return False

    def _static(self, data: JSON) -> None:
        """Ordinary output: Markdown source (the usage line and prints stay plain)."""
        text = _markdown_of([{"data": data}]) or data.get("text/plain") or ""
        if not text:
            return
        text = str(text)
        self.newline()
        self.write(text if text.endswith("\n") else text + "\n")
