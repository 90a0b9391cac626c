"""The magic line: argument declarations, parsing and validation.

One table (``_SPECS``) is the single source of truth for the options: it produces the
``@magic_arguments`` decorator stacks (so ``%%chat?`` lists every option) and drives the
tokeniser, which must know which options take a value. Every problem is reported as one
``UsageError`` sentence *before* anything is sent; argparse never prints or exits.

How a line is read (the magics use ``@no_var_expand``, so IPython does not touch it):

* Tokens are split like a POSIX shell: ``--system "You are terse"`` is one value.
  Curly quotes count as quotes (``“...”`` like ``"..."``, ``‘...’`` like ``'...'``);
  an apostrophe between letters or digits is text (``-s 'You're terse'``). An unclosed
  quote, a stray ``”``, or a quote that ends a value while the next word still holds its
  partner (``-s 'students' work'``) is a ``UsageError`` naming the column. Nothing is
  dropped or moved silently.
* A word shaped like an API key anywhere on the line (or the configured key) is
  refused without showing it (:func:`refuse_keys`).
* Options come first. In the line form (``%chat -t 0.2 Define RAG.``) the first word
  that is not an option starts the prompt, and the rest of the line is taken *raw*
  (so ``What's up`` needs no quoting); ``--`` ends the options explicitly. In the cell
  form the cell body is the prompt and stray words on the line are an error.
* A value that is exactly ``$name`` or ``{expr}`` (``expr`` as in prompt references:
  ``name.attr``, ``name[0]``, ``name['k']``) is replaced by ``str(value)`` from the user
  namespace, as one value even with spaces. A list or tuple given to a repeatable option
  counts as repeating it. Single-quote a value (``'$HOME'``) to keep it literal.
* Sweeps: ``--model``, ``--temperature``, ``--top-p`` and ``--max-tokens`` take comma
  lists (``-t 0.2,1.0``) and may be repeated; ``--system`` is never split on commas
  (system prompts contain commas), so repeat ``-s`` to sweep system prompts.
  :func:`combinations` expands the cartesian product in the order given.
* ``--stop`` may be repeated and understands ``\\n``, ``\\t`` and ``\\\\`` escapes.
"""

from __future__ import annotations

import builtins
import difflib
import enum
import itertools
import keyword
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, TypeVar, cast

from IPython.core import magic_arguments as _ma
from IPython.core.error import UsageError

from writer_magics.line.prompt import (
    REFERENCE_PATTERN,
    PromptError,
    is_reference,
    resolve_reference,
)
from writer_magics.tools.builtin import builtin_tool, check_language, parse_llm_tool
from writer_magics.transport import events as api

__all__ = [
    "REMOVED_MODELS",
    "ChatCommand",
    "ChatOptions",
    "CompleteOptions",
    "Options",
    "Params",
    "chat_arguments",
    "combinations",
    "complete_arguments",
    "parse_chat",
    "parse_complete",
    "removal_warning",
]

F = TypeVar("F", bound=Callable[..., Any])
_Decorator = Callable[[Any], Any]
# IPython's decorator classes are unannotated; give them a type once, here.
_magic_arguments = cast(Callable[..., _Decorator], _ma.magic_arguments)
_argument = cast(Callable[..., _Decorator], _ma.argument)
_argument_group = cast(Callable[..., _Decorator], _ma.argument_group)
_kwds = cast(Callable[..., _Decorator], _ma.kwds)

REMOVED_MODELS = api.REMOVED_MODELS
REPLACEMENT_MODEL = api.DEFAULT_MODEL
INT32_MAX = 2**31 - 1
#: -n: Writer documents no upper bound; each choice is a panel, so a practical one.
MAX_N = 128
DEFAULT_MAX_SWEEP = 32


# --------------------------------------------------------------------------- results


class ChatCommand(enum.Enum):
    """A ``%chat`` management command: acts on a session instead of sending a prompt."""

    SHOW = "show"
    RESET = "reset"
    UNDO = "undo"
    SESSIONS = "sessions"
    SAVE = "save"
    LOAD = "load"


@dataclass(frozen=True)
class Params:
    """The sweepable parameters of one request (None = not sent, server default)."""

    model: str
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    system: str | None = None


