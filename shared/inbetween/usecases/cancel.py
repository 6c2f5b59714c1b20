"""Cancelling a job or a film: deleting its inputs from the inbox, or ``inbetween cancel JOB|FILM``.

What a cancel can do depends on where the job is, and the provider decides the rest (it cancels only
tasks still PENDING in its queue; a RUNNING task is paid whatever we do):
  - WAITING or HELD: withdrawn, no provider task is ever made; CANCELED.
  - SUBMITTING (its create call under way): the request is recorded on the job; admission looks at it
    again right before the create (then nothing is made) and right after the task is recorded (then the
    task is cancelled while it is PENDING). A create that fails puts the job back to waiting, where it
    is withdrawn. The job is never left waiting on a cancel nobody acts on.
  - SUBMITTED, its task PENDING: one cancel call; the task ends CANCELED at the provider (not paid),
    the job CANCELED.
  - SUBMITTED with its task RUNNING (the provider refuses the cancel), or COMPLETING: too late; it is
    paid, its video is stored as usual (STORED), and the answer says so.
  - final already: nothing changes, nothing more is said.

Every step is a conditional transition, so a duplicate delete event or a second ``inbetween cancel``
finds the job moved on and does nothing: one cancel call at most, one notification (through
``finishing.finish``: ``video.generation.canceled``). The cancel runs where the provider key is (the
submit function, from the intake queue), never in the CLI.

A film's cancel applies this to each of its shots (a continued shot not made yet is never made) and
ends the run CANCELED, with one ``film.canceled`` event, once its running shots have ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from inbetween.deps import Deps
from inbetween.domain.catalog import MEDIA_ROLES
from inbetween.domain.drops import parse_key
from inbetween.domain.films import FilmRun, FilmStatus, keyframe_number
from inbetween.domain.models import Job, JobStatus, Transition
from inbetween.errors import ProviderRejected
from inbetween.observability import count, logger
from inbetween.usecases import film_runs
from inbetween.usecases.finishing import finish

# the provider's answer to a cancel of a task that is not PENDING (running, or ended)
NOT_PENDING_CODE = "UnsupportedOperation"
# a job that moved while we looked is looked at again, this many times in all
CANCEL_ROUNDS = 4


class CancelSource(StrEnum):
    INBOX = "inbox"  # its inputs (a film: its keyframes) were deleted from the inbox
    CLI = "cli"  # `inbetween cancel`


class CancelAnswer(StrEnum):
    """What a cancel did to one job; recorded on it (``cancel_answer``) for the CLI and the event."""

    WITHDRAWN = "withdrawn"  # it was waiting (or held): no provider task was made; CANCELED
    PROVIDER_CANCELED = "provider_canceled"  # its task was PENDING: cancelled there, not paid; CANCELED
    AWAITING_TASK = "awaiting_task"  # its create call was under way: cancelled once that is answered
    RUNNING = "running"  # its task had started: paid, and its video is stored
    FINISHED = "finished"  # it had ended already: nothing changed
    NOT_FOUND = "not_found"

    @property
    def explanation(self) -> str:
        return _EXPLANATIONS[self]


_EXPLANATIONS = {
    CancelAnswer.WITHDRAWN: "withdrawn before it reached the provider: no task was made, nothing is paid",
    CancelAnswer.PROVIDER_CANCELED: "its task was still PENDING at the provider and was cancelled there: "
    "nothing is paid",
    CancelAnswer.AWAITING_TASK: "its task was being created: it is cancelled as soon as the provider "
    "answers (while still PENDING, so nothing is paid)",
    CancelAnswer.RUNNING: "its task was already RUNNING and cannot be cancelled: it is paid, and its video "
    "will be stored as usual",
    CancelAnswer.FINISHED: "it had already finished: nothing changed",
    CancelAnswer.NOT_FOUND: "no such job",
}


def cancel_job(deps: Deps, job_id: str, source: CancelSource) -> CancelAnswer:
    """Cancel one job as far as its state allows (see the module docstring). Safe to repeat."""
    for _ in range(CANCEL_ROUNDS):
        job = deps.store.get_job(job_id)
        if job is None:
            return CancelAnswer.NOT_FOUND
        answer = _cancel_as_it_is(deps, job, source)
        if answer is not None:
            return answer
    # it kept moving under us (every move is towards an end): the next look finds it settled
    logger.warning("job kept moving while being cancelled", extra={"job_id": job_id})
    return CancelAnswer.AWAITING_TASK


def _cancel_as_it_is(deps: Deps, job: Job, source: CancelSource) -> CancelAnswer | None:
    """One attempt against the job as read; None when it moved meanwhile (look again)."""
    now = deps.clock.now()
    asked = job.cancel_requested_at or now
    how = job.cancel_source or source.value
    if job.status.is_final:
        if job.cancel_answer == CancelAnswer.RUNNING and job.status is JobStatus.STORED:
            return CancelAnswer.RUNNING  # asked again: still the answer the first request got
        return CancelAnswer.FINISHED
    if job.cancel_requested_at is None:
        count("CancelsRequested")
        logger.info(
            "cancel requested", extra={"job_id": job.job_id, "status": job.status.value, "source": how}
        )
    if job.status in (JobStatus.WAITING, JobStatus.HELD):
        # it holds no slot and never had spend committed: withdrawn, no task is ever made
        done = finish(
            deps,
            job,
            JobStatus.CANCELED,
            expected=(JobStatus.WAITING, JobStatus.HELD),
            cancel_requested_at=asked,
            cancel_source=how,
            cancel_answer=CancelAnswer.WITHDRAWN.value,
        )
        return CancelAnswer.WITHDRAWN if done else None
    if job.status is JobStatus.SUBMITTING:
        # its create call is under way: admission acts on the request before and after it
        marked = deps.store.apply(
            Transition.of(job.job_id, JobStatus.SUBMITTING).set(
                cancel_requested_at=asked, cancel_source=how, cancel_answer=CancelAnswer.AWAITING_TASK.value
            )
        )
        return CancelAnswer.AWAITING_TASK if marked else None
    if job.status is JobStatus.SUBMITTED:
        return _cancel_task(deps, job, asked, how)
    # COMPLETING: the task succeeded, it is paid; the video is being stored
    return _too_late(deps, job, asked, how, JobStatus.COMPLETING)


def _cancel_task(deps: Deps, job: Job, asked: float, how: str) -> CancelAnswer | None:
    """A job whose task the provider has: cancel it there while it is PENDING."""
    if job.provider_status == "RUNNING" or job.cancel_answer == CancelAnswer.RUNNING:
        return _too_late(deps, job, asked, how, JobStatus.SUBMITTED)
    # recorded first: whoever sees the task end CANCELED (the poller, a push event) ends the job CANCELED
    if job.cancel_requested_at is None and not deps.store.apply(
        Transition.of(job.job_id, JobStatus.SUBMITTED).set(cancel_requested_at=asked, cancel_source=how)
    ):
        return None
    task_id = job.task_id or ""
    try:
        deps.provider.cancel_task(task_id)
    except ProviderRejected as exc:
        if exc.code != NOT_PENDING_CODE:
            raise
        # it started (or ended) before our call: the poller follows it to its end as usual
        return _too_late(deps, job, asked, how, JobStatus.SUBMITTED)
    # a retryable provider error escapes: the message is delivered again, and the job is unchanged
    count("ProviderTasksCanceled")
    logger.info("provider task cancelled", extra={"job_id": job.job_id, "task_id": task_id})
    finish(
        deps,
        job,
        JobStatus.CANCELED,
        expected=JobStatus.SUBMITTED,
        release_slot=True,
        provider_status="CANCELED",
        cancel_answer=CancelAnswer.PROVIDER_CANCELED.value,
    )
    # finish lost only to an observer that saw the task end CANCELED first: the same end, said once
    return CancelAnswer.PROVIDER_CANCELED


def _too_late(deps: Deps, job: Job, asked: float, how: str, status: JobStatus) -> CancelAnswer | None:
    if job.cancel_answer != CancelAnswer.RUNNING:
        if not deps.store.apply(
            Transition.of(job.job_id, status).set(
                cancel_requested_at=asked, cancel_source=how, cancel_answer=CancelAnswer.RUNNING.value
            )
        ):
            return None
        count("CancelsTooLate")
        logger.info(
            "cancel too late: the task is running, paid, and its video will be stored",
            extra={"job_id": job.job_id, "task_id": job.task_id},
        )
    return CancelAnswer.RUNNING


def still_to_cancel(job: Job) -> bool:
    """A cancel was asked and not carried out yet (nor found too late): whoever sees the task PENDING
    (the poller's check) sends the cancel."""
    return (
        job.cancel_requested_at is not None
        and not job.status.is_final
        and job.cancel_answer != CancelAnswer.RUNNING
    )


def honour_request(deps: Deps, job_id: str) -> CancelAnswer | None:
    """Admission, after a create call was answered (the task recorded, or the job back to waiting): act
    on a cancel that arrived while it was under way. None if none is pending."""
    job = deps.store.get_job(job_id)
    if job is None or job.cancel_requested_at is None or job.status.is_final:
        return None
    if job.cancel_answer == CancelAnswer.RUNNING:
        return None
    return cancel_job(deps, job_id, CancelSource(job.cancel_source or CancelSource.CLI.value))


def withdraw_before_create(deps: Deps, job: Job) -> bool:
    """Admission, right before the create call of a job it holds in SUBMITTING: a cancel recorded on it
    meanwhile withdraws it (its slot given back), so no task is made. True if it was withdrawn."""
    current = deps.store.get_job(job.job_id)
    if current is None or current.cancel_requested_at is None:
        return False
    return finish(
        deps,
        current,
        JobStatus.CANCELED,
        expected=JobStatus.SUBMITTING,
        release_slot=True,
        lease_holder=None,
        cancel_answer=CancelAnswer.WITHDRAWN.value,
    )


# ---------------------------------------------------------------------------------------------- films
@dataclass(frozen=True, slots=True)
class FilmCancel:
    """What a film's cancel did: the run's state after it, and each shot's answer (by shot index)."""

    run_id: str
    status: FilmStatus | None  # None: no such run
    shots: dict[int, CancelAnswer]


def cancel_film(deps: Deps, run_id: str, source: CancelSource) -> FilmCancel:
    """Cancel a film run's unstarted shots (withdraw the waiting, cancel the PENDING, let the RUNNING
    finish; a continued shot not made yet is never made); the run ends CANCELED, announced once, when
    its last running shot has ended. Safe to repeat."""
    run = deps.store.get_film_run(run_id)
    if run is None:
        return FilmCancel(run_id, None, {})
    if run.status is FilmStatus.RUNNING and run.cancel_requested_at is None:
        # recorded before any shot is touched: advance then neither continues nor stitches this run
        if deps.store.move_film_run(
            run_id,
            FilmStatus.RUNNING,
            FilmStatus.RUNNING,
            due_at=deps.clock.now() + film_runs.FILM_RECHECK_S,
            cancel_requested_at=deps.clock.now(),
            cancel_source=source.value,
        ):
            count("FilmCancelsRequested")
            logger.info("film cancel requested", extra={"film_run": run_id, "source": source.value})
        run = deps.store.get_film_run(run_id) or run
    if run.status is not FilmStatus.RUNNING:
        # stitching (every shot made and paid: the film is stored) or ended already: nothing to cancel
        return FilmCancel(run_id, run.status, {})
    answers = {}
    for shot in run.shots:
        job = deps.store.get_job(shot.job_id)
        answers[shot.index] = (
            cancel_job(deps, shot.job_id, source) if job is not None else CancelAnswer.WITHDRAWN
        )
    film_runs.advance(deps, run_id)
    after = deps.store.get_film_run(run_id)
    return FilmCancel(run_id, after.status if after else None, answers)


# ---------------------------------------------------------------------------------------------- the ways in
class RemovedOutcome(StrEnum):
    IGNORED = "ignored"  # not an input of a job or a film in this inbox
    NOTHING_OPEN = "nothing open"  # no run of the folder uses it, or they have all ended
    STILL_THERE = "still there"  # the object is back (uploaded again): a stale event
    CANCELED = "cancel applied"


def on_object_removed(deps: Deps, bucket: str, key: str) -> RemovedOutcome:
    """One S3 ObjectRemoved notification (a delete, or a delete marker in the versioned inbox): the runs
    of its folder that use the deleted input are cancelled. Inputs are the frames, audio and clip of a
    job and a film's keyframes; deleting job.json, prompts or error.json cancels nothing."""
    settings = deps.settings
    if bucket != settings.inbox_bucket:
        return RemovedOutcome.IGNORED
    drop = parse_key(key, settings.inbox_prefix)
    if drop is None or (drop.role not in MEDIA_ROLES and keyframe_number(drop.filename) is None):
        return RemovedOutcome.IGNORED
    runs = deps.store.open_runs(drop.job_name)
    if not runs:
        return RemovedOutcome.NOTHING_OPEN
    present = {
        obj.key: obj.etag
        for obj in deps.blobs.list_folder(settings.inbox_bucket, f"{settings.inbox_prefix}{drop.job_name}/")
    }
    outcome = RemovedOutcome.NOTHING_OPEN
    for run_id in runs:
        film = deps.store.get_film_run(run_id)
        if film is not None:
            if film.status.is_final:
                deps.store.forget_open_run(drop.job_name, run_id)
            elif key in film.keyframes and _gone(key, present, _film_etags(deps, film, key)):
                cancel_film(deps, run_id, CancelSource.INBOX)
                outcome = RemovedOutcome.CANCELED
            elif key in present and outcome is RemovedOutcome.NOTHING_OPEN:
                outcome = RemovedOutcome.STILL_THERE
            continue
        job = deps.store.get_job(run_id)
        if job is None or job.status.is_final:
            deps.store.forget_open_run(drop.job_name, run_id)
            continue
        used = {obj.etag for role, obj in job.inputs.items() if role in MEDIA_ROLES and obj.key == key}
        if used and _gone(key, present, used):
            cancel_job(deps, run_id, CancelSource.INBOX)
            outcome = RemovedOutcome.CANCELED
        elif used and outcome is RemovedOutcome.NOTHING_OPEN:
            outcome = RemovedOutcome.STILL_THERE
    return outcome


def _gone(key: str, present: dict[str, str], etags: set[str]) -> bool:
    """The run's version of ``key`` is no longer in the inbox: deleted (or deleted and replaced by other
    content). One with the same content back in place means the event is stale: nothing is cancelled."""
    if key not in present:
        return True
    return bool(etags) and present[key].strip('"') not in {e.strip('"') for e in etags}


def _film_etags(deps: Deps, run: FilmRun, key: str) -> set[str]:
    """The versions of keyframe ``key`` the run's shots were made from (their jobs' inputs)."""
    etags = set()
    for shot in run.shots:
        job = deps.store.get_job(shot.job_id)
        for obj in job.inputs.values() if job else ():
            if obj.key == key and obj.bucket is None:
                etags.add(obj.etag)
    return etags


class CancelTargetKind(StrEnum):
    JOB = "job"
    FILM = "film"
    NONE = "none"


def on_request(deps: Deps, target: str) -> CancelTargetKind:
    """``inbetween cancel TARGET`` (a message on the intake queue): a film run id, a job id, or an inbox
    folder's name (every run of it still in flight)."""
    if deps.store.get_film_run(target) is not None:
        cancel_film(deps, target, CancelSource.CLI)
        return CancelTargetKind.FILM
    if deps.store.get_job(target) is not None:
        cancel_job(deps, target, CancelSource.CLI)
        return CancelTargetKind.JOB
    kind = CancelTargetKind.NONE
    for run_id in deps.store.open_runs(target):
        if deps.store.get_film_run(run_id) is not None:
            cancel_film(deps, run_id, CancelSource.CLI)
            kind = CancelTargetKind.FILM
        elif cancel_job(deps, run_id, CancelSource.CLI) is not CancelAnswer.NOT_FOUND:
            kind = CancelTargetKind.JOB if kind is CancelTargetKind.NONE else kind
    if kind is CancelTargetKind.NONE:
        logger.warning("cancel: no job or film in flight by that name", extra={"target": target})
    return kind


__all__ = [
    "CancelAnswer",
    "CancelSource",
    "FilmCancel",
    "RemovedOutcome",
    "cancel_film",
    "cancel_job",
    "honour_request",
    "on_object_removed",
    "on_request",
    "still_to_cancel",
    "withdraw_before_create",
]
