"""The server's own tokeniser.

A token is optional leading whitespace followed by one word (``\\w+``) or one
punctuation character; a trailing run of whitespace is a token of its own. Joining
the tokens gives back the exact text, so streamed pieces always add up to the
non-streamed answer, and ``max_tokens``/``usage`` are counted in these units.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN_RE = re.compile(r"\s*(?:\w+|[^\w\s])|\s+")

#: Tokens added per chat message for the role framing (like real chat templates).
MESSAGE_OVERHEAD = 4


def tokenize(text: str) -> list[str]:
    """Split ``text`` into tokens whose concatenation is ``text``."""
    return _TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Number of tokens in ``text``."""
    return len(tokenize(text))


def content_text(content: Any) -> str:
    """The plain text of a message ``content`` (string, list of parts or null)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        return "\n".join(texts)
    return ""


def count_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of a chat request: content tokens plus a fixed overhead per message."""
    total = 0
    for message in messages:
        total += MESSAGE_OVERHEAD + count_tokens(content_text(message.get("content")))
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                function = call.get("function") or {}
                total += count_tokens(str(function.get("name") or ""))
                total += count_tokens(str(function.get("arguments") or ""))
    return total
