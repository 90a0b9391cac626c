"""The sweep grid in a real browser (JupyterLab + Debian's Chromium), issue 14 §2 and §3.

Two ways a user meets it: a sweep run live in JupyterLab (trusted output, the live
grid then its finish), and a saved notebook opened later (untrusted: JupyterLab's
sanitiser filters the HTML and its inline styles). Both must keep the panels side
by side: 4 panels share one row at 1400 px and wrap at narrow widths; code scrolls
instead of wrapping, no math is typeset, no script runs. Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest

from tests.browser_env import (
    ARTIFACTS,
    Lab,
    chromium,
    open_notebook,
    run_cell,
    wait_until_run,
)
from tests.standin import StandIn, stand_in
from tests.test_grid import HOSTILE, by_temperature
from tests.test_grid_kernel import sweep_notebook
from writer_magics.display.grid import GRID_CLASSES

PANELS = ".writer-magics-grid .writer-magics-panel"

#: Each panel's box, the answer's code box, and whether MathJax typeset anything.
MEASURE = """() => {
  const panels = [...document.querySelectorAll('.writer-magics-grid .writer-magics-panel')];
  const pre = document.querySelector('.writer-magics-grid pre');
  return {
    boxes: panels.map(p => {
      const r = p.getBoundingClientRect();
      return [Math.round(r.left), Math.round(r.top), Math.round(r.width)];
    }),
    pre: pre && {scroll: pre.scrollWidth, client: pre.clientWidth,
                 lines: pre.querySelector('code').getClientRects().length,
                 whiteSpace: getComputedStyle(pre.querySelector('code')).whiteSpace},
    math: document.querySelectorAll(
      '.writer-magics-grid mjx-container, .writer-magics-grid .MathJax').length,
    display: getComputedStyle(panels[0].parentElement).display,
    columns: panels[0].parentElement.style.gridTemplateColumns,
    footer: getComputedStyle(panels[0].querySelector('.writer-magics-status')).opacity,
    small: getComputedStyle(panels[0].querySelector('.writer-magics-status')).fontSize,
    text: getComputedStyle(panels[0].querySelector('.writer-magics-answer')).fontSize,
  };
}"""


def _rows(boxes: list[list[int]]) -> int:
    return len({top for _, top, _ in boxes})


@pytest.fixture
def hostile() -> Iterator[StandIn]:
    with stand_in(by_temperature(HOSTILE)) as handle:
        yield handle


#: The two frontends the issue names, served by the same server: JupyterLab and Notebook 7.
UIS = {
    "lab": "/lab/tree/{name}?reset&token={token}",
    "notebook7": "/notebooks/{name}?token={token}",
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("ui", list(UIS))
def test_a_saved_sweep_reopens_side_by_side_and_safe(lab: Lab, hostile: StandIn, ui: str) -> None:

    nb = sweep_notebook(hostile.url, lab.root / "sweep.ipynb")  # not signed here: untrusted
    # Proof that the grid's classes matter: raw $…$ in HTML is typeset without them.
    ignore = GRID_CLASSES.replace("writer-magics-grid", "")  # the grid's math classes
    for name, classes in (("control", ""), ("ignored", ignore)):
        html = f'<div class="{classes} {name}">Area $x^2$ here</div>'
        output = nbformat.v4.new_output("display_data", data={"text/html": html})
        nb.cells.append(nbformat.v4.new_code_cell(name, outputs=[output]))
    nbformat.write(nb, lab.root / "sweep.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)
    dialogs: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})

        def dismiss(dialog: Any) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", dismiss)
        page.set_default_timeout(60_000)
        page.goto(lab.url + UIS[ui].format(name="sweep.ipynb", token=lab.token))
        page.locator(PANELS).nth(3).wait_for()
        page.locator(".control mjx-container").first.wait_for()  # math is on here
        time.sleep(1.5)  # MathJax runs on each output after it is attached
        wide = page.evaluate(MEASURE)
        ignored = page.locator(".ignored mjx-container").count()
        page.screenshot(path=str(ARTIFACTS / f"{ui}-grid-saved-1400.png"), full_page=True)
        page.set_viewport_size({"width": 700, "height": 900})
        time.sleep(0.5)
        narrow = page.evaluate(MEASURE)
        page.screenshot(path=str(ARTIFACTS / f"{ui}-grid-saved-700.png"), full_page=True)
        shown = page.locator(".writer-magics-grid").inner_text()
    print(wide, narrow, sep="\n")
    assert wide["display"] == "grid"
    assert "min(100%" in wide["columns"]  # the sanitiser kept the adaptive columns
    assert ignored == 0  # mathjax_ignore holds even for raw $…$ (JupyterLab's MathJax 3)
    assert len(wide["boxes"]) == 4 and _rows(wide["boxes"]) == 1  # one row at 1400 px
    assert _rows(narrow["boxes"]) > 1  # wraps when narrow
    assert wide["pre"]["whiteSpace"] == "pre" and wide["pre"]["scroll"] > wide["pre"]["client"]
    assert wide["pre"]["lines"] == 1  # the long line scrolls, it is not wrapped
    assert wide["math"] == 0 and narrow["math"] == 0
    assert not dialogs
    assert "<script>alert('pwned')</script>" in shown and "Prices are $x$ and $40" in shown
    # the footer is quieter than the answer, also where the sanitiser filtered the styles
    assert float(wide["footer"]) < 1 and float(wide["small"][:-2]) < float(wide["text"][:-2])


@pytest.mark.timeout(180)
def test_a_live_sweep_ends_in_the_layout_it_streamed_in(lab: Lab) -> None:
    """Trusted output, run in the browser: the finish does not move the panels."""
    from tests.kernel_env import PYTHON3

    cells = [
        nbformat.v4.new_code_cell("%load_ext writer_magics"),
        nbformat.v4.new_code_cell(
            "%%chat -t 0.2,0.8,1.2,1.6\n[[tps:40]] Explain tides with a code example."
        ),
    ]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": PYTHON3})
    nbformat.write(nb, lab.root / "live.ipynb")
    frames: list[dict[str, Any]] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        notebook_cells = open_notebook(page, lab, "live.ipynb")
        notebook_cells.nth(1).wait_for()
        run_cell(page, notebook_cells.nth(0))  # %load_ext writer_magics
        wait_until_run(notebook_cells.nth(0))
        run_cell(page, notebook_cells.nth(1))
        page.locator(PANELS).nth(3).wait_for()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            frames.append(page.evaluate(MEASURE))
            statuses = page.locator(".writer-magics-grid .writer-magics-status")
            if all("tokens" in s and "streaming" not in s for s in statuses.all_inner_texts()):
                break
            time.sleep(0.1)
        time.sleep(0.5)
        frames.append(page.evaluate(MEASURE))
        page.screenshot(path=str(ARTIFACTS / "browser-grid-live-1400.png"), full_page=True)
    assert len(frames) >= 3
    final = frames[-1]
    assert final["display"] == "grid" and _rows(final["boxes"]) == 1
    positions = {tuple((left, top) for left, top, _ in f["boxes"]) for f in frames}
    assert len(positions) == 1, positions  # no panel ever moved: live and finish alike
    assert final["math"] == 0
    assert final["pre"]["whiteSpace"] == "pre"  # code scrolls in the live view too
