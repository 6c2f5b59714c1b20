"""Renders a wan2.7 result: an H.264 MP4 of ``duration`` seconds at 30 fps with an AAC soundtrack.

* Picture: a wipe (a hard vertical edge moving left to right), from the first frame to the last frame; with the first frame
  only, towards a slightly zoomed copy of it. A wipe rather than a cross-fade: its edge moves a visible
  distance every frame, so no two consecutive frames encode the same (a slow fade's last steps of a grey
  level or two are quantised away by H.264, and a storyboard's seam would then show a frozen frame), and a
  film of such clips shows every keyframe in turn. The first generated frame is the first frame, the last
  is the last frame, exactly. A continuation starts with the first clip, decoded, re-timed to 30 fps and
  scaled to the output size, counted in the duration, and then wipes from the clip's last frame to the
  last frame (or to a zoomed copy of the clip's last frame).
* Sound: the driving audio's first ``duration`` seconds (silence after, when it is shorter), else a
  generated 440 Hz tone for the whole video (continuations too: the model writes its own soundtrack).
  48 kHz mono AAC.
* Watermark: "AI-generated" in the bottom-right corner, as the kf2v renderer draws it.

Blending runs on YUV 4:2:0 planes with integer arithmetic, so a 15 s 720P video takes a few seconds.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from inbetween.domain.catalog import VIDEO_FPS
from PIL import Image, ImageFont

from .render import ZOOM_END, _fit, _stamp_watermark, _zoomed

SAMPLE_RATE = 48_000
TONE_HZ = 440.0
TONE_AMPLITUDE = 0.25
AUDIO_FRAME_SAMPLES = 1024
_VERSION = "media-v2"  # part of the cache key: change it when the picture or sound changes


@dataclass(frozen=True, slots=True)
class MediaRenderJob:
    width: int
    height: int
    duration_s: int
    first: bytes | None = None  # the first frame image (absent for continuations)
    last: bytes | None = None
    clip: bytes | None = None  # the first clip (mp4/mov)
    clip_frames: int = 0  # how many output frames the clip fills
    audio: bytes | None = None  # the driving audio (wav/mp3)
    watermark: bool = False

    def cache_key(self) -> str:
        digest = hashlib.sha256(_VERSION.encode())
        for part in (self.first, self.last, self.clip, self.audio):
            digest.update(hashlib.sha256(part or b"").digest())
        digest.update(
            f"{self.width}x{self.height}|{self.duration_s}|{self.clip_frames}|{self.watermark}".encode()
        )
        return digest.hexdigest()

    def render(self, preset: str = "ultrafast") -> bytes:
        return render_media_mp4(self, preset)


def _yuv(image: Image.Image) -> np.ndarray:
    """The I420 planes of an RGB image, as one (h*3/2, w) uint16 array ready for blending."""
    frame = av.VideoFrame.from_image(image).reformat(format="yuv420p")
    return np.asarray(frame.to_ndarray(), dtype=np.uint16)


def _wipe_weights(width: int, height: int, progress: float) -> np.ndarray:
    """Per-pixel weights (0 or 256) of the last picture, as a (h*3/2, w) array laid out like ``_yuv``'s
    planes: at ``progress`` 0 nothing of it shows, at 1 all of it. The edge is hard (a soft one enters and
    leaves the picture in part-steps, so the first and last steps would change less than the others, and a
    seam's neighbourhood would look still)."""

    def columns(count: int) -> np.ndarray:
        x = (np.arange(count, dtype=np.float64) + 0.5) * (width / count)
        return np.where(x < progress * width, 256, 0).astype(np.uint16)

    luma, chroma = columns(width), columns(width // 2)
    # _yuv's chroma rows each hold two rows of a (h/2, w/2) plane side by side
    chroma_row = np.concatenate([chroma, chroma])
    return np.vstack(
        [np.broadcast_to(luma, (height, width)), np.broadcast_to(chroma_row, (height // 2, width))]
    )


def _frame(planes: np.ndarray, index: int) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(planes.astype(np.uint8, copy=False), format="yuv420p")
    frame.pts = index
    frame.time_base = Fraction(1, VIDEO_FPS)
    return frame


def _clip_frames(job: MediaRenderJob) -> Iterator[Image.Image]:
    """The clip's pictures at 30 fps, ``job.clip_frames`` of them, each scaled to the output size: for
    output time t, the last source frame shown at or before t."""
    assert job.clip is not None  # noqa: S101 - only called for continuations; narrows the type
    count = job.clip_frames
    emitted = 0
    current: Image.Image | None = None
    start: float | None = None
    with av.open(io.BytesIO(job.clip), mode="r") as container:
        stream = container.streams.video[0]
        for decoded in container.decode(stream):
            at = float(decoded.time) if decoded.time is not None else emitted / VIDEO_FPS
            start = at if start is None else start
            picture = (
                decoded.to_image().convert("RGB").resize((job.width, job.height), Image.Resampling.BILINEAR)
            )
            if current is None:
                current = picture
            # output frames due before this source frame shows the previous one
            while emitted < count and emitted / VIDEO_FPS < at - start - 1e-6:
                yield current
                emitted += 1
            current = picture
            if emitted >= count:
                return
    while current is not None and emitted < count:
        yield current
        emitted += 1


def _audio_samples(job: MediaRenderJob) -> np.ndarray:
    total = job.duration_s * SAMPLE_RATE
    if job.audio is None:
        t = np.arange(total, dtype=np.float64) / SAMPLE_RATE
        tone = TONE_AMPLITUDE * np.sin(2 * math.pi * TONE_HZ * t)
        fade = min(total // 2, SAMPLE_RATE // 100)  # 10 ms in and out, no clicks
        if fade:
            ramp = np.linspace(0.0, 1.0, fade)
            tone[:fade] *= ramp
            tone[-fade:] *= ramp[::-1]
        return tone.astype(np.float32)
    samples = np.zeros(total, dtype=np.float32)
    position = 0
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    with av.open(io.BytesIO(job.audio), mode="r") as container:
        decoded = (frame for frame in container.decode(container.streams.audio[0]))
        for frame in [*decoded, None]:
            for chunk in resampler.resample(frame):
                values = chunk.to_ndarray().reshape(-1)
                take = min(len(values), total - position)
                samples[position : position + take] = values[:take]
                position += take
            if position >= total:
                break
    return samples  # silence after a shorter audio, as documented


def render_media_mp4(job: MediaRenderJob, preset: str = "ultrafast") -> bytes:
    total_frames = job.duration_s * VIDEO_FPS
    font = ImageFont.load_default(size=max(14, job.height // 20))
    samples = _audio_samples(job)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=VIDEO_FPS)
        video.width, video.height = job.width, job.height
        video.pix_fmt = "yuv420p"
        video.options = {"preset": preset, "crf": "23"}
        audio = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        sent = 0  # audio samples encoded so far

        def audio_until(limit: int) -> None:
            nonlocal sent
            while sent < limit:
                size = min(AUDIO_FRAME_SAMPLES, limit - sent)
                chunk = av.AudioFrame.from_ndarray(
                    samples[None, sent : sent + size], format="flt", layout="mono"
                )
                chunk.sample_rate = SAMPLE_RATE
                chunk.pts = sent
                chunk.time_base = Fraction(1, SAMPLE_RATE)
                for packet in audio.encode(chunk):
                    container.mux(packet)
                sent += size

        def emit(planes: np.ndarray, index: int) -> None:
            for packet in video.encode(_frame(planes, index)):
                container.mux(packet)
            # keep the two streams interleaved: sound up to the end of this picture, in whole AAC frames
            due = (index + 1) * SAMPLE_RATE // VIDEO_FPS
            audio_until(min(len(samples), due - due % AUDIO_FRAME_SAMPLES))

        def marked(picture: Image.Image) -> Image.Image:
            if job.watermark:
                picture = picture.copy()
                _stamp_watermark(picture, font)
            return picture

        index = 0
        start: Image.Image | None = None
        if job.clip is not None:
            for picture in _clip_frames(job):
                emit(_yuv(marked(picture)), index)
                start = picture
                index += 1
        else:
            start = _fit(job.first, job.width, job.height) if job.first is not None else None
        if start is None:
            raise ValueError("a render job needs a first frame or a readable first clip")
        end = (
            _fit(job.last, job.width, job.height) if job.last is not None else _zoomed(start, ZOOM_END + 0.04)
        )
        a, b = _yuv(marked(start)), _yuv(marked(end))
        generated = total_frames - index
        for step in range(generated):
            if job.clip is not None:
                progress = (step + 1) / generated  # the clip's last frame is already shown
            else:
                progress = step / (generated - 1) if generated > 1 else 1.0
            weight = _wipe_weights(job.width, job.height, progress)
            emit((a * (256 - weight) + b * weight) >> 8, index)
            index += 1
        for packet in video.encode(None):
            container.mux(packet)
        audio_until(len(samples))
        for packet in audio.encode(None):
            container.mux(packet)
    return buffer.getvalue()
