"""Frame geometry and pixel work on yuv420p frames, with PyAV and Pillow only (no numpy).

**Fit rule (letterbox).** A picture of ``w x h`` is fitted into a ``W x H`` film by scaling it to the largest
size that fits while keeping its aspect ratio, rounding width and height to even numbers (at least 2, at most
``W``/``H``), and centring it on black, with both offsets rounded *down* to even numbers (so the chroma planes
of yuv420p line up). The same rule fits keyframe images in the verifier and pictures on the contact sheet.
A picture of the film's own size is used unchanged. Black is Y=16, U=V=128 (limited range).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import av
from av.video.reformatter import ColorRange, Interpolation
from PIL import Image

BLACK_YUV = (16, 128, 128)


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    w: int
    h: int


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def fit_rect(src_w: int, src_h: int, dst_w: int, dst_h: int) -> Rect:
    """Where a ``src_w x src_h`` picture goes inside ``dst_w x dst_h`` under the fit rule above."""
    if (src_w, src_h) == (dst_w, dst_h):
        return Rect(0, 0, dst_w, dst_h)
    scale = min(dst_w / src_w, dst_h / src_h)
    w = min(dst_w, _even(src_w * scale))
    h = min(dst_h, _even(src_h * scale))
    return Rect(((dst_w - w) // 2) & ~1, ((dst_h - h) // 2) & ~1, w, h)


def film_size(width: int, height: int) -> tuple[int, int]:
    """The film's size for a first clip of ``width x height``: the same, rounded down to even numbers."""
    return width & ~1, height & ~1


def plane_image(plane: Any, width: int, height: int) -> Image.Image:
    """A frame plane as a Pillow ``L`` image (the plane's row stride may exceed its width)."""
    return Image.frombytes("L", (width, height), bytes(plane), "raw", "L", plane.line_size)


def frame_planes(frame: av.VideoFrame) -> tuple[Image.Image, Image.Image, Image.Image]:
    w, h = frame.width, frame.height
    p = frame.planes
    return plane_image(p[0], w, h), plane_image(p[1], w // 2, h // 2), plane_image(p[2], w // 2, h // 2)


def frame_from_planes(y: Image.Image, u: Image.Image, v: Image.Image) -> av.VideoFrame:
    frame = av.VideoFrame(y.width, y.height, "yuv420p")
    for plane, img in zip(frame.planes, (y, u, v), strict=True):
        plane.update(img.tobytes("raw", "L", plane.line_size))
    frame.color_range = ColorRange.MPEG
    return frame


def _is_full_range(frame: av.VideoFrame) -> bool:
    return frame.format.name.startswith("yuvj") or frame.color_range == ColorRange.JPEG


def fit_frame(frame: av.VideoFrame, width: int, height: int) -> tuple[av.VideoFrame, bool]:
    """``frame`` as limited-range yuv420p of ``width x height`` (letterboxed if its size differs).

    Returns the frame and whether it was letterboxed. A frame that needs nothing is returned as it is.
    """
    full = _is_full_range(frame)
    rect = fit_rect(frame.width, frame.height, width, height)
    if rect == Rect(0, 0, width, height) and frame.format.name == "yuv420p" and not full:
        return frame, False
    scaled = frame.reformat(
        width=rect.w,
        height=rect.h,
        format="yuv420p",
        interpolation=Interpolation.BICUBIC,
        src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
        dst_color_range=ColorRange.MPEG,
    )
    if (rect.w, rect.h) == (width, height):
        scaled.color_range = ColorRange.MPEG
        return scaled, False
    canvases = [
        Image.new("L", (width, height), BLACK_YUV[0]),
        Image.new("L", (width // 2, height // 2), BLACK_YUV[1]),
        Image.new("L", (width // 2, height // 2), BLACK_YUV[2]),
    ]
    for i, (canvas, plane) in enumerate(zip(canvases, frame_planes(scaled), strict=True)):
        canvas.paste(plane, (rect.x, rect.y) if i == 0 else (rect.x // 2, rect.y // 2))
    return frame_from_planes(*canvases), True


def blend_frames(a: av.VideoFrame, b: av.VideoFrame, weight_b: float) -> av.VideoFrame:
    """``(1 - weight_b) * a + weight_b * b`` on each yuv420p plane (both frames of the same size)."""
    planes = [Image.blend(pa, pb, weight_b) for pa, pb in zip(frame_planes(a), frame_planes(b), strict=True)]
    return frame_from_planes(*planes)


def fit_image(
    image: Image.Image, width: int, height: int, fill: tuple[int, int, int] = (0, 0, 0)
) -> Image.Image:
    """An RGB ``image`` fitted into ``width x height`` by the fit rule (black bars)."""
    image = image.convert("RGB")
    rect = fit_rect(image.width, image.height, width, height)
    if rect == Rect(0, 0, width, height) and image.size == (width, height):
        return image
    scaled = image.resize((rect.w, rect.h), Image.Resampling.BICUBIC)
    if (rect.w, rect.h) == (width, height):
        return scaled
    canvas = Image.new("RGB", (width, height), fill)
    canvas.paste(scaled, (rect.x, rect.y))
    return canvas


def frame_image(frame: av.VideoFrame, width: int | None = None, height: int | None = None) -> Image.Image:
    """A decoded frame as an RGB Pillow image, optionally scaled (by swscale) to ``width x height``."""
    if width is not None and height is not None:
        frame = frame.reformat(width=width, height=height, format="rgb24", interpolation=Interpolation.AREA)
    image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
    return image
