"""Answers render as the model wrote them, and every display carries readable text.

Through a real (singleton) IPython shell against a stand-in that streams exact text
(tests/standin.py) or the bundled server: what a notebook renders is escaped for
Jupyter's Markdown renderer; what is stored (Result, history, log) stays raw; what a
terminal prints is readable text, never ``<IPython.core.display.Markdown object>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from tests.conftest import API_KEY
from tests.standin import StandIn, failing_by_temperature, stand_in, text_reply
from writer_magics.answer.markdown import DOLLAR, code_span, escape_markdown
from writer_magics.answer.result import Choice, Result
from writer_magics.server import ServerHandle

PRICES = "Prices are $40 and $90"


# ------------------------------------------------------------------ the escape itself


def test_dollars_become_literal_outside_code_only() -> None:
    assert escape_markdown(PRICES) == f"Prices are {DOLLAR}40 and {DOLLAR}90"
    assert escape_markdown("$$x$$") == DOLLAR * 2 + "x" + DOLLAR * 2
    assert escape_markdown(r"an escaped \$5") == f"an escaped {DOLLAR}5"
    code = "Run `echo $HOME` then:\n\n```bash\necho $PATH <x> &amp;\n```\n"
    assert escape_markdown(code) == code
    assert escape_markdown("``a ` $b``") == "``a ` $b``"
    tilde = "~~~\n$a and $b\n~~~\n"
    assert escape_markdown(tilde) == tilde


def test_raw_html_and_entities_are_shown_as_written() -> None:
    assert escape_markdown("Use <details> or <br> here") == "Use &lt;details> or &lt;br> here"
    assert escape_markdown("a<b>c <!-- x --> 1 < 2") == "a&lt;b>c &lt;!-- x --> 1 &lt; 2"
    assert escape_markdown("&lt; and &#36; but AT&T") == "&amp;lt; and &amp;#36; but AT&T"
    assert escape_markdown("See <https://x.org/a$b> or <me@x.org>") == (
        "See <https://x.org/a%24b> or <me@x.org>"
    )
    assert escape_markdown("[pay](https://x.org/?p=$5) $1") == (
        f"[pay](https://x.org/?p=%245) {DOLLAR}1"
    )
    assert escape_markdown(r"kept \< and \&") == r"kept \< and \&"


def test_dollars_in_bare_urls_keep_the_link_target() -> None:
    """GFM links bare URLs: a span inside one would cut the link (found by a trial user)."""
    shown = escape_markdown("see https://example.com/?a=1&b=$2 or www.q.com/$1 for $5")
    assert "https://example.com/?a=1&b=%242" in shown
    assert "www.q.com/%241" in shown
    assert shown.endswith(f"for {DOLLAR}5")


def test_code_indented_four_columns_is_left_as_written() -> None:
    """A fence nested in a list item (with a blank line inside) and an indented code
    block are code to CommonMark: nothing in them is escaped; the prose around is."""
    nested = "1. Run:\n\n    ```python\n    a = 1\n\n    cost = '$5' if a<b else 0\n    ```\n"
    assert escape_markdown(nested + "\n2. Then $4.") == nested + f"\n2. Then {DOLLAR}4."
    indented = "Text $1:\n\n    price = $40 < 5\n\nAfter."
    assert escape_markdown(indented) == f"Text {DOLLAR}1:\n\n    price = $40 < 5\n\nAfter."
    # a list item's indented continuation is prose, not code
    assert escape_markdown("- a\n    b $5\n") == f"- a\n    b {DOLLAR}5\n"


def test_a_models_latex_delimiters_become_jupyters_math() -> None:
    """CommonMark reads ``\\(`` as an escaped "(": doubled, Jupyter renders the math."""
    assert escape_markdown(r"So \(a+b\) and \[c<d\]") == r"So \\(a+b\\) and \\[c<d\\]"
    assert escape_markdown(r"a literal \[ bracket") == r"a literal \[ bracket"  # unpaired
    assert escape_markdown(r"`\(code\)` stays") == r"`\(code\)` stays"


def test_an_unclosed_code_span_does_not_protect_the_rest() -> None:
    assert escape_markdown("a ` b $1 and $2") == f"a ` b {DOLLAR}1 and {DOLLAR}2"


def test_code_span_survives_backticks_inside() -> None:
    assert code_span("f(x)") == "`f(x)`"
    assert code_span('g("`a`")') == '``g("`a`")``'
    assert code_span("`x") == "`` `x ``"


# ------------------------------------------------------------------ through a shell


@pytest.fixture
def prices() -> Iterator[StandIn]:
    with stand_in(text_reply("Prices are $4", "0 and $90")) as handle:
        yield handle


@pytest.fixture
def standin_shell(
    prices: StandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("WRITER_BASE_URL", prices.url)
    monkeypatch.setenv("WRITER_API_KEY", API_KEY)
    InteractiveShell.clear_instance()
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "writer_magics")
    sh.run_line_magic("config", "WriterMagics.view = 'markdown'")
    sh.run_line_magic("config", "WriterMagics.max_retries = 0")
    sh.run_line_magic("config", f"WriterMagics.log_path = {str(tmp_path / 'log.sqlite3')!r}")
    yield sh
    sh.run_line_magic("unload_ext", "writer_magics")
    InteractiveShell.clear_instance()


def _markdown(cap: Any) -> list[str]:
    return [o.data["text/markdown"] for o in cap.outputs if "text/markdown" in o.data]


def test_prices_render_as_text_live_and_at_the_finish_but_stay_raw(
    standin_shell: InteractiveShell, prices: StandIn
) -> None:
    sh = standin_shell
    with capture_output() as cap:
        sh.run_cell("%%chat -o r\nWhat do they cost?", cell_id="cell-1")
    shown = _markdown(cap)
    assert len(prices.bodies) == 1
    assert shown, "nothing rendered"
    assert all("$" not in md for md in shown)  # live updates and the static finish
    assert f"Prices are {DOLLAR}40 and {DOLLAR}90" in shown[-1]
    (final,) = [o.data for o in cap.outputs if "text/markdown" in o.data][-1:]
    assert final["text/plain"] == PRICES  # the plain answer is the raw one
    result = sh.user_ns["r"]
    assert result.text == PRICES  # stored exactly as received
    assert "$" not in result._repr_markdown_()
    with capture_output() as show:
        sh.run_line_magic("chat", "--show")
    (out,) = show.outputs
    assert PRICES in out.data["text/plain"]  # history keeps the raw text
    assert PRICES not in out.data["text/markdown"] and "$" not in out.data["text/markdown"]
    with capture_output() as log:
        sh.run_line_magic("writer", "log")
    (entries,) = log.outputs
    assert "$" not in entries.data["text/markdown"]
    assert "$40" in entries.data["text/plain"]


def test_terminal_sees_readable_text_for_show_sessions_and_dry_run(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.run_cell("%%chat\nHello there", cell_id="c1")
    for line in ("--show", "--sessions", "--dry-run Hi"):
        with capture_output() as cap:
            shell.run_line_magic("chat", line)
        assert cap.outputs, line
        for out in cap.outputs:
            plain = out.data["text/plain"]
            assert "IPython.core.display" not in plain and "object>" not in plain, line
            assert "text/markdown" in out.data
    assert len(server.requests) == 1  # --dry-run sent nothing
    with capture_output() as cap:
        shell.run_line_magic("chat", "--dry-run Hi")
    assert "Dry run" in cap.outputs[0].data["text/plain"]
    assert API_KEY not in str(cap.outputs[0].data)


def test_logprobs_picture_has_a_text_fallback(shell: InteractiveShell) -> None:
    with capture_output() as cap:
        shell.run_cell("%%chat --logprobs\nName a colour", cell_id="c1")
    html_outputs = [o.data for o in cap.outputs if "text/html" in o.data]
    pictures = [d for d in html_outputs if "writer-magics-" not in d["text/html"][:40]]
    assert len(pictures) == 1
    plain = pictures[0]["text/plain"]
    assert "tokens · mean probability" in plain and "object>" not in plain


def test_each_failed_panel_of_a_sweep_shows_its_own_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with stand_in(failing_by_temperature) as failing:
        monkeypatch.setenv("WRITER_BASE_URL", failing.url)
        monkeypatch.setenv("WRITER_API_KEY", API_KEY)
        InteractiveShell.clear_instance()
        sh = InteractiveShell.instance()
        sh.run_line_magic("load_ext", "writer_magics")
        sh.run_line_magic("config", "WriterMagics.view = 'markdown'")
        sh.run_line_magic("config", "WriterMagics.max_retries = 0")
        try:
            with capture_output() as cap:
                sh.run_cell("%%chat -t 0.2,0.9\nHi", cell_id="c1")
        finally:
            sh.run_line_magic("unload_ext", "writer_magics")
            InteractiveShell.clear_instance()
    assert len(failing.bodies) == 2
    from tests.test_grid import Grid

    final = cap.outputs[-1].data  # the grid's finish: each panel's own footer line
    lines = [panel["status"] for panel in Grid(final["text/html"]).panels]
    assert len(lines) == 2, final
    # The first failure is the cell's error line: its panel's line only says "failed"
    # (said once, issue 14 §10); the other panel's own reason is said nowhere else.
    assert "failed" in lines[0] and "is not allowed" not in lines[0]
    assert "temperature 0.9 is not allowed" in lines[1] and "0.2 is" not in lines[1]
    assert cap.stdout.count("temperature 0.2 is not allowed") == 1, cap.stdout
    plain = final["text/plain"]
    assert plain.index("--- t=0.2 ---") < plain.index("--- t=0.9") < plain.index("0.9 is not")


def test_whitespace_text_with_tool_calls_shows_the_calls() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    result = Result("chat", "palmyra-x5", (Choice(0, "\n", "tool_calls", (call,)),), request={})
    assert result._repr_markdown_() == 'Tool calls: `f({"x": 1})`'
    assert result.text == "\n"


def test_the_demo_echo_prints_the_answer_not_the_escapes() -> None:
    from writer_magics.demo.stream import TerminalEcho

    class Out(list[str]):
        def write(self, text: str) -> int:
            self.append(text)
            return len(text)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    out = Out()
    echo = TerminalEcho(out)  # type: ignore[arg-type]
    text = PRICES + " <b>\n"
    shown = escape_markdown(text)
    head = '<div class="writer-magics-head">palmyra-x5</div>'

    def display(data: dict[str, str], display_id: str, kind: str = "display_data") -> None:
        content = {"data": data, "transient": {"display_id": display_id}}
        echo.message({"msg_type": kind, "content": content})

    display({"text/html": head, "text/plain": "palmyra-x5"}, "head")
    display({"text/markdown": shown}, "p1")  # a tail frame (no text/plain): lines print
    assert "".join(out).strip() == PRICES + " <b>"
    display({"text/markdown": shown, "text/plain": text}, "p1", "update_display_data")
    assert "".join(out).strip() == PRICES + " <b>"


def test_tool_calls_and_refusals_render_as_written() -> None:
    from writer_magics.display.panel import extras_markdown

    md = extras_markdown([("find", '{"q": "`rm` costs $5"}')], {"refusal": "No <b>$1</b> $2"})
    shown = escape_markdown(md)
    assert 'calling ``find({"q": "`rm` costs $5"})``' in shown  # one code span, untouched
    assert f"refusal: No &lt;b>{DOLLAR}1&lt;/b> {DOLLAR}2" in shown


def test_an_answer_cut_inside_a_code_fence_does_not_swallow_the_next_panel() -> None:
    from writer_magics.display import Outcome
    from writer_magics.display.panel import final_markdown, sections

    first = Result("chat", "palmyra-x5", (Choice(0, "Code:\n```py\nx = 1"),), request={})
    second = Result("chat", "palmyra-x5", (Choice(0, "Two $2"),), request={})
    md = final_markdown(sections(Outcome([first, second]), ["t=0.2", "t=0.9"]))
    assert "```py\nx = 1\n```\n\n---\n\n**t=0.9**\n\nTwo $2" in md
