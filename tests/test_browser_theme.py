"""The logprobs view in JupyterLab's Dark theme (issue 14 §9), measured in Chromium.

JupyterLab (started by ``tests/browser_env.py``) opens with its theme set through
its settings; a ``%%chat --logprobs`` cell runs; the browser's computed colours give the
WCAG contrast ratios of the caption against the page, of the box's text against the
box, and of every shaded token's text against its tint; the box must be a dark box on
a dark page, not a white one. The light theme is checked the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
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
from tests.kernel_env import PYTHON3
from writer_magics.server import ServerHandle

THEMES = {"dark": "JupyterLab Dark", "light": "JupyterLab Light"}

#: Colours of the view as the browser computed them: [r, g, b] after compositing every
#: translucent layer over the backgrounds below it (and translucent text over its own).
MEASURE = """
(spans) => {
  const parse = (text) => {
    const m = text.match(/rgba?\\(([^)]*)\\)/);
    if (!m) throw new Error('unexpected colour ' + text);
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, below) => [0, 1, 2].map(i => top[i] * top[3] + below[i] * (1 - top[3]));
  const background = (node) => {
    const layers = [];
    for (let n = node; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] >= 1) break;
    }
    let color = [255, 255, 255];
    for (let i = layers.length - 1; i >= 0; i--) color = over(layers[i], color);
    return color;
  };
  const text = (node) => over(parse(getComputedStyle(node).color), background(node));
  const box = spans[0].parentElement;
  const caption = box.nextElementSibling;
  return {
    theme: document.body.dataset.jpThemeName,
    page: background(box.parentElement),
    box: background(box),
    box_text: text(box),
    caption: text(caption),
    caption_background: background(caption),
    caption_text: caption.textContent,
    tokens: spans.map(s => ({token: s.textContent, text: text(s), background: background(s)})),
  };
}
"""


def luminance(rgb: list[float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels)."""

    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else float(((c + 0.055) / 1.055) ** 2.4)

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: list[float], b: list[float]) -> float:
    """WCAG 2 contrast ratio, 1 (none) to 21 (black on white)."""
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _set_theme(root: Path, theme: str) -> None:
    """JupyterLab's own setting (what the Settings > Theme menu writes)."""
    settings = root.parent / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "themes.jupyterlab-settings").write_text(json.dumps({"theme": theme}))


def _run_logprobs_cell(running: Lab, theme: str) -> dict[str, Any]:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext writer_magics"),
            nbformat.v4.new_code_cell("%%chat --logprobs\nName the capital of France."),
        ],
        metadata={"kernelspec": PYTHON3},
    )
    nbformat.write(nb, running.root / "theme.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(60_000)
        cells = open_notebook(page, running, "theme.ipynb")
        page.wait_for_function(f"document.body.dataset.jpThemeName === {THEMES[theme]!r}")
        cells.nth(1).wait_for()
        run_cell(page, cells.nth(0))  # %load_ext writer_magics
        wait_until_run(cells.nth(0))
        run_cell(page, cells.nth(1))
        spans = cells.nth(1).locator("span[data-probability]")
        spans.first.wait_for()
        page.wait_for_timeout(300)  # let the last output settle before measuring
        measured: dict[str, Any] = spans.first.evaluate(
            f"(first) => ({MEASURE})(Array.from("
            "first.parentElement.querySelectorAll('span[data-probability]')))"
        )
        cells.nth(1).screenshot(path=str(ARTIFACTS / f"browser-logprobs-{theme}.png"))
        return measured


@pytest.mark.timeout(150)
@pytest.mark.parametrize("theme", ["dark", "light"])
def test_logprobs_view_reads_in_the_theme(
    lab: Lab,
    server: ServerHandle,
    theme: str,
) -> None:
    _set_theme(lab.root, THEMES[theme])
    seen = _run_logprobs_cell(lab, theme)
    print(json.dumps(seen, indent=1))
    assert seen["theme"] == THEMES[theme]
    page_is_dark = luminance(seen["page"]) < 0.2
    assert page_is_dark == (theme == "dark"), seen["page"]
    # The box follows the theme: a dark box on a dark page (not a white one).
    assert (luminance(seen["box"]) < 0.2) == page_is_dark, seen["box"]
    assert contrast(seen["box"], seen["page"]) < 1.5
    assert "hover a token" in seen["caption_text"]
    assert contrast(seen["caption"], seen["caption_background"]) >= 4.5
    assert contrast(seen["box_text"], seen["box"]) >= 4.5
    assert seen["tokens"]
    for token in seen["tokens"]:
        assert contrast(token["text"], token["background"]) >= 4.5, token
