"""Where every frame of a film comes from: the seam rule and the cross-fade, as plain arithmetic.

Clip ``k`` has ``n_k`` frames; its first frame shows keyframe ``k`` and its last frame keyframe ``k+1``, so
clip ``k``'s last frame and clip ``k+1``'s first frame are the same picture. With ``N`` clips and a blend of
``F >= 0`` frames (``seam_blend_frames``):

* **Seam rule** (always): each earlier clip's last frame is dropped and the next clip's first frame (its IDR,
  the frame the model conditioned on) is kept, so each seam's keyframe is shown once.
* **Cross-fade** (``F > 0``): after that drop, the last ``F`` remaining frames of clip ``k`` are overlaid on the
  first ``F`` frames of clip ``k+1``: film frame ``s_k + j`` (``j = 0..F-1``) is
  ``(1 - w_j) * a[n_k - 1 - F + j] + w_j * b[j]`` with ``w_j = (j + 1) / (F + 1)`` (linear), where ``a`` and ``b``
  are the frames of clips ``k`` and ``k+1``. The audio is cross-faded (equal power) over the same span.

So, exactly::

    total frames   T   = sum(n_k) - (N - 1) * (1 + F)
    seam k (0..N-2) s_k = sum(n_j - 1 - F for j <= k)   # film index of clip k+1's first frame
    shot k occupies [s_{k-1}, s_k)  with s_{-1} = 0 and s_{N-1} = T

With ``F = 0`` film frame ``s_k`` *is* clip ``k+1``'s first frame (keyframe ``k+1``); with ``F > 0`` it is the
first frame of the blend window ``[s_k, s_k + F)`` and no frame shows a keyframe unmixed except the film's
first and last. Every clip must keep at least one unblended frame: ``n_k >= head_k + tail_k + 1`` with
``head_k = F`` (``k > 0``) and ``tail_k = F + 1`` (``k < N - 1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FilmLayout:
    """The film's frame arithmetic for clips of ``clip_frames`` frames joined with ``seam_blend_frames``."""

    clip_frames: tuple[int, ...]
    seam_blend_frames: int = 0
    fps: int = 30

    def __post_init__(self) -> None:
        problems = layout_problems(self.clip_frames, self.seam_blend_frames)
        if self.fps <= 0:
            problems.append(f"fps must be positive, not {self.fps}")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def of(cls, clip_frames: Sequence[int], seam_blend_frames: int = 0, fps: int = 30) -> FilmLayout:
        return cls(tuple(int(n) for n in clip_frames), int(seam_blend_frames), int(fps))

    @property
    def clips(self) -> int:
        return len(self.clip_frames)

    @property
    def total_frames(self) -> int:
        return sum(self.clip_frames) - (self.clips - 1) * (1 + self.seam_blend_frames)

    @property
    def seams(self) -> tuple[int, ...]:
        """Film index of clip k+1's first frame, for k = 0..N-2 (the first blended frame when F > 0)."""
        out: list[int] = []
        at = 0
        for n in self.clip_frames[:-1]:
            at += n - 1 - self.seam_blend_frames
            out.append(at)
        return tuple(out)

    @property
    def shot_ranges(self) -> tuple[tuple[int, int], ...]:
        """``(start, stop)`` film indices of each shot: ``[s_{k-1}, s_k)``."""
        bounds = (0, *self.seams, self.total_frames)
        return tuple(zip(bounds[:-1], bounds[1:], strict=True))

    @property
    def duration_s(self) -> float:
        return self.total_frames / self.fps


def layout_problems(clip_frames: Sequence[int], seam_blend_frames: int) -> list[str]:
    """Why these clips cannot be joined with this blend (empty when they can)."""
    f = seam_blend_frames
    if f < 0:
        return [f"seam_blend_frames must be >= 0, not {f}"]
    if not clip_frames:
        return ["no clips"]
    last = len(clip_frames) - 1
    problems = []
    for k, n in enumerate(clip_frames):
        need = (f if k > 0 else 0) + (f + 1 if k < last else 0) + 1
        if n < need:
            problems.append(f"clip {k} has {n} frames, needs at least {need} for a {f}-frame blend")
    return problems
