"""One fold of events: execute folds each event once and the live view reads that state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from writer_magics.answer.result import Accumulator
from writer_magics.display.grid import GridView
from writer_magics.request import Request, chat_request
from writer_magics.send import execute
from writer_magics.server import ServerHandle
from writer_magics.transport.client import ClientSettings, WriterClient
from writer_magics.transport.events import Event
from writer_magics.transport.loop import LoopThread


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-fold")
    yield thread
    thread.close()


def test_each_event_is_folded_once_and_every_panel_reads_the_requests_fold(
    server: ServerHandle,
    shell: InteractiveShell,
    loop: LoopThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folded: list[Event] = []
    add = Accumulator.add

    def counting(self: Accumulator, event: Event) -> None:
        folded.append(event)
        add(self, event)

    monkeypatch.setattr(Accumulator, "add", counting)
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
