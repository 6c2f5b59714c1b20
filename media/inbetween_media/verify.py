"""Check a stitched film before it is published: a list of problems, empty when the film is good.

Checks (``T``, ``s_k`` as in :mod:`inbetween_media.layout`):

* **Frame count** (authoritative): video packets == decoded frames == ``T = sum(n_k) - (N-1)*(1+F)``.
* **Timestamps**: packet dts strictly increasing in every stream; decoded pts strictly increasing with one
  constant step (constant frame rate); every frame of the film's size.
* **Seam frames** (``keyframes`` given): each compared frame is fitted to the film's size and compared by
  :func:`picture_distance`, the mean absolute difference (0-255) of the two pictures as grayscale downscaled
  to ``SIGNATURE_WIDTH`` (96) px wide; it must be at most ``KEYFRAME_MAD_MAX`` (10.0). With ``N+1`` keyframes
  (the whole storyboard) the film's first frame is compared with keyframe 0 and its last with keyframe N;
  with ``N+1`` or ``N-1`` keyframes, each seam frame ``s_k`` with keyframe ``k+1`` (only when ``F = 0``: a
  blended seam shows no keyframe unmixed).
* **No duplicate at a seam**: for the pairs (s-1, s) and (s, s+1) the same distance ``d`` must not be
  near zero (``d < DUPLICATE_MAD_MAX``, 0.1) nor, where the neighbourhood moves (median distance ``m`` of
  the other consecutive pairs within 6 frames >= ``MOTION_FLOOR``, 0.3), below ``DUPLICATE_RATIO * m`` (0.3).
  With ``F > 0`` only the near-zero test runs, over the whole blend window. A heuristic: the frame count is
  the authoritative check.
* **Audio**: present iff expected; ``|audio duration - video duration| <= 1024 / 48000`` s (one AAC frame).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
from PIL import Image, ImageChops, ImageStat

from .frames import fit_image, frame_image
from .layout import FilmLayout, layout_problems

SIGNATURE_WIDTH = 96
KEYFRAME_MAD_MAX = 10.0
DUPLICATE_MAD_MAX = 0.1
DUPLICATE_RATIO = 0.3
MOTION_FLOOR = 0.3
NEIGHBOURHOOD = 6
AAC_FRAME_S = 1024 / 48000


@dataclass(frozen=True)
class FilmExpectations:
    clip_frames: tuple[int, ...]
    seam_blend_frames: int = 0
    fps: int = 30
    size: tuple[int, int] | None = None
    has_audio: bool | None = None  # None: do not check presence (durations are checked when present)


class _ReportLike(Protocol):
    @property
    def clip_frames(self) -> tuple[int, ...]: ...

    @property
    def seam_blend_frames(self) -> int: ...

    @property
    def fps(self) -> int: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def audio_duration_s(self) -> float | None: ...


def expectations_of(report: _ReportLike) -> FilmExpectations:
    return FilmExpectations(
        clip_frames=tuple(report.clip_frames),
        seam_blend_frames=report.seam_blend_frames,
        fps=report.fps,
        size=(report.width, report.height),
        has_audio=report.audio_duration_s is not None,
    )


def signature(image: Image.Image) -> Image.Image:
    """Grayscale, ``SIGNATURE_WIDTH`` px wide (box filter): what the distances compare."""
    height = max(2, round(SIGNATURE_WIDTH * image.height / image.width))
    return image.convert("L").resize((SIGNATURE_WIDTH, height), Image.Resampling.BOX)


def picture_distance(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference (0-255) of two signatures (or pictures, signed on the way)."""
    sa = a if a.mode == "L" and a.width == SIGNATURE_WIDTH else signature(a)
    sb = b if b.mode == "L" and b.width == SIGNATURE_WIDTH else signature(b)
    if sb.size != sa.size:
        sb = sb.resize(sa.size, Image.Resampling.BOX)
    return float(ImageStat.Stat(ImageChops.difference(sa, sb)).mean[0])


def _frame_signature(frame: av.VideoFrame) -> Image.Image:
    width = SIGNATURE_WIDTH * 2
    height = max(2, 2 * round(width * frame.height / frame.width / 2))
    return signature(frame_image(frame, width, height))


def _keyframe_targets(layout: FilmLayout, count: int) -> tuple[dict[int, int], str | None]:
    """film index -> keyframe index to compare, for ``count`` keyframes."""
    n, t = layout.clips, layout.total_frames
    f = layout.seam_blend_frames
    seams = {s: k + 1 for k, s in enumerate(layout.seams)} if f == 0 else {}
    if count == n + 1:
        return {0: 0, t - 1: n, **seams}, None
    if count == n - 1 and n > 1:
        return {s: k - 1 for s, k in seams.items()}, None
    return {}, f"got {count} keyframes for {n} clips: expected {n + 1} (all) or {n - 1} (the seams)"


