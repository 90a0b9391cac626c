"""What people type reaches the model unchanged (issue 11 §1-3) and limits hold before
anything is sent (issue 12 §1 last bullet, §5, §6 first bullet).

Everything goes through a real singleton shell (``run_cell`` with JupyterLab-style cell
ids) against the bundled server on 127.0.0.1, counting what the server received; the
line-form question is also checked in a real kernel.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.inputtransformer2 import TransformerManager
from IPython.core.interactiveshell import InteractiveShell
from jupyter_client.blocking.client import BlockingKernelClient

from tests.conftest import API_KEY, run
from tests.kernel_env import started_kernel
from tests.test_kernel import execute
from tests.test_magics import everything, last_body, user_texts
from writer_magics.line.questions import magic_questions
from writer_magics.server import ServerHandle, start_server

GRAPH = "6e2a7f0c-1d5b-4e0a-9c3f-2b8d1a4e5f60"


def one_line_error(shell: InteractiveShell, cell: str, server: ServerHandle) -> str:
    """Run a cell that must be refused: one UsageError line, no traceback, nothing sent."""
    captured = run(shell, cell, cell_id="refused")
    text = everything(captured)
    assert server.requests == [], f"sent although refused: {cell!r}"
    assert "Traceback" not in text
    shown = str(captured.stdout + captured.stderr)
    lines = [line for line in shown.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("UsageError: "), shown
    return lines[0]


def system_and_user(server: ServerHandle) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in last_body(server)["messages"]]


# ------------------------------------------------------------------ §1 questions end in ?


@pytest.mark.parametrize(
    ("cell", "endpoint", "sent"),
    [
        ("%chat What is RAG?", "/v1/chat", "What is RAG?"),
        ("%chat What is RAG??", "/v1/chat", "What is RAG??"),
        ("%chat -t 0.2 Is it 5?", "/v1/chat", "Is it 5?"),
        ("%complete Why is the sky blue?", "/v1/completions", "Why is the sky blue?"),
        ("x = 1\n%chat What's RAG, really?\n", "/v1/chat", "What's RAG, really?"),
    ],
)
def test_a_line_form_question_is_sent_verbatim(
    shell: InteractiveShell, server: ServerHandle, cell: str, endpoint: str, sent: str
) -> None:
    text = everything(run(shell, cell, cell_id="q1"))
    assert "not found" not in text and "Traceback" not in text
    assert len(server.requests) == 1 and server.requests[0].path == endpoint
    body = last_body(server)
    assert (body["prompt"] if "prompt" in body else user_texts(body)[-1]) == sent


@pytest.mark.parametrize(
    ("cell", "sent"),
    [
        ("chat What is RAG?", "What is RAG?"),
        ("chat -t 0.2 What's new, really?", "What's new, really?"),
        ("x = 1\ncomplete Why is the sky blue?", "Why is the sky blue?"),
    ],
)
def test_an_automagic_question_is_sent_verbatim(
    shell: InteractiveShell, server: ServerHandle, cell: str, sent: str
) -> None:
    """Without the ``%`` (IPython's automagic, on by default) a question is still a prompt."""
    text = everything(run(shell, cell, cell_id="auto"))
    assert "not found" not in text and "Traceback" not in text
    body = last_body(server)
    assert (body["prompt"] if "prompt" in body else user_texts(body)[-1]) == sent


def test_a_shadowed_name_or_automagic_off_is_left_to_ipython(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "chat = 'my variable'", cell_id="v")
    run(shell, "chat What is RAG?", cell_id="shadowed")
    shell.run_line_magic("automagic", "off")
    try:
        run(shell, "complete What is RAG?", cell_id="off")
    finally:
        shell.run_line_magic("automagic", "on")
    assert server.requests == []


def test_questions_in_a_loop_each_send(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, "for i in range(2):\n    %complete Number {i}?\n", cell_id="loop")
    assert [r.body["prompt"] for r in server.requests] == ["Number 0?", "Number 1?"]


@pytest.mark.parametrize("cell", ["%chat?", "%%chat?", "%complete?", "%%complete?"])
def test_the_magic_name_with_a_question_mark_alone_shows_help(
    shell: InteractiveShell, server: ServerHandle, cell: str
) -> None:
    text = everything(run(shell, cell, cell_id="help"))
    assert "--temperature" in text and "--raw" in text
    assert server.requests == []


def test_two_question_marks_alone_show_the_source(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    text = everything(run(shell, "%chat??", cell_id="help2"))
    assert "chat_arguments" in text and server.requests == []


def test_writer_search_text_may_end_in_a_question_mark(shell: InteractiveShell) -> None:
    text = everything(run(shell, "%writer log --search RAG?", cell_id="w"))
    assert "not found" not in text and "Traceback" not in text


def test_the_transformer_comes_and_goes_with_the_extension(shell: InteractiveShell) -> None:
    assert shell.input_transformers_cleanup.count(magic_questions) == 1
    shell.run_line_magic("reload_ext", "writer_magics")
    assert shell.input_transformers_cleanup.count(magic_questions) == 1
    shell.run_line_magic("unload_ext", "writer_magics")
    assert magic_questions not in shell.input_transformers_cleanup
    shell.run_line_magic("load_ext", "writer_magics")
    assert shell.input_transformers_cleanup.count(magic_questions) == 1


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("s = '''\n%chat what?\n'''\n", "s = '''\n%chat what?\n'''\n"),  # inside a string
        ("# %chat what?\n", "# %chat what?\n"),  # a comment
        ("%%writefile x.txt\n%chat what?\n", None),  # a cell magic's body
    ],
)
def test_text_that_is_not_a_line_magic_is_left_alone(cell: str, expected: str | None) -> None:
    lines = cell.splitlines(keepends=True)
    assert magic_questions(lines) == lines
    if expected is not None:
        manager = TransformerManager()
        manager.cleanup_transforms.append(magic_questions)
        assert manager.transform_cell(cell) == expected


