"""The option table (writer_magics.line.table) is the one place an option is declared."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from writer_magics import request as bodies
from writer_magics.line.options import (
    ChatOptions,
    CompleteOptions,
    body_values,
    parse_chat,
    parse_complete,
)
from writer_magics.line.table import OPTIONS, options_of

LINE = Path(__file__).resolve().parent.parent / "writer_magics" / "line"
# What line/ may import from the package: earlier stages and itself (completion.py is
# r-magics' part of issue 13 and is checked by the stage-order test).
EARLIER = ("writer_magics.errors", "writer_magics.config", "writer_magics.files")


def test_every_row_fills_a_field_of_each_magic_that_takes_it() -> None:
    for kind, cls in (("complete", CompleteOptions), ("chat", ChatOptions)):
        names = {f.name for f in dataclasses.fields(cls)}
        for option in options_of(kind):
            assert option.field is None or option.field in names, (kind, option.long)


def test_flags_are_unique_and_long_flags_name_the_option() -> None:
    flags = [f for o in OPTIONS for f in o.flags]
    assert len(flags) == len(set(flags))
    assert all(o.long.startswith("--") for o in OPTIONS)


@pytest.mark.parametrize(
    "line",
    [
        "-t 0.3 --top-p 0.8 --max-tokens 12 --stop END --stop '\\n' -n 2 --logprobs",
        "-m palmyra-x4",
        "--stop a --stop a",
    ],
)
def test_chat_body_values_are_what_the_request_sends(line: str) -> None:
    opts = parse_chat(line, {}, default_model="palmyra-x5", cell=True)
    (params,) = opts.params
    body = bodies.chat(opts, params, [{"role": "user", "content": "Hi"}], stream=True).body
    for key, value in body_values("chat", opts, params).items():
        assert body.get(key) == value, key


def test_complete_body_values_are_what_the_request_sends() -> None:
    line = "-t 1 --top-p 0.5 --max-tokens 9 --stop x --best-of 2 --random-seed 0"
    opts = parse_complete(line, {}, default_model="palmyra-x5", cell=True)
    (params,) = opts.params
    body = bodies.completion(opts, params, "Hi", stream=False).body
    sent = body_values("complete", opts, params)
    assert sent["random_seed"] == 0 and sent["best_of"] == 2 and sent["stop"] == ["x"]
    for key, value in sent.items():
        assert body.get(key) == value, key


def test_line_imports_only_earlier_stages() -> None:
    for path in sorted(LINE.glob("*.py")):
        if path.name == "completion.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("writer_magics") and not name.startswith("writer_magics.line"):
                    assert name.startswith(EARLIER), f"{path.name} imports {name}"
