"""Colours follow the notebook's theme (issue 14 §9): no hard-coded white or black.

Every colour the package sets in HTML is either one of JupyterLab's CSS variables (its
light-theme value only as the ``var()`` fallback, for nbconvert and GitHub) or a
translucent tint over whatever background the theme has. The browser side (the dark
theme's contrast, measured) is in ``tests/test_browser_theme.py``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from writer_magics.display.diff import diff_markdown
from writer_magics.display.logprobs import logprobs_html
from writer_magics.line.images import ChatImage, bundle

PACKAGE = Path(__file__).resolve().parent.parent / "writer_magics"
#: Properties that paint: their values must follow the theme.
PAINTING = re.compile(r"^(color|background(-color)?|border(-[a-z]+)?-?color|border|outline)$")
#: ``var(--jp-NAME)`` or ``var(--jp-NAME, fallback)``: a theme variable (fallback allowed).
THEME_VAR = re.compile(r"var\(\s*--jp-[\w-]+\s*(,[^()]*(\([^()]*\))?[^()]*)?\)")
HEX = re.compile(r"#[0-9a-fA-F]{3,8}\b")
NAMED = re.compile(r"\b(white|black|gray|grey|silver|red|green|blue|yellow)\b", re.IGNORECASE)
FUNCTION = re.compile(r"\b(rgba?|hsla?)\(([^()]*)\)")

RECORDS = [
    {"token": "Paris", "probability": 0.931, "top": [{"token": "Lyon", "probability": 0.05}]},
    {"token": " is", "logprob": -0.5},
    {"token": " nice", "probability": 0.0001},
]


def hard_coded(value: str) -> list[str]:
    """The colours in a CSS value that ignore the theme (opaque, outside a theme variable)."""
    rest = THEME_VAR.sub("", value)
    found = HEX.findall(rest) + [m.group(0) for m in NAMED.finditer(rest)]
    for match in FUNCTION.finditer(rest):
        parts = re.split(r"[,/\s]+", match.group(2).strip())
        alpha = parts[3] if len(parts) > 3 else "1"
        alpha_value = float(alpha[:-1]) / 100 if alpha.endswith("%") else float(alpha)
        if alpha_value >= 1:
            found.append(match.group(0))
    return found


class Styles(HTMLParser):
    """Every ``(tag, property, value)`` of the ``style`` attributes of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.declarations: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "style" and value:
                for declaration in value.split(";"):
                    prop, _, val = declaration.partition(":")
                    if val.strip():
                        self.declarations.append((tag, prop.strip().lower(), val.strip()))


def painting(markup: str) -> list[tuple[str, str, str]]:
    parser = Styles()
    parser.feed(markup)
    return [d for d in parser.declarations if PAINTING.match(d[1])]


VIEWS = {
    "logprobs": lambda: logprobs_html(RECORDS),
    "logprobs, empty": lambda: logprobs_html([]),
    "diff": lambda: diff_markdown("the cat sat on the mat", "the dog sat on a mat"),
    "image thumbnails": lambda: bundle([ChatImage(url="https://example.com/cat.png")])["text/html"],
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_views_paint_only_with_theme_variables_or_tints(name: str) -> None:
    markup = VIEWS[name]()
    for tag, prop, value in painting(markup):
        assert not hard_coded(value), f"{name}: <{tag} style='{prop}: {value}'>"


def test_the_logprobs_box_caption_and_tokens_use_the_theme() -> None:
    declared = {(tag, prop): value for tag, prop, value in painting(logprobs_html(RECORDS))}
    assert declared[("div", "background")].startswith("var(--jp-layout-color1")
    assert declared[("div", "color")].startswith("var(--jp-content-font-color")
    tints = [v for (tag, prop), v in declared.items() if tag == "span"]
    assert tints and all(v.startswith("hsla(") and v.endswith(", 0.35)") for v in tints)


def test_the_check_itself_catches_what_it_should() -> None:
    assert hard_coded("#fff") == ["#fff"]
    assert hard_coded("1px solid #ddd") == ["#ddd"]
    assert hard_coded("white") == ["white"]
    assert hard_coded("rgb(0, 0, 0)") == ["rgb(0, 0, 0)"]
    assert hard_coded("hsl(60, 80%, 82%)") == ["hsl(60, 80%, 82%)"]
    assert hard_coded("var(--jp-layout-color1, #fff)") == []
    assert hard_coded("1px solid var(--jp-border-color2, rgb(200, 200, 200))") == []
    assert hard_coded("hsla(60, 80%, 50%, 0.35)") == []
    assert hard_coded("rgba(46, 160, 67, 0.3)") == []


# Declarations written in the package's source: the views above are not the only places
# HTML is built, and a view added later must follow the same rule.
SOURCE_DECLARATION = re.compile(
    r"(?<![\w-])(color|background(?:-color)?|border(?:-color)?)\s*:\s*([^;\"'{}]+)"
)


def test_no_source_file_sets_an_opaque_colour_outside_a_theme_variable() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parts[-2] in ("server", "demo"):  # the test server; ANSI colours
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in SOURCE_DECLARATION.finditer(line):
                if hard_coded(match.group(2)):
                    offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {match.group(0)}")
    assert not offenders, "\n".join(offenders)
