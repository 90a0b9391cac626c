"""``%%chat --image``: every source kind through a real shell and the bundled server,
the exact request sent, history, dry run, cache, prompt log and every refusal."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from writer_magics.line import imagefmt
from writer_magics.server import ServerHandle

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
PIL_Image = pytest.importorskip("PIL.Image")


def run(shell: InteractiveShell, cell: str, cell_id: str | None = None) -> CapturedIO:
    with capture_output() as captured:
        result = shell.run_cell(cell, cell_id=cell_id)
    captured.result = result
    return cast("CapturedIO", captured)


def everything(captured: CapturedIO) -> str:
    parts = [captured.stdout, captured.stderr]
    for output in captured.outputs:
        parts.extend(str(v) for v in output.data.values())
    return "\n".join(parts)


def refused(captured: CapturedIO) -> str:
    """The one line a refused cell printed (and nothing else)."""
    assert captured.result.error_in_exec is not None  # type: ignore[attr-defined]
    lines = [line for line in everything(captured).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("UsageError: "), lines
    return lines[0]


def last_body(server: ServerHandle) -> dict[str, Any]:
    assert server.requests, "the server received no request"
    body: dict[str, Any] = server.requests[-1].body
    return body


def encoded(fmt: str, size: tuple[int, int] = (30, 20), **options: Any) -> bytes:
    buffer = io.BytesIO()
    PIL_Image.new("RGB", size, (200, 40, 40)).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def asked(text: str, *urls: str) -> dict[str, Any]:
    """The user message Writer documents: the text fragment, then the image fragments."""
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return {"role": "user", "content": parts}


def sent_image(url: str) -> imagefmt.ImageFormat:
    decoded = imagefmt.decode_data_url(url)
    assert decoded is not None
    found = imagefmt.sniff(decoded[1])
    assert found is not None
    return found


def draw(shell: InteractiveShell) -> None:
    shell.run_cell(
        "import matplotlib.pyplot as plt\n"
        "plt.close('all')\n"  # one figure at a time, however many tests draw
        "fig, ax = plt.subplots()\n"
        "_ = ax.bar(['a', 'b', 'c'], [3, 1, 2])\n"
    )


# ---------------------------------------------------------------- the bytes


@pytest.mark.parametrize(
    ("fmt", "name", "options"),
    [
        ("PNG", "PNG", {}),
        ("JPEG", "JPEG", {}),
        ("GIF", "GIF", {}),
        ("WEBP", "WEBP", {"lossless": True}),
        ("WEBP", "WEBP", {"quality": 80}),
    ],
)
def test_sniff_reads_format_and_pixel_size(fmt: str, name: str, options: dict[str, Any]) -> None:
    found = imagefmt.sniff(encoded(fmt, (31, 17), **options))
    assert found == imagefmt.ImageFormat(name, 31, 17)


def test_sniff_refuses_text_and_cut_headers() -> None:
    assert imagefmt.sniff(b"hello, not an image") is None
    assert imagefmt.sniff(encoded("PNG")[:12]) is None
    assert imagefmt.sniff(b"") is None


# ---------------------------------------------------------------- every source kind


def test_a_figure_is_sent_as_png_at_100_dpi_after_the_text(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    draw(shell)
    captured = run(shell, "%%chat --image fig\nWhat does this chart show?", cell_id="a")
    assert captured.result.error_in_exec is None  # type: ignore[attr-defined]
    (message,) = last_body(server)["messages"]
    assert message["role"] == "user"
    text, image = message["content"]
    assert text == {"type": "text", "text": "What does this chart show?"}
    assert image["type"] == "image_url" and list(image) == ["type", "image_url"]
    assert list(image["image_url"]) == ["url"]
    assert image["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    assert sent_image(image["image_url"]["url"]) == imagefmt.ImageFormat("PNG", 640, 480)
    shell.run_cell("import io; _b = io.BytesIO(); fig.savefig(_b, format='png', dpi=100)")
    assert image["image_url"]["url"] == data_url(shell.user_ns["_b"].getvalue(), "image/png")
    assert last_body(server)["model"] == "palmyra-x5"
    # The bundled server read the bytes and says what it saw.
    assert "I see 1 image: 640×480 PNG." in everything(captured)


def test_axes_and_line_form(shell: InteractiveShell, server: ServerHandle) -> None:
    draw(shell)
    run(shell, "%chat --image ax Name the tallest bar.")
    (message,) = last_body(server)["messages"]
    assert message["content"][0] == {"type": "text", "text": "Name the tallest bar."}
    assert sent_image(message["content"][1]["image_url"]["url"]).width == 640


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_bytes_and_files_are_sent_exactly(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path, fmt: str, mime: str
) -> None:
    data = encoded(fmt)
    shell.user_ns["raw"] = data
    run(shell, "%%chat --image raw\nDescribe it.")
    assert last_body(server)["messages"] == [asked("Describe it.", data_url(data, mime))]
    # A file: the bytes decide, not the name.
    path = tmp_path / "picture.bin"
    path.write_bytes(data)
    run(shell, f"%%chat --new --image {path}\nAnd this file?")
    assert last_body(server)["messages"] == [asked("And this file?", data_url(data, mime))]


def test_pillow_and_ipython_images(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.run_cell(
        "from PIL import Image as PILImage\n"
        "from IPython.display import Image\n"
        "pic = PILImage.new('RGB', (40, 10), 'navy')\n"
        "import io\n"
        "_buf = io.BytesIO(); PILImage.new('RGB', (8, 6)).save(_buf, format='JPEG')\n"
        "shown = Image(data=_buf.getvalue())\n"
    )
    run(shell, "%%chat --image pic --image shown\nCompare them.")
    content = last_body(server)["messages"][0]["content"]
    assert [p["type"] for p in content] == ["text", "image_url", "image_url"]
    shell.run_cell("_p = io.BytesIO(); pic.save(_p, format='PNG')")
    assert content[1]["image_url"]["url"] == data_url(shell.user_ns["_p"].getvalue(), "image/png")
    jpeg = shell.user_ns["shown"].data
    assert content[2]["image_url"]["url"] == data_url(jpeg, "image/jpeg")


def test_https_and_data_urls_are_sent_as_given(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    inline = data_url(encoded("GIF"), "image/gif")
    shell.user_ns["inline"] = inline
    captured = run(shell, "%%chat --image https://example.com/chart.png --image $inline\nBoth?")
    assert last_body(server)["messages"] == [
        asked("Both?", "https://example.com/chart.png", inline)
    ]
    assert "I see 2 images: one at https://example.com/chart.png (not fetched) and 30×20 GIF." in (
        everything(captured)
    )


def test_a_sweep_of_temperatures_sends_the_image_in_every_request(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["raw"] = encoded("PNG")
    run(shell, "%%chat --image raw -t 0.2,0.8\nWhat colour?")
    assert len(server.requests) == 2
    assert all(len(r.body["messages"][0]["content"]) == 2 for r in server.requests)


def test_an_ipython_image_by_address_is_sent_as_its_url(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.run_cell(
        "from IPython.display import Image\n"
        "remote = Image(url='https://example.com/plot.png', embed=False)\n"
    )
    run(shell, "%%chat --image remote\nWhat is it?")
    assert last_body(server)["messages"] == [asked("What is it?", "https://example.com/plot.png")]


def test_function_calling_rounds_carry_the_image_and_history_keeps_it(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.run_cell(
        "def get_weather(city: str) -> str:\n"
        '    """Current weather for a city."""\n'
        "    return f'18C in {city}'\n"
    )
    shell.user_ns["raw"] = encoded("PNG")
    captured = run(
        shell, "%%chat --image raw --tools get_weather\nUse get_weather for Paris please", "w"
    )
    assert captured.result.error_in_exec is None, everything(captured)  # type: ignore[attr-defined]
    first, second = (r.body for r in server.requests)
    image = {"type": "image_url", "image_url": {"url": data_url(encoded("PNG"), "image/png")}}
    assert first["messages"][0]["content"][1] == image
    assert second["messages"][0]["content"][1] == image
    assert [o.data.get("text/plain", "").startswith("[image:") for o in captured.outputs].count(
        True
    ) == 1  # the thumbnail is shown once, not once per round
    run(shell, "%%chat\nAnd tomorrow?", cell_id="next")
    later = last_body(server)["messages"]
    assert [m["role"] for m in later] == ["user", "assistant", "tool", "assistant", "user"]
    assert later[0]["content"][1] == image


# ---------------------------------------------------------------- display


def test_thumbnail_above_the_answer_and_a_plain_label(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    draw(shell)
    captured = run(shell, "%%chat --image fig\nExplain.")
    first = captured.outputs[0].data
    url = last_body(server)["messages"][0]["content"][1]["image_url"]["url"]
    size = len(base64.b64decode(url.split(",")[1]))
    assert first["text/plain"] == f"[image: 640×480 PNG, {round(size / 1024)} KB]"
    assert '<img src="data:image/png;base64,' in first["text/html"]
    # A thumbnail, not the full image: far smaller than what was sent.
    assert len(first["text/html"]) < size


def test_dry_run_shortens_data_urls_and_sends_nothing(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    data = noise_png(100)
    shell.user_ns["raw"] = data
    captured = run(shell, "%%chat --image raw --dry-run\nWhat is it?")
    assert server.requests == []
    text = everything(captured)
    kb = round(len(data) / 1024)
    assert f'"url": "data:image/png;base64,iVBOR… ({kb} KB)"' in text
    assert base64.b64encode(data).decode()[:40] not in text


# ---------------------------------------------------------------- history


def test_follow_up_carries_the_image_and_save_load_keep_it(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    draw(shell)
    run(shell, "%%chat --image fig\nWhat does this show?", cell_id="a")
    image = last_body(server)["messages"][0]["content"][1]
    captured = run(shell, "%%chat\nWhich bar is tallest?", cell_id="b")
    messages = last_body(server)["messages"]
    assert messages[0] == {
        "role": "user",
        "content": [{"type": "text", "text": "What does this show?"}, image],
    }
    assert messages[1]["role"] == "assistant"
    assert messages[2] == {"role": "user", "content": "Which bar is tallest?"}
    assert "I see 1 image: 640×480 PNG." in everything(captured)

    shown = run(shell, "%chat --show")
    markdown = shown.outputs[0].data["text/markdown"]
    assert "![image: 640×480 PNG, " in markdown and "](data:image/png;base64,iVBOR" in markdown
    assert len(markdown) < len(image["image_url"]["url"])  # a thumbnail
    plain = shown.outputs[0].data["text/plain"]
    assert "[image: 640×480 PNG, " in plain and "base64" not in plain

    path = tmp_path / "chat.json"
    run(shell, f"%chat --save {path}")
    run(shell, "%chat --reset")
    run(shell, f"%chat --load {path}")
    run(shell, "%%chat\nAnd the shortest?", cell_id="c")
    assert last_body(server)["messages"][0]["content"][1] == image


# ---------------------------------------------------------------- cache and log


def test_cache_key_covers_the_image_bytes(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.run_line_magic("config", "WriterMagics.cache_path = ''")
    shell.user_ns["red"] = encoded("PNG")
    buffer = io.BytesIO()
    PIL_Image.new("RGB", (30, 20), (0, 0, 255)).save(buffer, format="PNG")
    shell.user_ns["blue"] = buffer.getvalue()
    run(shell, "%%chat --cache --new --image red\nWhat colour is this?")
    run(shell, "%%chat --cache --new --image blue\nWhat colour is this?")
    assert len(server.requests) == 2  # same text, other bytes: not a cache hit
    captured = run(shell, "%%chat --cache --new --image red\nWhat colour is this?")
    assert len(server.requests) == 2  # same bytes: answered from the cache
    assert "cached" in everything(captured)


def test_prompt_log_keeps_hash_type_size_not_bytes(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    log = tmp_path / "log.sqlite3"
    shell.run_line_magic("config", f"WriterMagics.log_path = {str(log)!r}")
    data = encoded("JPEG", (64, 48))
    shell.user_ns["photo"] = data
    run(shell, "%%chat --image photo\nWhat is it?")
    with sqlite3.connect(log) as db:
        (stored,) = db.execute("SELECT messages FROM entries").fetchone()
    assert base64.b64encode(data).decode()[:20] not in stored
    (message,) = json.loads(stored)
    assert message["content"][1] == {
        "type": "image_url",
        "image_url": {
            "sha256": hashlib.sha256(data).hexdigest(),
            "type": "image/jpeg",
            "width": 64,
            "height": 48,
            "bytes": len(data),
        },
    }
    listed = run(shell, "%writer log -n 1")
    assert "What is it? [image: 64×48 JPEG" in everything(listed)


# ---------------------------------------------------------------- size


def noise_png(side: int) -> bytes:
    import random

    rng = random.Random(7)
    picture = PIL_Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_image_over_the_default_limit_is_shrunk_with_pillow(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    big = noise_png(1400)  # incompressible: about 5.6 MB
    assert len(big) > 5 * 1024 * 1024
    shell.user_ns["big"] = big
    captured = run(shell, "%%chat --image big\nWhat is this noise?")
    url = last_body(server)["messages"][0]["content"][1]["image_url"]["url"]
    sent = base64.b64decode(url.split(",", 1)[1])
    assert len(sent) <= 5 * 1024 * 1024
    assert sent_image(url).width < 1400
    assert "Shrunk big from 1400×1400 PNG, 5." in captured.stderr
    assert "to fit the 5 MB image limit" in captured.stderr


def test_an_image_over_the_limit_without_pillow_is_refused(
    shell: InteractiveShell, server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    shell.run_line_magic("config", "WriterMagics.max_image_bytes = 1000")
    data = noise_png(40)
    shell.user_ns["big"] = data
    monkeypatch.setitem(sys.modules, "PIL", None)  # Pillow is not installed
    line = refused(run(shell, "%%chat --image big\nToo big?"))
    assert line == (
        f"UsageError: --image big: the image is {round(len(data) / 1024)} KB, over the "
        "1000 bytes limit; install Pillow to shrink it automatically, or make it smaller"
    )
    assert server.requests == []


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("%%chat --image missing.png\nQ", "--image missing.png: no such file"),
        ("%%chat --image /dev/zero\nQ", "--image /dev/zero: cannot read it (not a regular"),
        (
            "%%chat --image notes_txt\nQ",
            "--image notes_txt: no variable 'notes_txt' in the notebook and no file of that name",
        ),
        ("%%chat --image numbers\nQ", "--image numbers: numbers holds a list, not an image"),
        ("%%chat --image words\nQ", "--image words: words holds a str, not an image"),
        ("%%chat --image text_bytes\nQ", "the bytes in text_bytes are not a PNG, JPEG, GIF"),
        ("%%chat --image FAKE\nQ", "the file is not a PNG, JPEG, GIF or WebP image"),
        ("%%chat --image http://example.com/a.png\nQ", "plain http:// image URLs are not accepted"),
        ("%%chat --image ftp://example.com/a.png\nQ", "only https:// and data:image/ URLs"),
        ("%%chat --image data:image/png;base64,!!!\nQ", "not a base64 data:image/... URL"),
        ("%%chat --image fig -m palmyra-x4\nQ", "--image works only with palmyra-x5; palmyra-x4"),
        (
            "%%chat --image fig -m palmyra-x5,palmyra-x4\nQ",
            "--image works only with palmyra-x5; palmyra-x4 does not accept images",
        ),
        ("%%complete --image fig\nQ", "--image is a %%chat option; %%complete does not take it"),
        ("%chat --show --image fig", "%chat --show does not take it"),
        ("%%chat --image\nQ", "--image needs a value"),
        ("%%chat --image fig -m palmyra-vision\nQ", "palmyra-vision does not accept images"),
        (
            "%%chat --image fig -m palmyra-x4 -m palmyra-x5,palmyra-med\nQ",
            "palmyra-x4, palmyra-med do not accept images (use -m palmyra-x5)",
        ),
    ],
)
def test_bad_input_is_one_line_and_sends_nothing(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path, cell: str, expected: str
) -> None:
    draw(shell)
    fake = tmp_path / "fake.png"
    fake.write_text("not really a png")
    shell.user_ns.update(numbers=[1, 2], words="chart.png", text_bytes=b"plain text")
    line = refused(run(shell, cell.replace("FAKE", str(fake))))
    assert expected in line
    assert server.requests == []


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_an_image_cut_short_is_one_line_and_sends_nothing(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path, fmt: str
) -> None:
    """A download stopped half-way: the header is fine, the end is missing."""
    whole = encoded(fmt, (64, 48))
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(whole[: max(40, len(whole) // 2)])
    shell.user_ns["cut_bytes"] = whole[: max(40, len(whole) // 2)]
    line = refused(run(shell, f"%%chat --image {cut}\nQ"))
    assert f"the file is a {fmt} image cut short (its end is missing)" in line
    line = refused(run(shell, "%%chat --image cut_bytes\nQ"))
    assert f"the bytes in cut_bytes are a {fmt} image cut short" in line
    assert server.requests == []
    assert imagefmt.is_whole(whole, fmt)  # the whole one passes


def test_nothing_is_sent_when_the_second_image_is_bad(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["raw"] = encoded("PNG")
    refused(run(shell, "%%chat --image raw --image missing.png\nQ"))
    assert server.requests == []
    run(shell, "%%chat --image raw\nQ")  # the next cell works
    assert len(server.requests) == 1


# ---------------------------------------------------------------- the bundled server


def test_server_refuses_a_broken_data_url_and_an_image_for_another_model(
    server: ServerHandle,
) -> None:
    def post(model: str, url: str) -> httpx.Response:
        body = {"model": model, "messages": [asked("Q", url)]}
        return httpx.post(f"{server.url}/v1/chat", json=body, timeout=10)

    bad = post("palmyra-x5", "data:image/png;base64," + base64.b64encode(b"text").decode())
    assert bad.status_code == 400 and "not a base64 PNG, JPEG, GIF or WebP" in bad.text
    other = post("palmyra-x4", data_url(encoded("PNG"), "image/png"))
    assert other.status_code == 400 and "need palmyra-x5" in other.text
    plain = post("palmyra-x5", "http://example.com/a.png")
    assert plain.status_code == 400
    good = post("palmyra-x5", data_url(encoded("WEBP", (12, 34)), "image/webp"))
    assert good.status_code == 200
    assert good.json()["choices"][0]["message"]["content"].startswith("I see 1 image: 12×34 WEBP.")


@pytest.mark.parametrize("prompt", ["Q", "What is in these?", "Compare them, please", "Hm"])
def test_the_servers_image_sentence_is_exact_at_any_temperature(
    server: ServerHandle, prompt: str
) -> None:
    """Lessons and tests match "I see N images: ..."; no filler word may replace a word."""
    url = data_url(encoded("PNG", (64, 48)), "image/png")
    body = {
        "model": "palmyra-x5",
        "temperature": 2,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": prompt}]
                + [{"type": "image_url", "image_url": {"url": url}} for _ in range(4)],
            }
        ],
    }
    answer = httpx.post(f"{server.url}/v1/chat", json=body, timeout=10).json()
    text = answer["choices"][0]["message"]["content"]
    assert text.startswith("I see 4 images: " + ", ".join(["64×48 PNG"] * 3) + " and 64×48 PNG.")


def test_a_huge_file_is_refused_without_reading_it(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.png"
    with huge.open("wb") as handle:
        handle.truncate(101 * 1024 * 1024)  # sparse: nothing is written
    line = refused(run(shell, f"%%chat --image {huge}\nQ"))
    assert "the file is 101 MB, too large to read" in line
    assert server.requests == []


def test_without_pillow_a_small_image_is_its_own_thumbnail(
    shell: InteractiveShell, server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = encoded("PNG")
    shell.user_ns["raw"] = data
    monkeypatch.setitem(sys.modules, "PIL", None)
    captured = run(shell, "%%chat --image raw\nWhat colour?")
    html = captured.outputs[0].data["text/html"]
    assert f'src="{data_url(data, "image/png")}"' in html
    assert captured.outputs[0].data["text/plain"] == f"[image: 30×20 PNG, {len(data)} bytes]"


def test_the_module_needs_neither_matplotlib_nor_pillow() -> None:
    import subprocess

    code = (
        "import sys; import writer_magics.line.images, writer_magics.line.imagefmt; "
        "assert not {'PIL', 'matplotlib'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
