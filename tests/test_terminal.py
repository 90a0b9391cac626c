"""Terminal IPython in a real pseudo-terminal (issue 14 §16): ``%chat`` against the
bundled server shows a waiting indicator until the first token (erased in place), and
every panel of a sweep has its title."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import hostile
from tests.hostile import Hostile, chunk
from tests.kernel_env import REPO, kernel_env
from writer_magics.server import ServerHandle

WAITING = "waiting for the first token…"


def run_terminal_ipython(server: ServerHandle | Hostile, tmp_path: Path, lines: list[str]) -> str:
    """Type ``lines`` into ``ipython`` on a pty; everything it wrote (bounded: 60 s)."""
    env = kernel_env(server.url)
    env.update(
        PYTHONPATH=str(REPO),
        IPYTHONDIR=str(tmp_path / "ipython"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        TERM="xterm",
        NO_COLOR="1",
    )
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "IPython", "--no-banner", "--simple-prompt", "--colors=NoColor"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(slave)
    script = "".join(f"{line}\n" for line in [*lines, "exit"]).encode()
    os.write(master, script)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.timeout(90)
def test_terminal_ipython_waits_visibly_and_titles_every_sweep_panel(
    server: ServerHandle, tmp_path: Path
) -> None:
    shown = run_terminal_ipython(
        server,
        tmp_path,
        [
            "%load_ext writer_magics",
            "%chat --max-tokens 8 [[tps:40]] Say hello",
            "%chat --session s -t 0,1 --max-tokens 8 [[tps:40]] Name a colour",
        ],
    )
    assert "Traceback" not in shown, shown
    first = shown.partition("--- t=0 ---")[0]
    # the indicator stands until the first token, then is erased in place
    assert f"{WAITING}\r\x1b[2K" in first, first
    answer = first.split(f"{WAITING}\r\x1b[2K", 1)[1]
    assert answer.strip()[:1].isalnum() or answer.strip()[:1] in "*#", answer
    assert "--- t=0 ---" in shown and "--- t=1 ---" in shown, shown
    assert shown.index("--- t=0 ---") < shown.index("--- t=1 ---")
    assert [r.path for r in server.requests].count("/v1/chat") == 3


@pytest.mark.timeout(90)
def test_terminal_ipython_shows_an_answers_control_characters_without_acting_on_them(
    tmp_path: Path,
) -> None:
    """An answer (or a hostile server) cannot retitle, clear or rewrite the terminal,
    neither while it streams nor when ``--show`` prints the history."""
    nasty = "Hi\x1b]0;pwned\x07 there\x1b[2J, friend\rX"
    reply = hostile.sse([chunk(nasty), chunk("", "stop"), "data: [DONE]\n\n"])
    with Hostile(reply) as server:
        shown = run_terminal_ipython(
            server, tmp_path, ["%load_ext writer_magics", "%chat Hello", "%chat --show"]
        )
    assert "Traceback" not in shown, shown
    # (IPython sets its own title with ESC ] 0; the answer's must not get through)
    assert "\x1b]0;pwned" not in shown and "\x1b[2J" not in shown and "\rX" not in shown, shown
    assert shown.count("Hi␛]0;pwned␇ there␛[2J, friend␍X") == 2, shown  # streamed, --show
