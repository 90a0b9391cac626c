"""Where streamed Markdown can be cut so that each piece renders on its own.

The live view sends finished blocks to the frontend once and re-sends only the
unfinished tail, so it needs to know where the finished part ends: after a blank
line outside a code fence, once the next block has started at the left margin (an
indented line could still belong to a list item), or after a closing fence. Pure
functions, no IPython.
"""

from __future__ import annotations

import re

from writer_magics.answer.markdown import Fence, opens_fence


def scan(text: str) -> tuple[int, Fence | None]:
    """The end of the finished blocks in ``text``, and the fence open at its end.

    ``text[:end]`` is a run of whole blocks that render the same on their own;
    ``text[end:]`` is the unfinished tail. ``text`` must start outside a fence.
    """
    end = 0
    fence: Fence | None = None
    blank_seen = False  # a blank line outside a fence since the last candidate cut
    offset = 0
    for line in text.splitlines(keepends=True):
        complete = line.endswith("\n")
        body = line.rstrip("\r\n")
        if fence is not None:
            if complete and fence.closes(body):
                fence = None
                if not body.startswith(" "):
                    end = offset + len(line)
                blank_seen = False
        elif not body.strip():
            if complete:
                blank_seen = True
        else:
            if blank_seen and not body[0].isspace():
                end = offset  # the blank line before this block ends the previous one
            blank_seen = False
            if complete:
                fence = opens_fence(body)
        offset += len(line)
    return end, _fence_at(text, end)


#: Line boundaries of ``str.splitlines`` other than ``\n``.
_OTHER_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
#: A line that could open or close a fence (see ``answer.markdown``), ``\n``-separated.
_FENCE_LINE = re.compile(r"^ {0,3}(?:`{3,}|~{3,}).*$", re.MULTILINE)


def _fence_at(text: str, end: int) -> Fence | None:
    """The fence open at the very end of ``text[end:]`` (for the live rendering of the tail).

    Called on every update with the whole unfinished tail, so it looks only at the
    lines that could open or close a fence (found by one regular expression); text with
    line boundaries other than ``\n`` takes the line-by-line reading, which gives the
    same answer.
    """
    tail = text[end:] if end else text
    if _OTHER_BREAKS.search(tail) is not None:
        return _fence_at_by_lines(tail)
    fence: Fence | None = None
    for match in _FENCE_LINE.finditer(tail):
        if not tail.startswith("\n", match.end()):
            continue  # an unfinished last line neither opens nor closes a fence
        body = match.group()
        if fence is not None:
            if fence.closes(body):
                fence = None
        else:
            fence = opens_fence(body)
    return fence


def _fence_at_by_lines(text: str, end: int = 0) -> Fence | None:
    """:func:`_fence_at`, reading every line."""
    fence: Fence | None = None
    for line in text[end:].splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if fence is not None:
            if line.endswith("\n") and fence.closes(body):
                fence = None
        elif line.endswith("\n"):
            fence = opens_fence(body)
    return fence


def split_finished(text: str) -> tuple[str, str]:
    """``(finished, tail)`` with ``finished + tail == text``; see :func:`scan`."""
    end, _ = scan(text)
    return text[:end], text[end:]


def renderable(tail: str) -> str:
    """The tail as it should be shown now: an open code fence is closed for display."""
    fence = _fence_at(tail, 0)
    if fence is None:
        return tail
    return tail + ("" if tail.endswith("\n") else "\n") + fence.marker


def cut_long_tail(tail: str, limit: int) -> tuple[str, str, int]:
    """Cut an unfinished tail longer than ``limit`` at its last line break.

    One long code block or paragraph would otherwise be re-sent whole on every
    update. Returns ``(head, carry, consumed)``: ``head`` renders on its own (inside a
    code fence it gets a closing fence), ``carry`` must prefix the rest (the reopening
    fence line) and ``consumed`` is how much of ``tail`` the head used. ``("", "", 0)``
    when the tail is short enough or has no line break to cut at.
    """
    if len(tail) <= limit:
        return "", "", 0
    cut = tail.rfind("\n", 0, len(tail) - 1) + 1
    if cut <= 0:
        return "", "", 0
    head = tail[:cut]
    fence = _fence_at(head, 0)
    if fence is None:
        return head, "", cut
    if head.rstrip("\r\n") == fence.line:
        return "", "", 0  # nothing but the opening line yet
    return head + fence.marker + "\n", fence.line + "\n", cut
