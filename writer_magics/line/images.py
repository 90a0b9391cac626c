"""``%%chat --image SOURCE``: images as chat content parts for ``palmyra-x5``.

Writer's chat takes a user message whose ``content`` is a list of fragments: the text
``{"type": "text", "text": ...}`` then one ``{"type": "image_url", "image_url": {"url":
...}}`` per image, where ``url`` is an ``https://`` address or a ``data:image/...;base64,``
URL. Only ``palmyra-x5`` accepts them.

A SOURCE is, in this order:

* an ``https://`` URL or a ``data:image/...;base64,`` URL, sent as given (``http://`` is
  refused: Writer fetches the address, and a plain-http one is readable by anyone);
* a name (or ``name.attr``, ``name[0]``) in the notebook's namespace holding a matplotlib
  ``Figure`` or ``Axes`` (rendered as PNG at :data:`FIGURE_DPI`), a Pillow ``Image``, an
  ``IPython.display.Image`` or ``bytes`` of an image; recognised by duck typing, so
  neither matplotlib nor Pillow is needed to import this module;
* a file path.

Bytes are sniffed (:mod:`writer_magics.line.imagefmt`): PNG, JPEG, GIF and WebP only, whatever
the file is called. An image larger than the limit (:data:`MAX_IMAGE_BYTES`, 5 MiB,
``WriterMagics.max_image_bytes``) is shrunk with Pillow when it is installed (halving
until it fits, with a note on stderr) and refused in one line otherwise.

Everything here is pure (the caller displays :func:`bundle`) except the Pillow and
matplotlib calls made for objects that are already in the namespace.
"""

from __future__ import annotations

import hashlib
import html
import io
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

from writer_magics.errors import PromptError
from writer_magics.files import check_readable
from writer_magics.line import imagefmt
from writer_magics.line.prompt import is_reference, resolve_reference

__all__ = [
    "FIGURE_DPI",
    "IMAGE_MODEL",
    "MAX_IMAGE_BYTES",
    "ChatImage",
    "attach",
    "check_models",
    "for_log",
    "images_in",
    "markdown_lines",
    "resolve",
    "shorten_data_urls",
    "text_of",
    "user_message",
]

#: The one model whose chat accepts image content parts.
IMAGE_MODEL = "palmyra-x5"
#: Largest image (decoded bytes) sent as a data URL; larger ones are shrunk or refused.
MAX_IMAGE_BYTES = 5 * 1024 * 1024
#: Dots per inch for a matplotlib figure: the default 6.4 x 4.8 in figure is 640 x 480.
FIGURE_DPI = 100
#: Longest side of a thumbnail in the live view and ``%chat --show`` (pixels).
THUMBNAIL_PIXELS = 128
#: Without Pillow a thumbnail is the image itself, only when at most this large.
RAW_THUMBNAIL_BYTES = 256 * 1024
#: Files larger than this are not read at all (even Pillow would not help in reason).
MAX_READ_BYTES = 100 * 1024 * 1024
#: Times an oversized image is scaled down before giving up.
SHRINK_STEPS = 8

