"""Plans readable replies from the conversation (what to say, not how to sample it).

The plan depends visibly on the request: key words of the last user message, the
system prompt's persona, the number of earlier turns and a word quoted from an
earlier user message, and the kind of request (code, list, poem or prose).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..line.imagefmt import decode_data_url, sniff
from . import templates as tpl
from .generator import Choice, Fixed, Sampler, Segment
from .tokens import content_text

_CHOICE_RE = re.compile(r"\{([^{}|\n]*(?:\|[^{}|\n]*)+)\}")
_VAR_RE = re.compile(r"\$([A-Za-z_]\w*)")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9'-]*")
_CODE_EXCLUDE = tpl.CODE_WORDS | {w for ws in tpl.LANGUAGE_WORDS.values() for w in ws}
_PERSONA_RE = re.compile(
    r"\b(?:you are|you're|act as|acting as|behave like|pretend to be)\s+"
    r"((?:an?|the)\s+)?([^.,;:!?\n]{1,48})",
    re.IGNORECASE,
)


def expand(template: str, values: Mapping[str, str], kind: str = "prose") -> list[Segment]:
    """Parse ``{a|b}`` choices and ``$name`` values (values are inserted verbatim)."""
    segments: list[Segment] = []
    pos = 0
    pattern = re.compile(f"{_CHOICE_RE.pattern}|{_VAR_RE.pattern}")
    for match in pattern.finditer(template):
        if match.start() > pos:
            segments.append(Fixed(template[pos : match.start()], kind))
        if match.group(1) is not None:
            options = match.group(1).split("|")
            # Options share the leading space of the text before them.
            if segments and isinstance(segments[-1], Fixed) and segments[-1].text.endswith(" "):
                last = segments.pop()
                assert isinstance(last, Fixed)
                if last.text[:-1]:
                    segments.append(Fixed(last.text[:-1], kind))
                options = [" " + o for o in options]
            segments.append(Choice(tuple(options)))
        else:
            name = match.group(2)
            value = values.get(name)
            segments.append(Fixed(value if value is not None else match.group(0), kind))
        pos = match.end()
    if pos < len(template):
        segments.append(Fixed(template[pos:], kind))
    return segments


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Replace ``$name`` values only (for code, where braces are literal)."""
    return _VAR_RE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def keywords(text: str, limit: int = 3, exclude: frozenset[str] = frozenset()) -> list[str]:
    """Up to ``limit`` content words of ``text`` (longer words first), in text order."""
    seen: dict[str, str] = {}
    for raw in _WORD_RE.findall(text):
        base, apostrophe, suffix = raw.partition("'")
        if apostrophe and suffix.lower() != "s":
            continue  # contractions (don't, we'll) are not topics; possessives keep the noun
        word = base if apostrophe else raw
        lower = word.lower().strip("'-")
        if len(lower) < 3 or lower in tpl.STOPWORDS or lower in exclude or lower in seen:
            continue
        seen[lower] = word.strip("'-")
    words = list(seen.values())
    ranked = sorted(words, key=lambda w: (-min(len(w), 7), words.index(w)))[:limit]
    return sorted(ranked, key=words.index)


def persona(system: str) -> str | None:
    """``"a friendly pirate"`` from ``"You are a friendly pirate."``."""
    match = _PERSONA_RE.search(system)
    if not match:
        return None
    article = (match.group(1) or "").strip().lower()
    words = match.group(2).split()
    if words and words[0].lower() in ("you", "an", "a", "the"):
        return None
    return " ".join(([article] if article else []) + words)[:60] or None


def snake(words: Sequence[str]) -> str:
    """``count_camping_gear`` style identifier."""
    parts = [p for p in (re.sub(r"\W", "", w.lower()) for w in words[:2]) if p]
    if not parts:
        return "count_items"
    return "_".join(parts if parts[0] == "count" else ["count", *parts])


def camel(name: str) -> str:
    """``countCampingGear`` from ``count_camping_gear``."""
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


@dataclass(frozen=True)
class Analysis:
    """What the reply is about."""

    text: str
    keywords: list[str]
    intent: str
    count: int
    language: str
    persona: str | None
    system: str
    turn: int
    earlier: str | None


def _intent(text: str) -> tuple[str, int, str]:
    words = {w.lower() for w in _WORD_RE.findall(text)}
    count = 3
    for token in re.findall(r"\b(\d+|[a-z]+)\b", text.lower()):
        if token.isdigit() and 2 <= int(token) <= 10:
            count = int(token)
            break
        if token in tpl.NUMBER_WORDS:
            count = tpl.NUMBER_WORDS[token]
            break
    language = None
    for name, hints in tpl.LANGUAGE_WORDS.items():
        if words & set(hints):
            language = name
            break
    if words & tpl.POEM_WORDS:
        intent = "poem"
    elif words & tpl.CODE_WORDS:
        intent = "code"
    elif words & tpl.LIST_WORDS:
        intent = "list"
    else:
        intent = "code" if language else "prose"
    return intent, count, language or "python"


def analyse(messages: Sequence[Mapping[str, Any]]) -> Analysis:
    """Read the conversation: last user text, persona, turn number, an earlier word."""
    users = [content_text(m.get("content")) for m in messages if m.get("role") == "user"]
    systems = [content_text(m.get("content")) for m in messages if m.get("role") == "system"]
    text = users[-1] if users else content_text(messages[-1].get("content"))
    system = " ".join(s for s in systems if s).strip()
    earlier = None
    for previous in users[:-1]:
        found = keywords(previous, 1)
        if found:
            earlier = found[0]
            break
    intent, count, language = _intent(text)
    return Analysis(
        text=text,
        keywords=keywords(text, exclude=_CODE_EXCLUDE if intent == "code" else frozenset())
        or keywords(text),
        intent=intent,
        count=count,
        language=language,
        persona=persona(system) if system else None,
        system=system,
        turn=len(users),
        earlier=earlier,
    )


