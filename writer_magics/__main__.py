"""``python -m writer_magics serve|demo``: the bundled server and the offline demo."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: python -m writer_magics {serve,demo} [options]\n\n"
            "  serve   run the bundled Writer-compatible server (no API key needed)\n"
            "  demo    run the quickstart notebook against it and show the answers"
        )
        return 0
    command, rest = args[0], args[1:]
    if command == "serve":
        from writer_magics.server.cli import main as serve

        return serve(rest)
    if command == "demo":
        from writer_magics.demo.run import main as demo

        return demo(rest)
    print(f"unknown command {command!r}: use serve or demo", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
