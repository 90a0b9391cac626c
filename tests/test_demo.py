"""``python -m writer_magics demo``: end to end with no key, and its terminal echo.

The end-to-end test runs the README's command in a subprocess (no ``WRITER_API_KEY``),
reads the terminal line by line with arrival times, and checks that the answers came
in pieces while the kernel ran, not in one block at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tests.kernel_env import REPO, markdown_outputs, model_cells
from writer_magics.demo.stream import TerminalEcho


def _demo_env(data: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRITER_")}
    if data is not None:
        env["XDG_DATA_HOME"] = str(data)  # the user's data directory (prompt log, cache)
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_COLOR"] = "1"
    return env


def _run_demo(
    args: list[str], cwd: Path, timeout: float = 90, data: Path | None = None
) -> tuple[int, list[tuple[float, str]]]:
    """Run the demo; return its exit code and (arrival time, line) pairs."""
    process = subprocess.Popen(
        [sys.executable, "-m", "writer_magics", "demo", *args],
        cwd=cwd,
        env=_demo_env(data),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[tuple[float, str]] = []
    deadline = time.monotonic() + timeout
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.monotonic(), line.rstrip("\n")))
            if time.monotonic() > deadline:
                raise TimeoutError("demo ran too long")
        return process.wait(timeout=30), lines
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.timeout(120)
def test_demo_without_a_key_streams_answers_and_writes_notebook_and_html(tmp_path: Path) -> None:
    user_data = tmp_path / "user-data"
    code, lines = _run_demo(["--tokens-per-second", "80"], cwd=tmp_path, data=user_data)
    text = "\n".join(line for _, line in lines)
    assert code == 0, text
    # the bundled server's answers stay out of the user's prompt log and cache
    assert not list(user_data.rglob("*")), list(user_data.rglob("*"))
    assert "bundled server at http://127.0.0.1:" in text
    out_dir = tmp_path / "demo-output"
    assert str(out_dir) in text  # the folder is named in the output

    nb = nbformat.read(out_dir / "quickstart.ipynb", as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert f"[1/{len(code_cells)}] %load_ext writer_magics" in text
    assert f"[{len(code_cells)}/{len(code_cells)}]" in text  # a progress line per cell
    answers = [a for cell in model_cells(nb) for a in markdown_outputs(cell)]
    assert len(answers) >= 5
    for answer in answers:
        assert answer in text + "\n", f"answer not shown in full: {answer[:60]!r}"
    # Each answer is printed once, whole, then its footer line: nothing repeated or cut
    # (the finish joins pieces and empties the rest; the terminal must not echo either).
    progress = [i for i, (_, line) in enumerate(lines) if line.startswith("[") and "] " in line]
    assert len(progress) == len(code_cells)
    for k, cell in enumerate(code_cells):
        if cell not in model_cells(nb):
            continue
        end = progress[k + 1] if k + 1 < len(progress) else len(lines)
        region = "\n".join(line for _, line in lines[progress[k] + 1 : end])
        answer = "".join(
            str(o["data"]["text/plain"])
            for o in cell.outputs
            if "text/markdown" in o.get("data", {})
        )
        assert region.startswith(answer.rstrip("\n") + "\n"), (region, answer)
        after = region[len(answer.rstrip("\n")) + 1 :].split("\n")
        assert after[0].startswith("palmyra-x5 · "), after  # the footer, right after it
        assert all(not line or line.startswith("#") for line in after[1:]), after

    # Streamed: the first chat answer's lines arrived over time, not in one burst.
    chat = next(i for i, c in enumerate(code_cells) if c.source.startswith("%%chat"))
    start = next(i for i, (_, line) in enumerate(lines) if line.startswith(f"[{chat + 1}/"))
    end = next(i for i, (_, line) in enumerate(lines) if line.startswith(f"[{chat + 2}/"))
    answer = "".join(markdown_outputs(code_cells[chat]))  # its pieces, in order
    answer_lines = [line for line in answer.splitlines() if line]
    times = [t for t, line in lines[start:end] if line in answer_lines]
    assert len(times) >= 3
    assert max(times) - min(times) > 0.4, "the answer arrived all at once"

    html = (out_dir / "quickstart.html").read_text(encoding="utf-8")
    assert "<li>" in html  # the static Markdown answers are rendered, not escaped
    assert "retrieval-augmented" in html
    assert "widget-view" not in html


@pytest.mark.timeout(90)
def test_demo_cell_error_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext writer_magics"),
            nbformat.v4.new_code_cell("%%chat --no-such-option\nhi"),
            nbformat.v4.new_code_cell("print('not reached')"),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    code, lines = _run_demo(["--notebook", str(path), "--out", "out"], cwd=tmp_path)
    text = "\n".join(line for _, line in lines)
    assert code == 1, text
    failures = [line for _, line in lines if line.startswith("✗")]
    assert len(failures) == 1, text
    assert "cell 2 failed: UsageError" in failures[0]
    assert "not reached" not in text
    assert "Traceback" not in text


def test_demo_unknown_notebook_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from writer_magics.__main__ import main

    assert main(["demo", "--notebook", "no-such-notebook"]) == 1
    assert capsys.readouterr().out.count("\n") == 1


def test_notebooks_are_found_from_the_package_in_a_clone() -> None:
    from writer_magics.demo.run import find_notebook

    assert find_notebook("quickstart") == REPO / "notebooks" / "quickstart.ipynb"


# ------------------------------------------------------------- TerminalEcho, unit level


def _display(
    data: dict[str, object], display_id: str = "", update: bool = False
) -> dict[str, object]:
    return {
        "msg_type": "update_display_data" if update else "display_data",
        "content": {"data": data, "metadata": {}, "transient": {"display_id": display_id}},
    }


class _Out:
    def __init__(self) -> None:
        self.chunks: list[str] = []

    def write(self, text: str) -> int:
        self.chunks.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _head(display_id: str, update: bool = False) -> dict[str, object]:
    html = '<div class="writer-magics-head">palmyra-x5</div>'
    return _display({"text/html": html, "text/plain": "palmyra-x5"}, display_id, update)


def test_echo_prints_each_piece_once_as_it_is_sealed_then_the_footer() -> None:
    out = _Out()
    echo = TerminalEcho(out)  # type: ignore[arg-type]
    echo.message(_head("head"))
    echo.message(_display({"text/markdown": "Hello"}, "p1"))
    echo.message(_head("head", update=True))  # the status ticks: nothing printed
    sealed = "Hello world.\n\n```python\nx = 1\n```\n"  # a code block cut in two
    echo.message(_display({"text/markdown": sealed, "text/plain": sealed}, "p1", update=True))
    rest = "```python\ny = 2\n```\n\nBye."
    echo.message(_display({"text/markdown": rest}, "p2"))
    echo.message(_display({"text/markdown": rest, "text/plain": rest}, "p2", update=True))
    footer = '<div class="writer-magics-footer">palmyra-x5 · 3 tokens</div>'
    echo.message(_display({"text/html": footer, "text/plain": "palmyra-x5 · 3 tokens"}))
    printed = "".join(out.chunks)
    answer = "Hello world.\n\n```python\nx = 1\ny = 2\n```\n\nBye."  # the cut block joined
    assert printed == answer + "\npalmyra-x5 · 3 tokens\n"
    assert out.chunks[0] == "Hello world.\n\n```python\nx = 1\n"  # the fence held back


def test_echo_shows_several_panels_whole_at_the_end() -> None:
    out = _Out()
    echo = TerminalEcho(out)  # type: ignore[arg-type]
    grid = '<div class="writer-magics-grid">partial answer of one panel</div>'
    echo.message(_display({"text/html": grid, "text/plain": "streaming…"}, "g1"))
    echo.message(_display({"text/html": grid, "text/plain": "streaming…"}, "g1", update=True))
    final = "--- t=0.2 ---\nOne.\n--- t=1 ---\nTwo."
    bundle: dict[str, object] = {"text/html": grid, "text/markdown": "One.", "text/plain": final}
    echo.message(_display(bundle, "g1", update=True))
    printed = "".join(out.chunks)
    assert "partial answer" not in printed
    assert printed.endswith(final + "\n")


def test_echo_prints_a_joined_answer_once_and_holds_an_unfinished_code_line() -> None:
    """The clean finish joins pieces into the first and empties the others; inside an
    open code block the view closes the fence after a line that may be unfinished."""
    out = _Out()
    echo = TerminalEcho(out)  # type: ignore[arg-type]
    echo.message(_head("head"))
    first = "Intro.\n\n"
    echo.message(_display({"text/markdown": first, "text/plain": first}, "p1"))
    echo.message(_display({"text/markdown": "```python\ndef f(items: li\n```"}, "p2"))
    echo.message(
        _display({"text/markdown": "```python\ndef f(items: list):\n    re\n```"}, "p2", True)
    )
    code = "```python\ndef f(items: list):\n    return items\n```\n\nBye."
    echo.message(_display({"text/markdown": code, "text/plain": code}, "p2", True))
    whole = first + code
    echo.message(_display({"text/markdown": whole, "text/plain": whole}, "p1", True))
    echo.message(_display({"text/plain": ""}, "p2", True))
    footer = '<div class="writer-magics-footer">palmyra-x5 · 9 tokens</div>'
    echo.message(_display({"text/html": footer, "text/plain": "palmyra-x5 · 9 tokens"}))
    assert "".join(out.chunks) == whole + "\npalmyra-x5 · 9 tokens\n"
    assert "def f(items: li\n" not in out.chunks
