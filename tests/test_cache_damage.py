"""Issue 12 §4 and §1 (cache side): damaged cache files never disable the rest, two
processes never write the header twice, ``--clear`` on a file that cannot be removed
is one line, and the key is redacted from everything the cache writes.

Through a real shell against the bundled server (and a stdlib stand-in that echoes
the key back) on 127.0.0.1, counting requests at the server.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO

from tests.conftest import API_KEY, run
from writer_magics.errors import CacheError
from writer_magics.request import chat_request
from writer_magics.server import ServerHandle
from writer_magics.transport import events as api
from writer_magics.transport.cache import ResponseCache
from writer_magics.transport.events import TextDelta, ToolCallDelta

ROOT = Path(__file__).resolve().parent.parent
DEEP = "[" * 100_000 + "]" * 100_000


def seen(captured: CapturedIO) -> str:
    parts = [captured.stdout, captured.stderr]
    for output in captured.outputs:
        parts.extend(str(v) for v in output.data.values())
    return "\n".join(parts)


@pytest.fixture
def cache_path(shell: InteractiveShell, tmp_path: Path) -> Path:
    path = tmp_path / "cache.jsonl"
    shell.run_line_magic("config", f"WriterMagics.cache_path = {str(path)!r}")
    shell.run_line_magic("config", "WriterMagics.log = False")
    return path


def damage(path: Path) -> None:
    """A line of bad UTF-8 (a disk that filled up mid-write) and one nested too deep."""
    with path.open("ab") as file:
        file.write(b'{"endpoint": "chat", "body": {"model": "\xff\xfe\xc3"}}\n')
        file.write(DEEP.encode() + b"\n")


def test_bad_utf8_and_deep_json_lines_are_skipped_counted_and_told_once(
    shell: InteractiveShell, server: ServerHandle, cache_path: Path, tmp_path: Path
) -> None:
    first = run(shell, "%%chat --cache --new -o a\nFirst question")
    run(shell, "%%chat --cache --new -o b\nSecond question")
    assert not first.stderr
    damage(cache_path)
    server.clear()

    info = run(shell, "%writer cache --info")
    assert info.result.success, seen(info)
    assert "2 answers" in info.stdout and "skipped 2 unreadable lines" in info.stdout
    assert "Traceback" not in seen(info) and len(seen(info).strip().splitlines()) == 1

    hit = run(shell, "%%chat --cache --new -o again\nFirst question")
    assert hit.result.success, seen(hit)
    assert server.requests == []  # the good entry still answers
    assert shell.user_ns["again"].text == shell.user_ns["a"].text
    assert shell.user_ns["again"].status == "cached"
    # --info already told this count; a fresh damage is told at the next cached cell.
    assert "unreadable" not in hit.stderr
    damage(cache_path)
    told = run(shell, "%%chat --cache --new\nSecond question")
    assert told.stderr.count("skipped 4 unreadable lines") == 1
    assert "Traceback" not in seen(told) and server.requests == []
    quiet = run(shell, "%%chat --cache --new\nSecond question")
    assert "unreadable" not in quiet.stderr and server.requests == []

    shipped = tmp_path / "ship.jsonl"
    export = run(shell, f"%writer cache --export {shipped}")
    assert export.result.success and "Exported 2 cached answers" in export.stdout
    assert "skipped 4 unreadable lines" in export.stdout
    assert len(ResponseCache(shipped)) == 2 and ResponseCache(shipped).skipped == 0

    cleared = run(shell, "%writer cache --clear")
    assert cleared.result.success and "Removed 2 cached answers" in cleared.stdout
    assert not cache_path.exists()


def test_a_deep_line_does_not_break_replay_mode(
    shell: InteractiveShell, server: ServerHandle, cache_path: Path, tmp_path: Path
) -> None:
    run(shell, "%%complete --cache --random-seed 1\nReplay me")
    shipped = tmp_path / "answers.jsonl"
    run(shell, f"%writer cache --export {shipped}")
    damage(shipped)
    shell.run_line_magic("config", f"WriterMagics.replay = {str(shipped)!r}")
    server.clear()
    replayed = run(shell, "%%complete --random-seed 1 -o r\nReplay me")
    assert replayed.result.success, seen(replayed)
    assert shell.user_ns["r"].text and server.requests == []
    assert replayed.stderr.count("skipped 2 unreadable lines") == 1


CREATE = """
import sys, time
from pathlib import Path
from writer_magics.errors import CacheError
from writer_magics.transport.cache import ResponseCache
from writer_magics.transport.events import TextDelta
folder, me, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
start = folder / "go"
while not start.exists():
    time.sleep(0.001)
