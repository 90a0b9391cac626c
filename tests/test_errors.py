"""errors.py: the one ``one_line`` and the one-line forms of the two error families."""

from __future__ import annotations

from writer_magics.errors import (
    REDACTED,
    AuthenticationError,
    HistoryFileError,
    Interrupted,
    PromptError,
    ToolSchemaError,
    WriterUsageError,
    one_line,
)


def test_one_line_of_any_failure() -> None:
    assert one_line(KeyboardInterrupt()) == "interrupted"  # what a sweep's table shows
    assert one_line(Interrupted("the answer so far is kept above.")) == (
        "interrupted: the answer so far is kept above."
    )
    assert one_line(ValueError("first\nsecond")) == "ValueError: first"
    assert one_line(RuntimeError("a\x1b\x07b")) == "RuntimeError: a b"
    assert one_line(RuntimeError("sent Bearer sk-live-123456789")) == (
        f"RuntimeError: sent Bearer {REDACTED}"
    )


def test_usage_errors_render_as_one_usage_error_line() -> None:
    for cls in (PromptError, ToolSchemaError, HistoryFileError):
        error = cls("name 'x' is not defined")
        assert isinstance(error, WriterUsageError)
        assert error._render_traceback_() == ["UsageError: name 'x' is not defined"]


def test_hint_inline_folds_the_hint_into_the_one_line() -> None:
    error = AuthenticationError("401 Unauthorized", status=401)
    assert len(error.lines()) == 2
    assert error.hint_inline() is error
    assert error.lines() == [
        "AuthenticationError: 401 Unauthorized Check WRITER_API_KEY "
        "(or the key in .env / %config WriterMagics.api_key)."
    ]
