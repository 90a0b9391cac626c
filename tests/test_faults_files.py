"""Issue 12 §4, every damaged-file fault class in one walk: whatever is wrong with the
cache or the prompt log, each cell shows at most a few lines and no traceback, the key
appears in no output and no file written, and the next cell still answers.

A real shell against the bundled server on 127.0.0.1; a Python tool returns the key, so
the next round's request (kept by the cache and the log) carries it, and a warning, an
error or a file that kept it would be caught.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from tests.conftest import API_KEY
from writer_magics.server import ServerHandle

DEEP = "[" * 50_000 + "]" * 50_000


def _cache_with(*lines: bytes) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        path = folder / "cache.jsonl"
        path.write_bytes(b'{"format":"writer-magics-cache","version":1}\n' + b"".join(lines))

    return make


def _not_a_cache(folder: Path) -> None:
    (folder / "cache.jsonl").write_text("my notes, not a cache\n", encoding="utf-8")


def _directory(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).mkdir()


def _torn_log(folder: Path) -> None:
    (folder / "log.sqlite3").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)


def _newer_log(folder: Path) -> None:
    with sqlite3.connect(folder / "log.sqlite3") as db:
        db.execute("PRAGMA user_version = 99")


FAULTS: dict[str, Callable[[Path], None]] = {
    "cache-bad-utf8": _cache_with(b'{"endpoint": "chat", "body": {"m": "\xff\xfe"}}\n'),
    "cache-deep-json": _cache_with(DEEP.encode() + b"\n"),
    "cache-torn-line": _cache_with(b'{"endpoint": "chat", "bo'),
    "cache-not-a-cache": _not_a_cache,
    "cache-is-a-directory": _directory("cache.jsonl"),
    "log-torn": _torn_log,
    "log-newer-schema": _newer_log,
    "log-is-a-directory": _directory("log.sqlite3"),
}

#: A tool whose result holds the key: it travels in the next round's request body, which
#: the cache and the prompt log keep. (A prompt holding the key itself is refused.)
LOOKUP = (
    "def lookup(name: str) -> str:\n"
    "    'Look a name up.'\n"
    "    import os\n"
    "    return 'found ' + os.environ['WRITER_API_KEY']"
)

CELLS = [
    "%%chat --tools lookup --cache --new -o a\nUse lookup for Ada please",
    "%%chat --tools lookup --cache --new -o b\nUse lookup for Ada please",
    "%writer cache --info",
    "%writer cache --export {folder}/out.jsonl",
    "%writer log -n 3",
    "%writer log --export {folder}/log.jsonl",
    "%writer cache --clear",
    "%%chat --new -o c\nStill working?",
]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_every_damaged_file_fault(
    fault: str, shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    FAULTS[fault](folder)
    shell.run_line_magic("config", f"WriterMagics.cache_path = {str(folder / 'cache.jsonl')!r}")
    shell.run_line_magic("config", f"WriterMagics.log_path = {str(folder / 'log.sqlite3')!r}")
    shell.run_cell(LOOKUP)
    for cell in CELLS:
        with capture_output() as captured:
            result = shell.run_cell(cell.format(folder=folder))
        shown = [captured.stdout, captured.stderr]
        for output in captured.outputs:
            shown.extend(str(v) for v in output.data.values() if not str(v).startswith("|"))
        told = [captured.stderr]  # warnings and errors: never the key
        if result.error_in_exec is not None:
            render = getattr(result.error_in_exec, "_render_traceback_", None)
            assert render is not None, f"{cell!r}: {result.error_in_exec!r}"
            told.extend(render())
        text = "\n".join(shown + told[1:])
        assert "Traceback" not in text, (cell, text)
        assert API_KEY not in "\n".join(told), (cell, told)
        if not cell.startswith("%%chat"):
            assert len([line for line in text.splitlines() if line.strip()]) <= 3, (cell, text)
        else:
            assert result.success, (cell, text)
            warnings = [w for w in captured.stderr.splitlines() if w.strip()]
            assert len(warnings) <= 2, (cell, warnings)
    assert shell.user_ns["c"].text  # the next cell works
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
