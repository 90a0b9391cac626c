"""THE option table of ``%%complete`` and ``%%chat``: each option is one :class:`Option` row.

A row holds the flags, the options dataclass field it fills, the converter of its words
(:mod:`writer_magics.line.values`), its help, which magics take it and, for options sent
as they are, the request body key. Everything else is built from the rows: the
``@magic_arguments`` decorator stacks (so ``%%chat?`` lists every option, in these groups),
the tokenizer's knowledge of which flags take a value (:mod:`writer_magics.line.scan`), the
conversion into :class:`~writer_magics.line.options.ChatOptions` /
:class:`~writer_magics.line.options.CompleteOptions`, and the body values
(:func:`writer_magics.line.options.body_values`).

Adding an option: one row here, one field on the dataclass, and (when the option is sent
as it is) the row's ``body`` key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from IPython.core import magic_arguments as _ma

from writer_magics.line import values as v

__all__ = [
    "OPTIONS",
    "Converter",
    "Option",
    "chat_arguments",
    "complete_arguments",
    "option_flags",
    "options_of",
]

F = TypeVar("F", bound=Callable[..., Any])
_Decorator = Callable[[Any], Any]
# IPython's decorator classes are unannotated; give them a type once, here.
_magic_arguments = cast(Callable[..., _Decorator], _ma.magic_arguments)
_argument = cast(Callable[..., _Decorator], _ma.argument)
_argument_group = cast(Callable[..., _Decorator], _ma.argument_group)
_kwds = cast(Callable[..., _Decorator], _ma.kwds)

#: ``(long flag, word) -> value``; raises one-line ``UsageError`` on a bad word.
Converter = Callable[[str, str], Any]

_BOTH = frozenset({"complete", "chat"})
_COMPLETE = frozenset({"complete"})
_CHAT = frozenset({"chat"})


@dataclass(frozen=True)
class Option:
    """One option of the magic line.

    ``field``: the options dataclass field it fills (None: read by the cross-option rules,
    e.g. the chat commands). ``metavar`` None means a switch (no value; the field is
    ``given``, which is False for ``--no-stream`` -> ``stream``). ``repeat``: the flag may
    be given several times, the field is a tuple (``commas``: each word is also a comma
    list, the sweeps; ``unique``: a value given twice is kept once). A single-valued
    option given twice with different values is a UsageError (scan.py). ``param``: the
    :class:`Params` field a sweepable option sets per request. ``body``: the request body
    key it is sent as.
    ``names_object``: the value names a Python object (``{Answer}`` means ``Answer``).
    """

    flags: tuple[str, ...]
    field: str | None
    help: str
    metavar: str | None = None
    convert: Converter = v.text
    repeat: bool = False
    commas: bool = False
    unique: bool = True
    given: bool = True
    example: str = ""
    magics: frozenset[str] = _BOTH
    group: str = "generation"
    names_object: bool = False
    param: str | None = None
    body: str | None = None

    @property
    def long(self) -> str:
        """The long flag (``--temperature``): the option's name in every message."""
        return self.flags[-1]

    @property
    def switch(self) -> bool:
        """True for an option without a value."""
        return self.metavar is None


_GROUPS = {
    "generation": "model and sampling",
    "tools": "tools, built-in tools and structured output",
    "images": "images",
    "prompt": "the prompt text",
    "batch": "batches, checks and diffs",
    "output": "output",
    "session": "conversation",
    "command": "chat commands (line form, e.g. %chat --show)",
}

