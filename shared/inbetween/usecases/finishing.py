"""How a job ends: its final state, once, with its bill settled against the month's spend in the same
transaction, then the report and the notifications (``notify``), and for a film's shot, its film runs' next
step (``film_runs``)."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from inbetween.deps import Deps
from inbetween.domain import costs
from inbetween.domain.catalog import MICROS_PER_UNIT
from inbetween.domain.models import DueKind, ErrorInfo, Job, JobStatus, Transition
from inbetween.observability import amount, count, seconds
from inbetween.usecases import film_runs
from inbetween.usecases.notify import report_and_notify

_FINAL_COUNTERS = {
    JobStatus.STORED: "JobsStored",
    JobStatus.REJECTED: "JobsRejected",
    JobStatus.CANCELED: "JobsCanceled",
}
# the job's committed month can change under us only by a send-back-and-readmit between our read and
# our write: read and try again, a few times
SETTLE_ROUNDS = 3
_JOB_FIELDS = frozenset(f.name for f in fields(Job))


def finish(
    deps: Deps,
    job: Job,
    status: JobStatus,
    *,
    expected: JobStatus | tuple[JobStatus, ...],
    error: ErrorInfo | None = None,
    release_slot: bool = False,
    **changes: Any,
) -> bool:
    """Move ``job`` to a final ``status`` (once), then report and notify. False if someone else did.
    ``changes``: job fields set in the same write (the provider's facts, the stored video).

    The job's bill (``costs.bill``: its usage seconds at its price once its task succeeded, else 0) is
    recorded as ``cost_micros``; a job whose estimate was committed to a month has that month's spend
    corrected by the bill minus the estimate in the same transaction, so it is settled exactly once."""
    statuses = expected if isinstance(expected, tuple) else (expected,)
    now = deps.clock.now()
    for _ in range(SETTLE_ROUNDS):
        current = deps.store.get_job(job.job_id)
        if current is None or current.status not in statuses:
            return False
        ended = replace(current, **{k: v for k, v in changes.items() if k in _JOB_FIELDS})
        bill = costs.bill(ended, deps.settings.provider_region)
        tr = (
            Transition.of(job.job_id, statuses, status)
            .set(finished_at=now, cost_micros=bill, **changes)
            .schedule(DueKind.NOTIFY, now + deps.timing.notify_grace_s)
        )
        if error:
            tr.set(error=error)
        if release_slot and job.model:
            tr.release_slot(job.model)
        if current.spend_month is not None:
            committed = current.estimate_micros or 0
            tr.settle_spend(current.spend_month, bill - committed, keep_month=True)
        else:
            tr.nothing_committed()
        if deps.store.apply(tr):
            break
    else:
        return False
    count(_FINAL_COUNTERS.get(status, "JobsFailed"))
    seconds("PipelineTotalTime", now - job.created_at)
    if bill:
        amount("VideoCost", bill / MICROS_PER_UNIT)
    final = deps.store.get_job(job.job_id)
    if not job.film_runs:  # ended: a delete in its inbox folder no longer concerns it (usecases.cancel)
        deps.store.forget_open_run(job.job_name, job.job_id)
    if final is not None:
        report_and_notify(deps, final)
        # a film's shot: its film runs move on (the poller's check of each run is the safety net)
        for run_id in final.film_runs:
            film_runs.advance(deps, run_id)
    return True
