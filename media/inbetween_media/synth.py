"""Synthetic storyboards for tests and measurements (Pillow + PyAV only, deterministic).

Keyframe ``k`` is a coloured gradient with a white square at a position of its own. Clip ``k`` moves from
keyframe ``k`` to keyframe ``k+1`` over ``frames`` frames: the colour cross-dissolves and the square slides,
so consecutive frames differ; optional grain (new noise each frame) stands in for real footage. The first
and last frames are rendered without grain, so they are exactly the keyframes (before encoding). Optional
audio: a sine tone of ``tone_hz`` lasting exactly the video's length.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageChops, ImageDraw

PALETTE = [(200, 40, 40), (40, 160, 60), (40, 70, 200), (220, 200, 40), (160, 40, 180), (40, 190, 200)]


def _params(k: int, size: tuple[int, int]) -> tuple[tuple[int, int, int], tuple[float, float]]:
    w, h = size
    colour = PALETTE[k % len(PALETTE)]
    # the square visits the corners and the centre in turn
    spots = [(0.15, 0.2), (0.7, 0.6), (0.2, 0.65), (0.65, 0.15), (0.45, 0.4)]
    sx, sy = spots[k % len(spots)]
    return colour, (sx * w, sy * h)


def _render(colour: Sequence[float], pos: tuple[float, float], size: tuple[int, int]) -> Image.Image:
    w, h = size
    base = Image.new("RGB", size, tuple(round(c) for c in colour))
    shade = Image.linear_gradient("L").resize(size).convert("RGB")
    img = Image.blend(base, ImageChops.multiply(base, shade), 0.5)
    side = max(4, min(w, h) // 5)
    ImageDraw.Draw(img).rectangle(
        [round(pos[0]), round(pos[1]), round(pos[0]) + side, round(pos[1]) + side], fill=(245, 245, 245)
    )
    return img


def keyframe(k: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    colour, pos = _params(k, size)
    return _render(colour, pos, size)


def frame_between(k: int, t: float, size: tuple[int, int], grain: float = 0.0) -> Image.Image:
    """The picture at ``t`` in [0, 1] of the way from keyframe ``k`` to ``k+1``."""
    if t <= 0.0:
        return keyframe(k, size)
    if t >= 1.0:
        return keyframe(k + 1, size)
    (c0, p0), (c1, p1) = _params(k, size), _params(k + 1, size)
    colour = [a + (b - a) * t for a, b in zip(c0, c1, strict=True)]
    pos = (p0[0] + (p1[0] - p0[0]) * t, p0[1] + (p1[1] - p0[1]) * t)
    img = _render(colour, pos, size)
    if grain > 0:
        noise = Image.effect_noise(size, grain).convert("RGB")
        img = ImageChops.add(img, noise, 1.0, -128)
    return img


def tone(samples: int, hz: float, amplitude: float = 0.3, phase_samples: int = 0) -> array[float]:
    step = 2 * math.pi * hz / 48000
    return array("f", [amplitude * math.sin(step * (i + phase_samples)) for i in range(samples)])


def write_clip(
    path: str | Path,
    pictures: Sequence[Image.Image],
    *,
    fps: int = 30,
    audio: Sequence[float] | None = None,
    audio_layout: str = "stereo",
    preset: str = "veryfast",
    crf: int = 20,
) -> Path:
    """Encode ``pictures`` (and ``audio``, 48 kHz samples for every channel) as an H.264/AAC MP4."""
    path = Path(path)
    width, height = pictures[0].size
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.options = {"preset": preset, "crf": str(crf)}
        astream = None
        if audio is not None:
            astream = out.add_stream("aac", rate=48000, layout=audio_layout)
        for i, picture in enumerate(pictures):
            rgb = av.VideoFrame.from_image(picture.convert("RGB"))  # type: ignore[no-untyped-call]
            frame = rgb.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode(None):
            out.mux(packet)
        if astream is not None and audio is not None:
            samples = array("f", audio)
            chunk = 4096
            for at in range(0, len(samples), chunk):
                part = samples[at : at + chunk]
                frame = av.AudioFrame(format="fltp", layout=audio_layout, samples=len(part))
                data = part.tobytes()
                for plane in frame.planes:
                    plane.update(data + bytes(plane.buffer_size - len(data)))
                frame.sample_rate, frame.pts, frame.time_base = 48000, at, Fraction(1, 48000)
                for packet in astream.encode(frame):
                    out.mux(packet)
            for packet in astream.encode(None):
                out.mux(packet)
    return path


def make_clip(
    path: str | Path,
    k: int,
    *,
    frames: int = 30,
    size: tuple[int, int] = (320, 240),
    fps: int = 30,
    tone_hz: float | None = None,
    grain: float = 0.0,
    preset: str = "veryfast",
    crf: int = 20,
    audio_layout: str = "stereo",
) -> Path:
    """Clip ``k``: keyframe ``k`` to keyframe ``k+1`` in ``frames`` frames, with an optional tone."""
    pictures = [frame_between(k, i / (frames - 1), size, grain) for i in range(frames)]
    audio = tone(frames * 48000 // fps, tone_hz) if tone_hz else None
    return write_clip(path, pictures, fps=fps, audio=audio, audio_layout=audio_layout, preset=preset, crf=crf)
