"""Tool behaviour: when to call a function, its arguments, and built-in tool data.

Function tools are called when the last message is a user message that mentions
a function's name (``get_weather`` or ``get weather``), or when ``tool_choice``
is ``"required"`` or names the function; ``"none"`` never calls. Arguments come
from the function's JSON schema: required ones always, optional ones only when the
user message supplies a value (first word after "for"/"in"/... for a string, first
integer for an integer, a mentioned enum value).
Built-in tools (``web_search``, ``graph``, ``translation``, ``llm``) run "on the
server" and return their ``*_data`` objects next to a text answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from . import templates as tpl
from .compose import keywords
from .generator import Sampler
from .schema_gen import fake
from .tokens import content_text

_AFTER_PREPOSITION = re.compile(
    r"\b(?:for|in|at|about|of|to|from|near|called|named)\s+([A-Za-z][\w'-]*)", re.IGNORECASE
)
_INT_RE = re.compile(r"(?<![\w.])-?\d+(?![\w.]\d)")
_NUM_RE = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class ToolCall:
    """A function call the assistant asks the client to run."""

    id: str
    name: str
    arguments: str


def functions(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``function`` objects of the custom function tools."""
    return [t["function"] for t in tools if t.get("type") == "function"]


def builtin_tool(tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The (single) built-in tool of the request, if any."""
    for tool in tools:
        if tool.get("type") != "function":
            return tool
    return None


def _mentions(text: str, name: str) -> int:
    lower = text.lower()
    positions = [lower.find(form) for form in (name.lower(), name.lower().replace("_", " "))]
    found = [p for p in positions if p >= 0]
    return min(found) if found else -1


def choose_functions(
    tools: list[dict[str, Any]], tool_choice: Any, messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The functions to call now (empty = answer in text)."""
    fns = functions(tools)
    if not fns or tool_choice == "none" or not messages or messages[-1].get("role") != "user":
        return []
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        return [f for f in fns if f.get("name") == wanted][:1]
    text = content_text(messages[-1].get("content"))
    mentioned = sorted(
        ((_mentions(text, str(f["name"])), i) for i, f in enumerate(fns)),
    )
    chosen = [fns[i] for pos, i in mentioned if pos >= 0]
    if not chosen and tool_choice == "required":
        chosen = fns[:1]
    return chosen


def _string_hint(text: str) -> str | None:
    for match in _AFTER_PREPOSITION.finditer(text):
        word = match.group(1)
        if word.lower() not in tpl.STOPWORDS:
            return word
    return None


def arguments_for(function: dict[str, Any], text: str, sampler: Sampler) -> dict[str, Any]:
    """Arguments for ``function``, taking values from the user's ``text`` where possible."""
    schema = function.get("parameters")
    if not isinstance(schema, dict):
        return {}
    schema = {**schema, "type": schema.get("type", "object")}
    hint = _string_hint(text)
    ints = [int(m) for m in _INT_RE.findall(text)]
    nums = [float(m) for m in _NUM_RE.findall(text)]
    used_string = False
    found: set[str] = set()

    def override(name: str, sub: dict[str, Any]) -> Any:
        value = _from_text(name, sub)
        if value is not None:
            found.add(name)
        return value

    def _from_text(name: str, sub: dict[str, Any]) -> Any:
        nonlocal used_string
        kind = sub.get("type")
        if isinstance(sub.get("enum"), list):
            for option in sub["enum"]:
                if isinstance(option, str) and re.search(rf"\b{re.escape(option)}\b", text, re.I):
                    return option
            return None
        if kind == "integer" and ints:
            return ints[0]
        if kind == "number" and nums:
            return nums[0]
        if kind == "string" and hint and not used_string and "format" not in sub:
            used_string = True
            return hint
        return None

    value = fake(schema, sampler, keywords(text) or ["example"], override)
    if not isinstance(value, dict):
        return {}
    # Like a model: required arguments always, optional ones only when the user gave them.
    required = set(schema.get("required") or [])
    return {k: v for k, v in value.items() if k in required or k in found}


def make_calls(
    chosen: list[dict[str, Any]], messages: list[dict[str, Any]], sampler: Sampler
) -> list[ToolCall]:
    """Tool calls with ids ``chatcmpl-tool-<hex>`` and JSON-string arguments."""
    text = content_text(messages[-1].get("content"))
    calls = []
    for function in chosen:
        args = arguments_for(function, text, sampler)
        call_id = "chatcmpl-tool-" + f"{sampler.rng.getrandbits(128):032x}"
        calls.append(ToolCall(call_id, str(function["name"]), json.dumps(args)))
    return calls


def answered_tool(messages: list[dict[str, Any]]) -> tuple[str, str] | None:
    """``(function name, result text)`` when the last message is a tool result."""
    last = messages[-1]
    if last.get("role") != "tool":
        return None
    result = content_text(last.get("content"))
    call_id = last.get("tool_call_id")
    name = str(last.get("name") or "tool")
    for message in reversed(messages[:-1]):
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and call.get("id") == call_id:
                name = str((call.get("function") or {}).get("name") or name)
    return name, result


# --------------------------------------------------------------------------- built-in tools


def _hexid(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def _slug(words: list[str]) -> str:
    return "-".join(re.sub(r"\W", "", w.lower()) for w in words) or "results"


def web_search_data(function: dict[str, Any], kws: list[str]) -> dict[str, Any]:
    """``web_search_data`` with example sources, honouring include/exclude domains."""
    include = [d for d in function.get("include_domains") or [] if isinstance(d, str)]
    exclude = {d.lower() for d in function.get("exclude_domains") or [] if isinstance(d, str)}
    hosts = include or [
        h for h in ("example.org", "example.net", "example.com") if h not in exclude
    ]
    hosts = [h for h in hosts if h.lower() not in exclude] or ["example.org"]
    slug = _slug(kws)
    sources = []
    for i in range(3):
        host = hosts[i % len(hosts)]
        topic = kws[i % len(kws)] if kws else "results"
        sources.append(
            {
                "url": f"https://{host}/{slug}/{i + 1}",
                "raw_content": f"An overview of {topic}: definitions, examples and practical "
                f"advice (source {i + 1}).",
            }
        )
    return {"sources": sources}


def graph_data(function: dict[str, Any], kws: list[str], question: str) -> dict[str, Any]:
    """``graph_data`` with sources, subqueries (when asked) and references."""
    graph_ids = [g for g in function.get("graph_ids") or [] if isinstance(g, str)] or ["graph"]
    sources = []
    for i, kw in enumerate((kws or ["documents"])[:3]):
        file_id = _hexid(graph_ids[i % len(graph_ids)], kw)
        file_id = (
            f"{file_id[:8]}-{file_id[8:12]}-{file_id[12:16]}-{file_id[16:20]}-{file_id[20:32]}"
        )
        sources.append({"file_id": file_id, "snippet": f"Notes on {kw} from the knowledge graph."})
    subqueries = []
    if function.get("subqueries"):
        subqueries = [
            {
                "query": f"What is {s['snippet'].split(' ')[2]}?",
                "answer": s["snippet"],
                "sources": [s],
            }
            for s in sources
        ]
    return {
        "sources": sources,
        "status": "finished",
        "subqueries": subqueries,
        "references": {
            "files": [
                {"fileId": s["file_id"], "score": round(0.9 - 0.1 * i, 2), "text": s["snippet"]}
                for i, s in enumerate(sources)
            ],
            "web": [],
        },
    }


def llm_data(function: dict[str, Any], prompt: str) -> dict[str, Any]:
    """``llm_data``: the prompt passed on and the delegate model."""
    return {"prompt": prompt, "model": str(function.get("model"))}


def _target_language(function: dict[str, Any], text: str) -> str:
    code = function.get("target_language_code")
    if isinstance(code, str) and code:
        return code
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in tpl.LANGUAGE_NAMES:
            return tpl.LANGUAGE_NAMES[word]
    return "fr"


def _source_text(text: str) -> str:
    quoted = re.search(r"[\"“']([^\"”']+)[\"”']", text)
    if quoted:
        return quoted.group(1)
    after = re.split(r":\s*", text, maxsplit=1)
    return after[1].strip() if len(after) > 1 and after[1].strip() else text.strip()


def translation(function: dict[str, Any], text: str) -> tuple[str, dict[str, Any]]:
    """A tagged 'translation' (``"[fr] bonjour monde"``) and its ``translation_data``."""
    target = _target_language(function, text)
    source = _source_text(text)
    words = tpl.TRANSLATIONS.get(target.split("-")[0], {})

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        out = words.get(word.lower(), word)
        return out.capitalize() if word[:1].isupper() else out

    translated = f"[{target}] " + re.sub(r"[A-Za-z]+", swap, source)
    source_code = function.get("source_language_code")
    data = {
        "source_language_code": source_code if isinstance(source_code, str) else "en",
        "source_text": source,
        "target_language_code": target,
    }
    return translated, data
