"""What the live status and the footer say (issue 14 §6, §10-§13).

Through a real IPython shell against the bundled server or a hostile stand-in: a retry
that succeeds leaves no line behind but showed in the live status; a final failure
is said once; Ctrl-C reads once; ``--max-tokens`` says where the answer stopped;
``%%complete`` footers count tokens; a tools cell has one view and one usage line with
a ``running`` line per call; a sweep over ``max_concurrency`` says ``queued``.
"""

from __future__ import annotations

import _thread
import io
import os
import threading

import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests import hostile
from tests.conftest import API_KEY, Ran, run
from tests.hostile import Hostile, chunk
from tests.kernel_env import started_kernel
from tests.test_kernel import execute
from tests.test_magics import everything
from writer_magics.answer.result import Accumulator, Result, Timing, build_result
from writer_magics.display import Outcome, PanelState, TextView
from writer_magics.display.panel import status_lines
from writer_magics.server import ServerHandle
from writer_magics.transport.events import (
    Queued,
    Retrying,
    Started,
    TextDelta,
    ToolRunning,
    Usage,
    UsageReport,
)

FINE = hostile.sse([chunk("Fine now.", "stop"), "data: [DONE]\n\n"])


def texts(ran: Ran) -> list[str]:
    """Every display's text, in order (live frames included), plus stdout and stderr."""
    found = [str(v) for o in ran.outputs for v in o.data.values()]
    return [*found, ran.stdout, ran.stderr]


def footer(ran: Ran) -> str:
    return str(ran.outputs[-1].data["text/plain"])


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- §10 retries