@dataclass(frozen=True, kw_only=True)
class Options:
    """Options shared by ``%%complete`` and ``%%chat``; None means "not given".

    Sweepable values are tuples of one or more values; use :attr:`params` (or
    :func:`combinations`) for the per-request values.
    """

    models: tuple[str, ...]
    temperatures: tuple[float, ...] | None = None
    top_ps: tuple[float, ...] | None = None
    max_token_limits: tuple[int, ...] | None = None
    stop: tuple[str, ...] | None = None
    stream: bool = True
    out: str | None = None
    timeout: float | None = None
    dry_run: bool = False
    cache: bool = False
    raw: bool = False
    """``--raw``: the prompt is sent exactly as written (no interpolation)."""
    allow_large: bool = False
    """``--allow-large``: send a prompt over ``WriterMagics.max_prompt_bytes``."""
    prompt: str | None = None
    """Line form: the raw text after the options (render it with prompt.render)."""
    warnings: tuple[str, ...] = ()
    """Messages for the user (removed models); the caller prints them."""
    over: str | None = None
    """``--over ITEMS``: a variable name or a .csv / .jsonl path (see ``batch_input``)."""
    expect: tuple[str, ...] = ()
    """``--expect CHECK`` values, unparsed (see ``checks.parse_checks``)."""
    strict: bool = False
    """``--strict``: a failed check fails the cell."""
    diff: bool = False
    """``--diff``: show what changed since the previous answer (or the first panel)."""

    @property
    def params(self) -> list[Params]:
        """Per-request parameter sets, see :func:`combinations`."""
        return combinations(self)

    @property
    def is_sweep(self) -> bool:
        """True if the options ask for more than one request."""
        return len(self.params) > 1


@dataclass(frozen=True, kw_only=True)
class CompleteOptions(Options):
    """Options of ``%%complete`` / ``%complete``."""

    best_of: int | None = None
    random_seed: int | None = None


@dataclass(frozen=True, kw_only=True)
class ChatOptions(Options):
    """Options of ``%%chat`` / ``%chat``."""

    systems: tuple[str, ...] | None = None
    """Given ``-s`` values; "" means "no system prompt" (and clears the stored one)."""
    session: str = "default"
    new: bool = False
    history: int | None = None
    """``--history N``: send only the last N earlier turns (None: all of them)."""
    n: int | None = None
    logprobs: bool = False
    command: ChatCommand | None = None
    path: str | None = None
    """The file of ``--save`` / ``--load``."""
    tools: tuple[str, ...] = ()
    """``--tools``: names of Python functions (resolve with ``tools.resolve_tools``)."""
    tool_choice: str | None = None
    """``auto``, ``none``, ``required`` or one of :attr:`tools` (a name forces that call)."""
    confirm: bool = False
    """Ask before running each function call."""
    web_search: bool = False
    include_domains: tuple[str, ...] = ()
    exclude_domains: tuple[str, ...] = ()
    graph_ids: tuple[str, ...] = ()
    subqueries: bool = False
    llm_tool: tuple[str, str] | None = None
    """``--llm-tool MODEL:DESCRIPTION`` as ``(model, description)``."""
    translate_to: str | None = None
    """``--translate LANG``: the target language code."""
    translate_from: str | None = None
    """``--source LANG``: the source language code (only with ``--translate``)."""
    schema: str | None = None
    """``--schema NAME``: a pydantic model class or JSON-schema dict (``structured``)."""

    @property
    def builtin_tool(self) -> dict[str, Any] | None:
        """The exact JSON of the one built-in tool asked for, or None."""
        return builtin_tool(
            web_search=self.web_search,
            include_domains=self.include_domains,
            exclude_domains=self.exclude_domains,
            graph_ids=self.graph_ids,
            subqueries=self.subqueries,
            llm=self.llm_tool,
            translate=self.translate_to,
            source=self.translate_from,
        )


def combinations(opts: Options) -> list[Params]:
    """Expand sweeps into one :class:`Params` per request, in the order given.

    The product runs model-major: models, then temperatures, top_p, max_tokens, systems.
    """
    systems: tuple[str | None, ...] = (None,)
    if isinstance(opts, ChatOptions) and opts.systems is not None:
        systems = opts.systems
    return [
        Params(model=m, temperature=t, top_p=p, max_tokens=k, system=s)
        for m, t, p, k, s in itertools.product(
            opts.models,
            opts.temperatures or (None,),
            opts.top_ps or (None,),
            opts.max_token_limits or (None,),
            systems,
        )
    ]


removal_warning = api.removed_model_warning


# --------------------------------------------------------------------------- the table

_BOTH = frozenset({"complete", "chat"})
_COMPLETE = frozenset({"complete"})
_CHAT = frozenset({"chat"})


@dataclass(frozen=True)
class _Spec:
    flags: tuple[str, ...]
    help: str
    metavar: str | None = None  # None: a switch without a value
    repeat: bool = False
    example: str = ""
    magics: frozenset[str] = _BOTH
    group: str = "generation"
    names_object: bool = False  # the value names a Python object: {Answer} means "Answer"

    @property
    def long(self) -> str:
        return self.flags[-1]

    @property
    def dest(self) -> str:
        return self.long[2:].replace("-", "_")


_GROUPS = {
    "generation": "model and sampling",
    "tools": "tools, built-in tools and structured output",
    "prompt": "the prompt text",
    "batch": "batches, checks and diffs",
    "output": "output",
    "session": "conversation",
    "command": "chat commands (line form, e.g. %chat --show)",
}

