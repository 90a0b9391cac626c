"""The tokenizer of the magic line: words, quotes, ``$name`` / ``{expr}`` values, the prompt.

Why not argparse (the magics' ``magic_arguments`` parser serves ``%%chat?`` only):

* **The raw line-form prompt.** In ``%chat -t 0.2 What's up?`` the first word that is not
  an option starts the prompt and the rest of the line is taken *raw*, quotes and all;
  argparse only ever sees a list of words (``shlex`` would already have failed on the
  lone ``'`` of ``What's``) and would also take ``-x`` inside the prompt as an option.
* **``$name`` / ``{expr}`` values.** A value that is exactly ``$name`` or ``{cfg['k']}``
  is replaced by the variable's text *as one value* (a list to a repeatable option
  repeats it), unless single-quoted; whether it was quoted is lost once a shell splitter
  has made words, and ``{cfg['k']}`` holds quotes that belong to the reference.
* **Quotes as people type them.** Curly quotes (``“...”``, ``‘...’``) count as quotes; an
  apostrophe between letters is text (``-s 'You're terse'``); a value that closed at a
  quote meant as text (``-s 'students' work'``) is refused instead of sending the wrong
  prompt. ``shlex`` knows none of this.
* **Errors with columns, never an exit.** An unclosed quote, an unknown option (with a
  "did you mean", or "that is a %%complete option") or a missing value is one
  ``UsageError`` naming the column on the typed line; argparse prints usage and calls
  ``sys.exit``, and mangles values such as ``--`` or ``-x`` (``-s -x`` is a value here).
* **API keys.** A key-shaped word anywhere on the line is refused without being shown
  (:func:`refuse_keys`), before any word is interpreted.

How a line is read (the magics use ``@no_var_expand``, so IPython does not touch it):
options come first; ``--`` ends them explicitly; a single-value option given twice with
different values is an error (the same value twice is harmless), a repeatable one
collects them; in the cell form the cell body is the prompt
and stray words on the line are an error. Which flags exist and which take a value comes
from the option table (:mod:`writer_magics.line.table`); converting the words is
:mod:`writer_magics.line.options`' job.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError

from writer_magics.errors import PromptError
from writer_magics.line.prompt import (
    REFERENCE_PATTERN,
    is_reference,
    resolve_reference,
)
from writer_magics.line.table import OPTIONS, Option, options_of

__all__ = ["Scan", "looks_like_key", "refuse_keys", "scan", "split_words"]

# --------------------------------------------------------------------------- tokens


_BRACED_VALUE = re.compile(rf"(\{{{REFERENCE_PATTERN}\}})(?:\s|$)")


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int
    literal: bool  # single-quoted or backslash-escaped: never substituted
    quote: str = ""  # the last quote character that opened a quoted part


#: Opening quote -> its closing quote. Curly quotes pasted from documents count too.
_QUOTES = {"'": "'", '"': '"', "\u2018": "\u2019", "\u201c": "\u201d"}
_SINGLE = ("'", "\u2018")  # literal: never substituted, no escapes
_APOSTROPHES = ("'", "\u2019")


def _column(magic: str, pos: int) -> int:
    """1-based column of ``pos`` of the line on the typed line (``%chat `` before it)."""
    return len(magic) + 2 + pos


def _is_apostrophe(line: str, pos: int) -> bool:
    """``'``/``’`` between two letters or digits (``You're``, ``don’t``)."""
    return (
        line[pos] in _APOSTROPHES
        and 0 < pos < len(line) - 1
        and line[pos - 1].isalnum()
        and line[pos + 1].isalnum()
    )


def _opens_quote(line: str, pos: int, start: int) -> bool:
    """Whether the quote character at ``pos`` (outside quotes) starts a quoted part.

    ``'`` right after a letter or digit is an apostrophe (``You're``, ``students'``),
    unless it follows a short option glued to its value (``-s'terse'``); ``’`` outside
    quotes is always an apostrophe.
    """
    ch = line[pos]
    if ch == "\u2019":
        return False
    if ch == "'" and pos > start and line[pos - 1].isalnum():
        return bool(re.fullmatch(r"-[A-Za-z]", line[start:pos]))
    return ch in _QUOTES


def _unclosed(magic: str, line: str, pos: int) -> UsageError:
    quote = line[pos]
    shown = line[pos : pos + 12] + ("…" if len(line) > pos + 12 else "")
    hint = (
        'write an apostrophe inside "double quotes" (-s "You\'re terse")'
        if quote in _SINGLE
        else f"close it with {_QUOTES[quote]}"
    )
    return UsageError(
        f"The {magic} line has an unclosed {quote} quote at column {_column(magic, pos)} "
        f"({shown}): {hint}; nothing was sent"
    )


def _next_token(line: str, pos: int, magic: str) -> _Token | None:
    """Read one shell-like token starting at ``pos``; None at the end of the line.

    Quotes: ``'...'`` and ``‘...’`` are literal, ``"..."`` and ``“...”`` understand
    ``\\"``, ``\\\\`` and ``\\$``. An apostrophe between letters (``'You're terse'``,
    ``You're``) is text, not a quote. An unclosed quote or a stray ``”`` is a
    ``UsageError`` naming its column; nothing is guessed or dropped.
    """
    n = len(line)
    while pos < n and line[pos].isspace():
        pos += 1
    if pos >= n:
        return None
    start = pos
    chars: list[str] = []
    literal = False
    quote = ""
    while pos < n and not line[pos].isspace():
        ch = line[pos]
        braced = _BRACED_VALUE.match(line, pos) if ch == "{" else None
        if braced:  # {cfg['k']} is a reference: its quotes belong to it, not to the shell
            chars.append(braced.group(1))
            pos = braced.end(1)
        elif ch == "\u201d":
            raise UsageError(
                f"The {magic} line has a closing \u201d quote at column {_column(magic, pos)} "
                "without an opening \u201c; nothing was sent"
            )
        elif ch in _QUOTES and _opens_quote(line, pos, start):
            opened, close, quote = pos, _QUOTES[ch], ch
            pos += 1
            while True:
                if pos >= n:
                    raise _unclosed(magic, line, opened)
                c = line[pos]
                if c == close and not (ch in _SINGLE and _is_apostrophe(line, pos)):
                    pos += 1
                    break
                if ch not in _SINGLE and c == "\\" and pos + 1 < n and line[pos + 1] in '"\\$':
                    literal = literal or line[pos + 1] == "$"
                    chars.append(line[pos + 1])
                    pos += 2
                else:
                    chars.append(c)
                    pos += 1
            literal = literal or ch in _SINGLE
        elif ch == "\\" and pos + 1 < n:
            chars.append(line[pos + 1])
            literal = True
            pos += 2
        else:
            chars.append(ch)
            pos += 1
    return _Token("".join(chars), start, pos, literal, quote)


def split_words(line: str, magic: str) -> list[str]:
    """The words of a line, quoted as on the ``%chat`` line (``%writer`` uses this).

    Raises ``UsageError`` (one line, with the column) for an unclosed quote.
    """
    words: list[str] = []
    pos = 0
    while (token := _next_token(line, pos, magic)) is not None:
        words.append(token.text)
        pos = token.end
    return words


def is_number(text: str) -> bool:
    """``-1``, ``-0.5``, ``1e3``: a value that starts with ``-`` but is not an option."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _rest(line: str, start: int, magic: str) -> str | None:
    """The raw rest of the line; one fully quoted token is unquoted."""
    rest = line[start:].strip()
    if not rest:
        return None
    if rest[0] in _QUOTES and rest[-1] == _QUOTES[rest[0]] and len(rest) > 1:
        try:
            token = _next_token(rest, 0, magic)
        except UsageError:
            return rest
        if token is not None and token.end == len(rest):
            return token.text
    return rest


