"""``python -m writer_magics serve``: argument parsing for the bundled server."""

from __future__ import annotations

import argparse

from .http import serve_forever


def build_parser() -> argparse.ArgumentParser:
    """The ``serve`` command's arguments."""
    parser = argparse.ArgumentParser(
        prog="writer-magics serve",
        description="Run a local Writer-compatible API server (POST /v1/chat, /v1/completions).",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port (default %(default)s; 0 = any)"
    )
    parser.add_argument(
        "--api-key", default=None, help="require 'Authorization: Bearer KEY' (default: accept any)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds before the first byte (default 0)"
    )
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=None,
        help="pace streamed tokens (default: as fast as possible)",
    )
    parser.add_argument(
        "--context-limit",
        type=int,
        default=None,
        help="context window of every model in tokens (default: per model, e.g. 1M for X5)",
    )
    parser.add_argument(
        "--rate-limit-fraction",
        type=float,
        default=0.0,
        help="answer this share of requests (0 to 1, every n-th) with 429 (default 0)",
    )
    parser.add_argument(
        "--rate-limit-retry-after",
        type=float,
        default=1.0,
        help="the Retry-After seconds of those 429s (default %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print one line per request")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and serve until Ctrl-C; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.latency < 0 or (args.tokens_per_second is not None and args.tokens_per_second <= 0):
        build_parser().error("--latency must be >= 0 and --tokens-per-second > 0")
    if not 0 <= args.rate_limit_fraction <= 1 or args.rate_limit_retry_after < 0:
        build_parser().error("--rate-limit-fraction must be 0 to 1, --rate-limit-retry-after >= 0")
    if args.context_limit is not None and args.context_limit < 1:
        build_parser().error("--context-limit must be at least 1")
    try:
        serve_forever(
            host=args.host,
            port=args.port,
            api_key=args.api_key,
            latency=args.latency,
            tokens_per_second=args.tokens_per_second,
            verbose=args.verbose,
            context_limit=args.context_limit,
            rate_limit_fraction=args.rate_limit_fraction,
            rate_limit_retry_after=args.rate_limit_retry_after,
        )
    except OSError as error:
        print(f"error: cannot serve on {args.host}:{args.port}: {error}")
        return 1
    return 0
