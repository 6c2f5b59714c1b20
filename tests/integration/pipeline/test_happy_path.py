"""A drop becomes a stored, verified video with metadata and exactly one notification."""

from __future__ import annotations

import json

import av
from inbetween.domain.catalog import output_size


def test_a_dropped_pair_becomes_a_stored_video_with_metadata_and_one_notification(pipeline, pair, tmp_path):
    # Given a job folder with two frames and a job.json
    job_json = json.dumps({"prompt": "a red square turns blue", "resolution": "480P"}).encode()
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
    # and one provider task, created once
    assert pipeline.emulator.stats.creates_accepted == 1


def test_inputs_are_kept_after_success(pipeline, pair):
    pipeline.drop("keep", pair)
    pipeline.run_until_final("keep")
    keys = {o["Key"] for o in pipeline.s3.list_objects_v2(Bucket=pipeline.settings.inbox_bucket)["Contents"]}
    assert {"inbox/keep/first.png", "inbox/keep/last.png"} <= keys