OPTIONS: tuple[Option, ...] = (
    Option(
        ("-m", "--model"),
        "models",
        "Model id (default: WriterMagics.model, normally palmyra-x5). "
        "A comma list or a repeated flag sweeps models.",
        "MODEL",
        v.model,
        repeat=True,
        commas=True,
        example="palmyra-x5",
        param="model",
        body="model",
    ),
    Option(
        ("-t", "--temperature"),
        "temperatures",
        "Sampling temperature, 0 to 2. A comma list sweeps: -t 0.2,1.0.",
        "F",
        v.number(0, 2),
        repeat=True,
        commas=True,
        example="0.7",
        param="temperature",
        body="temperature",
    ),
    Option(
        ("--top-p",),
        "top_ps",
        "Nucleus sampling, 0 to 1. A comma list sweeps.",
        "F",
        v.number(0, 1),
        repeat=True,
        commas=True,
        example="0.9",
        param="top_p",
        body="top_p",
    ),
    Option(
        ("--max-tokens",),
        "max_token_limits",
        "Maximum number of tokens to generate, 1 to 2147483647. A comma list sweeps.",
        "N",
        v.whole(1, v.INT32_MAX),
        repeat=True,
        commas=True,
        example="256",
        param="max_tokens",
        body="max_tokens",
    ),
    Option(
        ("--stop",),
        "stop",
        "Stop sequence; repeat for several. Understands \\n and \\t; not split on commas.",
        "S",
        v.stop,
        repeat=True,
        unique=False,
        example="'\\n'",
        body="stop",
    ),
    Option(
        ("--best-of",),
        "best_of",
        "Generate N completions on the server and return the best one (1 to 2147483647).",
        "N",
        v.whole(1, v.INT32_MAX),
        example="3",
        magics=_COMPLETE,
        body="best_of",
    ),
    Option(
        ("--random-seed",),
        "random_seed",
        "Seed for reproducible sampling, 0 to 2147483647.",
        "N",
        v.whole(0, v.INT32_MAX),
        example="42",
        magics=_COMPLETE,
        body="random_seed",
    ),
    Option(
        ("-s", "--system"),
        "systems",
        "System prompt, kept for the session while this cell's turns are in it (re-running "
        "the cell without -s removes it; '' clears it). Not split on commas: "
        "repeat -s to sweep several system prompts.",
        "TEXT",
        repeat=True,
        example='"You are terse."',
        magics=_CHAT,
        param="system",
    ),
    Option(
        ("-n", "--n"),
        "n",
        "Number of answers to generate, 1 to 128.",
        "N",
        v.whole(1, v.MAX_N),
        example="3",
        magics=_CHAT,
        body="n",
    ),
    Option(
        ("--logprobs",),
        "logprobs",
        "Return token log probabilities.",
        magics=_CHAT,
        body="logprobs",
    ),
    Option(
        ("--tools",),
        "tools",
        "Python functions the model may call, by name; a comma list or a repeated flag. "
        "Schemas come from signatures, type hints and docstrings.",
        "NAME[,NAME...]",
        v.function_name,
        repeat=True,
        commas=True,
        example="get_weather",
        magics=_CHAT,
        group="tools",
        names_object=True,
    ),
    Option(
        ("--tool-choice",),
        "tool_choice",
        "auto, none, required, or one of the --tools names to force that call.",
        "auto|none|required|NAME",
        v.tool_choice,
        example="auto",
        magics=_CHAT,
        group="tools",
    ),
    Option(
        ("--confirm",),
        "confirm",
        "Ask before running each function call.",
        magics=_CHAT,
        group="tools",
    ),
    Option(
        ("--web-search",),
        "web_search",
        "Built-in tool: let Writer search the web (one built-in tool per cell).",
        magics=_CHAT,
        group="tools",
    ),
    Option(
        ("--include-domain",),
        "include_domains",
        "With --web-search: search only this domain; repeatable.",
        "D",
        v.domain,
        repeat=True,
        commas=True,
        example="python.org",
        magics=_CHAT,
        group="tools",
    ),
    Option(
        ("--exclude-domain",),
        "exclude_domains",
        "With --web-search: never use this domain; repeatable.",
        "D",
        v.domain,
        repeat=True,
        commas=True,
        example="example.com",
        magics=_CHAT,
        group="tools",
    ),
    Option(
        ("--graph",),
        "graph_ids",
        "Built-in tool: answer from these Knowledge Graph ids (UUIDs; comma list).",
        "ID[,ID...]",
        v.graph_id,
        repeat=True,
        commas=True,
        example="6e2a7f0c-1d5b-4e0a-9c3f-2b8d1a4e5f60",
        magics=_CHAT,
        group="tools",
    ),
    Option(
        ("--subqueries",),
        "subqueries",
        "With --graph: let the graph split the question into subqueries.",
        magics=_CHAT,
        group="tools",
    ),
    Option(
        ("--llm-tool",),
        "llm_tool",
        "Built-in tool: delegate matching questions to another model.",
        "MODEL:DESCRIPTION",
        v.llm_tool,
        example="'palmyra-med:Medical questions'",
        magics=_CHAT,
        group="tools",
    ),
    Option(
        ("--translate",),
        "translate_to",
        "Built-in tool: translate with palmyra-translate into this language code.",
        "TARGET_LANG",
        v.check_language,
        example="fr",
        magics=_CHAT,
        group="tools",
    ),
    Option(
        ("--source",),
        "translate_from",
        "With --translate: the source language code.",
        "SOURCE_LANG",
        v.check_language,
        example="en",
        magics=_CHAT,
        group="tools",
    ),
    Option(
        ("--schema",),
        "schema",
        "Answer as JSON matching this pydantic model class or JSON-schema dict; "
        "-o keeps the parsed value as .parsed.",
        "NAME",
        v.schema_name,
        example="Answer",
        magics=_CHAT,
        group="tools",
        names_object=True,
    ),
    Option(
        ("--image",),
        "images",
        "Send an image with the prompt (palmyra-x5 only); repeatable. A variable holding a "
        "matplotlib Figure or Axes, a Pillow Image, an IPython Image or image bytes; a PNG, "
        "JPEG, GIF or WebP file; or an https:// or data:image/ URL. Over 5 MB "
        "(WriterMagics.max_image_bytes): shrunk with Pillow, else refused.",
        "SOURCE",
        repeat=True,
        example="fig",
        magics=_CHAT,
        group="images",
        names_object=True,
    ),
    Option(
        ("--raw",),
        "raw",
        "Send the prompt exactly as written: no {name} interpolation.",
        group="prompt",
    ),
    Option(
        ("--allow-large",),
        "allow_large",
        "Send a prompt larger than WriterMagics.max_prompt_bytes (4 MB by default), or an "
        "--over batch larger than WriterMagics.max_batch (1000).",
        group="prompt",
    ),
    Option(
        ("--over",),
        "over",
        "Run the cell once per item of a list, tuple, pandas DataFrame (a row each) or "
        "Series, or of a .csv / .jsonl file: {item} is the item, {row.column} or "
        "{row['column']} a field. Concurrent, one progress view; -o keeps a Batch.",
        "ITEMS",
        v.items_source,
        example="questions",
        group="batch",
        names_object=True,
    ),
    Option(
        ("--expect",),
        "expect",
        "Check each answer; repeatable: contains:TEXT, not-contains:TEXT, regex:PATTERN, "
        "json, schema:NAME, max-words:N, max-chars:N, equals:{name}.",
        "CHECK",
        v.check_spec,
        repeat=True,
        unique=False,
        example="contains:Paris",
        group="batch",
    ),
    Option(
        ("--strict",),
        "strict",
        "With --expect: a failed check fails the cell.",
        group="batch",
    ),
    Option(
        ("--diff",),
        "diff",
        "Show a word diff against this cell's previous answer (a sweep: against the first panel).",
        group="batch",
    ),
    Option(
        ("--no-stream",),
        "stream",
        "Wait for the whole answer instead of streaming it.",
        given=False,
        group="output",
    ),
    Option(
        ("-o", "--out"),
        "out",
        "Also store the Result in this Python variable (not a keyword or builtin name).",
        "NAME",
        v.out_name,
        example="answer",
        group="output",
    ),
    Option(
        ("--timeout",),
        "timeout",
        "Seconds to wait for each next event of the answer (default: "
        "WriterMagics.read_timeout; a cell's total time: WriterMagics.total_timeout).",
        "S",
        v.seconds,
        example="30",
        group="output",
    ),
    Option(
        ("--dry-run",),
        "dry_run",
        "Show the request JSON instead of sending it.",
        group="output",
    ),
    Option(
        ("--cache",),
        "cache",
        "Reuse a cached answer for an identical request.",
        group="output",
    ),
    Option(
        ("--partial",),
        "partial",
        "With a budget: send the requests of a sweep that still fit instead of none.",
        group="output",
    ),
    Option(
        ("--session",),
        "session",
        "Conversation to use (default: default).",
        "NAME",
        example="ideas",
        magics=_CHAT,
        group="session",
    ),
    Option(
        ("--new",),
        "new",
        "Start the session afresh before this cell.",
        magics=_CHAT,
        group="session",
    ),
    Option(
        ("--history",),
        "history",
        "Send only the last N turns of the session (0: none); the rest stay stored.",
        "N",
        v.whole(0, v.INT32_MAX),
        example="4",
        magics=_CHAT,
        group="session",
    ),
    Option(("--show",), None, "Show the session as Markdown.", magics=_CHAT, group="command"),
    Option(
        ("--reset",),
        None,
        "Forget the session's turns and system prompt.",
        magics=_CHAT,
        group="command",
    ),
    Option(("--undo",), None, "Drop the session's last turn.", magics=_CHAT, group="command"),
    Option(
        ("--sessions",),
        None,
        "List the sessions and their turn counts.",
        magics=_CHAT,
        group="command",
    ),
    Option(
        ("--save",),
        None,
        "Save the session to a JSON file.",
        "PATH",
        example="chat.json",
        magics=_CHAT,
        group="command",
    ),
    Option(
        ("--load",),
        None,
        "Replace the session with the one saved in a JSON file.",
        "PATH",
        example="chat.json",
        magics=_CHAT,
        group="command",
    ),
)

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
is never replaced, nor is LaTeX ($\\frac{{x}}{{2}}$, \\begin{{equation}}, \\textbf{{x}}).
Other braces (JSON, code) stay as written. --raw sends the
prompt exactly as typed. An undefined name is an error only where it would be
replaced.

