"""The shipped notebooks: stored clean, and each runs top to bottom in a real kernel.

Every notebook is executed with nbclient against the bundled server; a cell error
fails the test, and the executed notebook must keep each answer as static Markdown
(no widget left behind), which is what a saved notebook, nbconvert and GitHub show.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.kernel_env import NOTEBOOK_DIR, NOTEBOOKS, kernel_env, markdown_outputs, model_cells
from writer_magics.demo import run as demo
from writer_magics.server import ServerHandle

EXPECTED = {"quickstart.ipynb", "prompt-engineering.ipynb", "teaching.ipynb", "images.ipynb"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_the_three_notebooks_exist_and_demo_finds_them() -> None:
    assert {p.name for p in NOTEBOOKS} >= EXPECTED
    for name in ("quickstart", "prompt-engineering", "teaching"):
        assert demo.find_notebook(name) == NOTEBOOK_DIR / f"{name}.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_clean(path: Path) -> None:
    """Outputs stripped, a python3 kernelspec, no URL or key in code, a how-to first."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert "widgets" not in nb.metadata
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"outputs not stripped: {cell.source[:40]!r}"
            assert cell.execution_count is None
            assert not re.search(r"https?://|127\.0\.0\.1|localhost", cell.source), cell.source
            assert "WRITER_API_KEY=" not in cell.source
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    for needed in ("WRITER_API_KEY", "WRITER_BASE_URL", "python -m writer_magics"):
        assert needed in first.source
    assert model_cells(nb), "a notebook that asks the model nothing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_as_jupyterlab_saves_it(path: Path, tmp_path: Path) -> None:
    """Issue 14 §15: opening a shipped notebook in JupyterLab marked it modified.

    JupyterLab 4 (checked in Chromium: open, wait for the kernel, save, diff) changes
    exactly one thing on open: ``metadata.language_info`` becomes what the kernel
    reports. So the file holds ipykernel's ``language_info`` and is byte for byte what
    jupyter_server's contents manager writes for the model it reads (GET then PUT):
    nbformat 4.5 with cell ids, ``indent=1``, sorted keys, a trailing newline.
    """
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_server.services.contents.filemanager import FileContentsManager

    original = path.read_bytes()
    (tmp_path / path.name).write_bytes(original)
    manager = FileContentsManager(root_dir=str(tmp_path))
    model = manager.get(path.name, content=True, type="notebook")  # type: ignore[no-untyped-call]
    manager.save({"type": "notebook", "content": model["content"]}, path.name)  # type: ignore[no-untyped-call]
    assert (tmp_path / path.name).read_bytes() == original
    nb = nbformat.reads(original.decode("utf-8"), as_version=nbformat.NO_CONVERT)
    assert (nb.nbformat, nb.nbformat_minor) == (4, nbformat.current_nbformat_minor)
    assert all(cell.get("id") for cell in nb.cells)
    stored = nb.metadata.language_info
    # the Python version is the kernel's own: a kernel of another version updates it
    assert stored == {**IPythonKernel.language_info, "version": stored["version"]}
    assert re.fullmatch(r"3\.\d+\.\d+", stored["version"])


@pytest.mark.timeout(90)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_against_the_bundled_server(
    path: Path, server: ServerHandle, tmp_path: Path
) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=60,
        startup_timeout=60,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env=kernel_env(server.url))  # CellExecutionError fails the test

    asked = model_cells(nb)
    for cell in asked:
        answers = markdown_outputs(cell)
        assert answers, f"no static Markdown answer for {cell.source[:60]!r}"
        assert all(a.strip() for a in answers)
        for output in cell.outputs:
            assert WIDGET_VIEW not in output.get("data", {}), "a live widget was left behind"
        assert not [o for o in cell.outputs if o.output_type == "error"]
    # Every answer came from the bundled server, and each request succeeded.
    received = server.requests
    assert len(received) >= len(asked)
    assert {r.path for r in received} <= {"/v1/chat", "/v1/completions"}
    assert all(r.status == 200 for r in received), [(r.path, r.status) for r in received]


@pytest.mark.timeout(90)
def test_images_notebook_sends_the_chart_and_keeps_the_thumbnail(
    server: ServerHandle, tmp_path: Path
) -> None:
    """The chart cell's figure goes out as a 400x300 PNG after the question; the saved
    notebook keeps a thumbnail and the ``[image: ...]`` line; the follow-up carries it."""
    import base64

    from writer_magics.line import imagefmt

    nb = nbformat.read(NOTEBOOK_DIR / "images.ipynb", as_version=4)
    NotebookClient(
        nb,
        kernel_name="python3",
        timeout=60,
        startup_timeout=60,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute(env=kernel_env(server.url))
    saved = tmp_path / "images.ipynb"
    nbformat.write(nb, saved)
    nb = nbformat.read(saved, as_version=4)

    asking = next(c for c in nb.cells if c.source.startswith("%%chat --image fig\n"))
    thumbs = [o for o in asking.outputs if "<img" in o.get("data", {}).get("text/html", "")]
    assert len(thumbs) == 1
    assert '<img src="data:image/png;base64,' in thumbs[0].data["text/html"]
    assert re.fullmatch(r"\[image: 400×300 PNG, \d+ KB\]", thumbs[0].data["text/plain"])
    assert "I see 1 image: 400×300 PNG." in markdown_outputs(asking)[0]

    first, follow_up = (r.body for r in server.requests)
    text, image = first["messages"][0]["content"]
    assert text == {
        "type": "text",
        "text": "Which day had the most sign-ups, and what would you check next?",
    }
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    found = imagefmt.sniff(base64.b64decode(url.split(",", 1)[1]))
    assert found == imagefmt.ImageFormat("PNG", 400, 300)
    assert follow_up["messages"][0] == first["messages"][0]
    shown = next(c for c in nb.cells if c.source == "%chat --show")
    assert "](data:image/png;base64,iVBOR" in markdown_outputs(shown)[0]
