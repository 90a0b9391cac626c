"""Deterministic sampling: plans of text segments become tokens with log-probabilities.

A reply is planned as a list of segments (fixed text or a ``{a|b|c}`` choice). Each
token is drawn from a small, explicit distribution over candidate next tokens:
the planned token has a high logit and two filler words a low one, and choices
spread their logits over the options. Temperature divides the logits and
``top_p`` trims the tail, exactly like a real sampler, and the reported
``logprobs`` are the log-probabilities of *that* sampling distribution, so they
are honest. Everything is driven by one seeded ``random.Random``: the same
request always gives the same tokens.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .tokens import tokenize

T = TypeVar("T")

#: Logit of the planned token, by kind of text (higher = fewer odd substitutions).
PROSE_LOGIT = 7.5
SYNTAX_LOGIT = 8.0
CODE_LOGIT = 10.0
#: Logits of the two filler candidates offered next to each planned token.
FILLER_LOGITS = (0.0, -1.0)
#: Logits given to the options of a ``{a|b|c}`` choice, in order.
CHOICE_LOGITS = (2.0, 1.4, 0.9, 0.5, 0.2, 0.0)
#: Lowest temperature used when computing distributions (0 means greedy).
MIN_TEMPERATURE = 0.05
#: Lowest temperature used for plan-level picks, so ``n`` choices still differ at 0.
MIN_PLAN_TEMPERATURE = 0.3

FILLER_WORDS = ("really", "also", "quite", "simply", "just", "very", "then", "now")
FILLER_PUNCT = (",", ";", ".", ":", "!")
_WORD_RE = re.compile(r"\s*\w")

#: Request keys that do not change the generated text (so streaming, n, logprobs,
#: max_tokens and stop all see the same underlying answer).
SEED_EXCLUDED_KEYS = frozenset(
    {"stream", "stream_options", "n", "best_of", "logprobs", "max_tokens", "stop"}
)


def seed_for(body: dict[str, Any]) -> int:
    """A seed from the canonical JSON of the request body minus presentation-only keys."""
    canonical = {k: v for k, v in body.items() if k not in SEED_EXCLUDED_KEYS}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True)
class Fixed:
    """Planned text; ``kind`` is ``prose``, ``code`` or ``forced`` (no alternatives)."""

    text: str
    kind: str = "prose"


@dataclass(frozen=True)
class Choice:
    """A choice between options; the first is the most likely."""

    options: tuple[str, ...]


Segment = Fixed | Choice


@dataclass(frozen=True)
class Step:
    """One generated token with its log-probability and the top alternatives."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]

    def logprob_entry(self, token: str | None = None) -> dict[str, Any]:
        """Writer's ``logprobs.content[]`` item for this token."""
        text = self.token if token is None else token
        return {
            "token": text,
            "logprob": self.logprob,
            "bytes": list(text.encode("utf-8")),
            "top_logprobs": [
                {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))} for t, lp in self.top
            ],
        }


