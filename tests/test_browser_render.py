"""A real browser renders escaped Markdown as the model wrote it (JupyterLab + Chromium).

A saved notebook holds the raw answer and the escaped one as ``text/markdown``
outputs; JupyterLab (its math pass, marked, the sanitiser and MathJax) must show the
escaped one literally: no math, no swallowed tags, and code blocks untouched.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from tests.browser_env import ARTIFACTS, Lab, chromium
from tests.kernel_env import PYTHON3
from writer_magics.answer.markdown import escape_markdown

HAZARDS = (
    "Prices are $40 and $90, or $$5 each.\n\n"
    "Use <details> and a<b>c and x <y> z <!-- hidden --> &lt; end.\n\n"
    "Inline `echo $HOME <x>` stays.\n\n"
    "```bash\necho $HOME $PATH <tag>\n```\n\n"
    # Code indented four columns: a fence nested in a list item (its blank line would
    # end a code span) and an indented code block.
    "1. Run it:\n\n    ```python\n    a = 1\n\n    cost = '$5' if a<b else 0\n    ```\n\n"
    "Plain:\n\n    price = $40 < 5\n"
)


def _output(markdown: str) -> nbformat.NotebookNode:
    output: nbformat.NotebookNode = nbformat.v4.new_output(
        "display_data", data={"text/markdown": markdown}
    )
    return output


@pytest.mark.timeout(150)
def test_escaped_markdown_renders_literally_in_jupyterlab(lab: Lab) -> None:
    raw = nbformat.v4.new_code_cell("raw", outputs=[_output("Prices are $40 and $90")])
    safe = nbformat.v4.new_code_cell("safe", outputs=[_output(escape_markdown(HAZARDS))])
    latex = escape_markdown("Area $5: \\\\(x^2\\\\) and $6")  # backslash-delimited math stays
    math = nbformat.v4.new_code_cell("math", outputs=[_output(latex)])
    single = escape_markdown("So \\(a+b\\) and \\[c<d\\] cost $3")  # a model's LaTeX delimiters
    model = nbformat.v4.new_code_cell("model", outputs=[_output(single)])
    nb = nbformat.v4.new_notebook(cells=[raw, safe, math, model], metadata={"kernelspec": PYTHON3})
    nbformat.write(nb, Path(lab.root) / "render.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(lab.notebook_url("render.ipynb"))
        cells = page.locator(".jp-Notebook .jp-Cell")
        cells.nth(1).locator(".jp-RenderedMarkdown").wait_for()
        # The raw answer is typeset by MathJax: proof that math rendering is on here.
        cells.nth(0).locator("mjx-container").first.wait_for(timeout=60_000)
        time.sleep(1.0)  # MathJax typesets each output on its own; give the second time
        shown = cells.nth(1).locator(".jp-RenderedMarkdown")
        text = shown.inner_text()
        page.screenshot(path=str(ARTIFACTS / "browser-render.png"), full_page=True)
        print(text)
        assert shown.locator("mjx-container").count() == 0
        assert "Prices are $40 and $90, or $$5 each." in text
        assert "Use <details> and a<b>c and x <y> z <!-- hidden --> &lt; end." in text
        assert shown.locator("code").first.inner_text() == "echo $HOME <x>"
        blocks = shown.locator("pre")
        assert blocks.nth(0).inner_text().strip() == "echo $HOME $PATH <tag>"
        assert blocks.nth(1).inner_text().strip() == "a = 1\n\ncost = '$5' if a<b else 0"
        assert blocks.nth(2).inner_text().strip() == "price = $40 < 5"
        latex_shown = cells.nth(2).locator(".jp-RenderedMarkdown")
        assert latex_shown.locator("mjx-container").count() == 1
        assert latex_shown.inner_text().startswith("Area $5:")
        model_shown = cells.nth(3).locator(".jp-RenderedMarkdown")
        assert model_shown.locator("mjx-container").count() == 2  # math, not "(a+b)"
        assert "cost $3" in model_shown.inner_text()
