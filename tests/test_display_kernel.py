"""One answer through a real kernel, at the iopub level: no widgets, readable at any moment.

A real kernel (jupyter_client + ipykernel) streams an answer with dollar signs from
the stand-in, or from the bundled server with a first-byte delay. The cell's outputs
are plain displays (issue 14): a head line, the answer's pieces, a footer; nothing
opens a comm; a notebook saved after any message reads well; a seal never shrinks a
shown piece; the finish keeps the head's header; the waiting time ticks.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests.conftest import API_KEY
from tests.kernel_env import saved_outputs, started_kernel
from tests.standin import StandIn, stand_in, text_reply
from tests.test_kernel import execute
from writer_magics.server import start_server

pytestmark = pytest.mark.timeout(120)

PARAGRAPHS = [f"Option {i} costs ${10 * i} and the next one ${10 * i + 5}." for i in range(1, 25)]
ANSWER = "\n\n".join(PARAGRAPHS)
WIDGET = "application/vnd.jupyter.widget-view+json"
READABLE = {"text/markdown", "text/html", "text/plain"}


def _pieces(text: str, size: int = 12) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.fixture(scope="module")
def priced() -> Iterator[StandIn]:
    with stand_in(text_reply(*_pieces(ANSWER), pause=0.01)) as handle:
        yield handle


@pytest.fixture(scope="module")
def kernel(priced: StandIn) -> Iterator[BlockingKernelClient]:
    yield from _kernel_on(priced.url)


@pytest.fixture(scope="module")
def slow_kernel() -> Iterator[BlockingKernelClient]:
    """A kernel on the bundled server (``[[latency:S]]``, ``[[tps:N]]`` markers)."""
    with start_server() as server:
        yield from _kernel_on(server.url)


def _kernel_on(base_url: str) -> Iterator[BlockingKernelClient]:
    """A kernel with the extension loaded, its magics pointed at ``base_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRITER_")}
    env.update(WRITER_BASE_URL=base_url, WRITER_API_KEY=API_KEY)
    with started_kernel(env) as (_manager, client):
        execute(client, "%load_ext writer_magics")
        yield client


def _visible(markdown: str) -> str:
    """A piece's text without markup characters: what must only grow while it streams."""
    return re.sub(r"[\s*_`\[\]()|#>\\~-]", "", markdown)


def test_one_answer_is_plain_displays_without_widgets_or_comms(
    kernel: BlockingKernelClient,
) -> None:
    run = execute(kernel, "%%chat -o r\nWhat do the options cost?")
    assert run.reply is not None and run.reply["status"] == "ok"
    messages = [m for _, m in run.messages]
    assert not run.of_type("comm_open", "comm_msg", "comm_close")  # issue 14 §7
    assert all(WIDGET not in (m["content"].get("data") or {}) for m in messages)  # §1

    head, *pieces, footer = saved_outputs(messages)
    assert head["data"]["text/plain"].startswith("palmyra")
    assert "streaming" not in head["data"]["text/plain"] and "waiting" not in head["data"]
    assert "".join(p["data"]["text/plain"] for p in pieces) == ANSWER  # raw, once, in order
    assert len([p for p in pieces if p["data"]["text/plain"]]) == 1  # short: one output
    shown = "".join(p["data"].get("text/markdown", "") for p in pieces)
    assert "$" not in shown and "Option 3 costs <span>&#36;</span>30" in shown
    assert "tokens" in footer["data"]["text/plain"] and "text/markdown" not in footer["data"]
    assert "white-space:nowrap" in footer["data"]["text/html"]  # wraps only between parts
    assert "monospace" not in footer["data"]["text/html"]
    assert "writer_magics" in footer["metadata"], "provenance travels with the footer"
    text = execute(kernel, "print(r.text == " + repr(ANSWER) + ")").of_type("stream")
    assert text[0]["content"]["text"].strip() == "True"


def test_saved_at_any_moment_the_notebook_reads_well_and_says_it_was_streaming(
    slow_kernel: BlockingKernelClient,
) -> None:
    run = execute(slow_kernel, "%%chat\nExplain tides in several paragraphs [[tps:80]]")
    assert run.reply is not None and run.reply["status"] == "ok"
    messages = [m for _, m in run.messages]
    finished = max(i for i, m in enumerate(messages) if m["header"]["msg_type"] == "display_data")
    snapshots = 0
    for n in range(1, finished):  # Ctrl+S after every message before the footer
        outputs = saved_outputs(messages[:n])
        if not outputs:
            continue
        snapshots += 1
        for output in outputs:
            assert set(output["data"]) <= READABLE, output["data"]
        head = outputs[0]["data"]["text/plain"]
        if len(outputs) > 1:  # answer text on screen: the head says it is streaming
            assert "streaming" in head, head
        else:
            assert "waiting" in head or "streaming" in head, head
    assert snapshots >= 5


def test_seals_never_shrink_a_piece_and_the_finish_keeps_the_header(
    slow_kernel: BlockingKernelClient,
) -> None:
    run = execute(slow_kernel, "%%chat\nExplain tides in several paragraphs [[tps:120]]")
    assert run.reply is not None and run.reply["status"] == "ok"
    frames: dict[str, list[str]] = {}
    heads: list[str] = []
    for kind, content in ((m["header"]["msg_type"], m["content"]) for _, m in run.messages):
        if kind not in ("display_data", "update_display_data"):
            continue
        display_id = (content.get("transient") or {}).get("display_id")
        if "text/markdown" in content["data"] and display_id:
            frames.setdefault(display_id, []).append(content["data"]["text/markdown"])
        elif display_id and "text/html" in content["data"]:  # the head (the footer has no id)
            heads.append(content["data"]["text/plain"])
    assert len(frames) >= 2, "a several-paragraph answer is sealed in several pieces"
    for display_id, shown in frames.items():
        for before, after in itertools.pairwise(shown):
            assert _visible(after).startswith(_visible(before)), (display_id, before, after)
    header = heads[-1]
    assert header and all(h.startswith(header) for h in heads), heads  # §5: same header
    assert any("streaming" in h for h in heads)


def test_the_waiting_time_ticks_before_the_first_token(slow_kernel: BlockingKernelClient) -> None:
    run = execute(slow_kernel, "%%chat\nHello there [[latency:1.6]] [[tps:200]]")
    assert run.reply is not None and run.reply["status"] == "ok"
    waits = {
        m["content"]["data"]["text/plain"].rsplit("waiting…", 1)[1]
        for m in run.of_type("display_data", "update_display_data")
        if "waiting…" in m["content"]["data"].get("text/plain", "")
    }
    assert len(waits) >= 3, waits  # issue 14 §6: 0.0 s, 0.5 s, 1.0 s, ...
