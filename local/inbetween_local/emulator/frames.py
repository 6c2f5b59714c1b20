"""Fetching and checking keyframes the way the provider does: http(s) URLs and base64 data URIs
(``oss://`` URLs are resolved by the engine from the emulator's temporary storage)."""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from inbetween.domain.catalog import ImageLimits
from PIL import Image, UnidentifiedImageError

from .errors import DOWNLOAD_FAILED_MESSAGE, MEDIA_FORMAT_MESSAGE


@dataclass(frozen=True, slots=True)
class Frame:
    data: bytes
    format: str
    width: int
    height: int


class FrameRejected(Exception):
    """The image itself is unacceptable (format, alpha, size, unreadable)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class FrameUnavailable(Exception):
    """The image could not be downloaded (refused host, HTTP error, timeout, a lapsed oss:// URL)."""

    code = "InvalidParameter"

    def __init__(self, message: str = DOWNLOAD_FAILED_MESSAGE) -> None:
        self.message = message
        super().__init__(message)


_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)$", re.S
)


def is_supported_url(url: str) -> bool:
    return url.startswith(("http://", "https://", "data:"))


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_frame(url: str, *, limits: ImageLimits, allow_remote: bool, timeout_s: float) -> Frame:
    """Bytes of the image at ``url``, checked against ``limits``.

    Raises ``FrameUnavailable`` for download failures and ``FrameRejected`` for bad images."""
    data = (
        decode_data_uri(url, limits)
        if url.startswith("data:")
        else _download(url, limits, allow_remote, timeout_s)
    )
    return check_image(data, limits)


def decode_data_uri(url: str, limits: ImageLimits) -> bytes:
    found = _DATA_URI.match(url)
    if found is None or not (found.group("mime") or "").startswith("image/"):
        raise FrameRejected(
            "InvalidParameter", "The data URI is not a base64-encoded image: data:image/...;base64,..."
        )
    try:
        data = base64.b64decode(found.group("data"), validate=False)
    except (binascii.Error, ValueError) as error:
        raise FrameRejected("InvalidParameter", "The base64 image data could not be decoded.") from error
    _check_bytes(len(data), limits)
    return data


def _download(url: str, limits: ImageLimits, allow_remote: bool, timeout_s: float) -> bytes:
    return download(
        url,
        on_received=lambda received: _check_bytes(received, limits),
        allow_remote=allow_remote,
        timeout_s=timeout_s,
    )


_shared: httpx.Client | None = None
_shared_lock = threading.Lock()


def _client() -> httpx.Client:
    """One client for every fetch (building one costs ~40 ms of TLS setup); no keep-alive, so no pooled
    connection outlives the servers tests start and stop."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = httpx.Client(follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=0))
        return _shared


def download(url: str, *, on_received: Callable[[int], None], allow_remote: bool, timeout_s: float) -> bytes:
    """GET ``url`` (loopback only unless ``allow_remote``); ``on_received(bytes so far)`` may raise to stop
    an oversized body. Raises ``FrameUnavailable`` when the file cannot be fetched."""
    # Never opens a connection to anything but loopback unless allowed: tests must stay offline.
    if not allow_remote and not is_loopback_host(urlsplit(url).hostname):
        raise FrameUnavailable()
    try:
        with _client().stream("GET", url, timeout=timeout_s) as response:
            if response.status_code != 200:
                raise FrameUnavailable()
            chunks: list[bytes] = []
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                on_received(received)
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as error:
        raise FrameUnavailable() from error


def _check_bytes(size: int, limits: ImageLimits) -> None:
    if size > limits.max_bytes:
        raise FrameRejected(
            "InvalidParameter",
            f"The image file is too large: it must not exceed {limits.max_bytes // 2**20} MB.",
        )


def check_image(data: bytes, limits: ImageLimits) -> Frame:
    _check_bytes(len(data), limits)
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise FrameRejected("InvalidParameter.DataInspection", _media_message()) from error
    with image:
        if image.format not in limits.formats:
            raise FrameRejected("InvalidParameter.DataInspection", _media_message())
        width, height = image.size
        # checked before decoding, so a decompression bomb is refused without being decoded
        if not (limits.min_side <= width <= limits.max_side and limits.min_side <= height <= limits.max_side):
            raise FrameRejected(
                "InvalidParameter",
                f"The image size {width}x{height} is not supported: width and height must be in "
                f"[{limits.min_side}, {limits.max_side}] pixels.",
            )
        has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
        if image.format == "PNG" and has_alpha and not limits.alpha_allowed:
            raise FrameRejected("InvalidParameter", "The PNG image must not have an alpha channel.")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise FrameRejected("InvalidParameter.DataInspection", _media_message()) from error
        return Frame(data=data, format=image.format, width=width, height=height)


def _media_message() -> str:
    return MEDIA_FORMAT_MESSAGE
