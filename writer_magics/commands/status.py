"""``%writer models`` and ``%writer status``: what the key can use, what the next cell does.

Both are shown as one display bundle: ``text/markdown`` for notebooks and a readable
``text/plain`` for terminal IPython (never an object repr). The API key itself is
never shown: status says only where it comes from (the environment, which ``.env``
file, or ``WriterMagics.api_key``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from IPython.core.display_functions import display

from writer_magics import config as settings
from writer_magics.errors import WriterError, one_line, redact
from writer_magics.transport import events as api
from writer_magics.transport.models import KNOWN_MODELS, ModelInfo, fetch_models, is_removed

if TYPE_CHECKING:
    from writer_magics.magics import WriterMagics

#: Longest system prompt shown in the sessions list (characters).
SYSTEM_PREVIEW = 60
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|$~])")


@dataclass(frozen=True)
class Row:
    """One line of a status screen: a label and its value (plain text)."""

    label: str
    value: str
    code: bool = False  # show the value as code in Markdown (paths, URLs, ids)


def md_escape(text: str) -> str:
    """Backslash-escape Markdown (and MathJax ``$``) so text shows as written."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def show(title: str, rows: list[Row], notes: list[str]) -> None:
    """Display rows as a Markdown list with an aligned plain-text twin."""
    width = max((len(r.label) for r in rows), default=0)
    plain = [title, *(f"  {r.label.ljust(width)}  {r.value}" for r in rows), *notes]
    md = [f"**{md_escape(title)}**", ""]
    for r in rows:
        value = _md_code(r.value) if r.code else md_escape(r.value)
        md.append(f"- **{md_escape(r.label)}**: {value}")
    if notes:
        md.append("")
        md.extend(f"> {md_escape(n)}  " for n in notes)
    display({"text/markdown": "\n".join(md), "text/plain": "\n".join(plain)}, raw=True)


# --------------------------------------------------------------------------- models


def removed_in_settings(magics: WriterMagics) -> list[str]:
    """One migration note per setting that still names a removed model."""
    notes = []
    for name in sorted(magics.traits(config=True)):
        value = getattr(magics, name)
        if isinstance(value, str) and is_removed(value) and name != "api_key":
            warning = api.removed_model_warning(value) or f"{value} was removed."
            notes.append(f"WriterMagics.{name} = {value!r}: {warning}")
    return notes