_SPECS: tuple[_Spec, ...] = (
    _Spec(
        ("-m", "--model"),
        "Model id (default: WriterMagics.model, normally palmyra-x5). "
        "A comma list or a repeated flag sweeps models.",
        "MODEL",
        repeat=True,
        example="palmyra-x5",
    ),
    _Spec(
        ("-t", "--temperature"),
        "Sampling temperature, 0 to 2. A comma list sweeps: -t 0.2,1.0.",
        "F",
        repeat=True,
        example="0.7",
    ),
    _Spec(("--top-p",), "Nucleus sampling, 0 to 1. A comma list sweeps.", "F", True, "0.9"),
    _Spec(
        ("--max-tokens",),
        "Maximum number of tokens to generate, 1 to 2147483647. A comma list sweeps.",
        "N",
        repeat=True,
        example="256",
    ),
    _Spec(
        ("--stop",),
        "Stop sequence; repeat for several. Understands \\n and \\t; not split on commas.",
        "S",
        repeat=True,
        example="'\\n'",
    ),
    _Spec(
        ("--best-of",),
        "Generate N completions on the server and return the best one (1 to 2147483647).",
        "N",
        example="3",
        magics=_COMPLETE,
    ),
    _Spec(
        ("--random-seed",),
        "Seed for reproducible sampling, 0 to 2147483647.",
        "N",
        example="42",
        magics=_COMPLETE,
    ),
    _Spec(
        ("-s", "--system"),
        "System prompt, kept for the session while this cell's turns are in it (re-running "
        "the cell without -s removes it; '' clears it). Not split on commas: "
        "repeat -s to sweep several system prompts.",
        "TEXT",
        repeat=True,
        example='"You are terse."',
        magics=_CHAT,
    ),
    _Spec(
        ("-n", "--n"), "Number of answers to generate, 1 to 128.", "N", example="3", magics=_CHAT
    ),
    _Spec(("--logprobs",), "Return token log probabilities.", magics=_CHAT),
    _Spec(
        ("--tools",),
        "Python functions the model may call, by name; a comma list or a repeated flag. "
        "Schemas come from signatures, type hints and docstrings.",
        "NAME[,NAME...]",
        repeat=True,
        example="get_weather",
        magics=_CHAT,
        group="tools",
        names_object=True,
    ),
    _Spec(
        ("--tool-choice",),
        "auto, none, required, or one of the --tools names to force that call.",
        "auto|none|required|NAME",
        example="auto",
        magics=_CHAT,
        group="tools",
    ),
    _Spec(("--confirm",), "Ask before running each function call.", magics=_CHAT, group="tools"),
    _Spec(
        ("--web-search",),
        "Built-in tool: let Writer search the web (one built-in tool per cell).",
        magics=_CHAT,
        group="tools",
    ),
    _Spec(
        ("--include-domain",),
        "With --web-search: search only this domain; repeatable.",
        "D",
        repeat=True,
        example="python.org",
        magics=_CHAT,
        group="tools",
    ),
    _Spec(
        ("--exclude-domain",),
        "With --web-search: never use this domain; repeatable.",
        "D",
        repeat=True,
        example="example.com",
        magics=_CHAT,
        group="tools",
    ),
    _Spec(
        ("--graph",),
        "Built-in tool: answer from these Knowledge Graph ids (UUIDs; comma list).",
        "ID[,ID...]",
        repeat=True,
        example="6e2a7f0c-1d5b-4e0a-9c3f-2b8d1a4e5f60",
        magics=_CHAT,
        group="tools",
    ),
    _Spec(
        ("--subqueries",),
        "With --graph: let the graph split the question into subqueries.",
        magics=_CHAT,
        group="tools",
    ),
    _Spec(
        ("--llm-tool",),
        "Built-in tool: delegate matching questions to another model.",
        "MODEL:DESCRIPTION",
        example="'palmyra-med:Medical questions'",
        magics=_CHAT,
        group="tools",
    ),
    _Spec(
        ("--translate",),
        "Built-in tool: translate with palmyra-translate into this language code.",
        "TARGET_LANG",
        example="fr",
        magics=_CHAT,
        group="tools",
    ),
    _Spec(
        ("--source",),
        "With --translate: the source language code.",
        "SOURCE_LANG",
        example="en",
        magics=_CHAT,
        group="tools",
    ),
    _Spec(
        ("--schema",),
        "Answer as JSON matching this pydantic model class or JSON-schema dict; "
        "-o keeps the parsed value as .parsed.",
        "NAME",
        example="Answer",
        magics=_CHAT,
        group="tools",
        names_object=True,
    ),
    _Spec(
        ("--raw",),
        "Send the prompt exactly as written: no {name} interpolation.",
        group="prompt",
    ),
    _Spec(
        ("--allow-large",),
        "Send a prompt larger than WriterMagics.max_prompt_bytes (4 MB by default), or an "
        "--over batch larger than WriterMagics.max_batch (1000).",
        group="prompt",
    ),
    _Spec(
        ("--over",),
        "Run the cell once per item of a list, tuple, pandas DataFrame (a row each) or "
        "Series, or of a .csv / .jsonl file: {item} is the item, {row.column} or "
        "{row['column']} a field. Concurrent, one progress view; -o keeps a Batch.",
        "ITEMS",
        example="questions",
        group="batch",
        names_object=True,
    ),
    _Spec(
        ("--expect",),
        "Check each answer; repeatable: contains:TEXT, not-contains:TEXT, regex:PATTERN, "
        "json, schema:NAME, max-words:N, max-chars:N, equals:{name}.",
        "CHECK",
        repeat=True,
        example="contains:Paris",
        group="batch",
    ),
    _Spec(("--strict",), "With --expect: a failed check fails the cell.", group="batch"),
    _Spec(
        ("--diff",),
        "Show a word diff against this cell's previous answer (a sweep: against the first panel).",
        group="batch",
    ),
    _Spec(("--no-stream",), "Wait for the whole answer instead of streaming it.", group="output"),
    _Spec(
        ("-o", "--out"),
        "Also store the Result in this Python variable (not a keyword or builtin name).",
        "NAME",
        example="answer",
        group="output",
    ),
    _Spec(
        ("--timeout",),
        "Seconds to wait for each next event of the answer (default: "
        "WriterMagics.read_timeout; a cell's total time: WriterMagics.total_timeout).",
        "S",
        example="30",
        group="output",
    ),
    _Spec(("--dry-run",), "Show the request JSON instead of sending it.", group="output"),
    _Spec(("--cache",), "Reuse a cached answer for an identical request.", group="output"),
    _Spec(
        ("--session",),
        "Conversation to use (default: default).",
        "NAME",
        example="ideas",
        magics=_CHAT,
        group="session",
    ),
    _Spec(("--new",), "Start the session afresh before this cell.", magics=_CHAT, group="session"),
    _Spec(
        ("--history",),
        "Send only the last N turns of the session (0: none); the rest stay stored.",
        "N",
        example="4",
        magics=_CHAT,
        group="session",
    ),
    _Spec(("--show",), "Show the session as Markdown.", magics=_CHAT, group="command"),
    _Spec(
        ("--reset",),
        "Forget the session's turns and system prompt.",
        magics=_CHAT,
        group="command",
    ),
    _Spec(("--undo",), "Drop the session's last turn.", magics=_CHAT, group="command"),
    _Spec(
        ("--sessions",), "List the sessions and their turn counts.", magics=_CHAT, group="command"
    ),
    _Spec(
        ("--save",),
        "Save the session to a JSON file.",
        "PATH",
        example="chat.json",
        magics=_CHAT,
        group="command",
    ),
    _Spec(
        ("--load",),
        "Replace the session with the one saved in a JSON file.",
        "PATH",
        example="chat.json",
        magics=_CHAT,
        group="command",
    ),
)

