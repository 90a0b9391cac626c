"""One streaming consumer in its own process: ``python bench/consume.py MODE URL PROMPT``.

Modes: ``bare`` (httpx + httpx-sse, only concatenates the text), ``sdk`` (the official
writer-sdk ``chat.chat(stream=True)`` loop), ``magics`` (``%%chat`` in an IPython shell
with the live widget view). Each first streams a short warm-up answer (imports,
connection), then the measured one, and prints one JSON line: the CPU seconds of this
whole process (every thread) while the measured answer streamed, its wall time, and the
number of characters received.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

MODEL = "palmyra-x5"
WARM_UP = "Warm up [[chunks:200]]"


def bare(url: str) -> Callable[[str], int]:
    import httpx
    from httpx_sse import connect_sse

    client = httpx.Client(timeout=60)
    headers = {"Authorization": "Bearer bench-key"}

    def run(prompt: str) -> int:
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
        }
        text = ""
        with connect_sse(client, "POST", url + "/v1/chat", json=body, headers=headers) as source:
            for sse in source.iter_sse():
                if sse.data == "[DONE]":
                    continue
                for choice in json.loads(sse.data)["choices"]:
                    text += choice["delta"].get("content") or ""
        return len(text)

    return run


def sdk(url: str) -> Callable[[str], int]:
    import writerai

    client = writerai.Writer(api_key="bench-key", base_url=url, max_retries=0, timeout=60)

    def run(prompt: str) -> int:
        text = ""
        stream = client.chat.chat(
            model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True
        )
        for chunk in stream:
            for choice in chunk.choices:
                text += choice.delta.content or ""
        return len(text)

    return run


def magics(url: str, view: str = "auto") -> Callable[[str], int]:
    import os

    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    os.environ.update(WRITER_BASE_URL=url, WRITER_API_KEY="bench-key")
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "writer_magics")
    shell.run_line_magic("config", f"WriterMagics.view = {view!r}")

    def run(prompt: str) -> int:
        with capture_output():
            result = shell.run_cell(f"%%chat -o answer --new\n{prompt}")
        result.raise_error()
        return len(str(shell.user_ns["answer"]))

    return run


MODES: dict[str, Callable[[str], Callable[[str], int]]] = {
    "bare": bare,
    "sdk": sdk,
    "magics": magics,
    "magics-widget": lambda url: magics(url, "widget"),
}


def main() -> None:
    mode, url, prompt = sys.argv[1:4]
    run = MODES[mode](url)
    run(WARM_UP)
    cpu, wall = time.process_time(), time.perf_counter()
    chars = run(prompt)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(json.dumps({"mode": mode, "cpu": cpu, "wall": wall, "chars": chars}))


if __name__ == "__main__":
    main()
