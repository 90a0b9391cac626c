"""``--over`` in a real kernel: one compact live view on iopub, a static summary, and
Ctrl-C that stops new requests, keeps finished rows and resumes through the cache."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.conftest import API_KEY
from tests.kernel_env import started_kernel
from tests.test_kernel import Execution, execute
from writer_magics.server import ServerHandle, start_server

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def batch_server() -> Iterator[ServerHandle]:
    with start_server() as handle:
        yield handle


@pytest.fixture(scope="module")
def kernel(
    batch_server: ServerHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    env = dict(os.environ, WRITER_BASE_URL=batch_server.url, WRITER_API_KEY=API_KEY)
    cache = tmp_path_factory.mktemp("batch-cache") / "cache.jsonl"
    with started_kernel(env) as (manager, client):
        execute(client, "%load_ext writer_magics")
        execute(client, f"%config WriterMagics.cache_path = {str(cache)!r}")
        yield manager, client


def markdown_of(run: Execution) -> list[str]:
    found = []
    for msg in run.of_type("display_data", "update_display_data"):
        text = msg["content"].get("data", {}).get("text/markdown")
        if text:
            found.append(str(text))
    return found


def test_one_compact_view_and_a_static_summary(
    kernel: tuple[KernelManager, BlockingKernelClient], batch_server: ServerHandle
) -> None:
    _, client = kernel
    batch_server.clear()
    execute(client, "items = [f'question {i} [[latency:0.05]]' for i in range(40)]")
    run = execute(client, "%%chat --over items -o b\n{item}")
    assert run.reply is not None and run.reply["status"] == "ok"
    assert len(batch_server.requests) == 40
    assert not run.of_type("comm_open", "comm_msg"), "no widget per row"
    displays = run.of_type("display_data")
    assert len(displays) == 1, "one live view, updated in place"
    final = markdown_of(run)[-1]
    assert "**Batch**" in final and "40 rows" in final and "40 done" in final
    assert "more rows" in final  # the first rows, not all forty
    answers = json.loads(
        execute(client, "import json; print(json.dumps(b.texts))").of_type("stream")[0]["content"][
            "text"
        ]
    )
    answer_bytes = sum(len(a.encode()) for a in answers)
    iopub = sum(len(json.dumps(m["content"])) for _, m in run.messages)
    assert iopub < 2 * answer_bytes, (iopub, answer_bytes)
    assert API_KEY not in json.dumps([m["content"] for _, m in run.messages])


def test_interrupt_keeps_finished_rows_and_the_cache_resumes(
    kernel: tuple[KernelManager, BlockingKernelClient], batch_server: ServerHandle
) -> None:
    manager, client = kernel
    batch_server.clear()
    execute(client, "%config WriterMagics.max_concurrency = 2")
    execute(client, "slow = [f'slow item {i} [[latency:0.4]]' for i in range(16)]")
    interrupted: list[float] = []

    def interrupt_after_rows(msg: dict[str, Any], now: float) -> None:
        if interrupted or msg["header"]["msg_type"] != "update_display_data":
            return
        text = msg["content"].get("data", {}).get("text/plain", "")
        done = re.search(r"(\d+) done", text)
        if done and int(done.group(1)) >= 3:
            manager.interrupt_kernel()
            interrupted.append(now)

    run = execute(
        client, "%%chat --over slow --cache -o part\n{item}", on_message=interrupt_after_rows
    )
    assert interrupted, "no progress arrived to interrupt"
    assert run.reply is not None and run.reply["status"] == "error"
    errors = json.dumps([m["content"] for m in run.of_type("error", "stream")])
    assert (
        "Interrupted: " in errors
        and "rows answered and kept" in errors
        and "Traceback" not in errors
    )
    sent_before = len(batch_server.requests)
    assert sent_before < 16, "no new request starts after the interrupt"
    check = execute(
        client,
        "import json; print(json.dumps([part.counts(), len(part)]))",
    )
    counts, total = json.loads(check.of_type("stream")[0]["content"]["text"])
    assert total == 16 and counts["done"] >= 3 and counts["interrupted"] > 0
    answered = counts["done"]
    batch_server.clear()
    resumed = execute(client, "%%chat --over slow --cache -o full\n{item}", timeout=60)
    assert resumed.reply is not None and resumed.reply["status"] == "ok"
    assert len(batch_server.requests) == 16 - answered, "only the unanswered rows are sent"
    final = markdown_of(resumed)[-1]
    assert f"{answered} cached" in final and "16 rows" in final
    execute(client, "%config WriterMagics.max_concurrency = 4")
