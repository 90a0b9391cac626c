"""Where streamed Markdown may be cut: fences, blank lines, lists, tables, long tails."""

from __future__ import annotations

import pytest

from writer_magics.display.blocks import cut_long_tail, renderable, scan, split_finished


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
