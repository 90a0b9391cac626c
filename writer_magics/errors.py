"""Every exception the package raises, each as one readable sentence.

Two families. Bad input is an IPython ``UsageError`` raised before anything is sent
(IPython prints ``UsageError: <message>``); the subclasses here carry the one
``_render_traceback_`` that keeps that one-line form (IPython shortens only the exact
``UsageError`` class)::

    UsageError (IPython)
    └── WriterUsageError             one line "UsageError: ...", no traceback
        ├── PromptError              a $name / {expr} in the prompt or a value that
        │                            cannot be resolved
        ├── ToolSchemaError          a --tools function that cannot be described to
        │                            the model
        └── HistoryFileError         a history file that cannot be read, written or
                                     understood (state left unchanged)

Everything else happens on the way to Writer and back, or while keeping the answer::

    WriterError                      one or two lines via _render_traceback_, key redacted
    ├── ConfigurationError           no API key, a key that cannot go in a header,
    │                                http:// to a non-loopback host, a malformed base URL,
    │                                an unreadable .env
    ├── APIStatusError               the server answered with an HTTP error status
    │   ├── RedirectError            3xx: where it pointed; never followed with the key
    │   ├── BadRequestError          400/413/422: Writer's own errors[].description
    │   │   └── ContextLengthError   the conversation is too long for the model (%%chat)
    │   ├── AuthenticationError      401/403: the key is wrong or lacks access
    │   ├── NotFoundError            404: unknown model (suggests palmyra-x5) or URL
    │   ├── RateLimitError           429 after the retries ran out
    │   └── ServerError              408/409/5xx after the retries ran out
    ├── RequestTimeoutError          no new event within read_timeout / --timeout, or
    │                                the cell's requests past total_timeout
    ├── APIConnectionError           could not connect, or the connection broke
    ├── StreamError                  the stream went wrong after it started
    │   ├── StreamInterrupted        the connection dropped or ended before a finish
    │   ├── MalformedEventError      an event that is not the JSON Writer sends, or a
    │   │                            body that cannot be decoded (a false gzip claim)
    │   └── ServerSentError          an error event inside the stream
    ├── ReplayMissError              replay mode has no recorded answer for a request
    ├── CacheError                   the response cache cannot be read or written, or an
    │                                import file is not a cache
    ├── PromptLogError               %writer log could not read the prompt log
    ├── StructuredOutputError        --schema: the answer is not valid JSON or does not
    │                                match the schema (``raw`` keeps the answer)
    ├── ToolRoundsExceeded           the model kept asking for tools past the round limit
    │                                (``messages``, ``result``, ``results`` kept)
    ├── CheckFailedError             --strict: an answer failed an --expect check
    ├── Interrupted                  Ctrl-C / the stop button while streaming
    │                                (``results`` holds the partial answers)
    ├── BudgetExceeded               the kernel's request/token budget is used up
    └── ClassSettingsError           the class settings file is malformed or has a bad key

Two plain errors of the teaching commands, read by their callers (never shown raw)::

    ValueError
    └── BudgetSettingError           WRITER_MAGICS_BUDGET / a budget value that is not
                                     ``requests=N,tokens=N`` (becomes a ConfigurationError)
    Exception
    └── RecordError                  ``python -m writer_magics record``: why no recording
                                     was written (printed as ``error: ...``)

The cell fails (so "Run All" stops) but shows no traceback: IPython calls
``_render_traceback_`` and prints what it returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from IPython.core.error import UsageError

#: The type of the answers an exception carries (``answer.result.Result``, a later
#: stage that this module must not import).
R = TypeVar("R")

#: A fixed placeholder so that redacted output is stable and obvious.
REDACTED = "[REDACTED]"
_BEARER = re.compile(r"(Bearer\s+)[^\s'\"]+", re.IGNORECASE)
#: A key cut short (a message truncated after 80 characters) is still redacted once this
#: much of its beginning shows.
_PREFIX = 8
#: Control characters (C0, DEL, C1) and the line/paragraph separators: a message from a
#: server must not add lines or move the terminal's cursor.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
#: What a terminal would act on in text it prints: C0 controls but tab and newline
#: (escape sequences start with ESC), a carriage return not ending a line, DEL, C1, and
#: the bidirectional overrides and isolates that reorder what is shown ("Trojan Source").
_TERMINAL_UNSAFE = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]|\r(?!\n)"
)


def redact(text: str, secrets: Iterable[str | None] = (), *, bearer: bool = True) -> str:
    """Remove every known secret and any bearer token from text meant for people.

    ``secrets`` are the keys in play (``None`` and strings shorter than 4 are ignored).
    A secret is replaced by ``[REDACTED]`` wherever it occurs whole, JSON-escaped, or
    cut short (its first 8 characters and as many more as match); any
    ``Bearer <token>`` loses its token unless ``bearer`` is false (an answer shown on
    screen keeps a tutorial's ``Bearer <your token>``; only the keys in play go). The
    one redaction step: everything that reaches a screen, a file or an exception goes
    through here.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = _redact_one(text, str(secret))
    return _BEARER.sub(lambda m: m.group(1) + REDACTED, text) if bearer else text


def redact_answer(text: str, secrets: Iterable[str | None]) -> str:
    """An answer (or what quotes one) as shown on screen: :func:`redact` without its
    bearer rule, so a tutorial's ``Bearer <your token>`` stays; the keys in play go."""
    return redact(text, secrets, bearer=False)


def _redact_one(text: str, secret: str) -> str:
    text = text.replace(secret, REDACTED)
    escaped = secret.replace("\\", "\\\\").replace('"', '\\"')
    if escaped != secret:
        text = text.replace(escaped, REDACTED)
    if len(secret) <= _PREFIX:
        return text
    head = secret[:_PREFIX]
    start = text.find(head)
    while start >= 0:
        end = start + _PREFIX
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1
        text = text[:start] + REDACTED + text[end:]
        start = text.find(head, start + len(REDACTED))
    return text


def printable(text: str) -> str:
    """Text on one line: every run of control characters (newlines, escapes) is one space."""
    return _CONTROL.sub(" ", text)


def terminal_text(text: str) -> str:
    """Text safe to print on a terminal, lines kept: each control character a terminal
    would act on (an escape sequence's ESC, BEL, a lone carriage return, DEL, C1, a
    bidirectional override) is shown as its Unicode control picture (``\x1b`` -> ``␛``,
    ``\x07`` -> ``␇``) or ``\ufffd`` (C1, bidi), so an answer cannot retitle, clear,
    rewrite or reorder the user's screen.
    """
    return _TERMINAL_UNSAFE.sub(_control_picture, text)


def _control_picture(match: re.Match[str]) -> str:
    code = ord(match.group()[0])
    if code < 0x20:
        return chr(0x2400 + code)
    return "\u2421" if code == 0x7F else "\ufffd"


def one_line(error: BaseException) -> str:
    """Any failure as the one line a status bar, a table or a log shows.

    A :class:`WriterError` gives its message (already redacted, without the class name
    or hint), an :class:`Interrupted` prefixed ``interrupted:`` (its message says what
    was kept, not that it was interrupted); a ``KeyboardInterrupt`` gives
    ``interrupted``; anything else gives ``Name: first line`` with control characters
    flattened and bearer tokens redacted.
    """
    if isinstance(error, Interrupted):
        return f"interrupted: {error.message}"
    if isinstance(error, WriterError):
        return error.message
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    text = printable(f"{type(error).__name__}: {error}".splitlines()[0])
    return redact(text)


class WriterUsageError(UsageError):
    """Bad input found before anything is sent: printed as one ``UsageError:`` line."""

    def _render_traceback_(self) -> list[str]:
        # IPython prints the short one-line form only for exactly UsageError; a subclass
        # would get a full traceback without this hook.
        return [f"UsageError: {self}"]


class PromptError(WriterUsageError):
    """A prompt (or option value) refers to a variable that cannot be resolved."""


class ToolSchemaError(WriterUsageError):
    """A function that cannot be described to the model; raised before anything is sent."""


class HistoryFileError(WriterUsageError):
    """A history file cannot be read, written or understood; state is left unchanged."""


class WriterError(Exception):
    """Base class: a runtime failure explained in one sentence."""

    #: What the user can do about it, printed on a second line when set.
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(printable(redact(message)))
        if hint is not None:
            self.hint = printable(redact(hint))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def redacted(self, secrets: Iterable[str | None]) -> WriterError:
        """Scrub the key from the message in place (the client knows the key)."""
        secrets = list(secrets)
        self.args = (redact(self.message, secrets), *self.args[1:])
        if self.hint:
            self.hint = redact(self.hint, secrets)
        return self

    def hint_inline(self) -> WriterError:
        """The error with its hint folded into its message, so it prints as one line
        (``%writer models``); returns ``self``."""
        if self.hint:
            self.args = (f"{self.message} {self.hint}", *self.args[1:])
            self.hint = None
        return self

    def lines(self) -> list[str]:
        lines = [f"{type(self).__name__}: {self.message}"]
        if self.hint:
            lines.append(self.hint)
        return lines

    def _render_traceback_(self) -> list[str]:
        """IPython prints these lines instead of a traceback."""
        return self.lines()


class ConfigurationError(WriterError):
    """The client cannot be set up: no key, an unsafe URL."""


class APIStatusError(WriterError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class RedirectError(APIStatusError):
    """3xx: the server points elsewhere; the request is not repeated there with the key."""


class BadRequestError(APIStatusError):
    pass


class ContextLengthError(BadRequestError):
    """The request (history + prompt) is longer than the model accepts; the message says
    what the session holds and how to trim it (``--undo``, ``--history N``, ``--new``)."""


class AuthenticationError(APIStatusError):
    hint = "Check WRITER_API_KEY (or the key in .env / %config WriterMagics.api_key)."


class NotFoundError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    hint = "Wait a moment and run the cell again, or raise WriterMagics.max_retries."
    #: Seconds the server asked to wait (Retry-After), when it said.
    retry_after: float | None = None


class ServerError(APIStatusError):
    pass


class RequestTimeoutError(WriterError):
    """No answer (or no next event) within the timeout."""


class APIConnectionError(WriterError):
    """The server could not be reached."""


class StreamError(WriterError):
    """The stream broke after it started; partial text is kept, nothing is retried."""


class StreamInterrupted(StreamError):
    pass


class MalformedEventError(StreamError):
    pass


class ServerSentError(StreamError):
    pass


class ReplayMissError(WriterError):
    """Replay mode: no recorded answer for this request."""


class CacheError(WriterError):
    """The cache file cannot be read or written, or an import file is not a cache."""


class PromptLogError(WriterError):
    """``%writer log`` could not read the log (appends never raise)."""


class StructuredOutputError(WriterError):
    """The answer is not valid JSON or does not match the schema; ``raw`` is the answer."""

    def __init__(self, message: str, *, raw: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.raw = raw


class ToolRoundsExceeded(WriterError, Generic[R]):
    """The model kept asking for tools past the round limit.

    ``messages`` is the conversation so far (wire messages), ``result`` the last
    answer (a ``Result``), ``results`` every round's answer.
    """

    hint = "Raise the round limit, or ask for an answer that needs fewer tool calls."

    def __init__(
        self,
        message: str,
        *,
        messages: list[Any],
        result: R,
        results: list[R] | None = None,
    ) -> None:
        super().__init__(message)
        self.messages = messages
        self.result = result
        self.results = results or [result]


class CheckFailedError(WriterError):
    """``--strict``: an answer failed one of its ``--expect`` checks (the answer is kept)."""


class Interrupted(WriterError, Generic[R]):
    """Ctrl-C or the kernel's stop button while the answer was streaming.

    The message says what was kept (``the answer so far is kept above.``): the class
    name already says it was interrupted (``Interrupted: the answer so far ...``).

    ``results`` holds the partial answers (``Result``s, already on screen) by request
    key, so callers can log them.
    """

    results: dict[Any, R]

    def __init__(self, message: str, results: dict[Any, R] | None = None) -> None:
        super().__init__(message)
        self.results = results or {}


class BudgetExceeded(WriterError):
    """A request (or a whole sweep) would go over the kernel's budget; nothing was sent.
    (One line: answers from the cache or a replay file do not count, as the README says.)"""


class ClassSettingsError(WriterError):
    """The class settings file (writer-magics-class.toml) is unreadable or has a bad key."""


class BudgetSettingError(ValueError):
    """A budget setting that is not ``requests=N,tokens=N`` with whole numbers >= 0."""


class RecordError(Exception):
    """Why a recording was not written, in one line."""
