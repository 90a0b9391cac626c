"""``%writer models`` and ``%writer status``: what the key can use, what the next cell does.

Both are shown as one display bundle: ``text/markdown`` for notebooks and a readable
``text/plain`` for terminal IPython (never an object repr). The API key itself is
never shown: status says only where it comes from (the environment, which ``.env``
file, or ``%config WriterMagics.api_key``, which wins when set).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.display_functions import display

from writer_magics import config
from writer_magics.answer.history import Sessions
from writer_magics.answer.preview import preview
from writer_magics.config import DEFAULT_MODEL, removed_model_warning
from writer_magics.errors import WriterError, one_line, redact
from writer_magics.transport.models import (
    FETCH_VARIABLE,
    KNOWN_MODELS,
    ModelCatalog,
    ModelInfo,
    fetch_default,
    fetch_models,
    is_removed,
)

if TYPE_CHECKING:
    from writer_magics.answer.promptlog import PromptLog
    from writer_magics.transport.cache import CacheInfo
    from writer_magics.transport.client import WriterClient
    from writer_magics.transport.loop import LoopThread

#: Longest system prompt shown in the sessions list (characters).
SYSTEM_PREVIEW = 60
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|$~])")


@dataclass(frozen=True)
class Row:
    """One line of a status screen: a label and its value (plain text)."""

    label: str
    value: str
    code: bool = False  # show the value as code in Markdown (paths, URLs, ids)


@dataclass(frozen=True)
class Snapshot:
    """What ``%writer status`` and ``%writer models`` read from one kernel, taken when
    the line runs (the magics build it; nothing here imports them).

    The callables are asked only when a row needs them, and each may raise a
    one-line WriterError or OSError (shown in the row, or as the line's error).
    """

    settings: Mapping[str, Any]
    """Every configurable ``WriterMagics`` setting (name -> current value)."""
    defaults: Mapping[str, Any]
    """The same names -> their defaults."""
    sessions: Sessions
    catalog: ModelCatalog
    secrets: list[str | None]
    """The API key as configured (raw and stripped): redacted from every row."""
    replaying: bool
    """A replay file is set (``WRITER_MAGICS_REPLAY`` or ``WriterMagics.replay``)."""
    cache_on: bool
    """Every cell uses the cache (``WriterMagics.cache``)."""
    cache_info: Callable[[], CacheInfo]
    prompt_log: Callable[[], PromptLog | None]
    client: Callable[[], WriterClient]
    loop: LoopThread
    pinned_model: tuple[str, str] | None = None
    """A class file's model and how the file is named (None: the model is not pinned)."""
    teaching: Callable[[], list[str]] = list
    """The ``budget: ...`` and ``class settings: ...`` lines (budget used and left, the
    class file and its pins); each a row."""


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


def removed_in_settings(snapshot: Snapshot) -> list[str]:
    """One migration note per setting that still names a removed model."""
    notes = []
    for name in sorted(snapshot.settings):
        value = snapshot.settings[name]
        if isinstance(value, str) and is_removed(value) and name != "api_key":
            warning = removed_model_warning(value) or f"{value} was removed."
            notes.append(f"WriterMagics.{name} = {value!r}: {warning}")
    return notes


def model_rows(
    models: list[ModelInfo], configured: str
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(id, name, marks) for every model still available, and notes on the rest."""
    rows, notes = [], []
    for m in models:
        if is_removed(m.id):
            notes.append(f"The server still lists {m.id}: {removed_model_warning(m.id)}")
            continue
        marks = []
        if m.id == DEFAULT_MODEL:
            marks.append("default")
        if m.id == configured:
            marks.append("configured (WriterMagics.model)")
        rows.append((m.id, m.name, ", ".join(marks)))
    ids = {m.id for m in models}
    if configured not in ids and not is_removed(configured):
        notes.append(f"WriterMagics.model = {configured!r} is not in this list.")
    return rows, notes


def run_models(snapshot: Snapshot) -> None:
    """``%writer models``: GET /v1/models now and show id, name and marks.

    Replay mode sends nothing and shows the known list. Errors are the client's
    one-line WriterErrors (no key, 401, offline).
    """
    if snapshot.replaying:
        models, source = list(KNOWN_MODELS), "known list (replay mode: nothing is sent)"
    else:
        client = snapshot.client()
        timeout = snapshot.settings["read_timeout"]
        try:
            models = snapshot.loop.run(lambda: fetch_models(client, timeout=timeout))
        except WriterError as error:
            raise error.hint_inline() from None
        snapshot.catalog.remember(models)
        source = f"GET {client.settings.base_url.rstrip('/')}/v1/models"
    rows, notes = model_rows(models, snapshot.settings["model"])
    notes = [*notes, *removed_in_settings(snapshot)]
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


# --------------------------------------------------------------------------- status


def source_of(variable: str, configured: str, trait: str) -> str:
    """Where ``config.find`` takes the value from (the same order), never the value:
    ``%config`` first, then the environment, then the nearest ``.env``; "" when unset."""
    if configured.strip():
        return f"%config WriterMagics.{trait}"
    if os.environ.get(variable, "").strip():
        return f"{variable} in the environment"
    dotenv = config.dotenv_path()
    try:
        if dotenv is not None and config.dotenv_file(dotenv).get(variable, "").strip():
            return f"{variable} in {dotenv}"
    except (OSError, ValueError) as exc:
        return f"unreadable {dotenv} ({one_line(exc)})"
    return ""


def fetch_source(value: bool) -> str:
    """Where ``WriterMagics.fetch_models`` comes from: ``%config`` when it differs from
    what the environment gives, else ``WRITER_MAGICS_FETCH_MODELS`` or the default."""
    if value != fetch_default():
        return "%config WriterMagics.fetch_models"
    if os.environ.get(FETCH_VARIABLE, "").strip():
        return f"{FETCH_VARIABLE} in the environment"
    return "the default"


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


def _changed_settings(snapshot: Snapshot) -> list[str]:
    shown = []
    for name in sorted(snapshot.settings):
        if name in ("model", "base_url", "api_key", "fetch_models"):
            continue
        value, default = snapshot.settings[name], snapshot.defaults[name]
        if value != default:
            shown.append(f"{name} = {value!r}")
    return shown


def _store_rows(snapshot: Snapshot, secrets: list[str | None]) -> list[Row]:
    from writer_magics.transport.cache import replay_path

    rows = []
    try:
        info = snapshot.cache_info()
        skipped = f", {info.skipped} unreadable lines skipped" if info.skipped else ""
        what = f"{info.path}: {info.entries} answers, {_size(info.path)}{skipped}"
    except (WriterError, OSError) as exc:
        what = redact(one_line(exc), secrets)
    if snapshot.replaying:
        origin = (
            "%config WriterMagics.replay"
            if snapshot.settings.get("replay")
            else "WRITER_MAGICS_REPLAY in the environment"
            if replay_path()
            else "WriterMagics.replay"
        )
        rows.append(Row("Replay", f"on ({origin}), {what}; nothing is sent, misses fail"))
    elif snapshot.cache_on:
        rows.append(Row("Cache", f"on for every cell, {what}"))
    else:
        rows.append(Row("Cache", f"off (per cell with --cache), {what}"))
    log = snapshot.prompt_log()
    if log is None:
        rows.append(Row("Prompt log", "off (WriterMagics.log = False)"))
    else:
        try:
            entries = f"{len(log)} entries, {_size(log.path)}"
        except (WriterError, OSError) as exc:
            entries = redact(one_line(exc), secrets)
        rows.append(Row("Prompt log", f"{log.path}: {entries}"))
    return rows


def _session_rows(sessions: Sessions, secrets: list[str | None]) -> list[Row]:
    rows = []
    for name, conv in sessions.items():
        turns = len(conv)
        text = f"{turns} turn{'s' if turns != 1 else ''}"
        if conv.system:
            text += f", system: {redact(preview(conv.system, SYSTEM_PREVIEW), secrets)!r}"
        rows.append(Row(f"Session {name}", text))
    if not rows:
        rows.append(Row("Sessions", "none yet (the first %%chat starts 'default')"))
    return rows


def _teaching_rows(snapshot: Snapshot) -> list[Row]:
    """``Budget`` (used and left) and ``Class settings`` (the file and its pins)."""
    rows = []
    for line in snapshot.teaching():
        label, _, value = line.partition(": ")
        rows.append(Row(label[:1].upper() + label[1:], value))
    return rows


def status_rows(snapshot: Snapshot) -> tuple[list[Row], list[str]]:
    """Every row of ``%writer status`` and the notes under it (pure reads, no request)."""
    secrets = snapshot.secrets
    now = snapshot.settings
    url = config.base_url(now["base_url"] or None)
    url_from = source_of(config.BASE_URL_VARIABLE, now["base_url"], "base_url")
    key_from = source_of(config.KEY_VARIABLE, now["api_key"], "api_key")
    model, pinned = now["model"], ""
    if snapshot.pinned_model is not None:
        model, shown = snapshot.pinned_model
        pinned = f" (pinned by {shown})"
    if snapshot.replaying:
        next_cell = "answers from the replay file only (no key, no network)"
    elif not key_from:
        next_cell = "fails: no API key (set WRITER_API_KEY, a .env file or WriterMagics.api_key)"
    else:
        streaming = "streaming" if now["stream"] else "not streaming"
        next_cell = f"sends to {url.rstrip('/')}/v1/chat with {model}, {streaming}"
    default = pinned or (" (default)" if model == DEFAULT_MODEL else f" (default {DEFAULT_MODEL})")
    fetched = snapshot.catalog.fetched()
    if fetched is not None:
        models = f"{len(fetched)} from GET /v1/models (used by Tab completion)"
    elif (failed := snapshot.catalog.failure()) is not None:
        models = f"known list (GET /v1/models failed: {one_line(failed)})"
    elif not now["fetch_models"]:
        models = f"known list (fetching off, from {fetch_source(False)})"
    else:
        models = "known list (the server's list has not arrived)"
    rows = [
        Row("Next cell", next_cell),
        Row("Base URL", f"{url} (from {url_from or 'the default'})"),
        Row("API key", f"set, from {key_from}" if key_from else "missing"),
        Row("Model", f"{model}{default}"),
        Row("Model list", models),
        Row("Changed settings", ", ".join(_changed_settings(snapshot)) or "none"),
        *_store_rows(snapshot, secrets),
        *_teaching_rows(snapshot),
        *_session_rows(snapshot.sessions, secrets),
    ]
    rows = [Row(r.label, redact(r.value, secrets), r.code) for r in rows]
    return rows, removed_in_settings(snapshot)


def run_status(snapshot: Snapshot) -> None:
    """``%writer status``: one screen on what the next cell will do."""
    rows, notes = status_rows(snapshot)
    show("Writer magics status", rows, notes)
