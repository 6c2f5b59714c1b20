"""Intake of wan2.7-i2v drops (issue 14), against the in-memory ports: which folders become tasks, the
body the provider is asked for (``input.media``, duration, resolution), how audio and clips are sent
(presigned URLs, never inline), the output size of a continuation, and every invalid combination refused
before any provider call with an error.json saying which field and what to do, inputs kept, one
notification.

The media are small real files (PyAV): 8 kHz mono MP3 tones and low-frame-rate H.264 clips.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inbetween.domain.catalog import expected_output_size, output_size
from inbetween.domain.models import JobStatus
from inbetween.usecases.intake import IntakeOutcome, examine, settle_overdue_drops
from inbetween.usecases.notify import FAILED_EVENT
from inbetween_local.memory import memory_world
from inbetween_local.memory import test_settings as settings_with
from usecase_kit import BLUE, FLASH, RED, drop, frame_png, inbox_error, job_named, jobs_named

from tests.unit.provider.media_fakes import write_audio, write_video

WAN27 = "wan2.7-i2v"
CLIP_SIZE = (480, 240)  # 2:1, unlike the 4:3 frames: the output's aspect tells which one it follows
FRAME_SIZE = (320, 240)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, bytes]:
    """The audio and clips the cases use, written once for the module."""
    folder: Path = tmp_path_factory.mktemp("wan27-media")
    return {
        "audio_3s": write_audio(folder / "a3.mp3", 3, rate=8000),
        "audio_40s": write_audio(folder / "a40.mp3", 40, rate=8000),
        "clip_3s": write_video(folder / "c3.mp4", 3, size=CLIP_SIZE, fps=5),
        "clip_12s": write_video(folder / "c12.mp4", 12, size=(240, 240), fps=2),
    }


@pytest.fixture
def world():
    return memory_world()


def _job_json(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def _first() -> bytes:
    return frame_png(RED, FRAME_SIZE)


def _last() -> bytes:
    return frame_png(BLUE, FRAME_SIZE)


def _media_items(world) -> list[dict[str, str]]:
    [request] = world.provider.created
    body = request.to_body()
    assert body["model"] == WAN27
    return body["input"]["media"]


def _presigned(url: str, world, name: str, filename: str) -> bool:
    """Whether ``url`` is the inbox's presigned link to the file (what InMemoryBlobs.presign_get gives)."""
    settings = world.deps.settings
    return url.startswith(
        f"https://{settings.inbox_bucket}.s3.test/{settings.inbox_prefix}{name}/{filename}?"
    )


# --- drops that become tasks -------------------------------------------------------------------------


def test_a_first_frame_alone_is_a_wan27_task_of_one_first_frame_item(world):
    drop(world, "solo", {"first.png": _first(), "job.json": _job_json(model=WAN27)})
    assert examine(world.deps, "solo") is IntakeOutcome.ACCEPTED
    job = job_named(world, "solo")
    assert job is not None and job.status is JobStatus.SUBMITTED
    [item] = _media_items(world)
    assert item["type"] == "first_frame" and _presigned(item["url"], world, "solo", "first.png")
    # the model's default length is asked for explicitly; the output follows the first frame
    body = world.provider.created[0].to_body()
    assert body["parameters"]["duration"] == 5
    assert job.expected_size == output_size(*FRAME_SIZE, body["parameters"]["resolution"])


@pytest.mark.parametrize("transport", ["url", "base64"])
def test_frames_and_a_driving_audio_are_sent_with_the_audio_as_a_presigned_url(transport, media):
    world = memory_world(settings_with(frame_transport=transport))
    files = {"first.png": _first(), "last.png": _last(), "audio.mp3": media["audio_3s"]}
    drop(world, "voiced", {**files, "job.json": _job_json(model=WAN27)})
    assert examine(world.deps, "voiced") is IntakeOutcome.ACCEPTED
    items = _media_items(world)
    assert [item["type"] for item in items] == ["first_frame", "last_frame", "driving_audio"]
    urls = {item["type"]: item["url"] for item in items}
    # the audio always by URL: base64 is documented for images only
    assert _presigned(urls["driving_audio"], world, "voiced", "audio.mp3")
    assert not urls["driving_audio"].startswith("data:")
    for kind, filename in (("first_frame", "first.png"), ("last_frame", "last.png")):
        if transport == "base64":
            assert urls[kind].startswith("data:image/png;base64,")
        else:
            assert _presigned(urls[kind], world, "voiced", filename)
    job = job_named(world, "voiced")
    assert job is not None and set(job.inputs) == {"first", "last", "audio", "job.json"}


