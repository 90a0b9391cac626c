"""What ``-o NAME`` keeps after a sweep: every combination's parameters and Result.

A :class:`Sweep` is a read-only sequence of ``(Params, Result)`` pairs in the order
the combinations were given, shown as a comparison table (parameters, a preview of
the text, tokens, latency, status) and convertible to records for pandas
(``pd.DataFrame(sweep.to_records())``). Failed combinations stay in it, with their
partial text and the reason, so the table says what went wrong where.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, overload

from writer_magics.answer.markdown import escape_html, escape_markdown
from writer_magics.answer.preview import preview
from writer_magics.answer.result import Outcomes, Result
from writer_magics.errors import one_line

if TYPE_CHECKING:  # options imports IPython: types only
    from writer_magics.line.options import Params

#: Parameter fields in table order (the fields of ``options.Params``).
PARAM_FIELDS = ("model", "temperature", "top_p", "max_tokens", "system")
PREVIEW_CHARS = 60


class Sweep(Sequence[tuple["Params", Result]]):
    """The Results of a sweep with their parameters; index it like a list of pairs."""

    def __init__(
        self,
        entries: Sequence[tuple[Params, Result]],
        errors: dict[Params, str] | None = None,
    ) -> None:
        self._entries = list(entries)
        #: The one-line reason of each failed combination.
        self.errors: dict[Params, str] = dict(errors or {})

    @classmethod
    def from_outcomes(cls, outcomes: Outcomes[Params]) -> Sweep:
        """From ``execute()``'s outcomes (results in combination order, errors by key)."""
        return cls(
            list(outcomes.results.items()),
            {key: one_line(exc) for key, exc in outcomes.errors.items()},
        )

    # -- the sequence

    @overload
    def __getitem__(self, index: int) -> tuple[Params, Result]: ...

    @overload
    def __getitem__(self, index: slice) -> Sweep: ...

    def __getitem__(self, index: int | slice) -> tuple[Params, Result] | Sweep:
        if isinstance(index, slice):
            entries = self._entries[index]
            kept = {p for p, _ in entries}
            return Sweep(entries, {p: e for p, e in self.errors.items() if p in kept})
        return self._entries[index]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[Params, Result]]:
        return iter(self._entries)

    @property
    def params(self) -> list[Params]:
        return [p for p, _ in self._entries]

    @property
    def results(self) -> list[Result]:
        return [r for _, r in self._entries]

    @property
    def texts(self) -> list[str]:
        return [r.text for _, r in self._entries]

    # -- records and tables

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per combination (parameters, text, tokens, seconds, status, error)."""
        records = []
        for params, result in self._entries:
            usage = result.usage
            record: dict[str, Any] = {name: getattr(params, name) for name in PARAM_FIELDS}
            record.update(
                text=result.text,
                finish_reason=result.finish_reason,
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
                total_tokens=usage.total_tokens if usage else None,
                first_token_s=result.timing.first_token,
                total_s=result.timing.total,
                status=result.status,
                error=self.errors.get(params),
            )
            for check in result.checks:  # --expect: one column per check
                record[check.spec] = check.passed
            records.append(record)
        return records

    def _columns(self) -> list[str]:
        """The model, and every other parameter that was given to at least one request."""
        return [
            name
            for name in PARAM_FIELDS
            if name == "model" or any(getattr(p, name) is not None for p in self.params)
        ]

    def _table(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of plain strings shared by the text, Markdown and HTML tables."""
        columns = self._columns()
        header = [*columns, "text", "tokens", "first token", "total", "status"]
        rows = []
        for params, result in self._entries:
            usage = result.usage
            tokens = usage.completion_tokens if usage else None
            error = self.errors.get(params)
            rows.append(
                [
                    *(_cell(getattr(params, name)) for name in columns),
                    preview(result.text, PREVIEW_CHARS),
                    "" if tokens is None else str(tokens),
                    _seconds(result.timing.first_token),
                    _seconds(result.timing.total),
                    f"{result.status}: {preview(error, 40)}" if error else result.status,
                ]
            )
        return header, rows

    def __repr__(self) -> str:
        header, rows = self._table()
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return f"<Sweep of {len(self)}>\n" + "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text("<Sweep ...>" if cycle else repr(self))

    def _repr_markdown_(self) -> str:
        header, rows = self._table()

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        table = "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])
        return escape_markdown(table)

    def _repr_html_(self) -> str:
        header, rows = self._table()
        head = "".join(f"<th>{escape_html(c)}</th>" for c in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape_html(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return preview(str(value), 30)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} s"
