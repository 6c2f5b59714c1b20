"""Completion against the in-memory world: the finished video is copied out of its expiring link into the
output bucket (whole, an MP4, once), described in metadata.json and announced once; an expired link ends
the job; a failed or short download is retried, never stored."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from inbetween.domain.models import DueKind, InputObject, Job, JobSpec, JobStatus, Transition, VideoDownload
from inbetween.domain.mp4_check import Mp4Inspector
from inbetween.errors import StorageError, VideoDownloadFailed, VideoRejected
from inbetween.observability import metrics
from inbetween.usecases.completion import (
    PICTURES_MIN_TIME_S,
    TASK_ID_METADATA,
    CompletionOutcome,
    complete,
)
from inbetween.usecases.notify import FAILED_EVENT, SUCCEEDED_EVENT, iso, report_and_notify
from inbetween_local.memory import FakeClipPictures, InMemoryBlobs, MemoryWorld, memory_world

MODEL = "wan2.2-kf2v-flash"
VIDEO_URL = "https://dashscope-result.test/shot.mp4?Expires=1"


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def mp4(payload: bytes = b"\x00" * 4096) -> bytes:
    """The smallest file Mp4Inspector takes for a video: ftyp, a moov with a 'vide' handler, an mdat."""
    hdlr = box(b"hdlr", b"\0" * 8 + b"vide" + b"\0" * 12 + b"VideoHandler\0")
    moov = box(b"moov", box(b"trak", box(b"mdia", hdlr)))
    return box(b"ftyp", b"isom\0\0\x02\0isomiso2mp41") + moov + box(b"mdat", payload)


VIDEO = mp4(bytes(range(256)) * 300)


def test_the_test_video_is_a_video_to_the_inspector():
    inspector = Mp4Inspector()
    inspector.feed(VIDEO)
    assert inspector.verdict() is None


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world()


def completing(world: MemoryWorld, name: str = "shot", **fields: Any) -> Job:
    """A job whose task succeeded: the poller moved it to COMPLETING with the provider's facts."""
    now = world.clock.now()
    inputs = {role: InputObject(f"inbox/{name}/{role}.png", "etag", 1000) for role in ("first", "last")}
    spec = JobSpec(model=MODEL, resolution="720P", prompt="a slow zoom", negative_prompt="blur")
    values: dict[str, Any] = {
        "task_id": "task-42",
        "submitted_at": now - 120,
        "video_url": VIDEO_URL,
        "provider_status": "SUCCEEDED",
        "provider": {
            "actual_prompt": "a slow, smooth zoom",
            "end_time": "2027-01-15T08:00:00+00:00",
            "end_ts": now - 5,
            "usage": {"video_duration": 5, "video_count": 1, "SR": 720},
        },
        **fields,
    }
    job = Job(
        f"{name}/run1",
        name,
        "run1",
        JobStatus.COMPLETING,
        spec,
        inputs,
        now - 200,
        now,
        expected_size=(1280, 720),
        **values,
    )
    assert world.store.add_job(job, due=(DueKind.COMPLETE, now + 900))
    return job


def video_key(job: Job) -> str:
    return f"results/{job.job_name}/{job.run_id}/video.mp4"


def stored_job(world: MemoryWorld, job: Job) -> Job:
    found = world.store.get_job(job.job_id)
    assert found is not None
    return found


