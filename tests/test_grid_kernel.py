"""A sweep in a real kernel: plain display messages only, and a saved notebook that exports.

The kernel (jupyter_client + ipykernel, default ``auto`` view) streams a 4-panel sweep
of hostile answers from the stand-in. No widget and no comm may appear (issue 14 §1
and §7 by construction); the grid is one display updated in place, and its finish
is one bundle. The same sweep run by nbclient, saved and exported by nbconvert to
HTML keeps the panels side by side (issue 14 §2).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from tests.conftest import API_KEY
from tests.kernel_env import PYTHON3, started_kernel
from tests.standin import StandIn, stand_in
from tests.test_grid import HOSTILE, LONG_NAME, Grid, by_temperature
from tests.test_kernel import execute
from writer_magics.display.grid import GRID_CLASSES

pytestmark = pytest.mark.timeout(120)

SWEEP = "%%chat -t 0.2,0.8,1.2,1.6\nCompare, hostile"
WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def hostile() -> Iterator[StandIn]:
    with stand_in(by_temperature(HOSTILE, pause=0.02)) as handle:
        yield handle


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRITER_")}
    env.update(WRITER_BASE_URL=url, WRITER_API_KEY=API_KEY, WRITER_MAGICS_FETCH_MODELS="0")
    return env


@pytest.fixture(scope="module")
def kernel(hostile: StandIn) -> Iterator[BlockingKernelClient]:
    with started_kernel(_env(hostile.url)) as (_manager, client):
        execute(client, "%load_ext writer_magics")
        yield client


def test_a_sweep_in_a_kernel_is_one_display_updated_in_place_without_widgets(
    kernel: BlockingKernelClient,
) -> None:
    run = execute(kernel, SWEEP)
    assert run.reply is not None and run.reply["status"] == "ok", run.reply
    assert not run.of_type("comm_open", "comm_msg", "comm_close")
    assert not run.of_type("stream"), [m["content"] for m in run.of_type("stream")]
    first = run.of_type("display_data")
    updates = run.of_type("update_display_data")
    assert len(first) == 1 and updates
    display_id = first[0]["content"]["transient"]["display_id"]
    assert all(m["content"]["transient"]["display_id"] == display_id for m in updates)
    assert all(WIDGET not in m["content"]["data"] for m in first + updates)
    # live frames: the same grid, answers growing, statuses in every cell
    live = [Grid(m["content"]["data"]["text/html"]) for m in first + updates[:-1]]
    assert all(len(g.panels) == 4 for g in live)
    assert all(p["status"] for g in live for p in g.panels)
    assert "streaming answer" in first[0]["content"]["data"]["text/plain"]
    # the finish: one bundle, side by side, with the provenance metadata
    final = updates[-1]["content"]
    assert set(final["data"]) == {"text/html", "text/markdown", "text/plain"}
    grid = Grid(final["data"]["text/html"])
    assert [p["title"] for p in grid.panels] == ["t=0.2", "t=0.8", "t=1.2", "t=1.6"]
    assert all("tokens" in p["status"] for p in grid.panels)
    assert "script" not in [tag for tag, _ in grid.tags]
    assert len(final["metadata"]["writer_magics"]["answers"]) == 4
    for text in HOSTILE.values():
        assert text in final["data"]["text/plain"]
    assert API_KEY not in str([m["content"] for _, m in run.messages])

    # the demo's terminal echo of these messages: every panel titled, each answer once
    from writer_magics.demo.stream import TerminalEcho

    echoed = io.StringIO()
    echo = TerminalEcho(echoed, color=False)
    for _, msg in run.messages:
        echo.message(msg)
    shown = echoed.getvalue()
    for temperature, text in HOSTILE.items():
        assert f"--- t={temperature:g} ---" in shown and shown.count(text) == 1
    assert "streaming answer" not in shown and "<section" not in shown


def sweep_notebook(url: str, path: Path) -> nbformat.NotebookNode:
    """The saved notebook of a finished hostile sweep run by nbclient in a real kernel
    (for the export and browser tests)."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext writer_magics"),
            nbformat.v4.new_code_cell(SWEEP),
        ],
        metadata={"kernelspec": PYTHON3},
    )
    NotebookClient(nb, timeout=60, kernel_name="python3").execute(env=_env(url))
    nbformat.write(nb, path)
    return nb  # type: ignore[no-any-return]


def test_the_saved_sweep_exports_to_html_side_by_side(hostile: StandIn, tmp_path: Path) -> None:
    from nbconvert import HTMLExporter

    nb = sweep_notebook(hostile.url, tmp_path / "sweep.ipynb")
    (outputs,) = [c.outputs for c in nb.cells if c.source.startswith("%%chat")]
    assert len(outputs) == 1  # the grid alone, updated in place to its finish
    assert set(outputs[0]["data"]) == {"text/html", "text/markdown", "text/plain"}
    assert WIDGET not in outputs[0]["data"]
    exporter = HTMLExporter()  # type: ignore[no-untyped-call]
    page, _ = exporter.from_filename(str(tmp_path / "sweep.ipynb"))
    (tmp_path / "sweep.html").write_text(page)
    # exactly one grid, in an HTML output (nbconvert prefers text/html to the Markdown)
    assert page.count(f'class="{GRID_CLASSES}"') == 1
    start = page.index(f'class="{GRID_CLASSES}"')
    grid_page = page[start : page.index("</section></div>", start)]
    grid = Grid("<div " + grid_page + "</section></div></div>")
    assert [p["title"] for p in grid.panels] == ["t=0.2", "t=0.8", "t=1.2", "t=1.6"]
    assert "display:grid" in page and "minmax(min(100%,15em),1fr)" in page
    assert "<script>alert('pwned')</script>" in grid.panels[0]["answer"]
    assert "alert('pwned')</script>" not in page.replace("&lt;/script&gt;", "")
    assert f"{LONG_NAME} = compute()" in grid.panels[1]["answer"]
    assert re.search(r'<pre style="overflow-x:auto;white-space:pre', grid_page)
    assert all("tokens" in p["status"] for p in grid.panels)
    assert "**t=0.2**" not in page  # the stacked fallback is not what the export shows
