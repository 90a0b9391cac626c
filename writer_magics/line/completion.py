"""Tab completion on the ``%%chat``, ``%chat``, ``%%complete``, ``%complete`` and
``%writer`` lines, through IPython's completer API (a custom "v2" matcher).

What is offered where the cursor is (never in a cell body, never in a line-form
prompt, i.e. after the first word that is not an option):

* an option name (``--ses`` -> ``--session``; ``-`` -> every option of that magic),
  taken from the magic's own argparse parser (the option table in ``table.py``);
  options that cannot be repeated and are already on the line are left out;
* after ``-m/--model``: model ids (see :class:`models.ModelCatalog`; never a removed
  model); in a comma list the item after the last comma;
* after ``--session``: existing session names; ``--tools``: functions in the
  namespace (comma lists too); ``--tool-choice``: auto/none/required and the
  ``--tools`` given; ``--schema``: pydantic model classes and dicts; ``--image``:
  image-holding variables and image files; ``--load``/``--save``/``--export``/
  ``--import``: paths;
* ``%writer `` -> its subcommands, then that subcommand's options.

:func:`offer` is pure (line, cursor, sources -> :class:`Offer`); :func:`install`
appends one matcher to ``shell.Completer.custom_matchers`` and :func:`uninstall`
removes it again. Nothing here touches the network or waits: model ids come from
whatever the background fetch already has.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import re
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from writer_magics.line.scan import is_number

MATCHER_ID = "writer_magics.line.completion"
#: Runs before IPython's own matchers and suppresses them when it has matches.
PRIORITY = 100
MAGICS = ("chat", "complete", "writer")
CELL_MAGICS = ("chat", "complete")
#: Long option name -> the kind of value completed after it.
VALUE_KINDS: Mapping[str, str] = {
    "--model": "model",
    "--session": "session",
    "--tools": "tools",
    "--tool-choice": "tool_choice",
    "--schema": "schema",
    "--image": "image",
    "--load": "path",
    "--save": "path",
    "--export": "path",
    "--import": "path",
}
#: Kinds whose value is a comma list; the item after the last comma is completed.
COMMA_KINDS = frozenset({"model", "tools"})
TOOL_CHOICES = ("auto", "none", "required")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
_MAGIC_LINE = re.compile(r"(?P<indent>\s*)(?P<prefix>%%?)(?P<name>\w+)(?=\s)")
_MAX_FILES = 200


@dataclass(frozen=True)
class Sources:
    """Where values come from; every callable must answer at once (no I/O but a listdir)."""

    parsers: Callable[[str], argparse.ArgumentParser]
    """Magic name (chat, complete, writer) -> its argparse parser."""
    models: Callable[[], list[str]] = list
    sessions: Callable[[], list[str]] = list
    namespace: Mapping[str, Any] = field(default_factory=dict)
    hidden: Container[str] = ()
    cwd: Path | None = None


@dataclass(frozen=True)
class Offer:
    """What to offer: ``matches`` replace ``fragment``, the text just before the cursor."""

    fragment: str
    matches: list[str]
    kind: str


@dataclass
class _Words:
    done: list[str]
    current: str  # raw text of the token under the cursor (may start with a quote)


def offer(full_text: str, line: int, column: int, sources: Sources) -> Offer | None:
    """Completions for the cursor at ``column`` of line ``line`` of ``full_text``.

    None when the cursor is not on one of our magic lines, or where the line holds
    prompt text (a cell body, or the words after the options in the line form).
    """
    lines = full_text.split("\n")
    if not 0 <= line < len(lines):
        return None
    text = lines[line]
    before = text[:column]
    found = _MAGIC_LINE.match(text)
    if found is None or found.group("name") not in MAGICS or found.end() > len(before):
        return None
    cell_form = found.group("prefix") == "%%"
    if cell_form and (line != 0 or found.group("indent") or found.group("name") not in CELL_MAGICS):
        return None
    if not cell_form and line != 0 and lines[0].lstrip().startswith("%%"):
        return None  # inside the body of a cell magic: prompt text, not a magic line
    words = _split(before[found.end() :])
    if words is None:
        return None
    name = found.group("name")
    parser = sources.parsers(name)
    if name == "writer":
        return _writer(parser, words, sources)
    return _options(parser, words, sources)


def _split(text: str) -> _Words | None:
    """Shell-like words; the last one is the (possibly empty) word under the cursor."""
    done: list[str] = []
    current: list[str] = []
    raw_start = 0
    quote = ""
    in_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
            else:
                current.append(ch)
        elif ch.isspace():
            if in_word:
                done.append("".join(current))
                current, in_word = [], False
        else:
            if not in_word:
                in_word, raw_start = True, i
            if ch in "'\"":
                quote = ch
            elif ch == "\\" and i + 1 < len(text):
                i += 1
                current.append(text[i])
            else:
                current.append(ch)
        i += 1
    return _Words(done, text[raw_start:] if in_word else "")


def _lookup(parser: argparse.ArgumentParser, word: str) -> tuple[argparse.Action | None, bool]:
    """The option a word names and whether the word already carries its value."""
    name, eq, _ = word.partition("=")
    action = parser._option_string_actions.get(name)
    if action is not None:
        return action, bool(eq)
    if not word.startswith("--") and len(word) > 2:  # -t0.7
        return parser._option_string_actions.get(word[:2]), True
    return None, False


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _long(action: argparse.Action) -> str:
    return action.option_strings[-1]


def _options(parser: argparse.ArgumentParser, words: _Words, sources: Sources) -> Offer | None:
    """Walk the finished words; complete an option name or the value it expects."""
    pending: argparse.Action | None = None
    given: dict[str, list[str]] = {}
    for word in words.done:
        if pending is not None:
            given.setdefault(_long(pending), []).append(word)
            pending = None
            continue
        if word == "--" or not word.startswith("-") or len(word) < 2 or is_number(word):
            return None  # the prompt starts here
        action, has_value = _lookup(parser, word)
        if action is None:
            continue
        given.setdefault(_long(action), [])
        if has_value:
            given[_long(action)].append(word.partition("=")[2] or word[2:])
        elif _takes_value(action):
            pending = action
    current = words.current
    if pending is not None:
        return _value(_long(pending), current, given, sources)
    if current.startswith("--") and "=" in current:
        name, _, value = current.partition("=")
        action = parser._option_string_actions.get(name)
        if action is None or not _takes_value(action):
            return None
        return _value(_long(action), value, given, sources)
    if current and not current.startswith("-"):
        return None  # a prompt word (line form)
    names = []
    for option, action in parser._option_string_actions.items():
        if option in ("-h", "--help") or not option.startswith(current):
            continue
        repeatable = isinstance(action, argparse._AppendAction)
        if _long(action) in given and not repeatable and option != current:
            continue
        names.append(option)
    return Offer(current, sorted(names, key=_option_order), "option") if names else None


def _option_order(option: str) -> tuple[bool, str]:
    return (not option.startswith("--"), option)


def _writer(parser: argparse.ArgumentParser, words: _Words, sources: Sources) -> Offer | None:
    """``%writer``: the subcommand, then that subcommand's options and paths."""
    commands: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands = dict(action.choices)
    if not words.done:
        if words.current.startswith("-"):
            return None
        names = [c for c in [*commands, "help"] if c.startswith(words.current)]
        return Offer(words.current, names, "command") if names else None
    sub = commands.get(words.done[0])
    if sub is None:
        return None
    return _options(sub, _Words(words.done[1:], words.current), sources)


