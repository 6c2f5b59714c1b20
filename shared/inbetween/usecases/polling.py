"""The scheduled poller: one clock for everything that is due.

Each tick reads only due items from the sparse ``due-index`` (never a Scan): expired submit leases,
overdue incomplete drops, unconfirmed notifications, stalled completions, webhook retries, waiting jobs,
and provider tasks whose next check has come. Tasks are checked when they are likely to have changed
(first near the model's shortest generation time, then every ``poll_interval_s`` on a shared grid; with
provider push on, only once a task's finished event is overdue, see ``inbetween.usecases.task_checks``), under the
account's query-rate quota, and the tick keeps going while something is due within its time budget, so
a finished task is noticed in seconds, not at the next minute. Two pollers at once are harmless: every
hand-off is a conditional transition.

Queries are what the account's 20-per-second quota counts, so a model's tasks due together cost one
task-list call (it gives every task's status, not the video URL), then one query for each task the list
shows finished; a single due task is queried directly. The list's window spans the due tasks' creates
(a task created far from the others, a straggler stuck for hours, is queried on its own rather than
stretching everyone's window over hours of the account's tasks), and its pages are read while a page
costs less than querying the due tasks not seen yet. A task the list does not show, or a list that
fails, falls back to its own query.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from inbetween.deps import Deps
from inbetween.domain.catalog import MODELS, provider_model_name
from inbetween.domain.models import DueKind, Job, JobStatus
from inbetween.errors import ConfigError, ProviderError
from inbetween.observability import count, logger
from inbetween.provider.models import TaskStatus
from inbetween.usecases import admission, cancel, film_runs, intake, push, webhook_delivery
from inbetween.usecases.budget import release_held
from inbetween.usecases.notify import report_and_notify
from inbetween.usecases.task_checks import CheckOutcome, note_still_running, observe_task

T = TypeVar("T")
# the task list: a window of creation times around the due tasks' creates, a margin wide on each side
# (clock skew, and an adopted orphan's create began before its submission was recorded)
LIST_MARGIN_S = 60.0
LIST_PAGE_SIZE = 100  # the provider's largest page
# Due tasks created further apart than this are listed in windows of their own: tasks due together were
# created within a generation time (5 min usually) of each other, and one stuck for hours (a straggler)
# would otherwise stretch the window over every task the account made since, page after page.
LIST_GAP_S = 600.0
# Every task check due at one grid instant is taken in one batch (a DynamoDB page holds up to 1 MB of
# them): one list window answers for all, and the tasks that ended are queried before any still running
# is recorded. At quota 200 with its backlog some 240 tasks come due together; in batches of 100 an end
# in the third waited for the first two's lists and bookkeeping (quota 200: p95 16.0 s -> 14.7 s).
DUE_CHECKS_BATCH = 1000


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

    def __init__(self, deps: Deps, rate: float) -> None:
        self._deps = deps
        self._gap = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._deps.clock.now()
            at = max(now, self._next)
            self._next = at + self._gap
        if at > now:
            self._deps.clock.sleep(at - now)


def tick(deps: Deps, *, budget_s: float | None = None) -> PollReport:
    report = PollReport()
    budget = deps.settings.poll_budget_s if budget_s is None else budget_s
    deadline = deps.clock.now() + budget
    # each safety net on its own: one failing step must not stop the others, nor the task checks
    report.reconciled = _guarded("reconcile", admission.reconcile_expired_leases, deps) or 0
    _guarded("settle", intake.settle_overdue_drops, deps)
    _guarded("notify", _resend_due_notifications, deps)
    report.handed_over += _guarded("complete", _rehand_due_completions, deps) or 0
    report.handed_over += _guarded("webhook", webhook_delivery.hand_over_due, deps) or 0
    _guarded("budget", release_held, deps)  # held jobs the budget now allows wait again, then:
    report.admitted += _guarded("admit", _admit_all, deps) or 0
    _guarded("films", film_runs.check_due, deps)
    if deps.settings.push_enabled:
        _guarded("early-events", push.follow_up_early_events, deps)
    pacer = _Pacer(deps, deps.timing.query_rps)
    with ThreadPoolExecutor(max_workers=max(1, deps.timing.poll_concurrency)) as pool:
        while True:
            due = deps.store.due_jobs(DueKind.POLL, deps.clock.now(), limit=DUE_CHECKS_BATCH)
            if due:
                outcomes, admitted = _check_due(deps, due, pacer, pool)
                report.checked += len(due)
                report.finished += sum(1 for o in outcomes if o is CheckOutcome.FINISHED)
                report.admitted += admitted
                continue
            next_at = deps.store.next_due_at(DueKind.POLL)
            now = deps.clock.now()
            if next_at is None or next_at > deadline:
                break
            deps.clock.sleep(max(0.0, next_at - now))
    return report


def _admit_all(deps: Deps) -> int:
    admitted = 0
    for model in MODELS:
        if deps.store.due_jobs(DueKind.ADMIT, deps.clock.now(), model=model, limit=1):
            admitted += admission.admit_or_hand_over(deps, model)
    return admitted


def _guarded(step: str, fn: Callable[[Deps], T], deps: Deps) -> T | None:
    try:
        return fn(deps)
    except Exception:  # noqa: BLE001 - logged and counted; the next tick tries again
        logger.exception("poller step failed", extra={"step": step})
        count("PollerStepErrors")
        return None


def _check_due(
    deps: Deps, jobs: list[Job], pacer: _Pacer, pool: ThreadPoolExecutor
) -> tuple[list[CheckOutcome], int]:
    """Check every due job's task: per model, one list call when several are due, then a query for
    each task that ended (or that the list could not account for). Returns what each check did, and how
    many waiting jobs took the slots that came free."""
    checked_at = deps.clock.now()
    by_model: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_model[job.model or ""].append(job)
    to_query: list[Job] = []
    still_running: list[tuple[Job, TaskStatus]] = []
    for model, group in by_model.items():
        waiting = [j for j in group if j.status is JobStatus.SUBMITTED and j.task_id]
        listed = _list_statuses(deps, model, waiting, pacer) if model and len(waiting) > 1 else None
        # by id: a batch holds up to DUE_CHECKS_BATCH jobs, and comparing whole jobs pairwise is quadratic
        waiting_ids = {j.job_id for j in waiting}
        for job in group:
            status = (
                listed.get(job.task_id or "") if listed is not None and job.job_id in waiting_ids else None
            )
            # a job with a cancel still to carry out is queried: its check sends the cancel if PENDING
            if status is None or status.is_terminal or cancel.still_to_cancel(job):
                to_query.append(job)
            else:
                still_running.append((job, status))
    # the tasks that ended first: their videos and notifications should not wait for bookkeeping
    outcomes = list(pool.map(lambda job: _check(deps, job, pacer), to_query))
    outcomes += pool.map(lambda pair: _record_running(deps, pair[0], pair[1], checked_at), still_running)
    admitted = 0
    if CheckOutcome.FINISHED in outcomes:  # slots came free
        admitted = _guarded("admit", _admit_all, deps) or 0
    return outcomes, admitted


def _list_statuses(deps: Deps, model: str, jobs: list[Job], pacer: _Pacer) -> dict[str, TaskStatus] | None:
    """The provider's status of each of ``jobs``' tasks from the task list, or None if it cannot say.
    A task it does not answer for (alone in its window, or on a page not worth reading) is queried."""
    statuses: dict[str, TaskStatus] = {}
    try:
        for window in _list_windows(jobs):
            if len(window) > 1:  # one due task alone costs one query either way, and that gives its video
                _read_window(deps, model, window, pacer, statuses)
    except (ProviderError, ConfigError) as exc:
        logger.warning(
            "task list failed; querying tasks one by one", extra={"code": getattr(exc, "code", None)}
        )
        count("TaskListFailed")
        return None
    except Exception:  # noqa: BLE001 - whatever went wrong, the one-by-one queries still work
        logger.exception("task list failed; querying tasks one by one")
        count("TaskListFailed")
        return None
    return statuses


def _created_at(job: Job) -> float:
    # the create began at submit_started_at; submitted_at can be much later for an adopted orphan
    return job.submit_started_at or job.submitted_at or job.updated_at


def _list_windows(jobs: list[Job]) -> list[list[Job]]:
    """The due jobs in groups by creation time, a new group wherever two creates are LIST_GAP_S apart."""
    windows: list[list[Job]] = []
    for job in sorted(jobs, key=_created_at):
        if windows and _created_at(job) - _created_at(windows[-1][-1]) <= LIST_GAP_S:
            windows[-1].append(job)
        else:
            windows.append([job])
    return windows


def _read_window(
    deps: Deps, model: str, jobs: list[Job], pacer: _Pacer, statuses: dict[str, TaskStatus]
) -> None:
    """List the tasks created around ``jobs``' creates, page after page while a page costs less than
    querying the due tasks not yet seen (a page is one query, whatever the list's length)."""
    end = datetime.fromtimestamp(_created_at(jobs[-1]) + LIST_MARGIN_S, UTC)
    start = max(
        datetime.fromtimestamp(_created_at(jobs[0]) - LIST_MARGIN_S, UTC),
        end - timedelta(hours=23, minutes=59),
    )
    unseen = {job.task_id for job in jobs if job.task_id}
    page_no = 1
    while True:
        pacer.wait()
        page = deps.provider.list_tasks(
            start=start,
            end=end,
            model=provider_model_name(model, deps.settings.provider_region),
            page_no=page_no,
            page_size=LIST_PAGE_SIZE,
        )
        count("TaskListCalls")
        statuses.update((t.task_id, t.status) for t in page.tasks)
        unseen.difference_update(t.task_id for t in page.tasks)
        pages_left = page.total_page - page_no
        if not page.tasks or not unseen or pages_left <= 0 or pages_left >= len(unseen):
            return
        page_no += 1


def _record_running(deps: Deps, job: Job, status: TaskStatus, checked_at: float) -> CheckOutcome:
    try:
        if note_still_running(deps, job, status, checked_at=checked_at):
            return CheckOutcome.RUNNING
        outcome = CheckOutcome.RACED  # the job moved on meanwhile (a push event, another poller)
    except Exception:  # noqa: BLE001 - as in _check: one job's trouble must not stall the others
        logger.exception("recording a running task failed", extra={"job_id": job.job_id})
        count("PollerStepErrors")
        outcome = CheckOutcome.ERROR
    _check_again_later(deps, job)
    return outcome


def _check(deps: Deps, job: Job, pacer: _Pacer) -> CheckOutcome:
    try:
        outcome = observe_task(deps, job, pace=pacer.wait)
    except Exception:  # noqa: BLE001 - one job's trouble must not stall the others' checks
        logger.exception("task check failed; will retry", extra={"job_id": job.job_id})
        count("PollerStepErrors")
        outcome = CheckOutcome.ERROR
    if outcome in (CheckOutcome.SKIPPED, CheckOutcome.ERROR):
        _check_again_later(deps, job)
    return outcome


def _check_again_later(deps: Deps, job: Job) -> None:
    """A check that could not finish is retried later, if the job still waits on its task (a job that
    moved on no longer has a poll item, and is left alone)."""
    deps.store.postpone(job.job_id, DueKind.POLL, deps.clock.now() + 2 * deps.settings.poll_interval_s)


def _resend_due_notifications(deps: Deps) -> None:
    for job in deps.store.due_jobs(DueKind.NOTIFY, deps.clock.now(), limit=50):
        if job.notified_at is None and job.status.is_final:
            report_and_notify(deps, job)
        else:
            deps.store.clear_due(job.job_id)


def _rehand_due_completions(deps: Deps) -> int:
    handed = 0
    for job in deps.store.due_jobs(DueKind.COMPLETE, deps.clock.now(), limit=50):
        if job.status is not JobStatus.COMPLETING:
            deps.store.clear_due(job.job_id)
            continue
        deps.store.postpone(job.job_id, DueKind.COMPLETE, deps.clock.now() + deps.timing.completion_grace_s)
        deps.queues.complete_job(job.job_id)
        handed += 1
    return handed


__all__ = ["PollReport", "tick"]
