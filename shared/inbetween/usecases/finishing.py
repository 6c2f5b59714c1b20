"""How a job ends: its final state, once, then the report and the notifications (``notify``), and for a
film's shot, its film runs' next step (``film_runs``)."""

from __future__ import annotations

from typing import Any

from inbetween.deps import Deps
from inbetween.domain.models import DueKind, ErrorInfo, Job, JobStatus, Transition
from inbetween.observability import count, seconds
from inbetween.usecases import film_runs
from inbetween.usecases.notify import report_and_notify

_FINAL_COUNTERS = {
    JobStatus.STORED: "JobsStored",
    JobStatus.REJECTED: "JobsRejected",
    JobStatus.CANCELED: "JobsCanceled",
}


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
    ``changes``: job fields set in the same write (the provider's facts, the stored video)."""
    now = deps.clock.now()
    tr = (
        Transition.of(job.job_id, expected, status)
        .set(finished_at=now, **changes)
        .schedule(DueKind.NOTIFY, now + deps.timing.notify_grace_s)
    )
    if error:
        tr.set(error=error)
    if release_slot and job.model:
        tr.release_slot(job.model)
    if not deps.store.apply(tr):
        return False
    count(_FINAL_COUNTERS.get(status, "JobsFailed"))
    seconds("PipelineTotalTime", now - job.created_at)
    final = deps.store.get_job(job.job_id)
    if not job.film_runs:  # ended: a delete in its inbox folder no longer concerns it (usecases.cancel)
        deps.store.forget_open_run(job.job_name, job.job_id)
    if final is not None:
        report_and_notify(deps, final)
        # a film's shot: its film runs move on (the poller's check of each run is the safety net)
        for run_id in final.film_runs:
            film_runs.advance(deps, run_id)
    return True