_COMMANDS = tuple(ChatCommand)

_EPILOG = """\
Options come first. In the line form the rest of the line is the prompt
({magic} -t 0.2 Define RAG.); in the cell form the cell body is the prompt.
A line-form question may end in "?" ({magic} What is RAG?): it is sent as
written. Only {magic}? and %{magic}? alone show this help.
Put -- before a prompt that starts with "-".

Quotes: "..." or '...' (curly quotes too) keep a value with spaces together;
an apostrophe between letters is text (-s 'You're terse'). An unclosed quote
is refused with its column and nothing is sent.

A value written as $name or {{expr}} (name, name.attr, name[0], name['k'])
is taken from the Python variable, as written (its text is not interpolated);
quote values that contain spaces.

The prompt: {{name}}, {{name.attr}}, {{name[0]}} in prose are replaced by the
variable's value; {{{{name}}}} gives a literal {{name}}. Inside fenced code
blocks (```) and inline `code` nothing is replaced, except a code line that
is only one {{name}} (so a fence around {{source}} sends the source). ${{...}}
is never replaced. Other braces (JSON, code) stay as written. --raw sends the
prompt exactly as typed. An undefined name is an error only where it would be
replaced.

Limits: a sweep of more than WriterMagics.max_sweep (32) requests, and a
prompt over WriterMagics.max_prompt_bytes (4 MB; --allow-large sends it) are
refused before anything is sent. A key typed on the line is refused.
"""


def _specs(kind: str) -> tuple[_Spec, ...]:
    return tuple(s for s in _SPECS if kind in s.magics)


