"""Poster (JPEG) and contact sheet (PNG) for a clip or a film, with Pillow.

Contact sheet layout (all sizes in px): one row per shot; a label column ``LABEL_WIDTH`` wide holding the
row's label (the shot number), then one cell per picture (first, middle, last), each ``thumb_width`` wide
(320) and ``thumb_height = even(thumb_width * h / w)`` high for the first picture's ``w x h``; every picture is
fitted into its cell by the letterbox rule. ``PAD`` between and around everything, on a dark background::

    width  = PAD + LABEL_WIDTH + columns * (thumb_width + PAD)
    height = PAD + rows * (thumb_height + PAD)

Saved as PNG with ``compress_level=PNG_LEVEL`` (2: levels 1-3 are ~4x faster than 6 for ~15% more bytes).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont

from .frames import fit_image, fit_rect, frame_image
from .layout import FilmLayout
from .probe import probe_clip

THUMB_WIDTH = 320
LABEL_WIDTH = 56
PAD = 8
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
PNG_LEVEL = 2
MAX_ROWS = 200
MAX_COLUMNS = 8
POSTER_MAX_WIDTH = 1920
JPEG_QUALITY = 85

Picture = Image.Image | av.VideoFrame


def _image(picture: Picture) -> Image.Image:
    return frame_image(picture) if isinstance(picture, av.VideoFrame) else picture.convert("RGB")


def _thumb(picture: Picture, width: int, height: int) -> Image.Image:
    """``picture`` fitted into ``width x height`` (a decoded frame is scaled by swscale first)."""
    if isinstance(picture, av.VideoFrame):
        rect = fit_rect(picture.width, picture.height, width, height)
        picture = frame_image(picture, rect.w, rect.h)
    return fit_image(picture, width, height, BACKGROUND)


def thumb_height(width: int, height: int, thumb_width: int = THUMB_WIDTH) -> int:
    return max(2, 2 * round(thumb_width * height / width / 2))


def sheet_size(rows: int, columns: int, thumb_h: int, thumb_width: int = THUMB_WIDTH) -> tuple[int, int]:
    return PAD + LABEL_WIDTH + columns * (thumb_width + PAD), PAD + rows * (thumb_h + PAD)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ImportError):  # Pillow without FreeType
        return ImageFont.load_default()


def poster(
    source: Picture | str | Path, *, max_width: int = POSTER_MAX_WIDTH, quality: int = JPEG_QUALITY
) -> bytes:
    """A JPEG of a picture, a decoded frame, or a video file's middle frame (frame ``n // 2``)."""
    if isinstance(source, (str, Path)):
        image = _middle_frame(source)
    else:
        image = _image(source)
    if image.width > max_width:
        image = image.resize(
            (max_width, thumb_height(image.width, image.height, max_width)), Image.Resampling.BICUBIC
        )
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _middle_frame(path: str | Path) -> Image.Image:
    middle = probe_clip(path).frames // 2
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        last = None
        for i, frame in enumerate(container.decode(stream)):
            last = frame
            if i == middle:
                break
        if last is None:
            raise ValueError(f"{path}: no frames")
        return frame_image(last)


def contact_sheet(rows: Sequence[tuple[str, Sequence[Picture]]], *, thumb_width: int = THUMB_WIDTH) -> bytes:
    """A PNG grid: one row per ``(label, pictures)``; see the module docstring for the layout."""
    if not rows or not any(pics for _, pics in rows):
        raise ValueError("a contact sheet needs at least one picture")
    if len(rows) > MAX_ROWS:
        raise ValueError(f"{len(rows)} rows: at most {MAX_ROWS}")
    columns = max(len(pics) for _, pics in rows)
    if columns > MAX_COLUMNS:
        raise ValueError(f"{columns} pictures in a row: at most {MAX_COLUMNS}")
    first = next(p for _, pics in rows for p in pics)
    th = thumb_height(first.width, first.height, thumb_width)
    sheet = Image.new("RGB", sheet_size(len(rows), columns, th, thumb_width), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(max(12, min(28, th // 4)))
    for r, (label, pictures) in enumerate(rows):
        top = PAD + r * (th + PAD)
        draw.text((PAD + LABEL_WIDTH // 2, top + th // 2), str(label), fill=TEXT, font=font, anchor="mm")
        for c, picture in enumerate(pictures):
            left = PAD + LABEL_WIDTH + c * (thumb_width + PAD)
            sheet.paste(_thumb(picture, thumb_width, th), (left, top))
    buf = io.BytesIO()
    sheet.save(buf, "PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def clip_pictures(
    path: str | Path, *, label: str = "1", thumb_width: int = THUMB_WIDTH
) -> tuple[bytes, bytes]:
    """``(poster JPEG, one-row sheet PNG)`` of a clip in one decode scan: poster = middle frame ``n // 2``,
    sheet = first, middle and last frame. Only the three pictures are kept, as images."""
    n = probe_clip(path).frames
    wanted = {0, n // 2}
    kept: dict[int, Image.Image] = {}
    last: av.VideoFrame | None = None
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if count in wanted:
                kept[count] = frame_image(frame)
            last = frame
            count += 1
    if last is None:
        raise ValueError(f"{path}: no frames")
    first, middle = kept.get(0, frame_image(last)), kept.get(n // 2, frame_image(last))
    return poster(middle), contact_sheet(
        [(label, [first, middle, frame_image(last)])], thumb_width=thumb_width
    )


class FilmPictures:
    """Collects a film's poster and sheet pictures during the stitch: pass it as ``on_frame``.

    Shot ``k`` (label ``k + 1``) shows film frames ``start``, ``start + len // 2`` and ``stop - 1`` of its
    range ``[s_{k-1}, s_k)``; the poster is film frame ``T // 2``. Thumbnails are scaled as they pass, so
    nothing but ``3 * shots`` small images and one full-size poster is kept.
    """

    def __init__(self, layout: FilmLayout, width: int, height: int, *, thumb_width: int = THUMB_WIDTH):
        self._tw = thumb_width
        self._th = thumb_height(width, height, thumb_width)
        self._wanted: dict[int, list[tuple[int, int]]] = {}
        for shot, (start, stop) in enumerate(layout.shot_ranges):
            for col, index in enumerate((start, start + (stop - start) // 2, stop - 1)):
                self._wanted.setdefault(index, []).append((shot, col))
        self._shots = layout.clips
        self._poster_index = layout.total_frames // 2
        self._thumbs: dict[tuple[int, int], Image.Image] = {}
        self._poster: Image.Image | None = None

    def __call__(self, index: int, frame: av.VideoFrame) -> None:
        if index in self._wanted:
            thumb = _thumb(frame, self._tw, self._th)
            for key in self._wanted[index]:
                self._thumbs[key] = thumb
        if index == self._poster_index:
            self._poster = frame_image(frame)

    def poster_jpeg(self) -> bytes:
        if self._poster is None:
            raise ValueError("the poster frame has not been seen")
        return poster(self._poster)

    def sheet_png(self) -> bytes:
        rows = [
            (str(shot + 1), [self._thumbs[(shot, c)] for c in range(3) if (shot, c) in self._thumbs])
            for shot in range(self._shots)
        ]
        return contact_sheet(rows, thumb_width=self._tw)
