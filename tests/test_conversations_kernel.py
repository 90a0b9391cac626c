"""Conversations in a real kernel (jupyter_client + ipykernel) against the bundled server:
cell ids sent as JupyterLab sends them (``metadata.cellId`` of ``execute_request``),
and an interrupted answer kept on ``-o`` / ``last_result`` but not in the history."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.kernel_env import kernel_env, started_kernel
from writer_magics.server import ServerHandle, start_server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def kernel_server() -> Iterator[ServerHandle]:
    with start_server() as handle:
        yield handle


@pytest.fixture(scope="module")
def kernel(kernel_server: ServerHandle) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    with started_kernel(kernel_env(kernel_server.url)) as (manager, client):
        execute(client, "%load_ext writer_magics\n%config WriterMagics.max_retries = 0")
        yield manager, client


def execute(
    client: BlockingKernelClient,
    code: str,
    cell_id: str | None = None,
    *,
    on_message: Any = None,
    timeout: float = 60,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``code`` as JupyterLab does (``cellId`` in the metadata); (reply, iopub messages)."""
    content = {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    metadata = {"cellId": cell_id} if cell_id else {}
    msg = client.session.msg("execute_request", content, metadata=metadata)
    client.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    idle = False
    while not idle and time.monotonic() < deadline:
        try:
            got = client.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            continue
        if got["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(got)
        if on_message is not None:
            on_message(got)
        state = got["content"].get("execution_state")
        idle = got["header"]["msg_type"] == "status" and state == "idle"
    assert idle, f"the kernel did not go idle within {timeout} s"
    while True:
        reply = client.get_shell_msg(timeout=10)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"], messages


def printed(messages: list[dict[str, Any]]) -> str:
    return "".join(m["content"]["text"] for m in messages if m["header"]["msg_type"] == "stream")


def users(server: ServerHandle, index: int = -1) -> list[str]:
    body = server.requests[index].body
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def test_cell_ids_from_the_frontend_group_turns(
    kernel: tuple[KernelManager, BlockingKernelClient], kernel_server: ServerHandle
) -> None:
    _, client = kernel
    execute(client, "%chat --reset")
    kernel_server.clear()
    cell = "%chat --session k First\n%chat --session k Second"
    reply, _ = execute(client, cell, cell_id="kernel-cell-a")
    assert reply["status"] == "ok"
    assert [users(kernel_server, i) for i in (0, 1)] == [["First"], ["First", "Second"]]
    execute(client, "%chat --session k Later", cell_id="kernel-cell-b")
    kernel_server.clear()
    execute(client, cell, cell_id="kernel-cell-a")  # re-run: replaces both, sees nothing later
    assert [users(kernel_server, i) for i in (0, 1)] == [["First"], ["First", "Second"]]
    _, messages = execute(
        client,
        "print([t.user for t in get_ipython().magics_manager.registry['WriterMagics']"
        ".sessions['k'].turns])",
    )
    assert printed(messages).strip() == "['First', 'Second', 'Later']"


def test_interrupted_answer_goes_to_out_and_last_result_not_history(
    kernel: tuple[KernelManager, BlockingKernelClient], kernel_server: ServerHandle
) -> None:
    manager, client = kernel
    execute(client, "%%chat --session story\nA short opening", cell_id="opening")
    interrupted: list[bool] = []

    def interrupt_after_text(msg: dict[str, Any]) -> None:
        if interrupted or msg["header"]["msg_type"] not in ("display_data", "update_display_data"):
            return
        if msg["content"].get("data", {}).get("text/markdown"):  # answer text on screen
            manager.interrupt_kernel()
            interrupted.append(True)

    reply, _ = execute(
        client,
        "%%chat --session story -o partial\nA very long story please [[tps:15]]",
        cell_id="story",
        on_message=interrupt_after_text,
    )
    assert interrupted, "no text arrived to interrupt"
    assert reply["status"] == "error"
    check = (
        "import json\n"
        "m = get_ipython().magics_manager.registry['WriterMagics']\n"
        "print(json.dumps({'interrupted': partial.interrupted, 'status': partial.status,\n"
        "    'text': bool(partial.text), 'same': m.last_result is partial,\n"
        "    'turns': [t.user for t in m.sessions['story'].turns]}))"
    )
    reply, messages = execute(client, check)
    assert reply["status"] == "ok", reply
    seen = json.loads(printed(messages))
    assert seen == {
        "interrupted": True,
        "status": "interrupted",
        "text": True,
        "same": True,
        "turns": ["A short opening"],  # the history is unchanged
    }
    # %%complete keeps its partial answer the same way
    interrupted.clear()
    execute(
        client,
        "%%complete -o partial_completion --max-tokens 400\nOnce upon a time [[tps:15]]",
        on_message=interrupt_after_text,
    )
    assert interrupted
    reply, messages = execute(client, "print(partial_completion.interrupted)")
    assert printed(messages).strip() == "True"
