"""Helpers for the media tests: decode a film, rebuild deliberately broken films."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from pathlib import Path

import av
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]
SIZE = (320, 240)  # the synthetic clips' size


def decode_pictures(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as c:
        return [f.to_image() for f in c.decode(video=0)]


def decode_audio(path: Path) -> array:
    """The left channel as 48 kHz float samples, trimmed to the stream's duration (the decoder keeps the
    encoder's end padding; the edit list's duration does not)."""
    out = array("f")
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
        for frame in c.decode(stream):
            for r in resampler.resample(frame):
                out.extend(array("f", bytes(r.planes[0])[: 4 * r.samples]))
        duration = round(stream.duration * stream.time_base * 48000)
    return out[:duration]


def pts_steps(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        pts = [f.pts for f in c.decode(video=0)]
    return [b - a for a, b in zip(pts, pts[1:], strict=False)]


def naive_sequence(clips: Sequence[Path]) -> list[list[Image.Image]]:
    return [decode_pictures(p) for p in clips]
