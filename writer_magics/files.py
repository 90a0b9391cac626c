"""Local files: the per-user data directory and the one atomic writer.

:func:`data_dir` is where the prompt log and the response cache live by default.

Every file the magics write for the user (history saves, cache exports and rewrites,
prompt-log exports) goes through :func:`write_atomically`: the text is written to a
temporary file in the same directory, flushed to disk, and moved over the target with
``os.replace``. A full disk or a crash leaves the old file intact, never an empty or
half-written one (POSIX ``rename(2)`` is atomic within one file system).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

APP_NAME = "writer-magics"


def write_atomically(target: Path, text: str, *, parents: bool = False) -> None:
    """Replace ``target`` with ``text`` (UTF-8) in one step.

    ``parents=True`` makes missing directories first (the data dir); a user's own
    path must already exist, as with ``open(path, "w")``.

    Raises :class:`OSError` (with the temporary file removed) when the directory cannot
    be made or written; callers turn it into their own one-line error.
    """
    if parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def data_dir() -> Path:
    """The per-user data directory: platformdirs' answer if installed, else XDG on Linux."""
    try:
        import platformdirs
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / APP_NAME
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
