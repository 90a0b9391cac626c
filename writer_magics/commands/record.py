"""``python -m writer_magics record NOTEBOOK.ipynb -o class.jsonl``: prepare a class.

Executes the notebook top to bottom in a real kernel (nbclient, ``python3``), in the
notebook's own folder (so a ``writer-magics-class.toml`` beside it applies, exactly as it
will for the students), with the cache switched on and pointed at a fresh file. Every
request the notebook makes is answered by the API (a key from the environment or
``.env``) or by ``--base-url`` and recorded; the replay file then holds exactly those
requests. Students run the same notebook with ``WRITER_MAGICS_REPLAY=class.jsonl``: no
key, no network; a cell a student edited gets the usual one-line replay-miss error.

The notebook itself is not changed. A cell that fails stops the recording and writes
nothing (exit 1), so a half-recorded class never ships. The recording kernel runs under
the same class settings and budget as a student's (a budget too small for the lesson
fails the recording, as it would fail a student working live). The count reported is
of distinct requests: a request the notebook makes twice is recorded once.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from writer_magics import config as settings
from writer_magics.errors import CacheError, RecordError
from writer_magics.transport.cache import REPLAY_VARIABLE, ResponseCache


def kernel_arguments(cache_file: Path) -> list[str]:
    """Command-line config for the kernel: the cache on, in ``cache_file``, no prompt log,
    no model list fetched for Tab completion (only the notebook's own requests are sent)."""
    return [
        "--WriterMagics.cache=True",
        f"--WriterMagics.cache_path={cache_file}",
        "--WriterMagics.log=False",
        "--WriterMagics.fetch_models=False",
    ]


def record(
    notebook: Path,
    out: Path,
    *,
    base_url: str | None = None,
    timeout: float = 120.0,
    kernel: str = "python3",
) -> int:
    """Run ``notebook`` and write its requests' answers to ``out``; returns how many.

    Raises :class:`RecordError` (one line) when the notebook cannot be read or a cell fails.
    """
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError
    except ImportError:
        raise RecordError(
            "record runs the notebook with nbclient: pip install 'writer-magics[demo]'"
        ) from None

    try:
        nb = nbformat.read(notebook, as_version=4)
    except FileNotFoundError:
        raise RecordError(f"{notebook} does not exist") from None
    except Exception as exc:  # nbformat raises several kinds for a bad file
        raise RecordError(f"{notebook} is not a readable notebook: {_first_line(exc)}") from None
    _check_writable(out)  # before the lesson's requests are spent, not after
    env = {k: v for k, v in os.environ.items() if k != REPLAY_VARIABLE}
    if base_url:
        env[settings.BASE_URL_VARIABLE] = base_url
        if not settings.api_key(None, env):  # a local server needs none; the client does
            env[settings.KEY_VARIABLE] = "record"
    with tempfile.TemporaryDirectory(prefix="writer-magics-record-") as folder:
        cache_file = Path(folder) / "recording.jsonl"
        client = NotebookClient(
            nb,
            kernel_name=kernel,
            timeout=timeout,
            startup_timeout=60,
            extra_arguments=kernel_arguments(cache_file),
            resources={"metadata": {"path": str(notebook.resolve().parent)}},
        )
        try:
            client.execute(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except CellTimeoutError:
            raise RecordError(
                f"A cell took longer than {timeout:g} s; nothing was written"
            ) from None
        except CellExecutionError as exc:
            reason = getattr(exc, "ename", "") + ": " + getattr(exc, "evalue", "")
            raise RecordError(
                f"{_failed_cell(nb)} failed ({_first_line_text(reason)}); nothing was written"
            ) from None
        try:
            return ResponseCache(cache_file).export(out)
        except CacheError as exc:
            raise RecordError(exc.message) from None


def _check_writable(out: Path) -> None:
    """Raise RecordError unless ``out`` can be written: its folder exists and is writable,
    and it is not itself a folder."""
    folder = out.parent  # Path("x.jsonl").parent is Path(".")
    if out.is_dir():
        raise RecordError(f"Cannot write {out}: it is a folder; nothing was run")
    if not folder.is_dir():
        raise RecordError(
            f"Cannot write {out}: the folder {folder} does not exist; nothing was run"
        )
    if not os.access(folder, os.W_OK):
        raise RecordError(
            f"Cannot write {out}: the folder {folder} is not writable; nothing was run"
        )


def _failed_cell(nb: Any) -> str:
    """``Cell 4 (%%chat --max-tokens 20)``: the first cell that left an error output."""
    for number, cell in enumerate(nb.cells, start=1):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            first = _first_line_text(str(cell.source))[:60]
            return f"Cell {number} ({first})" if first else f"Cell {number}"
    return "A cell"


def _first_line(exc: BaseException) -> str:
    return _first_line_text(str(exc)) or type(exc).__name__


def _first_line_text(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].strip() if lines else text.strip()


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Exit 0 with ``Recorded N answers ... to PATH``, or 1 with one error line."""
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="python -m writer_magics record",
        description="Run a notebook in a real kernel with the cache on and write the "
        "replay file students use with WRITER_MAGICS_REPLAY (no key, no network).",
    )
    parser.add_argument("notebook", help="the lesson notebook")
    parser.add_argument("-o", "--out", required=True, metavar="FILE", help="replay file to write")
    parser.add_argument(
        "--base-url", default=None, help="API base URL (default: WRITER_BASE_URL or Writer's)"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds per cell (default %(default)s)"
    )
    args = parser.parse_args(argv)
    notebook, target = Path(args.notebook), Path(args.out)
    try:
        count = record(notebook, target, base_url=args.base_url, timeout=args.timeout)
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    beside = target.resolve().parent == notebook.resolve().parent
    shipped = target.name if beside else f"{target} (or ship it beside the notebook)"
    out.write(
        f"Recorded {count} answer{'s' if count != 1 else ''} from {notebook.name} to {target}.\n"
        f"Students run the notebook with {REPLAY_VARIABLE}={shipped}: no key, no network.\n"
    )
    return 0
