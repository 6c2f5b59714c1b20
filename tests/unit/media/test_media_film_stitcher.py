"""PyAvFilmStitcher: the stitch function's FilmStitcher (inbetween.ports), on synthetic storyboards."""

from __future__ import annotations

import io

import pytest
from inbetween_media.film_stitcher import PyAvFilmStitcher
from PIL import Image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_stitched_film_verifies_against_its_keyframes_and_brings_its_pictures(sound_board, tmp_path):
    stitcher = PyAvFilmStitcher()
    film = tmp_path / "film.mp4"
    stitched = stitcher.stitch(sound_board.clips, film, seam_blend_frames=0)
    # the clips' frames, less one per seam; sound as long as the picture
    assert stitched.total_frames == sum(sound_board.clip_frames) - (len(sound_board.clips) - 1)
    assert stitched.audio_duration_s == pytest.approx(stitched.duration_s, abs=1024 / 48000)
    assert stitcher.verify(film, stitched, [_png(k) for k in sound_board.keyframes]) == []
    poster = Image.open(io.BytesIO(stitched.poster_jpeg))
    sheet = Image.open(io.BytesIO(stitched.contact_sheet_png))
    assert (poster.format, sheet.format) == ("JPEG", "PNG")
    assert poster.size == (stitched.width, stitched.height)


def test_keyframes_that_are_not_the_films_are_a_problem(board, tmp_path):
    stitcher = PyAvFilmStitcher()
    film = tmp_path / "film.mp4"
    stitched = stitcher.stitch(board.clips, film, seam_blend_frames=0)
    shuffled = [board.keyframes[0], board.keyframes[2], board.keyframes[1], board.keyframes[3]]
    assert stitcher.verify(film, stitched, [_png(k) for k in shuffled])


def test_clips_that_cannot_be_joined_are_a_value_error_naming_why(board, tmp_path):
    with pytest.raises(ValueError, match="blend|short|frames"):
        PyAvFilmStitcher().stitch(board.clips, tmp_path / "film.mp4", seam_blend_frames=40)