_ACCEPTED = "a matplotlib Figure or Axes, a Pillow Image, an IPython.display.Image or bytes"
_FORMATS = "a PNG, JPEG, GIF or WebP image"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class ChatImage:
    """One image of a user message.

    ``url`` is what is sent (a data URL, or an https address); ``data`` the image bytes
    (empty for an address: Writer fetches it); ``format`` PNG/JPEG/GIF/WEBP (None for an
    address), ``width`` x ``height`` in pixels, ``sha256`` of the bytes (hex).
    """

    url: str
    data: bytes = b""
    format: str | None = None
    width: int = 0
    height: int = 0
    source: str = ""

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "", url: str | None = None) -> ChatImage:
        """An image from its bytes (``url``: the data URL to keep, if given as one).

        Raises ``ValueError`` (its text says what the bytes are, after "is" / "are")
        when the bytes are not a PNG, JPEG, GIF or WebP image, or one cut short.
        """
        found = imagefmt.sniff(data)
        if found is None:
            raise ValueError(f"not {_FORMATS}")
        if not imagefmt.is_whole(data, found.name):
            raise ValueError(f"a {found.name} image cut short (its end is missing)")
        return cls(
            url=url or imagefmt.data_url(data, found.mime),
            data=data,
            format=found.name,
            width=found.width,
            height=found.height,
            source=source,
        )

    @classmethod
    def from_url(cls, url: str, source: str = "") -> ChatImage:
        """An image from what a fragment carries (a data URL is decoded and sniffed)."""
        decoded = imagefmt.decode_data_url(url)
        if decoded is not None:
            try:
                return cls.from_bytes(decoded[1], source, url=url)
            except ValueError:
                pass
        return cls(url=url, source=source)

    @property
    def size(self) -> int:
        """Bytes of the image (0 for an address)."""
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest() if self.data else ""

    @property
    def mime(self) -> str | None:
        return imagefmt.FORMATS[self.format] if self.format else None

    def label(self) -> str:
        """``640×480 PNG, 34 KB``, or the address of an image sent by URL."""
        if not self.format:
            return _short(self.url, 80)
        return f"{self.width}×{self.height} {self.format}, {human_size(self.size)}"

    def fragment(self) -> dict[str, Any]:
        """The content part, exactly in Writer's shape."""
        return {"type": "image_url", "image_url": {"url": self.url}}

    def summary(self) -> dict[str, Any]:
        """What the prompt log keeps instead of the bytes."""
        if not self.format:
            return {"url": self.url}
        return {
            "sha256": self.sha256,
            "type": self.mime,
            "width": self.width,
            "height": self.height,
            "bytes": self.size,
        }


def human_size(count: int) -> str:
    """``812 bytes``, ``34 KB``, ``5 MB``, ``7.9 MB`` (1 KB = 1024 bytes)."""
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{max(1, round(count / 1024))} KB"
    megabytes = f"{count / (1024 * 1024):.1f}"
    return f"{megabytes.removesuffix('.0')} MB"


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --------------------------------------------------------------------------- checks


def check_models(models: Iterable[str]) -> None:
    """``--image`` needs palmyra-x5 for every request (a sweep included); UsageError."""
    others = [m for m in dict.fromkeys(models) if m != IMAGE_MODEL]
    if others:
        which = ", ".join(others)
        raise UsageError(
            f"--image works only with {IMAGE_MODEL}; {which} "
            f"{'does' if len(others) == 1 else 'do'} not accept images "
            f"(use -m {IMAGE_MODEL})"
        )


def resolve(
    sources: Sequence[str],
    user_ns: Mapping[str, Any],
    *,
    models: Iterable[str],
    max_bytes: int = MAX_IMAGE_BYTES,
) -> tuple[ChatImage, ...]:
    """The images of ``--image`` values, checked; one-line ``UsageError`` on bad input.

    The model check comes first, so a wrong model is refused before any file is read.
    """
    if not sources:
        return ()
    check_models(models)
    return tuple(_resolve_one(source.strip(), user_ns, max_bytes) for source in sources)


def _resolve_one(source: str, user_ns: Mapping[str, Any], max_bytes: int) -> ChatImage:
    lower = source.lower()
    if not source:
        raise UsageError("--image needs a value: a variable, a file path or an https:// URL")
    if lower.startswith("https://"):
        if len(source) == len("https://") or any(c.isspace() for c in source):
            raise UsageError(f"--image {source!r} is not a valid https:// URL")
        return ChatImage(url=source, source=source)
    if lower.startswith("http://"):
        raise UsageError(
            f"--image {_short(source, 80)}: plain http:// image URLs are not accepted; "
            "use an https:// URL or download the image and pass the file"
        )
    if lower.startswith("data:"):
        return _from_data_url(source, max_bytes)
    root = re.match(r"[^\W\d]\w*", source)
    if is_reference(source) and root is not None and root.group() in user_ns:
        try:
            value = resolve_reference(source, user_ns)
        except PromptError as exc:
            if not Path(source).expanduser().is_file():
                raise UsageError(f"--image {source}: {exc}") from None
        else:
            return _from_object(value, source, max_bytes)
    if _SCHEME.match(source) and not Path(source).exists() and len(source.split(":")[0]) > 1:
        raise UsageError(
            f"--image {_short(source, 80)}: only https:// and data:image/ URLs are accepted"
        )
    return _from_file(source, max_bytes, named=is_reference(source))


def _from_data_url(source: str, max_bytes: int) -> ChatImage:
    decoded = imagefmt.decode_data_url(source)
    shown = shorten_data_url(source)
    if decoded is None:
        raise UsageError(f"--image {shown}: not a base64 data:image/... URL")
    try:
        image = ChatImage.from_bytes(decoded[1], "data URL", url=source.strip())
    except ValueError as exc:
        raise UsageError(f"--image {shown}: the data is {exc}") from None
    return _fit(image, max_bytes)


