"""Renders the kf2v result video: a real H.264 MP4, 30 fps, exactly 150 frames (5 s), and runs every
render job (wan2.7's too, ``render_media``) on a small pool over a shared cache.

First-and-last-frame mode cross-fades from the first frame to the last with a gentle zoom-in.
Template mode pulses the first frame (zoom and a channel-rotation colour shift) and draws the template
name. The watermark is the text "AI-generated" in the bottom-right corner: the real one reads "AI生成",
which needs a CJK font that is not installed, so Pillow's scalable default font draws the English words.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import av
from inbetween.domain.catalog import FIXED_DURATION_S, VIDEO_FPS
from PIL import Image, ImageDraw, ImageFont, ImageOps

FRAME_COUNT = FIXED_DURATION_S * VIDEO_FPS
WATERMARK_TEXT = "AI-generated"
ZOOM_END = 1.06


@dataclass(frozen=True, slots=True)
class RenderJob:
    first: bytes
    last: bytes | None
    width: int
    height: int
    watermark: bool
    template: str | None

    def cache_key(self) -> str:
        digest = hashlib.sha256()
        for part in (self.first, self.last or b""):
            digest.update(hashlib.sha256(part).digest())
        digest.update(f"{self.width}x{self.height}|{self.watermark}|{self.template}".encode())
        return digest.hexdigest()

    def render(self, preset: str = "ultrafast") -> bytes:
        return render_mp4(self, preset)


class _Renderable(Protocol):
    """A render job: kf2v's ``RenderJob`` or wan2.7's ``MediaRenderJob``."""

    def cache_key(self) -> str: ...

    def render(self, preset: str = "ultrafast") -> bytes: ...


def _fit(data: bytes, width: int, height: int) -> Image.Image:
    """Scale to cover ``width`` x ``height`` and crop the centre, keeping the aspect ratio."""
    with Image.open(io.BytesIO(data)) as image:
        return ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.BILINEAR)


def _zoomed(image: Image.Image, zoom: float) -> Image.Image:
    width, height = image.size
    crop_w, crop_h = width / zoom, height / zoom
    left, top = (width - crop_w) / 2, (height - crop_h) / 2
    return image.resize(
        (width, height), Image.Resampling.BILINEAR, box=(left, top, left + crop_w, top + crop_h)
    )


def _frames(job: RenderJob) -> Iterator[Image.Image]:
    first = _fit(job.first, job.width, job.height)
    if job.template:
        red, green, blue = first.split()
        shifted = Image.merge("RGB", (blue, red, green))
        label_font = ImageFont.load_default(size=max(14, job.height // 18))
        for index in range(FRAME_COUNT):
            pulse = math.sin(math.pi * index / (FRAME_COUNT - 1))  # rises and falls back
            frame = _zoomed(Image.blend(first, shifted, 0.6 * pulse), 1 + 0.1 * pulse)
            ImageDraw.Draw(frame).text(
                (job.width // 40 + 4, job.height // 40 + 4),
                f"template: {job.template}",
                font=label_font,
                fill=(255, 255, 255),
                stroke_width=2,
                stroke_fill=(0, 0, 0),
            )
            yield frame
        return
    last = _fit(job.last, job.width, job.height) if job.last else first
    for index in range(FRAME_COUNT):
        progress = index / (FRAME_COUNT - 1)
        yield _zoomed(Image.blend(first, last, progress), 1 + (ZOOM_END - 1) * progress)


def _stamp_watermark(frame: Image.Image, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> None:
    draw = ImageDraw.Draw(frame)
    left, top, right, bottom = draw.textbbox((0, 0), WATERMARK_TEXT, font=font, stroke_width=2)
    margin = max(8, frame.height // 40)
    position = (frame.width - (right - left) - margin - left, frame.height - (bottom - top) - margin - top)
    draw.text(
        position, WATERMARK_TEXT, font=font, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0)
    )


def render_mp4(job: RenderJob, preset: str = "ultrafast") -> bytes:
    buffer = io.BytesIO()
    font = ImageFont.load_default(size=max(14, job.height // 20))
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=VIDEO_FPS)
        stream.width, stream.height = job.width, job.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": preset, "crf": "23"}
        for frame in _frames(job):
            if job.watermark:
                _stamp_watermark(frame, font)
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


class _RenderCache:
    """Finished videos by ``RenderJob.cache_key``, shared by every emulator in the process (keys are
    content hashes, so sharing is safe), so test suites pay for each distinct video once."""

    def __init__(self) -> None:
        self.entries: OrderedDict[str, bytes] = OrderedDict()
        self.lock = threading.Lock()


_SHARED_CACHE = _RenderCache()


class Renderer:
    """A small pool (``workers`` threads) over an LRU cache of ``cache_entries`` videos; identical jobs
    in flight share one render."""

    def __init__(self, workers: int = 2, preset: str = "ultrafast", cache_entries: int = 32) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="emulator-render")
        self._preset = preset
        self._cache_entries = cache_entries
        self._cache = _SHARED_CACHE
        self._in_flight: dict[str, Future[bytes]] = {}
        self._lock = threading.Lock()
        self.renders = 0  # actual encodes by this renderer, for tests of the cache

    def submit(self, job: _Renderable) -> Future[bytes]:
        key = job.cache_key()
        with self._lock:
            with self._cache.lock:
                cached = self._cache.entries.get(key)
                if cached is not None:
                    self._cache.entries.move_to_end(key)
            if cached is not None:
                done: Future[bytes] = Future()
                done.set_result(cached)
                return done
            if key in self._in_flight:
                return self._in_flight[key]
            future = self._pool.submit(self._render, key, job)
            self._in_flight[key] = future
            return future

    def _render(self, key: str, job: _Renderable) -> bytes:
        try:
            video = job.render(self._preset)
            with self._cache.lock:
                self._cache.entries[key] = video
                while len(self._cache.entries) > self._cache_entries:
                    self._cache.entries.popitem(last=False)
            with self._lock:
                self.renders += 1
            return video
        finally:
            with self._lock:
                self._in_flight.pop(key, None)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
