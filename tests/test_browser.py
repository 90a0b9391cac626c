"""A real browser: JupyterLab + Debian's Chromium, a ``%%chat`` cell streaming live.

JupyterLab runs on 127.0.0.1 with a random token in a temporary root, with private
Jupyter config/data/runtime folders; the kernel talks to the bundled server, paced
so that streaming can be seen. Playwright drives the system Chromium (never a
downloaded browser). The test samples the answer's text while it grows, waits for
the final Markdown to render as HTML, and saves a screenshot under test-artifacts/.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import nbformat
import pytest

from tests.kernel_env import PYTHON3, REPO, kernel_env
from writer_magics.server import ServerHandle

if TYPE_CHECKING:
    from playwright.sync_api import Response

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PROMPT = "[[tps:30]] List five tips for keeping a notebook tidy."


def _unavailable(reason: str) -> None:
    """Fail in CI (where .ci/run installs everything), skip on a developer's machine."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    root: Path


@pytest.fixture
def lab(server: ServerHandle, tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab on a free loopback port; shut down (with its kernels) afterwards."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found: apt-get install chromium")
    try:
        import jupyterlab  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as exc:
        _unavailable(f"{exc.name} is not installed (pip install -e '.[dev]')")
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext writer_magics"),
            nbformat.v4.new_code_cell(f"%%chat\n{PROMPT}"),
        ],
        metadata={"kernelspec": PYTHON3},
    )
    nbformat.write(nb, root / "stream.ipynb")
    # Private JupyterLab settings: no news pop-up over the screenshot.
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    token = secrets.token_hex(16)
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.port_retries=0",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = (tmp_path / "jupyterlab.log").open("w")
    process = subprocess.Popen(
        command,
        cwd=root,
        env={
            **kernel_env(server.url, jupyter_home=tmp_path / "jupyter"),
            "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "jupyterlab.log").read_text()
            try:
                if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "JupyterLab did not start in 60 s"
            time.sleep(0.3)
        yield Lab(url, token, root)
    finally:
        _stop(process, url, token)
        log.close()


def _wait_for_idle_kernel(lab: Lab, timeout: float = 60) -> None:
    """Until the notebook's session has a kernel that reports idle (REST API)."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"token {lab.token}"}
    while time.monotonic() < deadline:
        sessions = httpx.get(f"{lab.url}/api/sessions", headers=headers, timeout=5).json()
        states = [s["kernel"]["execution_state"] for s in sessions if s.get("kernel")]
        if "idle" in states:
            return
        time.sleep(0.3)
    raise AssertionError("no idle kernel for the notebook")


def _stop(process: subprocess.Popen[bytes], url: str, token: str) -> None:
    """Shut kernels and JupyterLab down; kill the process group if it does not stop."""
    if process.poll() is None:
        try:
            headers = {"Authorization": f"token {token}"}
            httpx.post(f"{url}/api/shutdown", headers=headers, timeout=5)
            process.wait(timeout=20)
        except (httpx.HTTPError, subprocess.TimeoutExpired):
            pass
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.mark.timeout(150)
def test_chat_streams_and_renders_markdown_in_jupyterlab(lab: Lab, server: ServerHandle) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"{lab.url}/lab/tree/stream.ipynb?reset&token={lab.token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            # The kernel must be connected and idle before anything is typed.
            _wait_for_idle_kernel(lab)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
            cells = page.locator(".jp-Notebook .jp-Cell")
            cells.nth(1).wait_for()  # cells render lazily
            first_prompt = cells.nth(0).locator(".jp-InputPrompt")
            for attempt in range(3):  # a key press can land before the kernel is wired up
                first_prompt.click()
                page.keyboard.press("Shift+Enter")  # %load_ext writer_magics
                try:
                    page.wait_for_function(
                        "el => /\\[\\d+\\]/.test(el.textContent)",
                        arg=first_prompt.element_handle(),
                        timeout=15_000,
                    )
                    break
                except PlaywrightTimeout:
                    assert attempt < 2, "the first cell never ran"
            page.keyboard.press("Shift+Enter")  # %%chat (now the active cell)

            output = cells.nth(1).locator(".jp-Cell-outputArea")
            markdown = output.locator(".jp-RenderedMarkdown")
            midway = ARTIFACTS / "browser-chat-streaming.png"
            midway.unlink(missing_ok=True)
            samples: list[tuple[float, int]] = []  # (seconds, characters of answer shown)
            started = time.monotonic()
            deadline = started + 60
            while time.monotonic() < deadline:
                shown = sum(len(t) for t in markdown.all_inner_texts())
                if not samples or shown != samples[-1][1]:
                    samples.append((round(time.monotonic() - started, 2), shown))
                    if shown and not midway.exists():
                        page.screenshot(path=str(midway))
                if "completion" in output.inner_text():  # the usage line: static finish
                    break
                time.sleep(0.1)
            print("samples:", samples)
            final = sum(len(t) for t in markdown.all_inner_texts())
            partial = [n for _, n in samples if 0 < n < final]
            assert len(set(partial)) >= 3, f"the answer did not grow while streaming: {samples}"
            times = [t for t, n in samples if 0 < n < final]
            assert max(times) - min(times) >= 1.0, f"shown in one burst, not streamed: {samples}"

            # The final answer is rendered Markdown: a list, with bold text.
            rendered = output.locator(".jp-RenderedMarkdown")
            rendered.locator("li").first.wait_for()
            assert rendered.locator("li").count() >= 5
            assert rendered.locator("strong").count() >= 1
            assert "[[tps" not in output.inner_text()
        finally:
            # Saved on failure too: the picture says what the browser showed.
            for page in browser.contexts[0].pages if browser.contexts else []:
                page.screenshot(path=str(ARTIFACTS / "browser-chat.png"), full_page=True)
            browser.close()
    sent = [r for r in server.requests if r.path == "/v1/chat"]
    assert len(sent) == 1 and sent[0].status == 200


def _is_save(path: str, response: Response) -> bool:
    return response.request.method == "PUT" and path in response.url


@pytest.mark.timeout(180)
def test_shipped_notebooks_open_unmodified_in_jupyterlab(lab: Lab) -> None:
    """Issue 14 §15: opening a shipped notebook marked it modified (closing it unrun
    asked to save). Each opens with its kernel, stays clean, and Ctrl+S writes back
    the very same bytes. The stored Python version is the kernel's (only ``version`` is
    set to this kernel's, so that another Python does not fail the test)."""
    import json
    import platform

    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    from tests.kernel_env import NOTEBOOKS

    expected: dict[str, bytes] = {}
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        nb["metadata"]["language_info"]["version"] = platform.python_version()
        text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        if (
            nb["metadata"]["language_info"]["version"]
            == json.loads(path.read_text())["metadata"]["language_info"]["version"]
        ):
            assert text.encode() == path.read_bytes()  # the file is nbformat's own bytes
        expected[path.name] = text.encode()
        (lab.root / path.name).write_bytes(expected[path.name])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            for name, original in expected.items():
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.set_default_timeout(60_000)
                page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
                page.wait_for_selector(".jp-Notebook .jp-Cell")
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
                dirty = page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")
                # The first notebook of a fresh JupyterLab may flash dirty while the
                # kernel connects; what a user meets is the state once it settles.
                with contextlib.suppress(PlaywrightTimeout):
                    dirty.wait_for(state="detached", timeout=5_000)
                assert dirty.count() == 0, f"{name} is marked modified on open"
                page.locator(".jp-Notebook").first.click()
                page.keyboard.press("Escape")
                with page.expect_response(partial(_is_save, f"/api/contents/{name}")) as response:
                    page.keyboard.press("Control+s")
                assert response.value.ok, f"{name} was not saved"
                saved = (lab.root / name).read_text(encoding="utf-8").splitlines()
                changes = difflib.unified_diff(original.decode().splitlines(), saved, n=0)
                assert saved == original.decode().splitlines(), "\n".join(changes)
                assert (lab.root / name).read_bytes() == original, f"{name}: line ends"
                page.close()
        finally:
            browser.close()
