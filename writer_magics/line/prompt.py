"""Turn a cell body into the prompt text.

Only one thing in a prompt is special: a *variable reference* in braces, such as
``{name}``, ``{report.title}``, ``{rows[0]}``, ``{cfg["key"]}`` or a chain of these. It is
replaced by ``str(value)`` from the user namespace. References are parsed by a small
tokeniser and resolved with ``getattr`` / ``__getitem__`` only: nothing is evaluated and
no function is called, so a prompt can never run code.

Every other brace is left exactly as written, so pasted JSON, code, sets and templates
survive unchanged: ``{"a": {"b": 1}}``, ``def f(): return {1, 2}``, ``{}``, ``{0}`` and
``{ name }`` (spaces inside the braces) are not references. Decision: doubled braces
are an escape only where they are needed, around something that would otherwise be a
reference: ``{{name}}`` gives the literal text ``{name}`` and ``{{{name}}}`` gives the
value in literal braces, as in f-strings. Other ``{{`` / ``}}`` (for
instance the end of nested JSON, ``}}``) pass through untouched; processing them
f-string style would silently corrupt pasted JSON.

Code is never rewritten. Inside fenced code blocks (three or more backticks or tildes
starting a line, at any indentation) and inline code spans (text in backticks)
nothing is filled and nothing is unescaped, except a fenced line that consists only of
one placeholder (``{source}`` alone on its line, indentation kept), so "review this:"
followed by a fence around ``{source}`` sends the code. ``${...}`` (shell and template syntax) is
never filled, in prose or code, and neither is LaTeX: math spans (``$...$`` read as
Pandoc does, so ``$5 and $10`` is prose), ``\\begin{env}...\\end{env}`` and a command's brace
groups (``\\frac{x}{2}``). ``--raw`` sends the cell exactly as written.

A reference the rule fills whose name is undefined, or whose attribute or item lookup
fails, raises :class:`PromptError` (a ``UsageError``, so IPython prints one line) and
the caller sends nothing; references the rule leaves alone are never looked up.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError

from writer_magics.errors import PromptError

__all__ = [
    "REFERENCE_PATTERN",
    "check_size",
    "is_reference",
    "render",
    "resolve_reference",
]

# One step after the name: .attr | [int] | ["key"] | ['key'].
_STEP = r"""(?:\.[^\W\d]\w*|\[-?\d+\]|\["[^"\]]*"\]|\['[^'\]]*'\])"""
_REF = rf"[^\W\d]\w*{_STEP}*"
REFERENCE_PATTERN = _REF
"""Regex source of a reference without braces (options.py reads ``{ref}`` values with it)."""
_REF_RE = re.compile(_REF)
_NAME_RE = re.compile(r"[^\W\d]\w*")
_STEP_RE = re.compile(
    r"""\.(?P<attr>[^\W\d]\w*)|\[(?P<index>-?\d+)\]|\["(?P<dq>[^"\]]*)"\]"""
    r"""|\['(?P<sq>[^'\]]*)'\]"""
)
# Tried at every "{": {{{ref}}} (value in literal braces), the escape {{ref}}, then {ref}.
_TRIPLE_RE = re.compile(rf"\{{\{{\{{({_REF})\}}\}}\}}")
_ESCAPED_RE = re.compile(rf"\{{\{{({_REF})\}}\}}")
_BRACED_RE = re.compile(rf"\{{({_REF})\}}")


def is_reference(expr: str) -> bool:
    """True if ``expr`` (without braces) has the syntax of a variable reference."""
    if not _REF_RE.fullmatch(expr):
        return False
    name = _NAME_RE.match(expr)
    return name is not None and not keyword.iskeyword(name.group())


def resolve_reference(expr: str, user_ns: Mapping[str, Any]) -> Any:
    """Look up ``name.attr[0]["k"]``-style ``expr`` in ``user_ns`` without evaluating code.

    Raises :class:`PromptError` whose message is the bare reason (for example
    ``name 'foo' is not defined``); callers add where the reference was used.
    """
    if not is_reference(expr):
        raise PromptError(f"{expr!r} is not a variable reference")
    match = _NAME_RE.match(expr)
    assert match is not None  # guaranteed by is_reference
    name = match.group()
    if name not in user_ns:
        raise PromptError(f"name {name!r} is not defined")
    value: Any = user_ns[name]
    done = name
    for step in _STEP_RE.finditer(expr, match.end()):
        kind = type(value).__name__
        if step.group("attr") is not None:
            attr = step.group("attr")
            try:
                value = getattr(value, attr)
            except AttributeError:
                raise PromptError(f"{done} (of type {kind}) has no attribute {attr!r}") from None
            except Exception as exc:
                raise PromptError(
                    f"reading {done}.{attr} failed: {type(exc).__name__}: {exc}"
                ) from None
        else:
            key: int | str
            if step.group("index") is not None:
                key = int(step.group("index"))
            else:
                dq = step.group("dq")
                key = dq if dq is not None else step.group("sq")
            try:
                value = value[key]
            except (KeyError, IndexError):
                raise PromptError(f"{done} (of type {kind}) has no item {key!r}") from None
            except TypeError:
                raise PromptError(
                    f"{done} (of type {kind}) cannot be indexed with {key!r}"
                ) from None
            except Exception as exc:
                raise PromptError(
                    f"reading {done}[{key!r}] failed: {type(exc).__name__}: {exc}"
                ) from None
        done += step.group()
    return value


