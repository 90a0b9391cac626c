"""Where streamed Markdown may be cut: fences, blank lines, lists, tables, long tails."""

from __future__ import annotations

import itertools
import re

import pytest

from writer_magics.display.blocks import (
    cut_long_tail,
    cut_piece,
    hold_back,
    renderable,
    scan,
    split_finished,
)


def finished(text: str) -> str:
    return split_finished(text)[0]


def test_blank_line_ends_a_block_once_the_next_one_starts() -> None:
    assert finished("# Title\n\n") == ""  # the next block might be an indented continuation
    assert finished("# Title\n\nPara") == "# Title\n\n"
    assert finished("one\ntwo\n\nthree\n\nfour") == "one\ntwo\n\nthree\n\n"


def test_no_cut_inside_a_code_fence() -> None:
    text = "```python\nx = 1\n\ny = 2\n\nz = 3"
    assert finished(text) == ""
    assert scan(text)[1] is not None


@pytest.mark.parametrize("fence", ["```", "~~~", "````"])
def test_closing_fence_ends_the_block(fence: str) -> None:
    text = f"intro\n\n{fence}py\na\n\nb\n{fence}\nafter"
    assert finished(text) == f"intro\n\n{fence}py\na\n\nb\n{fence}\n"


def test_shorter_or_other_fence_does_not_close() -> None:
    assert finished("````\na\n```\n\nb\n\nc") == ""
    assert finished("~~~\na\n```\n\nb\n\nc") == ""


def test_lists_and_indented_continuations_stay_together() -> None:
    text = "- a\n- b\n\n  more of b\n\n- c"
    assert finished(text) == "- a\n- b\n\n  more of b\n\n"
    assert finished("1. a\n2. b\n") == ""


def test_a_table_is_one_block() -> None:
    table = "| a | b |\n|---|---|\n| 1 | 2 |\n"
    assert finished(table + "| 3 | 4 |") == ""
    assert finished(table + "\nnext") == table + "\n"


def test_finished_plus_tail_is_the_text_for_every_prefix() -> None:
    text = "# T\n\npara\n\n```\ncode\n\nmore\n```\n- x\n\n| a |\n|---|\n\nend"
    for i in range(len(text) + 1):
        done, tail = split_finished(text[:i])
        assert done + tail == text[:i]
        assert done.count("```") % 2 == 0  # never cut inside a fence


def test_renderable_closes_an_open_fence_only() -> None:
    assert renderable("```py\nx = 1") == "```py\nx = 1\n```"
    assert renderable("~~~~\nx\n") == "~~~~\nx\n~~~~"
    assert renderable("plain *text*") == "plain *text*"


def test_long_code_tail_is_cut_and_reopened() -> None:
    tail = "```py\n" + "x = 1\n" * 50 + "y"
    head, carry, consumed = cut_long_tail(tail, 100)
    assert head.startswith("```py\n") and head.endswith("x = 1\n```\n")
    assert carry == "```py\n"
    assert tail[:consumed] + tail[consumed:] == tail and tail[consumed:] == "y"
    assert cut_long_tail(tail, 10_000) == ("", "", 0)
    assert cut_long_tail("x" * 1000, 100) == ("", "", 0)  # one long line: nowhere to cut
    assert cut_long_tail("```py\n" + "y" * 500, 100) == ("", "", 0)


def test_fence_at_reads_only_fence_lines_but_answers_like_reading_every_line() -> None:
    # _fence_at runs on the whole tail at every update, so it only looks at lines that
    # could be fences; on any mix of prose, fences (open, closed, unfinished, indented,
    # inline-code lookalikes) and line breaks it must agree with the line-by-line reading.
    import random

    from writer_magics.display import blocks

    pieces = [
        "prose line\n",
        "```python\n",
        "```\n",
        "````\n",
        "~~~\n",
        "~~~~ info\n",
        "   ```\n",
        "    ```\n",
        "``` a`b\n",
        "```",
        "~~~",
        "\n",
        "x = 1\r\n",
        "```\r\n",
        "text\u2028more\n",
        "- item ```\n",
    ]
    rng = random.Random(19)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        for end in {0, text.find("\n") + 1}:
            assert blocks._fence_at(text, end) == blocks._fence_at_by_lines(text, end), (
                text,
                end,
            )


# --------------------------------------------------------------------------- issue 14 §8