def verify_film(
    path: str | Path,
    expected: FilmExpectations | _ReportLike,
    keyframes: Sequence[Image.Image] | None = None,
    *,
    keyframe_mad_max: float = KEYFRAME_MAD_MAX,
) -> list[str]:
    exp = expected if isinstance(expected, FilmExpectations) else expectations_of(expected)
    problems = layout_problems(exp.clip_frames, exp.seam_blend_frames)
    if problems:
        return [f"expectations: {p}" for p in problems]
    layout = FilmLayout(exp.clip_frames, exp.seam_blend_frames, exp.fps)
    total = layout.total_frames
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        return [f"cannot open {path}: {exc}"]
    with container:
        if not container.streams.video:
            return ["no video stream"]
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        width, height = video.codec_context.width, video.codec_context.height
        if exp.size is not None and (width, height) != tuple(exp.size):
            problems.append(f"size {width}x{height}, expected {exp.size[0]}x{exp.size[1]}")
        if video.codec_context.pix_fmt != "yuv420p":
            problems.append(f"pixel format {video.codec_context.pix_fmt}, expected yuv420p")
        packets = 0
        last_dts: dict[int, int] = {}
        bad_dts: dict[int, int] = {}
        ends: dict[int, int] = {}
        for packet in container.demux():
            if packet.size == 0 or packet.dts is None:
                continue
            i = packet.stream.index
            if i in last_dts and packet.dts <= last_dts[i]:
                bad_dts[i] = bad_dts.get(i, 0) + 1
            last_dts[i] = packet.dts
            if packet.pts is not None:
                ends[i] = max(ends.get(i, packet.pts), packet.pts + (packet.duration or 0))
            if packet.stream is video:
                packets += 1
        for i, count in bad_dts.items():
            problems.append(f"stream {i}: dts not strictly increasing {count} times")
        formula = f"sum({list(exp.clip_frames)}) - ({layout.clips}-1)*(1+{exp.seam_blend_frames})"
        if packets != total:
            problems.append(f"{packets} video frames, expected {total} = {formula}")
        problems += _check_audio(exp, layout, video, audio, ends)
    problems += _check_frames(path, layout, exp, keyframes, keyframe_mad_max)
    return problems


def _stream_seconds(stream: av.stream.Stream, end: int | None) -> float:
    start = stream.start_time if stream.start_time is not None else 0
    tb = stream.time_base or Fraction(1, 1)
    return float((end - max(0, start)) * tb) if end is not None else 0.0


def _check_audio(
    exp: FilmExpectations,
    layout: FilmLayout,
    video: av.stream.Stream,
    audio: av.stream.Stream | None,
    ends: dict[int, int],
) -> list[str]:
    if audio is None:
        return ["no audio stream, expected one"] if exp.has_audio else []
    if exp.has_audio is False:
        return ["an audio stream, expected a silent film"]
    video_s = _stream_seconds(video, ends.get(video.index))
    audio_s = _stream_seconds(audio, ends.get(audio.index))
    if abs(audio_s - video_s) > AAC_FRAME_S + 1e-9:
        return [f"audio lasts {audio_s:.4f} s, video {video_s:.4f} s (more than one AAC frame apart)"]
    return []


def _check_frames(
    path: str | Path,
    layout: FilmLayout,
    exp: FilmExpectations,
    keyframes: Sequence[Image.Image] | None,
    keyframe_mad_max: float,
) -> list[str]:
    problems: list[str] = []
    targets: dict[int, int] = {}
    if keyframes is not None:
        targets, why = _keyframe_targets(layout, len(keyframes))
        if why:
            problems.append(why)
    f = layout.seam_blend_frames
    wanted: set[int] = set(targets)
    for s in layout.seams:
        wanted.update(range(max(0, s - NEIGHBOURHOOD), s + f + NEIGHBOURHOOD + 1))
    sigs: dict[int, Image.Image] = {}
    decoded = 0
    last_pts: int | None = None
    steps: set[int] = set()
    back = 0
    wrong_size = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.codec_context.width, stream.codec_context.height
        for frame in container.decode(stream):
            if frame.pts is not None:
                if last_pts is not None:
                    if frame.pts <= last_pts:
                        back += 1
                    else:
                        steps.add(frame.pts - last_pts)
                last_pts = frame.pts
            if (frame.width, frame.height) != (width, height):
                wrong_size += 1
            if decoded in wanted:
                sigs[decoded] = _frame_signature(frame)
            decoded += 1
    if decoded != layout.total_frames:
        problems.append(f"{decoded} frames decoded, expected {layout.total_frames}")
    if back:
        problems.append(f"decoded pts not strictly increasing {back} times")
    if len(steps) > 1:
        problems.append(f"frame steps vary ({sorted(steps)[:5]}): not constant frame rate")
    if wrong_size:
        problems.append(f"{wrong_size} frames not {width}x{height}")
    if keyframes is not None:
        for index, k in sorted(targets.items()):
            if index not in sigs:
                problems.append(f"frame {index} (keyframe {k}) missing")
                continue
            target = signature(fit_image(keyframes[k], width, height))
            d = picture_distance(sigs[index], target)
            if d > keyframe_mad_max:
                problems.append(
                    f"frame {index} differs from keyframe {k}: distance {d:.2f} > {keyframe_mad_max}"
                )
    problems += _check_duplicates(layout, sigs)
    return problems


def _diff(sigs: dict[int, Image.Image], i: int) -> float | None:
    """Distance between frames i-1 and i, when both were kept."""
    if i - 1 in sigs and i in sigs:
        return picture_distance(sigs[i - 1], sigs[i])
    return None


def _check_duplicates(layout: FilmLayout, sigs: dict[int, Image.Image]) -> list[str]:
    problems = []
    f = layout.seam_blend_frames
    for k, s in enumerate(layout.seams):
        pairs = range(s, s + 2) if f == 0 else range(s, s + f + 1)  # pair i = frames (i-1, i)
        others = [
            d
            for i in range(s - NEIGHBOURHOOD + 1, s + f + NEIGHBOURHOOD + 1)
            if i not in pairs and (d := _diff(sigs, i)) is not None
        ]
        moving = statistics.median(others) if others else 0.0
        for i in pairs:
            d = _diff(sigs, i)
            if d is None:
                continue
            duplicate = d < DUPLICATE_MAD_MAX or (
                f == 0 and moving >= MOTION_FLOOR and d < DUPLICATE_RATIO * moving
            )
            if duplicate:
                problems.append(
                    f"seam {k}: frames {i - 1} and {i} look the same (distance {d:.3f}, "
                    f"neighbourhood median {moving:.3f})"
                )
    return problems
