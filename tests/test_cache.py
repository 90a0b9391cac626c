"""ResponseCache: keys, event round trips, the JSONL file, export/import, replay, misses."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from writer_magics.display import TextView
from writer_magics.errors import CacheError, ReplayMissError
from writer_magics.request import Request, chat_request, completion_request
from writer_magics.send import execute
from writer_magics.server import ServerHandle
from writer_magics.transport.cache import (
    CachedAnswer,
    ResponseCache,
    event_from_json,
    event_to_json,
    miss_error,
    recording,
    replay_events,
    replay_opener,
    replay_path,
    request_key,
)
from writer_magics.transport.client import ClientSettings, WriterClient
from writer_magics.transport.events import (
    ChoiceFinished,
    DataDelta,
    Event,
    LogprobsDelta,
    StreamEnd,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageReport,
)
from writer_magics.transport.loop import LoopThread

EVENTS: list[Event] = [
    TextDelta("Hello"),
    TextDelta(", wörld", choice=1),
    ToolCallDelta(index=0, id="call_1", type="function", name="f", arguments='{"a":'),
    ToolCallDelta(index=0, arguments="1}"),
    LogprobsDelta(({"token": "Hello", "logprob": -0.1, "top_logprobs": []},)),
    DataDelta("web_search_data", {"sources": [{"url": "https://example.com"}]}),
    ChoiceFinished("stop"),
    ChoiceFinished(None, choice=1),
    UsageReport(Usage(prompt_tokens=3, completion_tokens=5, total_tokens=8, cached_tokens=1)),
    StreamEnd(),
]


def chat_body(text: str = "What is RAG?", **extra: Any) -> dict[str, Any]:
    return chat_request(model="palmyra-x5", messages=[{"role": "user", "content": text}], **extra)


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-cache")
    yield thread
    thread.close()


# --------------------------------------------------------------------------- keys


def test_key_ignores_transport_and_key_order_but_not_content() -> None:
    streamed = chat_body(stream=True)
    whole = chat_body(stream=False)
    assert "stream_options" in streamed and "stream_options" not in whole
    assert request_key("chat", streamed) == request_key("chat", whole)
    reordered = dict(reversed(list(streamed.items())))
    assert request_key("chat", reordered) == request_key("chat", streamed)
    assert request_key("chat", chat_body("What is RAG? ")) != request_key("chat", streamed)
    assert request_key("completions", streamed) != request_key("chat", streamed)
    seeded = completion_request(model="palmyra-x5", prompt="p", random_seed=1)
    other_seed = completion_request(model="palmyra-x5", prompt="p", random_seed=2)
    assert request_key("completions", seeded) != request_key("completions", other_seed)
    assert len(request_key("chat", whole)) == 64


def test_every_event_round_trips_through_json() -> None:
    for event in EVENTS:
        data = json.loads(json.dumps(event_to_json(event)))
        assert event_from_json(data) == event
    assert event_to_json(ToolCallDelta(index=0, arguments="x")) == {
        "event": "tool_call",
        "index": 0,
        "arguments": "x",
        "choice": 0,
    }


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"event": "nope"},
        {"event": "text"},
        {"event": "text", "text": 3},
        {"event": "text", "text": "x", "choice": True},
        {"event": "logprobs", "tokens": [1]},
        {"event": "usage", "usage": {"total_tokens": "8"}},
    ],
)
def test_bad_events_are_value_errors(data: Any) -> None:
    with pytest.raises(ValueError):
        event_from_json(data)


# --------------------------------------------------------------------------- the file


def test_put_then_get_and_a_new_instance_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "cache.jsonl"
    cache = ResponseCache(path)
    assert cache.get("chat", chat_body()) is None
    assert not path.exists()  # nothing is created by reading
    key = cache.put("chat", chat_body(), EVENTS)
    answer = cache.get("chat", chat_body(stream=False))
    assert answer is not None and answer.key == key and answer.events == tuple(EVENTS)
    assert "stream" not in answer.body and answer.model == "palmyra-x5"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {"format": "writer-magics-cache", "version": 1}
    assert len(lines) == 2
    fresh = ResponseCache(path)
    assert fresh.get("chat", chat_body()) == answer
    assert len(fresh) == 1


def test_a_later_put_wins_and_other_writers_are_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    one, two = ResponseCache(path), ResponseCache(path)
    one.put("chat", chat_body(), [TextDelta("first")])
    assert two.get("chat", chat_body()) is not None
    two.put("chat", chat_body(), [TextDelta("second")])
    answer = one.get("chat", chat_body())
    assert answer is not None and answer.events == (TextDelta("second"),)
    assert len(one) == 1


def test_usage_is_added_when_the_events_have_none(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.jsonl")
    usage = Usage(total_tokens=4)
    cache.put(
        "completions", {"model": "m", "prompt": "p"}, [TextDelta("x"), StreamEnd()], usage=usage
    )
    answer = cache.get("completions", {"model": "m", "prompt": "p"})
    assert answer is not None
    assert answer.events == (TextDelta("x"), UsageReport(usage), StreamEnd())
    with pytest.raises(ValueError):
        cache.put("completions", {"model": "m", "prompt": "q"}, [])


def test_a_torn_line_is_skipped_and_the_next_put_still_works(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    cache = ResponseCache(path)
    cache.put("chat", chat_body("a"), [TextDelta("A")])
    with path.open("a", encoding="utf-8") as file:
        file.write('{"endpoint": "chat", "body": {"mod')  # a crash mid-write
    fresh = ResponseCache(path)
    fresh.put("chat", chat_body("b"), [TextDelta("B")])
    again = ResponseCache(path)
    assert len(again) == 2
    assert again.info().skipped == 1
    assert again.get("chat", chat_body("b")) is not None


def test_a_file_that_is_not_a_cache_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text('{"hello": 1}\n', encoding="utf-8")
    with pytest.raises(CacheError, match="not a writer-magics cache file"):
        ResponseCache(path).get("chat", chat_body())
    path.write_text('{"format": "writer-magics-cache", "version": 99}\n', encoding="utf-8")
    with pytest.raises(CacheError, match="version 99"):
        ResponseCache(path).get("chat", chat_body())


def test_export_import_merge_and_validation(tmp_path: Path) -> None:
    teacher = ResponseCache(tmp_path / "teacher.jsonl")
    teacher.put("chat", chat_body("a"), [TextDelta("A")])
    teacher.put("chat", chat_body("a"), [TextDelta("A2")])  # superseded: exported once
    teacher.put("chat", chat_body("b"), [TextDelta("B")])
    shipped = tmp_path / "ship" / "answers.jsonl"
    with pytest.raises(CacheError, match="No such file or directory"):
        teacher.export(shipped)  # a user path: a mistyped folder is not made
    assert not shipped.parent.exists()
    shipped.parent.mkdir()
    mask = os.umask(0o022)
    try:
        assert teacher.export(shipped) == 2
    finally:
        os.umask(mask)
    assert len(shipped.read_text(encoding="utf-8").splitlines()) == 3
    assert shipped.stat().st_mode & 0o777 == 0o644  # readable by the class, as open() makes
    shipped.chmod(0o640)
    teacher.export(shipped)
    assert shipped.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its own

    student = ResponseCache(tmp_path / "student.jsonl")
    student.put("chat", chat_body("c"), [TextDelta("C")])
    assert student.import_(shipped) == 2
    assert student.import_(shipped) == 0  # nothing new the second time
    assert len(student) == 3
    answer = student.get("chat", chat_body("a"))
    assert answer is not None and answer.events == (TextDelta("A2"),)

    before = student.path.read_bytes()
    bad = tmp_path / "bad.jsonl"
    good_lines = shipped.read_text(encoding="utf-8").splitlines()
    bad.write_text("\n".join([*good_lines, '{"endpoint": "chat"}']) + "\n", encoding="utf-8")
    with pytest.raises(CacheError) as info:
        student.import_(bad)
    assert info.value.message == f"{bad}, line 4: an entry needs a 'body' object"
    assert "\n" not in info.value.message
    with pytest.raises(CacheError, match="does not exist"):
        student.import_(tmp_path / "missing.jsonl")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CacheError):
        student.import_(tmp_path / "binary.jsonl")
    assert student.path.read_bytes() == before  # nothing changed


def test_an_edited_body_gets_its_key_recomputed(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    ResponseCache(path).put("chat", chat_body("typo"), [TextDelta("A")])
    path.write_text(path.read_text(encoding="utf-8").replace("typo", "fixed"), encoding="utf-8")
    cache = ResponseCache(path)
    assert cache.get("chat", chat_body("typo")) is None
    assert cache.get("chat", chat_body("fixed")) is not None


def test_clear_and_read_only(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    cache = ResponseCache(path)
    cache.put("chat", chat_body(), [TextDelta("A")])
    shipped = ResponseCache(path, read_only=True)
    shipped.put("chat", chat_body("new"), [TextDelta("B")])  # ignored
    assert len(shipped) == 1
    with pytest.raises(CacheError, match="read-only"):
        shipped.clear()
    with pytest.raises(CacheError, match="read-only"):
        shipped.import_(path)
    assert cache.clear() == 1
    assert not path.exists() and len(cache) == 0
    with pytest.raises(CacheError, match="does not exist"):
        ResponseCache(path, read_only=True).ensure_readable()


def test_replay_path_from_the_environment() -> None:
    assert replay_path({}) is None
    assert replay_path({"WRITER_MAGICS_REPLAY": " "}) is None
    assert replay_path({"WRITER_MAGICS_REPLAY": "answers.jsonl"}) == Path("answers.jsonl")


# --------------------------------------------------------------------------- replay


def test_replay_events_yields_the_recording_with_optional_pace(loop: LoopThread) -> None:
    answer = CachedAnswer("k", "chat", chat_body(), tuple(EVENTS))

    async def collect(pace: float) -> list[Event]:
        return [e async for e in replay_events(answer, pace=pace)]

    assert loop.run(lambda: collect(0.0)) == EVENTS
    started = time.monotonic()
    assert loop.run(lambda: collect(0.02)) == EVENTS
    assert time.monotonic() - started >= 4 * 0.02  # four text/tool-call pieces
    assert [i.value for i in loop.merge({"x": replay_opener(answer)}) if not i.done] == EVENTS


def test_miss_error_names_the_request_in_one_line_a_student_can_act_on() -> None:
    body = chat_body("Explain retrieval-augmented generation\nin three short bullets for a class")
    error = miss_error("chat", body)
    assert isinstance(error, ReplayMissError)
    key = request_key("chat", body)
    assert error.message == (
        "Replay mode has no recorded answer for chat palmyra-x5 "
        "'Explain retrieval-augmented generation in three short bullet...' "
        f"(key {key[:12]}): it answers only the exact prompts and settings it was recorded "
        "with; undo the change, or ask for a new recording."
    )
    assert error.hint is None and len(error.lines()) == 1  # no key to record with
    completion = miss_error("completions", {"model": "palmyra-x4", "prompt": "Once upon"})
    assert "completions palmyra-x4 'Once upon'" in completion.message
    parts = {"model": "m", "messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    assert "'hi'" in miss_error("chat", parts).message


# --------------------------------------------------------------------------- with execute()


def test_record_then_hit_sends_no_request(
    server: ServerHandle, loop: LoopThread, tmp_path: Path
) -> None:
    """A recording wrapped around the HTTP stream, then the same request from the cache."""
    client = WriterClient(ClientSettings(base_url=server.url, api_key="sk-test-cache-0000"))
    cache = ResponseCache(tmp_path / "cache.jsonl")
    request = Request("chat", chat_body("Tell me about caching"))
    try:
        sink: list[Event] = []
        opener = recording(lambda: client.events(request.endpoint, request.body), sink)
        first = execute(
            {"k": request},
            loop=loop,
            client=client,
            view=TextView(stream=io.StringIO()),
            openers={"k": opener},
        )
        assert not first.errors and len(server.requests) == 1
        cache.put(request.endpoint, request.body, sink)

        server.clear()
        answer = cache.get(request.endpoint, request.body)
        assert answer is not None
        out = io.StringIO()
        second = execute(
            {"k": request},
            loop=loop,
            client=client,
            view=TextView(stream=out),
            openers={"k": replay_opener(answer)},
        )
        assert server.requests == []
        assert second.results["k"].text == first.results["k"].text != ""
        assert second.results["k"].usage == first.results["k"].usage
        assert first.results["k"].text in out.getvalue()
        assert "sk-test-cache-0000" not in cache.path.read_text(encoding="utf-8")
    finally:
        loop.run(client.aclose)


def test_replay_needs_no_key_and_no_server_and_a_miss_is_clear(
    loop: LoopThread, tmp_path: Path
) -> None:
    recorded = ResponseCache(tmp_path / "teacher.jsonl")
    hit = Request("completions", completion_request(model="palmyra-x5", prompt="Once"))
    recorded.put(hit.endpoint, hit.body, [TextDelta("upon"), TextDelta(" a time"), StreamEnd()])
    shipped = tmp_path / "answers.jsonl"
    recorded.export(shipped)

    replay = ResponseCache(shipped, read_only=True)
    replay.ensure_readable()
    # Nothing listens on port 9 and there is no key: any HTTP attempt would fail.
    client = WriterClient(ClientSettings(base_url="http://127.0.0.1:9", api_key=None))
    miss = Request("completions", completion_request(model="palmyra-x5", prompt="Twice"))
    try:
        answer = replay.get(hit.endpoint, hit.body)
        assert answer is not None
        outcome = execute(
            {"hit": hit},
            loop=loop,
            client=client,
            view=TextView(stream=io.StringIO()),
            openers={"hit": replay_opener(answer, pace=0.001)},
        )
        assert outcome.results["hit"].text == "upon a time"
        assert not outcome.errors
        assert replay.get(miss.endpoint, miss.body) is None
        error = miss_error(miss.endpoint, miss.body)
        assert "'Twice'" in error.message
    finally:
        loop.run(client.aclose)
