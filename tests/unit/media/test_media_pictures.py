"""Poster and contact sheet: valid JPEG/PNG, bounded sizes, the grid's layout."""

from __future__ import annotations

import io

import av
import pytest
from inbetween_media.pictures import (
    LABEL_WIDTH,
    PAD,
    THUMB_WIDTH,
    FilmPictures,
    clip_pictures,
    contact_sheet,
    poster,
    sheet_size,
)
from inbetween_media.stitch import plan_film, stitch_film
from inbetween_media.verify import picture_distance
from PIL import Image
from stitch_helpers import decode_pictures


def _open(data: bytes, fmt: str) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == fmt
    image.load()
    return image


def test_poster_of_a_picture_a_frame_and_a_file(board):
    kf = board.keyframes[1]
    assert _open(poster(kf), "JPEG").size == (320, 240)
    assert _open(poster(av.VideoFrame.from_image(kf)), "JPEG").size == (320, 240)
    from_file = _open(poster(board.clips[0]), "JPEG")
    assert picture_distance(from_file, decode_pictures(board.clips[0])[15]) < 2.0  # the middle frame
    big = Image.new("RGB", (4000, 3000), (10, 20, 30))
    assert _open(poster(big), "JPEG").size == (1920, 1440)  # bounded


def test_the_contact_sheet_is_a_labelled_grid_of_fixed_cells(board):
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    rows = [(str(r + 1), [Image.new("RGB", (640, 480), c) for c in colours]) for r in range(4)]
    sheet = _open(contact_sheet(rows), "PNG")
    th = 240  # 320 * 480 / 640
    assert (
        sheet.size
        == sheet_size(4, 3, th)
        == (PAD + LABEL_WIDTH + 3 * (THUMB_WIDTH + PAD), PAD + 4 * (th + PAD))
    )
    for r in range(4):
        top = PAD + r * (th + PAD)
        for c, colour in enumerate(colours):
            left = PAD + LABEL_WIDTH + c * (THUMB_WIDTH + PAD)
            centre = sheet.getpixel((left + THUMB_WIDTH // 2, top + th // 2))
            assert max(abs(a - b) for a, b in zip(centre, colour, strict=True)) < 3
        label = sheet.crop((PAD, top, PAD + LABEL_WIDTH, top + th)).convert("L")
        assert max(label.getdata()) > 150  # the row's number is drawn


def test_pictures_of_another_shape_are_fitted_into_their_cell():
    rows = [
        ("1", [Image.new("RGB", (320, 240), (250, 250, 250)), Image.new("RGB", (240, 240), (250, 250, 250))])
    ]
    sheet = _open(contact_sheet(rows), "PNG")
    left = PAD + LABEL_WIDTH + THUMB_WIDTH + PAD
    assert sheet.getpixel((left + 5, PAD + 120))[0] < 50  # pillarbox bar
    assert sheet.getpixel((left + 160, PAD + 120))[0] > 240
    with pytest.raises(ValueError):
        contact_sheet([])


def test_clip_pictures_takes_poster_and_sheet_in_one_scan(board):
    poster_jpeg, sheet_png = clip_pictures(board.clips[1], label="2")
    frames = decode_pictures(board.clips[1])
    assert picture_distance(_open(poster_jpeg, "JPEG"), frames[15]) < 2.0
    sheet = _open(sheet_png, "PNG")
    assert sheet.size == sheet_size(1, 3, 240)
    for c, index in enumerate((0, 15, 29)):
        left = PAD + LABEL_WIDTH + c * (THUMB_WIDTH + PAD)
        cell = sheet.crop((left, PAD, left + THUMB_WIDTH, PAD + 240))
        assert picture_distance(cell, frames[index]) < 2.0


def test_film_pictures_come_from_the_stitch_pass(board, tmp_path):
    plan = plan_film(board.clips)
    grab = FilmPictures(plan.layout, plan.width, plan.height)
    report = stitch_film(board.clips, tmp_path / "film.mp4", on_frame=grab, plan=plan)
    sheet = _open(grab.sheet_png(), "PNG")
    assert sheet.size == sheet_size(3, 3, 240)
    film = decode_pictures(tmp_path / "film.mp4")
    for shot, (start, stop) in enumerate(report.shot_ranges):
        top = PAD + shot * (240 + PAD)
        for c, index in enumerate((start, start + (stop - start) // 2, stop - 1)):
            left = PAD + LABEL_WIDTH + c * (THUMB_WIDTH + PAD)
            assert picture_distance(sheet.crop((left, top, left + THUMB_WIDTH, top + 240)), film[index]) < 2.5
    assert picture_distance(_open(grab.poster_jpeg(), "JPEG"), film[report.total_frames // 2]) < 2.5
