"""A Writer-compatible HTTP server for tests, demos and offline notebooks.

Serves ``POST /v1/chat``, ``POST /v1/completions`` and ``GET /v1/models`` in the
exact wire format of Writer's API (see ``shared/writer-api.md``), with
deterministic, readable replies, honest token log-probabilities, tool calls,
built-in tool data, JSON-schema output, validation errors, and injectable
latency, pacing and faults. Standard library only; imported by the CLI and the
tests, never by the magics at runtime.

Modules: ``tokens`` (tokeniser), ``generator`` (sampling and limits),
``templates``/``compose`` (what to say), ``schema_gen`` (JSON from a schema),
``tools`` (tool calls and built-in tools), ``protocol`` (validation and JSON
shapes), ``faults`` (test controls), ``service`` (request -> reply), ``log``
(request log), ``http`` (the server), ``cli`` (argparse entry point).

Defaults: ``max_tokens`` is 1024 for chat and 100 for completions (Writer's
documented default), counted in the server's own tokens (``tokens`` module);
``temperature`` 1, ``top_p`` 1, ``n`` 1 (max 5), ``best_of`` 1 (max 10).
A prompt longer than the model's context window (1M tokens for X5, 128K for X4, or
``context_limit`` / ``--context-limit`` for every model) gets a 400 ``BadRequest`` with
the key ``error.validation.context_length_exceeded``.
"""

from __future__ import annotations

from .http import ServerHandle, serve_forever, start_server
from .log import ReceivedRequest

__all__ = ["ReceivedRequest", "ServerHandle", "serve_forever", "start_server"]
