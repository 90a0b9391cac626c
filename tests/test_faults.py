"""Every fault class of issue 12 walked through a real IPython shell.

One parametrised test: each :class:`Fault` sets the stage (the key and where it comes
from, settings, files), points the magics at a hostile stdlib server on 127.0.0.1 (or
the bundled server), runs one cell the way JupyterLab does (with a cell id), and then
checks the rule that holds for every fault:

- no ``Traceback`` in what the cell shows, and at most a few lines;
- the key (or any 10-character start of it) in no output and in no file written
  (prompt log, cache);
- the server received exactly the requests expected (0 for anything refused);
- no host name other than a loopback literal or ``localhost`` was ever resolved;
- the next cell, against the bundled server with a good key, works.

To add a fault class, add a :class:`Fault` to ``FAULTS`` (``prepare`` can write damaged
files into ``stage.work`` first; ``check`` can assert more).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output
from traitlets import Float

from tests import hostile
from tests.conftest import writer_magics
from tests.hostile import Hostile, Reply, chunk
from writer_magics.magics import WriterMagics
from writer_magics.server import ServerHandle

#: The key every fault case uses (distinctive, so any piece of it is easy to find).
KEY = "wk-FAULTKEY-7f3a9c2e5b1d4086aa"
#: A leak of this much of the key's start counts as showing the key.
PIECE = 10


@dataclass
class Stage:
    """What a case can see and change before its cell runs."""

    work: Path  #: the working directory of the cell (files may be written here)
    data: Path  #: where the prompt log and the cache go (scanned for the key)
    hostile: Hostile | None
    bundled: ServerHandle
    shell: InteractiveShell
    monkeypatch: pytest.MonkeyPatch


@dataclass(frozen=True)
class Fault:
    """One fault class: the stage, the cell, and what must be true afterwards.

    ``base_url`` may use ``{hostile}``, ``{bundled}`` and ``{bundled_port}``; it
    defaults to the hostile server when there is a ``reply``, else the bundled one.
    ``key`` is put in ``WRITER_API_KEY`` (``None``: unset). ``config`` is applied with
    ``%config WriterMagics.NAME = value`` before ``setup`` lines run. ``sent`` is the
    number of requests the server the cell talks to must have received; ``says``
    are texts the cell's output must contain; ``fails``: the cell raised.
    """

    id: str
    cell: str
    reply: Reply | None = None
    base_url: str | None = None
    key: str | None = KEY
    config: dict[str, Any] = field(default_factory=dict)
    setup: tuple[str, ...] = ()
    sent: int = 1
    says: tuple[str, ...] = ()
    fails: bool = True
    max_lines: int = 6
    prepare: Callable[[Stage], None] | None = None
    check: Callable[[Stage, str], None] | None = None


# ------------------------------------------------------------------ the fault classes


def _sent_stripped_key(stage: Stage, _output: str) -> None:
    (request,) = stage.bundled.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"


def _dotenv_with_spaces(stage: Stage) -> None:
    (stage.work / ".env").write_text(f'WRITER_API_KEY="  {KEY} \\n"\n')


def _unchanged(name: str) -> Callable[[Stage, str], None]:
    def check(stage: Stage, _output: str) -> None:
        magics = writer_magics(stage.shell)
        assert getattr(magics, name) == _default(name)

    return check


def _float_traits() -> list[str]:
    return sorted(
        name
        for name, trait in WriterMagics.class_traits(config=True).items()
        if isinstance(trait, Float)
    )


_ECHO = {"message": f"quota exceeded for key {KEY}", "key": KEY}

KEYS = [
    # §1: a key read from a file keeps its newline -> stripped, from every source.
    Fault("key-env-newline", "%chat Hi", key=KEY + "\n", fails=False, check=_sent_stripped_key),
    Fault(
        "key-dotenv-whitespace",
        "%chat Hi",
        key=None,
        prepare=_dotenv_with_spaces,
        fails=False,
        check=_sent_stripped_key,
    ),
    Fault(
        "key-config-whitespace",
        "%chat Hi",
        key=None,
        setup=(f"%config WriterMagics.api_key = ' {KEY}\\n'",),
        fails=False,
        check=_sent_stripped_key,
    ),
    # §1: a key that cannot go in a header: refused in one line, not shown, nothing sent.
    Fault(
        "key-inner-space",
        "%chat Hi",
        key=KEY[:12] + " " + KEY[12:],
        sent=0,
        says=("whitespace at position 13",),
    ),
    Fault(
        "key-non-ascii",
        "%chat Hi",
        key=KEY[:12] + "é" + KEY[12:],
        sent=0,
        says=("non-ASCII",),
    ),
    Fault(
        "key-control-char",
        "%chat Hi",
        key=KEY[:12] + "\x1b" + KEY[12:],
        sent=0,
        says=("control character",),
    ),
    # §1: %config WriterMagics.api_key prints the key.
    Fault(
        "config-shows-key",
        "%config WriterMagics.api_key",
        key=None,
        setup=(f"%config WriterMagics.api_key = '{KEY}'",),
        sent=0,
        says=("[REDACTED]",),
        fails=False,
    ),
    Fault(
        "config-help-shows-key",
        "%config WriterMagics",
        key=None,
        setup=(f"%config WriterMagics.api_key = '{KEY}'",),
        sent=0,
        says=("[REDACTED]",),
        fails=False,
        max_lines=200,
    ),
    # §1: a 429/5xx body or header that echoes the key; the retry lines too.
    Fault(
        "echo-429-body-and-header",
        "%chat Hi",
        reply=hostile.status(429, _ECHO, {"Retry-After": "0.05", "X-Echo": KEY}),
        config={"max_retries": 2},
        sent=3,
        says=("Rate limited (429)", "[REDACTED]"),
        max_lines=7,
    ),
    Fault(
        "echo-503-retry-after-is-the-key",
        "%chat Hi",
        reply=hostile.sequence(
            hostile.status(503, f"upstream saw Bearer {KEY} and {KEY}", {"Retry-After": KEY}),
            hostile.sse([chunk("Recovered.", "stop"), "data: [DONE]\n\n"]),
        ),
        config={"max_retries": 1},
        sent=2,
        says=("Recovered.",),
        fails=False,
    ),
    Fault(
        "echo-key-cut-at-the-description-limit",
        "%chat Hi",
        reply=hostile.status(400, "x" * 290 + KEY),
        sent=1,
        says=("Writer refused the request (400)",),
    ),
    Fault(
        "echo-key-in-a-malformed-event",
        "%chat Hi",
        reply=hostile.sse([chunk("Some text "), "data: " + "y" * 70 + KEY + "\n\n"]),
        sent=1,
        says=("not JSON", "Some text"),
    ),
    Fault(
        "echo-key-in-an-error-event",
        "%chat Hi",
        reply=hostile.sse([chunk("Partial "), f'event: error\ndata: {{"message": "{KEY}"}}\n\n']),
        sent=1,
        says=("Partial",),
    ),
    # The answer itself echoes the key (a hostile server, or a tool that returned it to the
    # model), cut across chunks: every frame of the live view shows it redacted.
    Fault(
        "echo-key-in-the-answer",
        "%chat Hi",
        reply=hostile.sse(
            [
                chunk("Your key is " + KEY[:12]),
                chunk(KEY[12:] + ". Again: "),
                chunk(KEY + ".", "stop"),
                "data: [DONE]\n\n",
            ]
        ),
        sent=1,
        says=("Your key is [REDACTED]. Again: [REDACTED].",),
        fails=False,
    ),
    Fault(  # the same as plain text (terminal IPython): printed text cannot be taken back,
        # so the end of the stream that may be the start of the key waits
        "echo-key-in-the-answer-as-text",
        "%chat Hi",
        config={"view": "text"},
        reply=hostile.sse(
            [
                chunk("Your key is " + KEY[:3]),
                chunk(KEY[3:12]),
                chunk(KEY[12:] + ". Again: "),
                chunk(KEY + ".", "stop"),
                "data: [DONE]\n\n",
            ]
        ),
        sent=1,
        says=("Your key is [REDACTED]. Again: [REDACTED].",),
        fails=False,
    ),
    Fault(  # the same in a sweep: the side-by-side grid's HTML, Markdown and text
        "echo-key-in-a-sweep",
        "%chat -t 0.2,0.8 Hi",
        reply=hostile.sse(
            [chunk("Your key is " + KEY[:12]), chunk(KEY[12:] + ".", "stop"), "data: [DONE]\n\n"]
        ),
        sent=2,
        says=("Your key is [REDACTED].",),
        fails=False,
        max_lines=12,  # the sweep's stacked text: a title and a usage line a panel
    ),
    Fault(  # ... and the history it keeps (exact, for the model) shows it redacted too
        "echo-key-in-the-answer-then-history",
        "%chat --show",
        setup=("%chat Hi",),
        reply=hostile.sse([chunk("Your key is " + KEY), chunk(".", "stop"), "data: [DONE]\n\n"]),
        sent=1,
        says=("Your key is [REDACTED].",),
        fails=False,
        max_lines=12,
    ),
    Fault(  # ... and a sweep's diff and checks (the texts compared are redacted first)
        "echo-key-in-a-sweep-diffed",
        "%chat -t 0.2,0.8 --diff Hi",
        reply=hostile.sequence(
            hostile.sse([chunk("Key " + KEY), chunk(" here.", "stop"), "data: [DONE]\n\n"]),
            hostile.sse([chunk("Key " + KEY), chunk(" there.", "stop"), "data: [DONE]\n\n"]),
        ),
        sent=2,
        says=("Key [REDACTED] here.", "there"),
        fails=False,
        max_lines=20,
    ),
    Fault(  # the --logprobs picture shows tokens one by one: it is left out, said in a line
        "echo-key-in-logprobs",
        "%chat --logprobs Hi",
        reply=hostile.sse(
            [
                hostile.logprob_chunk(["Key ", KEY[:10], KEY[10:]]),
                hostile.logprob_chunk(["."], "stop"),
                "data: [DONE]\n\n",
            ]
        ),
        sent=1,
        says=("Key [REDACTED].", "The token probabilities are not shown"),
        fails=False,
    ),
    Fault(
        "echo-key-in-401",
        "%chat Hi",
        reply=hostile.status(401, {"errors": [{"description": f"Invalid key {KEY}"}]}),
        sent=1,
        says=("rejected the API key (401)", "WRITER_API_KEY environment variable"),
    ),
]

LOOPBACK = [
    # §2: plain http only to real loopback, decided before any name is resolved.
    Fault(
        "http-127-prefix-host",
        "%chat Hi",
        base_url="http://127.evil.example:{bundled_port}",
        sent=0,
        says=("Refusing to send the API key over plain http",),
    ),
    Fault(
        "http-localhost-suffix",
        "%chat Hi",
        base_url="http://localhost.evil.example:{bundled_port}",
        sent=0,
        says=("Refusing",),
    ),
    Fault("http-localhost", "%chat Hi", base_url="http://localhost:{bundled_port}", fails=False),
    Fault(
        "url-port-out-of-range",
        "%chat Hi",
        base_url="http://127.0.0.1:99999",
        sent=0,
        says=("ports are 1 to 65535",),
    ),
    Fault(
        "url-unclosed-ipv6", "%chat Hi", base_url="http://[::1", sent=0, says=("not a valid URL",)
    ),
    Fault("url-no-host", "%chat Hi", base_url="http://", sent=0, says=("not an http(s) URL",)),
]

HTTP = [
    # §3: Retry-After that is neither a number nor a date -> normal backoff.
    Fault(
        "retry-after-garbage",
        "%chat Hi",
        reply=hostile.sequence(
            hostile.status(429, {"message": "slow down"}, {"Retry-After": "x"}),
            hostile.sse([chunk("Fine now.", "stop"), "data: [DONE]\n\n"]),
        ),
        config={"max_retries": 1},
        sent=2,
        says=("Fine now.",),
        fails=False,
    ),
    # §3: a body that claims gzip but is not.
    Fault(
        "gzip-lie-json",
        "%chat --no-stream Hi",
        reply=hostile.status(
            200,
            b'{"choices": []}',
            {"Content-Encoding": "gzip", "Content-Type": "application/json"},
        ),
        sent=1,
        says=("could not be decoded",),
    ),
    Fault(
        "gzip-lie-stream",
        "%chat Hi",
        reply=hostile.sse([chunk("abc", "stop")], {"Content-Encoding": "gzip"}),
        sent=1,
        says=("could not be decoded",),
    ),
    Fault(
        "gzip-lie-error-body",
        "%chat Hi",
        reply=hostile.status(500, b"not gzip", {"Content-Encoding": "gzip"}),
        sent=1,
        says=("Writer had a problem (500)",),
    ),
    # §3: redirects are reported with their Location, never followed with the key.
    Fault(
        "redirect-302",
        "%chat Hi",
        reply=hostile.status(302, b"", {"Location": "/elsewhere/v1/chat"}),
        sent=1,
        says=("redirected the request (302) to http://127.0.0.1", "/elsewhere/v1/chat"),
    ),
    Fault(
        "redirect-307-with-the-key-in-location",
        "%chat Hi",
        reply=hostile.status(307, b"", {"Location": f"https://other.example/v1/chat?k={KEY}"}),
        sent=1,
        says=("redirected the request (307) to https://other.example/v1/chat",),
    ),
    # §3: --timeout bounds the time without a new event; keep-alive comments don't count.
    Fault(
        "keepalive-comments-only",
        "%chat --timeout 1 Hi",
        reply=hostile.forever(every=": keepalive\n\n", gap=0.1),
        sent=1,
        says=("No new event", "within 1 s"),
    ),
    Fault(
        "keepalive-after-some-text",
        "%chat --timeout 1 Hi",
        reply=hostile.forever(first=[chunk("Hello ")], every=":\n\n", gap=0.1),
        sent=1,
        says=("No new event", "Hello"),
    ),
    Fault(
        "trickle-of-bytes-never-an-event",
        "%chat Hi",
        reply=hostile.forever(first=['data: {"choices": ['], every=" ", gap=0.1),
        config={"read_timeout": 1.0},
        sent=1,
        says=("No new event",),
    ),
    # A line that never ends, arriving fast (no idle wait ever passes): memory is bounded
    # per event, not by read_timeout.
    Fault(
        "flood-of-bytes-never-an-event",
        "%chat Hi",
        reply=hostile.forever(first=[chunk("Hello "), 'data: {"x": "'], every="y" * 65536, gap=0),
        config={"read_timeout": 30.0},
        sent=1,
        says=("sent over 8 MB without ending an event", "Hello"),
    ),
    Fault(
        "flood-of-bytes-in-a-whole-answer",
        "%chat --no-stream Hi",
        reply=hostile.forever(every="x" * 65536, gap=0, content_type="application/json"),
        config={"read_timeout": 30.0},
        sent=1,
        says=("is over 64 MB",),
    ),
    Fault(
        "trickle-of-header-bytes",
        "%chat --timeout 1 Hi",
        reply=hostile.trickle_headers(gap=0.1),
        config={"connect_timeout": 0.5},
        sent=1,
        says=("No new event",),
    ),
    # §3: an endless stream of real events ends at total_timeout.
    Fault(
        "endless-trickle-of-events",
        "%chat Hi",
        reply=hostile.forever(every=chunk("la "), gap=0.05),
        config={"total_timeout": 1.5},
        sent=1,
        says=("total_timeout", "la la"),
    ),
    Fault(
        "endless-after-done",
        "%chat Hi",
        reply=hostile.forever(first=[chunk("All done.", "stop"), "data: [DONE]\n\n"], gap=0.05),
        sent=1,
        says=("All done.",),
        fails=False,
    ),
    Fault(
        "retries-stop-at-total-timeout",
        "%chat Hi",
        # Tries at 0, 0.35 and 0.7 s; the next would start after the 1 s deadline.
        reply=hostile.status(503, {"message": "busy"}, {"Retry-After": "0.35"}),
        config={"max_retries": 10, "total_timeout": 1.0},
        sent=3,
        says=("Writer had a problem (503)",),
    ),
    # §3: NaN or infinite settings are refused when set (every Float trait).
    *[
        Fault(
            f"setting-{name}-{value}",
            f"%config WriterMagics.{name} = float('{value}')",
            sent=0,
            says=("must be a finite number",),
            fails=False,
            check=_unchanged(name),
        )
        for name in _float_traits()
        for value in ("nan", "inf")
    ],
]

RECORDINGS = Path(__file__).parent / "data" / "writer-recordings"
DEEP_JSON = "[" * 50_000 + "]" * 50_000


def _damaged_cache(stage: Stage) -> None:
    """A cache with a torn UTF-8 line and a line nested too deeply to parse."""
    header = b'{"format":"writer-magics-cache","version":1}\n'
    bad = b'{"endpoint": "chat", "body": {"m": "\xff\xfe"}}\n' + DEEP_JSON.encode() + b"\n"
    (stage.data / "cache.jsonl").write_bytes(header + bad)


def _damaged_history(stage: Stage) -> None:
    (stage.work / "bad-utf8.json").write_bytes(b'{"format": "writer-magics-history", "\xff"}')
    (stage.work / "deep.json").write_text(DEEP_JSON, encoding="utf-8")


def _recorded_tool_calls(stage: Stage, output: str) -> None:
    result = stage.shell.user_ns["r"]
    calls = result.choices[0].tool_calls
    assert len(calls) == 2 and all(c["function"]["name"] for c in calls), calls


def _sessions_table_intact(stage: Stage, _output: str) -> None:
    with capture_output() as captured:
        stage.shell.run_cell("%chat --sessions")
    (table,) = [o.data["text/markdown"] for o in captured.outputs]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert all(row.count("|") - row.count("\\|") == rows[0].count("|") for row in rows), table


def _recording(name: str) -> bytes:
    return (RECORDINGS / name).read_bytes()


FILES = [
    # §4: damaged local files never disable the rest.
    Fault(
        "cache-damaged-lines",
        "%%chat --cache\nHi",
        prepare=_damaged_cache,
        sent=1,
        says=("skipped 2 unreadable lines",),
        fails=False,
    ),
    Fault(
        "cache-info-with-damage",
        "%writer cache --info",
        prepare=_damaged_cache,
        sent=0,
        says=("skipped 2 unreadable lines",),
        fails=False,
    ),
    Fault("history-load-bad-utf8", "%chat --load bad-utf8.json", prepare=_damaged_history, sent=0),
    Fault("history-load-deep-json", "%chat --load deep.json", prepare=_damaged_history, sent=0),
]

LIMITS = [
    # §5: limits before sending.
    Fault("n-unbounded", "%chat -n 1000000 Hi", sent=0, says=("-n",)),
    Fault("max-tokens-over-32-bit", "%chat --max-tokens 4294967296 Hi", sent=0),
    Fault("best-of-over-32-bit", "%complete --best-of 4294967296 Once", sent=0),
    Fault(
        "sweep-over-max-sweep",
        "%chat -t 0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 "
        "-m palmyra-x5,palmyra-x4,palmyra-x5a,palmyra-x5b Hi",
        sent=0,
        says=("max_sweep",),
    ),
    Fault("sweep-identical", "%chat -t 0.5,0.5 Hi", sent=1, says=("once",), fails=False),
    *[
        Fault(f"out-name-{name}", f"%chat -o {name} Hi", sent=0)
        for name in ("__builtins__", "class", "1x", "print")
    ],
    Fault(
        "session-name-breaks-table",
        "%chat --session 'a|b`c' Hi",
        sent=1,
        fails=False,
        check=_sessions_table_intact,
    ),
    Fault(
        "prompt-over-size-limit",
        "%%chat\n{big}",
        setup=("big = 'x' * 4_100_000",),
        sent=0,
        says=("--allow-large",),
    ),
    Fault("key-on-the-line", f"%chat -s {KEY} Hi", sent=0),
    # §1: the key typed (or interpolated) into the prompt would come back in the answer.
    Fault("key-in-the-cell-body", f"%%chat\nRemember {KEY} please", sent=0, says=("line 1",)),
    Fault(
        "key-interpolated-into-the-prompt",
        "%%chat\nMy key: {os.environ['WRITER_API_KEY']}",
        setup=("import os",),
        sent=0,
        says=("holds your API key",),
    ),
    Fault(
        "key-in-a-system-prompt-variable",
        "%%chat -s $persona\nHi",
        setup=(f"persona = 'You know the key {KEY}'",),
        sent=0,
        says=("system prompt",),
    ),
]

WIRE = [
    # §6: wire fidelity.
    Fault("graph-not-a-uuid", "%chat --graph my-graph Hi", sent=0, says=("UUID",)),
    Fault(
        "recorded-tool-call-stream",
        "%chat -o r What is the weather?",
        reply=hostile.sse([_recording("writer-framework_palmyra-x-004_tool-calls.sse").decode()]),
        sent=1,
        fails=False,
        check=_recorded_tool_calls,
    ),
    Fault(
        "recorded-401",
        "%chat Hi",
        reply=hostile.status(
            401,
            _recording("writer_401_invalid-key.json"),
            {"Content-Type": "application/json"},
        ),
        sent=1,
        says=("AuthenticationError",),
    ),
]

FAULTS = KEYS + LOOPBACK + HTTP + FILES + LIMITS + WIRE


# ------------------------------------------------------------------ the one test


@pytest.fixture
def resolved(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name handed to ``socket.getaddrinfo`` (the real one still answers)."""
    names: list[str] = []
    real = socket.getaddrinfo

    def spy(host: Any, *args: Any, **kwargs: Any) -> Any:
        names.append(host.decode() if isinstance(host, bytes) else str(host))
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    return names