Limits: a sweep of more than WriterMagics.max_sweep (32) requests, and a
prompt over WriterMagics.max_prompt_bytes (4 MB; --allow-large sends it) are
refused before anything is sent. A key typed on the line is refused.
"""


def option_flags() -> dict[str, str]:
    """Every flag of either magic (``-t``, ``--temperature``) -> its long name."""
    return {flag: option.long for option in OPTIONS for flag in option.flags}


def options_of(kind: str) -> tuple[Option, ...]:
    """The rows of one magic (``"complete"`` or ``"chat"``), in table order."""
    return tuple(o for o in OPTIONS if kind in o.magics)


def _decorators(kind: str) -> list[_Decorator]:
    """The decorators in source order (top first), as if written above the method."""
    decos: list[_Decorator] = [
        _magic_arguments(name="%" + kind),  # usage reads %%chat, the cell form
        _kwds(epilog=_EPILOG.format(magic="%" + kind)),
        _argument(
            "prompt",
            nargs="*",
            help="Line form only: the prompt text after the options.",
        ),
    ]
    group = None
    for option in options_of(kind):
        if option.group != group:
            group = option.group
            decos.append(_argument_group(_GROUPS[group]))
        if option.switch:
            decos.append(_argument(*option.flags, action="store_true", help=option.help))
        else:
            action = "append" if option.repeat else "store"
            decos.append(
                _argument(*option.flags, action=action, metavar=option.metavar, help=option.help)
            )
    return decos


def _apply(kind: str, func: F) -> F:
    for deco in reversed(_decorators(kind)):
        func = deco(func)
    return func


def complete_arguments(func: F) -> F:
    """Decorate a magic method with the full ``%%complete`` argument stack (its help)."""
    return _apply("complete", func)


def chat_arguments(func: F) -> F:
    """Decorate a magic method with the full ``%%chat`` argument stack (its help)."""
    return _apply("chat", func)
