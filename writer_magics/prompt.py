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

A reference whose name is undefined, or whose attribute or item lookup fails, raises
:class:`PromptError` (a ``UsageError``, so IPython prints one line) and the caller sends
nothing.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError

__all__ = ["REFERENCE_PATTERN", "PromptError", "is_reference", "render", "resolve_reference"]

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


class PromptError(UsageError):
    """A prompt (or option value) refers to a variable that cannot be resolved."""

    def _render_traceback_(self) -> list[str]:
        # IPython prints the short one-line form only for exactly UsageError; a subclass
        # would get a full traceback without this hook.
        return [f"UsageError: {self}"]


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


def render(template: str, user_ns: Mapping[str, Any], *, magic: str = "%%chat") -> str:
    """Interpolate ``{reference}`` values into ``template``; leave all other text alone.

    ``magic`` (``"%%chat"``, ``"%complete"``, ...) only words the empty-prompt error.
    Values are inserted once: braces inside a value are never interpreted.
    """
    out: list[str] = []
    pos = 0
    while True:
        brace = template.find("{", pos)
        if brace < 0:
            out.append(template[pos:])
            break
        out.append(template[pos:brace])
        triple = _TRIPLE_RE.match(template, brace)
        if triple and is_reference(triple.group(1)):
            out.append("{" + _lookup(triple.group(1), user_ns) + "}")
            pos = triple.end()
            continue
        escaped = _ESCAPED_RE.match(template, brace)
        if escaped and is_reference(escaped.group(1)):
            out.append("{" + escaped.group(1) + "}")
            pos = escaped.end()
            continue
        braced = _BRACED_RE.match(template, brace)
        if braced and is_reference(braced.group(1)):
            out.append(_lookup(braced.group(1), user_ns))
            pos = braced.end()
            continue
        out.append("{")
        pos = brace + 1
    text = "".join(out)
    if not text.strip():
        raise UsageError(_empty_message(magic))
    return text
