"""Unit tests for writer_magics.line.prompt: what reaches the model, and the errors users read."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError

from writer_magics.errors import PromptError
from writer_magics.line.prompt import is_reference, render, resolve_reference


class Report:
    title = "Q3"

    @property
    def broken(self) -> str:
        raise RuntimeError("boom")


@pytest.fixture
def ns() -> dict[str, Any]:
    return {
        "name": "Ann",
        "report": Report(),
        "rows": [10, 20, 30],
        "cfg": {"k": "v", "a b": {"deep": [1, 2]}},
        "_": "last output",
        "n": 3,
        "braces": "{name}",
    }


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {name}!", "Hello Ann!"),
        ("{report.title} has {n} parts", "Q3 has 3 parts"),
        ("{rows[0]} {rows[-1]}", "10 30"),
        ("{cfg[\"k\"]} {cfg['k']}", "v v"),
        ("{cfg['a b'][\"deep\"][1]}", "2"),
        ("{_}", "last output"),
        ("{name}{name}", "AnnAnn"),
        ("{{name}} is literal", "{name} is literal"),
        ("{{{name}}}", "{Ann}"),
        ("{braces}", "{name}"),  # values are inserted once, never re-rendered
    ],
)
def test_references_are_interpolated(template: str, expected: str, ns: dict[str, Any]) -> None:
    assert render(template, ns) == expected


@pytest.mark.parametrize(
    "template",
    [
        'Convert {"a": 1} to YAML',
        'Convert {"a": {"b": {"c": 1}}} to YAML',
        "def f(): return {1, 2}",
        "d = {k: v for k, v in x.items()}",
        "{ name } has spaces",
        "empty {} and positional {0}",
        "{name()} is a call, {name + 1} an expression",
        "{True} {None} {class} are keywords",
        "unbalanced { and } and {{ and }}",
        '{{"a": 1}}',
        "function f() { return x; }",
    ],
)
def test_other_braces_are_left_exactly(template: str, ns: dict[str, Any]) -> None:
    assert render(template, ns) == template


def test_undefined_name_message(ns: dict[str, Any]) -> None:
    with pytest.raises(PromptError) as info:
        render("Summarise {foo} please", ns)
    assert str(info.value) == (
        "name 'foo' is not defined (in the prompt: {foo}); write {{foo}} for literal braces."
    )
    assert isinstance(info.value, UsageError)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{report.titel}", "report (of type Report) has no attribute 'titel'"),
        ("{rows[7]}", "rows (of type list) has no item 7"),
        ('{cfg["x"]}', "cfg (of type dict) has no item 'x'"),
        ("{n[0]}", "n (of type int) cannot be indexed with 0"),
        ("{report.broken}", "reading report.broken failed: RuntimeError: boom"),
        ("{report.title.nope}", "report.title (of type str) has no attribute 'nope'"),
    ],
)
def test_failed_lookup_messages(template: str, message: str, ns: dict[str, Any]) -> None:
    with pytest.raises(PromptError) as info:
        render(template, ns)
    expr = template[1:-1]
    assert str(info.value) == (
        f"{message} (in the prompt: {{{expr}}}); write {{{{{expr}}}}} for literal braces."
    )


@pytest.mark.parametrize("template", ["", "   ", "\n\t\n"])
def test_empty_prompt(template: str) -> None:
    with pytest.raises(UsageError) as info:
        render(template, {}, magic="%%complete")
    assert str(info.value) == (
        "The prompt is empty: write it in the cell below the %%complete line."
    )


def test_empty_after_rendering_names_line_form() -> None:
    with pytest.raises(UsageError) as info:
        render("{blank}", {"blank": "  "}, magic="%chat")
    assert (
        str(info.value) == "The prompt is empty: write it after the options, e.g. %chat Define RAG."
    )


def test_whitespace_is_kept() -> None:
    assert render("  a\n{name}\n", {"name": "b"}) == "  a\nb\n"


def test_no_code_is_run() -> None:
    calls: list[int] = []

    class Sneaky:
        def __getitem__(self, key: object) -> str:
            calls.append(1)
            return "item"

    ns = {"s": Sneaky(), "f": lambda: calls.append(2)}
    assert render("{f()} {s.__class__.__name__}", ns) == "{f()} Sneaky"
    assert calls == []


def test_resolve_reference_and_is_reference(ns: dict[str, Any]) -> None:
    assert resolve_reference("rows[1]", ns) == 20
    assert resolve_reference("cfg['a b']", ns) == {"deep": [1, 2]}
    assert is_reference("a.b[0]['k']")
    assert not is_reference(" a")
    assert not is_reference("0")
    assert not is_reference("a.")
    assert not is_reference("if")
    with pytest.raises(PromptError, match=r"^name 'nope' is not defined$"):
        resolve_reference("nope", ns)
    with pytest.raises(PromptError, match="is not a variable reference"):
        resolve_reference("a + b", ns)


def test_prompt_error_prints_one_line_in_ipython() -> None:
    # IPython shortens only an exact UsageError; PromptError must still be one line.
    import contextlib
    import io

    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        shell.user_ns["render"] = render
        shell.run_cell("render('{missing}', {})", store_history=False)
    assert (out.getvalue() + err.getvalue()).splitlines()[-1] == (
        "UsageError: name 'missing' is not defined (in the prompt: {missing}); "
        "write {{missing}} for literal braces."
    )
    assert "Traceback" not in out.getvalue() + err.getvalue()


# --------------------------------------------------------------------------- code is kept


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # fenced blocks: backticks, tildes, longer fences, indented fences, unclosed
        ("{name}\n```\nx = '{name}'\n```\n{name}", "Ann\n```\nx = '{name}'\n```\nAnn"),
        ("~~~\n{name}.x\n~~~", "~~~\n{name}.x\n~~~"),
        ("````\n```\n{n} {n}\n```\n````", "````\n```\n{n} {n}\n```\n````"),
        ("   ```py\nf'{name}'\n   ```", "   ```py\nf'{name}'\n   ```"),
        ("1. Run:\n\n       ```\n       echo {name}\n       ```", None),
        ("```\nunclosed {name} and {missing}", "```\nunclosed {name} and {missing}"),
        # a lone placeholder line in a fence is filled, its indentation kept
        ("```\n{name}\n```", "```\nAnn\n```"),
        ("```\n    {report.title}  \n```", "```\n    Q3  \n```"),
        ("```\n{rows[0]}\n{{name}}\n```", "```\n10\n{{name}}\n```"),
        # inline code spans, single and double backticks
        ("Use `{name}` for {name}", "Use `{name}` for Ann"),
        ("``a ` {missing} `` then {n}", "``a ` {missing} `` then 3"),
        ("a lone ` backtick then {n}", "a lone ` backtick then 3"),
        # ${...} is shell / template syntax
        ("cp ${name} ${missing} $name", "cp ${name} ${missing} $name"),
        ("${a{b}} {n}", "${a{b}} 3"),
        # three backticks inside a line make an inline code span, not a fence
        ("Review this: ```{name}```", "Review this: ```{name}```"),
    ],
)
def test_code_is_never_rewritten(ns: dict[str, Any], template: str, expected: str | None) -> None:
    assert render(template, ns) == (template if expected is None else expected)


def test_raw_sends_the_template_unchanged(ns: dict[str, Any]) -> None:
    template = "{missing} {{name}} {name}"
    assert render(template, ns, raw=True) == template
    with pytest.raises(UsageError, match="prompt is empty"):
        render("  \n", ns, raw=True)


def test_the_size_limit(ns: dict[str, Any]) -> None:
    assert render("x" * 10, ns, max_bytes=10) == "x" * 10
    with pytest.raises(UsageError) as info:
        render("é" * 6, ns, max_bytes=10, magic="%complete")  # 12 UTF-8 bytes
    message = str(info.value)
    assert "12 bytes" in message and "--allow-large" in message and "%complete" in message
    assert render("x" * 20, ns, max_bytes=0) == "x" * 20  # 0: no limit


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (r"Simplify $\frac{x}{2}$ and $\sum_{i=1}^{n} i$", None),
        (r"What does \textbf{x} do in LaTeX?", None),
        (r"\begin{equation}E = {x}c^2\end{equation}", None),  # {equation}: never looked up
        (r"$${x}^2$$ and \(a_{x}\) and \[ {x} \]", None),
        (r"Use \sum_{i=1}^{n} for {item}", r"Use \sum_{i=1}^{n} for pen"),
        ("Costs $5 for {item} and $10 total", "Costs $5 for pen and $10 total"),  # prices
        ("report_{x}.txt by {item}{x}", "report_5.txt by pen5"),  # templates still fill
        ("Price $x$ vs {x}", "Price $x$ vs 5"),
    ],
)
def test_latex_is_sent_as_written(template: str, expected: str | None) -> None:
    """Maths and science prompts use one-letter names: a variable x must not turn
    $\\frac{x}{2}$ into $\\frac5{2}$, nor \\begin{equation} fail as an undefined name."""
    ns = {"x": 5, "n": 10, "i": 3, "item": "pen"}
    assert render(template, ns) == (template if expected is None else expected)
