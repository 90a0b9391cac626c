"""A real browser: JupyterLab + Debian's Chromium, a ``%%chat`` cell streaming live.

JupyterLab and Chromium are started by tests/browser_env.py; the kernel talks to the
bundled server, paced so that streaming can be seen. The test samples the answer's
text while it grows, waits for the final Markdown to render as HTML, and saves a
screenshot under test-artifacts/.
"""

from __future__ import annotations

import contextlib
import difflib
import time
from functools import partial
from typing import TYPE_CHECKING

import nbformat
import pytest

from tests.browser_env import ARTIFACTS, Lab, chromium, open_notebook, run_cell
from tests.kernel_env import PYTHON3
from writer_magics.server import ServerHandle

if TYPE_CHECKING:
    from playwright.sync_api import Response

PROMPT = "[[tps:30]] List five tips for keeping a notebook tidy."


@pytest.mark.timeout(150)
def test_chat_streams_and_renders_markdown_in_jupyterlab(lab: Lab, server: ServerHandle) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext writer_magics"),
            nbformat.v4.new_code_cell(f"%%chat\n{PROMPT}"),
        ],
        metadata={"kernelspec": PYTHON3},
    )
    nbformat.write(nb, lab.root / "stream.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(60_000)
            cells = open_notebook(page, lab, "stream.ipynb")
            cells.nth(1).wait_for()  # cells render lazily
            run_cell(page, cells.nth(0))  # %load_ext writer_magics
            page.wait_for_function(
                "el => /\\[\\d+\\]/.test(el.textContent)",
                arg=cells.nth(0).locator(".jp-InputPrompt").element_handle(),
            )
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
    with chromium() as browser:
        for name, original in expected.items():
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(lab.notebook_url(name))
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
