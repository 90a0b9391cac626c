"""``%%complete`` and ``%%chat``: where the steps of a cell meet, and nothing else.

Each magic reads like a short script (parse, render, build, send, record, keep);
every step is a plain function in its own module. All per-kernel state (sessions,
the HTTP client, the loop thread, the current cell id) lives on this one instance.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from IPython.core.error import StdinNotImplementedError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from traitlets import Bool, Enum, Float, Int, TraitError, Unicode, default, validate

from writer_magics import config
from writer_magics import request as build
from writer_magics.answer.budget import Ledger, Limits
from writer_magics.answer.history import Call, Conversation, Sessions, Turn
from writer_magics.errors import (
    REDACTED,
    APIStatusError,
    ClassSettingsError,
    ConfigurationError,
    WriterError,
    WriterUsageError,
    redact,
)
from writer_magics.line import completion, options, prompt, table
from writer_magics.line.options import ChatOptions, Params
from writer_magics.line.scan import refuse_secret
from writer_magics.request import Request
from writer_magics.transport import models
from writer_magics.transport.loop import LoopThread

# The rest (display, execute, sender, features...) loads with the first cell, keeping
# %load_ext fast: see bench/load.py.

if TYPE_CHECKING:
    from writer_magics.answer.result import Outcomes, Result
    from writer_magics.answer.sweep import Sweep
    from writer_magics.commands.status import Snapshot
    from writer_magics.display import ViewKind
    from writer_magics.display.rounds import RoundsView
    from writer_magics.line.classroom import ClassFile, ClassSettings
    from writer_magics.send import Sender, SendSettings
    from writer_magics.tools.prepare import ChatFeatures
    from writer_magics.transport.client import WriterClient

_O = TypeVar("_O", bound=options.Options)


@magics_class
class WriterMagics(Magics):
    """Writer's Palmyra models in the notebook. Configure with ``%config WriterMagics``."""

    model = Unicode(config.DEFAULT_MODEL, help="Default model for %%complete and %%chat.").tag(
        config=True
    )
    base_url = Unicode(
        "",
        help="API base URL; when set it wins over WRITER_BASE_URL and .env "
        "(default https://api.writer.com).",
    ).tag(config=True)
    api_key = Unicode(
        "",
        help="API key; when set it wins over WRITER_API_KEY and the nearest .env. "
        "Surrounding whitespace is removed; never shown.",
    ).tag(config=True)
    connect_timeout = Float(10.0, help="Seconds to wait for a connection.").tag(config=True)
    read_timeout = Float(
        60.0,
        help="Seconds to wait for the next event of an answer (keep-alive comments do not "
        "count); --timeout S sets it for one cell.",
    ).tag(config=True)
    total_timeout = Float(
        600.0,
        help="Seconds a cell's requests may take from sending to the last event, retries "
        "included (each --tools round counts afresh); 0 means no limit.",
    ).tag(config=True)
    max_retries = Int(
        2,
        help="Retries for 408/409/429/5xx and connection errors (shown in the live status "
        "while they wait; only a final failure stays).",
    ).tag(config=True)
    stream = Bool(True, help="Stream answers as they arrive (--no-stream per cell).").tag(
        config=True
    )
    max_updates_per_second = Float(
        6.0, help="Live view refresh limit (frames a second; at least 5 keeps it smooth)."
    ).tag(config=True)
    view = Enum(
        ["auto", "widget", "markdown", "text"],
        "auto",
        help=(
            "Live view: auto (display outputs in a notebook, plain text in a terminal), "
            "or forced. widget and markdown (both kept for old settings) mean the same: "
            "one answer as Markdown outputs, several panels side by side in one HTML "
            "output; no widgets, so a notebook saved mid-stream still reads well."
        ),
    ).tag(config=True)
    max_concurrency = Int(
        4, help="How many requests of a sweep or batch run at once (the rest say 'queued')."
    ).tag(config=True)
    max_batch = Int(1000, help="Largest --over batch sent without --allow-large.").tag(config=True)
    max_sweep = Int(
        options.DEFAULT_MAX_SWEEP, help="Most requests one sweep cell may send (larger: refused)."
    ).tag(config=True)
    max_prompt_bytes = Int(
        4_000_000, help="Larger prompts need --allow-large (UTF-8 bytes; 0: no limit)."
    ).tag(config=True)
    max_tool_rounds = Int(5, help="Requests per %%chat --tools cell before giving up.").tag(
        config=True
    )
    cache = Bool(False, help="Answer identical requests from the cache (like --cache).").tag(
        config=True
    )
    cache_path = Unicode("", help="Cache file (default: cache.jsonl in the data dir).").tag(
        config=True
    )
    replay = Unicode(
        "",
        help="Replay-only cache file (when set it wins over WRITER_MAGICS_REPLAY); no key, "
        "no network.",
    ).tag(config=True)
    log = Bool(True, help="Append every request and answer to the local prompt log.").tag(
        config=True
    )
    max_image_bytes = Int(
        5 * 1024 * 1024,
        help="Largest image %%chat --image sends (bytes); larger ones are shrunk with Pillow "
        "or refused.",
    ).tag(config=True)
    log_path = Unicode("", help="Prompt log file (default: log.sqlite3 in the data dir).").tag(
        config=True
    )
    budget_requests = Int(
        0,
        help="Requests this kernel may send to the API (0: unlimited; cached and replayed "
        "answers are free). WRITER_MAGICS_BUDGET and a class file can only tighten it.",
    ).tag(config=True)
    budget_tokens = Int(
        0,
        help="Tokens (as the API reports them) this kernel may spend (0: unlimited); "
        "requests are refused once it is reached.",
    ).tag(config=True)

    fetch_models = Bool(
        help="Fetch the key's model list (GET /v1/models) once in the background for Tab "
        "completion of -m; off: the known list (when not set here, off when "
        "WRITER_MAGICS_FETCH_MODELS=0)."
    ).tag(config=True)

    @default("fetch_models")
    def _fetch_models_default(self) -> bool:
        return models.fetch_default()

    @validate(
        "connect_timeout",
        "read_timeout",
        "total_timeout",
        "max_updates_per_second",
        "max_concurrency",
        "max_batch",
        "max_tool_rounds",
        "max_retries",
        "max_image_bytes",
        "max_sweep",
        "max_prompt_bytes",
    )
    def _positive(self, proposal: Any) -> Any:
        """Bad settings are refused when set, not when a request fails later.

        Every number must be finite (no NaN or infinity); ``max_retries`` and
        ``total_timeout`` may be 0 (no retries; no limit), the others must be positive.
        """
        value, name = proposal["value"], proposal["trait"].name
        if isinstance(value, float) and not math.isfinite(value):
            raise TraitError(f"WriterMagics.{name} must be a finite number, not {value!r}")
        if name in ("max_retries", "total_timeout", "max_prompt_bytes") and value < 0:
            raise TraitError(f"WriterMagics.{name} must be 0 or more, not {value!r}")
        if name not in ("max_retries", "total_timeout", "max_prompt_bytes") and value <= 0:
            raise TraitError(f"WriterMagics.{name} must be positive, not {value!r}")
        return value

    @validate("budget_requests", "budget_tokens")
    def _not_negative(self, proposal: Any) -> Any:
        value, name = proposal["value"], proposal["trait"].name
        if value < 0:
            raise TraitError(f"WriterMagics.{name} must be 0 (unlimited) or more, not {value!r}")
        return value

    @validate("model")
    def _not_pinned(self, proposal: Any) -> Any:
        """``%config WriterMagics.model = ...`` cannot override a class file's model."""
        from writer_magics.line.classroom import config_refusal

        value = proposal["value"]
        if not str(value).strip():
            raise TraitError(
                "WriterMagics.model cannot be empty; use a model name such as "
                f"{config.DEFAULT_MODEL!r}."
            )
        with contextlib.suppress(ClassSettingsError):
            refusal = config_refusal("model", value, self._class_settings())
            if refusal is not None:
                raise TraitError(refusal)
        warning = config.removed_model_warning(str(value))
        if warning is not None:  # said when set, and again by each cell that uses it
            print(f"Warning: {warning}", file=sys.stderr)
        return value

    def update_config(self, cfg: Any) -> None:
        """``%config``: as traitlets does, but a refused value does not stay behind.

        IPython merges a ``%config`` line into the shell's config before this instance
        validates it; a value refused here would stay there and break the next
        ``%load_ext`` / ``%reload_ext``. So the shell's entries for this class are put
        back as they were, and the one-line error still reaches the user.
        """
        before = self.config.get(type(self).__name__, {})
        try:
            super().update_config(cfg)
        except TraitError:
            shared = getattr(self.shell, "config", None)
            section = shared.get(type(self).__name__) if shared is not None else None
            for name in list(cfg.get(type(self).__name__, {})):
                if section is None or name not in section:
                    continue
                if name in before:
                    section[name] = before[name]
                else:
                    del section[name]
            raise

    @validate("api_key")
    def _secret(self, proposal: Any) -> config.Secret:
        """The key without surrounding whitespace, in a string whose repr hides it."""
        return config.Secret(str.strip(proposal["value"]))

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)  # type: ignore[no-untyped-call]
        #: Requests and tokens this kernel has spent (see answer/budget.py).
        self.ledger = Ledger()
        self.sessions = Sessions()
        self.loop = LoopThread()
        self._sender: Sender | None = None
        self.last_result: Result | None = None
        self._client: WriterClient | None = None
        #: The executions running now, innermost last: (cell id, execution number). A
        #: cell that calls ``run_cell`` nests one; numbering executions tells calls within
        #: one execution of a cell from a re-run of it.
        self._running: list[tuple[object, Call]] = []
        self._executions = 0
        #: ``--diff``: the last answer of each cell (by cell id, or by source without one).
        self._previous: dict[object, str] = {}
        #: Model ids for Tab completion (one background GET /v1/models per kernel).
        self.models = models.ModelCatalog()
        self._matcher: Any = None
        self._writer_parser: argparse.ArgumentParser | None = None
        if shell is not None:
            shell.events.register("pre_run_cell", self._remember_cell)
            shell.events.register("post_run_cell", self._forget_cell)
            shell.events.register("pre_run_cell", self._start_model_fetch)
            self._matcher = completion.install(shell, self._completion_sources)
        for problem in self._teaching_problems():  # a broken class file: said at load
            print(problem, file=sys.stderr)

    # ------------------------------------------------------------------ magics

    @table.complete_arguments
    @no_var_expand
    @line_cell_magic
    def complete(self, line: str, cell: str | None = None) -> None:
        """Send the cell (or the rest of the line) to /v1/completions and stream the answer."""
        opts = options.parse_complete(
            line, self.user_ns, cell=cell is not None, **self._line_limits()
        )
        opts = self._class_rules(opts)
        self._warn(opts.warnings)
        if opts.over is not None:
            from writer_magics.commands.batch import run_over

            return run_over(self, opts, _body(cell, opts.prompt))
        text = self._render(cell, opts, "complete")
        checks = self._checks(opts)
        stream = opts.stream and self.stream
        requests = {p: build.completion(opts, p, text, stream=stream) for p in opts.params}
        with self._keeping_partial(opts.out):
            outcomes = self._send(requests, opts)
        outcomes, answer = self._review(outcomes, _single(outcomes, opts), opts, checks, line, cell)
        self._keep(answer if answer is not None else _kept(outcomes), opts.out)
        return self._strict(outcomes, answer, opts)

    @table.chat_arguments
    @no_var_expand
    @line_cell_magic
    def chat(self, line: str, cell: str | None = None) -> None:
        """Send the cell as the next message of a conversation and stream the answer."""
        opts = options.parse_chat(line, self.user_ns, cell=cell is not None, **self._line_limits())
        if opts.command is not None:
            from writer_magics.commands.chat import run_chat_command

            pins = self._class_settings()
            pinned = pins.system_prompt if pins is not None else None
            return run_chat_command(opts, self.sessions, secrets=self._secrets(), system=pinned)
        opts = self._class_rules(opts)
        self._warn(opts.warnings)
        if opts.over is not None:
            from writer_magics.commands.batch import run_over

            return run_over(self, opts, _body(cell, opts.prompt))
        text = self._render(cell, opts, "chat")
        checks = self._checks(opts)
        from writer_magics.tools import prepare

        extras = prepare.prepare(opts, self.user_ns, max_image_bytes=self.max_image_bytes)
        # Not stored until an answer is recorded: a failed cell creates no session.
        conversation = Conversation() if opts.new else self.sessions.conversation(opts.session)
        call = self._running[-1][1] if self._running else Call(None, self._executions)
        requests = self._chat_requests(opts, text, conversation, extras, call)
        if extras.images and not opts.dry_run:
            self._show_thumbnails(extras)
        outcomes: Outcomes[Params] | None = None
        answer: Result | None
        added: list[dict[str, Any]] = []  # the tool exchange, recorded with the answer
        with self._keeping_partial(opts.out), self._explaining_length(opts, conversation, call):
            if extras.functions and not opts.dry_run:
                answer, added = self._tool_rounds(requests, opts, extras)
            else:
                outcomes = self._send(requests, opts, session=opts.session)
                answer = _single(outcomes, opts)
        if answer is not None:  # not a dry run or a sweep: parse, check, record
            answer = self._present(answer, extras, opts.out)
        outcomes, answer = self._review(outcomes, answer, opts, checks, line, cell)
        if answer is not None:
            self._record(conversation, call, opts, text, answer, added, extras)
        self._keep(answer if answer is not None else _kept(outcomes), opts.out)
        return self._strict(outcomes, answer, opts)

    @line_magic
    def writer(self, line: str) -> None:
        """The prompt log and the cache: ``%writer log [-n N] [--search TEXT] [--export PATH]``,
        ``%writer cache --export PATH | --import PATH | --clear | --info``; the models the
        key can use: ``%writer models``; what the next cell will do: ``%writer status``."""
        from writer_magics.commands.status import run_models, run_status
        from writer_magics.commands.writer import run_writer_command

        settings = self._send_settings(use_cache=True)
        run_writer_command(
            line,
            log=self.sender.prompt_log(settings),
            cache=self.sender.cache(settings),
            commands={
                "models": lambda: run_models(self._snapshot()),
                "status": lambda: run_status(self._snapshot()),
            },
        )

    def _snapshot(self) -> Snapshot:
        """What ``%writer status`` / ``%writer models`` read, taken now."""
        from writer_magics.commands.status import Snapshot

        names = sorted(self.traits(config=True))
        now = self._send_settings(use_cache=False)
        return Snapshot(
            settings={name: getattr(self, name) for name in names},
            defaults={name: self.trait_defaults(name) for name in names},
            sessions=self.sessions,
            catalog=self.models,
            secrets=self._secrets(),
            replaying=now.replay_path is not None,
            cache_on=now.use_cache,
            cache_info=lambda: self.sender.cache(self._send_settings(use_cache=True)).info(),
            prompt_log=lambda: self.sender.prompt_log(now),
            client=self.client,
            loop=self.loop,
            pinned_model=self._pinned_model(),
            teaching=self.teaching_status,
        )

    def _pinned_model(self) -> tuple[str, str] | None:
        """A class file's model and the file's name (a broken file has its own row)."""
        with contextlib.suppress(WriterError):
            pins = self._class_settings()
            if pins is not None and pins.model:
                return pins.model, pins.shown
        return None

    def _completion_sources(self) -> completion.Sources:
        """What Tab completion reads (at each Tab, all in memory)."""
        return completion.Sources(
            parsers=self._parser,
            models=self.models.ids,
            sessions=lambda: list(self.sessions),
            namespace=self.user_ns,
            hidden=getattr(self.shell, "user_ns_hidden", {}),
            cwd=None,
        )

    def _parser(self, name: str) -> argparse.ArgumentParser:
        """The argparse parser of magic ``name`` (``writer``: built once, then kept)."""
        if name != "writer":
            parser: argparse.ArgumentParser = getattr(self, name).parser
            return parser
        if self._writer_parser is None:
            from writer_magics.commands.writer import writer_parser

            self._writer_parser = writer_parser()
        return self._writer_parser

    # ------------------------------------------------------------------ steps

    def _checks(self, opts: options.Options) -> tuple[Any, ...]:
        """``--expect``: parsed and resolved before anything is sent."""
        if not opts.expect:
            return ()
        from writer_magics.display.review import prepare_checks

        return prepare_checks(opts.expect, self.user_ns)

    def _review(
        self,
        outcomes: Outcomes[Params] | None,
        answer: Result | None,
        opts: options.Options,
        checks: tuple[Any, ...],
        line: str,
        cell: str | None,
    ) -> tuple[Outcomes[Params] | None, Result | None]:
        """``--expect`` and ``--diff`` under the answer (see review.py); remembers the
        answer of the cell for the next ``--diff``."""
        if outcomes is None and answer is None:
            return outcomes, answer
        running = self._running[-1][1].cell if self._running else None
        key: object = running if running else ("source", line, cell)
        previous = self._previous.get(key)
        if answer is not None and not opts.is_sweep:
            results, titles = [answer], ["answer"]
        elif outcomes is not None and opts.is_sweep:
            from writer_magics.display import titles as view_titles

            results = list(outcomes.results.values())
            found = view_titles.panel_titles(list(outcomes.results), {})
            titles = found if isinstance(found, list) else [str(i + 1) for i in range(found)]
        else:
            return outcomes, answer
        if checks or opts.diff:
            from writer_magics.display.review import review

            results = review(
                results,
                titles,
                checks=checks,
                user_ns=self.user_ns,
                diff=opts.diff,
                previous=previous,
                secrets=self._secrets(),
            )
        if answer is not None and not opts.is_sweep:
            answer = results[0]
            self._previous[key] = answer.text
            if outcomes is not None:
                outcomes = type(outcomes)(
                    results={k: answer for k in outcomes.results}, errors=outcomes.errors
                )
        elif outcomes is not None:
            outcomes = type(outcomes)(
                results=dict(zip(outcomes.results, results, strict=True)),
                errors=outcomes.errors,
            )
        return outcomes, answer

    def _strict(
        self, outcomes: Outcomes[Params] | None, answer: Result | None, opts: options.Options
    ) -> None:
        """``--strict``: fail the cell (after keeping the answer) when a check failed."""
        if not opts.strict:
            return
        from writer_magics.display.review import strict_failure

        results = (
            [answer]
            if answer is not None
            else list((outcomes.results if outcomes else {}).values())
        )
        titles = [str(i + 1) for i in range(len(results))]
        error = strict_failure(results, titles)
        if error is not None:
            raise error

    @property
    def user_ns(self) -> dict[str, Any]:
        assert self.shell is not None
        namespace: dict[str, Any] = self.shell.user_ns
        return namespace

    def _line_limits(self) -> dict[str, Any]:
        """What parsing the magic line needs from the settings (model, sweep limit, key)."""
        try:  # the configured key, so that typing it on the line is refused
            key = config.api_key(self.api_key or None)
        except Exception:
            key = None
        return {"default_model": self.model, "max_sweep": self.max_sweep, "secrets": (key,)}

    @staticmethod
    def dry_run_markdown(url: str, body: dict[str, Any], key: str | None) -> str:
        """See :func:`dry_run_markdown` (commands/ reach it through the instance)."""
        return dry_run_markdown(url, body, key)

    def _render(self, cell: str | None, opts: options.Options, name: str) -> str:
        """The prompt text by the interpolation rule (prompt.render); it and any
        ``-s`` text over ``max_prompt_bytes`` need ``--allow-large``."""
        magic = ("%%" if cell is not None else "%") + name
        limit = None if opts.allow_large else self.max_prompt_bytes
        secrets = self._secrets()
        if isinstance(opts, ChatOptions):
            for system in opts.systems or ():
                if limit is not None:
                    prompt.check_size(system, limit, magic, "system prompt")
                refuse_secret(system, secrets, magic, "system prompt")
        text = prompt.render(
            _body(cell, opts.prompt), self.user_ns, magic=magic, raw=opts.raw, max_bytes=limit
        )
        refuse_secret(text, secrets, magic, "prompt")
        return text

    def _remember_cell(self, info: Any) -> None:
        self._executions += 1
        call = Call(getattr(info, "cell_id", None) or None, self._executions)
        self._running.append((info, call))

    def _start_model_fetch(self, info: Any) -> None:
        """Before a cell runs: start the kernel's one ``GET /v1/models`` if none started yet.

        Nothing happens when ``fetch_models`` is off, in replay mode, or when the settings
        cannot send (no key yet: tried again before the next cell). Never raises and never
        waits for the answer.
        """
        if self.models.started or not self.fetch_models:
            return
        from writer_magics.transport.cache import replay_path

        if self.replay or replay_path():
            return
        try:
            client = self.client()
            client.check()
        except Exception:  # no key / bad URL: nothing is sent, try before the next cell
            return
        self.models.start(self.loop, client)

    def _forget_cell(self, result: Any) -> None:
        # post_run_cell also comes for cells that never had a pre_run_cell (empty ones)
        if self._running and self._running[-1][0] is getattr(result, "info", None):
            self._running.pop()

    def _secrets(self) -> list[str | None]:
        """The API key as configured now (raw and stripped), for redacting saved files."""
        found: list[str | None] = [self.api_key]
        with contextlib.suppress(WriterError, ValueError, OSError):
            found.append(config.api_key(self.api_key or None))
        return [*found, *(k.strip() for k in found if k)]

    @contextlib.contextmanager
    def _keeping_partial(self, out: str | None) -> Iterator[None]:
        """An interrupted answer: ``-o NAME`` and ``last_result`` get the partial Result
        (``result.interrupted``); the history is left as it was (nothing is recorded)."""
        from writer_magics.answer.result import Outcomes
        from writer_magics.errors import Interrupted

        try:
            yield
        except Interrupted as interrupted:
            if interrupted.results:
                self._keep(_kept(Outcomes(results=dict(interrupted.results), errors={})), out)
            raise

    @contextlib.contextmanager
    def _explaining_length(
        self, opts: ChatOptions, conversation: Conversation, call: Call
    ) -> Iterator[None]:
        """A request refused as too long for the model says what the history holds
        and how to trim it (see :func:`history.context_length_error`)."""
        from writer_magics.answer.history import context_length_error

        try:
            yield
        except APIStatusError as error:
            better = context_length_error(
                error, conversation, call, session=opts.session, history=opts.history
            )
            if better is None:
                raise
            raise better from None

    # ------------------------------------------------------------------ teaching

    @property
    def class_file(self) -> ClassFile:
        """The class settings file in force (re-read when it changes)."""
        found: ClassFile | None = self.__dict__.get("_class_file")
        if found is None:
            from writer_magics.line.classroom import ClassFile

            found = self.__dict__["_class_file"] = ClassFile()
        return found

    def _class_settings(self) -> ClassSettings | None:
        """The class settings (None: no file); a broken file raises its one line."""
        return self.class_file.current()

    def _class_rules(self, opts: _O) -> _O:
        """The class's pinned values; an override is refused (one line, nothing sent)."""
        pins = self._class_settings()
        if pins is None:
            return opts
        from writer_magics.line.classroom import apply

        return apply(opts, pins)

    def budget_limits(self) -> Limits:
        """The strictest of the traits, ``WRITER_MAGICS_BUDGET`` and the class file."""
        from writer_magics.answer.budget import environment_limits
        from writer_magics.errors import BudgetSettingError

        limits = Limits(self.budget_requests, self.budget_tokens)
        try:
            limits = limits.tighter(environment_limits())
        except BudgetSettingError as exc:
            raise ConfigurationError(str(exc)) from None
        pins = self._class_settings()
        return limits if pins is None else limits.tighter(Limits(*pins.budget))

    def _teaching_problems(self) -> list[str]:
        """A broken class file or budget variable, as the one line each cell would raise."""
        problems = []
        for check in (self._class_settings, self.budget_limits):
            try:
                check()
            except WriterError as exc:
                problems.append(one_line_error(exc))
        return list(dict.fromkeys(problems))

    def teaching_status(self) -> list[str]:
        """Lines for ``%writer status``: the budget used and left, and the class settings.

        ``["budget: 3 of 50 requests used (47 left) · 1200 tokens used (no limit)",
        "class settings: writer-magics-class.toml · model='palmyra-x5' · temperature=0.2"]``;
        a broken class file or budget variable is shown as its one-line error instead.
        """
        from writer_magics.line.classroom import status_lines

        lines: list[str] = []
        try:
            lines += self.ledger.lines(self.budget_limits())
        except WriterError as exc:
            lines.append(f"budget: {one_line_error(exc)}")
        try:
            lines += status_lines(self._class_settings())
        except ClassSettingsError as exc:
            lines += status_lines(None, exc.message)
        return lines

    def _warn(self, warnings: tuple[str, ...]) -> None:
        for warning in warnings:
            print(f"Warning: {warning}", file=sys.stderr)

    def _send(
        self,
        requests: dict[Params, Request],
        opts: options.Options,
        session: str | None = None,
        rounds: RoundsView | None = None,
    ) -> Outcomes[Params] | None:
        """Show the dry run, or answer every request into one live view.

        A single failed request fails the cell; in a sweep only when every
        combination failed (the others' panels say what went wrong).
        """
        if opts.dry_run:
            from writer_magics.display.finish import show_markdown

            client = self.client()
            for request in requests.values():
                url, key = client.url(request.endpoint), client.settings.api_key
                show_markdown(dry_run_markdown(url, request.body, key))
            return None
        from dataclasses import replace

        from writer_magics.answer.budget import Gate
        from writer_magics.display import titles as view_titles
        from writer_magics.line.classroom import BADGE

        header = view_titles.header(opts, session, _common_system(requests))
        pins = self._class_settings()
        if pins is not None:
            header += f" · {BADGE}"
        outcomes = self.sender.send(
            requests,
            replace(
                self._send_settings(use_cache=opts.cache),
                budget=Gate(self.ledger, self.budget_limits(), partial=opts.partial),
                class_settings=None if pins is None else pins.provenance(),
            ),
            header=header,
            titles=view_titles.panel_titles(list(requests), requests),
            shell=self.shell,
            rounds=rounds,
        )
        if outcomes.errors and len(outcomes.errors) == len(requests):
            raise next(iter(outcomes.errors.values()))
        return outcomes

    def _chat_requests(
        self,
        opts: ChatOptions,
        text: str,
        conversation: Conversation,
        extras: ChatFeatures,
        call: Call,
    ) -> dict[Params, Request]:
        """One request per parameter set, each carrying the turns before this call."""
        from writer_magics.line.images import attach

        return {
            p: build.chat(
                opts,
                p,
                attach(
                    conversation.messages_for(call, text, p.system, history=opts.history),
                    extras.images,
                ),
                stream=opts.stream and self.stream,
                extras=extras.body_fields,
            )
            for p in opts.params
        }

    def _tool_rounds(
        self, requests: dict[Params, Request], opts: ChatOptions, extras: ChatFeatures
    ) -> tuple[Result, list[dict[str, Any]]]:
        """Answer the model's tool calls with the kernel's functions until it answers.

        Every round streams into one view (one header, one usage line for the cell);
        each call is one line, ``running name(args)…`` then ``name(args) → result``."""
        from writer_magics.display.rounds import RoundsView, ToolLine
        from writer_magics.tools.rounds import run_tool_rounds

        ((params, first),) = requests.items()
        if opts.confirm and not _can_ask(self.shell):
            raise WriterUsageError(
                "--confirm asks before each call, and this frontend cannot answer input() "
                "(nbclient, papermill, nbconvert --execute); nothing was sent. Run the cell "
                "in JupyterLab or IPython, or without --confirm."
            )
        view = RoundsView()
        lines: list[ToolLine] = []

        def send(request: Request) -> Result:
            outcomes = self._send({params: request}, opts, session=opts.session, rounds=view)
            assert outcomes is not None
            return outcomes.results[params]

        def running(name: str, arguments: str) -> None:
            view.running(name, arguments)
            lines.append(ToolLine(name, arguments, self._secrets()))
            lines[-1].start()

        def ran(name: str, arguments: str, content: str, failed: bool) -> None:
            line = lines.pop() if lines else ToolLine(name, arguments, self._secrets())
            line.done(content, failed)

        try:
            loop = run_tool_rounds(
                first,
                extras.functions,
                send,
                max_rounds=self.max_tool_rounds,
                confirm=_ask if opts.confirm else None,
                on_call=ran,
                on_run=running,
            )
        except KeyboardInterrupt:
            view.close(interrupted=True)
            raise
        finally:
            view.close()
        return loop.result, loop.messages

    def _record(
        self,
        conversation: Conversation,
        call: Call,
        opts: ChatOptions,
        text: str,
        answer: Result,
        added: list[dict[str, Any]],
        extras: ChatFeatures,
    ) -> None:
        """Remember a successful turn (a tool exchange with all its messages; a question
        with images keeps them, so later cells send them again)."""
        from writer_magics.line.images import user_message

        user = user_message(text, extras.images)
        messages = [user, *added] if added else []
        if extras.images and not added:
            messages = [user, {"role": "assistant", "content": answer.text}]
        turn = Turn(key="", user=text, assistant=answer.text, messages=tuple(messages))
        conversation.record(call, turn, system=opts.params[0].system)
        self.sessions.replace(opts.session, conversation)

    def _show_thumbnails(self, extras: ChatFeatures) -> None:
        """The images sent, above the live view; the saved notebook keeps them."""
        from writer_magics.display.finish import show_html
        from writer_magics.line.images import bundle

        thumbnails = bundle(extras.images)
        show_html(thumbnails["text/html"], thumbnails["text/plain"])

    def _present(self, answer: Result, extras: ChatFeatures, out: str | None) -> Result:
        """Parse a ``--schema`` answer and draw the logprobs picture under the answer."""
        from writer_magics.display.finish import show_html
        from writer_magics.tools import prepare

        picture = prepare.logprobs_html(answer)
        if picture is not None and prepare.logprobs_show_secret(answer, self._secrets()):
            print("The token probabilities are not shown: the answer spells the API key.")
        elif picture is not None:
            show_html(picture, prepare.logprobs_text(answer))
        try:
            return prepare.parse_answer(answer, extras)
        except WriterError:  # the raw text is kept on -o too, not only on screen
            self._keep(answer, out, last=False)
            raise

    @property
    def sender(self) -> Sender:
        """Sends requests and owns the cache and log files (made on first use)."""
        if self._sender is None:
            from writer_magics.send import Sender

            self._sender = Sender(self.loop, self.client)
        return self._sender

    def _send_settings(self, *, use_cache: bool) -> SendSettings:
        from writer_magics.send import SendSettings
        from writer_magics.transport.cache import replay_path

        replay = _path(self.replay) or replay_path()
        return SendSettings(
            view=cast("ViewKind", self.view),
            max_updates_per_second=self.max_updates_per_second,
            max_concurrency=self.max_concurrency,
            use_cache=use_cache or self.cache,
            cache_path=_path(self.cache_path),
            replay_path=replay,
            log=self.log,
            log_path=_path(self.log_path),
        )

    def _keep(self, kept: Result | Sweep | None, out: str | None, *, last: bool = True) -> None:
        """Make the answer available: ``-o NAME`` and (``last``) ``WriterMagics.last_result``
        (a sweep's first Result). The one place ``-o`` is written."""
        from writer_magics.answer.result import Result

        if kept is None:
            return
        if last:
            self.last_result = kept if isinstance(kept, Result) else kept.results[0]
        if out:
            self.user_ns[out] = kept

    def client(self) -> WriterClient:
        """The kernel's one client, with settings read afresh for this request."""
        from writer_magics.transport.client import ClientSettings, WriterClient

        key = config.find(config.KEY_VARIABLE, self.api_key or None)
        url = config.find(config.BASE_URL_VARIABLE, self.base_url or None)
        current = ClientSettings(
            base_url=url.value or config.DEFAULT_BASE_URL,
            api_key=key.value,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_retries=self.max_retries,
            total_timeout=self.total_timeout or None,
            key_source=key.source,
            base_url_source=url.source if url.value else "the default",
        )
        if self._client is None:
            self._client = WriterClient(current)
        else:
            self._client.settings = current
        return self._client

    def close(self) -> None:
        """Undo everything __init__ did; called by unload_ipython_extension.

        The chat history lives on this instance, so unloading (or ``%reload_ext``) drops
        it: say so rather than lose it silently.
        """
        turns = sum(len(self.sessions[name]) for name in self.sessions)
        if turns:
            print(
                f"Warning: unloading writer_magics drops {turns} chat turn(s) in "
                f"{len(self.sessions)} session(s); %chat --save PATH first keeps them "
                "(%chat --load PATH brings them back).",
                file=sys.stderr,
            )
        if self.shell is not None:
            with contextlib.suppress(ValueError):
                self.shell.events.unregister("pre_run_cell", self._remember_cell)
            with contextlib.suppress(ValueError):
                self.shell.events.unregister("post_run_cell", self._forget_cell)
            with contextlib.suppress(ValueError):
                self.shell.events.unregister("pre_run_cell", self._start_model_fetch)
            completion.uninstall(self.shell, self._matcher)
            with contextlib.suppress(ValueError, AttributeError):
                self.shell.configurables.remove(self)  # %config must not reach it any more
        self.models.cancel()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                self.loop.run(client.aclose)
        self.loop.close()

    @classmethod
    def class_get_trait_help(cls, trait: Any, inst: Any = None, helptext: Any = None) -> str:
        """``%config WriterMagics`` must never print the key."""
        text: str = super().class_get_trait_help(trait, inst, helptext)
        if trait.name == "api_key" and inst is not None and inst.api_key:
            text = redact(text.replace(repr(str(inst.api_key)), f"'{REDACTED}'"), [inst.api_key])
        return text


