"""Unit tests for writer_magics.history: which messages a cell sends, and history files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

from writer_magics.history import (
    FORMAT_VERSION,
    Conversation,
    HistoryFileError,
    Sessions,
    Turn,
    load,
    save,
)


def turn(user: str, assistant: str, **kw: Any) -> Turn:
    return Turn(key="", user=user, assistant=assistant, **kw)


def contents(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in messages]


def test_first_cell_sends_system_and_user() -> None:
    conv = Conversation(system="Be terse.")
    assert conv.messages_for("c1", "Hi") == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
    ]


def test_later_cells_carry_earlier_turns() -> None:
    conv = Conversation()
    conv.record("c1", turn("Q1", "A1"))
    conv.record("c2", turn("Q2", "A2"))
    assert contents(conv.messages_for("c3", "Q3")) == [
        ("user", "Q1"),
        ("assistant", "A1"),
        ("user", "Q2"),
        ("assistant", "A2"),
        ("user", "Q3"),
    ]


def test_rerun_carries_only_turns_before_its_own_and_replaces_in_place() -> None:
    conv = Conversation()
    conv.record("c1", turn("Q1", "A1"))
    conv.record("c2", turn("Q2", "A2"))
    conv.record("c3", turn("Q3", "A3"))
    assert contents(conv.messages_for("c2", "Q2 edited")) == [
        ("user", "Q1"),
        ("assistant", "A1"),
        ("user", "Q2 edited"),
    ]
    stored = conv.record("c2", turn("Q2 edited", "A2 new"))
    assert stored.key == "c2"
    assert [(t.key, t.user, t.assistant) for t in conv.turns] == [
        ("c1", "Q1", "A1"),
        ("c2", "Q2 edited", "A2 new"),
        ("c3", "Q3", "A3"),
    ]


def test_cells_without_id_always_append_with_unique_keys() -> None:
    conv = Conversation()
    a = conv.record(None, turn("Q1", "A1"))
    b = conv.record(None, turn("Q2", "A2"))
    assert (a.key, b.key) == ("auto-1", "auto-2")
    assert len(conv) == 2
    assert contents(conv.messages_for(None, "Q3"))[-3:] == [
        ("user", "Q2"),
        ("assistant", "A2"),
        ("user", "Q3"),
    ]


def test_system_override_and_record_replaces_stored_system() -> None:
    conv = Conversation(system="Old")
    assert conv.messages_for("c1", "Hi", "New")[0] == {"role": "system", "content": "New"}
    assert conv.system == "Old"  # messages_for does not change state
    conv.record("c1", turn("Hi", "Hello"), system="New")
    assert conv.system == "New"
    conv.record("c2", turn("Hi", "Hello"), system="")
    assert conv.system is None
    assert conv.messages_for("c3", "x")[0]["role"] == "user"


def test_tool_turn_messages_are_sent_whole_and_copied() -> None:
    tool_messages = (
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call-1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call-1", "content": "18C"},
        {"role": "assistant", "content": "18C in Paris."},
    )
    conv = Conversation()
    conv.record("c1", turn("Weather?", "18C in Paris.", messages=tool_messages))
    sent = conv.messages_for("c2", "Thanks")
    assert sent[:4] == list(tool_messages)
    sent[1]["tool_calls"].clear()  # callers cannot edit history through what they got
    assert conv.messages_for("c2", "Thanks")[1]["tool_calls"][0]["id"] == "call-1"
    assert "*Tools called: get_weather*" in conv.to_markdown()


def test_undo_and_reset() -> None:
    conv = Conversation(system="S")
    assert conv.undo() is None
    conv.record("c1", turn("Q1", "A1"))
    conv.record("c2", turn("Q2", "A2"))
    undone = conv.undo()
    assert undone is not None and undone.user == "Q2"
    assert [t.key for t in conv.turns] == ["c1"]
    conv.reset()
    assert conv.turns == () and conv.system is None


def test_markdown_marks_interrupted_answers() -> None:
    conv = Conversation(system="Be terse.")
    conv.record("c1", turn("Tell a story", "Once upon", partial=True))
    assert conv.to_markdown("ideas") == (
        "### Chat session `ideas` (1 turn)\n\n"
        "**System:**\n\nBe terse.\n\n"
        "**You:**\n\nTell a story\n\n"
        "**Palmyra:** *(interrupted)*\n\nOnce upon\n"
    )
    # a partial answer is sent on later turns as it is
    assert conv.messages_for("c2", "Go on")[2] == {"role": "assistant", "content": "Once upon"}
    assert "*No turns yet.*" in Conversation().to_markdown()


def test_sessions_exist_only_once_something_is_stored() -> None:
    sessions = Sessions()
    assert "ideas" not in sessions
    with pytest.raises(KeyError):
        sessions["ideas"]
    detached = sessions.conversation("ideas")  # looking does not create it
    assert len(detached) == 0 and "ideas" not in sessions and len(sessions) == 0
    detached.record("c1", turn("Q", "A"))
    sessions.replace("ideas", detached)
    sessions.new("default")
    assert sessions.names() == ["ideas", "default"]
    assert sessions.counts() == {"ideas": 1, "default": 0}
    assert sessions.conversation("default") is sessions["default"]  # empty but stored
    fresh = sessions.new("ideas")
    assert len(fresh) == 0 and sessions["ideas"] is fresh
    assert "| `ideas` | 0 |" in sessions.to_markdown()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    sessions = Sessions()
    sessions.new("default").record("c1", turn("Q1", "A1 ü", partial=True), system="S")
    sessions.replace("other", Conversation())
    sessions["other"].record(None, turn("Q2", "A2"))
    path = sessions.save(tmp_path / "all.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["format"] == "writer-magics-history"
    assert document["version"] == FORMAT_VERSION
    loaded = load(path)
    assert list(loaded) == ["default", "other"]
    assert loaded["default"] == sessions["default"]
    assert loaded["default"].turns[0].partial is True
    assert loaded["other"].turns[0].key == "auto-1"
    # auto keys after a load do not collide with loaded ones
    assert loaded["other"].record(None, turn("Q3", "A3")).key == "auto-2"
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_load_replaces_target_session(tmp_path: Path) -> None:
    conv = Conversation()
    conv.record("c1", turn("Saved", "Yes"))
    path = save(tmp_path / "one.json", conv, name="work")
    sessions = Sessions()
    sessions.new("mine").record("x", turn("Old", "Old"))
    sessions.load(path, "mine")  # the only session in the file goes to the target name
    assert [t.user for t in sessions["mine"].turns] == ["Saved"]


def test_load_needs_a_choice_between_several_sessions(tmp_path: Path) -> None:
    path = save(tmp_path / "two.json", {"a": Conversation(), "b": Conversation()})
    sessions = Sessions()
    with pytest.raises(HistoryFileError, match="holds sessions 'a', 'b'; choose one with --session"):
        sessions.load(path, "default")
    assert "default" not in sessions
    sessions.load(path, "b")
    assert "b" in sessions


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "is not valid JSON (line 1, column 2)"),
        ('{"format": "other"}', "is not a writer-magics history file"),
        (
            '{"format": "writer-magics-history", "version": 99, "sessions": {}}',
            "has format version 99; this writer-magics reads versions 1, 2",
        ),
        ('{"format": "writer-magics-history", "version": 1, "sessions": {}}', "holds no sessions"),
        (
            '{"format": "writer-magics-history", "version": 1, "sessions": {"default": '
            '{"system": null, "turns": [{"key": "c1", "user": "q", "assistant": "a", '
            '"messages": [{"role": "bot", "content": "x"}]}]}}}',
            "sessions['default'].turns[0].messages[0].role must be one of "
            "assistant, system, tool, user, got 'bot'",
        ),
        (
            '{"format": "writer-magics-history", "version": 1, "sessions": {"default": '
            '{"system": null, "turns": [{"key": "c1", "user": 5, "assistant": "a"}]}}}',
            "sessions['default'].turns[0].user must be a string",
        ),
        (
            '{"format": "writer-magics-history", "version": 1, "sessions": {"default": '
            '{"system": null, "turns": [{"key": "c1", "user": "q", "assistant": "a"}, '
            '{"key": "c2", "user": "q", "assistant": "a"}, '
            '{"key": "c1", "user": "q", "assistant": "a"}]}}}',
            "sessions['default'].turns[2].key 'c1' is used twice, apart",
        ),
        (
            '{"format": "writer-magics-history", "version": 1, "sessions": {"default": '
            '{"system": null, "turns": [{"key": "c1", "user": "q", "assistant": "a", '
            '"messages": [{"role": "tool", "content": "x"}]}]}}}',
            "tool_call_id must be a string on a tool message",
        ),
    ],
)
def test_bad_files_leave_state_untouched(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    sessions = Sessions()
    sessions.new("default").record("c1", turn("keep", "me"))
    with pytest.raises(HistoryFileError) as info:
        sessions.load(path, "default")
    assert reason in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, UsageError)
    assert [t.user for t in sessions["default"].turns] == ["keep"]


def test_missing_file_and_unwritable_directory(tmp_path: Path) -> None:
    with pytest.raises(HistoryFileError, match=r"cannot read .*nope\.json: No such file"):
        load(tmp_path / "nope.json")
    with pytest.raises(HistoryFileError, match="cannot write"):
        save(tmp_path / "missing-dir" / "x.json", Conversation())


def test_failed_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(tmp_path / "h.json", Conversation(system="old"))
    before = path.read_text(encoding="utf-8")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("writer_magics.history.os.replace", broken_replace)
    with pytest.raises(HistoryFileError, match="No space left on device"):
        save(path, Conversation(system="new"))
    assert path.read_text(encoding="utf-8") == before
    assert list(tmp_path.iterdir()) == [path]


def test_history_file_error_renders_one_line() -> None:
    assert HistoryFileError("x.json is not valid JSON")._render_traceback_() == [
        "UsageError: x.json is not valid JSON"
    ]
