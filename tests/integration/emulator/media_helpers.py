"""Test media made with PyAV (wav, mp3, mp4, mov) and a lean probe of the emulator's wan2.7 results."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def tone(seconds: float, hz: float, fmt: str = "wav", rate: int = 16_000, amplitude: float = 0.5) -> bytes:
    """A mono sine of ``hz`` for ``seconds``, as wav (pcm_s16le) or mp3 (libmp3lame)."""
    buffer = io.BytesIO()
    samples = (amplitude * np.sin(2 * math.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(
        np.float32
    )
    with av.open(buffer, mode="w", format=fmt) as container:
        codec, sample_format = ("pcm_s16le", "s16") if fmt == "wav" else ("libmp3lame", "s16p")
        stream = container.add_stream(codec, rate=rate, layout="mono")
        pcm = (samples * 32767).astype(np.int16)
        step = 1152
        for start in range(0, len(pcm), step):
            frame = av.AudioFrame.from_ndarray(
                pcm[None, start : start + step], format=sample_format, layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def clip(
    colours: list[tuple[int, int, int]],
    seconds_each: float = 1.0,
    size: tuple[int, int] = (320, 240),
    fps: int = 24,
    fmt: str = "mp4",
) -> bytes:
    """An H.264 clip showing each colour for ``seconds_each``, at ``fps`` (mp4 or mov)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        index = 0
        for colour in colours:
            picture = np.empty((size[1], size[0], 3), np.uint8)
            picture[:] = colour
            for _ in range(round(seconds_each * fps)):
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = index
                frame.time_base = Fraction(1, fps)
                index += 1
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@dataclass(frozen=True)
class MediaProbe:
    codec: str
    frames: int
    duration_s: float
    fps: float
    width: int
    height: int
    pictures: dict[int, np.ndarray]  # frame index -> RGB picture, for the asked indices (and -1: last)
    audio_codec: str | None
    audio_rate: int
    audio: np.ndarray  # mono float samples
    audio_duration_s: float

    def at(self, seconds: float) -> np.ndarray:
        return self.pictures[round(seconds * self.fps)]


def probe_media(mp4: bytes, at_seconds: tuple[float, ...] = ()) -> MediaProbe:
    """Decodes the whole video (keeping only the pictures asked for) and the whole soundtrack."""
    with av.open(io.BytesIO(mp4)) as container:
        video = container.streams.video[0]
        fps = float(video.average_rate)
        wanted = {round(s * fps) for s in at_seconds} | {0}
        pictures: dict[int, np.ndarray] = {}
        count = 0
        last = None
        for frame in container.decode(video):
            if count in wanted:
                pictures[count] = frame.to_ndarray(format="rgb24")
            last = frame
            count += 1
        assert last is not None
        pictures[-1] = last.to_ndarray(format="rgb24")
        info = (video.codec_context.name, float(video.duration * video.time_base), video.width, video.height)
    with av.open(io.BytesIO(mp4)) as container:
        if not container.streams.audio:
            return MediaProbe(
                info[0], count, info[1], fps, info[2], info[3], pictures, None, 0, np.zeros(0), 0.0
            )
        stream = container.streams.audio[0]
        chunks: list[np.ndarray] = []
        resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
        for frame in container.decode(stream):
            for chunk in resampler.resample(frame):
                chunks.append(chunk.to_ndarray().reshape(-1))
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        audio_duration = (
            float(stream.duration * stream.time_base) if stream.duration else len(samples) / stream.rate
        )
        return MediaProbe(
            info[0],
            count,
            info[1],
            fps,
            info[2],
            info[3],
            pictures,
            stream.codec_context.name,
            stream.rate,
            samples,
            audio_duration,
        )


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0


def window(probe: MediaProbe, start_s: float, end_s: float) -> np.ndarray:
    return probe.audio[int(start_s * probe.audio_rate) : int(end_s * probe.audio_rate)]