def test_a_retry_that_succeeds_shows_in_the_status_and_leaves_nothing(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited = hostile.status(429, {"message": "slow down"}, {"Retry-After": "1"})
    with Hostile(hostile.sequence(limited, FINE)) as server:
        monkeypatch.setenv("WRITER_BASE_URL", server.url)
        shell.run_line_magic("config", "WriterMagics.max_retries = 2")
        ran = run(shell, "%chat Hi", cell_id="retry")
        assert len(server.received) == 2
    assert ran.result.error_in_exec is None
    assert ran.stderr == "" and ran.stdout == ""
    assert not any("Retrying in" in t for t in texts(ran))
    shown = "\n".join(texts(ran))
    assert "retrying in " in shown and "(429 rate limited) · attempt 2 of 3" in shown
    assert "Fine now." in shown
    assert "retrying" not in footer(ran) and "429" not in footer(ran)


def test_a_final_failure_is_said_once(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = hostile.status(500, {"message": "boom"}, {"Retry-After": "0.05"})
    with Hostile(failing) as server:
        monkeypatch.setenv("WRITER_BASE_URL", server.url)
        shell.run_line_magic("config", "WriterMagics.max_retries = 2")
        ran = run(shell, "%chat Hi", cell_id="fail")
        assert len(server.received) == 3
    assert ran.rendered_error() == ["ServerError: Writer had a problem (500): boom"]
    assert everything(ran).count("Writer had a problem (500)") == 1, everything(ran)
    assert " · failed · " in footer(ran) and "boom" not in footer(ran)
    assert ran.stderr == ""


def test_ctrl_c_reads_once(shell: InteractiveShell, server: ServerHandle) -> None:
    timer = threading.Timer(1.0, _thread.interrupt_main)  # the story takes ~15 s
    timer.start()
    try:
        ran = run(shell, "%%chat\nA very long story please [[tps:20]]", cell_id="stop")
    finally:
        timer.cancel()
    assert ran.rendered_error() == ["Interrupted: the answer so far is kept above."]
    shown = everything(ran)
    assert "Interrupted;" not in shown and "Interrupted: Interrupted" not in shown
    assert footer(ran).split(" · ")[1] == "interrupted"


def test_ctrl_c_before_anything_arrived_does_not_claim_an_answer_above(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    try:
        ran = run(shell, "%%chat --no-stream\nHello [[latency:5]]", cell_id="early")
    finally:
        timer.cancel()
    assert ran.rendered_error() == ["Interrupted: nothing had arrived yet."]


# --------------------------------------------------------------------------- §11 truncation


def test_max_tokens_says_where_the_answer_stopped(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    chat = footer(run(shell, "%chat --max-tokens 5 Tell me a long story", cell_id="c"))
    assert "stopped at the token limit (5)" in chat and "5 completion" in chat
    done = footer(run(shell, "%chat Hi", cell_id="d"))
    assert "stopped" not in done


def test_complete_footers_count_tokens(shell: InteractiveShell, server: ServerHandle) -> None:
    cut = footer(run(shell, "%complete --max-tokens 5 Once upon a time", cell_id="a"))
    assert "~5 tokens" in cut and "stopped at the token limit (5)" in cut
    whole = footer(run(shell, "%complete Once upon a time", cell_id="b"))
    assert " tokens · " in whole and "stopped" not in whole and " s total" in whole


def test_a_length_finish_without_max_tokens_names_the_models_limit(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    cut = hostile.sse([chunk("It was the best of", "length"), "data: [DONE]\n\n"])
    with Hostile(cut) as server:
        monkeypatch.setenv("WRITER_BASE_URL", server.url)
        ran = run(shell, "%chat Tell me everything", cell_id="len")
    assert "stopped at the model's token limit" in footer(ran)


# --------------------------------------------------------------------------- §12 tools

SLOW_WEATHER = '''
import time
def get_weather(city: str) -> str:
    """Current weather for a city."""
    time.sleep(0.05)
    return f"18C and cloudy in {city}"
'''


def test_a_tools_cell_has_one_view_one_usage_line_and_a_running_line(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, SLOW_WEATHER)
    ran = run(shell, "%%chat --tools get_weather\nUse get_weather for Paris please", cell_id="t")
    assert ran.result.error_in_exec is None, everything(ran)
    assert len(server.requests) == 2
    plain = [str(o.data.get("text/plain", "")) for o in ran.outputs]
    running = plain.index('running get_weather({"city": "Paris"})…')
    result = plain.index('get_weather({"city": "Paris"}) → 18C and cloudy in Paris')
    assert running < result
    assert ran.stdout == "" and ran.stderr == ""
    # One live view for both rounds: one header display, one usage line (both rounds' tokens).
    heads = [p for o, p in zip(ran.outputs, plain, strict=True) if not o.update and "session" in p]
    assert len(heads) == 1, plain
    (usage,) = [line for line in plain if " prompt + " in line]
    assert usage == footer(ran) and " s total" in usage
    assert "calling" not in everything(ran)  # the call has its own line instead


def test_the_round_limit_shows_the_calls_not_run(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, SLOW_WEATHER)
    shell.run_line_magic("config", "WriterMagics.max_tool_rounds = 1")
    ran = run(shell, "%%chat --tools get_weather\nUse get_weather for Rome", cell_id="r")
    shown = everything(ran)
    assert "ToolRoundsExceeded" in shown and "calling `get_weather" in shown
    assert "running get_weather" not in shown


def test_panel_status_says_running_until_the_next_event() -> None:
    clock = Clock()
    state = PanelState("", clock)
    state.add(ToolRunning("get_weather", '{"city": "Paris"}'))
    assert state.status() == 'running get_weather({"city": "Paris"})…'
    state.add(TextDelta("It is"))
    assert state.status().startswith("streaming · ~1 token · ")


# --------------------------------------------------------------------------- §6 queued


def test_a_sweep_over_max_concurrency_says_queued(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.run_line_magic("config", "WriterMagics.max_concurrency = 1")
    ran = run(shell, "%chat -m palmyra-x5,palmyra-x4 Hi [[latency:0.6]]", cell_id="q")
    assert ran.result.error_in_exec is None
    frames = texts(ran)  # every frame's every format (Markdown, HTML, plain)
    assert any("queued" in f for f in frames), frames
    assert "queued" not in footer(ran)


def test_waiting_counts_from_the_panels_own_start() -> None:
    clock = Clock()
    state = PanelState("palmyra-x4", clock)
    clock.now += 0.5
    assert state.status() == "waiting… 0.5 s"
    state.add(Queued())
    assert state.started is None and state.status() == "queued"
    clock.now += 3.0
    assert state.status() == "queued"
    state.add(Started(clock.now))
    clock.now += 1.2
    assert state.status() == "waiting… 1.2 s"


def test_a_retry_counts_down_then_waits_for_its_attempt() -> None:
    clock = Clock()
    state = PanelState("", clock)
    state.add(Retrying(2.0, 2, 3, "429 rate limited"))
    assert state.status() == "retrying in 2.0 s (429 rate limited) · attempt 2 of 3"
    clock.now += 1.5
    assert state.status() == "retrying in 0.5 s (429 rate limited) · attempt 2 of 3"
    clock.now += 1.0
    assert state.status() == "waiting… 2.5 s · attempt 2 of 3"
    state.add(TextDelta("Hi"))
    assert state.status() == "streaming · ~1 token · 2.5 s"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_terminal_shows_a_retry_on_its_waiting_line() -> None:
    out = Terminal()
    view = TextView("palmyra-x5", stream=out)
    view.start()
    view.add(Retrying(1.0, 2, 3, "503 server error"))
    assert out.getvalue().endswith("\r\x1b[2Kretrying in 1.0 s (503 server error) · attempt 2 of 3")
    view.add(TextDelta("Hello"))
    assert out.getvalue().endswith("\r\x1b[2KHello")


# --------------------------------------------------------------------------- §13 footer


def _result(model: str, status: str = "done") -> Result:
    acc = Accumulator()
    acc.add(TextDelta("text"))
    acc.add(UsageReport(Usage(3, 4, 7)))
    return build_result(
        acc,
        endpoint="chat",
        model=model,
        request={"model": model},
        timing=Timing(0.2, 3.1),
        status=status,  # type: ignore[arg-type]
    )


def test_footer_labels_the_total_and_does_not_repeat_the_model() -> None:
    outcome = Outcome([_result("palmyra-x5"), _result("palmyra-x4")])
    lines = status_lines(outcome, ["palmyra-x5", "palmyra-x4 · t=0.2"])
    assert lines == [
        "palmyra-x5: 3 prompt + 4 completion = 7 tokens · first token 0.20 s, "
        "3.10 s total, 1 tokens/s",
        "palmyra-x4 · t=0.2: 3 prompt + 4 completion = 7 tokens · first token 0.20 s, "
        "3.10 s total, 1 tokens/s",
    ]
    (single,) = status_lines(Outcome([_result("palmyra-x5")]), [""])
    assert single.startswith("palmyra-x5 · 3 prompt") and "3.10 s total" in single
    swept = status_lines(Outcome([_result("palmyra-x5"), _result("palmyra-x5")]), ["t=0.2", "t=1"])
    assert swept[0].startswith("t=0.2: palmyra-x5 · ")  # a title without the model keeps it


# --------------------------------------------------------------------------- a real kernel


@pytest.mark.timeout(120)
def test_in_a_kernel_a_tools_cell_and_a_retry_say_what_they_do(server: ServerHandle) -> None:
    """The kernel's own view: the running line comes before its result, one usage line
    for both rounds, and a retried request leaves nothing on stderr."""
    env = dict(os.environ, WRITER_BASE_URL=server.url, WRITER_API_KEY=API_KEY)
    with started_kernel(env) as (_, client):
        execute(client, "%load_ext writer_magics")
        execute(client, SLOW_WEATHER)
        run_ = execute(client, "%%chat --tools get_weather\nUse get_weather for Oslo please")
        assert run_.reply is not None and run_.reply["status"] == "ok", run_.messages
        shown = [
            (m["header"]["msg_type"], str(m["content"].get("data", {}).get("text/plain", "")))
            for _, m in run_.messages
            if m["header"]["msg_type"] in ("display_data", "update_display_data")
        ]
        running = shown.index(("display_data", 'running get_weather({"city": "Oslo"})…'))
        result = shown.index(
            ("update_display_data", 'get_weather({"city": "Oslo"}) → 18C and cloudy in Oslo')
        )
        assert running < result
        assert len([text for _, text in shown if " prompt + " in text]) == 1
        retried = execute(client, "%%chat\nHello [[fault:503:retry-after=0.2x1]]")
        assert retried.reply is not None and retried.reply["status"] == "ok"
        streams = [m["content"]["text"] for m in retried.of_type("stream")]
        assert not any("Retrying" in text or "503" in text for text in streams), streams


def test_text_after_a_tool_call_opens_below_the_calls_line(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round 1 says something, then calls a tool; round 2's answer comes after the call's
    line, not up in round 1's piece above it (the cell reads in the order things happened)."""
    first = hostile.sse(
        [
            chunk("Let me check the weather."),
            hostile.tool_call_chunk("get_weather", '{"city": "Paris"}'),
        ]
    )
    second = hostile.sse([chunk("It is 18C and cloudy in Paris.", "stop"), "data: [DONE]\n\n"])
    run(shell, SLOW_WEATHER)
    with Hostile(hostile.sequence(first, second)) as server:
        monkeypatch.setenv("WRITER_BASE_URL", server.url)
        ran = run(shell, "%%chat --tools get_weather\nWeather in Paris?", cell_id="order")
    assert ran.result.error_in_exec is None, everything(ran)
    final: dict[str, str] = {}  # display_id -> what it shows at the end
    order: list[str] = []  # display_ids in the order they appeared
    for output in ran.outputs:
        key = str(output.transient.get("display_id", id(output)))
        if key not in final:
            order.append(key)
        final[key] = str(output.data.get("text/plain", ""))
    shown = [final[key] for key in order if final[key]]
    call = shown.index('get_weather({"city": "Paris"}) → 18C and cloudy in Paris')
    before = next(i for i, text in enumerate(shown) if "Let me check" in text)
    after = next(i for i, text in enumerate(shown) if "It is 18C" in text)
    assert before < call < after, shown
