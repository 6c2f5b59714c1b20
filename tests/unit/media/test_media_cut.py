"""Cutting a clip to a range of its frames (inbetween_media.cut): the tail a continuation starts from, a
continued shot without the tail it repeats; video frames exact, the soundtrack the same span of time."""

from __future__ import annotations

import pytest
from inbetween_media import synth
from inbetween_media.cut import CutError, cut_clip
from inbetween_media.probe import probe_clip
from inbetween_media.verify import picture_distance
from stitch_helpers import decode_audio, decode_pictures, pts_steps


@pytest.fixture(scope="module")
def toned(tmp_path_factory):
    """A 60-frame clip with a 450 Hz tone (15 cycles per frame: phase 0 at each frame boundary)."""
    return synth.make_clip(
        tmp_path_factory.mktemp("cut") / "toned.mp4", 0, frames=60, tone_hz=450.0, grain=3.0
    )


def test_the_tail_keeps_the_last_frames_in_order_retimed_from_zero(toned, tmp_path):
    source = decode_pictures(toned)
    # When the last 20 frames are cut out
    assert cut_clip(toned, tmp_path / "tail.mp4", start=40) == 20
    # Then the tail is those frames (re-encoded: near, not equal), at the clip's rate, from pts 0
    tail = decode_pictures(tmp_path / "tail.mp4")
    assert len(tail) == 20 and probe_clip(tmp_path / "tail.mp4").frames == 20
    assert all(picture_distance(a, b) < 2.0 for a, b in zip(tail, source[40:], strict=True))
    assert picture_distance(tail[0], source[39]) > picture_distance(tail[0], source[40])
    assert set(pts_steps(tmp_path / "tail.mp4")) == {512}  # libx264's 1/15360 time base at 30 fps
    info = probe_clip(tmp_path / "tail.mp4")
    assert (info.width, info.height) == (320, 240) and info.start_pts == 0


def test_the_soundtrack_is_cut_to_the_same_span_of_time(toned, tmp_path):
    cut_clip(toned, tmp_path / "middle.mp4", start=15, stop=45)
    source, cut = decode_audio(toned), decode_audio(tmp_path / "middle.mp4")
    assert len(cut) == 48000  # frames 15-44: one second
    # sample-exact: the cut's sound is the source's from frame 15 (1,600 samples a frame) on; a shift of
    # even 1,000 samples would differ by ~0.35 on average (a 0.3 tone)
    span = range(2048, len(cut) - 2048)
    assert sum(abs(cut[i] - source[24000 + i]) for i in span) / len(span) < 0.01


def test_a_silent_cut_when_asked_and_a_range_outside_the_clip_is_refused(toned, tmp_path):
    cut_clip(toned, tmp_path / "mute.mp4", start=0, stop=30, audio=False)
    assert probe_clip(tmp_path / "mute.mp4").audio is None
    for start, stop in ((50, 70), (30, 30), (-1, 10)):
        with pytest.raises(CutError, match="not inside a clip of 60 frames"):
            cut_clip(toned, tmp_path / "bad.mp4", start=start, stop=stop)
