"""``--diff``: a compact word-level diff between two answers.

Pure functions. :func:`word_diff` splits both texts into words (whitespace kept with
the word before it) and returns the opcodes of ``difflib.SequenceMatcher``;
:func:`diff_markdown` shows them with deletions as ``<del>`` and additions as
``<ins>`` (JupyterLab renders both), :func:`diff_text` as ``[-old-]`` / ``{+new+}``
(git's word-diff style, for terminals). Long unchanged stretches are cut to a few
words of context on each side ("…"), so the diff stays compact.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from writer_magics.answer.markdown import escape_html

__all__ = ["DiffStats", "diff_markdown", "diff_text", "word_diff"]

#: Unchanged words kept on each side of a change.
CONTEXT_WORDS = 6
_WORD = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class DiffStats:
    """Words added and removed."""

    added: int
    removed: int

    def __str__(self) -> str:
        if not self.added and not self.removed:
            return "no changes"
        return f"+{self.added} −{self.removed} words"


Piece = tuple[str, str]  # ("=", text) | ("-", text) | ("+", text) | ("…", "")


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def word_diff(old: str, new: str, context: int = CONTEXT_WORDS) -> tuple[list[Piece], DiffStats]:
    """The pieces of the diff in order, unchanged runs shortened to ``context`` words."""
    a, b = _words(old), _words(new)
    matcher = difflib.SequenceMatcher(None, [w.strip() for w in a], [w.strip() for w in b], False)
    pieces: list[Piece] = []
    added = removed = 0
    opcodes = matcher.get_opcodes()
    for number, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            words = b[j1:j2]
            first, last = number == 0, number == len(opcodes) - 1
            keep_head = 0 if first else context
            keep_tail = 0 if last else context
            if len(words) > keep_head + keep_tail + 1:
                if keep_head:
                    pieces.append(("=", "".join(words[:keep_head])))
                pieces.append(("…", ""))
                if keep_tail:
                    pieces.append(("=", "".join(words[-keep_tail:])))
            else:
                pieces.append(("=", "".join(words)))
            continue
        if tag in ("delete", "replace"):
            pieces.append(("-", "".join(a[i1:i2])))
            removed += i2 - i1
        if tag in ("insert", "replace"):
            pieces.append(("+", "".join(b[j1:j2])))
            added += j2 - j1
    return pieces, DiffStats(added, removed)


def _split_space(text: str) -> tuple[str, str]:
    body = text.rstrip()
    return body, text[len(body) :]


def diff_text(old: str, new: str) -> str:
    """``the [-old-]{+new+} words`` with a first line of counts."""
    pieces, stats = word_diff(old, new)
    if not stats.added and not stats.removed:
        return "diff: no changes since the previous answer"
    out = []
    for kind, text in pieces:
        body, space = _split_space(text)
        if kind == "-":
            out.append(f"[-{body}-]{space}")
        elif kind == "+":
            out.append(f"{{+{body}+}}{space}")
        elif kind == "…":
            out.append("… ")
        else:
            out.append(text)
    return f"diff ({stats}):\n" + "".join(out).strip()


#: Translucent red and green behind the theme's own text colour: readable on light and
#: dark themes alike (``<del>`` keeps its line-through, ``<ins>`` its underline).
_DELETED = "background-color: rgba(248, 81, 73, 0.3)"
_INSERTED = "background-color: rgba(46, 160, 67, 0.3)"


def diff_markdown(old: str, new: str, title: str = "diff") -> str:
    """The same diff as HTML-in-Markdown: ``<del>`` and ``<ins>``, escaped text."""
    pieces, stats = word_diff(old, new)
    if not stats.added and not stats.removed:
        return f"**{title}**: no changes"
    out = []
    for kind, text in pieces:
        body, space = _split_space(text)
        shown = escape_html(" ".join(body.split()))  # the one HTML escape: no $ pairs as math
        if kind == "-":
            out.append(f'<del style="{_DELETED}">{shown}</del>{" " if space else ""}')
        elif kind == "+":
            out.append(f'<ins style="{_INSERTED}">{shown}</ins>{" " if space else ""}')
        elif kind == "…":
            out.append("… ")
        else:
            out.append(shown + (" " if space else ""))
    return f"**{title}** ({stats}): " + "".join(out).strip()
