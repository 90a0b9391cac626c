"""JupyterLab + Debian's Chromium for the browser tests (tests/test_browser*.py).

JupyterLab runs on 127.0.0.1 with a random token in a temporary root, with private
Jupyter config/data/runtime and settings folders; its kernels talk to the bundled
server. Playwright drives the system Chromium (never a downloaded browser). The app
is exposed as ``window.jupyterapp`` so that a test can run JupyterLab commands
(``logconsole:open``, ``docmanager:save``) as a user would from the palette.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.kernel_env import REPO, kernel_env
from writer_magics.server import ServerHandle

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

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
#: JupyterLab settings every test lab gets: no news pop-up over the screenshots.
BASE_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
}


def unavailable(reason: str) -> None:
    """Fail in CI (where .ci/run installs everything), skip on a developer's machine."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


def require_browser() -> None:
    """Chromium, JupyterLab and Playwright are there (or skip/fail as :func:`unavailable`)."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not found: apt-get install chromium")
    try:
        import jupyterlab  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as exc:
        unavailable(f"{exc.name} is not installed (pip install -e '.[dev]')")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    root: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"


@contextlib.contextmanager
def running_lab(
    base_url: str, home: Path, settings: Mapping[str, Mapping[str, Any]] | None = None
) -> Iterator[Lab]:
    """JupyterLab on a free loopback port under ``home``; shut down (with its kernels) after.

    ``settings`` maps a plugin (``@jupyterlab/notebook-extension/tracker``) to its
    user settings, on top of :data:`BASE_SETTINGS`.
    """
    require_browser()
    root = home / "root"
    root.mkdir()
    for plugin, values in {**BASE_SETTINGS, **(settings or {})}.items():
        path = home / "lab-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    token = secrets.token_hex(16)
    port = free_port()
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
        "--LabApp.expose_app_in_browser=True",
    ]
    log_path = home / "jupyterlab.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        command,
        cwd=root,
        env={
            **kernel_env(base_url, jupyter_home=home / "jupyter"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "JupyterLab did not start in 60 s"
            time.sleep(0.3)
        yield Lab(url, token, root)
    finally:
        stop(process, url, token)
        log.close()


@pytest.fixture
def lab(server: ServerHandle, tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab for one test, its kernels pointed at the bundled server."""
    with running_lab(server.url, tmp_path) as handle:
        yield handle


def stop(process: subprocess.Popen[bytes], url: str, token: str) -> None:
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


def wait_for_idle_kernel(lab: Lab, timeout: float = 60) -> None:
    """Until the notebook's session has a kernel that reports idle (REST API)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sessions = httpx.get(f"{lab.url}/api/sessions", headers=lab.headers, timeout=5).json()
        states = [s["kernel"]["execution_state"] for s in sessions if s.get("kernel")]
        if "idle" in states:
            return
        time.sleep(0.3)
    raise AssertionError("no idle kernel for the notebook")


@contextlib.contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Debian Chromium driven by Playwright; closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


def open_notebook(page: Page, lab: Lab, name: str) -> Locator:
    """Open ``name`` and wait until its kernel is idle; returns the cells' locator."""
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    # The kernel must be connected and idle before anything is typed.
    wait_for_idle_kernel(lab)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    return page.locator(".jp-Notebook .jp-Cell")


_RAN = re.compile(r"\[\d+\]")


def has_run(cell: Locator) -> bool:
    """The cell's prompt shows an execution count (``[3]``): it ran and finished."""
    return bool(_RAN.search(cell.locator(".jp-InputPrompt").inner_text()))


def run_cell(page: Page, cell: Locator, *, attempts: int = 3) -> None:
    """Select ``cell`` by its prompt and press Shift+Enter; returns once it started (``[*]``)
    or already finished. The first key press can land before the kernel is wired up,
    hence the retries."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    prompt = cell.locator(".jp-InputPrompt")
    for attempt in range(attempts):
        prompt.click()
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function(
                "el => /\\[(\\d+|\\*)\\]/.test(el.textContent)",
                arg=prompt.element_handle(),
                timeout=15_000,
            )
            return
        except PlaywrightTimeout:
            assert attempt < attempts - 1, "the cell never ran"


def wait_until_run(cell: Locator, timeout: float = 60) -> None:
    """Until the cell's prompt shows its execution count (the cell finished)."""
    deadline = time.monotonic() + timeout
    while not has_run(cell):
        assert time.monotonic() < deadline, f"the cell did not finish in {timeout:g} s"
        time.sleep(0.1)