def model_rows(
    models: list[ModelInfo], configured: str
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(id, name, marks) for every model still available, and notes on the rest."""
    rows, notes = [], []
    for m in models:
        if is_removed(m.id):
            notes.append(f"The server still lists {m.id}: {api.removed_model_warning(m.id)}")
            continue
        marks = []
        if m.id == api.DEFAULT_MODEL:
            marks.append("default")
        if m.id == configured:
            marks.append("configured (WriterMagics.model)")
        rows.append((m.id, m.name, ", ".join(marks)))
    ids = {m.id for m in models}
    if configured not in ids and not is_removed(configured):
        notes.append(f"WriterMagics.model = {configured!r} is not in this list.")
    return rows, notes


def run_models(magics: WriterMagics) -> None:
    """``%writer models``: GET /v1/models now and show id, name and marks.

    Replay mode sends nothing and shows the known list. Errors are the client's
    one-line WriterErrors (no key, 401, offline).
    """
    from writer_magics.transport.cache import replay_path

    replaying = replay_path() or magics.replay
    if replaying:
        models, source = list(KNOWN_MODELS), "known list (replay mode: nothing is sent)"
    else:
        client = magics.client()
        try:
            models = magics.loop.run(lambda: fetch_models(client, timeout=magics.read_timeout))
        except WriterError as error:
            raise _one_line(error) from None
        magics.models.remember(models)
        source = f"GET {client.settings.base_url.rstrip('/')}/v1/models"
    rows, notes = model_rows(models, magics.model)
    notes = [*notes, *removed_in_settings(magics)]
    header = ("model", "name", "")
    width = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    plain = [f"Models ({source}):"]
    plain += [f"  {a.ljust(width[0])}  {b.ljust(width[1])}  {c}".rstrip() for a, b, c in rows]
    plain += notes
    md = [
        f"**Models** ({md_escape(source)})",
        "",
        "| model | name | |",
        "|---|---|---|",
        *(f"| {_md_code(a)} | {md_escape(b)} | {md_escape(c)} |" for a, b, c in rows),
    ]
    if notes:
        md += ["", *(f"> {md_escape(n)}  " for n in notes)]
    display({"text/markdown": "\n".join(md), "text/plain": "\n".join(plain)}, raw=True)


def _one_line(error: WriterError) -> WriterError:
    """The error with its hint folded into the one line ``%writer models`` shows."""
    if error.hint:
        error.args = (f"{error.message} {error.hint}", *error.args[1:])
        error.hint = None
    return error


# --------------------------------------------------------------------------- status


def source_of(variable: str, configured: str, trait: str, cwd: Path | None = None) -> str:
    """Where ``settings.resolve`` takes the value from (the same order), never the value."""
    if os.environ.get(variable):
        return f"{variable} in the environment"
    dotenv = (cwd or Path.cwd()) / ".env"
    try:
        if settings.dotenv_file(cwd).get(variable):
            return f"{variable} in {dotenv}"
    except (OSError, ValueError) as exc:
        return f"unreadable {dotenv} ({one_line(exc)})"
    if configured:
        return f"WriterMagics.{trait}"
    return ""


def _size(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError:
        return "no file yet"
    if size < 1024:
        return f"{size} bytes"
    scaled = float(size)
    for unit in ("KB", "MB"):
        scaled /= 1024
        if scaled < 1024:
            return f"{scaled:.1f} {unit}"
    return f"{scaled / 1024:.1f} GB"


def _shorten(text: str, limit: int = SYSTEM_PREVIEW) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _changed_settings(magics: WriterMagics) -> list[str]:
    shown = []
    for name in sorted(magics.traits(config=True)):
        if name in ("model", "base_url", "api_key"):
            continue
        value, default = getattr(magics, name), magics.trait_defaults(name)
        if value != default:
            shown.append(f"{name} = {value!r}")
    return shown


def _store_rows(magics: WriterMagics, secrets: list[str | None]) -> list[Row]:
    from writer_magics.transport.cache import replay_path

    rows = []
    settings_now = magics._send_settings(use_cache=False)
    replaying = settings_now.replay_path is not None
    try:
        info = magics.sender.cache(magics._send_settings(use_cache=True)).info()
        skipped = f", {info.skipped} unreadable lines skipped" if info.skipped else ""
        what = f"{info.path}: {info.entries} answers, {_size(info.path)}{skipped}"
    except (WriterError, OSError) as exc:
        what = redact(one_line(exc), secrets)
    if replaying:
        origin = "WRITER_MAGICS_REPLAY" if replay_path() else "WriterMagics.replay"
        rows.append(Row("Replay", f"on ({origin}), {what}; nothing is sent, misses fail"))
    elif settings_now.use_cache:
        rows.append(Row("Cache", f"on for every cell, {what}"))
    else:
        rows.append(Row("Cache", f"off (per cell with --cache), {what}"))
    log = magics.sender.prompt_log(settings_now)
    if log is None:
        rows.append(Row("Prompt log", "off (WriterMagics.log = False)"))
    else:
        try:
            entries = f"{len(log)} entries, {_size(log.path)}"
        except (WriterError, OSError) as exc:
            entries = redact(one_line(exc), secrets)
        rows.append(Row("Prompt log", f"{log.path}: {entries}"))
    return rows


def _session_rows(magics: WriterMagics, secrets: list[str | None]) -> list[Row]:
    rows = []
    for name in magics.sessions.names():
        conv = magics.sessions[name]
        turns = len(conv)
        text = f"{turns} turn{'s' if turns != 1 else ''}"
        if conv.system:
            text += f", system: {redact(_shorten(conv.system), secrets)!r}"
        rows.append(Row(f"Session {name}", text))
    if not rows:
        rows.append(Row("Sessions", "none yet (the first %%chat starts 'default')"))
    return rows


def status_rows(magics: WriterMagics) -> tuple[list[Row], list[str]]:
    """Every row of ``%writer status`` and the notes under it (pure reads, no request)."""
    secrets = magics._secrets()
    url = settings.base_url(magics.base_url or None)
    url_from = source_of(settings.BASE_URL_VARIABLE, magics.base_url, "base_url")
    key_from = source_of(settings.KEY_VARIABLE, magics.api_key, "api_key")
    from writer_magics.transport.cache import replay_path

    replaying = bool(replay_path() or magics.replay)
    if replaying:
        next_cell = "answers from the replay file only (no key, no network)"
    elif not key_from:
        next_cell = "fails: no API key (set WRITER_API_KEY, a .env file or WriterMagics.api_key)"
    else:
        streaming = "streaming" if magics.stream else "not streaming"
        next_cell = f"sends to {url.rstrip('/')}/v1/chat with {magics.model}, {streaming}"
    default = (
        " (default)" if magics.model == api.DEFAULT_MODEL else f" (default {api.DEFAULT_MODEL})"
    )
    fetched = magics.models.fetched()
    if fetched is not None:
        models = f"{len(fetched)} from GET /v1/models (used by Tab completion)"
    elif (failed := magics.models.failure()) is not None:
        models = f"known list (GET /v1/models failed: {one_line(failed)})"
    elif not magics.fetch_models:
        models = "known list (WriterMagics.fetch_models = False)"
    else:
        models = "known list (the server's list has not arrived)"
    rows = [
        Row("Next cell", next_cell),
        Row("Base URL", f"{url} (from {url_from or 'the default'})"),
        Row("API key", f"set, from {key_from}" if key_from else "missing"),
        Row("Model", f"{magics.model}{default}"),
        Row("Model list", models),
        Row("Changed settings", ", ".join(_changed_settings(magics)) or "none"),
        *_store_rows(magics, secrets),
        *_session_rows(magics, secrets),
    ]
    rows = [Row(r.label, redact(r.value, secrets), r.code) for r in rows]
    return rows, removed_in_settings(magics)


def run_status(magics: WriterMagics) -> None:
    """``%writer status``: one screen on what the next cell will do."""
    rows, notes = status_rows(magics)
    show("Writer magics status", rows, notes)
