"""Provenance: how each answer in a notebook was made, saved with the answer itself.

Every static finish (the Markdown an answer leaves in the notebook) carries output
metadata under ``metadata["writer_magics"]``::

    {"format": 1, "package": "writer-magics", "version": "0.1.0",
     "time": "2026-11-30T22:40:00+00:00",            # when the cell finished (UTC)
     "class_settings": {"file": "writer-magics-class.toml", "sha256": "...",
                        "pins": {"model": "palmyra-x5"}} | null,
     "answers": [                                      # one per request (a sweep has several)
       {"endpoint": "chat", "model": "palmyra-x5",
        "parameters": {"temperature": 0.2, "max_tokens": 40},   # body minus the prompt
        "system_prompt_sha256": "..." | null,          # chat: the system message's hash
        "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42} | null,
        "finish_reason": "stop", "status": "done",
        "request_hash": "<the cache key: sha256 of endpoint + body>",
        "source": "live" | "cached" | "replayed"}]}

Never the key (requests never hold it) nor the prompt text (the notebook has it).
``python -m writer_magics provenance NOTEBOOK.ipynb [--class FILE]`` reads it back.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TextIO

from writer_magics.answer.result import Result, usage_json

Source = Literal["live", "cached", "replayed"]
KEY = "writer_magics"
FORMAT = 1
#: Body fields that are the prompt or say how the answer travels, not how it was made.
_NOT_PARAMETERS = frozenset(
    {"model", "messages", "prompt", "stream", "stream_options", "tools", "response_format"}
)


def answer_record(result: Result, source: Source) -> dict[str, Any]:
    """One answer's provenance (see the module docstring for the fields)."""
    from writer_magics.transport.cache import request_key

    body = result.request
    parameters = {k: v for k, v in sorted(body.items()) if k not in _NOT_PARAMETERS}
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        parameters["tools"] = [_tool_name(t) for t in tools]
    if isinstance(body.get("response_format"), dict):
        parameters["response_format"] = body["response_format"].get("type")
    return {
        "endpoint": result.endpoint,
        "model": result.model,
        "parameters": parameters,
        "system_prompt_sha256": _system_hash(body),
        "usage": None if result.usage is None else usage_json(result.usage),
        "finish_reason": result.finish_reason,
        "status": result.status,
        "request_hash": request_key(result.endpoint, body),
        "source": source,
    }


