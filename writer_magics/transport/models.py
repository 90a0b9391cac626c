"""The models a key can use: ``GET /v1/models``, decoded, and a once-per-kernel catalog.

Writer answers ``{"models": [{"id": "palmyra-x5", "name": "Palmyra X5"}, ...]}``
(``shared/writer-api.md`` §8). Tab completion must never wait on the network, so the
:class:`ModelCatalog` starts one background fetch at the first cell after
``%load_ext`` (on the magics' private loop thread) and completion only reads what is
already there; before it arrives, offline or on failure, the known list is used.
Removed models (:data:`REMOVED_MODELS`) are never offered.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from writer_magics.config import DEFAULT_MODEL, REMOVED_MODELS
from writer_magics.errors import MalformedEventError

if TYPE_CHECKING:
    from writer_magics.transport.client import WriterClient
    from writer_magics.transport.loop import LoopThread

MODELS_PATH = "/v1/models"
#: Seconds the background fetch may take (connect and read) before the known list stays.
FETCH_TIMEOUT = 5.0
#: ``WRITER_MAGICS_FETCH_MODELS=0`` turns the background fetch off (the default of
#: ``WriterMagics.fetch_models``): CI, offline work, tests that count requests.
FETCH_VARIABLE = "WRITER_MAGICS_FETCH_MODELS"


@dataclass(frozen=True)
class ModelInfo:
    """One entry of ``GET /v1/models``: the id to send and Writer's display name."""

    id: str
    name: str = ""


#: Models that answer chat and completions today (used before / without the fetch).
KNOWN_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(DEFAULT_MODEL, "Palmyra X5"),
    ModelInfo("palmyra-x4", "Palmyra X4"),
)


def fetch_default(environ: Mapping[str, str] | None = None) -> bool:
    """False when ``WRITER_MAGICS_FETCH_MODELS`` is ``0``/``false``/``no``/``off``."""
    value = (os.environ if environ is None else environ).get(FETCH_VARIABLE, "").strip()
    return value.lower() not in ("0", "false", "no", "off")


def is_removed(model: str) -> bool:
    return model.lower() in REMOVED_MODELS


def decode_models(body: Any) -> list[ModelInfo]:
    """Writer's ``{"models": [{"id", "name"}]}`` as ModelInfo, in the server's order.

    Raises MalformedEventError (one line) for any other shape.
    """
    items = body.get("models") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise MalformedEventError(f"GET {MODELS_PATH} did not return a model list")
    found: list[ModelInfo] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("id"), str) and item["id"]:
            name = item.get("name")
            found.append(ModelInfo(item["id"], name if isinstance(name, str) else ""))
    return found


async def fetch_models(client: WriterClient, timeout: float = FETCH_TIMEOUT) -> list[ModelInfo]:
    """Ask the server which models the key can use (one GET, no retries)."""
    return decode_models(await client.get_json(MODELS_PATH, timeout=timeout))


class ModelCatalog:
    """The kernel's model list: one background fetch at most, read without waiting.

    Lives on the WriterMagics instance. :meth:`start` is called before cells run until
    one fetch has been started (a missing key sends nothing, so it is tried again at
    the next cell); :meth:`ids` never blocks.
    """

    def __init__(self) -> None:
        self._future: Future[list[ModelInfo]] | None = None
        self._models: tuple[ModelInfo, ...] | None = None

    @property
    def started(self) -> bool:
        return self._future is not None

    def start(self, loop: LoopThread, client: WriterClient) -> None:
        """Start the one background fetch (the caller checked the settings)."""
        if self._future is None:
            self._future = asyncio.run_coroutine_threadsafe(fetch_models(client), loop.loop)

    def fetched(self) -> tuple[ModelInfo, ...] | None:
        """The server's list if it has arrived (never waits), else None."""
        future = self._future
        if self._models is not None or future is None or not future.done():
            return self._models
        if not future.cancelled() and future.exception() is None:
            self._models = tuple(future.result())
        return self._models

    def failure(self) -> BaseException | None:
        """Why the background fetch failed, once it has (never waits)."""
        future = self._future
        if future is None or not future.done() or future.cancelled():
            return None
        return future.exception()

    def remember(self, models: list[ModelInfo]) -> None:
        """A list fetched in the foreground (``%writer models``) replaces the old one."""
        self._models = tuple(models)

    def ids(self) -> list[str]:
        """Model ids to offer: the fetched list or the known one, never a removed model."""
        models = self.fetched() or KNOWN_MODELS
        return [m.id for m in models if not is_removed(m.id)]

    def cancel(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.cancel()
