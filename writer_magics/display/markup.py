"""The one way Markdown reaches the notebook: escaped for Jupyter's renderer, with plain text.

The text the model sent (``Result.text``, history, log, cache) is never changed; only
what a frontend renders goes through :func:`escape_markdown`, and every Markdown
display goes through :func:`show_markdown` (or :func:`markdown_bundle`), so a
terminal sees readable text and a notebook sees the answer as the model wrote it.

What JupyterLab does to Markdown (``@jupyterlab/rendermime`` ``removeMath`` + marked +
sanitiser + MathJax, which also scans the rendered text of the page) and what is
escaped here, outside fenced code blocks and inline code spans only:

- ``$`` (and so ``$$``): two dollar signs anywhere in a paragraph become math
  ("Prices are $40 and $90"). Every dollar sign is shown as a literal one, each in its
  own ``<span>``: MathJax pairs delimiters only within one run of text, and
  JupyterLab's own math pass never sees a ``$``. Dollar-delimited LaTeX is therefore
  shown as written, not typeset. In link targets a dollar sign becomes ``%24``.
- ``<``: raw HTML (``<details>``, ``<br>``, ``<script>``, an HTML comment, ``x<y>z``) is
  interpreted, sanitised away or hides the text after it; every ``<`` is shown as
  written (``&lt;``), except autolinks (``<https://…>``, ``<name@host>``).
- ``\\$`` (a dollar the model escaped) is shown as a dollar the same way; other
  backslash escapes (``\\<``, ``\\&``, ``\\\\``) already render as written and stay.
- ``&`` that starts an entity (``&lt;``, ``&#36;``, ``&copy;``) is shown as written.

Left as Markdown on purpose: everything else the model means as Markdown (emphasis,
lists, tables, links, backslash escapes) and backslash-delimited LaTeX (``\\(…\\)``,
``\\[…\\]``, ``\\begin{…}``), which a model writes only when it means math. Indented
(four-space) code blocks are not told apart from list continuations, so they are
escaped like prose; fenced code is never touched.
"""

from __future__ import annotations

import html
import re
from typing import Any

from IPython.core import display_functions

from writer_magics.display.blocks import Fence, _opens

#: How a literal dollar sign is written: a lone ``$`` in its own element.
DOLLAR = "<span>&#36;</span>"

_HAZARD = re.compile(
    r"(?P<escaped>\\[\\<&$])"
    r"|(?P<autolink><(?:[A-Za-z][A-Za-z0-9+.-]{1,31}:[^<>\s]*|[\w.+-]+@[\w-]+(?:\.[\w-]+)+)>)"
    r"|(?P<target>\]\([^()\s]*)"
    r"|(?P<dollar>\$)"
    r"|(?P<lt><)"
    r"|(?P<entity>&(?=#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z][A-Za-z0-9]{1,31};))"
)
_BACKTICKS = re.compile(r"`+")


def _fix(match: re.Match[str]) -> str:
    kind = match.lastgroup
    text = match.group(0)
    if kind in ("autolink", "target"):
        return text.replace("$", "%24")
    if kind == "escaped":  # the model escaped it: ``\\$`` is a dollar, the rest stay
        return DOLLAR if text == "\\$" else text
    if kind == "dollar":
        return DOLLAR
    if kind == "lt":
        return "&lt;"
    return "&amp;"


def _escape_prose(text: str) -> str:
    """Escape one paragraph-ish run of text outside fences, keeping its code spans."""
    if not text:
        return text
    out: list[str] = []
    pos = 0
    search = 0
    while True:
        opening = _BACKTICKS.search(text, search)
        if opening is None:
            break
        run = opening.group(0)
        closing = _BACKTICKS.search(text, opening.end())
        while closing is not None and closing.group(0) != run:
            closing = _BACKTICKS.search(text, closing.end())
        if closing is None:  # an unmatched run is literal text; look past it
            search = opening.end()
            continue
        out.append(_HAZARD.sub(_fix, text[pos : opening.start()]))
        out.append(text[opening.start() : closing.end()])
        pos = search = closing.end()
    out.append(_HAZARD.sub(_fix, text[pos:]))
    return "".join(out)


def escape_markdown(markdown: str) -> str:
    """``markdown`` as Jupyter should render it: what the model did not mean as markup escaped.

    Fenced code blocks and inline code spans are returned unchanged; see the module
    docstring for what is escaped and why. Safe to apply to any piece that starts
    outside a code fence (a streamed block, a tail whose open fence is closed).
    """
    if not any(c in markdown for c in "$<&"):
        return markdown
    out: list[str] = []
    paragraph: list[str] = []
    fence: Fence | None = None

    def flush() -> None:
        if paragraph:
            out.append(_escape_prose("".join(paragraph)))
            paragraph.clear()

    for line in markdown.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if fence is not None:
            out.append(line)
            if fence.closes(body):
                fence = None
            continue
        opened = _opens(body)
        if opened is not None:
            flush()
            out.append(line)
            fence = opened
        elif not body.strip():  # code spans never cross a blank line
            flush()
            out.append(line)
        else:
            paragraph.append(line)
    flush()
    return "".join(out)


def unescape_markdown(markdown: str) -> str:
    """Undo :func:`escape_markdown` for a terminal (the demo's echo of kernel messages).

    Exact for prose; inside code (left as written) a literal ``&lt;`` or ``&amp;``
    would read as ``<`` / ``&``, and ``%24`` in link targets stays: a terminal
    echo, not the stored text, which is always the raw answer.
    """
    if "&" not in markdown:
        return markdown
    return markdown.replace(DOLLAR, "$").replace("&lt;", "<").replace("&amp;", "&")


def escape_html(text: str) -> str:
    """Text for an HTML output: ``html.escape`` plus each ``$`` on its own (MathJax scans
    HTML outputs too)."""
    return html.escape(text).replace("$", DOLLAR)


def code_span(text: str) -> str:
    """``text`` as an inline code span that no backtick inside it can end early."""
    longest = max((len(m.group(0)) for m in _BACKTICKS.finditer(text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def markdown_bundle(markdown: str, plain: str | None = None) -> dict[str, str]:
    """``{"text/markdown": escaped, "text/plain": plain}`` (``plain`` defaults to the source)."""
    return {
        "text/markdown": escape_markdown(markdown),
        "text/plain": markdown if plain is None else plain,
    }


def show_markdown(markdown: str, plain: str | None = None, **kwargs: Any) -> None:
    """Display Markdown the one way: escaped for the renderer, with readable ``text/plain``.

    ``plain`` is what a terminal or a frontend without Markdown shows (default: the
    Markdown source, which reads well as text). ``kwargs`` go to IPython's ``display``
    (``display_id=...``).
    """
    display_functions.display(markdown_bundle(markdown, plain), raw=True, **kwargs)


def show_html(html: str, plain: str, **kwargs: Any) -> None:
    """Display HTML with a readable ``text/plain`` (what a terminal prints)."""
    display_functions.display({"text/html": html, "text/plain": plain}, raw=True, **kwargs)