def _decorators(kind: str) -> list[_Decorator]:
    """The decorators in source order (top first), as if written above the method."""
    decos: list[_Decorator] = [
        _magic_arguments(),
        _kwds(epilog=_EPILOG.format(magic="%" + kind)),
        _argument(
            "prompt",
            nargs="*",
            help="Line form only: the prompt text after the options.",
        ),
    ]
    group = None
    for spec in _specs(kind):
        if spec.group != group:
            group = spec.group
            decos.append(_argument_group(_GROUPS[group]))
        if spec.metavar is None:
            decos.append(_argument(*spec.flags, action="store_true", help=spec.help))
        else:
            action = "append" if spec.repeat else "store"
            decos.append(
                _argument(*spec.flags, action=action, metavar=spec.metavar, help=spec.help)
            )
    return decos


def _apply(kind: str, func: F) -> F:
    for deco in reversed(_decorators(kind)):
        func = deco(func)
    return func


def complete_arguments(func: F) -> F:
    """Decorate a magic method with the full ``%%complete`` argument stack."""
    return _apply("complete", func)


def chat_arguments(func: F) -> F:
    """Decorate a magic method with the full ``%%chat`` argument stack."""
    return _apply("chat", func)


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


def _is_number(text: str) -> bool:
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
class _Scan:
    values: dict[str, list[str]] = field(default_factory=dict)  # dest -> values given
    given: list[str] = field(default_factory=list)  # long names, in order
    prompt: str | None = None


def _unknown(name: str, kind: str, magic: str) -> UsageError:
    other = "chat" if kind == "complete" else "complete"
    for spec in _SPECS:
        if name in spec.flags and kind not in spec.magics:
            return UsageError(f"{spec.long} is a %%{other} option; {magic} does not take it")
    known = [f for s in _specs(kind) for f in s.flags if f.startswith("--")]
    bare = name.lstrip("-")
    # 0.7: a typo, not a different word (--frobnicate is not --translate)
    close = difflib.get_close_matches("--" + bare, known, 1, 0.7) if len(bare) > 1 else []
    if close:
        return UsageError(f"Unknown option {name} for {magic}; did you mean {close[0]}?")
    return UsageError(f"Unknown option {name} for {magic}; see {magic}? for the options")


def _substitute(value: str, literal: bool, spec: _Spec, user_ns: Mapping[str, Any]) -> list[str]:
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


def _scan(kind: str, line: str, user_ns: Mapping[str, Any], cell: bool) -> _Scan:
    magic = ("%%" if cell else "%") + kind
    by_flag = {f: s for s in _specs(kind) for f in s.flags}
    scan = _Scan()
    pos = 0
    quote = ""  # the quote of the last option value, if it was quoted
    while True:
        word = len(line) - len(line[pos:].lstrip())
        if word < len(line) and line[word] != "-":
            # Not an option: the prompt starts here, raw (so "What's up" needs no quotes).
            _check_split(line, word, quote, magic)
            scan.prompt = _rest(line, word, magic)
            break
        token = _next_token(line, pos, magic)
        if token is None:
            break
        text = token.text
        if text == "--" and not token.literal:
            scan.prompt = _rest(line, token.end, magic)
            break
        if not text.startswith("-") or len(text) < 2 or _is_number(text):
            scan.prompt = _rest(line, token.start, magic)
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
        scan.given.append(spec.long)
        if spec.metavar is None:
            if eq:
                raise UsageError(f"{spec.long} is a switch and takes no value")
            scan.values.setdefault(spec.dest, [])
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
        scan.values.setdefault(spec.dest, []).extend(_substitute(value, literal, spec, user_ns))
    if cell and scan.prompt is not None:
        raise UsageError(
            f"Unexpected text on the {magic} line: {scan.prompt!r}; write the prompt in the "
            "cell below, and quote option values that contain spaces"
        )
    return scan


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


# --------------------------------------------------------------------------- values


def _items(option: str, values: list[str] | None) -> list[str] | None:
    """Split comma lists of a sweepable option into items."""
    if values is None:
        return None
    items: list[str] = []
    for value in values:
        if not value.strip():
            raise UsageError(f"{option} needs a value")
        parts = [p.strip() for p in value.split(",")]
        if "" in parts:
            raise UsageError(f"{option} has an empty item in {value!r}")
        items += parts
    return items


