"""Unit tests for writer_magics.display.logprobs: shaded tokens with tooltips, as static HTML."""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest

from writer_magics.display import TextView
from writer_magics.display.logprobs import logprobs_html, percent, probability_color, tooltip
from writer_magics.request import Request, chat_request
from writer_magics.send import execute
from writer_magics.server import ServerHandle
from writer_magics.transport.client import ClientSettings, WriterClient
from writer_magics.transport.loop import LoopThread


class Spans(HTMLParser):
    """The token spans of the view: (text, title, data-probability)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.spans: list[dict[str, Any]] = []
        self.tags: set[str] = set()
        self._open: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "span":
            self._open = {**dict(attrs), "text": ""}

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open is not None:
            self.spans.append(self._open)
            self._open = None


def spans_of(markup: str) -> Spans:
    parser = Spans()
    parser.feed(markup)
    return parser


RECORDS: list[dict[str, Any]] = [
    {
        "token": "<b>Paris</b>",
        "logprob": math.log(0.931),
        "probability": 0.931,
        "top": [
            {"token": "<b>Paris</b>", "probability": 0.931},
            {"token": " Lyon", "probability": 0.05},
            {"token": "&", "probability": 0.0004},
        ],
    },
    {"token": "\n", "logprob": math.log(0.2), "probability": 0.2, "top": []},
    {"token": ' "quoted"', "logprob": -9.0},  # probability computed from logprob
]


def test_every_token_escaped_with_its_probability() -> None:
    markup = logprobs_html(RECORDS)
    assert "<b>" not in markup and "&lt;b&gt;Paris&lt;/b&gt;" in markup
    parsed = spans_of(markup)
    assert [s["text"] for s in parsed.spans] == ["<b>Paris</b>", "\n", ' "quoted"']
    assert [s["data-probability"] for s in parsed.spans] == ["0.9310", "0.2000", "0.0001"]
    assert parsed.spans[0]["title"] == (
        "<b>Paris</b>  93.1%\nTop alternatives:\n  <b>Paris</b>  93.1%\n  ' Lyon'  5.0%\n  &  <0.1%"
    )
    assert parsed.spans[1]["title"] == "'\\n'  20.0%"
    assert parsed.spans[2]["title"] == "' \"quoted\"'  <0.1%"


def test_static_html_only() -> None:
    markup = logprobs_html(RECORDS)
    assert spans_of(markup).tags == {"div", "span"}
    assert not re.search(r"<script|<style|class=|on\w+=", markup, re.IGNORECASE)
    assert "\n" not in markup.replace(">\n<", "")  # newlines only inside the newline token
    assert 'title="&lt;b&gt;Paris&lt;/b&gt;  93.1%&#10;Top alternatives:' in markup


def test_summary_line() -> None:
    markup = logprobs_html(RECORDS)
    assert "3 tokens · mean probability 37.7% · lowest &lt;0.1% · hover a token" in markup
    assert "No token probabilities were returned." in logprobs_html([])


def test_shading_runs_red_to_green() -> None:
    assert probability_color(0.0) == "hsla(0, 80%, 50%, 0.35)"
    assert probability_color(0.5) == "hsla(60, 80%, 50%, 0.35)"
    assert probability_color(1.0) == probability_color(7.0) == "hsla(120, 80%, 50%, 0.35)"
    markup = logprobs_html(RECORDS)
    assert "background-color: hsla(112, 80%, 50%, 0.35)" in markup  # 93.1%


@pytest.mark.parametrize(
    ("p", "text"), [(1.0, "100.0%"), (0.5, "50.0%"), (0.0004, "<0.1%"), (0.0, "0.0%")]
)
def test_percent(p: float, text: str) -> None:
    assert percent(p) == text


def test_raw_writer_records_work_too() -> None:
    raw = {"token": "Hi", "logprob": 0.0, "top_logprobs": [{"token": "Yo", "logprob": -1.0}]}
    assert tooltip(raw) == "Hi  100.0%\nTop alternatives:\n  Yo  36.8%"


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def test_server_logprobs_every_token_with_a_probability(
    server: ServerHandle, loop: LoopThread
) -> None:
    client = WriterClient(ClientSettings(base_url=server.url, api_key="test-key", max_retries=0))
    body = chat_request(
        model="palmyra-x5",
        messages=[{"role": "user", "content": "Explain <html> & entities briefly"}],
        logprobs=True,
        max_tokens=40,
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
    result = outcome.results[0]
    records = result.logprobs
    assert records and "".join(r["token"] for r in records) == result.text
    parsed = spans_of(logprobs_html(records))
    assert len(parsed.spans) == len(records)
    for span, record in zip(parsed.spans, records, strict=True):
        assert span["text"] == record["token"]
        assert float(span["data-probability"]) == pytest.approx(record["probability"], abs=1e-4)
        assert percent(record["probability"]) in span["title"]
        for alternative in record["top"]:
            assert percent(alternative["probability"]) in span["title"]
    assert html.unescape(re.sub(r"<[^>]+>", "", logprobs_html(records))).startswith(result.text)
