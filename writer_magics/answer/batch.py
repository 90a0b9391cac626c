"""What ``-o NAME`` keeps after ``--over``: one :class:`Result` per item, in input order.

A :class:`Batch` is a read-only sequence of Results (``len``, iteration, indexing),
with the input fields of each row, ``.failed`` (the rows that did not get an answer,
as a Batch), ``.to_records()`` and ``.to_pandas()`` (input columns plus ``answer``,
``status``, ``error``, token counts, ``latency_s`` and one column per ``--expect``
check). Rows without an answer when the batch was interrupted have status
``interrupted``, empty text and the error ``not answered (interrupted)``. To keep a
large batch small, rows are stored as columns (:class:`RowStore`): a row keeps its
prompt, text, usage and timing and builds its Result (with the request body, without
``raw``) when asked. Its repr is the summary table the notebook keeps: counts, the
pass rate, and the first rows.
"""

from __future__ import annotations

import html
import importlib
import math
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from writer_magics.answer.checks import CheckResult, rate_line
from writer_magics.answer.result import Choice, Result, Status, Timing
from writer_magics.request import JSON, Endpoint
from writer_magics.transport.events import Usage

__all__ = ["Batch", "BatchRow", "RequestShape", "RowStore"]

#: The error of a row that was never sent (the batch was interrupted first).
NOT_SENT = "not answered (interrupted)"
#: Rows shown in the summary table.
SUMMARY_ROWS = 5
_PREVIEW = 50
OUTPUT_COLUMNS = (
    "answer",
    "status",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "latency_s",
)


