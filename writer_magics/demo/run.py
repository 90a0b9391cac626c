"""``python -m writer_magics demo``: run the quickstart notebook in a real kernel, live.

Without ``WRITER_API_KEY`` the bundled server is started on a free loopback port and
the kernel is pointed at it, so a new user sees streamed answers with no key and no
network. Each cell gets a progress line and its answer streams to the terminal as the
kernel sends it; the executed notebook and a static HTML export are written to an
output folder. ``--lab`` opens JupyterLab on a copy of the notebooks instead, with the
same server and environment.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from writer_magics import config
from writer_magics.demo.stream import TerminalEcho
from writer_magics.errors import WriterError

NOTEBOOKS = ("quickstart", "prompt-engineering", "teaching")
DEFAULT_OUT = "demo-output"  # gitignored in the repo
#: Pacing of the bundled server: fast enough to be short, slow enough to be seen.
DEFAULT_TOKENS_PER_SECOND = 120.0


def notebook_dirs() -> list[Path]:
    """Where the notebooks may be: the clone's ``notebooks/`` (editable), then the wheel's."""
    package = Path(__file__).resolve().parent.parent
    return [package.parent / "notebooks", package / "notebooks"]


def find_notebook(name: str) -> Path:
    """The notebook called ``name`` (with or without ``.ipynb``), or a path to one."""
    given = Path(name)
    if given.suffix == ".ipynb" and given.is_file():
        return given
    filename = name if name.endswith(".ipynb") else f"{name}.ipynb"
    for folder in notebook_dirs():
        if (folder / filename).is_file():
            return folder / filename
    raise FileNotFoundError(
        f"notebook {filename!r} not found in " + " or ".join(str(d) for d in notebook_dirs())
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="writer-magics demo",
        description=(
            "Run the quickstart notebook in a real kernel and stream its answers here. "
            "Without WRITER_API_KEY it uses the bundled server (no key, no network)."
        ),
    )
    parser.add_argument(
        "--notebook",
        default="quickstart",
        help=f"notebook to run: {', '.join(NOTEBOOKS)} or a path (default %(default)s)",
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help="folder for the executed notebook and its HTML (default ./%(default)s)",
    )
    parser.add_argument(
        "--lab", action="store_true", help="open JupyterLab on the notebooks instead"
    )
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=DEFAULT_TOKENS_PER_SECOND,
        help="pace of the bundled server's answers (default %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds allowed per cell (default 180)"
    )
    return parser


# ---------------------------------------------------------------- backend


@dataclass(frozen=True)
class Backend:
    """Where the kernel's requests go, and the environment that says so."""

    env: dict[str, str]
    description: str


@contextlib.contextmanager
def backend(tokens_per_second: float, out: TextIO) -> Iterator[Backend]:
    """The real API when a key is set, else the bundled server for the duration."""
    env = dict(os.environ)
    key = config.api_key(None)
    if key:
        url = config.base_url(None)
        # The kernel runs in the output folder: a key or URL from this folder's .env
        # must reach it through the environment.
        env[config.KEY_VARIABLE] = key
        env[config.BASE_URL_VARIABLE] = url
        print(
            f"WRITER_API_KEY is set: running against the API at {url} (uses your quota).", file=out
        )
        yield Backend(env, url)
        return
    from writer_magics.server import start_server

    handle = start_server(tokens_per_second=tokens_per_second)
    # The bundled server's answers are not the user's: their prompt log and cache go to
    # a folder of this run, not the user's data directory (files.data_dir).
    scratch = tempfile.TemporaryDirectory(prefix="writer-magics-demo-")
    try:
        env[config.BASE_URL_VARIABLE] = handle.url
        env[config.KEY_VARIABLE] = "demo"
        env["XDG_DATA_HOME"] = scratch.name
        print(
            f"No WRITER_API_KEY: using the bundled server at {handle.url} "
            "(offline, deterministic answers).",
            file=out,
        )
        yield Backend(env, handle.url)
    finally:
        handle.stop()
        scratch.cleanup()


# ---------------------------------------------------------------- running


def _client_class() -> Any:
    """A NotebookClient that echoes cells to the terminal (nbclient imported lazily)."""
    from nbclient import NotebookClient

    class TerminalClient(NotebookClient):
        """Feeds every iopub message to a :class:`TerminalEcho` as nbclient processes it."""

        echo: TerminalEcho
        code_cells = 0
        seen = 0

        async def async_execute_cell(
            self, cell: Any, cell_index: int, *args: Any, **kwargs: Any
        ) -> Any:
            if cell.cell_type == "markdown":
                self.echo.markdown_cell(cell.source)
            elif cell.cell_type == "code" and cell.source.strip():
                self.seen += 1
                self.echo.cell(self.seen, self.code_cells, cell.source)
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

        def process_message(self, msg: Any, cell: Any, cell_index: int) -> Any:
            self.echo.message(msg)
            return super().process_message(msg, cell, cell_index)

    return TerminalClient


