"""The one short preview of a text: one line, at most ``limit`` characters.

Used wherever a prompt, an answer or a system prompt is shown in a table or a
message (sweep tables, ``%writer log``, ``%writer status``, ``%chat --undo``).
"""

from __future__ import annotations


def preview(text: str | None, limit: int) -> str:
    """``text`` with every run of whitespace (newlines too) as one space, cut to
    ``limit`` characters (``limit`` >= 1) with a closing ``…`` when longer; None is ``""``.
    """
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
