"""Where the key and base URL come from, in the official SDK's order.

``WRITER_API_KEY`` / ``WRITER_BASE_URL`` in the environment win; then a ``.env`` file
in the working directory (read with python-dotenv, never written into
``os.environ`` so it cannot override a variable the user set); then the
``WriterMagics`` config. Read at each request, so a key set mid-session just works.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

KEY_VARIABLE = "WRITER_API_KEY"

KEY_VARIABLE = "WRITER_API_KEY"
BASE_URL_VARIABLE = "WRITER_BASE_URL"
DEFAULT_BASE_URL = "https://api.writer.com"


def dotenv_file(cwd: Path | None = None) -> dict[str, str]:
    """The ``.env`` of the working directory (empty when there is none)."""
    path = (cwd or Path.cwd()) / ".env"
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # only when there is a .env to read

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def resolve(
    name: str,
    configured: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str | None:
    """Environment, then ``.env``, then config; empty strings count as unset."""
    env = os.environ if environ is None else environ
    if env.get(name):
        return env[name]
    from_file = dotenv_file(cwd).get(name)
    if from_file:
        return from_file
    return configured or None


def api_key(configured: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    return resolve(KEY_VARIABLE, configured, environ=environ)


def base_url(configured: str | None, environ: Mapping[str, str] | None = None) -> str:
    return resolve(BASE_URL_VARIABLE, configured, environ=environ) or DEFAULT_BASE_URL