def stamp(
    results: Sequence[Result],
    sources: Sequence[Source],
    *,
    class_settings: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The ``metadata["writer_magics"]`` of one static finish (results in panel order)."""
    from writer_magics import __version__

    when = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    return {
        "format": FORMAT,
        "package": "writer-magics",
        "version": __version__,
        "time": when,
        "class_settings": None if class_settings is None else dict(class_settings),
        "answers": [answer_record(r, s) for r, s in zip(results, sources, strict=False)],
    }


def system_prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _system_hash(body: Mapping[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        return None
    first = messages[0]
    content = first.get("content")
    return (
        system_prompt_hash(content)
        if first.get("role") == "system" and isinstance(content, str)
        else None
    )


def _tool_name(tool: Any) -> str:
    if not isinstance(tool, dict):
        return "?"
    function = tool.get("function")
    if isinstance(function, dict) and function.get("name"):
        return str(function["name"])
    return str(tool.get("type", "?"))


# --------------------------------------------------------------------------- reading


class Row:
    """One answer found in a notebook."""

    def __init__(
        self, cell: int, cell_id: str, stamp: Mapping[str, Any], answer: Mapping[str, Any]
    ) -> None:
        self.cell = cell
        self.cell_id = cell_id
        self.stamp = stamp
        self.answer = answer

    @property
    def tokens(self) -> int | None:
        usage = self.answer.get("usage")
        if not isinstance(usage, dict):
            return None
        total = usage.get("total_tokens")
        return total if isinstance(total, int) else None

    def params_text(self) -> str:
        parameters = self.answer.get("parameters")
        if not isinstance(parameters, dict) or not parameters:
            return "-"
        return " ".join(f"{k}={_compact(v)}" for k, v in parameters.items())


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def read_rows(notebook: Mapping[str, Any]) -> list[Row]:
    """Every answer with provenance, in cell order (cells numbered from 1)."""
    rows = []
    cells = notebook.get("cells")
    for number, cell in enumerate(cells if isinstance(cells, list) else [], start=1):
        if not isinstance(cell, dict):
            continue
        for output in cell.get("outputs") or []:
            meta = output.get("metadata") if isinstance(output, dict) else None
            found = meta.get(KEY) if isinstance(meta, dict) else None
            if not isinstance(found, dict):
                continue
            for answer in found.get("answers") or []:
                if isinstance(answer, dict):
                    rows.append(Row(number, str(cell.get("id", "")), found, answer))
    return rows


#: A magic line that asks the model (not --show, --dry-run and the other commands).
_ASKS = re.compile(r"^[ \t]*%%?(?:chat|complete)\b(.*)$", re.MULTILINE)
_NOT_ASKING = ("--show", "--sessions", "--dry-run", "--reset", "--undo", "--save", "--load")


def unstamped(notebook: Mapping[str, Any], rows: Sequence[Row]) -> list[int]:
    """Cells (numbered from 1) that ask the model and show output but carry no
    provenance: a stripped or hand-edited notebook, which no check can vouch for."""
    stamped = {row.cell for row in rows}
    found = []
    cells = notebook.get("cells")
    for number, cell in enumerate(cells if isinstance(cells, list) else [], start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code" or number in stamped:
            continue
        source = cell.get("source")
        text = "".join(source) if isinstance(source, list) else str(source or "")
        asks = any(
            not any(flag in m.group(1) for flag in _NOT_ASKING) for m in _ASKS.finditer(text)
        )
        if asks and cell.get("outputs"):
            found.append(number)
    return found


def differences(row: Row, pins: Mapping[str, Any]) -> list[str]:
    """How an answer differs from a class file's pins (``pins()`` of ClassSettings)."""
    found = []
    answer = row.answer
    parameters = answer.get("parameters") if isinstance(answer.get("parameters"), dict) else {}
    assert isinstance(parameters, dict)
    endpoint = answer.get("endpoint")
    for key, pinned in pins.items():
        if key == "model":
            actual: Any = answer.get("model")
        elif key == "system_prompt":
            if endpoint != "chat":
                continue
            if answer.get("system_prompt_sha256") != system_prompt_hash(pinned):
                found.append("system prompt differs")
            continue
        elif key == "random_seed" and endpoint != "completions":
            continue
        else:
            actual = parameters.get(key)
        if actual != pinned:
            found.append(
                f"{key}={_compact(actual) if actual is not None else 'unset'} "
                f"(class: {_compact(pinned)})"
            )
    return found


def report(rows: Iterable[Row], pins: Mapping[str, Any] | None, out: TextIO) -> int:
    """Print the table; returns how many answers differ from the pins."""
    table = [("cell", "model", "params", "tokens", "source", "check")]
    differing = 0
    count = 0
    for row in rows:
        count += 1
        problems = differences(row, pins) if pins is not None else []
        differing += bool(problems)
        check = "-" if pins is None else "DIFFERS: " + "; ".join(problems) if problems else "ok"
        tokens = row.tokens
        table.append(
            (
                str(row.cell),
                str(row.answer.get("model", "?")),
                row.params_text(),
                "-" if tokens is None else str(tokens),
                str(row.answer.get("source", "?")),
                check,
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for line in table:
        cells = [c.ljust(w) for c, w in zip(line[:5], widths, strict=True)]
        out.write("  ".join([*cells, line[5]]).rstrip() + "\n")
    return differing if count else 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """``provenance NOTEBOOK.ipynb [--class FILE]``; exit 0 fine, 1 an answer differs (or,
    with --class, a cell shows answers without provenance),
    2 bad input (a missing or unreadable notebook or class file)."""
    out = out or sys.stdout
    parser = argparse.ArgumentParser(
        prog="python -m writer_magics provenance",
        description="One row per answer in a notebook: cell, model, parameters, tokens, "
        "source. With --class, exits 1 if any answer differs from the class settings.",
    )
    parser.add_argument("notebook", help="an executed (saved) notebook")
    parser.add_argument("--class", dest="class_file", metavar="FILE", help="class settings TOML")
    args = parser.parse_args(argv)
    pins = None
    if args.class_file:
        from writer_magics.errors import ClassSettingsError
        from writer_magics.line.classroom import load

        try:
            pins = load(Path(args.class_file), args.class_file).pins()
        except ClassSettingsError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
    path = Path(args.notebook)
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        print(f"error: {path} does not exist", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {path} is not a readable notebook: {reason}", file=sys.stderr)
        return 2
    if not isinstance(notebook, dict):
        print(f"error: {path} is not a notebook", file=sys.stderr)
        return 2
    rows = read_rows(notebook)
    differing = report(rows, pins, out)
    missing = unstamped(notebook, rows)
    summary = f"{len(rows)} answers with provenance in {path.name}"
    if pins is not None and differing:
        summary += f"; {differing} differ from {args.class_file}"
    elif pins is not None and not missing:
        summary += "; all match"
    if missing:
        cells = ", ".join(str(n) for n in missing)
        summary += (
            f"; {len(missing)} cell(s) show answers without provenance ({cells}): "
            "not checked (stripped or edited)"
        )
    out.write(summary + "\n")
    return 1 if differing or (missing and pins is not None) else 0
