"""Tools, built-in tools, structured output and the logprobs view through a real
shell and the bundled server (issue 7)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from IPython.core.interactiveshell import InteractiveShell

from tests.conftest import API_KEY, run
from tests.test_magics import everything, last_body
from writer_magics.server import ServerHandle

WEATHER = '''
def get_weather(city: str, unit: str = "C") -> str:
    """Current weather for a city.

    Args:
        city: The city name.
        unit: C or F.
    """
    calls.append(city)
    return f"18{unit} and cloudy in {city}"

calls = []
'''


def test_two_round_function_call_loop(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, WEATHER)
    captured = run(
        shell, "%%chat --tools get_weather -o r\nUse get_weather for Paris please", cell_id="w"
    )
    assert captured.result.error_in_exec is None, everything(captured)
    first, second = (r.body for r in server.requests)
    tool = first["tools"][0]["function"]
    assert tool["name"] == "get_weather" and tool["description"].startswith("Current weather")
    assert tool["parameters"]["properties"]["city"]["description"] == "The city name."
    assert tool["parameters"]["required"] == ["city"]
    assistant, tool_message = second["messages"][-2:]
    call = assistant["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == call["id"]
    assert tool_message["content"] == "18C and cloudy in Paris"
    assert shell.user_ns["calls"] == ["Paris"]
    assert "18C and cloudy in Paris" in shell.user_ns["r"].text
    assert "get_weather" in everything(captured)
    run(shell, "%%chat\nThanks, and tomorrow?", cell_id="next")
    later = last_body(server)["messages"]
    assert [m["role"] for m in later] == ["user", "assistant", "tool", "assistant", "user"]


def test_a_tool_result_holding_the_key_is_shown_redacted(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(
        shell,
        "def lookup(name: str) -> str:\n"
        "    'Look a name up.'\n"
        "    import os\n"
        "    return 'found ' + os.environ['WRITER_API_KEY']",
    )
    captured = run(shell, "%%chat --tools lookup\nUse lookup for Ada please", cell_id="k")
    assert captured.result.error_in_exec is None, everything(captured)
    (report,) = [line for line in captured.stdout.splitlines() if line.startswith("ran lookup(")]
    assert report.endswith("-> found [REDACTED]") and API_KEY not in report


def test_a_function_that_raises_is_reported_to_model_and_user(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, 'def explode(count: int) -> int:\n    """Explodes."""\n    raise ValueError("nope")')
    captured = run(shell, "%%chat --tools explode\nPlease call explode with 3")
    tool_message = server.requests[-1].body["messages"][-1]
    assert tool_message["role"] == "tool"
    assert "ValueError" in tool_message["content"] and "nope" in tool_message["content"]
    assert "nope" in everything(captured)


def test_confirm_asks_before_each_call(
    shell: InteractiveShell, server: ServerHandle, monkeypatch: Any
) -> None:
    run(shell, WEATHER)
    asked: list[str] = []

    def answer(question: str) -> str:
        asked.append(question)
        return "n"

    monkeypatch.setattr("builtins.input", answer)
    run(shell, "%%chat --tools get_weather --confirm\nUse get_weather for Oslo")
    assert asked and "get_weather" in asked[0] and "Oslo" in asked[0]
    assert shell.user_ns["calls"] == [], "a declined call is not run"
    tool_message = server.requests[-1].body["messages"][-1]
    assert tool_message["role"] == "tool" and "declined" in tool_message["content"]


def test_round_limit(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, WEATHER)
    shell.run_line_magic("config", "WriterMagics.max_tool_rounds = 1")
    captured = run(shell, "%%chat --tools get_weather\nUse get_weather for Rome")
    text = everything(captured)
    assert "ToolRoundsExceeded" in text and "Traceback" not in text
    assert len(server.requests) == 1 and shell.user_ns["calls"] == []


def test_undescribable_function_sends_nothing(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "def vague(*args):\n    return 1")
    text = everything(run(shell, "%%chat --tools vague\nCall vague"))
    assert "vague" in text and "Traceback" not in text
    assert server.requests == []


def test_schema_types_are_derived(shell: InteractiveShell, server: ServerHandle) -> None:
    run(
        shell,
        "from typing import Literal, Optional\n"
        "def plan(mode: Literal['fast', 'slow'], days: Optional[int] = None,\n"
        "         tags: list[str] | None = None, ratio: float = 1.0, on: bool = True,\n"
        "         meta: dict | None = None) -> str:\n"
        '    """Plan something."""\n    return mode',
    )
    run(shell, "%%chat --tools plan --dry-run\nPlan it")
    assert server.requests == []
    run(shell, "%%chat --tools plan\nplan it")
    props = server.requests[0].body["tools"][0]["function"]["parameters"]["properties"]
    assert props["mode"]["enum"] == ["fast", "slow"]
    assert "integer" in json.dumps(props["days"]) and "array" in json.dumps(props["tags"])
    assert props["ratio"]["type"] == "number" and props["on"]["type"] == "boolean"
    assert "object" in json.dumps(props["meta"])


def test_one_builtin_tool_type_per_request(shell: InteractiveShell, server: ServerHandle) -> None:
    text = everything(
        run(shell, "%%chat --web-search --graph 6e2a7f0c-1d5b-4e0a-9c3f-2b8d1a4e5f60\nHi")
    )
    assert "UsageError" in text and "Traceback" not in text
    assert server.requests == []


def test_web_search_sources_are_rendered_and_kept(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    captured = run(shell, "%%chat --web-search --exclude-domain example.com -o r\nLatest news")
    tool = last_body(server)["tools"][0]
    assert tool == {
        "type": "web_search",
        "function": {"include_domains": [], "exclude_domains": ["example.com"]},
    }
    sources = shell.user_ns["r"].choices[0].data["web_search_data"]["sources"]
    assert sources
    final = [o.data["text/markdown"] for o in captured.outputs if "text/markdown" in o.data][-1]
    assert "Sources" in final and sources[0]["url"] in final


def test_web_search_lists_each_source_once_with_whole_links(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    """Issue 14 §17: the answer listed its sources twice (the server's "Sources:" list
    in the text, then the view's list) and a sampled link came out as
    ``[2](https:./python.org/latest/2)``."""
    captured = run(
        shell,
        "%%chat --web-search --include-domain python.org -t 2 -o r\nWhat is latest in Python?",
    )
    assert captured.result.error_in_exec is None, everything(captured)
    result = shell.user_ns["r"]
    urls = [s["url"] for s in result.choices[0].data["web_search_data"]["sources"]]
    assert urls == [f"https://python.org/latest/{i}" for i in (1, 2, 3)]
    assert "http" not in result.text and "Sources" not in result.text
    final = [o.data for o in captured.outputs if "text/markdown" in o.data][-1]
    for shown in (final["text/markdown"], final["text/plain"]):
        assert shown.count("Sources") == 1
        for url in urls:
            assert shown.count(f"({url})") == 1
        links = re.findall(r"\]\(([^)]*)\)", shown)
        assert links == urls


def test_pydantic_schema_round_trip(shell: InteractiveShell, server: ServerHandle) -> None:
    run(
        shell,
        "from pydantic import BaseModel\n"
        "class Review(BaseModel):\n    title: str\n    stars: int\n    tags: list[str]",
    )
    captured = run(shell, "%%chat --schema Review -o r\nReview the film Alien")
    assert captured.result.error_in_exec is None, everything(captured)
    response_format = last_body(server)["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Review"
    assert set(response_format["json_schema"]["schema"]["properties"]) == {"title", "stars", "tags"}
    parsed = shell.user_ns["r"].parsed
    assert type(parsed).__name__ == "Review" and isinstance(parsed.stars, int)
    final = [o.data["text/markdown"] for o in captured.outputs if "text/markdown" in o.data][-1]
    assert final.startswith("```json\n{\n")


def test_schema_mismatch_is_a_clear_error_keeping_the_raw_text(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(
        shell,
        "from pydantic import BaseModel, field_validator\n"
        "class Picky(BaseModel):\n    word: str\n"
        "    @field_validator('word')\n    @classmethod\n"
        "    def never(cls, value: str) -> str:\n        raise ValueError('never good enough')",
    )
    captured = run(shell, "%%chat --schema Picky -o bad\nGive a word")
    text = everything(captured)
    assert captured.result.error_in_exec is not None
    assert "never good enough" in text and "Traceback" not in text
    raw = shell.user_ns["bad"].text
    assert json.loads(raw)["word"], "the raw answer is kept on -o"
    assert shell.user_ns["bad"].parsed is None


def test_logprobs_view_shows_every_token_with_a_probability(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    captured = run(shell, "%%chat --logprobs -o r\nSay hello")
    records: list[dict[str, Any]] = shell.user_ns["r"].logprobs
    assert records and all(0 < r["probability"] <= 1 for r in records)
    pictures = [
        o.data["text/html"]
        for o in captured.outputs
        if "text/html" in o.data and "writer-magics-" not in o.data["text/html"][:40]
    ]
    assert pictures, "no logprobs HTML"
    picture = pictures[-1]
    for record in records:
        assert html.escape(record["token"]) in picture
    assert "%" in picture