@dataclass(frozen=True)
class RequestShape:
    """What every request of a batch shares; a row adds only its prompt."""

    endpoint: Endpoint
    model: str
    body: JSON

    def body_for(self, prompt: str) -> JSON:
        """The body sent for ``prompt`` (rebuilt when asked, not kept per row)."""
        body = dict(self.body)
        if self.endpoint == "chat":
            messages = list(body.get("messages") or [])[:-1]
            body["messages"] = [*messages, {"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        return body


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One item, compactly: its input, prompt, answer, status, one-line error and checks.

    :attr:`result` builds the row's :class:`Result` when asked (a batch of thousands
    keeps a few small fields a row, not a Result and its request body each).
    """

    shape: RequestShape
    item: Any
    record: dict[str, Any] | None
    prompt: str
    text: str = ""
    status: Status = "interrupted"
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    first_token: float | None = None
    total: float | None = None
    error: str | None = None
    checks: tuple[CheckResult, ...] = ()

    @property
    def fields(self) -> dict[str, Any]:
        """The input columns of the row (``{"item": item}`` for a list of plain values)."""
        return dict(self.record) if self.record is not None else {"item": self.item}

    @property
    def usage(self) -> Usage | None:
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return Usage(self.prompt_tokens, self.completion_tokens, self.total_tokens)

    @property
    def result(self) -> Result:
        return Result(
            endpoint=self.shape.endpoint,
            model=self.shape.model,
            choices=(Choice(0, self.text, self.finish_reason),),
            request=self.shape.body_for(self.prompt),
            usage=self.usage,
            timing=Timing(self.first_token, self.total),
            status=self.status,
            checks=self.checks,
        )


class RowStore:
    """The rows of one batch as columns: text, prompt and a few machine words a row.

    Written by the runner as rows finish (:meth:`set`), read through :meth:`row`.
    Numbers live in ``array`` columns (-1 / NaN for "none"), so a thousand rows add
    little beyond the answers' own text.
    """

    def __init__(
        self,
        shape: RequestShape,
        items: Sequence[Any],
        records: Sequence[dict[str, Any]] | None,
        prompts: Sequence[str],
    ) -> None:
        n = len(items)
        self.shape = shape
        self.items = items
        self.records = records
        self.prompts = list(prompts)
        self.texts: list[str] = [""] * n
        self.statuses: list[Status] = ["interrupted"] * n
        self.finish: list[str | None] = [None] * n
        self.errors: list[str | None] = [NOT_SENT] * n
        self.checks: list[tuple[CheckResult, ...]] = [()] * n
        self.tokens = array("q", [-1]) * (3 * n)
        self.times = array("d", [math.nan]) * (2 * n)

    def __len__(self) -> int:
        return len(self.items)

    def set(
        self,
        i: int,
        result: Result,
        error: str | None,
        checks: tuple[CheckResult, ...] = (),
    ) -> None:
        """Row ``i`` finished (or failed) with ``result``."""
        self.texts[i] = result.text
        self.statuses[i] = result.status
        reason = result.finish_reason
        self.finish[i] = None if reason is None else sys.intern(reason)
        self.errors[i] = error
        self.checks[i] = checks
        usage = result.usage
        if usage is not None:
            for k, value in enumerate(
                (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)
            ):
                self.tokens[3 * i + k] = -1 if value is None else value
        for k, seconds in enumerate((result.timing.first_token, result.timing.total)):
            self.times[2 * i + k] = math.nan if seconds is None else seconds

    def row(self, i: int) -> BatchRow:
        def count(k: int) -> int | None:
            value = self.tokens[3 * i + k]
            return None if value < 0 else value

        def seconds(k: int) -> float | None:
            value = self.times[2 * i + k]
            return None if math.isnan(value) else value

        return BatchRow(
            self.shape,
            self.items[i],
            None if self.records is None else self.records[i],
            self.prompts[i],
            text=self.texts[i],
            status=self.statuses[i],
            finish_reason=self.finish[i],
            prompt_tokens=count(0),
            completion_tokens=count(1),
            total_tokens=count(2),
            first_token=seconds(0),
            total=seconds(1),
            error=self.errors[i],
            checks=self.checks[i],
        )


class Batch(Sequence[Result]):
    """The Results of a batch in input order; ``batch[i]`` is item ``i``'s Result."""

    #: The input's index labels (DataFrame / Series), or None for positions.
    labels: list[Any] | None

    def __init__(
        self,
        store: RowStore,
        positions: Sequence[int] | None = None,
        *,
        columns: Sequence[str] = (),
        index: Sequence[Any] | None = None,
        checks: Sequence[str] = (),
        elapsed: float | None = None,
        rate_limited: int = 0,
    ) -> None:
        self._store = store
        self._positions = list(range(len(store))) if positions is None else list(positions)
        self.columns = tuple(columns)
        self.labels = None if index is None else list(index)
        #: The ``--expect`` specs, in order (the check column names).
        self.checks = tuple(checks)
        self.elapsed = elapsed
        #: 429 answers the batch waited out and resent (it slowed down for them).
        self.rate_limited = rate_limited

    @property
    def rows(self) -> list[BatchRow]:
        """Every row as a :class:`BatchRow` (input fields, text, status, error, checks)."""
        return [self._store.row(i) for i in self._positions]

    # -- the sequence

    @overload
    def __getitem__(self, index: int) -> Result: ...

    @overload
    def __getitem__(self, index: slice) -> Batch: ...

    def __getitem__(self, index: int | slice) -> Result | Batch:
        if isinstance(index, slice):
            return self._subset(list(range(len(self)))[index])
        return self._store.row(self._positions[index]).result

    def __len__(self) -> int:
        return len(self._positions)

    def __iter__(self) -> Iterator[Result]:
        return (self._store.row(i).result for i in self._positions)

    def _subset(self, chosen: list[int]) -> Batch:
        """The rows at ``chosen`` (positions within this batch), sharing the store."""
        return Batch(
            self._store,
            [self._positions[k] for k in chosen],
            columns=self.columns,
            index=None if self.labels is None else [self.labels[k] for k in chosen],
            checks=self.checks,
        )

    @property
    def texts(self) -> list[str]:
        return [self._store.texts[i] for i in self._positions]

    @property
    def statuses(self) -> list[Status]:
        return [self._store.statuses[i] for i in self._positions]

    @property
    def failed(self) -> Batch:
        """The rows without an answer (failed, or interrupted before an answer), as a Batch."""
        return self._subset(
            [k for k, status in enumerate(self.statuses) if status in ("failed", "interrupted")]
        )

    @property
    def errors(self) -> list[str | None]:
        return [self._store.errors[i] for i in self._positions]

    def counts(self) -> dict[str, int]:
        """Rows by status: done, cached, failed, interrupted."""
        found = {"done": 0, "cached": 0, "failed": 0, "interrupted": 0}
        for status in self.statuses:
            found[status] = found.get(status, 0) + 1
        return found

    @property
    def pass_rate(self) -> float | None:
        """The share of answered rows whose checks all passed (None without checks)."""
        checked = [c for i in self._positions if (c := self._store.checks[i])]
        if not checked:
            return None
        return sum(all(c.passed for c in checks) for checks in checked) / len(checked)

    # -- records and tables

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per row: input columns, then answer, status, error, tokens,
        latency (seconds) and one bool per check (None where the row was not checked)."""
        records = []
        for row in self.rows:
            fields = row.fields
            record: dict[str, Any] = {}
            for column in self.columns:
                name = column if column not in OUTPUT_COLUMNS else f"{column}_input"
                record[name] = fields.get(column)
            record.update(
                answer=row.text,
                status=row.status,
                error=row.error,
                prompt_tokens=row.prompt_tokens,
                completion_tokens=row.completion_tokens,
                total_tokens=row.total_tokens,
                latency_s=row.total,
            )
            by_spec = {c.spec: c.passed for c in row.checks}
            for spec in self.checks:
                record[spec] = by_spec.get(spec)
            records.append(record)
        return records

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` of :meth:`to_records` (the input's index when it had one).

        Raises ``ImportError`` with an install hint when pandas is missing.
        """
        try:
            pandas = importlib.import_module("pandas")
        except ImportError:
            raise ImportError("Batch.to_pandas() needs pandas: pip install pandas") from None
        return pandas.DataFrame(self.to_records(), index=self.labels)

    def summary_line(self) -> str:
        """``1000 rows · 990 done · 4 cached · 6 failed · checks passed … · 61.2 s``."""
        counts = self.counts()
        parts = [f"{len(self)} rows"]
        parts += [f"{n} {name}" for name, n in counts.items() if n]
        rate = rate_line([self._store.checks[i] for i in self._positions])
        if rate:
            parts.append(rate)
        tokens = sum(max(0, self._store.tokens[3 * i + 2]) for i in self._positions)
        if tokens:
            parts.append(f"{tokens:,} tokens")
        if self.elapsed is not None:
            parts.append(f"{self.elapsed:.1f} s")
        if self.rate_limited:
            parts.append(f"{self.rate_limited} rate-limited requests resent")
        return " · ".join(parts)

    def _table(self, limit: int = SUMMARY_ROWS) -> tuple[list[str], list[list[str]]]:
        shown = [c for c in self.columns][:3]
        header = ["#", *shown, "answer", "status"]
        if self.checks:
            header.append("checks")
        rows = []
        for i, row in enumerate(self._store.row(p) for p in self._positions[:limit]):
            label = str(self.labels[i]) if self.labels is not None else str(i)
            fields = row.fields
            cells = [label, *(_preview(fields.get(c), 30) for c in shown)]
            cells.append(_preview(row.text))
            cells.append(f"{row.status}: {_preview(row.error, 40)}" if row.error else row.status)
            if self.checks:
                cells.append(" ".join("✓" if c.passed else "✗" for c in row.checks))
            rows.append(cells)
        return header, rows

    def __repr__(self) -> str:
        header, rows = self._table()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        more = f"\n… {len(self) - len(rows)} more rows" if len(self) > len(rows) else ""
        return f"<Batch: {self.summary_line()}>\n" + "\n".join(lines) + more

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("<Batch ...>" if cycle else repr(self))

    def _repr_markdown_(self) -> str:
        header, rows = self._table()

        def line(cells: list[str]) -> str:
            escaped = [html.escape(c, quote=False).replace("|", "\\|") for c in cells]
            return "| " + " | ".join(e.replace("$", "\\$") for e in escaped) + " |"

        more = f"\n\n… {len(self) - len(rows)} more rows" if len(self) > len(rows) else ""
        return (
            f"**Batch**: {self.summary_line()}\n\n"
            + "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])
            + more
        )


def _preview(value: Any, limit: int = _PREVIEW) -> str:
    flat = " ".join(str("" if value is None else value).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
