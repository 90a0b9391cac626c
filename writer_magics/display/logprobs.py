"""The answer with each token shaded by its probability, as self-contained HTML.

Hovering a token shows its probability and the top alternatives with percentages.
Only inline styles and ``title`` tooltips are used (no script, no stylesheet, no
classes), so the view survives a saved notebook, nbconvert's HTML export and the
sanitiser of untrusted notebooks. Records are those of :attr:`Result.logprobs`:
``{token, logprob, probability, top: [{token, probability}]}``; a record with only a
``logprob`` (or ``top_logprobs`` as Writer sends them) works too.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["logprobs_html", "logprobs_plain", "percent", "probability_color", "tooltip"]

# Colours come from JupyterLab's theme variables (light, dark, high contrast), with the
# light theme's values as fallbacks where they are not defined (nbconvert, GitHub).
_BOX = (
    "font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; "
    "font-size: 0.9em; line-height: 1.9; white-space: pre-wrap; word-break: break-word; "
    "color: var(--jp-content-font-color1, #111); background: var(--jp-layout-color1, #fff); "
    "padding: 6px 8px; border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px"
)
_TOKEN = "background-color: {color}; border-radius: 2px; padding: 1px 0"
_NOTE = (
    "font-family: sans-serif; font-size: 0.8em; color: var(--jp-content-font-color2, #555); "
    "margin-top: 4px"
)


def _probability(record: Mapping[str, Any]) -> float:
    value = record.get("probability")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return min(max(float(value), 0.0), 1.0)
    logprob = record.get("logprob")
    if isinstance(logprob, int | float) and not isinstance(logprob, bool):
        return 0.0 if math.isnan(logprob) else min(math.exp(min(logprob, 0.0)), 1.0)
    return 0.0


def _alternatives(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    top = record.get("top")
    if not isinstance(top, list):
        top = record.get("top_logprobs")
    return [t for t in top if isinstance(t, Mapping)] if isinstance(top, list) else []


def percent(p: float) -> str:
    """``93.1%``; tiny values stay visible as ``<0.1%`` rather than ``0.0%``."""
    if 0 < p < 0.001:
        return "<0.1%"
    return f"{p * 100:.1f}%"


def probability_color(p: float) -> str:
    """Red (unlikely) through yellow to green (likely), translucent: the theme's
    background shows through, so the theme's text colour reads on it, light or dark."""
    hue = 120 * min(max(p, 0.0), 1.0)
    return f"hsla({hue:.0f}, 80%, 50%, 0.35)"


def _shown(token: str) -> str:
    """A token as text in a tooltip: quoted, with newlines and tabs visible."""
    return repr(token) if token.strip() != token or not token else token


def tooltip(record: Mapping[str, Any]) -> str:
    """``"Paris" 93.1%`` then one line per alternative (plain text; escape for HTML)."""
    token = str(record.get("token", ""))
    lines = [f"{_shown(token)}  {percent(_probability(record))}"]
    alternatives = _alternatives(record)
    if alternatives:
        lines.append("Top alternatives:")
        for alt in alternatives:
            lines.append(f"  {_shown(str(alt.get('token', '')))}  {percent(_probability(alt))}")
    return "\n".join(lines)


def _attribute(text: str) -> str:
    """Escaped for a double-quoted attribute; newlines as ``&#10;`` (tooltip line breaks)."""
    return html.escape(text, quote=True).replace("\n", "&#10;")


def _summary(probabilities: Sequence[float]) -> str:
    if not probabilities:
        return "No token probabilities were returned."
    mean = sum(probabilities) / len(probabilities)
    return (
        f"{len(probabilities)} tokens · mean probability {percent(mean)} · "
        f"lowest {percent(min(probabilities))}"
    )


def logprobs_plain(records: Sequence[Mapping[str, Any]]) -> str:
    """The picture as text (a terminal's view): the summary, then ``token (93.1%)`` runs.

    Tokens under 50% are marked, so the unsure places stand out without colour.
    """
    probabilities = [_probability(r) for r in records]
    parts = []
    for record, p in zip(records, probabilities, strict=True):
        token = str(record.get("token", ""))
        parts.append(f"{token}[{percent(p)}]" if p < 0.5 else token)
    summary = _summary(probabilities)
    if not records:
        return summary
    return f"{summary} · [p] marks tokens under 50%\n{''.join(parts)}"


def logprobs_html(records: Sequence[Mapping[str, Any]]) -> str:
    """The tokens as one HTML block: shaded spans with tooltips, and a one-line summary."""
    spans: list[str] = []
    probabilities: list[float] = []
    for record in records:
        token = str(record.get("token", ""))
        p = _probability(record)
        probabilities.append(p)
        spans.append(
            f'<span style="{_TOKEN.format(color=probability_color(p))}" '
            f'title="{_attribute(tooltip(record))}" '
            f'data-probability="{p:.4f}">{html.escape(token, quote=False)}</span>'
        )
    note = _summary(probabilities)
    if probabilities:
        note += " · hover a token for the alternatives"
    return (
        f'<div style="{_BOX}">{"".join(spans)}</div>'
        f'<div style="{_NOTE}">{html.escape(note, quote=False)}</div>'
    )
