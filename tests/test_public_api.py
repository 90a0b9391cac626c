"""The package's public surface: ``from writer_magics import Result, Sweep``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import writer_magics
from writer_magics.answer.result import Result
from writer_magics.answer.sweep import Sweep

ROOT = Path(__file__).resolve().parent.parent


def test_result_and_sweep_come_from_the_top_level() -> None:
    from writer_magics import Result as TopResult
    from writer_magics import Sweep as TopSweep

    assert TopResult is Result and TopSweep is Sweep
    assert {"Result", "Sweep", "load_ipython_extension"} <= set(writer_magics.__all__)
    assert all(hasattr(writer_magics, name) for name in writer_magics.__all__)
    assert {"Result", "Sweep"} <= set(dir(writer_magics))


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        writer_magics.Nope  # noqa: B018
    except AttributeError as error:
        assert "has no attribute 'Nope'" in str(error)
    else:
        raise AssertionError("no AttributeError")


def test_importing_the_package_and_loading_the_extension_stay_lazy() -> None:
    """``%load_ext`` must not import the answer types (bench/load.py: < 50 ms)."""
    child = (
        "import json, sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "InteractiveShell.instance().run_line_magic('load_ext', 'writer_magics')\n"
        "print(json.dumps([m in sys.modules for m in "
        "('writer_magics.answer.result', 'writer_magics.answer.sweep')]))\n"
        "from writer_magics import Result, Sweep, __all__\n"
        "print(json.dumps([Result.__name__, Sweep.__name__]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WRITER_MAGICS_FETCH_MODELS": "0"}
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded, names = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert loaded == [False, False]
    assert names == ["Result", "Sweep"]
