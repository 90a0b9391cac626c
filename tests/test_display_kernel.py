"""A frontend without a widget manager: what the kernel sends must read well there too.

A real kernel (jupyter_client + ipykernel) streams an answer with dollar signs from
the stand-in. Such a frontend shows every ``display_data``/``stream`` message and the
``text/plain`` of the widget display, and ignores comm traffic; so the answer may
travel only in widget state while it streams, and the static finish must be the one
answer the saved notebook keeps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests.conftest import API_KEY
from tests.kernel_env import started_kernel
from tests.standin import StandIn, stand_in, text_reply
from tests.test_kernel import execute

pytestmark = pytest.mark.timeout(120)

PARAGRAPHS = [f"Option {i} costs ${10 * i} and the next one ${10 * i + 5}." for i in range(1, 25)]
ANSWER = "\n\n".join(PARAGRAPHS)
WIDGET = "application/vnd.jupyter.widget-view+json"


def _pieces(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.fixture(scope="module")
def priced() -> Iterator[StandIn]:
    with stand_in(text_reply(*_pieces(ANSWER), pause=0.01)) as handle:
        yield handle


@pytest.fixture(scope="module")
def kernel(priced: StandIn) -> Iterator[BlockingKernelClient]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRITER_")}
    env.update(WRITER_BASE_URL=priced.url, WRITER_API_KEY=API_KEY)
    with started_kernel(env) as (_manager, client):
        execute(client, "%load_ext writer_magics")
        yield client


def _saved_outputs(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cell's outputs as a frontend without widgets keeps them (display ids honoured)."""
    outputs: list[dict[str, Any]] = []
    ids: dict[str, int] = {}
    for msg in messages:
        kind, content = msg["header"]["msg_type"], msg["content"]
        display_id = (content.get("transient") or {}).get("display_id")
        if kind == "update_display_data":
            if display_id in ids:
                outputs[ids[display_id]] = content["data"]
        elif kind in ("display_data", "execute_result"):
            if display_id:
                ids[display_id] = len(outputs)
            outputs.append(content["data"])
        elif kind == "stream":
            outputs.append({"text/plain": content["text"]})
    return outputs


def test_answer_travels_only_in_widget_state_then_once_in_the_static_finish(
    kernel: BlockingKernelClient, priced: StandIn
) -> None:
    run = execute(kernel, "%%chat -o r\nWhat do the options cost?")
    assert run.reply is not None and run.reply["status"] == "ok"
    messages = [m for _, m in run.messages]
    shown = run.of_type("display_data", "stream", "execute_result")
    widget_views = [m for m in shown if WIDGET in m["content"].get("data", {})]
    assert len(widget_views) == 1
    placeholder = widget_views[0]["content"]["data"]["text/plain"]
    assert "streaming answer" in placeholder and "VBox" not in placeholder
    others = [m for m in shown if m not in widget_views]
    assert len(others) == 1, [m["content"] for m in others]  # the usage line, nothing else
    assert "tokens" in others[0]["content"]["data"]["text/plain"]
    assert "text/markdown" not in others[0]["content"]["data"]

    # While streaming the answer is in widget state: blocks sealed into new Outputs
    # (comm_open) and the tail (comm_msg), escaped for the renderer.
    live = [
        o["data"]["text/markdown"]
        for m in run.of_type("comm_open", "comm_msg")
        for o in (m["content"]["data"].get("state", {}).get("outputs") or [])
    ]
    sealed = [
        m for m in run.of_type("comm_open") if m["content"]["data"].get("state", {}).get("outputs")
    ]
    assert live and sealed, "the answer should stream through widget state, blocks sealed"
    assert all("$" not in md for md in live)
    assert any("Option 3 costs <span>&#36;</span>30" in md for md in live)

    saved = _saved_outputs(messages)
    assert len(saved) == 2
    final, usage = saved
    assert WIDGET not in final
    assert final["text/plain"] == ANSWER  # raw, as received
    assert "$" not in final["text/markdown"] and "Option 24 costs" in final["text/markdown"]
    assert "tokens" in usage["text/plain"]
    text = execute(kernel, "print(r.text == " + repr(ANSWER) + ")").of_type("stream")
    assert text[0]["content"]["text"].strip() == "True"
