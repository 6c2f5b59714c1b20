"""Helpers for the provider tests: a fake key, a scripted MockTransport handler, frames made in memory."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import httpx
import pytest
from PIL import Image

FAKE_KEY = "sk-test-SECRET-7f3a9c0d1e2b"
BASE_URL = "http://dashscope.test/api/v1"


class Recorder:
    """A MockTransport handler that answers from a script and remembers every request."""

    def __init__(self, *responses: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]):
        self.script = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step.with_traceback(None)
        if callable(step):
            return step(request)
        # a fresh copy each time: a scripted answer may be served more than once
        return httpx.Response(step.status_code, headers=step.headers, content=step.content)


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def never_called(request: httpx.Request) -> httpx.Response:
    pytest.fail(f"the network was reached: {request.method} {request.url}")


# -- frames ---------------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **save_kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_kw)
    return buffer.getvalue()


def frame(fmt: str = "PNG", size: tuple[int, int] = (320, 240), mode: str = "RGB", **save_kw) -> bytes:
    colour = {"RGB": (0, 0, 255), "RGBA": (0, 0, 255, 128), "LA": (90, 128)}.get(mode, 0)
    image = Image.new(mode, size, color=colour)
    # some texture so JPEG/WEBP bodies are not trivially small
    for x in range(0, size[0], 7):
        image.putpixel(
            (x, x % size[1]),
            {"RGB": (255, 255, 0), "RGBA": (255, 255, 0, 255), "LA": (200, 255)}.get(mode, 200),
        )
    return encode(image, fmt, **save_kw)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with a tiny (incomplete) pixel stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