# ---------------------------------------------------------------------------------------------- stored
def test_a_finished_video_is_stored_described_and_announced_once(world):
    # Given a completing job whose video link answers
    job = completing(world)
    world.videos.videos[VIDEO_URL] = VIDEO
    # When the completion runs
    outcome = complete(world.deps, job.job_id)
    # Then the video is in the output bucket, tagged with its task
    assert outcome is CompletionOutcome.STORED
    key = video_key(job)
    assert world.blobs.objects[("output", key)] == VIDEO
    assert world.blobs.metadata[("output", key)] == {TASK_ID_METADATA: "task-42"}
    # and metadata.json beside it says what was asked, what the provider did and where the video is
    meta = world.blobs.json[("output", "results/shot/run1/metadata.json")]
    assert meta["video"] == {
        "bucket": "output",
        "key": key,
        "bytes": len(VIDEO),
        "sha256": hashlib.sha256(VIDEO).hexdigest(),
    }
    assert (meta["job"], meta["job_id"], meta["task_id"], meta["model"]) == (
        "shot",
        job.job_id,
        "task-42",
        MODEL,
    )
    assert (meta["resolution"], meta["size"]) == ("720P", {"width": 1280, "height": 720})
    assert (meta["prompt"], meta["negative_prompt"], meta["actual_prompt"]) == (
        "a slow zoom",
        "blur",
        "a slow, smooth zoom",
    )
    assert meta["usage"] == {"video_duration": 5, "video_count": 1, "SR": 720}
    assert meta["inputs"] == {"first": "inbox/shot/first.png", "last": "inbox/shot/last.png"}
    assert meta["timings"]["stored_at"] == iso(world.clock.now())
    assert meta["timings"]["dropped_at"] == iso(job.created_at)
    assert meta["timings"]["provider_end_time"] == "2027-01-15T08:00:00+00:00"
    # and the job is final, its link forgotten, the user told once with a link to the stored video
    final = stored_job(world, job)
    assert (final.status, final.video_key, final.video_bytes, final.video_url) == (
        JobStatus.STORED,
        key,
        len(VIDEO),
        None,
    )
    assert final.notified_at == world.clock.now()
    assert world.store.due.get(f"job#{job.job_id}") is None
    (note,) = world.notifier.published
    assert (note.event_type, note.status, note.job_name, note.model) == (
        SUCCEEDED_EVENT,
        JobStatus.STORED,
        "shot",
        MODEL,
    )
    video = note.data["video"]
    assert video["url"].startswith(f"https://output.s3.test/{key}?expires=")
    assert (video["key"], video["size_bytes"], video["width"], video["height"]) == (
        key,
        len(VIDEO),
        1280,
        720,
    )
    assert note.data["metadata_key"] == "results/shot/run1/metadata.json"


def test_a_job_without_provider_times_is_stored_too(world):
    job = completing(world, provider={})
    world.videos.videos[VIDEO_URL] = VIDEO
    assert complete(world.deps, job.job_id) is CompletionOutcome.STORED
    meta = world.blobs.json[("output", "results/shot/run1/metadata.json")]
    assert (meta["usage"], meta["actual_prompt"], meta["timings"]["provider_end_time"]) == (None, None, None)


def test_a_second_completion_of_a_stored_job_does_nothing(world):
    job = completing(world)
    world.videos.videos[VIDEO_URL] = VIDEO
    assert complete(world.deps, job.job_id) is CompletionOutcome.STORED
    del world.videos.videos[VIDEO_URL]  # a second download would now fail: it must not be tried
    assert complete(world.deps, job.job_id) is CompletionOutcome.ALREADY_DONE
    assert len(world.notifier.published) == 1


def test_an_object_already_stored_for_this_task_is_reused_without_a_download(world):
    # Given a crash after the upload, before the job moved: the object is there, tagged with our task
    job = completing(world)
    key = video_key(job)
    world.blobs.put("output", key, VIDEO)
    world.blobs.metadata[("output", key)] = {TASK_ID_METADATA: "task-42"}
    world.videos.fail_next.append(AssertionError("no download expected"))
    # When the completion runs again
    assert complete(world.deps, job.job_id) is CompletionOutcome.STORED
    # Then the stored bytes are described (their real digest), and not downloaded again
    assert world.videos.fail_next  # the download was never opened
    meta = world.blobs.json[("output", "results/shot/run1/metadata.json")]
    assert meta["video"]["sha256"] == hashlib.sha256(VIDEO).hexdigest()
    assert stored_job(world, job).status is JobStatus.STORED


@pytest.mark.parametrize(
    ("tag", "body"),
    [({TASK_ID_METADATA: "task-other"}, VIDEO), ({}, VIDEO), ({TASK_ID_METADATA: "task-42"}, VIDEO[:-100])],
    ids=["another-task", "untagged", "ours-but-truncated"],
)
def test_an_object_that_is_not_this_tasks_whole_video_is_replaced_by_a_fresh_download(world, tag, body):
    job = completing(world)
    key = video_key(job)
    world.blobs.put("output", key, body)
    world.blobs.metadata[("output", key)] = tag
    world.videos.videos[VIDEO_URL] = VIDEO
    assert complete(world.deps, job.job_id) is CompletionOutcome.STORED
    assert world.blobs.objects[("output", key)] == VIDEO
    assert world.blobs.metadata[("output", key)] == {TASK_ID_METADATA: "task-42"}


