"""Environment for kernels and Jupyter servers started by the tests.

Kernels inherit their environment from whoever starts them, so the tests hand them
the bundled server's URL explicitly and never a real key: a test must not reach
Writer's API even when the developer has ``WRITER_API_KEY`` set.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
PYTHON3 = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def kernel_env(base_url: str, jupyter_home: Path | None = None) -> dict[str, str]:
    """``os.environ`` pointed at ``base_url`` with a dummy key (and private Jupyter dirs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRITER_")}
    env["WRITER_MAGICS_FETCH_MODELS"] = "0"  # no background GET /v1/models to count
    env["WRITER_BASE_URL"] = base_url
    env["WRITER_API_KEY"] = "test-key"
    env["PYTHONUNBUFFERED"] = "1"
    if jupyter_home is not None:
        for name in ("CONFIG", "DATA", "RUNTIME"):
            folder = jupyter_home / name.lower()
            folder.mkdir(parents=True, exist_ok=True)
            env[f"JUPYTER_{name}_DIR"] = str(folder)
    return env


def model_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """Code cells that ask the model for an answer (not ``--dry-run``, not chat commands)."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = cell.source
        asks = source.startswith(("%%chat", "%%complete")) or "run_cell_magic(" in source
        if asks and "--dry-run" not in source.split("\n", 1)[0]:
            found.append(cell)
    return found


def markdown_outputs(cell: nbformat.NotebookNode) -> list[str]:
    """The static ``text/markdown`` outputs a cell left behind."""
    return [
        str(o["data"]["text/markdown"])
        for o in cell.get("outputs", [])
        if o.get("output_type") in ("display_data", "execute_result")
        and o.get("data", {}).get("text/markdown")
    ]


@contextlib.contextmanager
def started_kernel(
    env: dict[str, str], cwd: Path | None = None
) -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """A real ipykernel with ``env`` (and ``cwd``), ready, shut down afterwards."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=env, **({"cwd": str(cwd)} if cwd is not None else {}))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def saved_outputs(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cell's outputs as a notebook keeps them after these iopub messages.

    ``display_data`` appends an output (remembering its ``display_id``),
    ``update_display_data`` replaces the output with that id, ``stream`` appends text:
    what JupyterLab would save if Ctrl+S were pressed right after the last message.
    Each output is ``{"data": ..., "metadata": ..., "display_id": ...}``.
    """
    outputs: list[dict[str, Any]] = []
    ids: dict[str, int] = {}
    for msg in messages:
        kind, content = msg["header"]["msg_type"], msg["content"]
        display_id = (content.get("transient") or {}).get("display_id")
        if kind == "update_display_data":
            if display_id in ids:
                outputs[ids[display_id]]["data"] = content["data"]
                outputs[ids[display_id]]["metadata"] = content.get("metadata") or {}
        elif kind in ("display_data", "execute_result"):
            if display_id:
                ids[display_id] = len(outputs)
            meta = content.get("metadata") or {}
            outputs.append({"data": content["data"], "metadata": meta, "display_id": display_id})
        elif kind == "stream":
            outputs.append({"data": {"text/plain": content["text"]}, "metadata": {}})
    return outputs


def answer_markdown(messages: Iterable[dict[str, Any]]) -> str:
    """The answer's Markdown as the notebook keeps it: every piece's ``text/markdown``, joined."""
    return "".join(o["data"].get("text/markdown", "") for o in saved_outputs(messages))
