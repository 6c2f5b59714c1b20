"""The stitch function's ``FilmStitcher`` (``inbetween.ports``), on PyAV: structurally typed, so this
package never imports the shared layer (a contract) and the shared layer never imports PyAV."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .cut import CutError, cut_clip
from .pictures import FilmPictures
from .probe import ProbeError, probe_clip
from .stitch import StitchError, StitchReport, plan_film, stitch_film
from .verify import verify_film


@dataclass(frozen=True)
class StitchedFilm:
    """A film as stitched: the report's figures and the pictures taken in the stitch's own decode pass."""

    report: StitchReport
    poster_jpeg: bytes
    contact_sheet_png: bytes

    @property
    def total_frames(self) -> int:
        return self.report.total_frames

    @property
    def duration_s(self) -> float:
        return self.report.duration_s

    @property
    def audio_duration_s(self) -> float | None:
        return self.report.audio_duration_s

    @property
    def width(self) -> int:
        return self.report.width

    @property
    def height(self) -> int:
        return self.report.height


class PyAvFilmStitcher:
    """libx264 ``veryfast`` at CRF 19 (``stitching.md``: the default path), 30 fps films."""

    def __init__(self, *, fps: int = 30, crf: int = 19, preset: str = "veryfast") -> None:
        self._fps, self._crf, self._preset = fps, crf, preset

    def stitch(self, clips: Sequence[Path], out: Path, *, seam_blend_frames: int) -> StitchedFilm:
        try:
            plan = plan_film(clips, seam_blend_frames=seam_blend_frames, fps=self._fps)
            pictures = FilmPictures(plan.layout, plan.width, plan.height)
            report = stitch_film(
                clips,
                out,
                seam_blend_frames=seam_blend_frames,
                fps=self._fps,
                crf=self._crf,
                preset=self._preset,
                on_frame=pictures,
                plan=plan,
            )
        except StitchError as exc:
            raise ValueError(str(exc)) from exc
        return StitchedFilm(report, pictures.poster_jpeg(), pictures.sheet_png())

    def frame_count(self, clip: Path) -> int:
        try:
            return probe_clip(clip).frames
        except ProbeError as exc:
            raise ValueError(str(exc)) from exc

    def cut(self, clip: Path, out: Path, *, start: int, stop: int | None = None, audio: bool = True) -> int:
        try:
            return cut_clip(
                clip, out, start=start, stop=stop, audio=audio, crf=self._crf, preset=self._preset
            )
        except (CutError, ProbeError) as exc:
            raise ValueError(str(exc)) from exc

    def verify(self, film: Path, stitched: object, keyframes: Sequence[bytes]) -> list[str]:
        """``stitched``: what this stitcher's ``stitch`` returned for ``film`` (its report is the plan)."""
        if not isinstance(stitched, StitchedFilm):
            raise TypeError(f"verify takes what stitch returned, not {type(stitched).__name__}")
        images = [Image.open(io.BytesIO(data)).convert("RGB") for data in keyframes]
        return verify_film(film, stitched.report, images or None)
