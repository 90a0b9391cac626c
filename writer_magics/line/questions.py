"""Line-form questions: ``%chat What is RAG?`` is a prompt, not a help request.

IPython reads a line ending in ``word?`` as "show help for ``word``" (its ``HelpEnd``
token transformer), so ``%chat What is RAG?`` printed ``Object `RAG` not found.`` and
sent nothing. :func:`magic_questions` is a string transformer in IPython's documented
extension point ``shell.input_transformers_cleanup`` (the list
``shell.input_transformer_manager.cleanup_transforms``): it runs after IPython's own
cleanup (prompt stripping, leading indent) and *before* IPython's special-syntax
handling, where ``HelpEnd`` lives. The extension appends it on ``%load_ext`` and removes
it on ``%unload_ext``.

It rewrites only this extension's line magics (``%chat``, ``%complete``, ``%writer``)
into the call IPython itself would make for them (``get_ipython().run_line_magic(name,
rest)``), at the same places IPython recognises a line magic: the start of a logical
line (any indentation, backslash continuations joined as IPython joins them) or after
``name =``. Found by tokenising the cell as IPython does, so text inside strings and
comments is never touched. Left alone, so IPython still shows help and sends nothing:

* ``%chat?``, ``%chat??``, ``%complete?``, ``%writer?`` (the magic name directly
  followed by ``?``/``??`` and nothing else);
* ``%%chat?`` / ``%%complete?`` and every other cell whose first line starts with
  ``%%`` (a cell magic's body is not Python and never rewritten).

Every other ``%chat ...`` line is rewritten whether or not it ends in ``?``; for lines
without ``?`` that is exactly what IPython would produce, so nothing else changes.

With ``%automagic`` on (IPython's default), ``chat What is RAG?`` without the ``%`` is
the same question: such a line is rewritten too when it ends in ``?`` and IPython's
prefilter would run it as a magic (the name is not shadowed by a Python name, a
keyword or a builtin, and the rest does not start with ``=`` or ``,``: IPython's
``AutoMagicChecker`` and ``AssignmentChecker``). Other bare lines are left to IPython.
"""

from __future__ import annotations

import builtins
import io
import keyword
import tokenize
from collections.abc import Collection
from typing import Any

__all__ = ["MAGIC_NAMES", "automagic_names", "magic_questions", "rewrite_questions"]

#: The line magics whose text is never read as a help request.
MAGIC_NAMES = frozenset({"chat", "complete", "writer"})
_HELP = ("?", "??")


def _logical_lines(lines: list[str]) -> list[list[tokenize.TokenInfo]]:
    """Tokens grouped by logical line (as IPython's ``make_tokens_by_line``).

    A tokenising error (an unclosed bracket or triple-quoted string further down)
    ends the list early; the lines before it are still found.
    """
    grouped: list[list[tokenize.TokenInfo]] = [[]]
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO("".join(lines)).readline):
            grouped[-1].append(token)
            if token.type == tokenize.NEWLINE or (token.type == tokenize.NL and depth <= 0):
                grouped.append([])
            elif token.type == tokenize.OP and token.string in ("(", "[", "{"):
                depth += 1
            elif token.type == tokenize.OP and token.string in (")", "]", "}") and depth > 0:
                depth -= 1
    except (tokenize.TokenError, SyntaxError):
        pass
    return [line for line in grouped if line]


def _magic_start(tokens: list[tokenize.TokenInfo]) -> tuple[int, int, str] | None:
    """``(row, col, name)`` of a ``%name`` of ours where IPython runs a line magic."""
    skip = (tokenize.INDENT, tokenize.DEDENT)
    significant = [t for t in tokens if t.type not in skip]
    candidates = [0]
    depth = 0
    for i, token in enumerate(significant[:-1]):  # x = %chat ... (IPython's MagicAssign)
        if token.type != tokenize.OP:
            continue
        if token.string in ("(", "[", "{"):
            depth += 1
        elif token.string in (")", "]", "}"):
            depth -= 1
        elif token.string == "=" and depth == 0:
            candidates.append(i + 1)
            break
    for i in candidates:
        if i + 1 >= len(significant):
            continue
        percent, name = significant[i], significant[i + 1]
        if (
            percent.string == "%"
            and name.type == tokenize.NAME
            and name.string in MAGIC_NAMES
            and name.start == percent.end  # "%chat", not "% chat"
        ):
            return percent.start[0] - 1, percent.start[1], name.string
    return None


