"""Unit tests for writer_magics.tools.builtin: exact tool JSON, the one-type rule, sources."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError

from writer_magics.answer.result import Result
from writer_magics.display import TextView
from writer_magics.display.sources import Source, sources, sources_markdown
from writer_magics.line.options import ChatOptions
from writer_magics.line.values import parse_llm_tool
from writer_magics.request import (
    Request,
    builtin_tool,
    chat_request,
    graph_tool,
    llm_tool,
    translation_tool,
    web_search_tool,
)
from writer_magics.send import execute
from writer_magics.server import ServerHandle
from writer_magics.tools.builtin import one_builtin
from writer_magics.transport.client import ClientSettings, WriterClient
from writer_magics.transport.loop import LoopThread

# --------------------------------------------------------------------------- builders


def test_exact_tool_json() -> None:
    assert web_search_tool() == {
        "type": "web_search",
        "function": {"include_domains": [], "exclude_domains": []},
    }
    assert web_search_tool(["python.org"], ("example.com",)) == {
        "type": "web_search",
        "function": {"include_domains": ["python.org"], "exclude_domains": ["example.com"]},
    }
    assert graph_tool(["g1", "g2"], subqueries=True) == {
        "type": "graph",
        "function": {"graph_ids": ["g1", "g2"], "subqueries": True},
    }
    assert llm_tool("palmyra-med", "Medical questions") == {
        "type": "llm",
        "function": {"description": "Medical questions", "model": "palmyra-med"},
    }
    assert translation_tool("fr") == {
        "type": "translation",
        "function": {
            "model": "palmyra-translate",
            "formality": True,
            "length_control": False,
            "mask_profanity": False,
            "target_language_code": "fr",
        },
    }
    assert translation_tool("de", "en", formality=False)["function"] == {
        "model": "palmyra-translate",
        "formality": False,
        "length_control": False,
        "mask_profanity": False,
        "source_language_code": "en",
        "target_language_code": "de",
    }


def test_builtin_tool_from_option_values() -> None:
    def chat(**values: Any) -> ChatOptions:
        return ChatOptions(models=("palmyra-x5",), **values)

    assert builtin_tool(chat()) is None
    assert builtin_tool(chat(graph_ids=("g",))) == graph_tool(["g"])
    assert builtin_tool(chat(llm_tool=("palmyra-x4", "Maths"))) == llm_tool("palmyra-x4", "Maths")
    assert builtin_tool(chat(translate_to="fr", translate_from="en")) == translation_tool(
        "fr", "en"
    )
    # two types in one cell are refused by the option parser (tests/test_options.py)


def test_one_builtin_counts_types_not_functions() -> None:
    function = {"type": "function", "function": {"name": "f"}}
    one_builtin([function, function, web_search_tool()])
    one_builtin([graph_tool(["a"]), graph_tool(["b"])])  # the same type twice is one type
    one_builtin([])
    with pytest.raises(UsageError) as info:
        one_builtin([function, graph_tool(["a"]), llm_tool("m", "d"), {"type": "vision"}])
    assert type(info.value) is UsageError
    assert str(info.value) == (
        "Writer allows one built-in tool per request; got --graph, --llm-tool and a vision "
        "tool. Use one of them per cell"
    )


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("palmyra-med:Medical questions", ("palmyra-med", "Medical questions")),
        (" palmyra-fin : Finance: stocks ", ("palmyra-fin", "Finance: stocks")),
    ],
)
def test_parse_llm_tool(value: str, parsed: tuple[str, str]) -> None:
    assert parse_llm_tool(value) == parsed


@pytest.mark.parametrize("value", ["palmyra-med", "palmyra-med:", ":x", "palmyra med:x"])
def test_parse_llm_tool_errors(value: str) -> None:
    with pytest.raises(UsageError, match="--llm-tool expects MODEL:DESCRIPTION"):
        parse_llm_tool(value)


# --------------------------------------------------------------------------- sources

GRAPH_DATA: dict[str, Any] = {
    "graph_data": {
        "sources": [
            {"file_id": "f-1", "snippet": "Notes on *RAG*\nacross lines."},
            {"file_id": "f-2", "snippet": ""},
        ],
        "status": "finished",
        "subqueries": [],
        "references": {
            "files": [
                {"fileId": "f-1", "score": 0.9, "text": "dup"},
                {"fileId": "f-3", "score": 0.5, "text": "Third", "cite": "Handbook", "page": 4},
            ],
            "web": [
                {"score": 0.4, "text": "A page", "title": "Docs [v2]", "url": "https://d.io/x"}
            ],
        },
    },
    "llm_data": None,
}


def test_graph_sources_dedupe_and_keep_references() -> None:
    found = sources(GRAPH_DATA)
    assert [s.file_id or s.url for s in found] == ["f-1", "f-2", "f-3", "https://d.io/x"]
    assert found[2] == Source(
        "file", title="Handbook", file_id="f-3", snippet="Third", page=4, score=0.5
    )
    assert sources_markdown(GRAPH_DATA) == (
        "**Sources**\n"
        "\n"
        "1. file `f-1` — Notes on \\*RAG\\* across lines.\n"
        "2. file `f-2`\n"
        "3. Handbook, file `f-3`, page 4 — Third\n"
        "4. [Docs \\[v2\\]](https://d.io/x) — A page"
    )


def test_web_search_sources_are_links() -> None:
    data = {
        "web_search_data": {
            "sources": [
                {"url": "https://example.org/a (b)", "raw_content": "x" * 400},
                {"url": "https://example.org/a (b)", "raw_content": "duplicate"},
                {"url": "javascript:alert(1)", "raw_content": "not a link"},
            ]
        }
    }
    lines = sources_markdown(data).splitlines()
    assert lines[0] == "**Sources**"
    assert lines[2].startswith("1. [example.org/a (b)](https://example.org/a%20%28b%29) — xxx")
    assert lines[2].endswith("…") and len(lines[2]) < 260
    assert lines[3] == "2. `javascript:alert(1)` — not a link"
    assert len(lines) == 4


def test_translation_and_llm_lines() -> None:
    data = {
        "translation_data": {
            "source_language_code": "en",
            "source_text": "Good morning",
            "target_language_code": "fr",
        },
        "llm_data": {"prompt": "p", "model": "palmyra-med"},
    }
    assert sources_markdown(data) == (
        "*Translated from en to fr*: “Good morning”\n\n*Answered with palmyra-med (llm tool)*"
    )


def test_nothing_to_show() -> None:
    assert sources_markdown({}) == ""
    assert sources_markdown({"graph_data": {"sources": None, "status": None}}) == ""
    assert sources_markdown({"web_search_data": None, "refusal": None}) == ""
    assert sources({"graph_data": "junk", "web_search_data": {"sources": ["junk"]}}) == []


# --------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def ask(server: ServerHandle, loop: LoopThread, tool: dict[str, Any], text: str) -> Result:
    client = WriterClient(ClientSettings(base_url=server.url, api_key="test-key", max_retries=0))
    body = chat_request(
        model="palmyra-x5", messages=[{"role": "user", "content": text}], tools=[tool]
    )
    try:
        outcome = execute(
            {0: Request("chat", body)},
            loop=loop,
            client=client,
            view=TextView(stream=io.StringIO()),
        )
    finally:
        loop.run(client.aclose)
    assert not outcome.errors
    return outcome.results[0]


def test_server_web_search_sources_render(server: ServerHandle, loop: LoopThread) -> None:
    tool = web_search_tool(["python.org"])
    result = ask(server, loop, tool, "What is new in asyncio?")
    assert server.requests[0].body["tools"] == [tool]
    urls = [s["url"] for s in result.choices[0].data["web_search_data"]["sources"]]
    markdown = sources_markdown(result.choices[0].data)
    assert urls and all(u.startswith("https://python.org/") for u in urls)
    for i, url in enumerate(urls, 1):
        assert f"{i}. [python.org/" in markdown and f"]({url})" in markdown


def test_server_graph_sources_render(server: ServerHandle, loop: LoopThread) -> None:
    tool = graph_tool(["6e2a7f0c-1d5b-4e0a-9c3f-2b8d1a4e5f60"], subqueries=True)
    result = ask(server, loop, tool, "Summarise our refund policy")
    data = result.choices[0].data
    file_ids = [s["file_id"] for s in data["graph_data"]["sources"]]
    markdown = sources_markdown(data)
    assert file_ids and markdown.startswith("**Sources**")
    for i, file_id in enumerate(file_ids, 1):
        assert f"{i}. file `{file_id}`" in markdown
    assert markdown.count("file `") == len(file_ids)  # references.files repeat the sources


def test_server_translation_and_llm_render(server: ServerHandle, loop: LoopThread) -> None:
    result = ask(server, loop, translation_tool("fr", "en"), "Translate: 'good morning'")
    assert sources_markdown(result.choices[0].data) == (
        "*Translated from en to fr*: “good morning”"
    )
    result = ask(server, loop, llm_tool("palmyra-x4", "Maths"), "What is 2 + 2?")
    assert sources_markdown(result.choices[0].data) == "*Answered with palmyra-x4 (llm tool)*"
