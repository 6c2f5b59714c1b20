"""Checking wan2.7's audio and video inputs the way the reference describes them (§2), with PyAV."""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field

import av

from .errors import MEDIA_FORMAT_MESSAGE
from .media_models import AvLimits


class MediaRejected(Exception):
    """The file itself is unacceptable (format, size, sides, aspect, length)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True, slots=True)
class Audio:
    data: bytes = field(repr=False)
    format: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class Clip:
    data: bytes = field(repr=False)
    format: str
    width: int
    height: int
    duration_s: float
    fps: float


_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)$", re.S
)


def decode_av_data_uri(url: str, kind: str) -> bytes:
    """A ``data:audio/...`` or ``data:video/...`` URI (accepted only with ``media_data_uris``)."""
    found = _DATA_URI.match(url)
    if found is None or not (found.group("mime") or "").startswith(f"{kind}/"):
        raise MediaRejected(
            "InvalidParameter", f"The data URI is not base64-encoded {kind}: data:{kind}/...;base64,..."
        )
    try:
        return base64.b64decode(found.group("data"), validate=False)
    except (binascii.Error, ValueError) as error:
        raise MediaRejected("InvalidParameter", f"The base64 {kind} data could not be decoded.") from error


def check_size(size: int, limits: AvLimits, what: str) -> None:
    if size > limits.max_bytes:
        raise MediaRejected(
            "InvalidParameter",
            f"The {what} file is too large: it must not exceed {limits.max_bytes // 2**20} MB.",
        )


def _seconds(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


def _check_length(seconds: float, limits: AvLimits, what: str) -> None:
    # a hair of tolerance: encoders pad a frame or two
    if not limits.min_seconds - 0.05 <= seconds <= limits.max_seconds + 0.05:
        raise MediaRejected(
            "InvalidParameter",
            f"The {what} duration {seconds:.1f} s is not supported: it must be between "
            f"{limits.min_seconds:g} and {limits.max_seconds:g} seconds.",
        )


def check_aspect(width: int, height: int, max_aspect: float | None, what: str) -> None:
    if max_aspect is not None and max(width / height, height / width) > max_aspect:
        raise MediaRejected(
            "InvalidParameter",
            f"The {what} aspect ratio {width}:{height} is not supported: it must be between "
            f"1:{max_aspect:g} and {max_aspect:g}:1.",
        )


def check_audio(data: bytes, limits: AvLimits) -> Audio:
    """A wav or mp3 file of 2 to 30 s, at most 15 MB."""
    check_size(len(data), limits, "audio")
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            name = container.format.name
            if name not in limits.formats or not container.streams.audio:
                raise MediaRejected("InvalidParameter.DataInspection", MEDIA_FORMAT_MESSAGE)
            seconds = _seconds(container, container.streams.audio[0])
    except (av.FFmpegError, ValueError) as error:
        raise MediaRejected("InvalidParameter.DataInspection", MEDIA_FORMAT_MESSAGE) from error
    _check_length(seconds, limits, "audio")
    return Audio(data=data, format=name, duration_s=seconds)


def check_clip(data: bytes, limits: AvLimits) -> Clip:
    """An mp4 or mov video of 2 to 10 s, sides in [240, 4096], aspect 1:8..8:1, at most 100 MB."""
    check_size(len(data), limits, "video")
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            name = container.format.name
            if name not in limits.formats or not container.streams.video:
                raise MediaRejected("InvalidParameter.DataInspection", MEDIA_FORMAT_MESSAGE)
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            seconds = _seconds(container, stream)
            fps = float(stream.average_rate or stream.guessed_rate or 30)
            # one decoded frame proves the stream is readable
            next(container.decode(stream))
    except (av.FFmpegError, ValueError, StopIteration) as error:
        raise MediaRejected("InvalidParameter.DataInspection", MEDIA_FORMAT_MESSAGE) from error
    low, high = limits.min_side or 1, limits.max_side or 100_000
    if not (low <= width <= high and low <= height <= high):
        raise MediaRejected(
            "InvalidParameter",
            f"The video size {width}x{height} is not supported: width and height must be in [{low}, {high}] pixels.",
        )
    check_aspect(width, height, limits.max_aspect, "video")
    _check_length(seconds, limits, "video")
    return Clip(data=data, format=name, width=width, height=height, duration_s=seconds, fps=fps)
