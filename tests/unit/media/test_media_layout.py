"""The frame arithmetic and the fit rule, without video."""

from __future__ import annotations

import pytest
from inbetween_media.frames import Rect, fit_rect
from inbetween_media.layout import FilmLayout, layout_problems


def test_the_seam_rule_drops_one_frame_per_seam():
    layout = FilmLayout.of([150, 150, 151])
    assert layout.total_frames == 451 - 2
    assert layout.seams == (149, 298)
    assert layout.shot_ranges == ((0, 149), (149, 298), (298, 449))
    assert layout.duration_s == pytest.approx(449 / 30)


def test_a_blend_shortens_each_seam_by_the_blend_as_well():
    layout = FilmLayout.of([30, 30, 30], seam_blend_frames=4)
    # T = sum(n) - (N-1)*(1+F); s_k = sum_{j<=k}(n_j - 1 - F)
    assert layout.total_frames == 90 - 2 * 5
    assert layout.seams == (25, 50)
    assert sum(b - a for a, b in layout.shot_ranges) == layout.total_frames


def test_a_single_clip_is_the_film():
    layout = FilmLayout.of([81], fps=16)
    assert (layout.total_frames, layout.seams, layout.shot_ranges) == (81, (), ((0, 81),))


def test_clips_too_short_for_the_blend_are_refused():
    # a middle clip needs F (head) + F+1 (tail and the dropped frame) + 1 frames
    assert layout_problems([10, 9, 10], 4) == ["clip 1 has 9 frames, needs at least 10 for a 4-frame blend"]
    assert layout_problems([10, 10, 10], 4) == []
    assert layout_problems([], 0) == ["no clips"]
    with pytest.raises(ValueError, match="seam_blend_frames"):
        FilmLayout.of([10], seam_blend_frames=-1)


@pytest.mark.parametrize(
    ("src", "dst", "rect"),
    [
        ((1280, 720), (1280, 720), Rect(0, 0, 1280, 720)),
        ((1920, 1080), (1280, 720), Rect(0, 0, 1280, 720)),  # same aspect: scaled only
        ((816, 1104), (1280, 720), Rect(374, 0, 532, 720)),  # portrait: pillarbox
        ((240, 240), (320, 240), Rect(40, 0, 240, 240)),
        ((320, 100), (320, 240), Rect(0, 70, 320, 100)),  # letterbox
        ((300, 240), (320, 240), Rect(10, 0, 300, 240)),
        ((298, 240), (320, 240), Rect(10, 0, 298, 240)),  # (320-298)/2 = 11: rounded down to even
    ],
)
def test_the_fit_rule_keeps_sizes_and_offsets_even(src, dst, rect):
    got = fit_rect(*src, *dst)
    assert got == rect
    assert got.w % 2 == got.h % 2 == got.x % 2 == got.y % 2 == 0
