"""Tab completion through a real kernel's ``complete_request`` (what JupyterLab and VS
Code send), against a stand-in server whose model list differs from the known one and
includes a removed model; the stand-in counts every request so Tab is seen to send none."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from tests.kernel_env import kernel_env

pytestmark = pytest.mark.timeout(120)

LISTED = [
    {"id": "palmyra-x5", "name": "Palmyra X5"},
    {"id": "palmyra-med", "name": "Palmyra Med"},  # removed: never offered
    {"id": "palmyra-x9-preview", "name": "Palmyra X9 Preview"},
]


class ModelServer(ThreadingHTTPServer):
    """GET /v1/models with LISTED; logs (method, path) of every request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def requests(self) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.seen)


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.seen.append(("GET", self.path))
        body = json.dumps({"models": LISTED}).encode()
        self.send_response(200 if self.path == "/v1/models" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        with self.server.lock:
            self.server.seen.append(("POST", self.path))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    server = ModelServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kernel-cwd")
    (path / "notes.json").write_text("{}")
    (path / "chart.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (path / "exports").mkdir()
    return path


@pytest.fixture(scope="module")
def kernel(model_server: ModelServer, folder: Path) -> Iterator[BlockingKernelClient]:
    env = kernel_env(model_server.url)
    env["WRITER_MAGICS_FETCH_MODELS"] = "1"
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env, cwd=str(folder))
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    run(client, "%load_ext writer_magics")
    run(
        client,
        "from pydantic import BaseModel\n"
        "class Answer(BaseModel):\n    text: str\n"
        "def get_weather(city: str) -> str:\n    return city\n"
        "def convert(amount: float) -> float:\n    return amount\n"
        "layout = {'type': 'object'}\n"
        "count = 3\n"
        "get_ipython().magics_manager.registry['WriterMagics'].sessions.new('ideas')\n",
    )
    yield client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def run(client: BlockingKernelClient, code: str) -> None:
    reply = client.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
    assert reply["content"]["status"] == "ok", reply["content"]


def tab(client: BlockingKernelClient, code: str, cursor: int | None = None) -> dict[str, Any]:
    """One complete_request; the reply's content."""
    client.complete(code, len(code) if cursor is None else cursor)
    while True:
        msg = client.get_shell_msg(timeout=30)
        if msg["header"]["msg_type"] == "complete_reply":
            content: dict[str, Any] = msg["content"]
            return content


def offered(client: BlockingKernelClient, code: str) -> tuple[list[str], int, int]:
    reply = tab(client, code)
    assert reply["status"] == "ok"
    return reply["matches"], reply["cursor_start"], reply["cursor_end"]


@pytest.fixture(scope="module")
def fetched(kernel: BlockingKernelClient, model_server: ModelServer) -> BlockingKernelClient:
    """The kernel after its one background GET /v1/models has been answered."""
    deadline = time.monotonic() + 30
    while ("GET", "/v1/models") not in model_server.requests():
        assert time.monotonic() < deadline, "no background GET /v1/models"
        run(kernel, "pass")
    run(
        kernel,
        "m = get_ipython().magics_manager.registry['WriterMagics'].models\n"
        "m._future.result(timeout=20)\nassert m.fetched()",
    )
    return kernel


def test_option_names(fetched: BlockingKernelClient) -> None:
    assert offered(fetched, "%%chat --ses") == (["--session", "--sessions"], 7, 12)
    assert offered(fetched, "%chat -t 0.2 --sys") == (["--system"], 13, 18)
    matches, start, end = offered(fetched, "%%complete -")
    assert (start, end) == (11, 12)
    assert "--best-of" in matches and "--model" in matches and "--session" not in matches
    matches, start, end = offered(fetched, "%%chat -")
    assert "--session" in matches and "--best-of" not in matches and (start, end) == (7, 8)


def test_models_from_the_server_never_removed(fetched: BlockingKernelClient) -> None:
    assert offered(fetched, "%%chat -m ") == (["palmyra-x5", "palmyra-x9-preview"], 10, 10)
    assert offered(fetched, "%chat --model palmyra-x5,palmyra-x") == (
        ["palmyra-x9-preview"],
        25,
        34,
    )
    matches, _, _ = offered(fetched, "%%chat -m palmyra-m")
    assert "palmyra-med" not in matches


def test_namespace_values(fetched: BlockingKernelClient) -> None:
    assert offered(fetched, "%%chat --session ") == (["ideas"], 17, 17)
    assert offered(fetched, "%%chat --tools get_weather,c") == (["convert"], 27, 28)
    matches, start, end = offered(fetched, "%%chat --tools ")
    assert {"get_weather", "convert"} <= set(matches) and "count" not in matches
    assert "Answer" not in matches and (start, end) == (15, 15)
    assert offered(fetched, "%%chat --schema ") == (["Answer", "layout"], 16, 16)


def test_paths(fetched: BlockingKernelClient) -> None:
    assert offered(fetched, "%chat --load no") == (["notes.json"], 13, 15)
    assert offered(fetched, "%chat --save ") == (["chart.png", "exports/", "notes.json"], 13, 13)
    assert offered(fetched, "%writer cache --export ex") == (["exports/"], 23, 25)
    assert offered(fetched, "%writer cache --import n") == (["notes.json"], 23, 24)


def test_writer_subcommands(fetched: BlockingKernelClient) -> None:
    assert offered(fetched, "%writer ") == (["log", "cache", "models", "status", "help"], 8, 8)
    assert offered(fetched, "%writer mo") == (["models"], 8, 10)


def test_never_inside_the_cell_body(fetched: BlockingKernelClient) -> None:
    code = "%%chat --new\nCompare --ses"
    matches, _, _ = offered(fetched, code)
    assert not [m for m in matches if m.startswith("--sess")]
    matches, _, _ = offered(fetched, "%chat Tell me about --ses")
    assert not [m for m in matches if m.startswith("--sess")]
    # the cursor on the magic line of a cell with a body still completes
    assert tab(fetched, "%%chat --ses\nbody", cursor=12)["matches"] == ["--session", "--sessions"]


def test_tab_sends_no_request(fetched: BlockingKernelClient, model_server: ModelServer) -> None:
    before = model_server.requests()
    for code in ("%%chat -m ", "%%chat --model p", "%writer ", "%%chat --session ", "%chat -"):
        for _ in range(3):
            tab(fetched, code)
    assert model_server.requests() == before
    assert before.count(("GET", "/v1/models")) == 1  # fetched once per kernel


def test_iopub_is_quiet(fetched: BlockingKernelClient) -> None:
    """No error output from the matcher (a failing matcher prints a traceback)."""
    while True:
        try:
            fetched.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            break
    tab(fetched, "%%chat -m ")
    tab(fetched, "%chat --load /nonexistent/dir/")
    streams = []
    while True:
        try:
            msg = fetched.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            break
        if msg["header"]["msg_type"] in ("stream", "error"):
            streams.append(msg)
    assert streams == []