def _float(option: str, text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise UsageError(f"{option} expects a number between {low:g} and {high:g}, got {text!r}")
    return value


def _int(option: str, text: str, low: int = 1, high: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        if high is not None:
            what = f"a whole number between {low} and {high}"
        elif low == 1:
            what = "a positive whole number"
        else:
            what = f"a whole number of at least {low}"
        raise UsageError(f"{option} expects {what}, got {text!r}")
    return value


def _positive_float(option: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option} expects a positive number of seconds, got {text!r}")
    return value


def _model(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise UsageError(f"--model expects a model name such as palmyra-x5, got {text!r}")
    return text


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        pair = text[i : i + 2]
        if pair in ("\\n", "\\t", "\\\\"):
            out.append({"\\n": "\n", "\\t": "\t", "\\\\": "\\"}[pair])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


T = TypeVar("T")


def _unique(values: tuple[T, ...]) -> tuple[T, ...]:
    """The values in the order given, each once (``-t 0.5,0.5`` is one temperature)."""
    return tuple(dict.fromkeys(values))


_BUILTIN_NAMES = frozenset(dir(builtins))
# Names IPython itself keeps in the namespace (output history, input history, helpers).
_IPYTHON_NAMES = re.compile(r"_+|_i+|_i\d+|_\d+|_oh|_ih|_dh|In|Out|get_ipython|exit|quit")


def _out_name(name: str) -> str:
    """``-o NAME``: a plain variable name that shadows nothing Python or IPython needs."""
    name = name.strip()
    if not name.isidentifier():
        raise UsageError(f"--out expects a Python variable name such as answer, got {name!r}")
    if keyword.iskeyword(name):
        raise UsageError(f"--out {name}: {name} is a Python keyword; choose another name")
    if name in _BUILTIN_NAMES or (name.startswith("__") and name.endswith("__")):
        raise UsageError(
            f"--out {name} would hide Python's own {name}; choose another name such as answer"
        )
    if _IPYTHON_NAMES.fullmatch(name):
        raise UsageError(f"--out {name}: IPython uses {name} itself; choose another name")
    return name


def _sweep_size(opts: Options, ns: Any, max_sweep: int) -> tuple[str, ...]:
    """Refuse a sweep over ``max_sweep`` requests; say when repeats were merged.

    Returns the note to show when identical combinations were sent once.
    """
    raw = {
        "--model": len(_items("--model", ns.model) or [""]),
        "--temperature": len(_items("--temperature", ns.temperature) or [""]),
        "--top-p": len(_items("--top-p", ns.top_p) or [""]),
        "--max-tokens": len(_items("--max-tokens", ns.max_tokens) or [""]),
        "--system": len(getattr(ns, "system", None) or [""]),
    }
    asked = math.prod(raw.values())
    count = len(opts.params)
    if count > max_sweep:
        sizes = " x ".join(f"{n} {flag}" for flag, n in raw.items() if n > 1)
        raise UsageError(
            f"This sweep is {count} requests ({sizes}), over WriterMagics.max_sweep "
            f"({max_sweep}); nothing was sent. To allow it: %config WriterMagics.max_sweep = "
            f"{count}"
        )
    if asked == count:
        return ()
    repeated = ", ".join(flag for flag, n in raw.items() if n > 1)
    more = " (use -n N for several answers)" if isinstance(opts, ChatOptions) else ""
    plural = "request" if count == 1 else "requests"
    return (
        f"{repeated} repeats a value: identical combinations are sent once, "
        f"{count} {plural} instead of {asked}{more}",
    )


def _common(ns: Any, scan: _Scan, default_model: str) -> dict[str, Any]:
    models = _unique(tuple(_model(m) for m in (_items("--model", ns.model) or [default_model])))
    temps = _items("--temperature", ns.temperature)
    top_ps = _items("--top-p", ns.top_p)
    limits = _items("--max-tokens", ns.max_tokens)
    stop = None
    if ns.stop is not None:
        stop = tuple(_unescape(s) for s in ns.stop)
        if "" in stop:
            raise UsageError("--stop expects a non-empty stop sequence")
    out = None if ns.out is None else _out_name(ns.out)
    warnings = tuple(dict.fromkeys(w for m in models if (w := removal_warning(m)) is not None))
    return {
        "models": models,
        "temperatures": (
            None
            if temps is None
            else _unique(tuple(_float("--temperature", t, 0, 2) for t in temps))
        ),
        "top_ps": (
            None if top_ps is None else _unique(tuple(_float("--top-p", p, 0, 1) for p in top_ps))
        ),
        "max_token_limits": (
            None
            if limits is None
            else _unique(tuple(_int("--max-tokens", k, 1, INT32_MAX) for k in limits))
        ),
        "stop": stop,
        "stream": not ns.no_stream,
        "out": out,
        "timeout": None if ns.timeout is None else _positive_float("--timeout", ns.timeout),
        "dry_run": ns.dry_run,
        "cache": ns.cache,
        "raw": ns.raw,
        "allow_large": ns.allow_large,
        "prompt": scan.prompt,
        "warnings": warnings,
        **_batch_options(ns, temps, top_ps, limits, models),
    }


def _batch_options(
    ns: Any,
    temps: list[str] | None,
    top_ps: list[str] | None,
    limits: list[str] | None,
    models: tuple[str, ...],
) -> dict[str, Any]:
    """``--over``, ``--expect``, ``--strict``, ``--diff`` and their rules."""
    over = None if ns.over is None else ns.over.strip()
    if over is not None and not over:
        raise UsageError("--over expects a variable name or a .csv / .jsonl path")
    expect = tuple(ns.expect or ())
    if any(not e.strip() for e in expect):
        raise UsageError("--expect needs a check, e.g. --expect contains:Paris")
    _requires(ns.strict and not expect, "--strict", "--expect CHECK")
    if over is not None:
        swept = len(models) > 1 or any(len(v or ()) > 1 for v in (temps, top_ps, limits))
        swept = swept or len(getattr(ns, "system", None) or ()) > 1
        if swept:
            raise UsageError(
                "--over runs one parameter set over many items; give one value per option "
                "(a sweep and a batch cannot be combined)"
            )
        if ns.diff:
            raise UsageError("--diff works on a single cell or a sweep, not with --over")
        if ns.raw:
            raise UsageError("--raw sends one prompt as written; --over fills {item} per item")
        if ns.dry_run:
            pass  # the first item's request is shown
    return {
        "over": over,
        "expect": expect,
        "strict": ns.strict,
        "diff": ns.diff,
    }


def _namespace(kind: str, scan: _Scan) -> SimpleNamespace:
    """What argparse would return for the scanned options (dest -> value)."""
    ns = SimpleNamespace()
    for spec in _specs(kind):
        values = scan.values.get(spec.dest)
        if spec.metavar is None:
            setattr(ns, spec.dest, values is not None)
        elif spec.repeat or values is None:
            setattr(ns, spec.dest, values)
        else:
            setattr(ns, spec.dest, values[-1])  # a repeated single option: the last wins
    return ns


_DOMAIN = re.compile(r"[A-Za-z0-9*](?:[A-Za-z0-9.*-]*[A-Za-z0-9])?")
_TOOL_CHOICES = ("auto", "none", "required")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _domains(option: str, values: list[str] | None) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(_items(option, values) or ()))
    for item in items:
        if not _DOMAIN.fullmatch(item):
            raise UsageError(f"{option} expects a domain such as python.org, got {item!r}")
    return items


def _requires(given: bool, option: str, needed: str) -> None:
    if given:
        raise UsageError(f"{option} works only with {needed}")


def _tool_options(ns: Any) -> dict[str, Any]:
    """The tool, built-in tool and ``--schema`` fields, each checked; one built-in type."""
    tools = tuple(dict.fromkeys(_items("--tools", ns.tools) or ()))
    for name in tools:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise UsageError(f"--tools expects names of Python functions, got {name!r}")
    include = _domains("--include-domain", ns.include_domain)
    exclude = _domains("--exclude-domain", ns.exclude_domain)
    _requires(bool(include) and not ns.web_search, "--include-domain", "--web-search")
    _requires(bool(exclude) and not ns.web_search, "--exclude-domain", "--web-search")
    graph_ids = tuple(dict.fromkeys(_items("--graph", ns.graph) or ()))
    for item in graph_ids:
        if not _UUID.fullmatch(item):
            raise UsageError(
                f"--graph expects Knowledge Graph ids, which are UUIDs such as "
                f"6e2a7f0c-1d5b-4e0a-9c3f-2b8d1a4e5f60; got {item!r}"
            )
    _requires(ns.subqueries and not graph_ids, "--subqueries", "--graph ID")
    _requires(ns.source is not None and ns.translate is None, "--source", "--translate LANG")
    llm = None if ns.llm_tool is None else parse_llm_tool(ns.llm_tool)
    translate = None if ns.translate is None else check_language("--translate", ns.translate)
    source = None if ns.source is None else check_language("--source", ns.source)
    builtin = builtin_tool(
        web_search=ns.web_search,
        include_domains=include,
        exclude_domains=exclude,
        graph_ids=graph_ids,
        subqueries=ns.subqueries,
        llm=llm,
        translate=translate,
        source=source,
    )
    _requires(ns.confirm and not tools, "--confirm", "--tools (it asks before each call)")
    choice = ns.tool_choice
    if choice is not None:
        choice = choice.strip()
        if not tools and builtin is None:
            raise UsageError("--tool-choice works only with --tools or a built-in tool")
        if choice not in _TOOL_CHOICES and choice not in tools:
            names = f" or one of the --tools names ({', '.join(tools)})" if tools else ""
            raise UsageError(f"--tool-choice expects auto, none, required{names}, got {choice!r}")
    schema = ns.schema
    if schema is not None and not is_reference(schema.strip()):
        raise UsageError(
            f"--schema expects the name of a pydantic model class or a JSON-schema dict, "
            f"got {schema!r}"
        )
    return {
        "tools": tools,
        "tool_choice": choice,
        "confirm": ns.confirm,
        "web_search": ns.web_search,
        "include_domains": include,
        "exclude_domains": exclude,
        "graph_ids": graph_ids,
        "subqueries": ns.subqueries,
        "llm_tool": llm,
        "translate_to": translate,
        "translate_from": source,
        "schema": None if schema is None else schema.strip(),
    }


# --------------------------------------------------------------------------- entry points


def _batch_chat_rules(opts: ChatOptions, scan: _Scan) -> None:
    """A chat batch is stateless: one one-turn conversation per item."""
    for option in ("--session", "--new", "--history"):
        if option in scan.given:
            raise UsageError(
                f"{option} has no effect with --over: each item is its own one-turn "
                "conversation (chat batches do not use session history)"
            )
    if opts.command is not None:
        raise UsageError(f"--{opts.command.value} cannot be combined with --over")
    for option, given in (
        ("--tools", bool(opts.tools)),
        ("--schema", opts.schema is not None),
        ("-n above 1", (opts.n or 1) > 1),
        ("--logprobs", opts.logprobs),
    ):
        if given:
            raise UsageError(
                f"{option} cannot be combined with --over yet; use --expect schema:NAME to "
                "check JSON answers"
                if option == "--schema"
                else f"{option} cannot be combined with --over"
            )


def parse_complete(
    magic_func: object,
    line: str,
    user_ns: Mapping[str, Any],
    *,
    default_model: str,
    cell: bool,
    max_sweep: int = DEFAULT_MAX_SWEEP,
    secrets: Iterable[str | None] = (),
) -> CompleteOptions:
    """Parse and validate a ``%%complete`` / ``%complete`` line.

    ``magic_func`` is the magic method (decorated with :func:`complete_arguments`). Its
    argparse parser serves ``%%complete?`` only: parsing is done here from the same
    option table, because argparse mangles values such as ``--`` or ``-x`` and
    prints or exits on errors.
    """
    magic = ("%%" if cell else "%") + "complete"
    refuse_keys(line, secrets, magic)
    scan = _scan("complete", line, user_ns, cell)
    ns = _namespace("complete", scan)
    opts = CompleteOptions(
        **_common(ns, scan, default_model),
        best_of=None if ns.best_of is None else _int("--best-of", ns.best_of, 1, INT32_MAX),
        random_seed=(
            None if ns.random_seed is None else _int("--random-seed", ns.random_seed, 0, INT32_MAX)
        ),
    )
    notes = _sweep_size(opts, ns, max_sweep)
    return replace(opts, warnings=opts.warnings + notes) if notes else opts


def parse_chat(
    magic_func: object,
    line: str,
    user_ns: Mapping[str, Any],
    *,
    default_model: str,
    cell: bool,
    max_sweep: int = DEFAULT_MAX_SWEEP,
    secrets: Iterable[str | None] = (),
) -> ChatOptions:
    """Parse and validate a ``%%chat`` / ``%chat`` line, including its session commands.

    Commands (``--show``, ``--reset``, ``--undo``, ``--sessions``, ``--save``,
    ``--load``) are line-form only, one at a time, and take no prompt text.
    """
    magic = ("%%" if cell else "%") + "chat"
    refuse_keys(line, secrets, magic)
    scan = _scan("chat", line, user_ns, cell)
    ns = _namespace("chat", scan)
    given = [c for c in _COMMANDS if f"--{c.value}" in scan.given]
    command = given[0] if given else None
    if len(given) > 1:
        raise UsageError(
            f"--{given[0].value} and --{given[1].value} cannot be used together; "
            "give one chat command at a time"
        )
    path: str | None = None
    if command is not None:
        if cell:
            raise UsageError(
                f"--{command.value} works in the line form only: %chat --{command.value}"
            )
        if scan.prompt is not None:
            hint = ""
            if command in (ChatCommand.SAVE, ChatCommand.LOAD):
                hint = f'; quote a path with spaces: --{command.value} "my chat.json"'
            raise UsageError(
                f"%chat --{command.value} takes no prompt text, got {scan.prompt!r}{hint}"
            )
        if command in (ChatCommand.SAVE, ChatCommand.LOAD):
            path = getattr(ns, command.value)
            if not path or not path.strip():
                raise UsageError(f"--{command.value} expects a file path")
    session = ns.session if ns.session is not None else "default"
    if not session.strip():
        raise UsageError(f"--session expects a name, got {session!r}")
    opts = ChatOptions(
        **_common(ns, scan, default_model),
        systems=None if ns.system is None else _unique(tuple(ns.system)),
        session=session,
        new=ns.new,
        history=None if ns.history is None else _int("--history", ns.history, 0, INT32_MAX),
        n=None if ns.n is None else _int("--n", ns.n, 1, MAX_N),
        logprobs=ns.logprobs,
        command=command,
        path=path,
        **_tool_options(ns),
    )
    if opts.over is not None:
        _batch_chat_rules(opts, scan)
    notes = _sweep_size(opts, ns, max_sweep)
    if notes:
        opts = replace(opts, warnings=opts.warnings + notes)
    if opts.tools and (opts.is_sweep or (opts.n or 1) > 1):
        what = "a sweep" if opts.is_sweep else "-n above 1"
        raise UsageError(
            f"--tools runs one conversation with your functions and cannot be combined with {what}"
        )
    return opts