# --------------------------------------------------------------------------- scanning


@dataclass
class Scan:
    """What the tokenizer read: the words of each option, the options given, the prompt."""

    values: dict[str, list[str]] = field(default_factory=dict)
    """Long flag -> its words in order (after ``$name``/``{expr}``); [] for a switch."""
    given: list[str] = field(default_factory=list)
    """Long flags in the order given (repeats included)."""
    prompt: str | None = None
    """Line form: the raw rest of the line after the options."""


def _unknown(name: str, kind: str, magic: str) -> UsageError:
    other = "chat" if kind == "complete" else "complete"
    for option in OPTIONS:
        if name in option.flags and kind not in option.magics:
            return UsageError(f"{option.long} is a %%{other} option; {magic} does not take it")
    known = [f for o in options_of(kind) for f in o.flags if f.startswith("--")]
    bare = name.lstrip("-")
    # A shortened name (--temp) first; then 0.7: a typo, not a different word
    # (--frobnicate is not --translate).
    started = [f for f in known if f.startswith("--" + bare)] if len(bare) > 1 else []
    started = difflib.get_close_matches("--" + bare, started, 4, 0)  # the closest first
    close = started or (
        difflib.get_close_matches("--" + bare, known, 1, 0.7) if len(bare) > 1 else []
    )
    if close:
        which = " or ".join(list(dict.fromkeys(close))[:4])
        return UsageError(f"Unknown option {name} for {magic}; did you mean {which}?")
    return UsageError(f"Unknown option {name} for {magic}; see {magic}? for the options")


