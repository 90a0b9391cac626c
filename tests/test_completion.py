"""Tab completion on the magic lines: the pure rules (``completion.offer``) and the
matcher in a real shell (the path terminal IPython takes), against the bundled server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from tests.conftest import writer_magics
from writer_magics.commands.writer import writer_parser
from writer_magics.config import REMOVED_MODELS
from writer_magics.line import completion
from writer_magics.line.completion import Sources, offer
from writer_magics.magics import WriterMagics
from writer_magics.server import ServerHandle
from writer_magics.server.protocol import MODEL_LIST
from writer_magics.transport.models import KNOWN_MODELS, ModelCatalog, ModelInfo


def parsers(name: str) -> argparse.ArgumentParser:
    if name == "writer":
        return writer_parser()
    parser: argparse.ArgumentParser = getattr(WriterMagics, name).parser
    return parser


def sources(**kwargs: Any) -> Sources:
    return Sources(parsers=parsers, **kwargs)


def at_end(text: str, src: Sources | None = None) -> tuple[str, list[str], str] | None:
    lines = text.split("\n")
    found = offer(text, len(lines) - 1, len(lines[-1]), src or sources())
    return None if found is None else (found.fragment, found.matches, found.kind)


def options_of(name: str) -> set[str]:
    return {o for o in parsers(name)._option_string_actions if o not in ("-h", "--help")}


# ------------------------------------------------------------------------ option names


def test_option_names_from_the_option_table() -> None:
    assert at_end("%%chat --ses") == ("--ses", ["--session", "--sessions"], "option")
    assert at_end("%chat -t 0.2 --sys") == ("--sys", ["--system"], "option")
    fragment, every, _ = at_end("%%chat -") or ("", [], "")
    assert fragment == "-" and set(every) == options_of("chat")
    complete = set((at_end("%%complete -") or ("", [], ""))[1])
    assert complete == options_of("complete")
    assert "--best-of" in complete and "--session" not in complete
    assert at_end("%%complete --ses") is None  # not an option of %%complete


def test_options_already_given_are_not_offered_again_unless_repeatable() -> None:
    _, names, _ = at_end("%%chat --session a --new --") or ("", [], "")
    assert "--session" not in names and "--new" not in names
    assert "--model" in names and "--stop" in names  # repeatable / not yet given


def test_never_in_the_cell_body_or_the_line_form_prompt() -> None:
    assert at_end("%%chat\n--ses") is None
    assert at_end("%%chat --new\nTell me about %chat --ses") is None
    assert at_end("%chat Tell me about --ses") is None
    assert at_end("%chat -- --ses") is None
    assert at_end("x = 1\n%chat --ses") == ("--ses", ["--session", "--sessions"], "option")
    assert at_end("  %%chat --ses") is None  # a cell magic must start the cell
    assert at_end("%%chatter --ses") is None and at_end("%%chat") is None


def test_writer_subcommands_and_their_options() -> None:
    assert at_end("%writer ") == ("", ["log", "cache", "models", "status", "help"], "command")
    assert at_end("%writer st") == ("st", ["status"], "command")
    assert at_end("%writer cache --i") == ("--i", ["--import", "--info"], "option")


# ------------------------------------------------------------------------ values


def test_models_never_removed_and_comma_lists() -> None:
    listed = ["palmyra-x5", "palmyra-med", "palmyra-x9"]
    catalog = ModelCatalog()
    catalog.remember([ModelInfo(m) for m in listed])
    src = sources(models=catalog.ids)
    assert at_end("%%chat -m ", src) == ("", ["palmyra-x5", "palmyra-x9"], "model")
    assert at_end("%%chat --model=palmyra-x", src) == (
        "palmyra-x",
        ["palmyra-x5", "palmyra-x9"],
        "model",
    )
    assert at_end("%%chat -m palmyra-x5,pal", src) == ("pal", ["palmyra-x9"], "model")
    assert at_end("%%chat -m palmyra-m", src) is None
    assert not set(ModelCatalog().ids()) & set(REMOVED_MODELS)
    assert ModelCatalog().ids() == [m.id for m in KNOWN_MODELS]


def test_namespace_values() -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str

    def get_weather(city: str) -> str:
        return city

    namespace = {
        "get_weather": get_weather,
        "lookup": len,
        "Answer": Answer,
        "BaseModel": BaseModel,
        "schema": {"type": "object"},
        "number": 3,
        "_private": get_weather,
        "exit": exit,
        "png": b"\x89PNG\r\n\x1a\n....",
        "text": b"plain bytes",
    }
    src = sources(namespace=namespace, hidden={"exit"}, sessions=lambda: ["ideas", "default"])
    assert at_end("%%chat --session ", src) == ("", ["default", "ideas"], "session")
    assert at_end("%%chat --tools ", src) == ("", ["get_weather", "lookup"], "tools")
    assert at_end("%%chat --tools get_weather,", src) == ("", ["lookup"], "tools")
    assert at_end("%%chat --schema ", src) == ("", ["Answer", "schema"], "schema")
    assert at_end("%%chat --tools f --tool-choice ", src) == (
        "",
        ["auto", "none", "required", "f"],
        "tool_choice",
    )


def test_paths_and_images(tmp_path: Path) -> None:
    (tmp_path / "notes.json").write_text("{}")
    (tmp_path / "pic.png").write_bytes(b"\x89PNG")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "old chat.json").write_text("{}")
    (tmp_path / ".hidden").write_text("")
    src = sources(cwd=tmp_path, namespace={"photo": b"\xff\xd8\xff\xe0JFIF"})
    assert at_end("%chat --load ", src) == ("", ["data/", "notes.json", "pic.png"], "path")
    assert at_end("%chat --save no", src) == ("no", ["notes.json"], "path")
    assert at_end("%chat --load data/o", src) == ("data/o", ["'data/old chat.json'"], "path")
    assert at_end('%chat --load "data/o', src) == ("data/o", ["data/old chat.json"], "path")
    assert at_end("%writer cache --export n", src) == ("n", ["notes.json"], "path")
    assert at_end("%writer cache --import ", src) == (
        "",
        ["data/", "notes.json", "pic.png"],
        "path",
    )
    # --image (for a magic whose table has it): image variables and image files only
    with_image = argparse.ArgumentParser(add_help=False)
    with_image.add_argument("--image", action="append")
    image_src = Sources(parsers=lambda name: with_image, cwd=tmp_path, namespace=src.namespace)
    assert at_end("%%chat --image ", image_src) == ("", ["photo", "data/", "pic.png"], "image")


# ------------------------------------------------------------------------ in a shell


def complete(shell: InteractiveShell, code: str) -> list[tuple[int, int, str]]:
    with provisionalcompleter():
        found = shell.Completer.completions(code, len(code))
        return [(c.start, c.end, c.text) for c in found]


def test_the_matcher_in_a_shell_sends_nothing(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    assert complete(shell, "%%chat --ses") == [(7, 12, "--session"), (7, 12, "--sessions")]
    assert complete(shell, "%%chat -m ") == [(10, 10, "palmyra-x5"), (10, 10, "palmyra-x4")]
    shell.run_cell("%chat --session ideas Hello")
    server.clear()
    assert complete(shell, "%%chat --session i") == [(17, 18, "ideas")]
    assert not any(t.startswith("--sess") for _, _, t in complete(shell, "%%chat\n--ses"))
    assert server.requests == []  # Tab never sends a request (fetching is off in tests)


def test_load_and_unload_add_and_remove_exactly_one_matcher(shell: InteractiveShell) -> None:
    ours = [m for m in shell.Completer.custom_matchers if _is_ours(m)]
    assert len(ours) == 1
    shell.run_line_magic("reload_ext", "writer_magics")
    assert len([m for m in shell.Completer.custom_matchers if _is_ours(m)]) == 1
    shell.run_line_magic("unload_ext", "writer_magics")
    assert not [m for m in shell.Completer.custom_matchers if _is_ours(m)]
    assert complete(shell, "%%chat --ses") == []
    shell.run_line_magic("load_ext", "writer_magics")


def _is_ours(matcher: Any) -> bool:
    return getattr(matcher, "matcher_identifier", None) == completion.MATCHER_ID


def test_background_fetch_once_and_offline_falls_back(
    shell: InteractiveShell, server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    magics = writer_magics(shell)
    shell.run_line_magic("config", "WriterMagics.fetch_models = True")
    shell.run_cell("a = 1")
    assert magics.models._future is not None
    magics.models._future.result(timeout=10)  # the one background fetch, started by a cell
    shell.run_cell("b = 2")
    assert [(r.method, r.path) for r in server.wait_for_requests(1)] == [("GET", "/v1/models")]
    assert magics.models.fetched() == tuple(
        ModelInfo(m["id"], m["name"]) for m in MODEL_LIST["models"]
    )
    # offline: a closed port; the known list stays and nothing blocks
    shell.run_line_magic("unload_ext", "writer_magics")
    monkeypatch.setenv("WRITER_BASE_URL", "http://127.0.0.1:9")
    shell.run_line_magic("load_ext", "writer_magics")
    shell.run_line_magic("config", "WriterMagics.fetch_models = True")
    shell.run_cell("c = 3")
    magics = writer_magics(shell)
    with pytest.raises(Exception, match="Could not connect"):
        assert magics.models._future is not None
        magics.models._future.result(timeout=10)
    assert magics.models.fetched() is None
    shell.run_line_magic("config", "WriterMagics.view = 'text'")
    with capture_output() as captured:
        shell.run_line_magic("writer", "status")
    [status] = captured.outputs
    assert (
        "Model list        known list (GET /v1/models failed: Could not connect"
        in (status.data["text/plain"])
    )
    assert [t for *_, t in complete(shell, "%%chat -m ")] == ["palmyra-x5", "palmyra-x4"]


def test_tab_never_waits_for_the_fetch(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While GET /v1/models is held open by the server, Tab answers from the known list;
    once the answer is in, Tab offers the server's list (minus removed models)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    release = threading.Event()
    arrived = threading.Event()

    class Held(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            arrived.set()
            release.wait(timeout=30)
            body = json.dumps(
                {"models": [{"id": "palmyra-x7", "name": "X7"}, {"id": "palmyra-fin"}]}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Held)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        shell.run_line_magic("unload_ext", "writer_magics")
        monkeypatch.setenv("WRITER_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("WRITER_MAGICS_FETCH_MODELS", "1")
        shell.run_line_magic("load_ext", "writer_magics")
        shell.run_cell("a = 1")
        assert arrived.wait(timeout=10)
        assert [t for *_, t in complete(shell, "%%chat -m ")] == ["palmyra-x5", "palmyra-x4"]
        release.set()
        magics = writer_magics(shell)
        assert magics.models._future is not None
        magics.models._future.result(timeout=10)
        assert [t for *_, t in complete(shell, "%%chat -m ")] == ["palmyra-x7"]
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_a_hostile_namespace_object_never_breaks_tab(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    class Proxy:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("lazy proxy")

        @property  # type: ignore[misc]  # a proxy that hides its class
        def __class__(self) -> type:
            raise RuntimeError("lazy proxy")

    shell.user_ns["proxy"] = Proxy()
    shell.user_ns["ok_schema"] = {"type": "object"}
    found = [t for *_, t in complete(shell, "%%chat --schema ")]
    assert found == ["ok_schema"]
    assert "Traceback" not in capsys.readouterr().err