class Sampler:
    """Seeded sampling with temperature and nucleus (top_p) trimming."""

    def __init__(self, seed: int, temperature: float = 1.0, top_p: float = 1.0) -> None:
        self.rng = random.Random(seed)
        self.temperature = temperature
        self.top_p = top_p

    def distribution(self, candidates: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
        """The sampling distribution (token, probability), most likely first."""
        merged: dict[str, float] = {}
        t = max(self.temperature, MIN_TEMPERATURE)
        scaled = [(tok, logit / t) for tok, logit in candidates]
        top = max(s for _, s in scaled)
        for tok, s in scaled:
            merged[tok] = merged.get(tok, 0.0) + math.exp(s - top)
        total = sum(merged.values())
        probs = sorted(((tok, w / total) for tok, w in merged.items()), key=lambda x: -x[1])
        kept: list[tuple[str, float]] = []
        cumulative = 0.0
        for tok, p in probs:
            kept.append((tok, p))
            cumulative += p
            if cumulative >= self.top_p:
                break
        norm = sum(p for _, p in kept)
        return [(tok, p / norm) for tok, p in kept]

    def choose(self, candidates: Sequence[tuple[str, float]]) -> Step:
        """Draw one token (greedy at temperature 0)."""
        dist = self.distribution(candidates)
        if self.temperature == 0:
            index = 0
        else:
            r = self.rng.random()
            index = len(dist) - 1
            for i, (_, p) in enumerate(dist):
                r -= p
                if r < 0:
                    index = i
                    break
        top = tuple((tok, _logprob(p)) for tok, p in dist)
        return Step(dist[index][0], top[index][1], top)

    def pick(self, options: Sequence[T]) -> T:
        """A plan-level pick (template, sentence), favouring earlier options."""
        t = max(self.temperature, MIN_PLAN_TEMPERATURE)
        weights = [math.exp(-0.35 * i / t) for i in range(len(options))]
        return self.rng.choices(list(options), weights=weights)[0]

    def shuffled(self, items: Sequence[T]) -> list[T]:
        """A seeded shuffle of ``items``."""
        out = list(items)
        self.rng.shuffle(out)
        return out


def _logprob(p: float) -> float:
    return max(math.log(p), -9999.0) if p > 0 else -9999.0


def _leading_ws(token: str) -> str:
    return token[: len(token) - len(token.lstrip())]


def _candidates(token: str, kind: str, rng: random.Random) -> list[tuple[str, float]]:
    if kind == "forced" or not token.strip():
        return [(token, 0.0)]
    space = _leading_ws(token)
    if _WORD_RE.match(token):
        logit = CODE_LOGIT if kind == "code" else PROSE_LOGIT
        fillers = rng.sample(FILLER_WORDS, 2)
        alts = [(space or " ") + w for w in fillers]
    else:
        logit = CODE_LOGIT if kind == "code" else SYNTAX_LOGIT
        alts = [space + p for p in rng.sample(FILLER_PUNCT, 2)]
    alts = [a for a in alts if a != token][:2]
    return [(token, logit), *zip(alts, FILLER_LOGITS, strict=False)]


def realise(segments: Sequence[Segment], sampler: Sampler) -> list[Step]:
    """Turn planned segments into sampled tokens."""
    steps: list[Step] = []
    for segment in segments:
        if isinstance(segment, Fixed):
            for token in tokenize(segment.text):
                steps.append(sampler.choose(_candidates(token, segment.kind, sampler.rng)))
            continue
        options = [tokenize(option) for option in segment.options if option]
        firsts = [(toks[0], CHOICE_LOGITS[min(i, 5)]) for i, toks in enumerate(options)]
        step = sampler.choose(firsts)
        steps.append(step)
        rest = next(toks[1:] for toks in options if toks[0] == step.token)
        for token in rest:
            steps.append(sampler.choose(_candidates(token, "prose", sampler.rng)))
    return steps


@dataclass(frozen=True)
class Cut:
    """Generated tokens after ``max_tokens`` and ``stop`` were applied."""

    steps: list[Step]
    texts: list[str]
    finish_reason: str

    @property
    def text(self) -> str:
        """The visible text."""
        return "".join(self.texts)

    def logprobs_content(self) -> list[dict[str, Any]]:
        """Writer's ``logprobs.content`` list for the visible tokens."""
        return [s.logprob_entry(t) for s, t in zip(self.steps, self.texts, strict=False)]

    def total_logprob(self) -> float:
        """Sum of token log-probabilities (used by ``best_of``)."""
        return sum(s.logprob for s in self.steps)


def apply_limits(steps: Sequence[Step], max_tokens: int, stop: Sequence[str]) -> Cut:
    """Cut at the first stop sequence (``stop``) or after ``max_tokens`` (``length``)."""
    limited = list(steps[:max_tokens])
    finish = "length" if len(steps) > max_tokens else "stop"
    text = "".join(s.token for s in limited)
    positions = [i for i in (text.find(s) for s in stop) if i >= 0]
    if positions:
        end = min(positions)
        finish = "stop"
        kept: list[Step] = []
        texts: list[str] = []
        offset = 0
        for step in limited:
            if offset >= end:
                break
            piece = step.token[: end - offset]
            kept.append(step)
            texts.append(piece)
            offset += len(step.token)
        return Cut(kept, texts, finish)
    return Cut(limited, [s.token for s in limited], finish)
