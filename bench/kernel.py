"""What a Jupyter user pays: a real kernel, its iopub bytes, first-token latency, memory.

The kernel (ipykernel via jupyter_client) loads the extension and streams answers
from ``bench/fixture.py``; this process reads iopub on its own raw ZMQ socket, so it
sees the exact bytes on the wire and the arrival time of every message. Times are
``time.monotonic()``, one clock for this process and the fixture server on Linux.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from bench.common import API_KEY, Fixture, median

#: iopub message types that change what the user sees in the output area.
VISIBLE = ("comm_open", "comm_msg", "display_data", "update_display_data", "stream")


@dataclass
class Message:
    """One iopub message of a cell: arrival time, type, content and its bytes on the wire.

    ``size`` is every frame (envelope included); ``content_size`` only the content frame
    and the binary buffers, without the fixed envelope (header, parent header, metadata,
    HMAC signature, delimiter).
    """

    at: float
    kind: str
    content: dict[str, Any]
    size: int
    content_size: int = 0

    def markdown(self) -> list[str]:
        """The ``text/markdown`` texts this message puts on screen (widget outputs too)."""
        if self.kind in ("comm_msg", "comm_open"):
            state = self.content.get("data", {}).get("state", {}) or {}
            outputs = state.get("outputs") or []
            return [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o["data"]]
        if self.kind in ("display_data", "update_display_data"):
            text = self.content.get("data", {}).get("text/markdown")
            return [text] if text else []
        return []


@dataclass
class Cell:
    """Every iopub message of one execute request, and the kernel's CPU seconds for it."""

    messages: list[Message] = field(default_factory=list)
    status: str = ""
    cpu: float = 0.0

    @property
    def size(self) -> int:
        return sum(m.size for m in self.messages)

    @property
    def content_size(self) -> int:
        """Bytes of every message's content and buffers, envelopes left out."""
        return sum(m.content_size for m in self.messages)

    def bytes_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.messages:
            out[m.kind] = out.get(m.kind, 0) + m.size
        return out

    def text_updates(self) -> list[Message]:
        """Messages that put answer text on screen, in arrival order."""
        return [m for m in self.messages if m.markdown()]


class Kernel:
    """A kernel with the extension loaded, and a raw iopub socket in this process."""

    def __init__(self, manager: KernelManager, client: BlockingKernelClient) -> None:
        self.manager = manager
        self.client = client
        self.session = manager.session
        self.iopub = manager.connect_iopub()
        self.pid = int(manager.provisioner.process.pid)  # type: ignore[union-attr]

    def cpu(self) -> float:
        """CPU seconds of the kernel process so far (every thread)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory(self, name: str) -> int:
        """``VmRSS`` or ``VmHWM`` (peak) of the kernel, in bytes."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1]) * 1024
        raise KeyError(name)

    def reset_peak(self) -> bool:
        """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs`` 5); False if refused."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            return False
        return True

    def wait_for_ready(self, timeout: float = 60) -> None:
        """Until a cell's messages reach our socket (ZMQ subscriptions join late)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.run("pass", timeout=2)
                return
            except TimeoutError:
                continue
        raise TimeoutError("the kernel did not start")

    def run(self, code: str, timeout: float = 300) -> Cell:
        """Execute ``code``; collect its iopub messages until the kernel is idle again."""
        while self.iopub.poll(0):  # drop leftovers of earlier cells
            self.iopub.recv_multipart()
        cpu = self.cpu()
        msg_id = self.client.execute(code)
        cell = Cell()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.iopub.poll(200):
                continue
            frames = self.iopub.recv_multipart(copy=True)
            at = time.monotonic()
            _, parts = self.session.feed_identities(frames, copy=True)
            msg = self.session.deserialize(parts, content=True, copy=True)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            # parts: signature, header, parent header, metadata, content, buffers...
            content_size = sum(map(len, parts[4:]))
            cell.messages.append(
                Message(at, kind, msg["content"], sum(map(len, frames)), content_size)
            )
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                break
        else:
            self.client.get_shell_msg(timeout=60)
            raise TimeoutError(f"the kernel did not finish within {timeout} s: {code[:60]!r}")
        cell.cpu = self.cpu() - cpu
        reply = self.client.get_shell_msg(timeout=30)
        cell.status = reply["content"]["status"]
        if cell.status != "ok":
            raise RuntimeError(f"{code[:60]!r} failed: {reply['content']}")
        return cell


@contextmanager
def kernel(fixture: Fixture) -> Iterator[Kernel]:
    """A python3 kernel pointed at the fixture, the extension loaded and warmed up."""
    env = dict(os.environ, WRITER_BASE_URL=fixture.url, WRITER_API_KEY=API_KEY)
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env)
    client = manager.client()
    # Only our raw socket reads iopub (a second subscriber would hold messages in the kernel).
    client.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
    try:
        k = Kernel(manager, client)
        k.wait_for_ready()
        k.run("%load_ext writer_magics")
        k.run("%%chat --new\nWarm up [[chunks:300]] [[tps:2000]]")
        yield k
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def chat(k: Kernel, fixture: Fixture, markers: str) -> tuple[Cell, dict[str, Any]]:
    """Run one ``%%chat`` cell; return its iopub messages and the fixture's log entry."""
    fixture.clear()
    cell = k.run(f"%%chat --new\nWrite something long {markers}")
    (served,) = fixture.log()
    return cell, served


