"""The magic line as typed values: the options dataclasses, their conversion and the rules.

``parse_complete`` / ``parse_chat`` run the three steps of the parsing layer: refuse API
keys on the line and read the words (:mod:`writer_magics.line.scan`), convert each
option's words with the converter of its row in the option table
(:mod:`writer_magics.line.table`, converters in :mod:`writer_magics.line.values`) into
the frozen :class:`CompleteOptions` / :class:`ChatOptions`, then apply the rules between
options (``--include-domain`` needs ``--web-search``, one built-in tool type, one chat
command, the sweep limit, ``--over`` without a sweep...). Every problem is one
``UsageError`` sentence *before* anything is sent; nothing here builds request JSON or
imports a later stage.

Values: sweeps (``--model``, ``--temperature``, ``--top-p``, ``--max-tokens``) take comma
lists and may be repeated, a value given twice is kept once; ``--system`` is never split
on commas (repeat ``-s`` to sweep system prompts); :func:`combinations` expands the
cartesian product in the order given. ``--stop`` may be repeated and understands
``\\n``, ``\\t`` and ``\\\\`` escapes.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from IPython.core.error import UsageError

from writer_magics.config import removed_model_warning
from writer_magics.line import values
from writer_magics.line.scan import Scan, refuse_keys, scan
from writer_magics.line.table import Option, options_of

__all__ = [
    "ChatCommand",
    "ChatOptions",
    "CompleteOptions",
    "Options",
    "Params",
    "body_values",
    "combinations",
    "parse_chat",
    "parse_complete",
]

DEFAULT_MAX_SWEEP = 32
_TOOL_CHOICES = ("auto", "none", "required")


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
    partial: bool = False
    """``--partial``: with a budget, send the requests of a sweep that fit (answer/budget.py)."""
    given: tuple[str, ...] = ()
    """The long names of the options written on the line, in order (class settings)."""
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
    images: tuple[str, ...] = ()
    """``--image SOURCE`` values as given (resolve with ``line.images.resolve``)."""

    @property
    def builtin_types(self) -> tuple[str, ...]:
        """The built-in tool types asked for (``web_search``, ``graph``, ``llm``,
        ``translation``), in that order; the request layer builds their JSON."""
        asked = (
            ("web_search", self.web_search),
            ("graph", bool(self.graph_ids)),
            ("llm", self.llm_tool is not None),
            ("translation", self.translate_to is not None),
        )
        return tuple(kind for kind, given in asked if given)


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


def body_values(kind: str, opts: Options, params: Params) -> dict[str, Any]:
    """The request body values of the options sent as they are: body key -> value.

    From the rows of the option table that name a ``body`` key, for ``kind``
    (``"complete"`` or ``"chat"``): a sweepable option's value comes from ``params`` (one
    request), the others from ``opts``. A switch that was not given and an option that
    was not given are None (not sent); ``stop`` is a list. Keys in table order.
    """
    body: dict[str, Any] = {}
    for option in options_of(kind):
        if option.body is None or option.field is None:
            continue
        if option.param is not None:
            value = getattr(params, option.param)
        else:
            value = getattr(opts, option.field)
        if option.switch and value is False:
            value = None
        elif isinstance(value, tuple):
            value = list(value)
        body[option.body] = value
    return body


# --------------------------------------------------------------------------- conversion


def _items(option: str, words: list[str]) -> list[str]:
    """Split the comma lists of a sweepable option into items."""
    items: list[str] = []
    for word in words:
        if not word.strip():
            raise UsageError(f"{option} needs a value")
        parts = [p.strip() for p in word.split(",")]
        if "" in parts:
            raise UsageError(f"{option} has an empty item in {word!r}")
        items += parts
    return items


def _words(option: Option, found: Scan) -> list[str] | None:
    """The words given to a valued option (comma lists split), or None if not given."""
    words = found.values.get(option.long)
    if words is None:
        return None
    return _items(option.long, words) if option.commas else words


def _convert(kind: str, found: Scan, dataclass_type: type[Options]) -> dict[str, Any]:
    """Each given option's field value, converted by its row, in table order."""
    names = {f.name for f in fields(dataclass_type)}
    out: dict[str, Any] = {}
    for option in options_of(kind):
        if option.field is None or option.field not in names:
            continue
        if option.switch:
            out[option.field] = option.given == (option.long in found.values)
            continue
        words = _words(option, found)
        if words is None:
            continue
        if not option.repeat:
            # One value: scan refuses two different ones.
            out[option.field] = option.convert(option.long, words[-1])
            continue
        converted = tuple(option.convert(option.long, w) for w in words)
        out[option.field] = tuple(dict.fromkeys(converted)) if option.unique else converted
    return out


