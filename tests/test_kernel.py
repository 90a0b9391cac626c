"""What only a real kernel shows: iopub traffic while an answer streams, interrupts,
and a dropped stream, with jupyter_client + ipykernel against the bundled server."""

from __future__ import annotations

import json
import os
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.conftest import API_KEY
from tests.kernel_env import answer_markdown, saved_outputs, started_kernel
from writer_magics.server import ServerHandle, start_server

pytestmark = pytest.mark.timeout(120)


@dataclass
class Execution:
    """Every iopub message of one execute request, with arrival times."""

    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    reply: dict[str, Any] | None = None
    reply_time: float = 0.0

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for _, m in self.messages if m["header"]["msg_type"] in types]

    def text_updates(self) -> list[tuple[float, str]]:
        """(time, markdown text) of every widget/display update carrying answer text."""
        found = []
        for at, msg in self.messages:
            kind = msg["header"]["msg_type"]
            content = msg["content"]
            if kind == "comm_msg":
                state = content.get("data", {}).get("state", {})
                for output in state.get("outputs", []) or []:
                    text = output.get("data", {}).get("text/markdown")
                    if text:
                        found.append((at, text))
            elif kind in ("display_data", "update_display_data"):
                text = content.get("data", {}).get("text/markdown")
                if text:
                    found.append((at, text))
        return found


@pytest.fixture(scope="module")
def paced_server() -> Iterator[ServerHandle]:
    with start_server() as handle:
        yield handle


@pytest.fixture(scope="module")
def kernel(paced_server: ServerHandle) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    env = dict(os.environ, WRITER_BASE_URL=paced_server.url, WRITER_API_KEY=API_KEY)
    with started_kernel(env) as (manager, client):
        execute(client, "%load_ext writer_magics")
        yield manager, client


def execute(
    client: BlockingKernelClient,
    code: str,
    *,
    on_message: Any = None,
    timeout: float = 60,
    allow_stdin: bool | None = None,
) -> Execution:
    """Run code and collect its iopub messages until the kernel is idle again."""
    msg_id = client.execute(code, allow_stdin=allow_stdin)
    result = Execution()
    deadline = time.monotonic() + timeout
    idle = False
    while not idle and time.monotonic() < deadline:
        try:
            msg = client.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        now = time.monotonic()
        result.messages.append((now, msg))
        if on_message is not None:
            on_message(msg, now)
        if msg["header"]["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            idle = True
    # The shell channel may still hold an older reply (a late kernel_info reply from
    # wait_for_ready, for one): take the reply to this request, not the next one.
    reply = client.get_shell_msg(timeout=10)
    while reply["parent_header"].get("msg_id") != msg_id:  # e.g. a spare kernel_info_reply
        reply = client.get_shell_msg(timeout=10)
    result.reply = reply["content"]
    result.reply_time = time.monotonic()
    assert idle, f"the kernel did not go idle within {timeout} s"
    return result


def final_markdown(run: Execution) -> str:
    """The answer's Markdown as the saved notebook keeps it (all its pieces)."""
    everything = json.dumps([m["content"] for _, m in run.messages], default=str)
    assert "application/vnd.jupyter.widget-view+json" not in everything
    return answer_markdown(m for _, m in run.messages)


def test_text_arrives_progressively_and_a_static_answer_stays(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    _, client = kernel
    run = execute(client, "%%chat -o a\nExplain tides in several paragraphs [[tps:60]]")
    assert run.reply is not None and run.reply["status"] == "ok"
    updates = run.text_updates()
    live = [(at, text) for at, text in updates if at < run.messages[-1][0]]
    assert len(live) >= 3, "expected several live updates before the end"
    span = live[-1][0] - live[0][0]
    assert span > 0.3, "updates should be spread over the stream, not sent at the end"
    assert not run.of_type("comm_open", "comm_msg"), "one answer opens no widget (issue 14 §7)"
    answer = execute(client, "print(a.text)").of_type("stream")[0]["content"]["text"].strip()
    outputs = saved_outputs(m for _, m in run.messages)
    plain = "".join(o["data"].get("text/plain", "") for o in outputs[1:-1])
    assert answer and plain.strip() == answer, "the pieces hold the answer, raw, once"
    final = final_markdown(run)
    assert "tides" in final.lower() or answer[:20] in final
    assert "tokens" in outputs[-1]["data"]["text/plain"], "the usage line should survive"
    assert API_KEY not in json.dumps([m["content"] for _, m in run.messages], default=str)


def test_interrupt_returns_quickly_and_keeps_the_partial_answer(
    kernel: tuple[KernelManager, BlockingKernelClient], paced_server: ServerHandle
) -> None:
    manager, client = kernel
    interrupted_at: list[float] = []

    def interrupt_after_text(msg: dict[str, Any], now: float) -> None:
        if interrupted_at or msg["header"]["msg_type"] not in (
            "display_data",
            "update_display_data",
        ):
            return
        if msg["content"].get("data", {}).get("text/markdown"):
            manager.interrupt_kernel()
            interrupted_at.append(now)

    run = execute(
        client, "%%chat\nA very long story please [[tps:15]]", on_message=interrupt_after_text
    )
    assert interrupted_at, "no text arrived to interrupt"
    assert run.reply is not None and run.reply["status"] == "error"
    assert run.reply_time - interrupted_at[0] < 1.0  # "control returns within a second"
    final = final_markdown(run)
    assert final.strip()
    everything = json.dumps([m["content"] for _, m in run.messages], default=str)
    assert "interrupted" in everything.lower()
    finished = paced_server.wait_for_requests(len(paced_server.requests), timeout=5)
    (stopped,) = [r for r in finished if "long story" in json.dumps(r.body)]
    assert stopped.disconnected, "the interrupted HTTP stream should be closed"
    after = execute(client, "%%chat -o b\nShort answer please")
    assert after.reply is not None and after.reply["status"] == "ok"
    sent = paced_server.requests[-1].body["messages"]
    users = [m["content"] for m in sent if m["role"] == "user"]
    assert "A very long story please [[tps:15]]" not in users, "history must be unchanged"
    assert users[-1] == "Short answer please"


def test_dropped_stream_is_one_line_and_keeps_the_text(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    _, client = kernel
    run = execute(client, "%%chat\nTell me a story [[fault:drop]]")
    assert run.reply is not None and run.reply["status"] == "error"
    (error,) = run.of_type("error")
    traceback = error["content"]["traceback"]
    assert 1 <= len(traceback) <= 2, traceback
    assert "broke" in traceback[0] or "ended" in traceback[0]
    assert final_markdown(run).strip(), "the partial text should stay"


def test_confirm_without_stdin_is_one_line_before_anything_is_sent(
    kernel: tuple[KernelManager, BlockingKernelClient], paced_server: ServerHandle
) -> None:
    """nbclient, papermill and ``record`` run cells with ``allow_stdin: false``: --confirm
    could never be answered, so it is refused before the first request."""
    _, client = kernel
    execute(client, "def get_weather(city: str) -> str:\n    'Weather.'\n    return 'sunny'")
    before = len(paced_server.requests)
    run = execute(
        client,
        "%%chat --tools get_weather --confirm\nUse get_weather for Paris",
        allow_stdin=False,
    )
    text = json.dumps([m["content"] for _, m in run.messages])
    assert "--confirm asks before each call" in text and "nothing was sent" in text, text
    assert "Traceback" not in text and "StdinNotImplementedError" not in text, text
    assert len(paced_server.requests) == before
