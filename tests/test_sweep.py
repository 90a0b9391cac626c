"""Sweep: the table and records; a real 2x2 sweep through execute() with bounded concurrency."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from writer_magics.answer.result import Choice, Outcomes, Result, Timing
from writer_magics.answer.sweep import Sweep
from writer_magics.display import TextView
from writer_magics.errors import ServerError
from writer_magics.line.options import Params
from writer_magics.request import Request, completion_request
from writer_magics.send import execute
from writer_magics.server import ServerHandle, start_server
from writer_magics.transport.client import ClientSettings, WriterClient
from writer_magics.transport.events import Event, Usage
from writer_magics.transport.loop import LoopThread

A = Params("palmyra-x5", temperature=0.2)
B = Params("palmyra-x4", temperature=1.0)


def result(text: str, model: str, status: str = "done", tokens: int | None = 9) -> Result:
    return Result(
        endpoint="chat",
        model=model,
        choices=(Choice(0, text, "stop"),),
        request={"model": model},
        usage=None if tokens is None else Usage(3, tokens, 3 + tokens),
        timing=Timing(first_token=0.125, total=1.5),
        status=status,  # type: ignore[arg-type]
    )


@pytest.fixture
def sweep() -> Sweep:
    outcomes: Outcomes[Params] = Outcomes(
        results={
            A: result("Retrieval | augmented\ngeneration " + "x" * 100, "palmyra-x5"),
            B: result("", "palmyra-x4", status="failed", tokens=None),
        },
        errors={B: ServerError("Writer had a problem (503): busy", status=503)},
    )
    return Sweep.from_outcomes(outcomes)


def test_a_sweep_is_a_sequence_of_params_and_results(sweep: Sweep) -> None:
    assert len(sweep) == 2
    assert sweep[0][0] == A and sweep[1][1].status == "failed"
    assert sweep.params == [A, B]
    assert [r.model for r in sweep.results] == ["palmyra-x5", "palmyra-x4"]
    assert [p for p, _ in sweep] == [A, B]
    assert sweep.errors == {B: "Writer had a problem (503): busy"}
    tail = sweep[1:]
    assert isinstance(tail, Sweep) and tail.params == [B] and tail.errors == sweep.errors
    assert sweep[:1].errors == {}


def test_records_are_flat_and_complete(sweep: Sweep) -> None:
    first, second = sweep.to_records()
    assert first["model"] == "palmyra-x5" and first["temperature"] == 0.2
    assert first["top_p"] is None and first["system"] is None
    assert first["text"].startswith("Retrieval |")
    assert (first["prompt_tokens"], first["completion_tokens"], first["total_tokens"]) == (3, 9, 12)
    assert (first["first_token_s"], first["total_s"]) == (0.125, 1.5)
    assert first["status"] == "done" and first["error"] is None
    assert first["finish_reason"] == "stop"
    assert second["status"] == "failed" and "503" in second["error"]


def test_text_table(sweep: Sweep) -> None:
    text = repr(sweep)
    lines = text.splitlines()
    assert lines[0] == "<Sweep of 2>"
    assert lines[1].split() == [
        "model",
        "temperature",
        "text",
        "tokens",
        "first",
        "token",
        "total",
        "status",
    ]
    assert "top_p" not in text  # only parameters that were given
    assert "Retrieval | augmented generation" in lines[3]  # one line per row
    assert lines[3].rstrip().endswith("done")
    assert "0.12 s" in lines[3] and "1.50 s" in lines[3] and " 9 " in lines[3]
    assert "failed: Writer had a problem (503): busy" in lines[4]
    assert len(lines) == 5

    class Printer:
        def __init__(self) -> None:
            self.out = ""

        def text(self, value: str) -> None:
            self.out += value

    printer = Printer()
    sweep._repr_pretty_(printer, False)
    assert printer.out == text


def test_markdown_and_html_tables(sweep: Sweep) -> None:
    markdown = sweep._repr_markdown_()
    rows = markdown.splitlines()
    assert rows[0].startswith("| model | temperature | text |")
    assert rows[1].startswith("| --- |")
    assert "Retrieval \\| augmented" in rows[2]
    assert len(rows) == 4
    page = sweep._repr_html_()
    assert page.startswith("<table>") and page.count("<tr>") == 3
    assert "<td>0.2</td>" in page and "Retrieval | augmented" in page


def test_html_escapes_what_the_model_wrote() -> None:
    params = Params("palmyra-x5", system="<b>bold</b>")
    html = Sweep([(params, result("<script>alert(1)</script>", "palmyra-x5"))])._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html


def test_dollar_signs_in_a_sweep_table_are_never_math() -> None:
    """JupyterLab typesets HTML and Markdown outputs alike: each $ stands alone."""
    sweep = Sweep([(Params("palmyra-x5"), result("Prices are $40 and $90", "palmyra-x5"))])
    for shown in (sweep._repr_html_(), sweep._repr_markdown_()):
        assert "$" not in shown and "<span>&#36;</span>40" in shown


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-sweep")
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def slow_server() -> Iterator[ServerHandle]:
    """The bundled server with 0.4 s before every answer, so overlaps are measurable."""
    with start_server(latency=0.4) as handle:
        yield handle


def sweep_requests(prompt: str, fail: Params | None = None) -> dict[Params, Request]:
    """A 2x2 sweep (model x temperature), as the magics would build it."""
    requests = {}
    for model in ("palmyra-x5", "palmyra-x4"):
        for temperature in (0.2, 1.0):
            params = Params(model, temperature=temperature)
            text = f"[[fault:500]] {prompt}" if params == fail else prompt
            body = completion_request(model=model, prompt=text, temperature=temperature)
            requests[params] = Request("completions", body)
    return requests


def run_sweep(
    server: ServerHandle, loop: LoopThread, requests: dict[Params, Request], limit: int
) -> tuple[Outcomes[Params], str]:
    client = WriterClient(ClientSettings(base_url=server.url, api_key="sk-test", max_retries=0))
    out = io.StringIO()
    titles = [f"{p.model} t={p.temperature}" for p in requests]

    def opener(request: Request) -> Callable[[], AsyncIterator[Event]]:
        return lambda: client.events(request.endpoint, request.body)

    openers = {k: opener(r) for k, r in requests.items()}
    try:
        outcomes = execute(
            requests,
            loop=loop,
            client=client,
            view=TextView(panels=titles, stream=out),
            openers=openers,
            limit=limit,
        )
    finally:
        loop.run(client.aclose)
    return outcomes, out.getvalue()


def test_a_2x2_sweep_runs_concurrently_and_fails_one_panel_only(
    slow_server: ServerHandle, loop: LoopThread
) -> None:
    slow_server.clear()
    failing = Params("palmyra-x4", temperature=0.2)
    requests = sweep_requests("Name a colour.", fail=failing)
    outcomes, shown = run_sweep(slow_server, loop, requests, limit=4)

    received = slow_server.wait_for_requests(4)
    assert len(received) == 4
    assert max(r.started for r in received) < min(r.ended or 0 for r in received)  # all overlap

    assert list(outcomes.errors) == [failing]
    assert "500" in str(outcomes.errors[failing])
    for params, res in outcomes.results.items():
        assert res.status == ("failed" if params == failing else "done")
        if params != failing:
            assert res.text and res.text in shown
    for title in ("palmyra-x5 t=0.2", "palmyra-x5 t=1.0", "palmyra-x4 t=1.0"):
        assert title in shown
    # The title names the model: the line does not repeat it; one panel failing keeps its
    # reason in its own line (the cell does not fail).
    assert "palmyra-x4 t=0.2: failed · " in shown and "Simulated 500 error" in shown

    sweep = Sweep.from_outcomes(outcomes)
    assert sweep.params == list(requests)
    assert [r["status"] for r in sweep.to_records()] == ["done", "done", "failed", "done"]
    assert "failed: Writer had a problem (500)" in repr(sweep)


def test_the_bound_holds_on_the_server_side(slow_server: ServerHandle, loop: LoopThread) -> None:
    slow_server.clear()
    outcomes, _ = run_sweep(slow_server, loop, sweep_requests("Say hi."), limit=2)
    assert not outcomes.errors
    received = slow_server.wait_for_requests(4)
    spans = [(r.started, r.ended or 0.0) for r in received]
    for start, _ in spans:
        running = sum(1 for s, e in spans if s <= start < e)
        assert running <= 2
    assert max(s for s, _ in spans) >= min(e for _, e in spans)  # a second wave happened
