"""Local files: the per-user data directory, the one atomic writer, and the checks on
a file the user names before it is read.

:func:`data_dir` is where the prompt log and the response cache live by default.
:func:`check_readable` / :func:`read_limited` refuse what would hang or fill the kernel
(``--load /dev/zero``, a FIFO, a file of gigabytes) with an :class:`OSError` whose
``strerror`` the callers already turn into their one line.

Every file the magics write for the user (history saves, cache exports and rewrites,
prompt-log exports) goes through :func:`write_atomically`: the text is written to a
temporary file in the same directory, flushed to disk, and moved over the target with
``os.replace``. A full disk or a crash leaves the old file intact, never an empty or
half-written one (POSIX ``rename(2)`` is atomic within one file system).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

APP_NAME = "writer-magics"
#: The most a file the user names (a history, a batch, a cache to import) may hold.
MAX_USER_FILE_BYTES = 256 * 1024 * 1024


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
        os.chmod(temp, _mode_for(target))  # mkstemp makes 0600; a replaced file keeps its own
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _mode_for(target: Path) -> int:
    """The permissions ``open(target, "w")`` would give: the old file's, else 0666 less
    the umask (a replay file shipped to a class must be readable by the class)."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        mask = os.umask(0o022)
        os.umask(mask)
        return 0o666 & ~mask


def data_dir() -> Path:
    """The per-user data directory: platformdirs' answer if installed, else XDG on Linux."""
    try:
        import platformdirs
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / APP_NAME
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def check_readable(path: Path, limit: int | None = MAX_USER_FILE_BYTES) -> int:
    """The size in bytes of ``path``, a regular file of at most ``limit`` bytes (None:
    any size, for a caller with its own size rule).

    Raises :class:`FileNotFoundError` / :class:`OSError` as ``stat`` does, and an
    :class:`OSError` saying why for a device, a pipe or a socket (reading one may never
    end) and for a file over ``limit``.
    """
    found = path.stat()
    if not stat.S_ISREG(found.st_mode):
        kind = "a directory" if stat.S_ISDIR(found.st_mode) else "not a regular file"
        raise OSError(errno.EINVAL, f"{kind}, not read")
    if limit is not None and found.st_size > limit:
        raise OSError(errno.EFBIG, f"over {limit >> 20} MB, not read")
    return found.st_size


def read_limited(path: Path, limit: int = MAX_USER_FILE_BYTES) -> bytes:
    """The bytes of ``path`` after :func:`check_readable` (a file growing while it is read
    is cut off at ``limit`` and refused the same way)."""
    check_readable(path, limit)
    with path.open("rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"over {limit >> 20} MB, not read")
    return data
