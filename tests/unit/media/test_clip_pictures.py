"""PyAvClipPictures, the completion function's ClipPictures: a stored clip's poster (its middle frame, a
JPEG of the video's size) and contact sheet (a PNG row of three cells: first, middle, last, labelled "1")."""

from __future__ import annotations

import io

import av
import pytest
from inbetween_media import PyAvClipPictures, synth
from inbetween_media.pictures import LABEL_WIDTH, PAD, POSTER_MAX_WIDTH, THUMB_WIDTH, sheet_size, thumb_height
from inbetween_media.verify import picture_distance
from PIL import Image
from stitch_helpers import SIZE, decode_pictures


def _open(data: bytes, fmt: str) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == fmt
    image.load()
    return image


def _cell(sheet: Image.Image, column: int, height: int) -> Image.Image:
    left = PAD + LABEL_WIDTH + column * (THUMB_WIDTH + PAD)
    return sheet.crop((left, PAD, left + THUMB_WIDTH, PAD + height))


def test_a_clips_poster_is_its_middle_frame_at_the_videos_size(board):
    # Given a 30-frame 320x240 clip
    clip = board.clips[0]
    frames = decode_pictures(clip)
    # When its pictures are made
    made = PyAvClipPictures().make(clip)
    # Then the poster is a JPEG of the video's size showing frame n // 2
    poster = _open(made.poster_jpeg, "JPEG")
    assert poster.size == SIZE
    assert picture_distance(poster, frames[len(frames) // 2]) < 2.0


def test_a_clips_contact_sheet_is_one_labelled_row_of_its_first_middle_and_last_frame(board):
    clip = board.clips[2]
    frames = decode_pictures(clip)
    sheet = _open(PyAvClipPictures().make(clip).contact_sheet_png, "PNG")
    # a PNG of one row of three cells, each THUMB_WIDTH wide and of the video's shape
    th = thumb_height(*SIZE)
    assert sheet.size == sheet_size(1, 3, th)
    for column, index in enumerate((0, len(frames) // 2, len(frames) - 1)):
        assert picture_distance(_cell(sheet, column, th), frames[index]) < 2.0
    # and the row is labelled (its number drawn, light on the dark label column)
    label = sheet.crop((PAD, PAD, PAD + LABEL_WIDTH, PAD + th)).convert("L")
    assert max(label.getdata()) > 150


def test_the_poster_of_a_clip_wider_than_the_bound_is_scaled_down(tmp_path):
    # Given a short clip wider than POSTER_MAX_WIDTH (1920)
    size = (2048, 256)
    clip = synth.make_clip(tmp_path / "wide.mp4", 0, frames=6, size=size, preset="ultrafast")
    # Then its poster keeps the video's shape at the bound's width, and the sheet's cells the same shape
    made = PyAvClipPictures().make(clip)
    assert _open(made.poster_jpeg, "JPEG").size == (POSTER_MAX_WIDTH, thumb_height(*size, POSTER_MAX_WIDTH))
    assert _open(made.contact_sheet_png, "PNG").size == sheet_size(1, 3, thumb_height(*size))


def test_a_clip_of_one_frame_shows_it_in_every_cell(tmp_path):
    clip = synth.write_clip(tmp_path / "one.mp4", [synth.keyframe(1)])
    made = PyAvClipPictures().make(clip)
    (frame,) = decode_pictures(clip)
    sheet = _open(made.contact_sheet_png, "PNG")
    th = thumb_height(*SIZE)
    for column in range(3):
        assert picture_distance(_cell(sheet, column, th), frame) < 2.0
    assert picture_distance(_open(made.poster_jpeg, "JPEG"), frame) < 2.0


@pytest.mark.parametrize("content", [b"<html>502 Bad Gateway</html>", None], ids=["not-a-video", "missing"])
def test_a_file_that_is_not_a_readable_video_is_a_value_error(tmp_path, content):
    path = tmp_path / "video.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="video.mp4"):
        PyAvClipPictures().make(path)


def test_a_video_without_a_video_stream_is_a_value_error(tmp_path):
    # an audio-only MP4
    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000, layout="stereo")
        frame = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate, frame.pts = 48000, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    with pytest.raises(ValueError, match="no video stream"):
        PyAvClipPictures().make(path)