def _to_text(expr: str, value: Any) -> str:
    try:
        return str(value)
    except Exception as exc:
        raise PromptError(f"str() of {expr} failed: {type(exc).__name__}: {exc}") from None


def _lookup(expr: str, user_ns: Mapping[str, Any]) -> str:
    try:
        value = resolve_reference(expr, user_ns)
    except PromptError as exc:
        raise PromptError(
            f"{exc} (in the prompt: {{{expr}}}); write {{{{{expr}}}}} for literal braces."
        ) from None
    return _to_text(expr, value)


def _empty_message(magic: str) -> str:
    if magic.startswith("%%"):
        return f"The prompt is empty: write it in the cell below the {magic} line."
    return f"The prompt is empty: write it after the options, e.g. {magic} Define RAG."


# LaTeX is maths, never a template: math spans ($...$ as Pandoc reads it, so "$5 and $10"
# is not one; $$...$$, \(...\), \[...\]), environments (\begin{env}...\end{env}) and a
# command's brace groups (\frac{x}{2}, \textbf{x}, \sum_{i=1}^{n}).
_GROUP = r"\{(?:[^{}]|\{[^{}]*\})*\}"
_LATEX = re.compile(
    r"\$\$.+?\$\$"
    r"|\\\(.+?\\\)"
    r"|\\\[.+?\\\]"
    r"|\\begin\{([A-Za-z]+\*?)\}.*?\\end\{\1\}"
    r"|(?<![\\$])\$(?=[^\s$])(?:\\.|[^$\\\n])*?(?<=[^\s\\])\$(?!\d)"
    rf"|\\[A-Za-z]+\*?(?:[_^]?{_GROUP}|\[[^\]\n]*\])+",
    re.DOTALL,
)


def _latex_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` holds LaTeX (see ``_LATEX``), as ``(start, end)`` in order."""
    return [m.span() for m in _LATEX.finditer(text) if "{" in m.group()]


def _fill(text: str, user_ns: Mapping[str, Any]) -> str:
    """Fill ``{reference}`` in prose (no code in ``text``); ``${...}`` and LaTeX stay as
    written."""
    out: list[str] = []
    pos = 0
    latex = _latex_spans(text) if "\\" in text or "$" in text else []
    while True:
        brace = text.find("{", pos)
        if brace < 0:
            out.append(text[pos:])
            break
        inside = next((end for start, end in latex if start <= brace < end), None)
        if inside is not None:
            out.append(text[pos:inside])
            pos = inside
            continue
        out.append(text[pos:brace])
        if brace > 0 and text[brace - 1] == "$":  # ${src}: shell / template syntax
            close = _matching_brace(text, brace)
            out.append(text[brace:close])
            pos = close
            continue
        triple = _TRIPLE_RE.match(text, brace)
        if triple and is_reference(triple.group(1)):
            out.append("{" + _lookup(triple.group(1), user_ns) + "}")
            pos = triple.end()
            continue
        escaped = _ESCAPED_RE.match(text, brace)
        if escaped and is_reference(escaped.group(1)):
            out.append("{" + escaped.group(1) + "}")
            pos = escaped.end()
            continue
        braced = _BRACED_RE.match(text, brace)
        if braced and is_reference(braced.group(1)):
            out.append(_lookup(braced.group(1), user_ns))
            pos = braced.end()
            continue
        out.append("{")
        pos = brace + 1
    return "".join(out)


def _matching_brace(text: str, brace: int) -> int:
    """The index after the ``}`` closing the ``{`` at ``brace`` (nesting counted)."""
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return brace + 1  # unclosed: only this brace is passed over


# A fence opens with 3+ backticks or tildes at the start of a line (as CommonMark, but
# any indentation: fences inside list items are code too); a backtick fence's info
# string has no backtick. It closes with 3+ of the same character, at least as many,
# and nothing but spaces after; unclosed, it runs to the end of the prompt.
_FENCE_OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}(?=[^`]*$)|~{3,})")
_FENCE_CLOSE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*$")
_ALONE = re.compile(rf"^(\s*)\{{({_REF})\}}(\s*)$")
# An inline code span: a run of N backticks up to the next run of exactly N.
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)


