"""One look at a job's provider task, and what follows from it: the path both the poller and push take.

``observe_task`` queries the task once and acts on the answer with conditional transitions only: still
running -> the next check is scheduled (``inbetween.usecases.check_schedule``); succeeded -> SUBMITTED ->
COMPLETING and the completion queue; failed, cancelled or unknown -> a final state and its notification.
A second observer (a duplicate event, an overlapping poller) finds the job moved on and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from inbetween.deps import Deps
from inbetween.domain.hints import provider_hint
from inbetween.domain.models import DueKind, ErrorInfo, Job, JobStatus, Transition
from inbetween.errors import ConfigError, ProviderError
from inbetween.observability import count, logger, seconds
from inbetween.provider.models import TaskState, TaskStatus
from inbetween.usecases import cancel
from inbetween.usecases.check_schedule import next_check_at
from inbetween.usecases.finishing import finish


class CheckOutcome(StrEnum):
    SKIPPED = "skipped"  # the job is not waiting on a task (already handed over, final, or no task yet)
    ERROR = "error"  # the query failed; a re-check is scheduled
    RUNNING = "running"  # the task is still pending or running; the next check is scheduled
    FINISHED = "finished"  # this call moved the job out of SUBMITTED
    RACED = "raced"  # someone else moved the job first


def note_still_running(deps: Deps, job: Job, status: TaskStatus, *, checked_at: float | None = None) -> bool:
    """Record that ``job``'s task is still pending or running (learned from a query or the task list)
    and schedule its next check, counted from when the check began (``checked_at``): a check that
    took a while, or was recorded after other work, keeps its place on the grid."""
    checked_at = deps.clock.now() if checked_at is None else checked_at
    running_since = job.running_since
    if status is TaskStatus.RUNNING and running_since is None:
        running_since = checked_at  # first seen RUNNING: a straggler's clock starts here
    tr = (
        Transition.of(job.job_id, JobStatus.SUBMITTED)
        .set(provider_status=status.value)
        .add(polls=1)
        .schedule(
            DueKind.POLL,
            next_check_at(
                deps.settings, deps.timing, checked_at, model=job.model, running_since=running_since
            ),
        )
    )
    if running_since != job.running_since:
        tr.set(running_since=running_since)
    recorded = deps.store.apply(tr)
    if recorded and job.provider_status != status.value:
        # only the changes (PENDING -> RUNNING): one record per change, not one per check
        logger.info(
            "task status",
            extra={"job_id": job.job_id, "task_id": job.task_id, "provider_status": status.value},
        )
    return recorded


def provider_facts(state: TaskState) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "submit_time": state.submit_time.isoformat() if state.submit_time else None,
        "scheduled_time": state.scheduled_time.isoformat() if state.scheduled_time else None,
        "end_time": state.end_time.isoformat() if state.end_time else None,
        "end_ts": state.end_time.timestamp() if state.end_time else None,
        "orig_prompt": state.orig_prompt,
        "actual_prompt": state.actual_prompt,
        "request_id": state.request_id,
        "code": state.code,
        "message": state.message,
    }
    if state.usage is not None:
        facts["usage"] = state.usage.to_api_dict()  # as the provider named them (kf2v and wan2.7 differ)
        facts["billed_seconds"] = state.usage.billed_seconds
    return {k: v for k, v in facts.items() if v is not None}


def observe_task(deps: Deps, job: Job, *, pace: Callable[[], None] | None = None) -> CheckOutcome:
    """Query ``job``'s task once and hand the job on if it ended. ``pace`` spaces queries (the poller's
    rate limiter); it is called right before the query."""
    if job.status is not JobStatus.SUBMITTED or not job.task_id:
        return CheckOutcome.SKIPPED
    checked_at = deps.clock.now()
    if pace is not None:
        pace()
    try:
        state = deps.provider.get_task(job.task_id)
    except (ProviderError, ConfigError) as exc:
        logger.warning(
            "task query failed; will retry", extra={"job_id": job.job_id, "code": getattr(exc, "code", None)}
        )
        deps.store.apply(
            Transition.of(job.job_id, JobStatus.SUBMITTED)
            .add(polls=1)
            .schedule(DueKind.POLL, deps.clock.now() + 2 * deps.settings.poll_interval_s)
        )
        count("TaskQueriesFailed")
        return CheckOutcome.ERROR
    count("TaskQueries")
    now = deps.clock.now()
    if state.status is TaskStatus.PENDING and cancel.still_to_cancel(job):
        # a cancel was asked and not carried out (its create call was under way, or it failed halfway)
        if cancel.cancel_job(deps, job.job_id, cancel.CancelSource(job.cancel_source or "cli")) in (
            cancel.CancelAnswer.PROVIDER_CANCELED,
            cancel.CancelAnswer.FINISHED,
        ):
            return CheckOutcome.FINISHED
    if not state.status.is_terminal:
        note_still_running(deps, job, state.status, checked_at=checked_at)
        return CheckOutcome.RUNNING
    facts = provider_facts(state)
    if state.status is TaskStatus.SUCCEEDED:
        moved = deps.store.apply(
            Transition.of(job.job_id, JobStatus.SUBMITTED, JobStatus.COMPLETING)
            .set(provider_status=state.status.value, video_url=state.video_url, provider=facts)
            .add(polls=1)
            .schedule(DueKind.COMPLETE, now + deps.timing.completion_grace_s)
            .release_slot(job.model or "")
        )
        if not moved:
            return CheckOutcome.RACED
        logger.info(
            "task ended",
            extra={"job_id": job.job_id, "task_id": job.task_id, "provider_status": state.status.value},
        )
        if state.end_time is not None:
            seconds("DetectionDelay", now - state.end_time.timestamp())
            if state.submit_time is not None:
                seconds("ProviderTime", state.end_time.timestamp() - state.submit_time.timestamp())
        deps.queues.complete_job(job.job_id)
        return CheckOutcome.FINISHED
    if state.status is TaskStatus.CANCELED:  # read again: a cancel may have been recorded since we read it
        job = deps.store.get_job(job.job_id) or job
    status, error = final_status(state, job)
    # a task that ended CANCELED at our request (usecases.cancel): the job's cancel was carried out
    answer = {"cancel_answer": cancel.CancelAnswer.PROVIDER_CANCELED.value} if error is None else {}
    # before finish, which notifies: the log reads in the order things happened (ended, then notified)
    logger.info(
        "task ended",
        extra={
            "job_id": job.job_id,
            "task_id": job.task_id,
            "provider_status": state.status.value,
            "code": error.code if error else None,
            "error": error.message if error else None,
        },
    )
    done = finish(
        deps,
        job,
        status,
        expected=JobStatus.SUBMITTED,
        error=error,
        release_slot=True,
        provider_status=state.status.value,
        provider=facts,
        **answer,
    )
    return CheckOutcome.FINISHED if done else CheckOutcome.RACED


def final_status(state: TaskState, job: Job | None = None) -> tuple[JobStatus, ErrorInfo | None]:
    """The job's final state and error for a task that ended without a video. A task cancelled at our
    request (``job.cancel_requested_at``) ends the job CANCELED, not FAILED, with no error."""
    if state.status is TaskStatus.CANCELED and job is not None and job.cancel_requested_at is not None:
        return JobStatus.CANCELED, None
    if state.status is TaskStatus.UNKNOWN:
        return JobStatus.EXPIRED, ErrorInfo(
            code="TaskExpired",
            message="the provider no longer knows this task (task ids answer for 24 hours)",
            hint="upload the job folder again to start a new run",
        )
    canceled = state.status is TaskStatus.CANCELED
    return JobStatus.FAILED, ErrorInfo(
        code=state.code or ("TaskCanceled" if canceled else "TaskFailed"),
        message=state.message or ("the task was cancelled" if canceled else "the provider gave no reason"),
        hint=provider_hint(state.code)
        if state.code
        else "the provider did not say why; upload the job folder again to retry",
        provider_request_id=state.request_id,
    )


__all__ = ["CheckOutcome", "note_still_running", "observe_task", "provider_facts"]