def with_settings_checked(shell: Any) -> WriterMagics:
    """The magics for ``shell``, even when its config holds a value they refuse.

    A refused value (in ``ipython_config.py``, or left by an IPython that kept a refused
    ``%config``) would fail the whole load with a traitlets traceback and leave no
    magics. Instead each one is dropped with one warning line and the default stands.
    Raises nothing traitlets raises.
    """
    start = len(shell.configurables)
    try:
        return WriterMagics(shell=shell)
    except TraitError:
        del shell.configurables[start:]  # the half-made instance
    name = WriterMagics.__name__
    given = dict(shell.config.get(name, {}))
    shell.config[name] = type(shell.config)()
    magics = WriterMagics(shell=shell)
    for key, value in given.items():
        try:
            setattr(magics, key, value)
        except TraitError as exc:
            print(f"Warning: WriterMagics.{key} = {value!r} is not used: {exc}", file=sys.stderr)
        else:
            shell.config[name][key] = value
    return magics


def one_line_error(error: WriterError) -> str:
    """``ClassSettingsError: writer-magics-class.toml: unknown key 'temprature' ...``."""
    return f"{type(error).__name__}: {error.message}"


def _common_system(requests: dict[Params, Request]) -> str | None:
    """The system prompt every request carries, if they share one (the view's header)."""
    found: set[str | None] = set()
    for request in requests.values():
        messages = request.body.get("messages") or [{}]
        first = messages[0] if isinstance(messages[0], dict) else {}
        content = first.get("content") if first.get("role") == "system" else None
        found.add(content if isinstance(content, str) else None)
    return found.pop() if len(found) == 1 else None