# ---------------------------------------------------------------------------------------------- expired
def test_an_expired_link_ends_the_job_expired_with_an_error_report(world):
    job = completing(world)  # and the link no longer answers (the fake says 404)
    assert complete(world.deps, job.job_id) is CompletionOutcome.EXPIRED
    final = stored_job(world, job)
    assert (final.status, final.error.code) == (JobStatus.EXPIRED, "VideoLinkExpired")
    assert final.notified_at is not None
    report = world.blobs.json[("output", "results/shot/run1/error.json")]
    assert report["error"]["code"] == "VideoLinkExpired"
    assert report["what_to_do"] == "upload the job folder again to generate the video again"
    assert world.blobs.json[("inbox", "inbox/shot/error.json")] == report
    assert ("output", video_key(job)) not in world.blobs.objects
    assert [(n.event_type, n.status) for n in world.notifier.published] == [(FAILED_EVENT, JobStatus.EXPIRED)]


def test_a_job_with_no_recorded_link_expires(world):
    job = completing(world, video_url=None)
    assert complete(world.deps, job.job_id) is CompletionOutcome.EXPIRED
    assert stored_job(world, job).status is JobStatus.EXPIRED


# ---------------------------------------------------------------------------------------------- retried
def test_a_failed_download_is_raised_for_a_retry_and_the_job_keeps_completing(world):
    job = completing(world)
    world.videos.videos[VIDEO_URL] = VIDEO
    world.videos.fail_next.append(VideoDownloadFailed("connection reset"))
    with pytest.raises(VideoDownloadFailed):
        complete(world.deps, job.job_id)
    assert stored_job(world, job).status is JobStatus.COMPLETING
    assert world.blobs.objects == {} and world.blobs.json == {}
    assert world.notifier.published == []
    # and the retry stores it
    assert complete(world.deps, job.job_id) is CompletionOutcome.STORED


