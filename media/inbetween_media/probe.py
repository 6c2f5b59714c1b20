"""What a clip holds, read by demuxing it (no decoding): codec, size, frame rate, frame count, audio.

The frame count is the number of video packets (one per frame in MP4), never ``duration * fps``: a "5 s" clip
may have 150 or 151 frames. A demux of a 5 s 720p clip takes milliseconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    layout: str
    duration_s: float


@dataclass(frozen=True)
class ClipInfo:
    path: str
    codec: str
    width: int
    height: int
    pix_fmt: str | None
    fps: Fraction
    frames: int  # demuxed video packets
    start_pts: int  # smallest video pts (the first frame in display order), in time_base units
    time_base: Fraction
    extradata_sha256: str  # SPS/PPS: equal for clips a stream copy could join
    last_packet_is_last_frame: bool  # the last packet in decode order is the last frame (droppable by remux)
    color_range: int
    color_primaries: int
    color_trc: int
    colorspace: int
    audio: AudioInfo | None

    @property
    def duration_s(self) -> float:
        return float(self.frames / self.fps) if self.fps else 0.0


class ProbeError(ValueError):
    """The file is not a clip we can read (no video stream, or unreadable)."""


def probe_clip(path: str | Path) -> ClipInfo:
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise ProbeError(f"{path}: cannot open: {exc}") from exc
    with container:
        if not container.streams.video:
            raise ProbeError(f"{path}: no video stream")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        wanted = [video] + ([audio] if audio is not None else [])
        frames = 0
        min_pts: int | None = None
        max_pts: int | None = None
        last_pts: int | None = None
        audio_end = 0
        audio_start: int | None = None
        for packet in container.demux(*wanted):
            if packet.size == 0 or packet.pts is None:
                continue
            if packet.stream is video:
                frames += 1
                min_pts = packet.pts if min_pts is None else min(min_pts, packet.pts)
                max_pts = packet.pts if max_pts is None else max(max_pts, packet.pts)
                last_pts = packet.pts
            else:
                audio_end = max(audio_end, packet.pts + (packet.duration or 0))
                audio_start = packet.pts if audio_start is None else min(audio_start, packet.pts)
        cc = video.codec_context
        fps = video.average_rate or video.guessed_rate or Fraction(0)
        audio_info = None
        if audio is not None:
            acc = audio.codec_context
            start = max(0, audio_start or 0) if audio.start_time is None else max(0, audio.start_time)
            audio_info = AudioInfo(
                codec=acc.name,
                sample_rate=acc.sample_rate,
                channels=acc.layout.nb_channels,
                layout=acc.layout.name,
                duration_s=float((audio_end - start) * audio.time_base) if audio.time_base else 0.0,
            )
        return ClipInfo(
            path=str(path),
            codec=cc.name,
            width=cc.width,
            height=cc.height,
            pix_fmt=cc.pix_fmt,
            fps=Fraction(fps),
            frames=frames,
            start_pts=min_pts or 0,
            time_base=video.time_base or Fraction(1, 1),
            extradata_sha256=hashlib.sha256(cc.extradata or b"").hexdigest(),
            last_packet_is_last_frame=frames > 0 and last_pts == max_pts,
            color_range=int(cc.color_range),
            color_primaries=int(cc.color_primaries),
            color_trc=int(cc.color_trc),
            colorspace=int(cc.colorspace),
            audio=audio_info,
        )
