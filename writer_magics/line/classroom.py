"""Class settings: an instructor's file that pins the model and settings of a lesson.

A TOML file named by ``WRITER_MAGICS_CLASS``, or ``writer-magics-class.toml`` beside
the notebook (the kernel's working directory), may pin any of::

    model = "palmyra-x5"
    temperature = 0.2
    top_p = 0.9
    max_tokens = 200
    random_seed = 42          # %%complete only: /v1/chat has no seed
    system_prompt = "You are a patient tutor."     # %%chat only
    allowed_options = ["--session", "--new", "-o", "--logprobs"]
    [budget]
    requests = 50
    tokens = 20000

Every request then carries the pinned values; a cell that asks for another value
(``-m``, ``-t``, ``--top-p``, ``--max-tokens``, ``--random-seed``, ``-s``, or an option
not in ``allowed_options``) is refused in one line naming the file, and so is
``%config WriterMagics.model = ...``. Giving the pinned value itself is fine.

This is a **guard rail for honest students, not a security boundary**: anyone who can
run code in the kernel can delete the file, unset the variable or call the API
directly. The budget's real limit is the API key's own quota.

Pure logic plus the reading of one small file; no IPython here.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from IPython.core.error import UsageError

from writer_magics.errors import ClassSettingsError
from writer_magics.files import read_limited
from writer_magics.line.options import ChatOptions, CompleteOptions, Options
from writer_magics.line.table import option_flags
from writer_magics.line.values import INT32_MAX

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Environment variable naming the class settings file (wins over the file beside it).
CLASS_VARIABLE = "WRITER_MAGICS_CLASS"
#: The file looked for in the kernel's working directory (the notebook's folder).
CLASS_FILE = "writer-magics-class.toml"
#: Shown in each answer's header while class settings are active.
BADGE = "class settings"

KEYS = (
    "model",
    "temperature",
    "top_p",
    "max_tokens",
    "random_seed",
    "system_prompt",
    "allowed_options",
    "budget",
)
#: Options a class may pin, and the line option that would override each.
PINNED_BY = {
    "model": "--model",
    "temperature": "--temperature",
    "top_p": "--top-p",
    "max_tokens": "--max-tokens",
    "random_seed": "--random-seed",
    "system_prompt": "--system",
}

_O = TypeVar("_O", bound=Options)


@dataclass(frozen=True)
class ClassSettings:
    """What a class file pins (None: not pinned) and where it came from."""

    path: Path
    shown: str
    """How messages name the file (the name when found beside the notebook)."""
    digest: str = ""
    """sha256 of the file's bytes, kept in each answer's provenance."""
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    random_seed: int | None = None
    system_prompt: str | None = None
    allowed_options: frozenset[str] | None = None
    """Long option names a cell may use (None: every option)."""
    budget: tuple[int, int] = (0, 0)
    """``[budget]``: (requests, tokens), 0 = unlimited (answer.budget.Limits)."""

    def pins(self) -> dict[str, Any]:
        """The pinned request values by name (model, temperature, ..., system_prompt)."""
        return {k: getattr(self, k) for k in PINNED_BY if getattr(self, k) is not None}

    def summary_lines(self) -> list[str]:
        """``class settings: writer-magics-class.toml · model=palmyra-x5 · temperature=0.2``."""
        parts = [f"{k}={_shown(v)}" for k, v in self.pins().items()]
        if self.allowed_options is not None:
            parts.append("options " + (",".join(sorted(self.allowed_options)) or "none"))
        if any(self.budget):
            parts.append(
                "budget "
                + ",".join(
                    f"{k}={v}"
                    for k, v in zip(("requests", "tokens"), self.budget, strict=True)
                    if v
                )
            )
        return [" · ".join([f"{BADGE}: {self.shown}", *parts])]

    def provenance(self) -> dict[str, Any]:
        """What an answer's metadata says about the class file (never its path's folders)."""
        return {"file": self.path.name, "sha256": self.digest, "pins": self.pins()}


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 30 else value[:27] + "...")
    return f"{value:g}" if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- loading


def find(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> tuple[Path, str] | None:
    """The class file in force and how to name it: ``WRITER_MAGICS_CLASS``, else
    ``writer-magics-class.toml`` in ``cwd`` (the notebook's folder), else None."""
    env = os.environ if environ is None else environ
    named = env.get(CLASS_VARIABLE, "").strip()
    if named:
        return Path(named).expanduser(), named
    beside = (cwd or Path.cwd()) / CLASS_FILE
    return (beside, CLASS_FILE) if beside.is_file() else None


def load(path: Path, shown: str | None = None) -> ClassSettings:
    """Read and check a class file; any problem is one :class:`ClassSettingsError` line
    naming the file (and the key, when one key is the problem)."""
    shown = shown or str(path)
    try:
        raw = read_limited(path, 1024 * 1024)
    except FileNotFoundError:
        raise ClassSettingsError(f"The class settings file {shown} does not exist.") from None
    except OSError as exc:
        raise ClassSettingsError(f"Cannot read {shown}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClassSettingsError(f"{shown} is not valid TOML: {reason}") from None
    return from_mapping(data, path, shown, digest=hashlib.sha256(raw).hexdigest())


def from_mapping(
    data: Mapping[str, Any], path: Path, shown: str, *, digest: str = ""
) -> ClassSettings:
    """Check every key of a parsed class file (see the module docstring for the keys)."""

    def bad(key: str, what: str) -> ClassSettingsError:
        return ClassSettingsError(f"{shown}: {key} {what}, got {data[key]!r}")

    for key in data:
        if key not in KEYS:
            raise ClassSettingsError(f"{shown}: unknown key {key!r} (known: {', '.join(KEYS)})")
    found: dict[str, Any] = {}
    if "model" in data:
        model = data["model"]
        if not isinstance(model, str) or not model.strip() or any(c.isspace() for c in model):
            raise bad("model", 'must be a model name such as "palmyra-x5"')
        found["model"] = model
    for key, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        if key in data:
            value = data[key]
            number = float(value) if _is_number(value) else math.nan
            if not (math.isfinite(number) and low <= number <= high):
                raise bad(key, f"must be a number between {low:g} and {high:g}")
            found[key] = number
    for key, least, most in (("max_tokens", 1, None), ("random_seed", 0, INT32_MAX)):
        if key in data:
            value = data[key]
            if not _is_int(value) or value < least or (most is not None and value > most):
                limit = f"of at least {least}" if most is None else f"between {least} and {most}"
                raise bad(key, f"must be a whole number {limit}")
            found[key] = value
    if "system_prompt" in data:
        if not isinstance(data["system_prompt"], str):
            raise bad("system_prompt", "must be a string")
        found["system_prompt"] = data["system_prompt"]
    if "allowed_options" in data:
        found["allowed_options"] = _allowed(data["allowed_options"], shown)
    if "budget" in data:
        found["budget"] = _budget(data["budget"], shown)
    return ClassSettings(path=path, shown=shown, digest=digest, **found)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _allowed(value: Any, shown: str) -> frozenset[str]:
    flags = option_flags()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ClassSettingsError(
            f'{shown}: allowed_options must be a list such as ["--session", "-o"], got {value!r}'
        )
    names = set()
    for item in value:
        flag = item if item.startswith("-") else "--" + item
        if flag not in flags:
            raise ClassSettingsError(f"{shown}: allowed_options has an unknown option {item!r}")
        names.add(flags[flag])
    return frozenset(names)


def _budget(value: Any, shown: str) -> tuple[int, int]:
    if not isinstance(value, dict):
        raise ClassSettingsError(
            f"{shown}: budget must be a table such as [budget] requests = 50, got {value!r}"
        )
    found = {"requests": 0, "tokens": 0}
    for key, number in value.items():
        if key not in found:
            raise ClassSettingsError(
                f"{shown}: unknown key 'budget.{key}' (known: budget.requests, budget.tokens)"
            )
        if not _is_int(number) or number < 0:
            raise ClassSettingsError(
                f"{shown}: budget.{key} must be a whole number of 0 or more, got {number!r}"
            )
        found[key] = number
    return found["requests"], found["tokens"]


class ClassFile:
    """The class settings in force, re-read only when the file changes (one per kernel).

    A teacher can fix or edit the file while the kernel runs; a file that disappears
    stops pinning. A broken file raises its one line on every cell until it is fixed,
    so a lesson never runs silently without the settings it was written for.
    """

    def __init__(self) -> None:
        self._signature: tuple[str, int, int] | None = None
        self._loaded: ClassSettings | ClassSettingsError | None = None

    def current(
        self, environ: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> ClassSettings | None:
        """The settings, None when there is no class file; raises :class:`ClassSettingsError`."""
        where = find(environ, cwd)
        if where is None:
            self._signature, self._loaded = None, None
            return None
        path, shown = where
        try:
            stat = path.stat()
            signature: tuple[str, int, int] | None = (str(path), stat.st_size, stat.st_mtime_ns)
        except OSError:
            signature = None  # load() says what is wrong
        if signature is None or signature != self._signature:
            try:
                self._loaded = load(path, shown)
            except ClassSettingsError as exc:
                self._loaded = exc
            self._signature = signature
        if isinstance(self._loaded, ClassSettingsError):
            raise self._loaded
        return self._loaded


# --------------------------------------------------------------------------- applying


def apply(opts: _O, pins: ClassSettings) -> _O:
    """The options with the class's pinned values; a cell that overrides one, or uses an
    option the class does not allow, is a one-line ``UsageError`` (nothing is sent)."""
    given = set(opts.given)
    if pins.allowed_options is not None:
        for name in opts.given:
            if name not in pins.allowed_options:
                allowed = ", ".join(sorted(pins.allowed_options)) or "none"
                raise UsageError(
                    f"{name} is not allowed by the class settings in {pins.shown} "
                    f"(allowed: {allowed})"
                )
    changes: dict[str, Any] = {}
    for key, attr in (
        ("model", "models"),
        ("temperature", "temperatures"),
        ("top_p", "top_ps"),
        ("max_tokens", "max_token_limits"),
    ):
        pinned = getattr(pins, key)
        if pinned is None:
            continue
        asked = getattr(opts, attr)
        if PINNED_BY[key] in given and asked is not None and set(asked) != {pinned}:
            raise _override(key, pinned, asked, pins)
        changes[attr] = (pinned,)
    if isinstance(opts, CompleteOptions) and pins.random_seed is not None:
        if "--random-seed" in given and opts.random_seed != pins.random_seed:
            raise _override("random_seed", pins.random_seed, (opts.random_seed,), pins)
        changes["random_seed"] = pins.random_seed
    if isinstance(opts, ChatOptions) and pins.system_prompt is not None:
        if opts.systems is not None and set(opts.systems) != {pins.system_prompt}:
            raise _override("system_prompt", pins.system_prompt, opts.systems, pins)
        changes["systems"] = (pins.system_prompt,)
    return replace(opts, **changes)


def _override(key: str, pinned: Any, asked: Any, pins: ClassSettings) -> UsageError:
    values = ",".join(_shown(v) for v in asked)
    return UsageError(
        f"{PINNED_BY[key]} {values} was refused: the class settings in {pins.shown} pin "
        f"{key} = {_shown(pinned)} (remove the option to use it)"
    )


def config_refusal(trait: str, value: Any, pins: ClassSettings | None) -> str | None:
    """Why ``%config WriterMagics.<trait> = value`` is refused, or None when it may be set."""
    if pins is None or trait != "model" or pins.model is None or value == pins.model:
        return None
    return (
        f"WriterMagics.model = {value!r} was refused: the class settings in {pins.shown} "
        f"pin model = {pins.model!r}"
    )


def status_lines(pins: ClassSettings | None, error: str | None = None) -> list[str]:
    """The class-settings lines of ``%writer status``."""
    if error is not None:
        return [f"{BADGE}: {error}"]
    if pins is None:
        return [f"{BADGE}: none (no {CLASS_FILE} beside the notebook, {CLASS_VARIABLE} unset)"]
    return pins.summary_lines()
