"""Turns a validated request into a reply: choices, tool calls, usage and stream events.

This is the only module that knows which behaviour applies (tool call, tool
result, built-in tool, JSON schema, plain answer); it returns plain data that
``protocol`` shapes and ``http`` writes.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from . import protocol, tools
from . import templates as tpl
from .compose import Composer, analyse, chat_plan, completion_plan, expand
from .generator import Cut, Fixed, Sampler, Segment, apply_limits, realise, seed_for
from .schema_gen import fake
from .tokens import content_text, count_prompt_tokens, count_tokens, tokenize

#: A stream event: (JSON payload, number of tokens it carries, for pacing).
Event = tuple[dict[str, Any], int]
#: How many re-rolls ``n`` may use to make its choices distinct.
DISTINCT_ATTEMPTS = 5


def sub_seed(base: int, *parts: int) -> int:
    """A seed derived from ``base`` and integers (choice index, attempt)."""
    text = ":".join(str(p) for p in (base, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@dataclass
class ChoiceOutput:
    """One choice: text tokens or tool calls, plus built-in tool data."""

    index: int
    cut: Cut
    finish_reason: str
    tool_calls: list[tools.ToolCall] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    whole: bool = False  # stream the text as one piece (translation does not stream)

    @property
    def completion_tokens(self) -> int:
        """Tokens generated for this choice."""
        if self.tool_calls:
            return sum(count_tokens(c.name) + count_tokens(c.arguments) for c in self.tool_calls)
        return len(self.cut.steps)


def _builtin_plan(
    sampler: Sampler, tool: dict[str, Any], messages: list[dict[str, Any]]
) -> tuple[list[Segment], dict[str, Any], bool]:
    kind = tool["type"]
    function = tool.get("function") or {}
    a = analyse(messages)
    kws = a.keywords or ["your question"]
    values = {"topic": " and ".join(kws[:2]), "count": "3", "model": str(function.get("model"))}
    if kind == "translation":
        translated, data = tools.translation(function, a.text)
        return [Fixed(translated)], {"translation_data": data}, True
    segments: list[Segment] = []
    if kind == "web_search":
        data = {"web_search_data": tools.web_search_data(function, kws)}
        values["count"] = _counted(len(data["web_search_data"]["sources"]), "source")
        segments += expand(tpl.WEB_LINES[0], values)
    elif kind == "graph":
        data = {"graph_data": tools.graph_data(function, kws, a.text)}
        values["count"] = _counted(len(data["graph_data"]["sources"]), "file")
        segments += expand(tpl.GRAPH_LINES[0], values)
    else:
        data = {"llm_data": tools.llm_data(function, a.text)}
        segments += expand(tpl.LLM_LINES[0], values)
    segments.append(Fixed(" "))
    segments += chat_plan(sampler, messages)
    # The sources travel in ``web_search_data`` only (the view lists them once): a link
    # list in the text would show them twice, and sampled prose may bend a URL.
    return segments, data, False


def _counted(number: int, noun: str) -> str:
    """``"1 file"``, ``"3 files"``: what the answer says it found, from the tool data."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _tool_result_plan(sampler: Sampler, name: str, result: str) -> list[Segment]:
    quoted = " ".join(result.split())
    quoted = quoted if len(quoted) <= 200 else quoted[:197] + "..."
    c = Composer(sampler, analyse([{"role": "user", "content": result}]))
    c.say(c.pick(tpl.TOOL_RESULT_LINES), name=name, result=quoted)
    c.text(" ")
    c.say(c.pick(tpl.TOOL_RESULT_FOLLOWUPS))
    return c.segments


def _chat_choice(req: protocol.ChatRequest, seed: int, index: int) -> ChoiceOutput:
    p = req.params
    sampler = Sampler(seed, p.temperature, p.top_p)
    messages = req.messages
    chosen = tools.choose_functions(req.tools, req.tool_choice, messages)
    if chosen:
        calls = tools.make_calls(chosen, messages, sampler)
        return ChoiceOutput(index, Cut([], [], "tool_calls"), "tool_calls", tool_calls=calls)
    data: dict[str, Any] = {}
    whole = False
    answered = tools.answered_tool(messages)
    builtin = tools.builtin_tool(req.tools)
    if answered:
        segments = _tool_result_plan(sampler, *answered)
    elif req.response_format is not None:
        schema = (req.response_format.get("json_schema") or {}).get("schema") or {}
        hints = analyse(messages).keywords
        document = json.dumps(fake(schema, sampler, hints), indent=2, ensure_ascii=False)
        segments = [Fixed(document, "forced")]
    elif builtin is not None and req.tool_choice != "none" and messages[-1].get("role") == "user":
        segments, data, whole = _builtin_plan(sampler, builtin, messages)
    else:
        segments = chat_plan(sampler, messages)
    cut = apply_limits(realise(segments, sampler), p.max_tokens, p.stop)
    return ChoiceOutput(index, cut, cut.finish_reason, data=data, whole=whole)