def _substitute(value: str, literal: bool, spec: Option, user_ns: Mapping[str, Any]) -> list[str]:
    """Replace a whole-value ``$name`` / ``{expr}`` with the variable's text."""
    expr = None
    if not literal:
        if value.startswith("$") and value[1:].isidentifier():
            expr = value[1:]
        elif value.startswith("{") and value.endswith("}") and is_reference(value[1:-1]):
            expr = value[1:-1]
    if expr is None or not is_reference(expr):
        return [value]
    try:
        resolved = resolve_reference(expr, user_ns)
    except PromptError as exc:
        raise UsageError(f"{exc} (used in {spec.long})") from None
    if spec.repeat and isinstance(resolved, (list, tuple)):
        return [str(item) for item in resolved]
    if spec.names_object and not isinstance(resolved, str):
        return [expr]  # --schema {Answer}: the class itself, not its str()
    return [str(resolved)]


def _check_split(line: str, start: int, quote: str, magic: str) -> None:
    """Refuse a value that ended at a quote the user meant as text.

    ``-s 'students' work' Hi`` closes the value after ``students``; the prompt's first
    word then holds the real closing quote. Rather than send ``work' Hi``, say where.
    """
    if not quote:
        return
    close = _QUOTES[quote]
    if start < len(line) and line[start] in _QUOTES:
        return  # the prompt is quoted itself: -s 'terse' 'What is RAG?'
    end = start
    while end < len(line) and not line[end].isspace():
        if line[end] == close and not _is_apostrophe(line, end):
            raise UsageError(
                f"The {magic} line has a {close} at column {_column(magic, end)} after a "
                f"value that was already closed: an apostrophe inside {quote}...{close}? "
                'Put such a value in "double quotes"; nothing was sent'
            )
        end += 1