SAMPLES = [
    "Here is **bold text** and *italic* and `code` and a [link](https://example.com/x).\n\n"
    "- first item with __strong__\n- second item\n\n1. one\n2. two\n",
    "| Name | Price |\n|---|---:|\n| tea | $3 |\n| cake | *$5* |\n\nAfter the table, "
    "see [the docs](https://docs.example.com/a_b) for `x_y` and snake_case_names.\n",
    "Intro with ``double ticks`` and ***both*** here.\n\n```python\nprint('*not* md')\n```\n"
    "\n> quoted **text** with [ref](http://a.b)\n\nEnd_of_text_with_underscores.",
]


def _stray(markdown: str) -> list[str]:
    """Markup characters a renderer shows raw: in text outside code, links and tables."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    found = []
    for token in tokens:
        if token.type == "inline" and token.children:
            in_link = False
            for child in token.children:
                if child.type == "link_open":
                    in_link = True
                elif child.type == "link_close":
                    in_link = False
                elif child.type == "text" and not in_link:
                    text = child.content
                    for mark in ("*", "`", "[", "](", "|"):
                        if mark in text:
                            found.append(f"{mark!r} in {text!r}")
                    if "_" in text and not re.search(r"\w_\w", text):
                        found.append(f"'_' in {text!r}")
    return found


def _empty_items(markdown: str) -> int:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(markdown)
    return sum(
        1
        for a, b in itertools.pairwise(tokens)
        if a.type == "list_item_open" and b.type == "list_item_close"
    )


@pytest.mark.parametrize("sample", SAMPLES)
def test_no_prefix_of_an_answer_shows_raw_markup(sample: str) -> None:
    for n in range(len(sample) + 1):
        shown = hold_back(sample[:n])
        assert not _stray(shown), (sample[:n], shown)
        assert _empty_items(shown) == 0, (sample[:n], shown)


@pytest.mark.parametrize(
    ("tail", "shown"),
    [
        ("Hello **wor", "Hello **wor**"),  # emphasis with content: closed for now
        ("Hello **", "Hello "),  # nothing after it yet: held back
        ("a *b", "a *b*"),
        ("a _b", "a _b_"),
        ("snake_case", "snake_case"),  # intraword underscore is not emphasis
        ("2 * 3", "2 * 3"),
        ("a `co", "a `co`"),
        ("a `", "a "),  # a lone backtick
        ("text\n- ", "text\n"),  # an empty bullet
        ("text\n1.", "text\n"),
        ("Title\n-", "Title\n"),  # would be a setext heading for a frame
        ("see [li", "see li"),
        ("see [link](htt", "see link"),
        ("see [link](http://x) ok", "see [link](http://x) ok"),
        ("| A | B |\n", ""),  # no delimiter row yet
        ("| A | B |\n|--", ""),
        ("| A | B |\n|---|---|\n| 1 | 2", "| A | B |\n|---|---|\n"),  # unfinished row
        ("| A | B |\n|---|---|\n| 1 | 2 |\n", "| A | B |\n|---|---|\n| 1 | 2 |\n"),
        ("```py\nx = 1\n``", "```py\nx = 1\n```"),  # a closing fence being typed
        ("```py\nx = *1", "```py\nx = *1\n```"),  # code is left alone, the fence closed
        ("text\n``", "text\n"),
    ],
)
def test_hold_back_each_case(tail: str, shown: str) -> None:
    assert hold_back(tail) == shown


def test_cut_piece_cuts_code_tables_lists_and_sentences_at_or_after_what_was_shown() -> None:
    assert cut_piece("short", 0, 100) == ("", "", 0)
    head, carry, used = cut_piece("```py\na=1\nb=2\nc", 0, 10)
    assert (head, carry, used) == ("```py\na=1\nb=2\n```\n", "```py\n", 14)
    head, carry, used = cut_piece("| A | B |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n| 5", 0, 10)
    assert head.endswith("| 3 | 4 |\n") and carry == "| A | B |\n|---|---|\n"
    assert cut_piece("- a\n- b\n- c\n- d", 0, 5) == ("- a\n- b\n- c\n", "", 12)
    text = "One sentence here. Two **bold. Still** bold. Three"
    head, carry, used = cut_piece(text, 0, 10)
    assert head == "One sentence here. Two **bold. Still** bold. " and not carry
    head, _, _ = cut_piece(text, 0, 10)
    assert hold_back(head) == head  # a piece never ends inside emphasis
    assert cut_piece(text, len(text) - 3, 10) == ("", "", 0)  # nothing at or after 'at_least'
    assert cut_piece("- a\n  - nested\n  - more", 0, 5)[0] in ("", "- a\n  - nested\n")