def _from_file(source: str, max_bytes: int, *, named: bool) -> ChatImage:
    path = Path(source).expanduser()
    if not path.exists():
        if named and "." not in source:
            raise UsageError(
                f"--image {source}: no variable {source!r} in the notebook and no file of that name"
            )
        raise UsageError(f"--image {source}: no such file")
    if path.is_dir():
        raise UsageError(f"--image {source}: is a directory, not an image file")
    try:
        size = check_readable(path, limit=None)  # a device or a pipe would never end
        if size > MAX_READ_BYTES:
            raise UsageError(
                f"--image {source}: the file is {human_size(size)}, too large to read "
                f"(the limit is {human_size(max_bytes)}; files up to "
                f"{human_size(MAX_READ_BYTES)} are shrunk with Pillow)"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--image {source}: cannot read it ({exc.strerror or exc})") from None
    try:
        image = ChatImage.from_bytes(data, source)
    except ValueError as exc:
        raise UsageError(
            f"--image {source}: the file is {exc} (judged by its bytes, not its name)"
        ) from None
    return _fit(image, max_bytes)


def _from_object(value: Any, name: str, max_bytes: int) -> ChatImage:
    data = _object_bytes(value, name, max_bytes)
    if isinstance(data, ChatImage):
        return data
    try:
        image = ChatImage.from_bytes(data, name)
    except ValueError as exc:
        raise UsageError(f"--image {name}: the bytes in {name} are {exc}") from None
    return _fit(image, max_bytes)


def _object_bytes(value: Any, name: str, max_bytes: int) -> bytes | ChatImage:
    """The encoded image an object holds (duck typing; see the module docstring)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    figure = _figure_of(value)
    if figure is not None:
        return _render_figure(figure, name)
    if _is_pillow(value):
        return _encode_pillow(value, name)
    data = getattr(value, "data", None)  # IPython.display.Image (embedded)
    if isinstance(data, bytes) and data:
        return data
    url = getattr(value, "url", None)  # IPython.display.Image(url=..., embed=False)
    if isinstance(url, str) and url and hasattr(value, "_repr_png_"):
        return _resolve_one(url, {}, max_bytes)
    for method in ("_repr_png_", "_repr_jpeg_"):
        shown = _call_repr(value, method)
        if shown:
            return shown
    kind = type(value).__name__
    hint = "; for a file path write --image $" + name if isinstance(value, str) else ""
    raise UsageError(f"--image {name}: {name} holds a {kind}, not an image ({_ACCEPTED}){hint}")


def _figure_of(value: Any) -> Any:
    """The matplotlib figure of a Figure or an Axes (anything with a figure that saves)."""
    if callable(getattr(value, "savefig", None)):
        return value
    getter = getattr(value, "get_figure", None)
    figure = getter() if callable(getter) else None
    if figure is not None and callable(getattr(figure, "savefig", None)):
        return figure
    return None


def _render_figure(figure: Any, name: str) -> bytes:
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    except Exception as exc:
        raise UsageError(f"--image {name}: the figure could not be drawn ({exc})") from None
    return buffer.getvalue()


def _is_pillow(value: Any) -> bool:
    size = getattr(value, "size", None)
    return (
        callable(getattr(value, "save", None))
        and isinstance(getattr(value, "mode", None), str)
        and isinstance(size, tuple)
        and len(size) == 2
    )


def _encode_pillow(image: Any, name: str) -> bytes:
    """A Pillow image in its own format when Writer takes it, else PNG."""
    chosen = image.format if image.format in imagefmt.FORMATS else "PNG"
    for fmt in dict.fromkeys((chosen, "PNG")):
        buffer = io.BytesIO()
        try:
            image.save(buffer, format=fmt)
        except Exception:
            continue
        return buffer.getvalue()
    try:
        buffer = io.BytesIO()
        image.convert("RGBA").save(buffer, format="PNG")
    except Exception as exc:
        raise UsageError(f"--image {name}: the image could not be encoded ({exc})") from None
    return buffer.getvalue()


def _call_repr(value: Any, method: str) -> bytes | None:
    func = getattr(value, method, None)
    if not callable(func):
        return None
    try:
        shown = func()
    except Exception:
        return None
    if isinstance(shown, tuple) and shown:
        shown = shown[0]
    if isinstance(shown, str):
        import base64
        import binascii

        try:
            return base64.b64decode(shown, validate=False)
        except (binascii.Error, ValueError):
            return None
    return shown if isinstance(shown, bytes) else None


# --------------------------------------------------------------------------- size


def _fit(image: ChatImage, max_bytes: int) -> ChatImage:
    """``image`` if within ``max_bytes``, else shrunk with Pillow, else UsageError."""
    if image.size <= max_bytes:
        return image
    over = (
        f"--image {image.source}: the image is {human_size(image.size)}, over the "
        f"{human_size(max_bytes)} limit"
    )
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise UsageError(
            f"{over}; install Pillow to shrink it automatically, or make it smaller"
        ) from None
    try:
        shrunk = _shrink(PILImage, image, max_bytes)
    except Exception as exc:
        raise UsageError(f"{over}, and shrinking it failed ({exc})") from None
    if shrunk is None:
        raise UsageError(f"{over}, and shrinking it did not get it under")
    print(
        f"Shrunk {image.source} from {image.label()} to {shrunk.label()} to fit the "
        f"{human_size(max_bytes)} image limit.",
        file=sys.stderr,
    )
    return shrunk


def _shrink(pil: Any, image: ChatImage, max_bytes: int) -> ChatImage | None:
    with pil.open(io.BytesIO(image.data)) as opened:
        opened.load()
        picture = opened.convert("RGBA") if opened.mode not in ("RGB", "RGBA", "L") else opened
        fmt = image.format if image.format in ("PNG", "JPEG", "WEBP") else "PNG"
        if fmt == "JPEG" and picture.mode == "RGBA":
            picture = picture.convert("RGB")
        scale = min(1.0, math.sqrt(max_bytes / image.size) * 0.9)
        for _ in range(SHRINK_STEPS):
            width = max(1, int(image.width * scale))
            height = max(1, int(image.height * scale))
            smaller = picture.resize((width, height), pil.LANCZOS)
            buffer = io.BytesIO()
            extra = {"quality": 85} if fmt in ("JPEG", "WEBP") else {"optimize": True}
            smaller.save(buffer, format=fmt, **extra)
            if buffer.tell() <= max_bytes:
                return ChatImage.from_bytes(buffer.getvalue(), image.source)
            scale *= 0.7
    return None


# --------------------------------------------------------------------------- messages


def user_message(text: str, images: Sequence[ChatImage]) -> dict[str, Any]:
    """The user message: plain text, or the text fragment then one fragment per image."""
    if not images:
        return {"role": "user", "content": text}
    parts = [{"type": "text", "text": text}, *(image.fragment() for image in images)]
    return {"role": "user", "content": parts}


def attach(messages: list[dict[str, Any]], images: Sequence[ChatImage]) -> list[dict[str, Any]]:
    """``messages`` whose last (user) message also carries ``images``."""
    if not images or not messages:
        return messages
    last = messages[-1]
    text = last.get("content")
    return [*messages[:-1], user_message(text if isinstance(text, str) else "", images)]


def images_in(content: Any) -> list[ChatImage]:
    """The images of a message ``content`` (a list of fragments; none in a string)."""
    found: list[ChatImage] = []
    if isinstance(content, list):
        for part in content:
            image = part.get("image_url") if isinstance(part, dict) else None
            url = image.get("url") if isinstance(image, dict) else None
            if isinstance(url, str) and part.get("type") == "image_url":
                found.append(ChatImage.from_url(url))
    return found


def text_of(content: Any) -> str:
    """The text of a message ``content``, with ``[image: ...]`` for each image."""
    if not isinstance(content, list):
        return "" if content is None else str(content)
    pieces = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "text":
            pieces.append(str(part.get("text", "")))
    for part in content:
        image = part.get("image_url") if isinstance(part, dict) else None
        if isinstance(image, dict) and part.get("type") == "image_url":
            pieces.append(f"[image: {_label_of(image)}]")
    return " ".join(p for p in pieces if p)


def _label_of(image: Mapping[str, Any]) -> str:
    """The label of a fragment's ``image_url``: sent (a URL) or logged (a summary)."""
    url = image.get("url")
    if isinstance(url, str):
        return ChatImage.from_url(url).label()
    kind = str(image.get("type", "image")).rpartition("/")[2].upper()
    size = image.get("bytes")
    size_text = human_size(size) if isinstance(size, int) else "? bytes"
    return f"{image.get('width')}×{image.get('height')} {kind}, {size_text}"


# --------------------------------------------------------------------------- shown, logged


def shorten_data_url(url: str) -> str:
    """``data:image/png;base64,iVBOR… (34 KB)``; other strings unchanged."""
    decoded = imagefmt.decode_data_url(url)
    if decoded is None:
        if url.startswith("data:") and len(url) > 60:
            return url[:40] + f"… ({human_size(len(url))} of text)"
        return url
    head, _, payload = url.partition(",")
    return f"{head},{payload[:5]}… ({human_size(len(decoded[1]))})"


def shorten_data_urls(value: Any) -> Any:
    """A copy of JSON ``value`` with every data URL shortened (for the dry run)."""
    if isinstance(value, str):
        return shorten_data_url(value) if value.startswith("data:") else value
    if isinstance(value, dict):
        return {k: shorten_data_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shorten_data_urls(v) for v in value]
    return value


def for_log(messages: Any) -> Any:
    """Messages with each image fragment replaced by its :meth:`ChatImage.summary`."""
    if not isinstance(messages, list):
        return messages
    logged = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            parts = []
            for part in content:
                found = images_in([part]) if isinstance(part, dict) else []
                if found:
                    parts.append({"type": "image_url", "image_url": found[0].summary()})
                else:
                    parts.append(part)
            message = {**message, "content": parts}
        logged.append(message)
    return logged


def thumbnail_url(image: ChatImage) -> str | None:
    """A small data URL for ``image`` (Pillow), the image itself if small, or None."""
    if not image.format:
        return image.url
    try:
        from PIL import Image as PILImage
    except ImportError:
        return image.url if image.size <= RAW_THUMBNAIL_BYTES else None
    try:
        with PILImage.open(io.BytesIO(image.data)) as opened:
            opened.seek(0)
            small = opened.convert("RGBA")
            small.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
            buffer = io.BytesIO()
            small.save(buffer, format="PNG", optimize=True)
    except Exception:
        return image.url if image.size <= RAW_THUMBNAIL_BYTES else None
    return imagefmt.data_url(buffer.getvalue(), "image/png")


def thumbnail_markdown(image: ChatImage) -> str:
    """``![image: 640×480 PNG, 34 KB](data:...)`` for a thumbnail, or the label in italics."""
    label = f"image: {image.label()}"
    src = thumbnail_url(image)
    if src is None or any(c in src for c in " ()<>"):
        return f"*[{label}]*"
    return f"![{label}]({src})"


def thumbnail_html(image: ChatImage) -> str:
    """One ``<img>`` at most :data:`THUMBNAIL_PIXELS` high, labelled; or the label alone."""
    label = html.escape(f"[image: {image.label()}]")
    src = thumbnail_url(image)
    if src is None:
        return f"<small>{label}</small>"
    return (
        f'<img src="{html.escape(src)}" alt="{label}" title="{label}" '
        f'style="max-height:{THUMBNAIL_PIXELS}px;max-width:{THUMBNAIL_PIXELS * 2}px;'
        'margin:0 6px 4px 0;border:1px solid var(--jp-border-color2,#ccc)">'
    )


def bundle(images: Sequence[ChatImage]) -> dict[str, str]:
    """The thumbnails as ``text/html`` and ``[image: 640×480 PNG, 34 KB]`` lines as text."""
    plain = "\n".join(f"[image: {image.label()}]" for image in images)
    thumbs = "".join(thumbnail_html(image) for image in images)
    return {"text/html": f'<div class="writer-magics-images">{thumbs}</div>', "text/plain": plain}


def markdown_lines(messages: Iterable[Mapping[str, Any]], *, thumbnails: bool = True) -> list[str]:
    """``%chat --show``: a line of Markdown thumbnails (or of ``[image: ...]`` labels when
    not ``thumbnails``) for the images of the user messages."""
    found = [
        image
        for message in messages
        if message.get("role") == "user"
        for image in images_in(message.get("content"))
    ]
    if not found:
        return []
    if not thumbnails:
        return [" ".join(f"[image: {image.label()}]" for image in found), ""]
    return [" ".join(thumbnail_markdown(image) for image in found), ""]
