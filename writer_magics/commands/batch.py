"""The ``--over`` cell, from parsed options to the kept Batch (the magics call :func:`run_over`).

Everything the user can get wrong is checked before anything is sent or shown: the
items (undefined, empty, not iterable, an unreadable file), the template (a column the
data does not have), the checks, and the size (over ``WriterMagics.max_batch``
without ``--allow-large``). Chat batches are stateless: each item is one user message (after
the ``-s`` system prompt, if any), and the session history is neither sent nor changed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from writer_magics import request as build
from writer_magics.answer.budget import Gate
from writer_magics.answer.checks import parse_checks, references
from writer_magics.errors import PromptError, WriterError
from writer_magics.line.items import check_columns, load_items, render_all
from writer_magics.line.options import ChatOptions, CompleteOptions, Options
from writer_magics.line.prompt import render
from writer_magics.line.scan import refuse_secret
from writer_magics.request import Request

if TYPE_CHECKING:
    from writer_magics.answer.batch import Batch

__all__ = ["run_over"]


def run_over(magics: Any, opts: Options, template: str) -> None:
    """Run the cell template over ``opts.over``; keep the Batch in ``-o NAME``.

    ``magics`` is the ``WriterMagics`` instance (its settings, client, loop, sender);
    typed loosely because commands/ comes before magics in the stage order.
    """
    from writer_magics.display import auto_kind

    assert opts.over is not None
    user_ns = magics.user_ns
    kind = "%%chat" if isinstance(opts, ChatOptions) else "%%complete"
    data = load_items(opts.over, user_ns)
    checks = parse_checks(opts.expect, user_ns)
    check_columns(
        data,
        references(checks),
        [f"--expect {c.spec}" for c in checks if c.kind in ("contains", "not-contains", "equals")],
    )
    for template in references(checks):
        try:
            render(template, data.namespace(0, user_ns))
        except PromptError as exc:
            raise UsageError(f"--expect: {exc}") from None
        except UsageError:
            pass  # renders to empty text: a legitimate expectation
    if len(data) > magics.max_batch and not opts.allow_large:
        raise UsageError(
            f"--over {data.source} has {len(data):,} items, more than WriterMagics.max_batch "
            f"({magics.max_batch:,}); nothing was sent. Add --allow-large to send them all"
        )
    limit = None if opts.allow_large else magics.max_prompt_bytes
    prompts = render_all(data, template, user_ns, magic=kind, max_bytes=limit)
    for text in prompts:
        refuse_secret(text, magics._secrets(), kind, "prompt")
    if len(prompts) > 1 and len(set(prompts)) == 1:  # most likely a forgotten {item}
        print(
            f"Warning: every item of {data.source} gives the same prompt (does it use "
            "{item} or {row.column}?); each is sent as it is.",
            file=sys.stderr,
        )
    requests = _requests(opts, prompts, user_ns)
    if opts.dry_run:
        from writer_magics.display.finish import show_markdown

        client = magics.client()
        first = requests[0]
        key = client.settings.api_key
        show_markdown(magics.dry_run_markdown(client.url(first.endpoint), first.body, key))
        if len(requests) > 1:
            more = len(requests) - 1
            show_markdown(f"…and {more} more requests, one per item of `{data.source}`.")
        return
    from writer_magics.send import run_batch

    settings = magics._send_settings(use_cache=opts.cache)
    replaying = settings.replay_path is not None
    store = magics.sender.cache(settings) if replaying or settings.use_cache else None
    if replaying and store is not None:
        store.ensure_readable()
    view = auto_kind(magics.shell) if magics.view == "auto" else magics.view
    # The budget checks the whole plan first: only rows not answered from the cache or a
    # replay file count, and a batch over the budget is refused as a whole.
    gate = Gate(magics.ledger, magics.budget_limits(), partial=opts.partial)
    live = [store is None or store.get(r.endpoint, r.body) is None for r in requests]
    allowed = gate.admit(sum(live))
    if allowed < sum(live):  # --partial: the first rows the budget still allows
        keep = _rows_within(live, allowed)
        print(
            f"Warning: the budget allows {allowed} more request(s): sending the first {keep} "
            f"of {len(requests)} items of {data.source}; the rest are not sent.",
            file=sys.stderr,
        )
        requests, data = requests[:keep], data.head(keep)
    run = run_batch(
        requests,
        data,
        checks=checks,
        user_ns=user_ns,
        loop=magics.loop,
        client=magics.client,
        store=store,
        replaying=replaying,
        log=magics.sender.prompt_log(settings),
        view=view,
        limit=magics.max_concurrency,
        title=f"{kind} over {data.source} · {opts.params[0].model}",
        max_updates_per_second=min(2.0, magics.max_updates_per_second),
        class_settings=settings.class_settings,
    )
    batch = run.batch
    gate.spend(r for r in batch if r.status != "cached")
    if opts.out:
        user_ns[opts.out] = batch
    if len(batch):
        magics.last_result = batch[0]
    _raise_for(batch, run.interrupted, opts, settings.use_cache)


def _rows_within(live: list[bool], allowed: int) -> int:
    """How many leading rows hold at most ``allowed`` live requests (cached ones are free)."""
    seen = 0
    for row, sent in enumerate(live):
        if sent:
            if seen == allowed:
                return row
            seen += 1
    return len(live)


def _requests(opts: Options, prompts: list[str], user_ns: dict[str, Any]) -> list[Request]:
    params = opts.params[0]
    if isinstance(opts, CompleteOptions):
        return [build.completion(opts, params, p, stream=False) for p in prompts]
    assert isinstance(opts, ChatOptions)
    from writer_magics.tools import prepare

    extras = prepare.prepare(opts, user_ns).body_fields
    system = [{"role": "system", "content": params.system}] if params.system else []
    return [
        build.chat(
            opts,
            params,
            [*system, {"role": "user", "content": p}],
            stream=False,
            extras=extras,
        )
        for p in prompts
    ]


def _raise_for(batch: Batch, interrupted: bool, opts: Options, cached: bool) -> None:
    """The cell fails when it was interrupted, every row failed, or (``--strict``) a check did."""
    from writer_magics.errors import CheckFailedError, Interrupted

    counts = batch.counts()
    answered = counts["done"] + counts["cached"]
    kept = f" (in {opts.out})" if opts.out else ""
    if interrupted:
        rest = len(batch) - answered - counts["failed"]
        how = (
            f"run the cell again to send only the other {rest}"
            if cached
            else "add --cache to resume such runs without resending answered rows"
        )
        raise Interrupted(f"{answered} of {len(batch)} rows answered and kept{kept}; {how}.")
    if counts["failed"] == len(batch):
        first = batch.rows[0].error or "unknown error"
        raise WriterError(f"All {len(batch)} rows failed; the first: {first}")
    if opts.strict:
        failing = [row for row in batch.rows if not all(c.passed for c in row.checks)]
        if failing:
            check = next(c for c in failing[0].checks if not c.passed)
            raise CheckFailedError(
                f"--strict: {len(failing)} of {len(batch)} answers failed their checks; "
                f"first: {check.spec} ({check.reason})"
            )
