"""The film's soundtrack, rebuilt sample-exactly at the same seams as the video.

Everything is 48 kHz stereo float (``fltp``), so a film frame owns exactly ``spf = 48000 / fps`` samples
(1600 at 30 fps) and film frame ``i`` starts at sample ``i * spf``. Each clip's audio is decoded, resampled,
placed by its first timestamp relative to the clip's first video frame, then padded with silence or cut to
exactly ``n_k * spf`` samples (its video length). A clip without audio is silence. At each seam:

* ``F = 0``: the audio of the dropped frame (clip k's last ``spf`` samples) is dropped with it, and the cut is
  de-clicked by a short linear fade (``declick_ms``, 5 ms) out of clip k and into clip k+1. Total samples
  ``T * spf``, exactly the video's length.
* ``F > 0``: clip k's samples ``[(n_k-1-F)*spf, (n_k-1)*spf)`` are cross-faded (equal power: cos/sin) with clip
  k+1's first ``F * spf`` samples, over exactly the video's blend window.

The builder streams: it holds one clip's not-yet-final tail (at most ``(F+1)*spf`` plus the fade) and the
cross-fade carry, never the film.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from typing import TypeAlias

RATE = 48000
CHANNELS = 2

# float32 samples, left and right (strings: array is subscriptable at run time only from Python 3.12)
Chunk: TypeAlias = "tuple[array[float], array[float]]"
Sink: TypeAlias = "Callable[[array[float], array[float]], None]"


def samples_per_frame(fps: int) -> int:
    if RATE % fps:
        raise ValueError(f"{fps} fps does not divide {RATE} Hz into whole samples per frame")
    return RATE // fps


def _zeros(n: int) -> array[float]:
    return array("f", bytes(4 * n))


class SoundtrackBuilder:
    """Feed it each clip's decoded audio in order; it emits the film's samples to ``sink`` in order."""

    def __init__(self, sink: Sink, *, fps: int, clips: int, seam_blend_frames: int, declick_ms: float = 5.0):
        self._sink = sink
        self._spf = samples_per_frame(fps)
        self._clips = clips
        self._f = seam_blend_frames
        self._declick = max(0, round(declick_ms * RATE / 1000)) if seam_blend_frames == 0 else 0
        self._carry: Chunk | None = None
        self._clip = -1
        self.emitted = 0

    # per clip -------------------------------------------------------------------------------------------
    def start_clip(self, index: int) -> None:
        if index != self._clip + 1:
            raise ValueError(f"clip {index} after clip {self._clip}")
        self._clip = index
        self._buf: Chunk = (array("f"), array("f"))
        self._buf_origin = 0  # clip position of self._buf[*][0]
        self._received = 0  # clip position after the last received sample
        self._emit_pos = 0
        self._placed = False
        self._skip = 0
        self._fade_out: tuple[int, int] | None = None
        self._head_end = self._f * self._spf if index > 0 else 0

    @property
    def _first(self) -> bool:
        return self._clip == 0

    @property
    def _last(self) -> bool:
        return self._clip == self._clips - 1

    def add(self, left: array[float], right: array[float], frames_seen: int, at: int | None = None) -> None:
        """Samples of the current clip; ``at`` (clip position in samples) places the clip's first chunk."""
        if not self._placed:
            self._placed = True
            at = at or 0
            if at > 0:
                self._append(_zeros(at), _zeros(at))
            self._skip = max(0, -at)  # starts before the first video frame: cut the lead-in
        if self._skip:
            cut = min(self._skip, len(left))
            left, right, self._skip = left[cut:], right[cut:], self._skip - cut
        self._append(left, right)
        if self._last:
            limit = frames_seen * self._spf
        else:
            limit = (frames_seen - 1 - self._f) * self._spf - self._declick
        self._drain(min(limit, self._received))

    def end_clip(self, frames: int) -> None:
        """The clip had ``frames`` video frames: pad or cut its audio to match, emit it, keep the carry."""
        end = frames * self._spf
        if self._received < end:
            pad = end - self._received
            self._append(_zeros(pad), _zeros(pad))
        keep = end if self._last else (frames - 1 - self._f) * self._spf
        if keep < self._head_end:
            raise ValueError(f"clip {self._clip}: {frames} frames is too short for the blend")
        if not self._last:
            if self._f:
                lo = keep - self._buf_origin
                hi = lo + self._f * self._spf
                self._carry = (self._buf[0][lo:hi], self._buf[1][lo:hi])
            elif self._declick:
                self._fade_out = (max(self._head_end, keep - self._declick), keep)
        self._drain(keep)
        self._buf = (array("f"), array("f"))

    # internals ------------------------------------------------------------------------------------------
    def _append(self, left: array[float], right: array[float]) -> None:
        self._buf[0].extend(left)
        self._buf[1].extend(right if len(right) == len(left) else left)
        self._received += len(left)

    def _drain(self, limit: int) -> None:
        if limit <= self._emit_pos:
            return
        lo, hi = self._emit_pos - self._buf_origin, limit - self._buf_origin
        left, right = self._buf[0][lo:hi], self._buf[1][lo:hi]
        start = self._emit_pos
        # the cross-fade with the previous clip's carry (its tail), equal power
        if self._head_end and start < self._head_end and self._carry is not None:
            n = self._head_end
            for i in range(start, min(limit, n)):
                t = (i + 0.5) / n
                g_in, g_out = math.sin(t * math.pi / 2), math.cos(t * math.pi / 2)
                j = i - start
                left[j] = left[j] * g_in + self._carry[0][i] * g_out
                right[j] = right[j] * g_in + self._carry[1][i] * g_out
        # de-click fade into this clip (hard cut, not the first clip)
        if self._declick and not self._first and start < self._declick:
            for i in range(start, min(limit, self._declick)):
                g = (i + 0.5) / self._declick
                left[i - start] *= g
                right[i - start] *= g
        if self._fade_out is not None:
            f0, f1 = self._fade_out
            for i in range(max(start, f0), min(limit, f1)):
                g = (f1 - i - 0.5) / (f1 - f0)
                left[i - start] *= g
                right[i - start] *= g
        self._sink(left, right)
        self.emitted += len(left)
        self._emit_pos = limit
        # forget what was emitted
        del self._buf[0][:hi]
        del self._buf[1][:hi]
        self._buf_origin = limit
