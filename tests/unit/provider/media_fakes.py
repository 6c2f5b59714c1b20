"""Real audio and video files of a known length, written with PyAV (the test venv has it; the layer does
not), for the pure-Python readers of ``inbetween.provider.media``."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np


def write_audio(
    path: Path,
    seconds: float,
    *,
    rate: int = 44100,
    layout: str = "mono",
    codec: str | None = None,
    options: dict[str, str] | None = None,
) -> bytes:
    """A sine tone of ``seconds`` as WAV or MP3 (by ``path``'s suffix); returns the file's bytes."""
    fmt = path.suffix.lstrip(".")
    codec = codec or {"wav": "pcm_s16le", "mp3": "libmp3lame"}[fmt]
    channels = 1 if layout == "mono" else 2
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        total = round(seconds * rate)
        t = np.arange(total) / rate
        tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        step = 1152
        for start in range(0, total, step):
            chunk = tone[start : start + step]
            # packed s16: the channels interleaved in one row
            packed = np.repeat(chunk, channels).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path.read_bytes()


def write_video(
    path: Path,
    seconds: float,
    *,
    size: tuple[int, int] = (320, 240),
    fps: int = 10,
    options: dict[str, str] | None = None,
    with_audio: bool = False,
) -> bytes:
    """A clip of ``seconds`` (H.264, by ``path``'s suffix MP4 or MOV); returns the file's bytes."""
    fmt = path.suffix.lstrip(".")
    width, height = size
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        audio = container.add_stream("aac", rate=48000, layout="mono") if with_audio else None
        for index in range(round(seconds * fps)):
            picture = np.zeros((height, width, 3), np.uint8)
            picture[:, :, 1] = (index * 7) % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if audio is not None:
            samples = round(seconds * 48000)
            for start in range(0, samples, 1024):
                count = min(1024, samples - start)
                frame = av.AudioFrame.from_ndarray(
                    np.zeros((1, count), np.int16), format="s16", layout="mono"
                )
                frame.sample_rate = 48000
                frame.pts = start
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)
    return path.read_bytes()


def av_duration(path: Path) -> float:
    """What FFmpeg (through PyAV) says the file lasts: the reference the readers are held to."""
    with av.open(str(path)) as container:
        return container.duration / av.time_base


def quarter_turned(data: bytes) -> bytes:
    """``data`` with its first track header's matrix set to a 90-degree turn (as phones record)."""
    at = data.index(b"tkhd") + 4
    version = data[at]
    matrix = at + (52 if version == 1 else 40)
    turn = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    return data[:matrix] + turn + data[matrix + 36 :]


def box_offset(data: bytes, kind: bytes) -> int:
    """Where the box ``kind`` starts (its size field), searching by its type."""
    return data.index(kind) - 4