def _value(option: str, raw: str, given: dict[str, list[str]], sources: Sources) -> Offer | None:
    kind = VALUE_KINDS.get(option)
    if kind is None:
        return None
    quoted = raw[:1] in ("'", '"')
    fragment = raw[1:] if quoted else raw
    if any(c in fragment for c in "'\"\\"):
        return None  # quoting in the middle of a word: leave it alone
    earlier: list[str] = []
    if kind in COMMA_KINDS and "," in fragment:
        head, _, fragment = fragment.rpartition(",")
        earlier = head.split(",")
    if kind in ("path", "image"):
        found = _paths(fragment, sources.cwd, images_only=kind == "image", quoted=quoted)
        if kind == "image" and os.sep not in fragment:
            found = [n for n in _image_names(sources) if n.startswith(fragment)] + found
    else:
        candidates = _candidates(kind, given, sources)
        found = [m for m in candidates if m.startswith(fragment) and m not in earlier]
    return Offer(fragment, _unique(found), kind) if found else None


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _candidates(kind: str, given: dict[str, list[str]], sources: Sources) -> list[str]:
    if kind == "model":
        return sources.models()
    if kind == "session":
        return sorted(sources.sessions())
    if kind == "tool_choice":
        tools = [t for value in given.get("--tools", []) for t in value.split(",") if t]
        return [*TOOL_CHOICES, *tools]
    names = _public(sources)
    if kind == "tools":
        return [n for n in names if _safely(_is_tool, sources.namespace[n])]
    if kind == "schema":
        return [n for n in names if _safely(_is_schema, sources.namespace[n])]
    return []


