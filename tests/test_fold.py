"""One fold of events: execute folds each event once and the live view reads that state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from tests.standin import stand_in, text_reply
from writer_magics.answer.result import Accumulator
from writer_magics.display.grid import GridView
from writer_magics.display.live import AnswerView
from writer_magics.request import Request, chat_request
from writer_magics.send import execute, joined
from writer_magics.server import ServerHandle
from writer_magics.transport.client import ClientSettings, WriterClient
from writer_magics.transport.events import Event, TextDelta, ToolCallDelta
from writer_magics.transport.loop import Item, LoopThread


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-fold")
    yield thread
    thread.close()


@pytest.fixture
def folded(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    """Every event ``Accumulator.add`` folds during the test, in order."""
    seen: list[Event] = []
    add = Accumulator.add

    def counting(self: Accumulator, event: Event) -> None:
        seen.append(event)
        add(self, event)

    monkeypatch.setattr(Accumulator, "add", counting)
    return seen


def test_each_event_is_folded_once_and_every_panel_reads_the_requests_fold(
    server: ServerHandle, shell: InteractiveShell, loop: LoopThread, folded: list[Event]
) -> None:
    client = WriterClient(ClientSettings(base_url=server.url, api_key="sk-fold", max_retries=0))
    body = chat_request(
        model="palmyra-x5", messages=[{"role": "user", "content": "Two short answers"}], n=2
    )
    view = GridView("fold", panels=2)
    try:
        with capture_output() as cap:
            outcomes = execute({0: Request("chat", body)}, loop=loop, client=client, view=view)
    finally:
        loop.run(client.aclose)
    assert len(server.requests) == 1
    assert folded and len({id(e) for e in folded}) == len(folded)  # never folded twice
    first, second = view.panels.states
    assert first.acc is second.acc  # both panels read the request's one Accumulator
    choices = outcomes.results[0].choices
    assert [first.text, second.text] == [choices[0].text, choices[1].text]
    assert choices[0].text and choices[0].text != choices[1].text
    final = cap.outputs[-1].data["text/markdown"]  # the grid's stacked Markdown fallback
    assert "**Choice 1**" in final and "**Choice 2**" in final


def test_joined_folds_each_run_of_text_once_and_keeps_order_and_counts() -> None:
    One = Item[str, Event]
    text = [One("a", TextDelta(t)) for t in ("He", "llo", " wor", "ld")]
    call = One("a", ToolCallDelta(0, name="f"))
    other = [One("a", TextDelta(t, 1)) for t in ("x", "y")]
    done = One("a", done=True)
    out = joined([*text, call, *other, text[0], done])
    assert [i.value for i in out] == [
        TextDelta("Hello world", 0, 4),
        ToolCallDelta(0, name="f"),
        TextDelta("xy", 1, 2),
        TextDelta("He"),  # a run of one stays the item it was
        None,
    ]
    assert out[3] is text[0] and out[4] is done
    assert joined([text[1]]) == [text[1]]
    switching = joined([One("a", TextDelta("a", 0)), One("a", TextDelta("b", 1))])
    assert [i.value for i in switching] == [TextDelta("a", 0), TextDelta("b", 1)]


def test_a_burst_of_chunks_is_folded_in_runs_with_the_same_text_and_counts(
    shell: InteractiveShell, loop: LoopThread, folded: list[Event]
) -> None:
    pieces = [f"w{i} " for i in range(3000)]
    with stand_in(text_reply(*pieces)) as handle:
        client = WriterClient(ClientSettings(base_url=handle.url, api_key="sk-run", max_retries=0))
        body = chat_request(model="palmyra-x5", messages=[{"role": "user", "content": "Go"}])
        try:
            with capture_output() as cap:
                outcomes = execute(
                    {0: Request("chat", body)}, loop=loop, client=client, view=AnswerView("h")
                )
        finally:
            loop.run(client.aclose)
    result = outcomes.results[0]
    assert result.choices[0].text == "".join(pieces)
    assert result.pieces == len(pieces)  # every chunk with text counted, as before
    texts = [e for e in folded if isinstance(e, TextDelta)]
    assert sum(e.pieces for e in texts) == len(pieces)
    assert len(texts) < len(pieces) // 10  # a burst arrives in runs: folded once a run
    shown = "".join(o.data.get("text/plain", "") for o in cap.outputs if "text/markdown" in o.data)
    assert shown.strip() == "".join(pieces).strip()