def update_rate(cell: Cell, served: dict[str, Any]) -> tuple[float, float]:
    """Visible text updates a second while text arrived, and the longest gap between them.

    Messages less than 5 ms apart (a sealed block and the new tail of one tick) are
    one update. The window is from the first to the last chunk the server sent.
    """
    start, end = served["first_sent"], served["last_sent"]
    times = [m.at for m in cell.text_updates() if start <= m.at <= end + 0.05]
    ticks: list[float] = []
    for at in times:
        if not ticks or at - ticks[-1] > 0.005:
            ticks.append(at)
    span = max(end - start, 1e-9)
    gaps = [b - a for a, b in zip([start, *ticks], [*ticks, end], strict=True)]
    return len(ticks) / span, max(gaps)


def first_token_latency(cell: Cell, served: dict[str, Any]) -> float:
    """Seconds from the server's first chunk to the first iopub message showing it."""
    token = served["first_token"].strip()
    for m in cell.text_updates():
        if any(token in text for text in m.markdown()):
            return float(m.at - served["first_sent"])
    raise ValueError("the first token never appeared on iopub")


def bare_first_chunk(fixture: Fixture) -> float:
    """Seconds from the server's first chunk to a bare httpx-sse client holding its text."""
    import httpx
    from httpx_sse import connect_sse

    fixture.clear()
    body = {
        "model": "palmyra-x5",
        "messages": [{"role": "user", "content": "Short [[chunks:30]] [[tps:50]]"}],
        "stream": True,
    }
    arrived = 0.0
    with (
        httpx.Client(timeout=30) as client,
        connect_sse(client, "POST", fixture.url + "/v1/chat", json=body) as source,
    ):
        for sse in source.iter_sse():
            if not arrived and sse.data != "[DONE]":
                arrived = time.monotonic()
    (served,) = fixture.log()
    return float(arrived - served["first_sent"])


#: (answer bytes, tokens per second): a chat answer, a long one, a very long one.
WIRE_CASES = ((2_000, 50), (20_000, 500), (200_000, 5_000))
MEMORY_BYTES = 1_000_000


def measure(fixture: Fixture, *, chunks: int, runs: int, ttft_runs: int) -> dict[str, Any]:
    """Kernel CPU for a long stream, iopub bytes and update rate, first token, memory."""
    out: dict[str, Any] = {}
    with kernel(fixture) as k:
        cpu = [chat(k, fixture, f"[[chunks:{chunks}]]")[0].cpu for _ in range(runs)]
        out["throughput"] = {"chunks": chunks, "cpu_s": median(cpu), "cpu_runs": cpu}

        wire = []
        for size, tps in WIRE_CASES:
            found = []
            for _ in range(runs):
                cell, served = chat(k, fixture, f"[[bytes:{size}]] [[tps:{tps}]]")
                rate, gap = update_rate(cell, served)
                found.append(
                    {
                        "iopub_bytes": cell.size,
                        "answer_bytes": served["answer_bytes"],
                        "ratio": cell.size / served["answer_bytes"],
                        "updates_per_s": rate,
                        "longest_gap_s": gap,
                        "messages": len(cell.messages),
                        "bytes_by_type": cell.bytes_by_kind(),
                    }
                )
            wire.append(
                {
                    "answer_bytes": size,
                    "tokens_per_second": tps,
                    "ratio": median([f["ratio"] for f in found]),
                    "updates_per_s": median([f["updates_per_s"] for f in found]),
                    "longest_gap_s": median([f["longest_gap_s"] for f in found]),
                    "runs": found,
                }
            )
        out["wire"] = wire

        ours = []
        for _ in range(ttft_runs):
            cell, served = chat(k, fixture, "[[chunks:30]] [[tps:50]]")
            ours.append(first_token_latency(cell, served))
        bare = [bare_first_chunk(fixture) for _ in range(ttft_runs)]
        out["first_token"] = {
            "ours_s": median(ours),
            "bare_client_s": median(bare),
            "ours_runs": ours,
            "bare_runs": bare,
        }

        k.run("import gc; gc.collect()")
        before = k.memory("VmRSS")
        exact = k.reset_peak()  # else VmHWM may predate the cell: then use RSS after it
        cell, served = chat(k, fixture, f"[[bytes:{MEMORY_BYTES}]]")
        peak = k.memory("VmHWM") if exact else k.memory("VmRSS")
        out["memory"] = {
            "answer_bytes": served["answer_bytes"],
            "chunks": served["chunks"],
            "rss_before": before,
            "peak_rss": peak,
            "rss_after": k.memory("VmRSS"),
            "growth_ratio": (peak - before) / served["answer_bytes"],
            "peak_exact": exact,
            "wall_s": served["last_sent"] - served["first_sent"],
        }
    return out
