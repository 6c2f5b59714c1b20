"""The completion function's ``ClipPictures`` (``inbetween.ports``), on PyAV: a stored clip's poster and
contact sheet. Structurally typed, so this package never imports the shared layer (a contract) and the
shared layer never imports PyAV.

One demux (the frame count) and one decode scan of the clip (:func:`.pictures.clip_pictures`): every frame
is decoded, as the last one can only be found so, but only three are kept, as images. The poster is the
middle frame (frame ``n // 2``) at the video's own size, at most ``POSTER_MAX_WIDTH`` (1920) wide; the
sheet is one row labelled "1": the first, middle and last frame, each ``THUMB_WIDTH`` (320) wide.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from .pictures import THUMB_WIDTH, clip_pictures


@dataclass(frozen=True)
class ClipPicturesMade:
    """A clip's two pictures, as the port's ``Pictures``."""

    poster_jpeg: bytes
    contact_sheet_png: bytes


class PyAvClipPictures:
    """``make(video)``: the clip's poster (JPEG) and its one-row contact sheet (PNG); ``ValueError`` for a
    file that is not a readable video (FFmpeg's and the file system's errors included)."""

    def __init__(self, *, label: str = "1", thumb_width: int = THUMB_WIDTH) -> None:
        self._label, self._thumb_width = label, thumb_width

    def make(self, video: Path) -> ClipPicturesMade:
        try:
            poster_jpeg, sheet_png = clip_pictures(video, label=self._label, thumb_width=self._thumb_width)
        except (av.FFmpegError, OSError) as exc:
            raise ValueError(f"{video}: cannot make its pictures: {exc}") from exc
        return ClipPicturesMade(poster_jpeg, sheet_png)
