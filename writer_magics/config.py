"""Settings: where the key and base URL come from (the official SDK's order), what a key
may be, and the model defaults (:data:`DEFAULT_MODEL`, :data:`REMOVED_MODELS`).

A value set explicitly on ``WriterMagics`` (``%config WriterMagics.base_url = ...``,
``ipython_config.py``, or assigning the trait) wins: the user said it last and in this
kernel. Left unset (blank), ``WRITER_API_KEY`` / ``WRITER_BASE_URL`` in the environment
come next; then the nearest ``.env`` file, found the way python-dotenv's
``find_dotenv(usecwd=True)`` finds it (the working directory, then each parent up to
the root; read with python-dotenv, never written into ``os.environ`` so it cannot
override a variable the user set). Read at each request, so a key set mid-session (or an
``os.chdir`` into a subfolder) just works. Every value has surrounding whitespace
stripped, and each lookup says where the value came from, for the error messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from writer_magics.errors import ConfigurationError

DEFAULT_MODEL = "palmyra-x5"
#: Models Writer removed, with the day; every one is replaced by palmyra-x5.
REMOVED_MODELS: Mapping[str, date] = {
    name: date(2026, 7, 13)
    for name in (
        "palmyra-x-003-instruct",
        "palmyra-vision",
        "palmyra-med",
        "palmyra-fin",
        "palmyra-creative",
    )
}


def removed_model_warning(model: str, today: date | None = None) -> str | None:
    """The migration hint for a removed (or soon removed) model; None for a current one."""
    removed = REMOVED_MODELS.get(model.lower())
    if removed is None:
        return None
    when = "was removed" if (today or date.today()) >= removed else "will be removed"
    extra = (
        " with image content parts (%%chat --image)" if model.lower() == "palmyra-vision" else ""
    )
    return f"{model} {when} on {removed.isoformat()}; use {DEFAULT_MODEL}{extra} instead."


KEY_VARIABLE = "WRITER_API_KEY"
BASE_URL_VARIABLE = "WRITER_BASE_URL"
DEFAULT_BASE_URL = "https://api.writer.com"
#: Where a setting came from when it was set with ``%config`` (or ipython_config.py).
CONFIG_SOURCE = "%config WriterMagics.{name}"


class Secret(str):
    """A string whose repr never shows it: the key as ``%config WriterMagics.api_key`` holds it.

    It is the key everywhere it is used (``f"Bearer {key}"``, comparisons); only
    ``repr`` (what IPython's ``Out[]``, ``%config`` and the trait help print) hides it.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'[REDACTED]'" if self else "''"


@dataclass(frozen=True)
class Found:
    """A setting's value (stripped; ``None`` when unset) and where it came from.

    ``source`` names the place for people: ``"the WRITER_API_KEY environment variable"``,
    the ``.env`` file's path, or ``"%config WriterMagics.api_key"``; for an unset value
    it lists the places that were looked at.
    """

    value: str | None
    source: str

    def __repr__(self) -> str:
        return f"Found(value=<{'set' if self.value else 'missing'}>, source={self.source!r})"


def dotenv_path() -> Path | None:
    """The ``.env`` python-dotenv's ``find_dotenv(usecwd=True)`` finds, or ``None``."""
    from dotenv import find_dotenv

    try:
        found = find_dotenv(usecwd=True)
    except OSError:  # the working directory was deleted
        return None
    return Path(found) if found else None


def dotenv_file(path: Path | None = None) -> dict[str, str]:
    """The variables of ``path`` (default: the nearest ``.env``); empty when there is none.

    Raises :class:`ConfigurationError` (one line naming the file) when it cannot be read.
    """
    path = path if path is not None else dotenv_path()
    if path is None:
        return {}
    from dotenv import dotenv_values

    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = type(exc).__name__ if isinstance(exc, UnicodeDecodeError) else exc.strerror
        raise ConfigurationError(
            f"Could not read {path} ({reason or 'unreadable'}).",
            hint="Fix or remove that .env file, or set WRITER_API_KEY in the environment.",
        ) from None
    return {k: v for k, v in values.items() if v is not None}


def find(name: str, configured: str | None, *, environ: Mapping[str, str] | None = None) -> Found:
    """``%config`` (``configured``), then the environment, then the nearest ``.env``;
    blank values count as unset."""
    config = CONFIG_SOURCE.format(name=_trait(name))
    value = (configured or "").strip()
    if value:
        return Found(value, config)
    env = os.environ if environ is None else environ
    value = env.get(name, "").strip()
    if value:
        return Found(value, f"the {name} environment variable")
    path = dotenv_path()
    value = dotenv_file(path).get(name, "").strip() if path is not None else ""
    if value and path is not None:
        return Found(value, str(path))
    where = f"{path} (no {name} in it)" if path is not None else "no .env in this folder or above"
    return Found(None, f"{config}, the {name} environment variable, {where}")


def resolve(
    name: str, configured: str | None, *, environ: Mapping[str, str] | None = None
) -> str | None:
    """Just the value of :func:`find`."""
    return find(name, configured, environ=environ).value


def api_key(configured: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    return resolve(KEY_VARIABLE, configured, environ=environ)


def base_url(configured: str | None, environ: Mapping[str, str] | None = None) -> str:
    return resolve(BASE_URL_VARIABLE, configured, environ=environ) or DEFAULT_BASE_URL


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot go in an ``Authorization`` header, without showing it; else None.

    A header value must be printable ASCII; a key has no inner whitespace either.
    Surrounding whitespace is stripped before this check (see :func:`find`).
    """
    for position, char in enumerate(key, start=1):
        if char.isspace():
            kind = "a line break" if char in "\r\n\v\f\x85\u2028\u2029" else "whitespace"
        elif not char.isascii():
            kind = "a non-ASCII character"
        elif not char.isprintable():
            kind = "a control character"
        else:
            continue
        return f"{kind} at position {position} of {len(key)}"
    return None


def _trait(variable: str) -> str:
    return {KEY_VARIABLE: "api_key", BASE_URL_VARIABLE: "base_url"}.get(variable, variable)