class DeclaredLengthVideos:
    """A link that declares ``length`` bytes and sends ``data`` (a connection cut short)."""

    def __init__(self, data: bytes, length: int) -> None:
        self.data, self.length = data, length

    @contextmanager
    def open(self, url: str) -> Iterator[VideoDownload]:
        yield VideoDownload(
            length=self.length, chunks=[self.data[i : i + 1000] for i in range(0, len(self.data), 1000)]
        )

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("body", "declared"),
    [
        (VIDEO[: len(VIDEO) // 2], len(VIDEO)),  # cut short of its declared length
        (VIDEO[:-100], None),  # no length declared, the mdat box says more was coming
        (b"<html><body>502 Bad Gateway</body></html>", None),  # not an MP4 at all
        (mp4().replace(b"vide", b"soun"), None),  # an MP4 without a video track
    ],
    ids=["short-of-length", "truncated-box", "html", "no-video-track"],
)
def test_a_download_that_is_not_a_whole_mp4_is_not_stored_and_is_retried(world, body, declared):
    job = completing(world)
    deps = replace(world.deps, videos=DeclaredLengthVideos(body, len(body) if declared is None else declared))
    with pytest.raises(VideoRejected):
        complete(deps, job.job_id)
    assert ("output", video_key(job)) not in world.blobs.objects
    assert world.blobs.json == {}
    assert stored_job(world, job).status is JobStatus.COMPLETING
    assert world.notifier.published == []


# ---------------------------------------------------------------------------------------------- other states
def test_a_final_job_not_yet_notified_gets_its_notification(world):
    now = world.clock.now()
    job = completing(world)
    world.store.apply(
        Transition.of(job.job_id, JobStatus.COMPLETING, JobStatus.STORED)
        .set(video_key=video_key(job), video_bytes=len(VIDEO), finished_at=now)
        .schedule(DueKind.NOTIFY, now + 120)
    )
    assert complete(world.deps, job.job_id) is CompletionOutcome.NOTIFIED
    assert [n.status for n in world.notifier.published] == [JobStatus.STORED]
    assert stored_job(world, job).notified_at == now
    assert complete(world.deps, job.job_id) is CompletionOutcome.ALREADY_DONE
    assert len(world.notifier.published) == 1


def test_an_unknown_job_is_acknowledged(world):
    assert complete(world.deps, "nobody/run1") is CompletionOutcome.UNKNOWN_JOB
    assert world.notifier.published == []


@pytest.mark.parametrize("status", [JobStatus.WAITING, JobStatus.SUBMITTING, JobStatus.SUBMITTED])
def test_a_job_not_yet_completing_is_not_ready(world, status):
    now = world.clock.now()
    job = Job("early/run1", "early", "run1", status, JobSpec(model=MODEL, resolution="720P"), {}, now, now)
    world.store.add_job(job)
    world.videos.videos[VIDEO_URL] = VIDEO
    assert complete(world.deps, job.job_id) is CompletionOutcome.NOT_READY
    assert world.blobs.objects == {}
    assert stored_job(world, job).status is status


# ---------------------------------------------------------------------------------------------- pictures
POSTER_KEY = "results/shot/run1/poster.jpg"
SHEET_KEY = "results/shot/run1/contact-sheet.png"


def counted(name: str) -> int:
    """How often the metric ``name`` was counted since the metrics were last cleared (or flushed)."""
    return len(metrics.metric_set.get(name, {}).get("Value", []))


def test_the_stored_videos_pictures_are_stored_beside_it_recorded_and_linked(world):
    # Given a completing job whose video link answers, and a pictures maker
    job = completing(world)
    world.videos.videos[VIDEO_URL] = VIDEO
    pictures = FakeClipPictures()
    # When the completion runs with it
    assert complete(world.deps, job.job_id, pictures) is CompletionOutcome.STORED
    # Then the pictures were made from the stored video and uploaded beside it, with their content types
    assert pictures.made == [VIDEO]
    made = FakeClipPictures.pictures_of(VIDEO)
    assert world.blobs.objects[("output", POSTER_KEY)] == made.poster_jpeg
    assert world.blobs.objects[("output", SHEET_KEY)] == made.contact_sheet_png
    assert world.blobs.metadata[("output", POSTER_KEY)] == {"content-type": "image/jpeg"}
    assert world.blobs.metadata[("output", SHEET_KEY)] == {"content-type": "image/png"}
    # and metadata.json lists them
    meta = world.blobs.json[("output", "results/shot/run1/metadata.json")]
    assert meta["pictures"] == {"poster": POSTER_KEY, "contact_sheet": SHEET_KEY}
    # and the job records them with STORED
    final = stored_job(world, job)
    assert (final.status, final.poster_key, final.contact_sheet_key) == (
        JobStatus.STORED,
        POSTER_KEY,
        SHEET_KEY,
    )
    # and the one notification links them, presigned for as long as the video's link
    (note,) = world.notifier.published
    ttl = world.deps.settings.webhook_link_ttl_s
    expires = int(world.clock.now() + ttl)
    assert note.data["poster_url"] == f"https://output.s3.test/{POSTER_KEY}?expires={expires}"
    assert note.data["contact_sheet_url"] == f"https://output.s3.test/{SHEET_KEY}?expires={expires}"
    assert note.data["video"]["url"].endswith(f"?expires={expires}")


def test_without_a_pictures_maker_nothing_is_made_or_linked(world):
    job = completing(world)
    world.videos.videos[VIDEO_URL] = VIDEO
    assert complete(world.deps, job.job_id) is CompletionOutcome.STORED
    assert ("output", POSTER_KEY) not in world.blobs.objects
    assert world.blobs.json[("output", "results/shot/run1/metadata.json")]["pictures"] is None
    (note,) = world.notifier.published
    assert "poster_url" not in note.data and "contact_sheet_url" not in note.data


class FailingUploads(InMemoryBlobs):
    """The output bucket refuses picture uploads (``upload_file``); everything else works."""

    def upload_file(self, bucket: str, key: str, path, *, content_type: str) -> int:
        raise StorageError(f"could not write s3://{bucket}/{key}: SlowDown")


@pytest.mark.parametrize(
    "failure",
    ["decoder", "not-a-video", "download", "upload"],
)
def test_a_picture_failure_still_stores_and_notifies_once_without_links(world, failure):
    # Given a completing job whose pictures cannot be made (or stored)
    job = completing(world)
    world.videos.videos[VIDEO_URL] = VIDEO
    pictures = FakeClipPictures()
    deps = world.deps
    if failure == "decoder":
        pictures.fail_next.append(RuntimeError("the decoder gave up"))
    elif failure == "not-a-video":
        pictures.fail_next.append(ValueError("video.mp4: no video stream"))
    elif failure == "download":

        def refuse(bucket: str, key: str, path) -> int:
            raise StorageError(f"could not read s3://{bucket}/{key}: AccessDenied")

        world.blobs.download_file = refuse  # type: ignore[method-assign]
    else:
        blobs = FailingUploads(world.clock)
        blobs.__dict__.update(world.blobs.__dict__)  # the same buckets
        deps = replace(world.deps, blobs=blobs)
    metrics.clear_metrics()
    # When the completion runs
    outcome = complete(deps, job.job_id, pictures)
    # Then the job is stored in this attempt, without pictures recorded or listed, and the failure counted
    assert outcome is CompletionOutcome.STORED
    assert counted("ClipPicturesFailed") == 1
    final = stored_job(world, job)
    assert (final.status, final.poster_key, final.contact_sheet_key) == (JobStatus.STORED, None, None)
    blobs = deps.blobs
    assert isinstance(blobs, InMemoryBlobs)
    assert blobs.json[("output", "results/shot/run1/metadata.json")]["pictures"] is None
    # and told once, with the video's link and none to pictures
    (note,) = world.notifier.published
    assert note.status is JobStatus.STORED and note.data["video"]["url"]
    assert "poster_url" not in note.data and "contact_sheet_url" not in note.data
    # and a redelivery changes nothing
    assert complete(deps, job.job_id, pictures) is CompletionOutcome.ALREADY_DONE
    assert len(world.notifier.published) == 1


def test_pictures_are_not_tried_with_too_little_time_left(world):
    job = completing(world)
    world.videos.videos[VIDEO_URL] = VIDEO
    pictures = FakeClipPictures()
    outcome = complete(world.deps, job.job_id, pictures, time_left_s=lambda: PICTURES_MIN_TIME_S - 1)
    assert outcome is CompletionOutcome.STORED
    assert pictures.made == []
    assert stored_job(world, job).poster_key is None
    (note,) = world.notifier.published
    assert "poster_url" not in note.data


def test_a_redelivered_completion_neither_makes_the_pictures_again_nor_notifies_twice(world):
    job = completing(world)
    world.videos.videos[VIDEO_URL] = VIDEO
    pictures = FakeClipPictures()
    assert complete(world.deps, job.job_id, pictures) is CompletionOutcome.STORED
    assert complete(world.deps, job.job_id, pictures) is CompletionOutcome.ALREADY_DONE
    assert len(pictures.made) == 1
    assert len(world.notifier.published) == 1


class CrashingOnStored:
    """A store whose first move to STORED dies (a crash after the uploads, before the state change)."""

    def __init__(self, store: Any) -> None:
        self._store, self.crashed = store, False

    def apply(self, transition: Transition) -> bool:
        if transition.new_status is JobStatus.STORED and not self.crashed:
            self.crashed = True
            raise RuntimeError("the function died")
        return self._store.apply(transition)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_retry_after_a_crash_before_stored_redoes_the_pictures_and_notifies_once(world):
    # Given a completion that stored the video and its pictures, then died before the job moved
    job = completing(world)
    world.videos.videos[VIDEO_URL] = VIDEO
    pictures = FakeClipPictures()
    deps = replace(world.deps, store=CrashingOnStored(world.store))
    with pytest.raises(RuntimeError):
        complete(deps, job.job_id, pictures)
    assert stored_job(world, job).status is JobStatus.COMPLETING
    assert world.notifier.published == []
    # When the message comes back
    assert complete(deps, job.job_id, pictures) is CompletionOutcome.STORED
    # Then the stored video is reused, its pictures made again over the same keys, and told once
    assert pictures.made == [VIDEO, VIDEO]
    assert world.blobs.objects[("output", POSTER_KEY)] == FakeClipPictures.pictures_of(VIDEO).poster_jpeg
    (note,) = world.notifier.published
    assert {"poster_url", "contact_sheet_url"} <= set(note.data)


def test_a_later_notification_links_the_pictures_only_when_the_job_records_them(world):
    # Given two jobs moved to STORED by a completion that died before notifying: one with pictures
    now = world.clock.now()
    with_pictures, without = completing(world, "pics"), completing(world, "plain")
    for job, keys in (
        (
            with_pictures,
            {
                "poster_key": "results/pics/run1/poster.jpg",
                "contact_sheet_key": "results/pics/run1/contact-sheet.png",
            },
        ),
        (without, {}),
    ):
        world.store.apply(
            Transition.of(job.job_id, JobStatus.COMPLETING, JobStatus.STORED)
            .set(video_key=video_key(job), video_bytes=len(VIDEO), finished_at=now, **keys)
            .schedule(DueKind.NOTIFY, now + 120)
        )
    # When the poller's safety net notifies them
    for job in (with_pictures, without):
        assert report_and_notify(world.deps, stored_job(world, job))
    # Then only the job that records pictures links them
    by_name = {n.job_name: n.data for n in world.notifier.published}
    assert by_name["pics"]["poster_url"].startswith("https://output.s3.test/results/pics/run1/poster.jpg?")
    assert by_name["pics"]["contact_sheet_url"].startswith(
        "https://output.s3.test/results/pics/run1/contact-sheet.png?"
    )
    assert "poster_url" not in by_name["plain"] and "contact_sheet_url" not in by_name["plain"]
