"""``python -m writer_magics serve|demo|record|provenance``: the bundled server, the
offline demo, and the teacher's two commands (commands/record.py, answer/provenance.py)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: python -m writer_magics {serve,demo,record,provenance} [options]\n\n"
            "  serve       run the bundled Writer-compatible server (no API key needed)\n"
            "  demo        run the quickstart notebook against it and show the answers\n"
            "  record      run a notebook and write the replay file for a class\n"
            "  provenance  list how each answer in a notebook was made (--class FILE checks)"
        )
        return 0
    command, rest = args[0], args[1:]
    if command == "serve":
        from writer_magics.server.cli import main as serve

        return serve(rest)
    if command == "demo":
        from writer_magics.demo.run import main as demo

        return demo(rest)
    if command == "record":
        from writer_magics.commands.record import main as record

        return record(rest)
    if command == "provenance":
        from writer_magics.answer.provenance import main as provenance

        return provenance(rest)
    print(f"unknown command {command!r}: use serve, demo, record or provenance", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