@dataclass
class ChatReply:
    """Everything needed to answer a chat request, streamed or not."""

    request: protocol.ChatRequest
    choices: list[ChoiceOutput]
    prompt_tokens: int

    def usage(self) -> dict[str, Any]:
        """The full usage object."""
        completion = sum(c.completion_tokens for c in self.choices)
        return protocol.usage_body(self.prompt_tokens, completion)

    def _logprobs(self, choice: ChoiceOutput) -> dict[str, Any] | None:
        if not self.request.logprobs or choice.tool_calls:
            return None
        return {"content": choice.cut.logprobs_content(), "refusal": None}

    def body(self) -> dict[str, Any]:
        """The non-streaming ``chat.completion``."""
        out = []
        for c in self.choices:
            calls = [
                {
                    "id": t.id,
                    "type": "function",
                    "index": None,
                    "function": {"name": t.name, "arguments": t.arguments},
                }
                for t in c.tool_calls
            ]
            content = None if c.tool_calls else c.cut.text
            out.append(
                {
                    "index": c.index,
                    "finish_reason": c.finish_reason,
                    "logprobs": self._logprobs(c),
                    "message": protocol.chat_message(content, calls or None, c.data),
                }
            )
        return protocol.chat_completion(self.request.params.model, out, self.usage())

    def _pieces(self, c: ChoiceOutput) -> list[tuple[dict[str, Any], dict[str, Any] | None, int]]:
        """(delta, logprobs, tokens) for each chunk of one choice."""
        pieces: list[tuple[dict[str, Any], dict[str, Any] | None, int]] = []
        for k, call in enumerate(c.tool_calls):
            first = {
                "index": k,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": None},
            }
            pieces.append((protocol.chat_delta(None, [first]), None, count_tokens(call.name)))
            toks = tokenize(call.arguments)
            size = max(1, math.ceil(len(toks) / 3))
            for start in range(0, len(toks), size):
                fragment = "".join(toks[start : start + size])
                piece = {
                    "index": k,
                    "id": None,
                    "type": None,
                    "function": {"name": None, "arguments": fragment},
                }
                pieces.append((protocol.chat_delta(None, [piece]), None, size))
        if c.tool_calls:
            return pieces
        cut = c.cut
        if c.whole or not cut.steps:
            pieces.append((protocol.chat_delta(cut.text), self._logprobs(c), len(cut.steps)))
        else:
            for step, text in zip(cut.steps, cut.texts, strict=False):
                lp = (
                    {"content": [step.logprob_entry(text)], "refusal": None}
                    if self.request.logprobs
                    else None
                )
                pieces.append((protocol.chat_delta(text), lp, 1))
        if c.data:
            delta, lp, n = pieces[-1]
            pieces[-1] = (protocol.chat_delta(delta["content"], None, c.data), lp, n)
        return pieces

    def events(self) -> list[Event]:
        """Stream chunks: choices interleaved, finish on each last chunk, then usage."""
        model = self.request.params.model
        per_choice = []
        for c in self.choices:
            pieces = self._pieces(c)
            chunks: list[Event] = []
            for i, (delta, lp, n) in enumerate(pieces):
                finish = c.finish_reason if i == len(pieces) - 1 else None
                chunks.append((protocol.chat_chunk(model, c.index, delta, finish, lp), n))
            per_choice.append(chunks)
        events: list[Event] = []
        for step in range(max(len(chunks) for chunks in per_choice)):
            events.extend(chunks[step] for chunks in per_choice if step < len(chunks))
        if self.request.include_usage:
            events.append((protocol.usage_chunk(model, self.usage()), 0))
        return events


def chat_reply(req: protocol.ChatRequest, clean_body: dict[str, Any]) -> ChatReply:
    """Generate ``n`` distinct choices for a chat request."""
    base = seed_for(clean_body)
    choices: list[ChoiceOutput] = []
    seen: set[str] = set()
    for index in range(req.n):
        for attempt in range(DISTINCT_ATTEMPTS):
            seed = sub_seed(base, index, attempt) if attempt else sub_seed(base, index)
            choice = _chat_choice(req, seed, index)
            key = choice.cut.text + "".join(t.arguments for t in choice.tool_calls)
            if key not in seen or choice.tool_calls:
                break
        seen.add(key)
        choices.append(choice)
    return ChatReply(req, choices, count_prompt_tokens(req.messages))


def completion_candidates(req: protocol.CompletionRequest, clean_body: dict[str, Any]) -> list[Cut]:
    """The ``best_of`` candidates (candidate 0 is what ``best_of=1`` returns)."""
    base = seed_for(clean_body)
    p = req.params
    cuts = []
    for index in range(req.best_of):
        sampler = Sampler(sub_seed(base, index), p.temperature, p.top_p)
        steps = realise(completion_plan(sampler, req.prompt), sampler)
        cuts.append(apply_limits(steps, p.max_tokens, p.stop))
    return cuts


def completion_reply(req: protocol.CompletionRequest, clean_body: dict[str, Any]) -> Cut:
    """The most probable of the ``best_of`` candidates."""
    cuts = completion_candidates(req, clean_body)
    return max(cuts, key=lambda c: (c.total_logprob(), -cuts.index(c)))


def completion_events(cut: Cut) -> list[Event]:
    """``{"value": ""}`` first, then one event per token."""
    return [(protocol.completion_chunk(""), 0)] + [
        (protocol.completion_chunk(t), 1) for t in cut.texts
    ]


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """All message text joined (for logs)."""
    return "\n".join(content_text(m.get("content")) for m in messages)
