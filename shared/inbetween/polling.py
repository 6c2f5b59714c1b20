"""The scheduled poller: one clock for everything that is due.

Each tick reads only due items from the sparse ``due-index`` (never a Scan): expired submit leases,
overdue incomplete drops, unconfirmed notifications, stalled completions, webhook retries, waiting jobs,
and provider tasks whose next check has come. Tasks are checked when they are likely to have changed
(first near the model's shortest generation time, then every ``poll_interval_s``), with bounded
concurrency under the account's query-rate quota, and the tick keeps going while something is due
within its time budget, so a finished task is noticed in seconds, not at the next minute. Two pollers at
once are harmless: every hand-off is a conditional transition.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from inbetween import admission, intake
from inbetween.catalog import MODELS
from inbetween.deps import Deps
from inbetween.errors import ConfigError, ProviderError
from inbetween.models import DueKind, ErrorInfo, Job, JobStatus
from inbetween.observability import count, logger, seconds
from inbetween.outcomes import attempt_webhook, finish, report_and_notify
from inbetween.provider.models import TaskState, TaskStatus
from inbetween.store import Transition, job_key

HANDOFF_LEASE_S = 300.0


@dataclass
class PollReport:
    checked: int = 0
    finished: int = 0
    admitted: int = 0
    reconciled: int = 0
    handed_over: int = 0
    notes: list[str] = field(default_factory=list)


class _Pacer:
    """Spaces calls at ``rate`` per second across threads."""

    def __init__(self, deps: Deps, rate: float):
        self._deps = deps
        self._gap = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._deps.clock()
            at = max(now, self._next)
            self._next = at + self._gap
        if at > now:
            self._deps.sleep(at - now)


def tick(deps: Deps, *, budget_s: float | None = None) -> PollReport:
    report = PollReport()
    budget = deps.settings.poll_budget_s if budget_s is None else budget_s
    deadline = deps.clock() + budget
    report.reconciled = admission.reconcile_expired_leases(deps)
    intake.settle_overdue_drops(deps)
    _resend_due_notifications(deps)
    report.handed_over += _rehand_due_completions(deps)
    report.handed_over += _hand_due_webhooks(deps)
    report.admitted += _admit_all(deps)
    pacer = _Pacer(deps, deps.timing.query_rps)
    with ThreadPoolExecutor(max_workers=max(1, deps.timing.poll_concurrency)) as pool:
        while True:
            due = deps.store.due_items(DueKind.POLL.key(), deps.clock(), limit=100)
            if due:
                outcomes = list(pool.map(lambda item: _check(deps, Job.from_item(item), pacer), due))
                report.checked += len(due)
                report.finished += sum(1 for o in outcomes if o == "finished")
                if any(o == "finished" for o in outcomes):
                    report.admitted += _admit_all(deps)
                continue
            next_at = deps.store.next_due_at(DueKind.POLL.key())
            now = deps.clock()
            if next_at is None or next_at > deadline:
                break
            deps.sleep(max(0.0, next_at - now))
    return report


def _admit_all(deps: Deps) -> int:
    admitted = 0
    for model in MODELS:
        if deps.store.due_items(DueKind.ADMIT.key(model), deps.clock(), limit=1):
            admitted += admission.admit(deps, model)
    return admitted


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


def _check(deps: Deps, job: Job, pacer: _Pacer) -> str:
    if job.status is not JobStatus.SUBMITTED or not job.task_id:
        return "skipped"
    pacer.wait()
    interval = deps.settings.poll_interval_s
    try:
        state = deps.provider.get_task(job.task_id)
    except (ProviderError, ConfigError) as exc:
        logger.warning(
            "task query failed; will retry", extra={"job_id": job.job_id, "code": getattr(exc, "code", None)}
        )
        deps.store.apply(
            Transition(job.job_id, JobStatus.SUBMITTED, None)
            .add(polls=1)
            .schedule(DueKind.POLL.key(), deps.clock() + 2 * interval)
        )
        count("TaskQueriesFailed")
        return "error"
    count("TaskQueries")
    now = deps.clock()
    if not state.status.is_terminal:
        deps.store.apply(
            Transition(job.job_id, JobStatus.SUBMITTED, None)
            .set(provider_status=state.status.value)
            .add(polls=1)
            .schedule(DueKind.POLL.key(), now + interval)
        )
        return "running"
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
            return "finished"
        return "raced"
    if state.status is TaskStatus.UNKNOWN:
        status = JobStatus.EXPIRED
        error = ErrorInfo(
            code="TaskExpired",
            message="the provider no longer knows this task (task ids answer for 24 hours)",
            hint="upload the job folder again to start a new run",
        )
    else:
        status = JobStatus.FAILED
        error = ErrorInfo(
            code=state.code or ("TaskCanceled" if state.status is TaskStatus.CANCELED else "TaskFailed"),
            message=state.message
            or (
                "the task was cancelled"
                if state.status is TaskStatus.CANCELED
                else "the provider gave no reason"
            ),
            hint=admission._hint_for(state.code)
            if state.code
            else "the provider did not say why; upload the job folder again to retry",
            provider_request_id=state.request_id,
        )
    done = finish(
        deps,
        job,
        status,
        expected=JobStatus.SUBMITTED,
        error=error,
        release_slot=True,
        extra={"provider_status": state.status.value, "provider": facts},
    )
    return "finished" if done else "raced"


def _resend_due_notifications(deps: Deps) -> None:
    for item in deps.store.due_items(DueKind.NOTIFY.key(), deps.clock(), limit=50):
        if not str(item.get("pk", "")).startswith("job#"):
            continue
        job = Job.from_item(item)
        if job.notified_at is None and job.status.is_final:
            report_and_notify(deps, job)
        else:
            deps.store.update_item(item["pk"], clear_due=True)


def _rehand_due_completions(deps: Deps) -> int:
    handed = 0
    for item in deps.store.due_items(DueKind.COMPLETE.key(), deps.clock(), limit=50):
        job = Job.from_item(item)
        if job.status is not JobStatus.COMPLETING:
            deps.store.update_item(job_key(job.job_id), clear_due=True)
            continue
        deps.store.update_item(
            job_key(job.job_id), due=(DueKind.COMPLETE.key(), deps.clock() + deps.timing.completion_grace_s)
        )
        deps.queues.complete_job(job.job_id)
        handed += 1
    return handed


def _hand_due_webhooks(deps: Deps) -> int:
    handed = 0
    for item in deps.store.due_items(DueKind.WEBHOOK.key(), deps.clock(), limit=50):
        msg_id = str(item["pk"]).removeprefix("hook#")
        # push the due time forward first: the completion function sets the real next attempt
        deps.store.update_item(item["pk"], due=(DueKind.WEBHOOK.key(), deps.clock() + HANDOFF_LEASE_S))
        deps.queues.deliver_webhook(msg_id)
        handed += 1
    return handed


__all__ = ["PollReport", "attempt_webhook", "tick"]