# --------------------------------------------------------------------------- rules


def _requires(given: bool, option: str, needed: str) -> None:
    if given:
        raise UsageError(f"{option} works only with {needed}")


def _common(kind: str, found: Scan, default_model: str) -> dict[str, Any]:
    """The converted fields, the default model, the prompt and removed-model warnings."""
    kwargs = _convert(kind, found, ChatOptions if kind == "chat" else CompleteOptions)
    models = kwargs.setdefault("models", (default_model,))
    kwargs["prompt"] = found.prompt
    kwargs["given"] = tuple(dict.fromkeys(found.given))
    kwargs["warnings"] = tuple(
        dict.fromkeys(w for m in models if (w := removed_model_warning(m)) is not None)
    )
    return kwargs


def _batch_rules(opts: Options, found: Scan) -> None:
    """``--over``, ``--expect``, ``--strict``, ``--diff``: the rules between them and the rest.

    A batch runs one parameter set over many items: no sweep, no ``--diff`` (it compares
    one cell's answers), no ``--raw`` (the prompt is filled per item).
    """
    _requires(opts.strict and not opts.expect, "--strict", "--expect CHECK")
    if opts.over is None:
        return
    kind = "chat" if isinstance(opts, ChatOptions) else "complete"
    sweeps = [o for o in options_of(kind) if o.param is not None]
    if opts.is_sweep or any(len(_words(o, found) or ()) > 1 for o in sweeps):
        raise UsageError(
            "--over runs one parameter set over many items; give one value per option "
            "(a sweep and a batch cannot be combined)"
        )
    if opts.diff:
        raise UsageError("--diff works on a single cell or a sweep, not with --over")
    if opts.raw:
        raise UsageError("--raw sends one prompt as written; --over fills {item} per item")


def _batch_chat_rules(opts: ChatOptions, found: Scan) -> None:
    """A chat batch is stateless: one one-turn conversation per item."""
    if opts.over is None:
        return
    for option in ("--session", "--new", "--history"):
        if option in found.given:
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
        ("--image", bool(opts.images)),
    ):
        if given:
            raise UsageError(
                f"{option} cannot be combined with --over yet; use --expect schema:NAME to "
                "check JSON answers"
                if option == "--schema"
                else f"{option} cannot be combined with --over"
            )


def _sweep_size(opts: Options, found: Scan, max_sweep: int) -> tuple[str, ...]:
    """Refuse a sweep over ``max_sweep`` requests; say when repeats were merged.

    Returns the note to show when identical combinations were sent once.
    """
    kind = "chat" if isinstance(opts, ChatOptions) else "complete"
    sweeps = [o for o in options_of(kind) if o.param is not None]
    raw = {o.long: len(_words(o, found) or [""]) for o in sweeps}
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


