"""verify_film passes good films and catches broken ones, built deliberately with an independent writer."""

from __future__ import annotations

from array import array

import pytest
from inbetween_media import synth
from inbetween_media.stitch import stitch_film
from inbetween_media.verify import FilmExpectations, verify_film
from stitch_helpers import decode_pictures

SPF = 1600


@pytest.fixture(scope="module")
def frames_of(board):
    return [decode_pictures(p) for p in board.clips]


def _expect(board, **kw) -> FilmExpectations:
    return FilmExpectations(clip_frames=tuple(board.clip_frames), size=(320, 240), **kw)


def _seam_ruled(frames_of):
    """The correct picture sequence: every clip but the last loses its last frame."""
    out = []
    for k, clip in enumerate(frames_of):
        out += clip if k == len(frames_of) - 1 else clip[:-1]
    return out


def test_a_correct_film_written_independently_passes(board, frames_of, tmp_path):
    film = synth.write_clip(tmp_path / "good.mp4", _seam_ruled(frames_of))
    assert verify_film(film, _expect(board, has_audio=False), board.keyframes) == []


def test_a_naive_concatenation_is_caught(board, frames_of, tmp_path):
    film = synth.write_clip(tmp_path / "naive.mp4", [p for clip in frames_of for p in clip])
    problems = verify_film(film, _expect(board), board.keyframes)
    assert any("video frames, expected 88 = sum([30, 30, 30]) - (3-1)*(1+0)" in p for p in problems)


def test_a_duplicated_seam_frame_is_caught_even_when_the_count_is_right(board, frames_of, tmp_path):
    # seam 0 keeps clip 0's last frame AND clip 1's first (both keyframe 1) and loses clip 1's second
    a, b, c = frames_of
    film = synth.write_clip(tmp_path / "dup.mp4", a + b[:1] + b[2:-1] + c)
    problems = verify_film(film, _expect(board), board.keyframes)
    assert len(problems) == 1 and "seam 0: frames 29 and 30 look the same" in problems[0], problems


def test_a_missing_frame_is_caught(board, frames_of, tmp_path):
    good = _seam_ruled(frames_of)
    film = synth.write_clip(tmp_path / "missing.mp4", good[:10] + good[11:])
    problems = verify_film(film, _expect(board), board.keyframes)
    assert any("87 video frames, expected 88" in p for p in problems)
    assert any("87 frames decoded" in p for p in problems)


def test_a_wrong_seam_frame_is_caught(board, frames_of, tmp_path):
    good = _seam_ruled(frames_of)
    s1 = 58
    good[s1] = board.keyframes[0]  # the seam shows another keyframe
    film = synth.write_clip(tmp_path / "wrong.mp4", good)
    problems = verify_film(film, _expect(board), board.keyframes)
    assert any(p.startswith("frame 58 differs from keyframe 2") for p in problems), problems


def test_audio_that_does_not_match_the_video_is_caught(board, frames_of, tmp_path):
    good = _seam_ruled(frames_of)
    short = synth.tone(len(good) * SPF - 9600, 450.0)  # 0.2 s short
    film = synth.write_clip(tmp_path / "short.mp4", good, audio=short)
    problems = verify_film(film, _expect(board, has_audio=True), board.keyframes)
    assert len(problems) == 1 and "audio lasts 2.7333 s, video 2.9333 s" in problems[0], problems
    exact = synth.write_clip(tmp_path / "exact.mp4", good, audio=array("f", bytes(4 * len(good) * SPF)))
    assert verify_film(exact, _expect(board, has_audio=True), board.keyframes) == []
    assert verify_film(exact, _expect(board, has_audio=False)) == ["an audio stream, expected a silent film"]


def test_missing_audio_and_wrong_expectations_are_reported(board, tmp_path):
    out = tmp_path / "film.mp4"
    report = stitch_film(board.clips, out)
    assert verify_film(out, _expect(board, has_audio=True)) == ["no audio stream, expected one"]
    assert verify_film(out, report, board.keyframes[:3]) == [
        "got 3 keyframes for 3 clips: expected 4 (all) or 2 (the seams)"
    ]
    assert verify_film(out, report, board.keyframes[1:3]) == []  # the seams' keyframes only
    bigger = FilmExpectations(clip_frames=report.clip_frames, size=(640, 480))
    assert verify_film(out, bigger) == ["size 320x240, expected 640x480"]
    assert verify_film(tmp_path / "absent.mp4", report)[0].startswith("cannot open")