@pytest.fixture(scope="module")
def kernel() -> Iterator[tuple[ServerHandle, BlockingKernelClient]]:
    with start_server() as server:
        env = dict(os.environ, WRITER_BASE_URL=server.url, WRITER_API_KEY=API_KEY)
        with started_kernel(env) as (_manager, client):
            execute(client, "%load_ext writer_magics\n%config WriterMagics.view = 'text'")
            yield server, client


@pytest.mark.timeout(120)
def test_a_question_in_a_real_kernel(kernel: tuple[ServerHandle, BlockingKernelClient]) -> None:
    server, client = kernel
    server.clear()
    helped = execute(client, "%chat?")
    assert server.requests == []
    assert helped.reply is not None and helped.reply["status"] == "ok"
    # ipykernel sends help as a "page" payload of the reply (or, failing that, as output)
    shown = str(helped.reply.get("payload", [])) + str([m for _, m in helped.messages])
    assert "--temperature" in shown and "not found" not in shown, helped.reply
    asked = execute(client, "%chat What is RAG?")
    assert asked.reply is not None and asked.reply["status"] == "ok"
    received = server.wait_for_requests(1)
    assert [user_texts(r.body)[-1] for r in received] == ["What is RAG?"]


# ------------------------------------------------------------------ §2 quotes


def test_an_apostrophe_inside_single_quotes_is_text(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%chat -s 'You're terse' Hi", cell_id="q")
    assert system_and_user(server) == [("system", "You're terse"), ("user", "Hi")]


@pytest.mark.parametrize(
    ("line", "system", "user"),
    [
        ("-s “You are terse” Hi", "You are terse", "Hi"),
        ("-s ‘You’re terse’ Hi", "You’re terse", "Hi"),
        ("-s You're Hi there", "You're", "Hi there"),
        ("-s \"It's\" What's up?", "It's", "What's up?"),
    ],
)
def test_curly_quotes_and_apostrophes(
    shell: InteractiveShell, server: ServerHandle, line: str, system: str, user: str
) -> None:
    run(shell, f"%chat {line}", cell_id="curly")
    assert system_and_user(server) == [("system", system), ("user", user)]


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ("%chat -s 'You are terse Hi", "unclosed ' quote at column 10"),
        ("%chat -s “You are terse Hi", "unclosed “ quote at column 10"),
        ("%chat -s terse” Hi", "closing ” quote at column 15"),
        ("%chat -s 'students' work' Hi", "' at column 25"),
        ("%%chat -s 'You are terse\nHi", "unclosed ' quote at column 11"),
        ("%writer log --search 'unclosed", "unclosed ' quote at column 22"),
    ],
)
def test_an_unbalanced_quote_is_refused_with_its_column(
    shell: InteractiveShell, server: ServerHandle, cell: str, says: str
) -> None:
    assert says in one_line_error(shell, cell, server)


