"""``--over ITEMS``: what a batch runs over, and the prompt of each item.

Pure functions (no network, no display). :func:`load_items` turns the ``--over``
value into a :class:`BatchInput`: a list or tuple (or any finite iterable that is not
a string or mapping), a pandas ``DataFrame`` (one item per row) or ``Series``, or a
path to a CSV (``.csv``, ``.tsv``) or JSON Lines (``.jsonl``, ``.ndjson``) file.
:func:`render_all` renders the cell template once per item with the ``{name}`` rule
of :mod:`prompt`, where ``{item}`` is the element and ``{row.column}`` /
``{row['column']}`` a field of a row (a DataFrame row, a CSV/JSONL record or a dict
element). Every problem is one ``UsageError`` line raised before anything is sent.
"""

from __future__ import annotations

import csv
import json
from collections import ChainMap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from writer_magics.errors import PromptError
from writer_magics.files import check_readable
from writer_magics.line.prompt import (
    _BRACED_RE,
    is_reference,
    render,
    resolve_reference,
)

__all__ = ["FILE_SUFFIXES", "BatchInput", "Row", "load_items", "render_all"]

FILE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
#: Reading a path stops here: a batch is bounded anyway (WriterMagics.max_batch).
_MAX_FILE_ROWS = 1_000_000


class Row(Mapping[str, Any]):
    """One record's fields, readable as ``row.column`` and ``row['column']``.

    A missing field raises ``AttributeError`` / ``KeyError`` naming the columns there are.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_fields", dict(fields))

    def __getattr__(self, name: str) -> Any:
        fields: dict[str, Any] = object.__getattribute__(self, "_fields")
        try:
            return fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Row({self._fields!r})"

    def __str__(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in self._fields.items())


@dataclass(frozen=True)
class BatchInput:
    """The items of a batch: ``items[i]`` is ``{item}``, ``fields[i]`` the row's columns.

    ``columns`` are the input columns of ``Batch.to_pandas()`` (``("item",)`` for a
    list of plain values); ``index`` the DataFrame/Series index labels when there is one.
    """

    source: str
    items: list[Any]
    fields: list[dict[str, Any]]
    columns: tuple[str, ...]
    index: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def head(self, count: int) -> BatchInput:
        """The first ``count`` items (rows, fields and index labels alike)."""
        index = None if self.index is None else self.index[:count]
        return replace(self, items=self.items[:count], fields=self.fields[:count], index=index)

    def namespace(self, i: int, user_ns: Mapping[str, Any]) -> Mapping[str, Any]:
        """``item`` and ``row`` of item ``i`` in front of the user's variables."""
        return ChainMap({"item": self.items[i], "row": Row(self.fields[i])}, user_ns)  # type: ignore[arg-type]


