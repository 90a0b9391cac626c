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


# --- Half-written Markdown (issue 14 §8) -------------------------------------------

#: An unfinished last line that is only a list marker (``- ``, ``1.``): an empty bullet.
_EMPTY_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]*$")
#: An unfinished last line of marker characters only: a fence, rule, setext underline or
#: heading being typed (``\`\``, ``--``, ``==``, ``##``).
_MARKERS_ONLY = re.compile(r"^[ \t]*(?:[-=_*+#~`]+[ \t]*)+$")
#: A table line (GFM): starts with a pipe after at most three spaces.
_TABLE_LINE = re.compile(r"^ {0,3}\|")
#: A table's delimiter row: ``|---|:--:|``.
_DELIMITER_ROW = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
#: Characters that end a sentence, when followed by a space; CJK full stops need none.
_SENTENCE_END = re.compile(r"(?:[.!?:;][)\"'”’]*[ \t]+|[。！？；][)\"'”’」』]*)(?=\S)")
#: Where prose with no sentence end can still be cut, as a last resort: after a space
#: or a CJK comma, in a block that is one line of plain prose (no list item, quote,
#: heading or table, which a cut mid-line would break).
_WORD_END = re.compile(r"(?:[ \t]+|[，、])(?=\S)")
_PLAIN_LINE = re.compile(r"(?![ \t]*(?:[-*+>#|]|\d{1,9}[.)]))[^\n]*\Z")


def hold_back(tail: str) -> str:
    """The unsealed tail as it may be shown now: unfinished markup held back or closed.

    Pure; ``tail`` starts outside a code fence (a piece of the answer). An open code
    fence is closed (:func:`renderable`); a half-typed fence line is held back. Outside
    code, the last block loses what would flash raw for a frame: an empty bullet
    (``- ``), a line of marker characters only (``--``, ``##``, a fence being typed),
    table lines before their delimiter row has arrived and a table's unfinished last row,
    a lone backtick, ``*``, ``**`` or ``_`` with nothing after it, and a link's
    ``[`` / ``](url`` (its text is shown plain until the link is complete). Emphasis and
    code spans that have content are closed temporarily (``**bold`` shows as bold).
    Every result is a prefix of ``tail`` with markup characters removed or closers added,
    so what it shows only grows as the tail grows.
    """
    fence = _fence_at(tail, 0)
    if fence is not None:
        body, _, last = tail.rpartition("\n")
        if last and _MARKERS_ONLY.match(last) and last.strip()[0] in "`~":
            tail = body + "\n" if body or tail.startswith("\n") else ""
        return renderable(tail)
    start = _last_block_start(tail)
    head, block = tail[:start], tail[start:]
    return head + _hold_block(block)


def _last_block_start(text: str) -> int:
    """Where the last block (after the last blank line or closing fence line) starts."""
    blank = text.rfind("\n\n")
    start = blank + 2 if blank >= 0 else 0
    for match in _FENCE_LINE.finditer(text, start):
        if text.startswith("\n", match.end()):
            start = max(start, match.end() + 1)
    return start


def _hold_block(block: str) -> str:
    """:func:`hold_back` for the last block, which is outside any fence."""
    lines = block.split("\n")
    last = lines[-1]
    if last and (_EMPTY_ITEM.match(last) or _MARKERS_ONLY.match(last)):
        lines[-1] = ""
    lines = _hold_table(lines)
    return _hold_inline("\n".join(lines))


def _hold_table(lines: list[str]) -> list[str]:
    """Table lines held back until the delimiter row is complete; an unfinished last row too."""
    end = len(lines) - 1  # ``lines[-1]`` is the unfinished last line ("" after a line break)
    if lines[end] and not _TABLE_LINE.match(lines[end]):
        return lines
    first = end
    while first > 0 and _TABLE_LINE.match(lines[first - 1]):
        first -= 1
    if first == end and not lines[end]:
        return lines
    complete = end - first  # table lines followed by a line break
    if complete < 2 or not _DELIMITER_ROW.match(lines[first + 1]):
        return [*lines[:first], ""]
    if lines[end]:
        return [*lines[:end], ""]
    return lines