for n in range(rounds):
    body = {"model": "m", "prompt": f"{me}-{n}"}
    ResponseCache(folder / f"cache{n}.jsonl").put("completions", body, [TextDelta(me)])
"""


def test_two_processes_creating_the_cache_write_one_header(tmp_path: Path) -> None:
    rounds = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, str(tmp_path), name, str(rounds)],
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        for name in ("one", "two")
    ]
    (tmp_path / "go").touch()
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    for n in range(rounds):
        path = tmp_path / f"cache{n}.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        assert sum('"format":"writer-magics-cache"' in line for line in lines) == 1, lines
        assert lines[0].startswith('{"format"')
        cache = ResponseCache(path)
        assert len(cache) == 2 and cache.skipped == 0


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Path]:
    """A directory (and its files) even root cannot change (``chattr +i``; skipped where
    unsupported).

    Root ignores permission bits, so a read-only mode would not stop these tests; an
    immutable directory makes ``unlink`` fail with EPERM as a read-only mount does
    (EROFS): both are an ``OSError`` on the same call.
    """
    folder = tmp_path / "locked"
    folder.mkdir()
    yield folder
    if shutil.which("chattr"):
        for path in (folder, *folder.iterdir()):
            subprocess.run(["chattr", "-i", str(path)], check=False)


def _lock(*paths: Path) -> None:
    if not shutil.which("chattr"):
        pytest.skip("chattr is not available")
    done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")


def test_clear_on_a_file_that_cannot_be_removed_is_one_line(
    shell: InteractiveShell, server: ServerHandle, immutable: Path
) -> None:
    path = immutable / "cache.jsonl"
    shell.run_line_magic("config", f"WriterMagics.cache_path = {str(path)!r}")
    run(shell, "%%chat --cache --new\nKeep me")
    before = path.read_bytes()
    _lock(path, immutable)
    cleared = run(shell, "%writer cache --clear")
    assert not cleared.result.success
    text = seen(cleared) + "".join(cleared.rendered_error())
    assert "Traceback" not in text
    lines = cleared.rendered_error()
    assert len(lines) == 1 and "Cannot clear the cache" in lines[0]
    assert "nothing was removed" in lines[0]
    assert path.read_bytes() == before
    server.clear()
    hit = run(shell, "%%chat --cache --new\nKeep me")  # the next cell still works
    assert hit.result.success and server.requests == []
    # Writing a new entry there is one warning line and the answer still shows.
    fresh = run(shell, "%%chat --cache --new -o f\nSomething new")
    assert fresh.result.success and shell.user_ns["f"].text
    assert "Warning: the answer was not cached: Cannot write the cache" in fresh.stderr


# --------------------------------------------------------------------------- the key


class _EchoKey(BaseHTTPRequestHandler):
    """Streams an answer and a tool call that quote the request's key, split in pieces."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        half = len(key) // 2
        pieces: list[dict[str, Any]] = [
            {"delta": {"content": "Your key is " + key[:half]}},
            {"delta": {"content": key[half:] + "."}},
            {
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"k": "' + key[:3]},
                        }
                    ]
                }
            },
            {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": key[3:] + '"}'}}]}},
            {
                "delta": {"graph_data": {"sources": [{"snippet": f"token {key}"}]}},
                "finish_reason": "stop",
            },
        ]
        body = (
            b"".join(
                b"data: " + json.dumps({"choices": [{"index": 0, **p}]}).encode() + b"\n\n"
                for p in pieces
            )
            + b"data: [DONE]\n\n"
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_key_in_answers_and_tool_results_is_redacted_in_the_cache_and_exports(
    shell: InteractiveShell, tmp_path: Path, cache_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoKey)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("WRITER_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
        first = run(shell, "%%chat --cache --new -o a\nRepeat my key")
        assert first.result.success, seen(first)
        assert API_KEY in shell.user_ns["a"].text  # the answer itself is what was sent
        stored = cache_path.read_text(encoding="utf-8")
        assert API_KEY not in stored and "[REDACTED]" in stored
        again = run(shell, "%%chat --cache --new -o b\nRepeat my key")
        assert again.result.success and shell.user_ns["b"].status == "cached"
        assert shell.user_ns["b"].text == "Your key is [REDACTED]."
        shipped = tmp_path / "ship.jsonl"
        run(shell, f"%writer cache --export {shipped}")
        assert API_KEY not in shipped.read_text(encoding="utf-8")
    finally:
        server.shutdown()
        server.server_close()


def test_tool_results_in_the_request_are_redacted_and_still_found(tmp_path: Path) -> None:
    key = "sk-tool-SECRET-123456"
    cache = ResponseCache(tmp_path / "c.jsonl", secrets=lambda: [key])
    body = chat_request(
        model="palmyra-x5",
        messages=[
            {"role": "user", "content": "read the env"},
            {"role": "tool", "tool_call_id": "c1", "content": f"WRITER_API_KEY={key}"},
        ],
    )
    cache.put(
        "chat",
        body,
        [TextDelta("It is " + key[:5]), TextDelta(key[5:]), ToolCallDelta(index=0, arguments=key)],
    )
    assert key not in cache.path.read_text(encoding="utf-8")
    hit = ResponseCache(cache.path, secrets=lambda: [key]).get("chat", body)
    assert hit is not None
    assert hit.events[0] == TextDelta("It is [REDACTED]")
    # A cache written before the key was known is redacted on export.
    old = ResponseCache(tmp_path / "old.jsonl")
    old.put("chat", body, [TextDelta(key)])
    assert key in old.path.read_text(encoding="utf-8")
    old.secrets = lambda: [key]
    old.export(tmp_path / "out.jsonl")
    assert key not in (tmp_path / "out.jsonl").read_text(encoding="utf-8")


def test_a_deeply_nested_line_alone_costs_one_entry(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    body = {"model": "m", "prompt": "q"}
    ResponseCache(path).put("completions", body, [TextDelta("A")])
    with path.open("a", encoding="utf-8") as file:
        file.write('{"endpoint": "chat", "body": ' + DEEP + "}\n")
    cache = ResponseCache(path)
    hit = cache.get("completions", body)
    assert hit is not None and hit.events == (TextDelta("A"),)
    assert cache.skipped == 1
    assert cache.take_notice() == f"skipped 1 unreadable line in the cache {path}"
    assert cache.take_notice() is None


def test_a_key_spelled_over_several_logprob_tokens_is_redacted(tmp_path: Path) -> None:
    key = "sk-tok-SECRET-99"
    cache = ResponseCache(tmp_path / "c.jsonl", secrets=lambda: [key])
    pieces = ["Key: ", "sk-tok", "-SECRET", "-99", " done"]
    events: list[api.Event] = [TextDelta(p) for p in pieces]
    events += [
        api.LogprobsDelta(
            tuple({"token": p, "logprob": -0.1, "top_logprobs": [{"token": p}]} for p in pieces)
        )
    ]
    cache.put("chat", {"model": "m", "messages": []}, events)
    stored = cache.path.read_text(encoding="utf-8")
    assert "SECRET" not in stored
    entry = cache.get("chat", {"model": "m", "messages": []})
    assert entry is not None and len(cache) == 1
    (logprobs,) = [e for e in entry.events if isinstance(e, api.LogprobsDelta)]
    assert [t["token"] for t in logprobs.tokens] == [
        "Key: ", "[REDACTED]", "[REDACTED]", "[REDACTED]", " done",
    ]  # fmt: skip


class _EmptyStream(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_empty_answer_with_cache_is_not_a_traceback(
    shell: InteractiveShell, cache_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyStream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("WRITER_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
        captured = run(shell, "%%complete --cache\nNothing comes back")
        assert captured.result.success, seen(captured)
        assert "Traceback" not in seen(captured)
        assert not cache_path.exists() or len(ResponseCache(cache_path)) == 0
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("depth", [500, 900])
def test_a_line_deep_enough_to_parse_but_not_to_copy_is_skipped(tmp_path: Path, depth: int) -> None:
    """json.loads accepts ~1000 levels, but redacting, comparing or copying such an
    entry in Python ran out of stack (export and import died with RecursionError)."""
    path = tmp_path / "c.jsonl"
    good = {"model": "m", "prompt": "q"}
    ResponseCache(path).put("completions", good, [TextDelta("A")])
    nested = "[" * depth + "]" * depth
    line = '{"endpoint":"completions","body":{"model":"m","prompt":"deep","x":' + nested + "}"
    with path.open("a", encoding="utf-8") as file:
        file.write(line + ',"events":[{"event":"text","text":"B"}]}\n')
    cache = ResponseCache(path, secrets=lambda: ["sk-some-key-1234"])
    assert len(cache) == 1 and cache.skipped == 1
    assert cache.export(tmp_path / "out.jsonl") == 1
    with pytest.raises(CacheError, match="line 3: nested deeper than 200 levels"):
        ResponseCache(tmp_path / "other.jsonl").import_(path)
    deep_value = json.loads(nested)
    with pytest.raises(CacheError, match="nested too deeply"):
        cache.put("completions", good, [api.DataDelta("graph_data", {"x": deep_value})])


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """A real read-only file system: a tmpfs mounted, filled, then remounted ``ro``.

    Needs root with CAP_SYS_ADMIN (skipped otherwise; the chattr test covers the
    same failure on the same calls).
    """
    folder = tmp_path / "ro"
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_clear_export_and_log_on_a_read_only_file_system(
    shell: InteractiveShell, server: ServerHandle, read_only_mount: Path
) -> None:
    cache = read_only_mount / "cache.jsonl"
    log = read_only_mount / "log.sqlite3"
    shell.run_line_magic("config", f"WriterMagics.cache_path = {str(cache)!r}")
    shell.run_line_magic("config", f"WriterMagics.log_path = {str(log)!r}")
    run(shell, "%%chat --cache --new\nKeep me")
    assert cache.exists() and log.exists()
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_mount)], check=True)
    before = cache.read_bytes()

    for line, words in [
        ("%writer cache --clear", "Cannot clear the cache"),
        (f"%writer cache --export {read_only_mount / 'out.jsonl'}", "Cannot write"),
        (f"%writer log --export {read_only_mount / 'log.jsonl'}", "Cannot write"),
    ]:
        captured = run(shell, line)
        assert not captured.result.success
        lines = captured.rendered_error()
        assert len(lines) == 1 and words in lines[0] and "Read-only file system" in lines[0]
        assert "Traceback" not in seen(captured)
    assert cache.read_bytes() == before

    server.clear()
    hit = run(shell, "%%chat --cache --new -o h\nKeep me")  # still answers from the cache
    assert hit.result.success and server.requests == [] and shell.user_ns["h"].text
    fresh = run(shell, "%%chat --cache --new -o f\nSomething new")
    assert fresh.result.success and shell.user_ns["f"].text
    warnings = [w for w in fresh.stderr.splitlines() if w]
    assert any("not cached" in w and "Read-only file system" in w for w in warnings)
    assert len(warnings) <= 2 and "Traceback" not in seen(fresh)