class Composer:
    """Collects segments for one reply; plan-level picks use the shared sampler."""

    def __init__(self, sampler: Sampler, analysis: Analysis) -> None:
        self.sampler = sampler
        self.a = analysis
        kws = analysis.keywords or ["your question"]
        self.kws = kws
        self.segments: list[Segment] = []
        self._pool = sampler.shuffled(tpl.SENTENCES)
        self._next = 0
        self.values: dict[str, str] = {
            "topic": " and ".join(kws[:2]),
            "Topic": " and ".join(kws[:2])[:1].upper() + " and ".join(kws[:2])[1:],
            "kw": kws[0],
            "Kw": kws[0][:1].upper() + kws[0][1:],
            "kw2": kws[1] if len(kws) > 1 else kws[0],
            "turn": str(analysis.turn),
            "earlier": analysis.earlier or "",
            "persona": analysis.persona or "",
            "system": " ".join(analysis.system.split()[:8]),
            "count": str(analysis.count),
        }

    def say(self, template: str, **values: str) -> None:
        """Append a template expanded with the reply's values."""
        self.segments.extend(expand(template, {**self.values, **values}))

    def text(self, text: str, kind: str = "prose") -> None:
        """Append literal text."""
        self.segments.append(Fixed(text, kind))

    def pick(self, options: Sequence[str]) -> str:
        """Choose a template."""
        return self.sampler.pick(options)

    def sentences(self, count: int, offset: int = 0) -> None:
        """``count`` distinct sentences, cycling through the key words."""
        for i in range(count):
            kw = self.kws[(i + offset) % len(self.kws)]
            self.text(" " if i else "")
            self.say(self.sentence(), kw=kw)

    def sentence(self) -> str:
        """The next sentence template, never repeating within one reply."""
        template = self._pool[self._next % len(self._pool)]
        self._next += 1
        return template


def chat_plan(sampler: Sampler, messages: Sequence[Mapping[str, Any]]) -> list[Segment]:
    """A Markdown answer to the last user message."""
    a = analyse(messages)
    c = Composer(sampler, a)
    seen = image_note(messages)
    if seen:
        c.text(seen + "\n\n", "forced")  # exact, whatever the temperature: tests match it
    if a.persona:
        c.say(c.pick(tpl.PERSONA_OPENINGS))
    elif a.system:
        c.say(c.pick(tpl.INSTRUCTED_OPENINGS))
    else:
        c.say(c.pick(tpl.OPENINGS))
    if a.turn > 1 and a.earlier:
        c.text(" ")
        c.say(c.pick(tpl.HISTORY_LINES))
    c.text("\n\n")
    _body(c, markdown=True)
    c.text("\n\n")
    c.say(c.pick(tpl.CLOSINGS), kw=c.kws[-1])
    return c.segments


def completion_plan(sampler: Sampler, prompt: str) -> list[Segment]:
    """Plain text that continues a completions prompt."""
    c = Composer(sampler, analyse([{"role": "user", "content": prompt}]))
    c.say(c.pick(tpl.COMPLETION_OPENINGS))
    c.text("\n\n")
    _body(c, markdown=False)
    return c.segments


def _body(c: Composer, markdown: bool) -> None:
    a = c.a
    if a.intent == "poem":
        c.say(tpl.POEM)
    elif a.intent == "code":
        name = snake(c.kws)
        c.say(c.pick(tpl.CODE_INTROS), language=tpl.LANGUAGE_DISPLAY[a.language], name=name)
        code = tpl.CODE[a.language]
        body = substitute(code, {**c.values, "name": name, "camel": camel(name)})
        c.text(f"\n\n```{a.language}\n", "code")
        c.text(body, "code")
        c.text("```\n\n", "code")
        c.say(c.pick(tpl.CODE_OUTROS), name=name)
    elif a.intent == "list":
        c.say(c.pick(tpl.LIST_INTROS))
        c.text("\n")
        for i in range(a.count):
            kw = c.kws[i % len(c.kws)]
            label = f"**{kw[:1].upper()}{kw[1:]}**" if markdown else kw[:1].upper() + kw[1:]
            c.text(f"\n{i + 1}. " if not markdown else "\n- ")
            c.text(label + ": ")
            c.say(c.sentence(), kw=kw)
    else:
        c.sentences(3)
        c.text("\n\n")
        c.sentences(2, offset=1)


def image_note(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """``I see 2 images: 640×480 PNG and 32×16 JPEG.``, read from the bytes of every
    image in the user messages (an https address is not fetched); None without images."""
    described: list[str] = []
    for message in messages:
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        for part in content:
            image = part.get("image_url") if isinstance(part, dict) else None
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str):
                continue
            decoded = decode_data_url(url)
            found = sniff(decoded[1]) if decoded is not None else None
            if found is None:
                described.append(f"one at {url[:60]} (not fetched)")
            else:
                described.append(f"{found.width}×{found.height} {found.name}")
    if not described:
        return None
    count = len(described)
    listed = described[0] if count == 1 else ", ".join(described[:-1]) + " and " + described[-1]
    return f"I see {count} image{'' if count == 1 else 's'}: {listed}."