def _tool_rules(opts: ChatOptions) -> None:
    """The rules between the tool, built-in tool and ``--schema`` options."""
    _requires(
        bool(opts.include_domains) and not opts.web_search, "--include-domain", "--web-search"
    )
    _requires(
        bool(opts.exclude_domains) and not opts.web_search, "--exclude-domain", "--web-search"
    )
    _requires(opts.subqueries and not opts.graph_ids, "--subqueries", "--graph ID")
    _requires(
        opts.translate_from is not None and opts.translate_to is None,
        "--source",
        "--translate LANG",
    )
    values.one_builtin_type(opts.builtin_types)
    _requires(opts.confirm and not opts.tools, "--confirm", "--tools (it asks before each call)")
    choice = opts.tool_choice
    if choice is not None:
        if not opts.tools and not opts.builtin_types:
            raise UsageError("--tool-choice works only with --tools or a built-in tool")
        if choice not in _TOOL_CHOICES and choice not in opts.tools:
            names = f" or one of the --tools names ({', '.join(opts.tools)})" if opts.tools else ""
            raise UsageError(f"--tool-choice expects auto, none, required{names}, got {choice!r}")


def _command(found: Scan, cell: bool) -> tuple[ChatCommand | None, str | None]:
    """The one chat command given (line form only, no prompt) and its file path."""
    given = [c for c in ChatCommand if f"--{c.value}" in found.given]
    if len(given) > 1:
        raise UsageError(
            f"--{given[0].value} and --{given[1].value} cannot be used together; "
            "give one chat command at a time"
        )
    if not given:
        return None, None
    command = given[0]
    if cell:
        raise UsageError(f"--{command.value} works in the line form only: %chat --{command.value}")
    if found.prompt is not None:
        hint = ""
        if command in (ChatCommand.SAVE, ChatCommand.LOAD):
            hint = f'; quote a path with spaces: --{command.value} "my chat.json"'
        raise UsageError(
            f"%chat --{command.value} takes no prompt text, got {found.prompt!r}{hint}"
        )
    path: str | None = None
    if command in (ChatCommand.SAVE, ChatCommand.LOAD):
        path = found.values[f"--{command.value}"][-1]
        if not path.strip():
            raise UsageError(f"--{command.value} expects a file path")
    return command, path


# --------------------------------------------------------------------------- entry points


def parse_complete(
    line: str,
    user_ns: Mapping[str, Any],
    *,
    default_model: str,
    cell: bool,
    max_sweep: int = DEFAULT_MAX_SWEEP,
    secrets: Iterable[str | None] = (),
) -> CompleteOptions:
    """Parse and validate a ``%%complete`` / ``%complete`` line (UsageError, nothing sent).

    The magic's argparse parser (:func:`~writer_magics.line.table.complete_arguments`)
    serves ``%%complete?`` only; :mod:`writer_magics.line.scan` says why it cannot parse.
    """
    magic = ("%%" if cell else "%") + "complete"
    refuse_keys(line, secrets, magic)
    found = scan("complete", line, user_ns, cell)
    opts = CompleteOptions(**_common("complete", found, default_model))
    _batch_rules(opts, found)
    notes = _sweep_size(opts, found, max_sweep)
    return replace(opts, warnings=opts.warnings + notes) if notes else opts


def parse_chat(
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
    found = scan("chat", line, user_ns, cell)
    command, path = _command(found, cell)
    session = found.values.get("--session", ["default"])[-1]
    if not session.strip():
        raise UsageError(f"--session expects a name, got {session!r}")
    opts = ChatOptions(**_common("chat", found, default_model), command=command, path=path)
    if opts.images and command is not None:
        raise UsageError(
            f"--image sends an image with a prompt; %chat --{command.value} does not take it"
        )
    if opts.images:  # before the removed-model warning: a refused cell says one line
        from writer_magics.line.images import check_models

        check_models(opts.models)
    _tool_rules(opts)
    _batch_rules(opts, found)
    _batch_chat_rules(opts, found)
    notes = _sweep_size(opts, found, max_sweep)
    if notes:
        opts = replace(opts, warnings=opts.warnings + notes)
    if opts.is_sweep or (opts.n or 1) > 1:
        what = "a sweep" if opts.is_sweep else "-n above 1"
        if opts.tools:
            raise UsageError(
                "--tools runs one conversation with your functions and cannot be combined "
                f"with {what}"
            )
        if opts.schema is not None:
            raise UsageError(
                f"--schema parses and checks one answer and cannot be combined with {what} "
                "yet; give each setting its own cell"
            )
    return opts
