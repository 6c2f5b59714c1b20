"""How a job ends (inbetween.usecases.finishing.finish): its final state once, then one notification."""

from __future__ import annotations

import pytest
from inbetween.domain.models import DueKind, ErrorInfo, JobStatus, Transition
from inbetween.usecases.finishing import finish
from inbetween.usecases.notify import FAILED_EVENT, SUCCEEDED_EVENT
from inbetween_local.memory import memory_world
from usecase_kit import FLASH, inbox_error, submitted_job

ERROR = ErrorInfo(code="InternalError", message="the provider failed", hint="upload the job folder again")


@pytest.fixture
def world():
    return memory_world()


def test_a_job_is_finished_once_and_notified_once(world):
    # Given a submitted job holding a slot
    job = submitted_job(world, "shot")
    # When two invocations finish it
    first = finish(
        world.deps, job, JobStatus.FAILED, expected=JobStatus.SUBMITTED, error=ERROR, release_slot=True
    )
    world.clock.advance(1)
    second = finish(
        world.deps, job, JobStatus.FAILED, expected=JobStatus.SUBMITTED, error=ERROR, release_slot=True
    )
    # Then only the first did anything: one final state, one slot given back, one notification
    assert (first, second) == (True, False)
    stored = world.store.get_job(job.job_id)
    assert stored is not None and stored.status is JobStatus.FAILED
    assert stored.error == ERROR
    assert stored.finished_at == world.clock.now() - 1
    assert stored.notified_at is not None
    assert world.store.slots_in_use(FLASH) == 0
    assert [(n.event_type, n.status) for n in world.notifier.published] == [(FAILED_EVENT, JobStatus.FAILED)]
    report = inbox_error(world, "shot")
    assert report is not None and report["error"]["code"] == "InternalError"
    # and nothing is left for the poller to notify
    assert world.store.due_jobs(DueKind.NOTIFY, world.clock.now() + 10**6) == []


def test_a_job_that_is_not_where_the_caller_expects_is_left_alone(world):
    job = submitted_job(world, "elsewhere")
    assert not finish(world.deps, job, JobStatus.STORED, expected=JobStatus.COMPLETING)
    assert world.store.get_job(job.job_id).status is JobStatus.SUBMITTED
    assert world.notifier.published == []
    assert world.store.slots_in_use(FLASH) == 1


def test_the_final_write_carries_the_callers_changes_and_a_stored_video_is_a_success(world):
    # Given a job whose video is being copied (its slot already given back)
    job = submitted_job(world, "stored")
    assert world.store.apply(
        Transition.of(job.job_id, JobStatus.SUBMITTED, JobStatus.COMPLETING).release_slot(FLASH)
    )
    key = f"results/stored/{job.run_id}/video.mp4"
    # When it is finished as stored, with the video's facts
    assert finish(
        world.deps, job, JobStatus.STORED, expected=JobStatus.COMPLETING, video_key=key, video_bytes=1234
    )
    # Then they are on the job, and the notification is the success, with the video
    stored = world.store.get_job(job.job_id)
    assert (stored.status, stored.video_key, stored.video_bytes, stored.error) == (
        JobStatus.STORED,
        key,
        1234,
        None,
    )
    [note] = world.notifier.published
    assert (note.event_type, note.status) == (SUCCEEDED_EVENT, JobStatus.STORED)
    assert note.data["video"]["key"] == key and note.data["video"]["size_bytes"] == 1234
    assert inbox_error(world, "stored") is None
    assert world.store.slots_in_use(FLASH) == 0


def test_a_notification_that_fails_leaves_the_job_final_and_due_for_the_poller(world):
    job = submitted_job(world, "quiet")
    world.notifier.fail = True
    with pytest.raises(ConnectionError):
        finish(
            world.deps, job, JobStatus.FAILED, expected=JobStatus.SUBMITTED, error=ERROR, release_slot=True
        )
    stored = world.store.get_job(job.job_id)
    assert stored is not None and stored.status is JobStatus.FAILED and stored.notified_at is None
    assert world.store.slots_in_use(FLASH) == 0
    grace = world.deps.timing.notify_grace_s
    assert world.store.due_jobs(DueKind.NOTIFY, world.clock.now() + grace - 1) == []
    assert [j.job_id for j in world.store.due_jobs(DueKind.NOTIFY, world.clock.now() + grace)] == [job.job_id]