def _module_name(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def _is_frame(obj: Any) -> bool:
    return _module_name(obj) == "pandas" and type(obj).__name__ == "DataFrame"


def _is_series(obj: Any) -> bool:
    return _module_name(obj) == "pandas" and type(obj).__name__ == "Series"


def load_items(value: str, user_ns: Mapping[str, Any]) -> BatchInput:
    """The ``--over`` value as items: a variable (name, ``name.attr``, ``name['k']``) or a path."""
    text = value.strip()
    if not text:
        raise UsageError("--over expects a variable name or a .csv / .jsonl path")
    if text.lower().endswith(FILE_SUFFIXES) or not is_reference(text):
        if not text.lower().endswith(FILE_SUFFIXES):
            raise UsageError(
                f"--over {text}: not a variable name, and not a .csv, .tsv, .jsonl or .ndjson file"
            )
        return _from_file(Path(text).expanduser(), text)
    try:
        obj = resolve_reference(text, user_ns)
    except PromptError as exc:
        raise UsageError(f"--over {text}: {exc}") from None
    return from_object(obj, text)


def from_object(obj: Any, name: str) -> BatchInput:
    """Items of a DataFrame, Series, list, tuple or other finite iterable."""
    if _is_frame(obj):
        columns = tuple(str(c) for c in obj.columns)
        records = [
            dict(zip(columns, values, strict=True)) for values in obj.itertuples(index=False)
        ]
        return _checked(
            BatchInput(name, [Row(r) for r in records], records, columns, list(obj.index))
        )
    if _is_series(obj):
        column = str(obj.name) if obj.name is not None else "item"
        values = list(obj.tolist())
        return _checked(
            BatchInput(name, values, [{column: v} for v in values], (column,), list(obj.index))
        )
    if isinstance(obj, str | bytes | bytearray):
        raise UsageError(
            f"--over {name} is a {type(obj).__name__}, not a list of items; put it in a list, "
            "or name a .csv / .jsonl file"
        )
    if isinstance(obj, Mapping):
        raise UsageError(
            f"--over {name} is a dict; use list({name}.items()) or a list of dicts, one per item"
        )
    if not isinstance(obj, Iterable) or isinstance(obj, Iterator):
        what = (
            "an iterator (it can be read only once)"
            if isinstance(obj, Iterator)
            else type(obj).__name__
        )
        raise UsageError(
            f"--over {name} is {what}, not a list; give a list, tuple, DataFrame or Series"
        )
    items = list(obj)
    if items and all(isinstance(i, Mapping) for i in items):
        records = [{str(k): v for k, v in i.items()} for i in items]
        columns = tuple(dict.fromkeys(k for r in records for k in r))
        return _checked(BatchInput(name, [Row(r) for r in records], records, columns))
    return _checked(BatchInput(name, items, [{"item": i} for i in items], ("item",)))


def _checked(batch: BatchInput) -> BatchInput:
    if not batch.items:
        raise UsageError(f"--over {batch.source} is empty: nothing to send")
    return batch


def _from_file(path: Path, shown: str) -> BatchInput:
    try:
        check_readable(path)
        handle = path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise UsageError(f"--over {shown}: no such file") from None
    except OSError as exc:
        raise UsageError(f"--over {shown}: cannot read it ({exc.strerror or exc})") from None
    records: list[dict[str, Any]] = []
    try:
        with handle:
            if path.suffix.lower() in (".csv", ".tsv"):
                delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
                reader = csv.DictReader(handle, delimiter=delimiter)
                for number, record in enumerate(reader, start=2):
                    if None in record:
                        raise UsageError(
                            f"--over {shown}: line {number} has more fields than the header"
                        )
                    records.append({k: ("" if v is None else v) for k, v in record.items()})
                    if len(records) >= _MAX_FILE_ROWS:
                        break
                columns = tuple(reader.fieldnames or ())
            else:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        data = json.loads(line)
                    except ValueError as exc:
                        reason = getattr(exc, "msg", exc)
                        raise UsageError(
                            f"--over {shown}: line {number} is not JSON ({reason})"
                        ) from None
                    records.append(
                        {str(k): v for k, v in data.items()}
                        if isinstance(data, dict)
                        else {"item": data}
                    )
                    if len(records) >= _MAX_FILE_ROWS:
                        break
                columns = tuple(dict.fromkeys(k for r in records for k in r))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"--over {shown}: cannot read it ({exc})") from None
    items: list[Any] = [r["item"] if columns == ("item",) else Row(r) for r in records]
    return _checked(BatchInput(shown, items, records, columns))


def _row_columns(template: str) -> list[str]:
    """Columns named by ``{row.x}`` / ``{row['x']}`` references in a template."""
    found = []
    for match in _BRACED_RE.finditer(template):
        ref = match.group(1)
        if not is_reference(ref) or not ref.startswith("row"):
            continue
        rest = ref[3:]
        if rest.startswith("."):
            found.append(rest[1:].split(".")[0].split("[")[0])
        elif rest.startswith("['") or rest.startswith('["'):
            found.append(rest[2 : rest.index(rest[1], 2)])
    return found


def check_columns(batch: BatchInput, templates: Sequence[str], where: Sequence[str]) -> None:
    """A template naming a column the data lacks: one line naming the column."""
    for template, place in zip(templates, where, strict=True):
        for column in _row_columns(template):
            if column not in batch.columns:
                have = ", ".join(batch.columns) or "none"
                raise UsageError(
                    f"{place} names column {column!r}, which --over {batch.source} does not "
                    f"have (columns: {have})"
                )


def render_all(
    batch: BatchInput,
    template: str,
    user_ns: Mapping[str, Any],
    *,
    magic: str,
    max_bytes: int | None = None,
) -> list[str]:
    """The prompt of every item, in order; the first failure names the item.

    ``max_bytes``: each prompt's limit (``WriterMagics.max_prompt_bytes``; None: none).
    """
    check_columns(batch, [template], ["The prompt"])
    prompts = []
    for i in range(len(batch)):
        try:
            prompts.append(
                render(template, batch.namespace(i, user_ns), magic=magic, max_bytes=max_bytes)
            )
        except UsageError as exc:
            raise UsageError(f"item {_label(batch, i)} of --over {batch.source}: {exc}") from None
    return prompts


def _label(batch: BatchInput, i: int) -> str:
    return repr(batch.index[i]) if batch.index is not None else str(i)
