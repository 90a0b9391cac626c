"""Markdown for Jupyter's renderer: the pure escaping, and a Result as Markdown.

Showing it is :mod:`writer_magics.display.finish` (``show_markdown``, always with
``text/plain``).

The text the model sent (``Result.text``, history, log, cache) is never changed; only
what a frontend renders goes through :func:`escape_markdown`, and every Markdown
display goes through ``display.finish.show_markdown`` (or :func:`markdown_bundle`), so a
terminal sees readable text and a notebook sees the answer as the model wrote it.

What JupyterLab does to Markdown (``@jupyterlab/rendermime`` ``removeMath`` + marked +
sanitiser + MathJax, which also scans the rendered text of the page) and what is
escaped here, outside fenced code blocks and inline code spans only:

- ``$`` (and so ``$$``): two dollar signs anywhere in a paragraph become math
  ("Prices are $40 and $90"). Every dollar sign is shown as a literal one, each in its
  own ``<span>``: MathJax pairs delimiters only within one run of text, and
  JupyterLab's own math pass never sees a ``$``. Dollar-delimited LaTeX is therefore
  shown as written, not typeset. In link targets and bare URLs (which GFM links) a
  dollar sign becomes ``%24``, so the link still goes where the model wrote.
- ``<``: raw HTML (``<details>``, ``<br>``, ``<script>``, an HTML comment, ``x<y>z``) is
  interpreted, sanitised away or hides the text after it; every ``<`` is shown as
  written (``&lt;``), except autolinks (``<https://…>``, ``<name@host>``).
- ``\\$`` (a dollar the model escaped) is shown as a dollar the same way; other
  backslash escapes (``\\<``, ``\\&``, ``\\\\``) already render as written and stay.
- ``&`` that starts an entity (``&lt;``, ``&#36;``, ``&copy;``) is shown as written.
- A model's LaTeX delimiters ``\\(…\\)`` / ``\\[…\\]`` (paired, in prose): CommonMark reads
  ``\\(`` as an escaped "(", so they would show as "(a+b)", neither text nor math. They
  are doubled (``\\\\(``), the form JupyterLab's math pass takes, and render as math.

Left as Markdown on purpose: everything else the model means as Markdown (emphasis,
lists, tables, links, backslash escapes) and backslash-delimited LaTeX (``\\(…\\)``,
``\\[…\\]``, ``\\begin{…}``), which a model writes only when it means math. Code is
never touched: fences are found line by line, and when a line is indented four columns
or more (an indented code block, a fence nested in a list item, or only a list
continuation) CommonMark's block parser (markdown-it-py) says which lines are code.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from writer_magics.answer.result import Choice, Result

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


@dataclass(frozen=True, slots=True)
class Fence:
    """An open code fence: its marker (```` ``` ````, ``~~~~``) and its whole opening line."""

    marker: str
    line: str

    def closes(self, line: str) -> bool:
        """A closing fence: same character, at least as long, nothing after it."""
        match = _FENCE.match(line)
        return bool(
            match
            and match.group(1)[0] == self.marker[0]
            and len(match.group(1)) >= len(self.marker)
            and not match.group(2).strip()
        )


def opens_fence(line: str) -> Fence | None:
    """The fence ``line`` opens, or None (a line inside prose or inline code)."""
    match = _FENCE.match(line)
    if match is None:
        return None
    marker, info = match.group(1), match.group(2)
    if marker[0] == "`" and "`" in info:  # ``` with a backtick in the info string is inline code
        return None
    return Fence(marker, line)


#: How a literal dollar sign is written: a lone ``$`` in its own element.
DOLLAR = "<span>&#36;</span>"

_HAZARD = re.compile(
    r"(?P<escaped>\\[\\<&$])"
    r"|(?P<math>(?s:\\\(.+?\\\)|\\\[.+?\\\]))"
    r"|(?P<autolink><(?:[A-Za-z][A-Za-z0-9+.-]{1,31}:[^<>\s]*|[\w.+-]+@[\w-]+(?:\.[\w-]+)+)>)"
    r"|(?P<target>\]\([^()\s]*)"
    r"|(?P<bare>\b(?:https?://|www\.)[^\s<]*)"
    r"|(?P<dollar>\$)"
    r"|(?P<lt><)"
    r"|(?P<entity>&(?=#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z][A-Za-z0-9]{1,31};))"
)
_BACKTICKS = re.compile(r"`+")


def _fix(match: re.Match[str]) -> str:
    kind = match.lastgroup
    text = match.group(0)
    if kind in ("autolink", "target", "bare"):
        return text.replace("$", "%24")
    if kind == "escaped":  # the model escaped it: ``\\$`` is a dollar, the rest stay
        return DOLLAR if text == "\\$" else text
    if kind == "math":  # LaTeX's \\( \\) / \\[ \\]: doubled, Jupyter's math delimiters
        return "\\" + text[:-2] + "\\" + text[-2:]
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
    if not any(c in markdown for c in "$<&") and "\\(" not in markdown and "\\[" not in markdown:
        return markdown
    out: list[str] = []
    paragraph: list[str] = []
    fence: Fence | None = None
    code = _indented_code_lines(markdown)

    def flush() -> None:
        if paragraph:
            out.append(_escape_prose("".join(paragraph)))
            paragraph.clear()

    for number, line in enumerate(markdown.splitlines(keepends=True)):
        body = line.rstrip("\r\n")
        if code is not None:  # indented lines: CommonMark's own reading of the blocks
            if number in code or not body.strip():
                flush()
                out.append(line)
            else:
                paragraph.append(line)
            continue
        if fence is not None:
            out.append(line)
            if fence.closes(body):
                fence = None
            continue
        opened = opens_fence(body)
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


_INDENTED = re.compile(r"^(?: {4}|\t| {0,3}\t)", re.MULTILINE)
#: Line boundaries of ``str.splitlines`` that markdown-it does not count.
_OTHER_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _indented_code_lines(markdown: str) -> frozenset[int] | None:
    """The lines (0-based, ``str.splitlines``) inside code blocks, when some line is
    indented four columns or more; None otherwise (the fence rule above is exact then).

    Indentation is where a line-by-line reading goes wrong: an indented code block, or a
    fenced block nested in a list item (``1.`` then a four-space ```` ``` ````), whose
    blank line would end a code span. There the blocks are read by markdown-it-py's
    CommonMark block parser (no inline parsing): every ``fence`` and ``code_block``.
    """
    if _INDENTED.search(markdown) is None or _OTHER_BREAKS.search(markdown):
        return None  # (markdown-it counts only \n, \r\n and \r as line ends)
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark").disable(["inline", "text_join"])
    lines: set[int] = set()
    for token in parser.parse(markdown):
        if token.type in ("fence", "code_block") and token.map is not None:
            lines.update(range(*token.map))
    return frozenset(lines)


def unescape_markdown(markdown: str) -> str:
    """Undo :func:`escape_markdown` for a terminal (the demo's echo of kernel messages).

    Exact for prose; inside code (left as written) a literal ``&lt;`` or ``&amp;``
    would read as ``<`` / ``&``, and ``%24`` in link targets stays: a terminal
    echo, not the stored text, which is always the raw answer.
    """
    if "\\\\" in markdown:  # math delimiters doubled for Jupyter
        for mark in "()[]":
            markdown = markdown.replace("\\\\" + mark, "\\" + mark)
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


def markdown_of(result: Result) -> str:
    """The answer as Markdown: one section per choice when there are several."""
    if len(result.choices) <= 1:
        return _choice_markdown(result.choices[0]) if result.choices else ""
    sections = [f"**Choice {c.index + 1}**\n\n{_choice_markdown(c)}" for c in result.choices]
    return "\n\n---\n\n".join(sections)


def _choice_markdown(choice: Choice) -> str:
    """The text, or the tool calls when the text is empty or only whitespace.

    Writer streams ``content: "\\n"`` between tool calls, so a whitespace-only text
    with calls is a tool-call answer.
    """
    text = choice.text
    if choice.tool_calls and not text.strip():
        calls = [
            code_span(f"{c['function']['name']}({c['function']['arguments']})")
            for c in choice.tool_calls
        ]
        text = "Tool calls: " + ", ".join(calls)
    return text