def run(shell: InteractiveShell, cell: str, cell_id: str) -> tuple[CapturedIO, Any]:
    with capture_output() as captured:
        result = shell.run_cell(cell, cell_id=cell_id)
    return captured, result


def shown(captured: CapturedIO, logged: str = "") -> str:
    """Everything a user sees: stdout, stderr, each display's text, logged config errors."""
    parts = [captured.stdout, captured.stderr, logged]
    for output in captured.outputs:
        parts.extend(str(value) for value in output.data.values())
    return "\n".join(part for part in parts if part)


def final_lines(captured: CapturedIO, logged: str) -> list[str]:
    """The lines the cell leaves: stdout/stderr, the last display, config errors."""
    parts = [captured.stdout, captured.stderr, logged]
    if captured.outputs:
        parts.append(str(captured.outputs[-1].data.get("text/plain", "")))
    return [line for part in parts for line in part.splitlines() if line.strip()]


@pytest.fixture
def stage(server: ServerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    data.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("WRITER_API_KEY", raising=False)
    monkeypatch.setenv("WRITER_BASE_URL", server.url)
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "writer_magics")
    for line in (
        "WriterMagics.view = 'markdown'",
        "WriterMagics.max_retries = 0",
        "WriterMagics.cache = True",
        f"WriterMagics.cache_path = {str(data / 'cache.jsonl')!r}",
        f"WriterMagics.log_path = {str(data / 'log.sqlite3')!r}",
    ):
        shell.run_line_magic("config", line)
    yield Stage(work, data, None, server, shell, monkeypatch)
    shell.run_line_magic("unload_ext", "writer_magics")
    InteractiveShell.clear_instance()


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault(
    fault: Fault, stage: Stage, resolved: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    shell, monkeypatch = stage.shell, stage.monkeypatch
    with Hostile(fault.reply or hostile.status(500)) as server:
        stage.hostile = server
        target = fault.base_url or ("{hostile}" if fault.reply else "{bundled}")
        monkeypatch.setenv(
            "WRITER_BASE_URL",
            target.format(
                hostile=server.url, bundled=stage.bundled.url, bundled_port=stage.bundled.port
            ),
        )
        if fault.key is not None:
            monkeypatch.setenv("WRITER_API_KEY", fault.key)
        for name, value in fault.config.items():
            shell.run_line_magic("config", f"WriterMagics.{name} = {value!r}")
        if fault.prepare is not None:
            fault.prepare(stage)
        before, _ = run(shell, "\n".join(fault.setup), "setup") if fault.setup else (None, None)
        caplog.clear()
        captured, result = run(shell, fault.cell, "fault")
        logged = caplog.text
        received = len(server.received) if fault.reply else len(stage.bundled.requests)

    output = shown(captured, logged) + ("" if before is None else shown(before))
    lines = final_lines(captured, logged)
    if os.environ.get("SHOW_FAULTS"):
        print(f"\n==== {fault.id}\n" + "\n".join(lines))
    assert "Traceback" not in output, output
    assert "Retrying in" not in output, output  # retries show in the live status only
    assert len(lines) <= fault.max_lines, "\n".join(lines)
    for text in fault.says:
        assert text in output, output
    assert (result.error_in_exec is not None) == fault.fails, output
    assert received == fault.sent
    for piece in {KEY[:PIECE], (fault.key or KEY).strip()[:PIECE]}:
        assert piece not in output, output
        for path in stage.data.rglob("*"):
            assert piece.encode() not in path.read_bytes(), path
    strange = [name for name in resolved if not _loopback(name)]
    assert strange == [], f"resolved {strange}"
    if fault.check is not None:
        fault.check(stage, output)

    # The next cell works: the bundled server, a good key, the same shell.
    for name in fault.config:  # settings the case did not make stay as they are
        shell.run_line_magic("config", f"WriterMagics.{name} = {_default(name)!r}")
    monkeypatch.setenv("WRITER_BASE_URL", stage.bundled.url)
    monkeypatch.setenv("WRITER_API_KEY", KEY)
    (stage.work / ".env").unlink(missing_ok=True)
    shell.run_line_magic("config", "WriterMagics.api_key = ''")
    stage.bundled.clear()
    after, result = run(shell, "%%chat\nAre you still there?", "next")
    assert result.error_in_exec is None, shown(after)
    assert len(stage.bundled.requests) == 1


def _default(name: str) -> Any:
    return WriterMagics.class_traits()[name].default_value


def _loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