def test_writer_lines_take_curly_quotes(shell: InteractiveShell, tmp_path: Any) -> None:
    target = tmp_path / "my log.jsonl"
    text = everything(run(shell, f"%writer log --export “{target}”", cell_id="w"))
    assert "Traceback" not in text and target.exists()


# ------------------------------------------------------------------ §3 the interpolation rule


def test_code_in_a_fence_is_sent_as_written(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.user_ns["topic"] = "vector databases"
    run(
        shell,
        "%%chat\nExplain {topic}:\n```python\nprint(f'{topic} is {len(topic)}')\n```",
        cell_id="fence",
    )
    assert user_texts(last_body(server)) == [
        "Explain vector databases:\n```python\nprint(f'{topic} is {len(topic)}')\n```"
    ]


def test_dollar_brace_is_never_filled(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.user_ns["src"] = "data.csv"
    run(shell, '%%complete\ncp "${src}" out/ && cp "${missing}" out/', cell_id="dollar")
    assert last_body(server)["prompt"] == 'cp "${src}" out/ && cp "${missing}" out/'


def test_an_undefined_name_in_code_does_not_block(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns.pop("x", None)
    run(shell, "%%chat\nWhy does this fail?\n```\nfmt = '{x}'\n```\nand `{x}`", cell_id="u")
    assert user_texts(last_body(server)) == [
        "Why does this fail?\n```\nfmt = '{x}'\n```\nand `{x}`"
    ]


def test_a_lone_placeholder_line_in_a_fence_is_filled(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["source"] = "def f():\n    return {'a': 1}"
    run(shell, "%%chat\nreview this:\n```python\n{source}\n```", cell_id="lone")
    assert user_texts(last_body(server)) == [
        "review this:\n```python\ndef f():\n    return {'a': 1}\n```"
    ]


def test_raw_sends_the_cell_exactly(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.user_ns.pop("nowhere", None)
    run(shell, "%%chat --raw\nFill {nowhere} and {{name}}", cell_id="raw")
    assert user_texts(last_body(server)) == ["Fill {nowhere} and {{name}}"]
    run(shell, "%complete --raw Say {nowhere}", cell_id="raw2")
    assert last_body(server)["prompt"] == "Say {nowhere}"


def test_prose_is_still_filled_and_escapes_still_work(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["topic"] = "tides"
    shell.user_ns["rows"] = ["first"]
    run(shell, "%%complete\nAbout {topic}, {rows[0]}, {topic.upper}; {{topic}}", cell_id="p")
    prompt = last_body(server)["prompt"]
    assert prompt.startswith("About tides, first, <built-in method upper")
    assert prompt.endswith("; {topic}")


def test_an_undefined_name_in_prose_is_one_line(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns.pop("nowhere", None)
    assert "name 'nowhere' is not defined" in one_line_error(
        shell, "%%chat\nTell me about {nowhere}", server
    )


# ------------------------------------------------------------------ 12 §1 keys on the line


@pytest.mark.parametrize(
    "cell",
    [
        f"%chat -s {API_KEY} Hi",
        f"%chat --system='{API_KEY}' Hi",
        f"%complete Is {API_KEY} valid?",
        f"%%chat -s {API_KEY}\nHi",
    ],
)
def test_a_key_typed_on_the_line_is_refused_unshown(
    shell: InteractiveShell, server: ServerHandle, cell: str
) -> None:
    message = one_line_error(shell, cell, server)
    assert "looks like an API key" in message
    assert API_KEY not in message and "SECRET" not in message


def test_the_configured_key_is_refused_whatever_its_shape(
    shell: InteractiveShell, server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRITER_API_KEY", "plainlowercasekey")
    message = one_line_error(shell, "%chat Is plainlowercasekey right?", server)
    assert "plainlowercasekey" not in message


def test_words_that_only_resemble_keys_are_sent(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, f"%chat -m palmyra-x5 --graph {GRAPH} Use sk-learn and a1b2c3?", cell_id="k")
    assert user_texts(last_body(server)) == ["Use sk-learn and a1b2c3?"]


# ------------------------------------------------------------------ 12 §5 limits, §6 graph ids


@pytest.mark.parametrize(
    ("cell", "says"),
    [
        ("%chat -n 1000000 Hi", "--n expects a whole number between 1 and 128"),
        ("%chat --max-tokens 2147483648 Hi", "between 1 and 2147483647"),
        ("%complete --best-of 2147483648 Hi", "between 1 and 2147483647"),
        ("%complete --random-seed 2147483648 Hi", "between 0 and 2147483647"),
        ("%chat -o __builtins__ Hi", "would hide Python's own __builtins__"),
        ("%chat -o class Hi", "class is a Python keyword"),
        ("%chat -o 1x Hi", "expects a Python variable name"),
        ("%chat -o print Hi", "would hide Python's own print"),
        ("%chat -o Out Hi", "IPython uses Out itself"),
        ("%chat --graph my-graph Hi", "UUIDs"),
    ],
)
def test_limits_are_checked_before_sending(
    shell: InteractiveShell, server: ServerHandle, cell: str, says: str
) -> None:
    assert says in one_line_error(shell, cell, server)


def test_a_sweep_over_max_sweep_is_refused_then_allowed(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    temps = ",".join(f"0.{i}" for i in range(1, 10))
    cell = f"%%complete -m a,b,c,d -t {temps}\nHi"
    message = one_line_error(shell, cell, server)
    assert "This sweep is 36 requests (4 --model x 9 --temperature)" in message
    assert "%config WriterMagics.max_sweep = 36" in message
    shell.run_line_magic("config", "WriterMagics.max_sweep = 2")
    assert "sweep is 3 requests" in one_line_error(shell, "%%complete -t 0.1,0.2,0.3\nHi", server)
    run(shell, "%%complete -t 0.1,0.2\nHi", cell_id="two")
    assert len(server.requests) == 2


def test_identical_combinations_are_one_request(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    captured = run(shell, "%%chat -t 0.5,0.5\nHi", cell_id="same")
    assert len(server.requests) == 1 and last_body(server)["temperature"] == 0.5
    assert "sent once, 1 request instead of 2" in captured.stderr
    assert "sweep of" not in everything(captured)


def test_a_large_prompt_needs_allow_large(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.user_ns["big"] = "x" * 4_100_000
    message = one_line_error(shell, "%%chat\nSummarise {big}", server)
    assert "4.1 MB" in message and "--allow-large" in message
    assert "max_prompt_bytes" in message
    shell.run_line_magic("config", "WriterMagics.max_prompt_bytes = 1000")
    shell.user_ns["big"] = "y" * 2000
    assert "--allow-large" in one_line_error(shell, "%complete Summarise {big}", server)
    run(shell, "%complete --allow-large Summarise {big}", cell_id="large")
    assert last_body(server)["prompt"] == "Summarise " + "y" * 2000


def test_a_large_system_prompt_needs_allow_large(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.run_line_magic("config", "WriterMagics.max_prompt_bytes = 1000")
    shell.user_ns["persona"] = "z" * 2000
    assert "system prompt is 2,000 bytes" in one_line_error(shell, "%chat -s $persona Hi", server)
    run(shell, "%chat --allow-large -s $persona Hi", cell_id="sys")
    assert system_and_user(server) == [("system", "z" * 2000), ("user", "Hi")]