def test_a_first_clip_and_a_last_frame_are_a_continuation_sized_by_the_clip(media):
    world = memory_world(settings_with(frame_transport="base64"))
    files = {"first_clip.mp4": media["clip_3s"], "last.png": _last()}
    drop(world, "sequel", {**files, "job.json": _job_json(model=WAN27, resolution="1080P")})
    assert examine(world.deps, "sequel") is IntakeOutcome.ACCEPTED
    items = _media_items(world)
    assert [item["type"] for item in items] == ["first_clip", "last_frame"]
    # the clip is never inlined either
    assert _presigned(items[0]["url"], world, "sequel", "first_clip.mp4")
    assert items[1]["url"].startswith("data:image/png;base64,")
    job = job_named(world, "sequel")
    assert job is not None
    # the video's aspect is the clip's (2:1), not the last frame's (4:3)
    assert job.expected_size == expected_output_size("1080P", first_clip=CLIP_SIZE)
    assert job.expected_size != output_size(*FRAME_SIZE, "1080P")
    width, height = job.expected_size
    assert width / height == pytest.approx(2.0, rel=0.02) and width % 16 == height % 16 == 0


def test_the_asked_duration_and_resolution_reach_the_parameters(world):
    drop(
        world,
        "long",
        {
            "first.png": _first(),
            "last.png": _last(),
            "job.json": _job_json(model=WAN27, duration=10, resolution="1080P"),
        },
    )
    assert examine(world.deps, "long") is IntakeOutcome.ACCEPTED
    [request] = world.provider.created
    parameters = request.to_body()["parameters"]
    assert parameters["duration"] == 10 and parameters["resolution"] == "1080P"
    job = job_named(world, "long")
    assert job is not None and job.spec is not None and job.spec.duration == 10
    assert job.expected_size == output_size(*FRAME_SIZE, "1080P")


# --- drops refused before any provider call ----------------------------------------------------------


def _pair() -> dict[str, bytes]:
    return {"first.png": _first(), "last.png": _last()}


# (files, code, what the message must name, what the hint must name); media[...] keys are filled in
REFUSED = {
    "480p-on-wan27": (
        {**_pair(), "job.json": _job_json(model=WAN27, resolution="480P")},
        "UnsupportedResolution",
        ("resolution", "480P"),
        ("720P", "1080P"),
    ),
    "duration-16-on-wan27": (
        {**_pair(), "job.json": _job_json(model=WAN27, duration=16)},
        "UnsupportedDuration",
        ("duration", "16"),
        ("2", "15"),
    ),
    "duration-8-on-kf2v": (
        {**_pair(), "job.json": _job_json(model=FLASH, duration=8)},
        "UnsupportedDuration",
        ("duration", "8"),
        ("5", WAN27),
    ),
    "audio-on-kf2v": (
        {**_pair(), "audio.mp3": "audio_3s", "job.json": _job_json(model=FLASH)},
        "MediaNotSupported",
        ("audio",),
        ("remove audio", WAN27),
    ),
    "template-on-wan27": (
        {"first.png": _first(), "job.json": _job_json(model=WAN27, template="hanfu-1")},
        "TemplateNotSupported",
        ("template",),
        ("template",),
    ),
    "first-clip-with-first-frame": (
        {"first.png": _first(), "first_clip.mp4": "clip_3s", "job.json": _job_json(model=WAN27)},
        "FirstFrameWithFirstClip",
        ("first frame", "first clip"),
        ("remove first.", "remove first_clip"),
    ),
    "audio-of-40s": (
        {**_pair(), "audio.mp3": "audio_40s", "job.json": _job_json(model=WAN27)},
        "AudioTooLong",
        ("audio.mp3", "40"),
        ("30 seconds",),
    ),
    "first-clip-of-12s": (
        {"first_clip.mp4": "clip_12s", "last.png": _last(), "job.json": _job_json(model=WAN27, duration=15)},
        "ClipTooLong",
        ("first_clip.mp4", "12"),
        ("10 seconds",),
    ),
    "audio-that-is-not-audio": (
        {**_pair(), "audio.mp3": frame_png(), "job.json": _job_json(model=WAN27)},
        "UnsupportedAudioFormat",
        ("audio.mp3", "not audio"),
        ("mp3", "wav"),
    ),
}