@dataclass
class RunResult:
    """What a run left behind, and how it ended."""

    notebook: Path
    html: Path | None
    error: str | None
    seconds: float
    failed_cell: int | None = None


def run_notebook(
    source: Path,
    out_dir: Path,
    env: Mapping[str, str],
    echo: TerminalEcho,
    timeout: float = 180.0,
) -> RunResult:
    """Execute ``source`` in a fresh ``python3`` kernel with ``env``; save it and its HTML.

    The kernel's working directory is ``out_dir`` (files a notebook writes land there)
    and its own log goes to ``out_dir/kernel.log`` instead of the terminal.
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(source, as_version=4)
    out_dir.mkdir(parents=True, exist_ok=True)
    client = _client_class()(
        nb,
        kernel_name="python3",
        timeout=int(timeout),
        startup_timeout=60,
        resources={"metadata": {"path": str(out_dir)}},
    )
    client.echo = echo
    client.code_cells = sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())
    error: str | None = None
    started = time.monotonic()
    with (out_dir / "kernel.log").open("w") as log:
        try:
            client.execute(env=dict(env), stderr=log, stdout=log)
        except CellExecutionError as exc:
            error = f"{exc.ename}: {exc.evalue}"
        except CellTimeoutError:
            error = f"a cell ran longer than {timeout:g} s"
        except DeadKernelError as exc:
            error = f"the kernel died ({exc}); see {out_dir / 'kernel.log'}"
    seconds = time.monotonic() - started
    # Every widget was closed when its answer finished; the static answers remain.
    nb.metadata.pop("widgets", None)
    target = out_dir / source.name
    nbformat.write(nb, target)
    html = None if error else export_html(nb, target.with_suffix(".html"))
    return RunResult(target, html, error, seconds, client.seen if error else None)


def export_html(nb: Any, path: Path) -> Path:
    """A static HTML page of the executed notebook: the Markdown answers rendered."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")  # type: ignore[no-untyped-call]
    body, _ = exporter.from_notebook_node(nb)
    path.write_text(body, encoding="utf-8")
    return path


def demo(args: argparse.Namespace, out: TextIO) -> int:
    """Run one notebook against the server or the API; 0 on success, 1 on a failed cell."""
    source = find_notebook(args.notebook)
    out_dir = Path(args.out).resolve()
    echo = TerminalEcho(out)
    with backend(args.tokens_per_second, out) as where:
        print(f"Running {source.name} in a python3 kernel; output folder: {out_dir}", file=out)
        result = run_notebook(source, out_dir, where.env, echo, timeout=args.timeout)
    echo.newline()
    if result.error is not None:
        echo.line(f"✗ cell {result.failed_cell} failed: {result.error}", "1;31")
        print(f"Executed notebook (up to the failure): {result.notebook}", file=out)
        return 1
    print(f"\nDone in {result.seconds:.1f} s.", file=out)
    print(f"  executed notebook: {result.notebook}", file=out)
    print(f"  HTML export:       {result.html}", file=out)
    return 0


# ---------------------------------------------------------------- JupyterLab


def copy_notebooks(out_dir: Path) -> list[Path]:
    """Copy the notebooks into ``out_dir``, keeping copies that are already there (edits)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in NOTEBOOKS:
        target = out_dir / f"{name}.ipynb"
        if not target.exists():
            shutil.copyfile(find_notebook(name), target)
        copied.append(target)
    return copied


def lab(args: argparse.Namespace, out: TextIO) -> int:
    """JupyterLab on copies of the notebooks, with the server running and the env set."""
    if importlib.util.find_spec("jupyterlab") is None:
        print("JupyterLab is not installed: python -m pip install 'writer-magics[demo]'", file=out)
        return 1
    out_dir = Path(args.out).resolve()
    copy_notebooks(out_dir)
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={out_dir}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    with backend(args.tokens_per_second, out) as where:
        print(f"Opening JupyterLab on {out_dir} (Ctrl-C stops it and the server).", file=out)
        process = subprocess.Popen(command, env=where.env)
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            return 0


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of ``python -m writer_magics demo``."""
    args = build_parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    try:
        if args.lab:
            return lab(args, stream)
        return demo(args, stream)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=stream)
        return 1
    except WriterError as exc:  # e.g. an unreadable .env
        print(f"error: {exc.message}", file=stream)
        return 1
    except ImportError as exc:
        print(
            f"error: the demo needs {exc.name or 'a package'}: "
            "python -m pip install 'writer-magics[demo]' (or -e '.[demo]' in a clone)",
            file=stream,
        )
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted.", file=stream)
        return 130
