"""One look at a job's provider task, and what follows from it: the path both the poller and push take.

``observe_task`` queries the task once and acts on the answer with conditional transitions only: still
running -> the next check is scheduled; succeeded -> SUBMITTED -> COMPLETING and the completion queue;
failed, cancelled or unknown -> a final state and its notification. A second observer (a duplicate event,
an overlapping poller) finds the job moved on and changes nothing.

When checks happen (``first_check_at`` / ``next_check_at``):
- push off: first near the model's shortest generation time, then every ``poll_interval_s``; both
  rounded up to a grid of ``poll_interval_s`` so that every active task of a model comes due at the same
  instant and one task-list call answers for all of them (see ``inbetween.usecases.polling``);
- push on: the task-finished event is expected, so the first check waits until the event is *overdue*
  (the model's longest usual generation time plus ``push_grace_s`` after submission), then every
  ``push_recheck_s``, on a grid of ``push_recheck_s``. A lost event costs that latency, never a video.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from inbetween.aws.jobs_table import Transition
from inbetween.deps import Deps
from inbetween.domain.catalog import model_spec
from inbetween.domain.models import DueKind, ErrorInfo, Job, JobStatus
from inbetween.errors import ConfigError, ProviderError
from inbetween.observability import count, logger, seconds
from inbetween.provider.models import TaskState, TaskStatus
from inbetween.usecases.notify import finish

# what observe_task did
SKIPPED = "skipped"  # the job is not waiting on a task (already handed over, final, or no task yet)
ERROR = "error"  # the query failed; a re-check is scheduled
RUNNING = "running"  # the task is still pending or running; the next check is scheduled
FINISHED = "finished"  # this call moved the job out of SUBMITTED
RACED = "raced"  # someone else moved the job first


def first_check_at(deps: Deps, model: str | None, now: float) -> float:
    """When a just-submitted task is first queried."""
    spec = model_spec(model or "")
    timing = deps.timing
    if deps.settings.push_enabled:
        expected = timing.expected_generation_s
        if expected is None:
            expected = float(spec.max_generation_s if spec else 300)
        return on_poll_grid(now + expected + timing.push_grace_s, timing.push_recheck_s)
    first_delay = timing.first_poll_delay_s
    if first_delay is None:
        first_delay = float(spec.min_generation_s if spec else 60)
    return on_poll_grid(now + first_delay, deps.settings.poll_interval_s)


def next_check_at(deps: Deps, now: float) -> float:
    """When a task that was still running is queried again."""
    interval = deps.timing.push_recheck_s if deps.settings.push_enabled else deps.settings.poll_interval_s
    # a quarter interval: a check that ran a little late still keeps to the next grid instant
    return on_poll_grid(now + interval * 0.25, interval)


def on_poll_grid(at: float, interval: float) -> float:
    """The first grid instant at or after ``at``: tasks checked on one grid are due together, so the
    poller can ask about all of a model's tasks with one list call instead of one query each."""
    if interval <= 0:
        return at
    return math.ceil(at / interval) * interval


def note_still_running(deps: Deps, job: Job, status: TaskStatus, *, checked_at: float | None = None) -> bool:
    """Record that ``job``'s task is still pending or running (learned from a query or the task list)
    and schedule its next check, counted from when the check began (``checked_at``): a check that
    took a while, or was recorded after other work, keeps its place on the grid."""
    checked_at = deps.clock() if checked_at is None else checked_at
    return deps.store.apply(
        Transition(job.job_id, JobStatus.SUBMITTED, None)
        .set(provider_status=status.value)
        .add(polls=1)
        .schedule(DueKind.POLL.key(), next_check_at(deps, checked_at))
    )


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
        usage = {
            "video_duration": state.usage.video_duration,
            "video_count": state.usage.video_count,
            "SR": state.usage.sr,
            "video_ratio": state.usage.video_ratio,
        }
        facts["usage"] = {k: v for k, v in usage.items() if v is not None}
    return {k: v for k, v in facts.items() if v is not None}


def observe_task(deps: Deps, job: Job, *, pace: Callable[[], None] | None = None) -> str:
    """Query ``job``'s task once and hand the job on if it ended. ``pace`` spaces queries (the poller's
    rate limiter); it is called right before the query."""
    if job.status is not JobStatus.SUBMITTED or not job.task_id:
        return SKIPPED
    checked_at = deps.clock()
    if pace is not None:
        pace()
    try:
        state = deps.provider.get_task(job.task_id)
    except (ProviderError, ConfigError) as exc:
        logger.warning(
            "task query failed; will retry", extra={"job_id": job.job_id, "code": getattr(exc, "code", None)}
        )
        deps.store.apply(
            Transition(job.job_id, JobStatus.SUBMITTED, None)
            .add(polls=1)
            .schedule(DueKind.POLL.key(), deps.clock() + 2 * deps.settings.poll_interval_s)
        )
        count("TaskQueriesFailed")
        return ERROR
    count("TaskQueries")
    now = deps.clock()
    if not state.status.is_terminal:
        note_still_running(deps, job, state.status, checked_at=checked_at)
        return RUNNING
    facts = provider_facts(state)
    if state.status is TaskStatus.SUCCEEDED:
        moved = deps.store.apply(
            Transition(job.job_id, JobStatus.SUBMITTED, JobStatus.COMPLETING)
            .set(provider_status=state.status.value, video_url=state.video_url, provider=facts)
            .add(polls=1)
            .schedule(DueKind.COMPLETE.key(), now + deps.timing.completion_grace_s)
            .release_slot(job.model or "")
        )
        if moved:
            if state.end_time is not None:
                seconds("DetectionDelay", now - state.end_time.timestamp())
                if state.submit_time is not None:
                    seconds("ProviderTime", state.end_time.timestamp() - state.submit_time.timestamp())
            deps.queues.complete_job(job.job_id)
            return FINISHED
        return RACED
    status, error = _final_status(state)
    done = finish(
        deps,
        job,
        status,
        expected=JobStatus.SUBMITTED,
        error=error,
        release_slot=True,
        extra={"provider_status": state.status.value, "provider": facts},
    )
    return FINISHED if done else RACED


def _final_status(state: TaskState) -> tuple[JobStatus, ErrorInfo]:
    from inbetween import admission  # admission schedules first checks through this module

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
        hint=admission._hint_for(state.code)
        if state.code
        else "the provider did not say why; upload the job folder again to retry",
        provider_request_id=state.request_id,
    )


__all__ = [
    "first_check_at",
    "next_check_at",
    "note_still_running",
    "observe_task",
    "on_poll_grid",
    "provider_facts",
]