def _blocks(text: str) -> list[tuple[bool, str]]:
    """``text`` cut into ``(is_fenced_code, chunk)`` pieces that join back to ``text``."""
    pieces: list[tuple[bool, str]] = []
    prose: list[str] = []
    code: list[str] = []
    fence = ""
    for line in text.splitlines(keepends=True):
        if not fence:
            opened = _FENCE_OPEN.match(line)
            if opened:
                fence = opened.group("fence")
                pieces.append((False, "".join(prose)))
                prose = []
                code = [line]
            else:
                prose.append(line)
            continue
        code.append(line)
        closed = _FENCE_CLOSE.match(line.rstrip("\r\n"))
        if (
            closed
            and closed.group("fence")[0] == fence[0]
            and len(closed.group("fence")) >= len(fence)
        ):
            pieces.append((True, "".join(code)))
            code, fence = [], ""
    if fence:
        pieces.append((True, "".join(code)))
    pieces.append((False, "".join(prose)))
    return [p for p in pieces if p[1]]


def _fill_code(block: str, user_ns: Mapping[str, Any]) -> str:
    """A fenced block as written, except lines that are one ``{name}`` placeholder."""
    lines = block.splitlines(keepends=True)
    for i, line in enumerate(lines[1:], 1):  # never the fence line itself
        body = line.rstrip("\r\n")
        alone = _ALONE.match(body)
        if alone and is_reference(alone.group(2)):
            value = _lookup(alone.group(2), user_ns)
            lines[i] = alone.group(1) + value + alone.group(3) + line[len(body) :]
    return "".join(lines)


def _fill_prose(text: str, user_ns: Mapping[str, Any]) -> str:
    """Fill prose, leaving inline code spans exactly as written."""
    out: list[str] = []
    pos = 0
    for span in _CODE_SPAN.finditer(text):
        out.append(_fill(text[pos : span.start()], user_ns))
        out.append(span.group())
        pos = span.end()
    out.append(_fill(text[pos:], user_ns))
    return "".join(out)


def render(
    template: str,
    user_ns: Mapping[str, Any],
    *,
    magic: str = "%%chat",
    raw: bool = False,
    max_bytes: int | None = None,
) -> str:
    """The prompt text: ``template`` with ``{reference}`` values filled where the rule says.

    The rule: ``{name}``, ``{name.attr}``, ``{name[0]}`` in prose are replaced by
    ``str(value)``; inside fenced code blocks (three backticks or ~~~) and inline code spans
    (backticks) nothing is filled, except a line of a fenced block that is only one
    placeholder (``{source}``); ``${...}`` is never filled; ``{{name}}`` gives a literal
    ``{name}`` in prose. ``raw=True`` (``--raw``) sends ``template`` exactly as written.
    Values are inserted once: braces inside a value are never interpreted.

    ``magic`` (``"%%chat"``, ``"%complete"``, ...) words the errors. ``max_bytes``: a
    text longer than this many UTF-8 bytes is a ``UsageError`` asking for
    ``--allow-large`` (None: no limit). Raises :class:`PromptError` for a reference
    the rule fills that cannot be resolved, ``UsageError`` for an empty prompt.
    """
    if raw:
        text = template
    else:
        text = "".join(
            _fill_code(chunk, user_ns) if code else _fill_prose(chunk, user_ns)
            for code, chunk in _blocks(template)
        )
    if not text.strip():
        raise UsageError(_empty_message(magic))
    if max_bytes is not None:
        check_size(text, max_bytes, magic)
    return text


def check_size(text: str, max_bytes: int, magic: str, what: str = "prompt") -> None:
    """Refuse a ``what`` over ``max_bytes`` UTF-8 bytes until ``--allow-large`` confirms it.

    ``max_bytes`` 0 means no limit.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if max_bytes > 0 and size > max_bytes:
        raise UsageError(
            f"The {what} is {_megabytes(size)}, over the limit of {_megabytes(max_bytes)} "
            f"(WriterMagics.max_prompt_bytes); nothing was sent. Add --allow-large to the "
            f"{magic} line to send it anyway"
        )


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size:,} bytes"
