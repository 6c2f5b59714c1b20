"""One look at a job's provider task (inbetween.usecases.task_checks), against the in-memory ports.

The path the poller and push share: still running -> the next check on the grid; succeeded -> COMPLETING,
slot given back, completion queued; failed, cancelled or unknown -> a final state and one notification;
a query error -> a re-check; and a second observer of the same answer changes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from inbetween.domain.models import DueKind, JobStatus
from inbetween.errors import ConfigError, ProviderUnavailable
from inbetween.provider.models import TaskState, TaskStatus, Usage
from inbetween.usecases.check_schedule import next_check_at
from inbetween.usecases.notify import FAILED_EVENT
from inbetween.usecases.task_checks import CheckOutcome, final_status, observe_task, provider_facts
from inbetween_local.memory import memory_world
from usecase_kit import FLASH, inbox_error, submitted_job, task_state

SUBMIT = datetime(2027, 1, 15, 8, 0, 0, tzinfo=UTC)
END = datetime(2027, 1, 15, 8, 1, 30, tzinfo=UTC)
VIDEO_URL = "https://dashscope-result.test/1/video.mp4?Expires=1"


@pytest.fixture
def world():
    return memory_world()


@pytest.fixture
def job(world):
    return submitted_job(world, "shot")


def _stored(world, job):
    stored = world.store.get_job(job.job_id)
    assert stored is not None
    return stored


def _due_at(world, kind: DueKind, job, at: float) -> bool:
    return job.job_id in [j.job_id for j in world.store.due_jobs(kind, at)]


def _succeeded(task_id: str):
    return task_state(
        task_id,
        TaskStatus.SUCCEEDED,
        submit_time=SUBMIT,
        end_time=END,
        video_url=VIDEO_URL,
        orig_prompt="a slow pan across the bay",
        actual_prompt="A slow, steady pan across a sunlit bay.",
        usage=Usage(video_duration=5, video_count=1, sr=720),
    )


@pytest.mark.parametrize("status", [TaskStatus.PENDING, TaskStatus.RUNNING])
def test_a_task_still_running_is_checked_again_on_the_grid(world, job, status):
    # Given the task is still pending or running, and the query takes a moment
    world.provider.set_state(job.task_id, task_state(job.task_id, status))
    began = world.clock.now()
    paced = []

    def pace():
        paced.append(list(world.provider.queries))
        world.clock.advance(0.4)

    # When it is observed
    assert observe_task(world.deps, job, pace=pace) is CheckOutcome.RUNNING
    # Then the pacer ran right before the one query, and the job records what the provider said
    assert paced == [[]] and world.provider.queries == [job.task_id]
    stored = _stored(world, job)
    assert (stored.status, stored.provider_status, stored.polls) == (JobStatus.SUBMITTED, status.value, 1)
    # and its next check is on the grid, counted from when the check began
    next_at = next_check_at(world.deps.settings, world.deps.timing, began)
    assert not _due_at(world, DueKind.POLL, job, next_at - 0.01)
    assert _due_at(world, DueKind.POLL, job, next_at)
    assert world.store.slots_in_use(FLASH) == 1
    assert world.queues.completions == [] and world.notifier.published == []


def test_a_task_first_seen_running_starts_its_straggler_clock_once(world, job):
    # Given a task PENDING in the provider's queue, then RUNNING
    world.provider.set_state(job.task_id, task_state(job.task_id, TaskStatus.PENDING))
    observe_task(world.deps, job)
    assert _stored(world, job).running_since is None  # waiting in a queue is not running late
    world.clock.advance(30)
    seen_running = world.clock.now()
    world.provider.set_state(job.task_id, task_state(job.task_id, TaskStatus.RUNNING))
    observe_task(world.deps, _stored(world, job))
    # When it is seen RUNNING again later
    world.clock.advance(30)
    observe_task(world.deps, _stored(world, job))
    # Then its clock is when it was first seen RUNNING, not when it was submitted or last checked
    assert _stored(world, job).running_since == seen_running


def test_a_task_that_succeeded_hands_the_job_to_completion_and_frees_its_slot(world, job):
    world.provider.set_state(job.task_id, _succeeded(job.task_id))
    assert observe_task(world.deps, job) is CheckOutcome.FINISHED
    stored = _stored(world, job)
    assert (stored.status, stored.provider_status, stored.video_url) == (
        JobStatus.COMPLETING,
        "SUCCEEDED",
        VIDEO_URL,
    )
    # the provider's facts are kept for the metadata and the notification
    assert (
        stored.provider["end_time"] == END.isoformat()
        and stored.provider["submit_time"] == SUBMIT.isoformat()
    )
    assert stored.provider["actual_prompt"] == "A slow, steady pan across a sunlit bay."
    assert stored.provider["usage"] == {"video_duration": 5, "video_count": 1, "SR": 720}
    assert world.store.slots_in_use(FLASH) == 0
    assert world.queues.completions == [job.job_id]
    # and, should the completion message be lost, the poller hands it over again after the grace
    grace = world.deps.timing.completion_grace_s
    assert not _due_at(world, DueKind.COMPLETE, job, world.clock.now() + grace - 1)
    assert _due_at(world, DueKind.COMPLETE, job, world.clock.now() + grace)
    assert world.notifier.published == []


@pytest.mark.parametrize(
    ("state", "status", "code"),
    [
        (
            dict(status=TaskStatus.FAILED, code="InvalidParameter", message="bad frame"),
            JobStatus.FAILED,
            "InvalidParameter",
        ),
        (dict(status=TaskStatus.FAILED), JobStatus.FAILED, "TaskFailed"),
        (dict(status=TaskStatus.CANCELED), JobStatus.FAILED, "TaskCanceled"),
        (dict(status=TaskStatus.UNKNOWN), JobStatus.EXPIRED, "TaskExpired"),
    ],
    ids=["failed-with-a-code", "failed-without-a-reason", "canceled", "unknown"],
)
def test_a_task_that_ended_without_a_video_ends_the_job_with_the_reason(world, job, state, status, code):
    world.provider.set_state(job.task_id, task_state(job.task_id, **state))
    assert observe_task(world.deps, job) is CheckOutcome.FINISHED
    stored = _stored(world, job)
    assert stored.status is status
    assert stored.error is not None and stored.error.code == code and stored.error.hint
    assert stored.provider_status == state["status"].value
    assert stored.finished_at == world.clock.now()
    report = inbox_error(world, "shot")
    assert report is not None and report["error"]["code"] == code and report["task_id"] == job.task_id
    assert [(n.event_type, n.status) for n in world.notifier.published] == [(FAILED_EVENT, status)]
    assert world.store.slots_in_use(FLASH) == 0
    assert world.queues.completions == []


def test_the_reasons_of_a_task_that_ended_without_a_video():
    failed = final_status(task_state("t", TaskStatus.FAILED, code="DataInspectionFailed", message="no"))
    assert failed[0] is JobStatus.FAILED
    assert (failed[1].code, failed[1].message, failed[1].provider_request_id) == (
        "DataInspectionFailed",
        "no",
        "req-1",
    )
    status, error = final_status(task_state("t", TaskStatus.FAILED))
    assert (error.message, "did not say why" in error.hint) == ("the provider gave no reason", True)
    status, error = final_status(task_state("t", TaskStatus.UNKNOWN))
    assert status is JobStatus.EXPIRED and "24 hours" in error.message and "upload" in error.hint


@pytest.mark.parametrize(
    "error", [ProviderUnavailable("HTTP 503", status_code=503), ConfigError("the API key secret is empty")]
)
def test_a_query_that_fails_is_retried_later_and_changes_nothing_else(world, job, error):
    world.provider.get_errors = [error]
    assert observe_task(world.deps, job) is CheckOutcome.ERROR
    stored = _stored(world, job)
    assert (stored.status, stored.provider_status, stored.polls) == (JobStatus.SUBMITTED, "PENDING", 1)
    retry_at = world.clock.now() + 2 * world.deps.settings.poll_interval_s
    assert not _due_at(world, DueKind.POLL, job, retry_at - 0.01)
    assert _due_at(world, DueKind.POLL, job, retry_at)
    assert world.store.slots_in_use(FLASH) == 1
    assert world.notifier.published == [] and world.queues.completions == []


def test_a_job_not_waiting_on_a_task_is_skipped_without_a_query(world, job):
    # Given the job already handed over to completion
    world.provider.set_state(job.task_id, _succeeded(job.task_id))
    assert observe_task(world.deps, job) is CheckOutcome.FINISHED
    queries = list(world.provider.queries)
    # Then a look at its current state makes no query
    assert observe_task(world.deps, _stored(world, job)) is CheckOutcome.SKIPPED
    # and neither does one at a job that has no task yet
    assert observe_task(world.deps, replace(job, task_id=None)) is CheckOutcome.SKIPPED
    assert world.provider.queries == queries


@pytest.mark.parametrize(
    "state",
    [
        dict(status=TaskStatus.SUCCEEDED, video_url=VIDEO_URL, end_time=END),
        dict(status=TaskStatus.FAILED, code="InternalError"),
    ],
    ids=["succeeded", "failed"],
)
def test_two_observers_of_one_answer_move_the_job_once(world, job, state):
    # Given two observers (a push event and the poller) holding the same view of the job
    world.provider.set_state(job.task_id, task_state(job.task_id, **state))
    seen_by_both = _stored(world, job)
    # When both act on the provider's answer
    outcomes = [observe_task(world.deps, seen_by_both), observe_task(world.deps, seen_by_both)]
    # Then one moved the job, the other found it moved: one hand-over or one notification, one slot
    assert outcomes == [CheckOutcome.FINISHED, CheckOutcome.RACED]
    assert len(world.queues.completions) + len(world.notifier.published) == 1
    assert world.store.slots_in_use(FLASH) == 0
    # and a third, with a fresh view, does nothing at all
    assert observe_task(world.deps, _stored(world, job)) is CheckOutcome.SKIPPED


def test_provider_facts_leave_out_what_the_provider_did_not_say():
    facts = provider_facts(
        task_state("t", TaskStatus.SUCCEEDED, end_time=END, usage=Usage(video_ratio="standard"))
    )
    assert facts == {
        "end_time": END.isoformat(),
        "end_ts": END.timestamp(),
        "request_id": "req-1",
        "usage": {"video_ratio": "standard"},
    }
    assert provider_facts(TaskState(task_id="t", status=TaskStatus.FAILED)) == {}
