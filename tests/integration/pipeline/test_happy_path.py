"""A drop becomes a stored, verified video with metadata and exactly one notification: a kf2v pair, and
a first frame alone under the default model (wan2.7-i2v)."""

from __future__ import annotations

import io
import json

import av
import httpx
from inbetween.domain.catalog import output_size
from PIL import Image
from pipeline_kit import RED, frame_png

# the contact sheet's layout (media/inbetween_media/pictures.py): one row, a label column, three cells
THUMB_WIDTH, LABEL_WIDTH, PAD = 320, 56, 8


def image_of(data: bytes, fmt: str) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == fmt
    image.load()
    return image


def sheet_size(width: int, height: int) -> tuple[int, int]:
    thumb_height = max(2, 2 * round(THUMB_WIDTH * height / width / 2))
    return PAD + LABEL_WIDTH + 3 * (THUMB_WIDTH + PAD), PAD + thumb_height + PAD


def test_a_dropped_pair_becomes_a_stored_video_with_metadata_and_one_notification(pipeline, pair, tmp_path):
    # Given a job folder with two frames and a job.json asking for kf2v flash at 480P
    job_json = json.dumps(
        {"model": "wan2.2-kf2v-flash", "prompt": "a red square turns blue", "resolution": "480P"}
    ).encode()
    pipeline.drop("shot-1", dict(pair, **{"job.json": job_json}))

    # When the pipeline runs
    item = pipeline.run_until_final("shot-1")

    # Then the video is stored, playable, the size the provider rule gives, with its metadata
    assert item["status"] == "STORED"
    output = pipeline.settings.output_bucket
    video_key = item["video_key"]
    assert video_key.startswith("results/shot-1/")
    path = tmp_path / "v.mp4"
    path.write_bytes(pipeline.s3.get_object(Bucket=output, Key=video_key)["Body"].read())
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (
            (stream.codec_context.width, stream.codec_context.height)
            == output_size(320, 240, "480P")
            == (720, 544)
        )
    metadata = pipeline.read_json(output, video_key.replace("video.mp4", "metadata.json"))
    assert metadata["prompt"] == "a red square turns blue"
    assert metadata["actual_prompt"].startswith("a red square turns blue")
    assert metadata["task_id"] == item["task_id"]
    assert metadata["usage"]["video_duration"] == 5
    # and exactly one SNS notification, with filterable attributes
    notes = pipeline.notifications()
    assert len(notes) == 1
    assert notes[0]["attributes"] == {
        "event_type": "video.generation.succeeded",
        "status": "STORED",
        "model": "wan2.2-kf2v-flash",
    }
    data = notes[0]["message"]["data"]
    assert data["video"]["key"] == video_key
    assert data["video"]["url"].startswith("http")
    # and beside the video its poster (the middle frame, at the video's size) and contact sheet (one row
    # of three cells), recorded on the job, listed in metadata.json and linked (presigned) in the event
    prefix = video_key.removesuffix("video.mp4")
    assert (item["poster_key"], item["contact_sheet_key"]) == (
        prefix + "poster.jpg",
        prefix + "contact-sheet.png",
    )
    assert metadata["pictures"] == {
        "poster": prefix + "poster.jpg",
        "contact_sheet": prefix + "contact-sheet.png",
    }
    for name, content_type, fmt, size in (
        ("poster.jpg", "image/jpeg", "JPEG", (720, 544)),
        ("contact-sheet.png", "image/png", "PNG", sheet_size(720, 544)),
    ):
        stored = pipeline.s3.get_object(Bucket=output, Key=prefix + name)
        assert stored["ContentType"] == content_type, name
        assert image_of(stored["Body"].read(), fmt).size == size, name
    for field, fmt in (("poster_url", "JPEG"), ("contact_sheet_url", "PNG")):
        answer = httpx.get(data[field], timeout=10)
        assert answer.status_code == 200, field
        image_of(answer.content, fmt)
    # and one provider task, created once
    assert pipeline.emulator.stats.creates_accepted == 1


def test_inputs_are_kept_after_success(pipeline, pair):
    pipeline.drop("keep", pair)
    pipeline.run_until_final("keep")
    keys = {o["Key"] for o in pipeline.s3.list_objects_v2(Bucket=pipeline.settings.inbox_bucket)["Contents"]}
    assert {"inbox/keep/first.png", "inbox/keep/last.png"} <= keys


def test_a_first_frame_alone_becomes_a_video_with_sound_under_the_default_model(pipeline, tmp_path):
    # Given a folder with only a first frame and a prompt, on a deployment with the template's defaults
    pipeline.drop("solo", {"first.png": frame_png(RED), "prompt.txt": b"a red square drifts"})

    # When the pipeline runs
    item = pipeline.run_until_final("solo")

    # Then wan2.7-i2v made it a 5 s video at its own 1080P, with a soundtrack, and it is stored
    assert item["status"] == "STORED"
    assert (item["spec"]["model"], item["spec"]["resolution"]) == ("wan2.7-i2v", "1080P")
    path = tmp_path / "v.mp4"
    output = pipeline.settings.output_bucket
    path.write_bytes(pipeline.s3.get_object(Bucket=output, Key=item["video_key"])["Body"].read())
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == output_size(320, 240, "1080P")
        assert video.frames == 150 and len(container.streams.audio) == 1
    metadata = pipeline.read_json(output, item["video_key"].replace("video.mp4", "metadata.json"))
    assert metadata["usage"]["duration"] == 5
    # and its 1080P pictures beside it: a poster of the video's size
    size = output_size(320, 240, "1080P")
    poster = pipeline.s3.get_object(Bucket=output, Key=item["poster_key"])["Body"].read()
    assert image_of(poster, "JPEG").size == size
    # and one notification naming the model and linking the pictures, one task of one first-frame item
    [note] = pipeline.notifications()
    assert note["attributes"]["model"] == "wan2.7-i2v"
    assert {"poster_url", "contact_sheet_url"} <= set(note["message"]["data"])
    assert pipeline.emulator.stats.creates_accepted == 1
    task = pipeline.emulator.task(item["task_id"])
    assert task is not None and (task.model, task.media_types, task.duration) == (
        "wan2.7-i2v",
        ("first_frame",),
        5,
    )
