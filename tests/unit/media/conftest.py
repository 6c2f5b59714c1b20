"""Synthetic storyboards for the media package: small (320x240), short (30 frames at 30 fps) H.264 clips,
made once per session with PyAV (``media/`` is on pytest's pythonpath: it is a layer of its own, not part of
the installed project)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from inbetween_media import synth
from stitch_helpers import ROOT, SIZE  # noqa: F401 - ROOT re-exported for the fixtures' users

FRAMES = 30
GRAIN = 3.0


@dataclass(frozen=True)
class Storyboard:
    clips: list[Path]
    keyframes: list  # PIL images, one more than clips

    @property
    def clip_frames(self) -> list[int]:
        from inbetween_media.probe import probe_clip

        return [probe_clip(p).frames for p in self.clips]


MakeBoard = Callable[..., Storyboard]


@pytest.fixture(scope="session")
def make_board(tmp_path_factory: pytest.TempPathFactory) -> MakeBoard:
    """``make_board(name, clips=3, tones=None, sizes=None, frames=30)``: cached per session by ``name``.

    ``tones[k]`` is clip k's tone in Hz (None: no audio); ``sizes[k]`` clip k's size (default 320x240)."""
    root = tmp_path_factory.mktemp("boards")
    cache: dict[str, Storyboard] = {}

    def make(
        name: str,
        clips: int = 3,
        tones: Sequence[float | None] | None = None,
        sizes: Sequence[tuple[int, int]] | None = None,
        frames: int | Sequence[int] = FRAMES,
        fps: int = 30,
    ) -> Storyboard:
        if name in cache:
            return cache[name]
        folder = root / name
        folder.mkdir()
        sizes = list(sizes) if sizes else [SIZE] * clips
        tones = list(tones) if tones else [None] * clips
        counts = [frames] * clips if isinstance(frames, int) else list(frames)
        paths = [
            synth.make_clip(
                folder / f"clip{k:02d}.mp4",
                k,
                frames=counts[k],
                size=sizes[k],
                fps=fps,
                tone_hz=tones[k],
                grain=GRAIN,
            )
            for k in range(clips)
        ]
        # keyframe k is clip k's first frame; the last keyframe is the last clip's last frame
        keyframes = [synth.keyframe(k, sizes[k]) for k in range(clips)] + [synth.keyframe(clips, sizes[-1])]
        cache[name] = Storyboard(paths, keyframes)
        return cache[name]

    return make


@pytest.fixture(scope="session")
def board(make_board: MakeBoard) -> Storyboard:
    """Three silent 30-frame clips."""
    return make_board("silent3")


@pytest.fixture(scope="session")
def sound_board(make_board: MakeBoard) -> Storyboard:
    """Three clips with tones: 450 Hz, 450 Hz, 750 Hz (15 and 25 cycles per 30 fps frame: phase 0 at every
    frame boundary, so a sample-exact cut keeps the 450 Hz tone continuous across seam 0)."""
    return make_board("tones3", tones=[450.0, 450.0, 750.0])