def _public(sources: Sources) -> list[str]:
    return sorted(
        n
        for n in list(sources.namespace)
        if isinstance(n, str)
        and n.isidentifier()
        and not n.startswith("_")
        and n not in sources.hidden
    )


def _safely(test: Callable[[Any], bool], value: Any) -> bool:
    """A namespace object whose attributes raise (lazy proxies) is just not offered."""
    try:
        return test(value)
    except Exception:
        return False


def _is_tool(value: Any) -> bool:
    return callable(value) and not isinstance(value, type) and not inspect.ismodule(value)


def _is_schema(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    return (
        isinstance(value, type)
        and callable(getattr(value, "model_json_schema", None))
        and not (value.__module__ or "").startswith("pydantic")  # BaseModel itself
    )


def _image_names(sources: Sources) -> list[str]:
    return [n for n in _public(sources) if _safely(_holds_image, sources.namespace[n])]


def _holds_image(value: Any) -> bool:
    """PIL images, IPython ``Image`` objects, and bytes that start like an image file."""
    if isinstance(value, type):
        return False
    if isinstance(value, bytes | bytearray):
        head = bytes(value[:12])
        return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    module = type(value).__module__ or ""
    kind = type(value).__name__
    return (module.startswith("PIL.") and kind.endswith("Image")) or (
        module.startswith("IPython.") and kind == "Image"
    )


def _paths(fragment: str, cwd: Path | None, *, images_only: bool, quoted: bool) -> list[str]:
    """Entries of the fragment's folder that start with its last part; folders end in /."""
    folder, _, start = fragment.rpartition(os.sep)
    prefix = folder + os.sep if _ else ""
    base = Path(os.path.expanduser(prefix or "."))
    if not base.is_absolute() and cwd is not None:
        base = cwd / base
    found: list[str] = []
    with contextlib.suppress(OSError), os.scandir(base) as entries:
        for entry in entries:
            if not entry.name.startswith(start):
                continue
            if entry.name.startswith(".") and not start.startswith("."):
                continue
            with contextlib.suppress(OSError):
                is_dir = entry.is_dir()
                suffix = Path(entry.name).suffix.lower()
                if images_only and not is_dir and suffix not in IMAGE_SUFFIXES:
                    continue
                name = prefix + entry.name + (os.sep if is_dir else "")
                if not quoted and any(c.isspace() or c in "'\"\\" for c in name):
                    name = "'" + name.replace("'", "'\"'\"'") + ("" if is_dir else "'")
                found.append(name)
            if len(found) >= _MAX_FILES:
                break
    return sorted(found)


# --------------------------------------------------------------------------- IPython


def make_matcher(sources: Callable[[], Sources]) -> Callable[[Any], dict[str, Any]]:
    """An IPython Matcher API v2 function; ``sources`` gives one kernel's live sources
    (read at each Tab, all in memory)."""
    from IPython.core.completer import SimpleCompletion

    def writer_magics_matcher(context: Any) -> dict[str, Any]:
        try:
            found = offer(
                context.full_text,
                context.cursor_line,
                context.cursor_position,
                sources(),
            )
        except Exception:  # IPython would print a traceback into the notebook on Tab
            found = None
        if found is None:
            return {"completions": [], "suppress": False}
        return {
            "completions": [SimpleCompletion(m, type=found.kind) for m in found.matches],
            "matched_fragment": found.fragment,
            "suppress": True,
            "ordered": True,
        }

    matcher: Any = writer_magics_matcher
    matcher.matcher_api_version = 2
    matcher.matcher_priority = PRIORITY
    matcher.matcher_identifier = MATCHER_ID
    return writer_magics_matcher


def install(shell: Any, sources: Callable[[], Sources]) -> Callable[[Any], dict[str, Any]] | None:
    """Append the matcher to the shell's completer; returns it for :func:`uninstall`."""
    completer = getattr(shell, "Completer", None)
    if completer is None:
        return None
    matcher = make_matcher(sources)
    completer.custom_matchers.append(matcher)
    return matcher


def uninstall(shell: Any, matcher: Callable[[Any], dict[str, Any]] | None) -> None:
    """Remove exactly the matcher :func:`install` added (other matchers stay)."""
    completer = getattr(shell, "Completer", None)
    if completer is None or matcher is None:
        return
    with contextlib.suppress(ValueError):
        completer.custom_matchers.remove(matcher)
