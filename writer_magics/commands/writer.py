"""``%writer``: look after the prompt log and the answer cache from a notebook.

::

    %writer log [-n 20] [--search TEXT]     recent requests as a table
    %writer log --export PATH               the whole log as JSON Lines
    %writer cache --info                    where the cache is and what it holds
    %writer cache --export PATH             a cache file to ship with a notebook
    %writer cache --import PATH             merge a shipped cache file in
    %writer cache --clear                   forget every cached answer
    %writer models                          the models the key can use (GET /v1/models)
    %writer status                          what the next cell will do (see status.py)

Plain functions: the magic only passes its line, log and cache. Bad input is one
``UsageError`` line; file problems are the modules' own one-line errors.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import NoReturn

from IPython.core.error import UsageError

from writer_magics.answer.preview import preview
from writer_magics.answer.promptlog import LogEntry, PromptLog
from writer_magics.line.scan import split_words
from writer_magics.transport.cache import ResponseCache, unreadable

USAGE = (
    "%writer log [-n N] [--search TEXT] | log --export PATH | "
    "cache --info | --export PATH | --import PATH | --clear | models | status | help"
)


class _Parser(argparse.ArgumentParser):
    """argparse that raises one UsageError line instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%writer: {message}. Usage: {USAGE}")


def _parser() -> _Parser:
    parser = _Parser(prog="%writer", add_help=False)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    log = commands.add_parser("log", add_help=False)
    log.add_argument("-n", type=int, default=20)
    log.add_argument("--search", default=None)
    log.add_argument("--export", metavar="PATH", default=None)
    cache = commands.add_parser("cache", add_help=False)
    action = cache.add_mutually_exclusive_group(required=True)
    action.add_argument("--info", action="store_true")
    action.add_argument("--export", metavar="PATH")
    action.add_argument("--import", dest="import_", metavar="PATH")
    action.add_argument("--clear", action="store_true")
    commands.add_parser("models", add_help=False)
    commands.add_parser("status", add_help=False)
    return parser


#: The ``%writer`` parser (Tab completion reads its subcommands and options).
writer_parser = _parser


def run_writer_command(
    line: str,
    *,
    log: PromptLog | None,
    cache: ResponseCache,
    commands: Mapping[str, Callable[[], None]] | None = None,
) -> None:
    """Parse and run one ``%writer`` line; prints or displays what it did.

    ``commands`` runs the subcommands that need the magics (``models``, ``status``).
    """
    words = split_words(line, "%writer")  # quotes as on the %chat line, curly ones too
    if not words or words[0] in ("help", "-h", "--help"):
        print(f"Usage: {USAGE}")
        return
    args = _parser().parse_args(words)
    if commands is not None and args.command in commands:
        commands[args.command]()
    elif args.command in ("models", "status"):
        raise UsageError(f"%writer {args.command} needs the loaded extension.")
    elif args.command == "log":
        if log is None:
            raise UsageError("%writer log: the prompt log is off (WriterMagics.log = False).")
        if args.export is not None:
            count = log.export_jsonl(args.export)
            print(f"Exported {count} log entries to {args.export}")
        elif args.n < 1:
            raise UsageError("%writer log: -n must be at least 1.")
        else:
            show_entries(log.recent(args.n, args.search))
    elif args.info:
        info = cache.info()
        mode = " (replay, read-only)" if info.read_only else ""
        skipped = f", skipped {unreadable(info.skipped)}" if info.skipped else ""
        answers = "1 answer" if info.entries == 1 else f"{info.entries} answers"
        print(f"Cache {info.path}{mode}: {answers}, {info.size:,} bytes{skipped}")
    elif args.export is not None:
        count = cache.export(args.export)
        skipped = f" (skipped {unreadable(cache.skipped)})" if cache.skipped else ""
        print(f"Exported {count} cached answers to {args.export}{skipped}")
    elif args.import_ is not None:
        count = cache.import_(args.import_)
        print(f"Imported {count} new or changed answers from {args.import_} into {cache.path}")
    else:
        count = cache.clear()
        print(f"Removed {count} cached answers from {cache.path}")


LOG_COLUMNS = ("time", "model", "prompt", "answer", "tokens", "seconds", "status")


def log_rows(entries: list[LogEntry]) -> list[list[str]]:
    """Short one-line cells for the log table."""
    return [
        [
            e.time[:19].replace("T", " "),
            e.model,
            preview(e.prompt_text, 40),
            preview(e.error if e.error and not e.answer else e.answer, 50),
            "" if e.total_tokens is None else str(e.total_tokens),
            "" if e.total_time is None else f"{e.total_time:.2f}",
            e.status,
        ]
        for e in entries
    ]


def show_entries(entries: list[LogEntry]) -> None:
    """Display the entries as Markdown (HTML-free) with a plain-text fallback."""
    if not entries:
        print("No log entries.")
        return
    rows = log_rows(entries)

    from writer_magics.display.finish import show_markdown

    def md(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    markdown = "\n".join([md(list(LOG_COLUMNS)), md(["---"] * len(LOG_COLUMNS)), *map(md, rows)])
    plain = "\n".join(" · ".join(c for c in row if c) for row in rows)
    show_markdown(markdown, plain)