def _kept(outcomes: Outcomes[Params] | None) -> Result | Sweep | None:
    """What a cell keeps: one request's Result, a :class:`Sweep` of several, or nothing."""
    if outcomes is None or not outcomes.results:
        return None
    if len(outcomes.results) > 1:
        from writer_magics.answer.sweep import Sweep

        return Sweep.from_outcomes(outcomes)
    return next(iter(outcomes.results.values()))


def _single(outcomes: Outcomes[Params] | None, opts: options.Options) -> Result | None:
    """The answer of a plain (not sweep, not dry-run) cell that succeeded."""
    if outcomes is None or opts.is_sweep or outcomes.errors:
        return None
    return next(iter(outcomes.results.values()))


def _ask(name: str, arguments: str) -> bool:
    """``--confirm``: the user approves each call (input works in kernels and terminals)."""
    try:
        answer = input(f"Run {name}({arguments})? [y/N] ")
    except StdinNotImplementedError:  # the frontend changed its mind: refuse, in one line
        raise WriterUsageError(
            f"--confirm could not ask before {name}(): this frontend cannot answer input()"
        ) from None
    return answer.strip().lower() in ("y", "yes")


def _can_ask(shell: Any) -> bool:
    """Whether ``input()`` can reach the user now: always outside a kernel; in one, when
    the running request allows stdin (Jupyter's ``allow_stdin``: JupyterLab yes,
    nbclient and papermill no)."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return True
    try:
        parent = kernel.get_parent("shell")
    except Exception:  # an older or unusual kernel: let input() decide
        return True
    content = parent.get("content") if isinstance(parent, dict) else None
    if isinstance(content, dict) and "allow_stdin" in content:
        return bool(content["allow_stdin"])
    return True


def _path(value: str) -> Path | None:
    return Path(value).expanduser() if value else None


def _body(cell: str | None, line_prompt: str | None) -> str:
    """The prompt template: the cell body without the newline IPython adds, or the line's rest."""
    return cell.rstrip("\n") if cell is not None else (line_prompt or "")


def dry_run_markdown(url: str, body: dict[str, Any], key: str | None) -> str:
    """The request that would be sent, key redacted, as Markdown (reads well as text too)."""
    from writer_magics.line.images import shorten_data_urls

    shown = redact(json.dumps(shorten_data_urls(body), indent=2, ensure_ascii=False), [key])
    auth = f"Bearer {REDACTED}" if key else "(no API key set)"
    return (
        f"**Dry run**: nothing was sent.\n\n`POST {url}`  \n`Authorization: {auth}`\n\n"
        f"```json\n{shown}\n```"
    )
