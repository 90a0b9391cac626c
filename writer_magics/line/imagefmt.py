"""What an image's bytes are: format and pixel size, read from the header (pure, stdlib).

Used by ``%%chat --image`` (sniff the bytes, never trust a file extension) and by the
bundled server (which answers about the images it received). Only the formats Writer's
chat accepts are recognised: PNG, JPEG, GIF and WebP.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

__all__ = ["FORMATS", "ImageFormat", "data_url", "decode_data_url", "is_whole", "sniff"]

#: Format name -> MIME type, for the formats Writer's chat accepts.
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}

_DATA_URL = re.compile(r"data:(image/[A-Za-z0-9.+-]+);base64,(.*)", re.DOTALL)


@dataclass(frozen=True)
class ImageFormat:
    """``name`` is PNG, JPEG, GIF or WEBP; ``width`` and ``height`` in pixels."""

    name: str
    width: int
    height: int

    @property
    def mime(self) -> str:
        """``image/png`` and so on."""
        return FORMATS[self.name]


def sniff(data: bytes) -> ImageFormat | None:
    """The format and pixel size of ``data``, or None when it is not a PNG, JPEG, GIF or
    WebP image (or its header is cut short)."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            width, height = struct.unpack(">II", data[16:24])
            return _found("PNG", width, height)
        if data.startswith((b"GIF87a", b"GIF89a")):
            width, height = struct.unpack("<HH", data[6:10])
            return _found("GIF", width, height)
        if data.startswith(b"\xff\xd8\xff"):
            return _jpeg(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
    except struct.error:  # a header cut short
        return None
    return None


def is_whole(data: bytes, name: str) -> bool:
    """Whether ``data`` (sniffed as ``name``) reaches its format's end: PNG's ``IEND``
    chunk, JPEG's end-of-image marker, GIF's trailer, WebP's RIFF size. A file cut short
    (a download stopped half-way) fails; bytes after the end are allowed."""
    if name == "PNG":
        return data.rfind(b"IEND") > 8
    if name == "JPEG":
        return b"\xff\xd9" in data[-4096:]
    if name == "GIF":
        return data.rstrip(b"\x00").endswith(b";")
    if name == "WEBP":
        return int.from_bytes(data[4:8], "little") + 8 <= len(data)
    return True


def _found(name: str, width: int, height: int) -> ImageFormat | None:
    return ImageFormat(name, width, height) if width > 0 and height > 0 else None


# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(data: bytes) -> ImageFormat | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xDA)):  # standalone markers
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return _found("JPEG", width, height)
        if length < 2:
            return None
        pos += 2 + length
    return None


def _webp(data: bytes) -> ImageFormat | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return _found("WEBP", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        (bits,) = struct.unpack("<I", data[21:25])
        return _found("WEBP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return _found("WEBP", width, height) if len(data) >= 30 else None
    return None


def data_url(data: bytes, mime: str) -> str:
    """``data:image/png;base64,...`` for ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_url(url: str) -> tuple[str, bytes] | None:
    """``(mime, bytes)`` of a ``data:image/...;base64,`` URL, or None if it is not one
    (or its base64 is broken)."""
    match = _DATA_URL.fullmatch(url.strip())
    if match is None:
        return None
    try:
        return match.group(1).lower(), base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return None
