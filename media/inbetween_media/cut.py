"""Cut a clip to a range of its frames, re-encoded: the tail a continuation starts from, and a continued
shot without the tail it repeats.

A cut at any frame needs a re-encode: a clip from the provider is H.264 with few keyframes (one every few
seconds, or one in all), and a stream copy can only start at one. A re-encode of 2 s at 720P costs a
fraction of a CPU-second (``bench/stitch.py`` measures the stitch, which does the same work per frame).

The video keeps frames ``[start, stop)`` (decode order is display order for the clips we read: ``probe``
checks the frame count), re-timed from 0 at the clip's frame rate. The audio, when the clip has some and
``audio`` is true, keeps the same span of time, sample-exact, as 48 kHz stereo AAC.
"""

from __future__ import annotations

from array import array
from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import PictureType

from .audio import RATE
from .probe import probe_clip

AUDIO_CHUNK = 1024


class CutError(ValueError):
    """The range is not inside the clip, or the clip cannot be read."""


def cut_clip(
    src: str | Path,
    dst: str | Path,
    *,
    start: int = 0,
    stop: int | None = None,
    audio: bool = True,
    crf: int = 19,
    preset: str = "veryfast",
) -> int:
    """Write frames ``[start, stop)`` of ``src`` to ``dst`` (MP4); the number of frames written."""
    info = probe_clip(src)
    stop = info.frames if stop is None else stop
    if not 0 <= start < stop <= info.frames:
        raise CutError(f"frames [{start}, {stop}) are not inside a clip of {info.frames} frames")
    fps = info.fps
    tb = Fraction(1, 1) / fps
    begin_s, end_s = float(start / fps), float(stop / fps)
    written = 0
    with av.open(str(src)) as source, av.open(str(dst), "w", format="mp4") as out:
        vin = source.streams.video[0]
        vin.thread_type = "AUTO"
        ain = source.streams.audio[0] if audio and source.streams.audio else None
        vout = out.add_stream("libx264", rate=fps)
        vout.width, vout.height, vout.pix_fmt = info.width, info.height, "yuv420p"
        vout.codec_context.time_base = tb
        vout.codec_context.options = {"crf": str(crf), "preset": preset}
        aout = out.add_stream("aac", rate=RATE, layout="stereo") if ain is not None else None
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=RATE) if ain else None
        sent = 0  # audio samples encoded
        wanted = round((end_s - begin_s) * RATE)
        v_start = float(info.start_pts * info.time_base)
        index = 0
        clock: float | None = None  # clip time of the next resampled sample: the first frame's, then counted

        def encode_audio(frame: av.AudioFrame, at_s: float) -> None:
            """Keep the part of ``frame`` (starting at ``at_s`` clip seconds) inside [begin_s, end_s)."""
            nonlocal sent
            assert aout is not None  # noqa: S101 - only called with an audio stream
            skip = max(0, round((begin_s - at_s) * RATE))
            n = frame.samples
            keep = min(n - skip, wanted - sent)
            if keep <= 0:
                return
            planes = [array("f", bytes(p)[: 4 * n])[skip : skip + keep] for p in frame.planes[:2]]
            for at in range(0, keep, AUDIO_CHUNK):
                chunk = [p[at : at + AUDIO_CHUNK] for p in planes]
                piece = av.AudioFrame(format="fltp", layout="stereo", samples=len(chunk[0]))
                for plane, samples in zip(piece.planes, chunk, strict=True):
                    data = samples.tobytes()
                    plane.update(data + bytes(plane.buffer_size - len(data)))
                piece.sample_rate, piece.pts, piece.time_base = RATE, sent, Fraction(1, RATE)
                sent += len(chunk[0])
                for packet in aout.encode(piece):
                    out.mux(packet)

        for packet in source.demux(*([vin] + ([ain] if ain is not None else []))):
            if packet.stream is vin:
                for frame in packet.decode():
                    assert isinstance(frame, av.VideoFrame)  # noqa: S101 - a video packet
                    if start <= index < stop:
                        frame.pts, frame.time_base, frame.pict_type = written, tb, PictureType.NONE
                        for out_packet in vout.encode(frame):
                            out.mux(out_packet)
                        written += 1
                    index += 1
            elif resampler is not None:
                for aframe in packet.decode():
                    assert isinstance(aframe, av.AudioFrame)  # noqa: S101 - an audio packet
                    if clock is None:
                        clock = (aframe.time or 0.0) - v_start
                    for rframe in resampler.resample(aframe):
                        encode_audio(rframe, clock)
                        clock += rframe.samples / RATE
        if resampler is not None and clock is not None:
            for rframe in resampler.resample(None):
                encode_audio(rframe, clock)
                clock += rframe.samples / RATE
        for out_packet in vout.encode(None):
            out.mux(out_packet)
        if aout is not None:
            for out_packet in aout.encode(None):
                out.mux(out_packet)
    if written != stop - start:
        raise CutError(f"decoded {index} frames of {src}, wrote {written}; expected {stop - start}")
    return written
