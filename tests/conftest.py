"""Shared pytest fixtures."""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from IPython.core.history import HistorySavingThread
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from writer_magics.errors import WriterError, WriterUsageError
from writer_magics.magics import WriterMagics
from writer_magics.server import ServerHandle, start_server

#: The ``lab`` fixture (JupyterLab for the browser tests) lives with its helpers.
pytest_plugins = ["tests.browser_env"]


@pytest.fixture(scope="module")
def server_module() -> Iterator[ServerHandle]:
    """One bundled Writer-compatible server per test module (127.0.0.1, free port, no key)."""
    with start_server() as handle:
        yield handle


@pytest.fixture
def server(server_module: ServerHandle) -> ServerHandle:
    """The module's server with an empty request log and fresh ``xN`` fault counters.

    Use ``server.url`` as the base URL (no ``/v1``); ``server.requests`` lists what was
    received and ``server.wait_for_requests(n)`` waits until ``n`` responses finished.
    """
    server_module.clear()
    return server_module


API_KEY = "sk-test-SECRET-0123456789"


@pytest.fixture
def writer_env(server: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> ServerHandle:
    """Environment pointing the magics at the bundled server with a recognisable key."""
    monkeypatch.setenv("WRITER_BASE_URL", server.url)
    monkeypatch.setenv("WRITER_API_KEY", API_KEY)
    return server


@pytest.fixture
def shell(writer_env: ServerHandle) -> Iterator[InteractiveShell]:
    """A fresh singleton shell with the extension loaded (Markdown view: observable).

    A shell built with ``InteractiveShell(config=...)`` silently loses rich display
    output, hence ``clear_instance()`` + ``instance()``.
    """
    with loaded_shell() as sh:
        yield sh


@contextlib.contextmanager
def loaded_shell() -> Iterator[InteractiveShell]:
    """The fresh singleton shell of :func:`shell`, for fixtures that set their own server."""
    InteractiveShell.clear_instance()
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "writer_magics")
    sh.run_line_magic("config", "WriterMagics.view = 'markdown'")
    sh.run_line_magic("config", "WriterMagics.max_retries = 0")
    try:
        yield sh
    finally:
        sh.run_line_magic("unload_ext", "writer_magics")
        InteractiveShell.clear_instance()


@pytest.fixture(autouse=True)
def release_shells(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close each IPython shell a test made once the test is done with it.

    IPython registers every shell's ``atexit_operations`` (which empties its namespace
    and runs ``gc.collect()``) and its history thread's ``stop`` with :mod:`atexit`, so
    the shells of a whole run stay alive to the end and the process's exit runs one full
    collection per shell over all of them: minutes for the suite. Here those two are
    held back during the test; afterwards a shell no longer current ends its history
    session and stops its thread (no collection), and the current one is registered as
    IPython would have.
    """
    held: list[Callable[..., Any]] = []
    register = atexit.register

    def hold(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
        owner = getattr(function, "__self__", None)
        if not args and not kwargs and isinstance(owner, InteractiveShell | HistorySavingThread):
            held.append(function)
            return function
        return register(function, *args, **kwargs)

    monkeypatch.setattr(atexit, "register", hold)
    yield
    monkeypatch.setattr(atexit, "register", register)
    current = InteractiveShell._instance if InteractiveShell.initialized() else None
    for function in held:
        owner = function.__self__  # type: ignore[attr-defined]
        shell = owner if isinstance(owner, InteractiveShell) else owner.history_manager.shell
        if shell is current:
            register(function)
        elif isinstance(owner, HistorySavingThread):
            owner.stop()
        elif owner.history_manager is not None:
            owner.history_manager.end_session()


@pytest.fixture(scope="session", autouse=True)
def private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the prompt log and cache of test runs out of the user's data directory.

    Set for the whole process (kernels started by tests inherit it too); the same for
    ``WRITER_MAGICS_FETCH_MODELS=0``.
    """
    import os

    saved = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    # No background GET /v1/models in tests that count requests (tests/test_completion.py
    # turns it on where it is the subject).
    os.environ["WRITER_MAGICS_FETCH_MODELS"] = "0"
    yield
    if saved is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = saved


class Ran(CapturedIO):
    """What a cell printed and displayed (IPython's ``CapturedIO``: ``stdout``,
    ``stderr``, ``outputs``) plus the cell's ``ExecutionResult`` as ``result``."""

    def __init__(self, captured: CapturedIO, result: ExecutionResult) -> None:
        vars(self).update(vars(captured))
        self.result = result

    def rendered_error(self) -> list[str]:
        """The lines IPython prints for the cell's error (its ``_render_traceback_``)."""
        error = self.result.error_in_exec
        assert isinstance(error, (WriterError, WriterUsageError)), repr(error)
        return error._render_traceback_()


def run(shell: InteractiveShell, cell: str, cell_id: str | None = None) -> Ran:
    """Run ``cell`` in ``shell`` (with ``cell_id`` as JupyterLab passes it), capturing."""
    with capture_output() as captured:
        result = shell.run_cell(cell, cell_id=cell_id)
    return Ran(captured, result)


def writer_magics(shell: InteractiveShell) -> WriterMagics:
    """The ``WriterMagics`` instance ``%load_ext writer_magics`` registered in ``shell``."""
    assert shell.magics_manager is not None
    magics = shell.magics_manager.registry["WriterMagics"]
    assert isinstance(magics, WriterMagics)
    return magics
