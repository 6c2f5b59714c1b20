"""Join a storyboard's clips into one film: one decode pass per clip, one libx264 encode, AAC rebuilt.

Streaming: clips are opened one at a time and at most ``F + 1`` decoded frames are held (the frames that may
still be dropped or blended at the next seam), plus the previous clip's ``F`` blend frames; the encoder's own
look-ahead comes on top. The frame arithmetic (the seam rule, the cross-fade and the film's length) is in
:mod:`inbetween_media.layout`, the letterbox rule in :mod:`inbetween_media.frames`, the soundtrack in
:mod:`inbetween_media.audio`.

Output: H.264 (libx264, ``preset``/``crf``, keyframe every 2 s), yuv420p limited range, pts from a frame
counter (``i`` in 1/fps), ``pict_type`` reset so x264 chooses its own frame types, colour primaries/transfer/
matrix tags copied from the first clip, ``+faststart`` MP4; AAC-LC 48 kHz stereo when any clip has audio.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import PictureType
from av.video.reformatter import ColorRange

from .audio import RATE, SoundtrackBuilder
from .frames import blend_frames, film_size, fit_frame
from .layout import FilmLayout, layout_problems
from .probe import ClipInfo, ProbeError, probe_clip

OnFrame = Callable[[int, av.VideoFrame], None]
"""Called with ``(film_index, frame)`` for every film frame, in order, just before it is encoded."""

AUDIO_CHUNK = 4096


class StitchError(RuntimeError):
    """The clips cannot be joined (unreadable, wrong frame rate, too short), or decoding lost frames."""


@dataclass(frozen=True)
class FilmPlan:
    """The clips as probed and the film they make (probing is a demux: milliseconds per clip)."""

    layout: FilmLayout
    clips: tuple[ClipInfo, ...]
    width: int
    height: int

    @property
    def has_audio(self) -> bool:
        return any(c.audio is not None for c in self.clips)


@dataclass(frozen=True)
class StitchReport:
    out: str
    clip_frames: tuple[int, ...]  # decoded frames of each input clip
    seam_blend_frames: int
    fps: int
    total_frames: int
    seams: tuple[int, ...]  # film index of clip k+1's first frame (see layout)
    shot_ranges: tuple[tuple[int, int], ...]
    width: int
    height: int
    duration_s: float
    audio_duration_s: float | None  # None: the film is silent
    letterboxed: tuple[int, ...]  # clips fitted by letterbox
    cpu_s: float  # time.process_time() spent (all threads of this process)
    bytes: int

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def layout(self) -> FilmLayout:
        return FilmLayout(self.clip_frames, self.seam_blend_frames, self.fps)


def plan_film(clips: Sequence[str | Path], *, seam_blend_frames: int = 0, fps: int = 30) -> FilmPlan:
    """Probe the clips and check that they can be joined: same frame rate, long enough for the blend."""
    if not clips:
        raise StitchError("no clips")
    try:
        infos = tuple(probe_clip(p) for p in clips)
    except ProbeError as exc:
        raise StitchError(str(exc)) from exc
    problems = [
        f"clip {k} is at {float(c.fps):g} fps, the film at {fps}" for k, c in enumerate(infos) if c.fps != fps
    ]
    problems += layout_problems([c.frames for c in infos], seam_blend_frames)
    if problems:
        raise StitchError("; ".join(problems))
    width, height = film_size(infos[0].width, infos[0].height)
    return FilmPlan(FilmLayout.of([c.frames for c in infos], seam_blend_frames, fps), infos, width, height)


def _frame_samples(frame: av.AudioFrame) -> tuple[array[float], array[float]]:
    n = frame.samples
    left = array("f", bytes(frame.planes[0])[: 4 * n])
    right = array("f", bytes(frame.planes[1])[: 4 * n]) if len(frame.planes) > 1 else left
    return left, right


def stitch_film(
    clips: Sequence[str | Path],
    out: str | Path,
    *,
    seam_blend_frames: int = 0,
    fps: int = 30,
    crf: int = 19,
    preset: str = "veryfast",
    on_frame: OnFrame | None = None,
    audio_bitrate: int = 128_000,
    declick_ms: float = 5.0,
    threads: int = 0,
    plan: FilmPlan | None = None,
) -> StitchReport:
    """Write ``out`` (MP4) from ``clips`` in order; see the module and :mod:`.layout` for the rules.

    Film size = the first clip's size (rounded down to even). A clip of another size is letterboxed into it
    (:func:`.frames.fit_rect`: scaled to fit, aspect kept, centred on black, even sizes and offsets). The caller
    is expected to refuse keyframes of other aspect ratios earlier; this is the safety net.
    """
    started = time.process_time()
    plan = plan or plan_film(clips, seam_blend_frames=seam_blend_frames, fps=fps)
    f = seam_blend_frames
    if plan.layout.seam_blend_frames != f or plan.layout.fps != fps or len(plan.clips) != len(clips):
        raise StitchError("the plan was made for other clips or options")
    width, height = plan.width, plan.height
    tb = Fraction(1, fps)
    n_clips = len(clips)
    first = plan.clips[0]
    letterboxed: set[int] = set()
    decoded: list[int] = []
    counter = 0
    audio_written = 0

    with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        vstream = container.add_stream("libx264", rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        cc = vstream.codec_context
        cc.time_base = tb
        cc.gop_size = 2 * fps
        cc.color_range = ColorRange.MPEG
        cc.color_primaries, cc.color_trc, cc.colorspace = (
            first.color_primaries,
            first.color_trc,
            first.colorspace,
        )
        cc.options = {"crf": str(crf), "preset": preset}
        if threads:
            cc.thread_count = threads
        astream = None
        builder = None
        if plan.has_audio:
            astream = container.add_stream("aac", rate=RATE, layout="stereo")
            astream.bit_rate = audio_bitrate

            def sink(left: array[float], right: array[float]) -> None:
                nonlocal audio_written
                for at in range(0, len(left), AUDIO_CHUNK):
                    chunk = (left[at : at + AUDIO_CHUNK], right[at : at + AUDIO_CHUNK])
                    frame = av.AudioFrame(format="fltp", layout="stereo", samples=len(chunk[0]))
                    for plane, samples in zip(frame.planes, chunk, strict=True):
                        data = samples.tobytes()
                        plane.update(data + bytes(plane.buffer_size - len(data)))
                    frame.sample_rate, frame.pts, frame.time_base = RATE, audio_written, Fraction(1, RATE)
                    audio_written += len(chunk[0])
                    for packet in astream.encode(frame):
                        container.mux(packet)

            builder = SoundtrackBuilder(
                sink, fps=fps, clips=n_clips, seam_blend_frames=f, declick_ms=declick_ms
            )

        def emit(frame: av.VideoFrame) -> None:
            nonlocal counter
            frame.pts, frame.time_base, frame.pict_type = counter, tb, PictureType.NONE
            if on_frame is not None:
                on_frame(counter, frame)
            for packet in vstream.encode(frame):
                container.mux(packet)
            counter += 1

        carry: list[av.VideoFrame] = []
        for k, path in enumerate(clips):
            last = k == n_clips - 1
            head = f if k > 0 else 0
            keep_back = 0 if last else f + 1
            hold: deque[av.VideoFrame] = deque()
            n = 0
            if builder is not None:
                builder.start_clip(k)
            info = plan.clips[k]
            v_start = float(info.start_pts * info.time_base)
            with av.open(str(path)) as src:
                vin = src.streams.video[0]
                vin.thread_type = "AUTO"
                ain = src.streams.audio[0] if (builder is not None and src.streams.audio) else None
                resampler = av.AudioResampler(format="fltp", layout="stereo", rate=RATE) if ain else None
                placed = False
                for packet in src.demux(*([vin] + ([ain] if ain is not None else []))):
                    if packet.stream is vin:
                        for frame in packet.decode():
                            assert isinstance(frame, av.VideoFrame)  # noqa: S101 (a video packet)
                            fitted, boxed = fit_frame(frame, width, height)
                            if boxed:
                                letterboxed.add(k)
                            if n < head:
                                emit(blend_frames(carry[n], fitted, (n + 1) / (f + 1)))
                            else:
                                hold.append(fitted)
                                if len(hold) > keep_back:
                                    emit(hold.popleft())
                            n += 1
                    elif builder is not None and resampler is not None:
                        for aframe in packet.decode():
                            assert isinstance(aframe, av.AudioFrame)  # noqa: S101 (an audio packet)
                            at = None
                            if not placed:
                                placed = True
                                at = round(((aframe.time or 0.0) - v_start) * RATE)
                            for rframe in resampler.resample(aframe):
                                builder.add(*_frame_samples(rframe), frames_seen=n, at=at)
                                at = None
                if resampler is not None and builder is not None:
                    for rframe in resampler.resample(None):
                        builder.add(*_frame_samples(rframe), frames_seen=n)
            if n != info.frames:
                raise StitchError(f"clip {k} ({path}): decoded {n} frames, demuxed {info.frames}")
            decoded.append(n)
            if builder is not None:
                builder.end_clip(n)
            if last:
                while hold:
                    emit(hold.popleft())
            else:
                carry = list(hold)[:f]
            hold.clear()
        for packet in vstream.encode(None):
            container.mux(packet)
        if astream is not None:
            for packet in astream.encode(None):
                container.mux(packet)

    layout = FilmLayout(tuple(decoded), f, fps)
    if counter != layout.total_frames:
        raise StitchError(f"wrote {counter} frames, the layout says {layout.total_frames}")
    return StitchReport(
        out=str(out),
        clip_frames=layout.clip_frames,
        seam_blend_frames=f,
        fps=fps,
        total_frames=counter,
        seams=layout.seams,
        shot_ranges=layout.shot_ranges,
        width=width,
        height=height,
        duration_s=counter / fps,
        audio_duration_s=audio_written / RATE if astream is not None else None,
        letterboxed=tuple(sorted(letterboxed)),
        cpu_s=time.process_time() - started,
        bytes=Path(out).stat().st_size,
    )