@pytest.mark.parametrize(("files", "code", "names", "todo"), REFUSED.values(), ids=REFUSED.keys())
def test_an_invalid_wan27_or_kf2v_drop_is_refused_before_any_provider_call(
    world, media, files, code, names, todo
):
    files = {name: media[data] if isinstance(data, str) else data for name, data in files.items()}
    drop(world, "bad", files)
    # When the folder is looked at (it is complete: no waiting makes it valid)
    assert examine(world.deps, "bad") is IntakeOutcome.REJECTED
    # Then the run is rejected with the reason
    job = job_named(world, "bad")
    assert job is not None and job.status is JobStatus.REJECTED
    assert job.error is not None and job.error.code == code
    # and error.json beside the inputs names the field and says what to do
    report = inbox_error(world, "bad")
    assert report is not None and report["error"]["code"] == code
    for word in names:
        assert word in report["error"]["message"], (word, report["error"]["message"])
    for word in todo:
        assert word in report["what_to_do"], (word, report["what_to_do"])
    assert report["inputs"] == {role: obj.key for role, obj in job.inputs.items()}
    # and one failure notification, zero provider calls, the inputs kept
    [note] = world.notifier.published
    assert (note.event_type, note.status, note.data["error"]["code"]) == (
        FAILED_EVENT,
        JobStatus.REJECTED,
        code,
    )
    assert world.provider.created == [] and world.provider.list_calls == 0
    bucket = world.deps.settings.inbox_bucket
    for name, data in files.items():
        assert world.blobs.objects[(bucket, f"inbox/bad/{name}")] == data
    # and a repeated event changes nothing
    assert examine(world.deps, "bad") is IntakeOutcome.DUPLICATE
    assert len(world.notifier.published) == 1 and len(jobs_named(world, "bad")) == 1


def test_a_driving_audio_alone_waits_for_its_first_frame_then_is_rejected_naming_it(world, media):
    settings = world.deps.settings
    drop(world, "mute", {"audio.mp3": media["audio_3s"], "job.json": _job_json(model=WAN27)})
    # a first frame can still make it a task (first + audio): it waits
    assert examine(world.deps, "mute") is IntakeOutcome.INCOMPLETE
    assert job_named(world, "mute") is None and world.notifier.published == []
    # When the timeout passes without one
    world.clock.advance(settings.incomplete_drop_timeout_s)
    assert settle_overdue_drops(world.deps) == 1
    # Then it is rejected, naming the first frame (not a last frame: wan2.7 needs none)
    job = job_named(world, "mute")
    assert job is not None and job.status is JobStatus.REJECTED
    assert job.error is not None and job.error.code == "IncompleteDrop"
    report = inbox_error(world, "mute")
    assert report is not None and report["error"]["code"] == "IncompleteDrop"
    assert "first frame" in report["error"]["message"] and "last frame" not in report["error"]["message"]
    assert [n.status for n in world.notifier.published] == [JobStatus.REJECTED]
    assert world.provider.created == []
    assert (settings.inbox_bucket, "inbox/mute/audio.mp3") in world.blobs.objects


def test_a_driving_audio_completed_by_its_first_frame_becomes_a_task(world, media):
    drop(world, "late", {"audio.mp3": media["audio_3s"], "job.json": _job_json(model=WAN27)})
    assert examine(world.deps, "late") is IntakeOutcome.INCOMPLETE
    drop(world, "late", {"first.png": _first()})
    assert examine(world.deps, "late") is IntakeOutcome.ACCEPTED
    assert [item["type"] for item in _media_items(world)] == ["first_frame", "driving_audio"]
    assert world.store.overdue_drops(world.clock.now() + 10**6) == []


def test_the_incomplete_drop_hint_of_a_wan27_folder_asks_for_what_wan27_takes(world, media):
    drop(world, "hint", {"audio.mp3": media["audio_3s"], "job.json": _job_json(model=WAN27)})
    assert examine(world.deps, "hint") is IntakeOutcome.INCOMPLETE
    assert examine(world.deps, "hint", final=True) is IntakeOutcome.REJECTED
    report = inbox_error(world, "hint")
    assert report is not None and report["error"]["code"] == "IncompleteDrop"
    assert "first." in report["what_to_do"]
    assert "template" not in report["what_to_do"] and "last.png" not in report["what_to_do"]


def test_error_json_names_the_field_at_fault(world):
    # Given a wan2.7 drop asking for a duration the model does not make
    drop(world, "long", {"first.png": _first(), "job.json": _job_json(model=WAN27, duration=16)})
    # When it is examined
    assert examine(world.deps, "long") is IntakeOutcome.REJECTED
    # Then error.json says which field to fix, as a field a program can read
    report = inbox_error(world, "long")
    assert report is not None and report["error"]["field"] == "duration"