def _bare_start(
    tokens: list[tokenize.TokenInfo], bare: Collection[str]
) -> tuple[int, int, str] | None:
    """``(row, col, name)`` of an automagic ``chat ...?`` line (see the module rules)."""
    significant = [
        t
        for t in tokens
        if t.type not in (tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE, tokenize.NL)
    ]
    if len(significant) < 3 or significant[0].type != tokenize.NAME:
        return None
    name, after = significant[0], significant[1]
    if name.string not in bare or after.start == name.end or after.string in ("=", ","):
        return None
    if significant[-1].string != "?":
        return None
    return name.start[0] - 1, name.start[1], name.string


def _rewrite(
    lines: list[str], row: int, col: int, name: str, escaped: bool = True
) -> list[str] | None:
    """The lines with the magic at ``(row, col)`` replaced by its call; None: leave it."""
    end = row
    while lines[end].endswith("\\\n") and end + 1 < len(lines):
        end += 1
    pieces = [lines[row][col:], *lines[row + 1 : end + 1]]
    # Joined as IPython joins continued lines: drop each backslash-newline.
    text = " ".join([p.rstrip()[:-1] for p in pieces[:-1]] + [pieces[-1].rstrip()])
    rest = text[int(escaped) + len(name) :]
    if rest and not rest[0].isspace():
        return None  # %chat? / %chat?? (help) or %chat.x (not our magic)
    call = f"get_ipython().run_line_magic({name!r}, {rest[1:]!r})\n"
    return [*lines[:row], lines[row][:col] + call, *lines[end + 1 :]]


def magic_questions(lines: list[str]) -> list[str]:
    """Rewrite this extension's line magics before IPython reads ``word?`` as help.

    ``lines`` are the physical lines of a cell with their line endings (IPython's
    string-transformer protocol); returns lines of the same shape. The running shell
    is asked which names automagic would run (only when a line could be one).
    """
    if not lines or lines[0].startswith("%%"):
        return lines
    bare: Collection[str] = ()
    if any(line.lstrip().startswith(tuple(MAGIC_NAMES)) for line in lines):
        from IPython.core.getipython import get_ipython

        bare = automagic_names(get_ipython())
    return rewrite_questions(lines, bare)


def automagic_names(shell: Any) -> frozenset[str]:
    """Our magic names that ``shell`` runs without ``%`` (automagic on, not shadowed)."""
    if shell is None or not getattr(shell, "automagic", False):
        return frozenset()
    spaces = (getattr(shell, "user_ns", {}), getattr(shell, "user_global_ns", {}), vars(builtins))
    return frozenset(
        name
        for name in MAGIC_NAMES
        if not keyword.iskeyword(name) and not any(name in space for space in spaces)
    )


def rewrite_questions(lines: list[str], bare: Collection[str] = ()) -> list[str]:
    """:func:`magic_questions` with the automagic names given (pure; for tests)."""
    if not lines or lines[0].startswith("%%"):
        return lines
    if not bare and not any(f"%{name}" in line for line in lines for name in MAGIC_NAMES):
        return lines
    done = 0  # rows before this are settled (rewritten or left as help)
    for _ in range(len(lines) + 1):  # each round settles at least one line
        found = None
        escaped = True
        for tokens in _logical_lines(lines):
            start = _magic_start(tokens)
            if start is None and bare:
                start, escaped = _bare_start(tokens, bare), False
            if start is not None and start[0] >= done:
                found = start
                break
            escaped = True
        if found is None:
            return lines
        row, col, name = found
        rewritten = _rewrite(lines, row, col, name, escaped)
        if rewritten is not None:
            lines = rewritten
        done = row + 1
    return lines