def _hold_inline(text: str) -> str:
    """Close or drop unfinished code spans, emphasis and links at the end of ``text``."""
    n = len(text)
    code: tuple[int, int] | None = None  # (position, backticks) of an open code span
    brackets: list[int] = []  # open ``[`` positions
    link: tuple[int, int] | None = None  # (``[`` position, ``]`` position) of ``](...``
    openers: list[tuple[int, str, int]] = []  # (position, character, run length)
    i = 0
    line_start = True
    while i < n:
        c = text[i]
        if c == "\n":
            line_start = True
            i += 1
            continue
        if link is not None:
            if c == ")":
                link = None
            i += 1
            line_start = False
            continue
        if c == "\\" and code is None:
            i += 2
            line_start = False
            continue
        if c == "`":
            j = i
            while j < n and text[j] == "`":
                j += 1
            if code is None:
                code = (i, j - i)
            elif code[1] == j - i:
                code = None
            i = j
            line_start = False
            continue
        if code is not None:
            i += 1
            line_start = False
            continue
        if c == "[":
            brackets.append(i)
        elif c == "]" and brackets:
            opened = brackets.pop()
            if i + 1 < n and text[i + 1] == "(":
                link = (opened, i)
                i += 2
                line_start = False
                continue
            if i + 1 == n:
                link = (opened, i)  # ``[text]`` at the very end may become a link
        elif c in "*_":
            j = i
            while j < n and text[j] == c:
                j += 1
            before = text[i - 1] if i > 0 else "\n"
            after = text[j] if j < n else ""
            bullet = line_start and c == "*" and after in " \t"
            if not bullet:
                word = c == "_"
                can_close = not before.isspace() and not (word and after.isalnum())
                can_open = bool(after) and not after.isspace() and not (word and before.isalnum())
                match = next(
                    (k for k in range(len(openers) - 1, -1, -1) if openers[k][1:] == (c, j - i)),
                    None,
                )
                if can_close and match is not None:
                    del openers[match:]
                elif can_open:
                    openers.append((i, c, j - i))
                elif not after:
                    openers.append((i, c, j - i))  # a trailing run: dropped below
            i = j
            line_start = False
            continue
        if not c.isspace():
            line_start = False
        i += 1
    cut = n
    replacement = ""
    if link is not None:
        opened, closed = link
        cut, replacement = opened, text[opened + 1 : closed]
    if code is not None and code[0] < cut:
        body = text[:cut].rstrip("`")  # a closing run being typed
        if len(body) > code[0] + code[1] and body[code[0] + code[1] :].strip():
            return _close_emphasis(body, openers, code[0]) + "`" * code[1]
        cut, replacement = code[0], ""
    shown = text[:cut] + replacement
    for opened in reversed(brackets):
        if opened < cut:
            shown = shown[:opened] + shown[opened + 1 :]
    return _close_emphasis(shown, [o for o in openers if o[0] < cut], len(shown))


def _close_emphasis(text: str, openers: list[tuple[int, str, int]], limit: int) -> str:
    """``text`` with unmatched emphasis closed (or dropped when nothing follows it)."""
    if not openers:
        return text
    closers = []
    for position, char, length in reversed(openers):
        if position >= limit:
            continue
        if text[position + length : limit].strip(" \t\n" + char):
            closers.append(char * length)
        else:
            text = text[:position] + text[position + length :]
            limit -= length
    if not closers:
        return text
    body = text.rstrip()
    return body + "".join(closers) + text[len(body) :]


def cut_piece(text: str, at_least: int, limit: int) -> tuple[str, str, int]:
    """Cut a block longer than ``limit`` where a piece can end, at or after ``at_least``.

    The latest line break (inside a code fence the piece gets a closing fence and the
    rest is reopened; inside a table the rest repeats the header and delimiter rows) or,
    in prose, the latest sentence end (a word end once the text is four times ``limit``
    with none), such that the piece has no unfinished markup
    (:func:`hold_back` leaves it alone) and the rest does not start indented. Returns
    ``(head, carry, consumed)``: ``head`` renders on its own, ``carry`` must prefix the
    rest, ``consumed`` is how much of ``text`` the head used; ``("", "", 0)`` when the
    text is short enough or no such place exists yet.
    """
    if len(text) <= limit:
        return "", "", 0
    floor = max(at_least, 1)
    fence = _fence_at(text, 0)
    tries = 0
    end = len(text) - 1
    while tries < 4:
        tries += 1
        cut = text.rfind("\n", floor - 1, end) + 1
        if cut < floor:
            break
        end = cut - 1
        rest = text[cut:]
        head = text[:cut]
        inside = _fence_at(head, 0)
        if inside is not None:
            if head.rstrip("\r\n") == inside.line or _OTHER_BREAKS.search(head):
                return "", "", 0
            return head + inside.marker + "\n", inside.line + "\n", cut
        if not rest or rest[0] in " \t":
            continue
        table = _table_header(head)
        if table is not None:
            return head, table, cut
        if hold_back(head) == head:
            return head, "", cut
    if fence is not None:
        return "", "", 0
    block = _last_block_start(text)
    ends = [_SENTENCE_END]
    if len(text) > 4 * limit and _PLAIN_LINE.match(text, block):
        ends.append(_WORD_END)  # one long line of prose with no sentence end: a word end
    for pattern in ends:
        for match in reversed(list(pattern.finditer(text, max(floor, block)))):
            cut = match.end()
            head = text[:cut]
            if _TABLE_LINE.match(text, text.rfind("\n", 0, cut) + 1):
                break
            if hold_back(head) == head:
                return head, "", cut
            tries += 1
            if tries >= 8:
                break
    return "", "", 0


def _table_header(head: str) -> str | None:
    """The header and delimiter rows of the table ``head`` ends in (complete rows), if any."""
    lines = head[:-1].split("\n") if head.endswith("\n") else []
    first = len(lines)
    while first > 0 and _TABLE_LINE.match(lines[first - 1]):
        first -= 1
    if len(lines) - first < 2 or not _DELIMITER_ROW.match(lines[first + 1]):
        return None
    return f"{lines[first]}\n{lines[first + 1]}\n"