def scan(kind: str, line: str, user_ns: Mapping[str, Any], cell: bool) -> Scan:
    """Read the options of a ``%%complete`` / ``%%chat`` line (``kind``) and its prompt.

    The words of each option are collected raw (no conversion: that is
    :mod:`writer_magics.line.options`); a ``$name`` / ``{expr}`` value is replaced by the
    variable's text. Raises one-line ``UsageError`` for an unknown option, a missing
    value, a quote problem, or (cell form) text on the line.
    """
    magic = ("%%" if cell else "%") + kind
    by_flag = {f: s for s in options_of(kind) for f in s.flags}
    found = Scan()
    pos = 0
    quote = ""  # the quote of the last option value, if it was quoted
    while True:
        word = len(line) - len(line[pos:].lstrip())
        if word < len(line) and line[word] != "-":
            # Not an option: the prompt starts here, raw (so "What's up" needs no quotes).
            _check_split(line, word, quote, magic)
            found.prompt = _rest(line, word, magic)
            break
        token = _next_token(line, pos, magic)
        if token is None:
            break
        text = token.text
        if text == "--" and not token.literal:
            found.prompt = _rest(line, token.end, magic)
            break
        if not text.startswith("-") or len(text) < 2 or is_number(text):
            found.prompt = _rest(line, token.start, magic)
            break
        pos = token.end
        name, eq, value = text.partition("=")
        if name not in by_flag and "-" + name in by_flag:  # -temperature
            raise UsageError(f"Unknown option {name} for {magic}; did you mean -{name}?")
        if name not in by_flag and not name.startswith("--") and name[:2] in by_flag and not eq:
            name, eq, value = name[:2], "=", name[2:]  # -t0.7
        spec = by_flag.get(name)
        if spec is None:
            raise _unknown(name, kind, magic)
        found.given.append(spec.long)
        if spec.switch:
            if eq:
                raise UsageError(f"{spec.long} is a switch and takes no value")
            found.values.setdefault(spec.long, [])
            continue
        literal = token.literal
        if not eq:
            following = _next_token(line, pos, magic)
            if following is None or (following.text in by_flag and not following.literal):
                raise UsageError(f"{spec.long} needs a value, e.g. {spec.long} {spec.example}")
            value, literal, pos = following.text, following.literal, following.end
            quote = following.quote
        else:
            quote = token.quote
        words = _substitute(value, literal, spec, user_ns)
        before = found.values.setdefault(spec.long, [])
        if before and not spec.repeat and before != words:
            raise UsageError(
                f"{spec.long} is given twice ({before[-1]!r}, then {words[-1]!r}); "
                "it takes one value: give it once"
            )
        before.extend(words)
    if cell and found.prompt is not None:
        raise UsageError(
            f"Unexpected text on the {magic} line: {found.prompt!r}; write the prompt in the "
            "cell below, and quote option values that contain spaces"
        )
    return found


# --------------------------------------------------------------------------- keys

# What a Writer API key looks like: Writer's own 401 echoes keys as "sk-...", and the
# tests use sk-test-...: "sk-" and 16 or more key characters with a digit. Also any
# long random-looking word (32+ letters and digits mixing upper case, lower case and
# digits). UUIDs (graph ids), hex hashes and model names do not match.
_KEY_WORD = re.compile(r"[A-Za-z0-9_\-]+")
_SK_KEY = re.compile(r"sk-(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{16,}")


def looks_like_key(word: str) -> bool:
    """True for a word shaped like a Writer API key (see ``_SK_KEY`` above)."""
    if _SK_KEY.fullmatch(word):
        return True
    return (
        len(word) >= 32
        and word.isalnum()
        and any(c.isupper() for c in word)
        and any(c.islower() for c in word)
        and any(c.isdigit() for c in word)
    )


def refuse_secret(text: str, secrets: Iterable[str | None], magic: str, what: str) -> None:
    """Refuse a prompt (after interpolation) that holds the configured API key itself.

    Sending the key to the model would put it in the answer, the notebook and the
    provider's logs. Only the exact configured key counts here (key-shaped words are
    common in pasted code); the message names the line but never shows the key.
    """
    for secret in secrets:
        if secret and len(secret) >= 8 and secret in text:
            line = text.count("\n", 0, text.find(secret)) + 1
            raise UsageError(
                f"The {what} of {magic} holds your API key (its line {line}); nothing was sent. "
                "Remove it: the key belongs in WRITER_API_KEY or .env, never in a prompt"
            )


def refuse_keys(line: str, secrets: Iterable[str | None], magic: str) -> None:
    """Refuse a magic line holding an API key: the configured key or a key-shaped word.

    The message names where (the option, or the prompt) but never shows the key.
    """
    found = [m.start() for m in _KEY_WORD.finditer(line) if looks_like_key(m.group())]
    found += [line.find(s) for s in secrets if s and len(s) >= 8 and s in line]
    if not found:
        return
    start = min(found)
    before = line[:start].rstrip("'\"\u2018\u201c").split()
    option = before[-1].split("=")[0] if before else ""
    where = f"as the value of {option}" if option.startswith("-") else "on the line"
    raise UsageError(
        f"The {magic} line holds what looks like an API key ({where}, column "
        f"{_column(magic, start)}); nothing was sent. Keep keys in WRITER_API_KEY or .env; "
        "if it is not a key, put the text in the cell body"
    )
