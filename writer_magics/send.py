"""Sending a cell's requests: the cache and replay first, the network for the rest,
then the prompt log. The magic hands over the requests and gets Outcomes back.

Order matters for the promises we make: a replay miss and a missing key are raised
before the live view opens or anything is sent; the cache is written and the log
appended only after the view has finished, so neither slows the stream, and neither
can fail a request (their errors become one warning line).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from writer_magics.answer.result import Result
from writer_magics.display import ViewKind, open_view
from writer_magics.errors import one_line
from writer_magics.line.options import Params
from writer_magics.send_execute import Interrupted, Outcomes, execute
from writer_magics.transport.events import Event, Request
from writer_magics.transport.loop import LoopThread

if TYPE_CHECKING:
    from writer_magics.answer.promptlog import PromptLog
    from writer_magics.transport.cache import ResponseCache
    from writer_magics.transport.client import WriterClient


@dataclass(frozen=True)
class SendSettings:
    """A snapshot of the configuration one cell runs with."""

    view: ViewKind = "auto"
    max_updates_per_second: float = 10.0
    max_concurrency: int = 4
    use_cache: bool = False
    cache_path: Path | None = None
    replay_path: Path | None = None
    log: bool = True
    log_path: Path | None = None
    #: Seconds between replayed text pieces, so a cached answer still reads as live.
    replay_pace: float = 0.002


class Sender:
    """Owns the kernel's cache and log files (opened lazily, one object per path)."""

    def __init__(self, loop: LoopThread, client: Callable[[], WriterClient]) -> None:
        self.loop = loop
        self._client = client
        self._caches: dict[tuple[Path, bool], ResponseCache] = {}
        self._logs: dict[Path, PromptLog] = {}

    # ------------------------------------------------------------------ stores

    def cache(self, settings: SendSettings) -> ResponseCache:
        """The replay file (read-only) in replay mode, else the cache file."""
        from writer_magics.transport.cache import ResponseCache, default_cache_path

        replaying = settings.replay_path is not None
        path = settings.replay_path or settings.cache_path or default_cache_path()
        store = self._caches.get((path, replaying))
        if store is None:
            store = self._caches[(path, replaying)] = ResponseCache(
                path, read_only=replaying, secrets=self._secrets
            )
        return store

    def _secrets(self) -> list[str | None]:
        """What the cache redacts: the key the client would send now."""
        return [self._client().settings.api_key]

    def prompt_log(self, settings: SendSettings) -> PromptLog | None:
        if not settings.log:
            return None
        from writer_magics.answer.promptlog import PromptLog, default_log_path

        path = settings.log_path or default_log_path()
        log = self._logs.get(path)
        if log is None:
            log = self._logs[path] = PromptLog(path)
        return log

    # ------------------------------------------------------------------ send

    def send(
        self,
        requests: Mapping[Params, Request],
        settings: SendSettings,
        *,
        header: str,
        titles: Sequence[str] | int,
        shell: Any = None,
    ) -> Outcomes[Params]:
        """Answer every request (from the cache where possible) into one live view."""
        from writer_magics.transport.cache import miss_error, recording, replay_opener

        replaying = settings.replay_path is not None
        store = self.cache(settings) if replaying or settings.use_cache else None
        if replaying and store is not None:
            store.ensure_readable()
        elif store is not None and not _readable(store):
            store = None  # told once in this cell; neither looked up nor written
        hits = {
            key: hit for key, req in requests.items() if (hit := _lookup(store, req, replaying))
        }
        notice = store.take_notice() if store is not None else None
        if notice is not None:
            print(f"Warning: {notice}; every other answer is still used.", file=sys.stderr)
        missing = [key for key in requests if key not in hits]
        if replaying and missing:
            request = requests[missing[0]]
            raise miss_error(request.endpoint, request.body)
        client = self._client()
        if missing:
            client.check()  # no key: one line, nothing sent, no view opened
        openers: dict[Params, Callable[[], AsyncIterable[Event]]] = {
            key: replay_opener(hit, pace=settings.replay_pace) for key, hit in hits.items()
        }
        sinks: dict[Params, list[Event]] = {}
        if store is not None and not replaying:
            for key in missing:
                sinks[key] = []
                openers[key] = recording(client.opener(requests[key]), sinks[key])
        if hits:
            header += " · cached" if len(hits) == len(requests) else f" · {len(hits)} cached"
        view = open_view(
            settings.view,
            header,
            panels=titles,
            max_updates_per_second=settings.max_updates_per_second,
            shell=shell,
        )
        try:
            outcomes = execute(
                requests,
                loop=self.loop,
                client=client,
                view=view,
                openers=openers,
                limit=settings.max_concurrency,
                cached=set(hits),
            )
        except Interrupted as interrupted:
            self._log_results(settings, interrupted.results, {}, client)
            raise
        if store is not None and not replaying:
            self._remember(store, requests, sinks, outcomes)
        self._log_results(settings, outcomes.results, outcomes.errors, client)
        return outcomes

    def _remember(
        self,
        store: ResponseCache,
        requests: Mapping[Params, Request],
        sinks: Mapping[Params, list[Event]],
        outcomes: Outcomes[Params],
    ) -> None:
        from writer_magics.transport.cache import CacheError

        for key, events in sinks.items():
            if key in outcomes.errors or outcomes.results[key].status != "done" or not events:
                continue  # an empty answer (a bare [DONE]) is not worth a cache entry
            request = requests[key]
            try:
                store.put(request.endpoint, request.body, events)
            except CacheError as exc:
                print(f"Warning: the answer was not cached: {exc.message}", file=sys.stderr)

    def _log_results(
        self,
        settings: SendSettings,
        results: Mapping[Any, Result],
        errors: Mapping[Any, BaseException],
        client: WriterClient,
    ) -> None:
        log = self.prompt_log(settings)
        if log is None:
            return
        for key, result in results.items():
            error = errors.get(key)
            log.append(
                result,
                error=None if error is None else one_line(error),
                api_key=client.settings.api_key,
            )


def _readable(store: ResponseCache) -> bool:
    """Load the cache; a file that cannot be read at all is one warning, not a failure."""
    from writer_magics.transport.cache import CacheError

    try:
        len(store)
    except CacheError as exc:
        print(f"Warning: the cache is not used: {exc.message}", file=sys.stderr)
        return False
    return True


def _lookup(store: ResponseCache | None, request: Request, replaying: bool) -> Any:
    """The cached answer for a request, or None; a broken cache file only warns."""
    if store is None:
        return None
    from writer_magics.transport.cache import CacheError

    try:
        return store.get(request.endpoint, request.body)
    except CacheError as exc:
        if replaying:
            raise
        print(f"Warning: the cache was not read: {exc.message}", file=sys.stderr)
        return None
