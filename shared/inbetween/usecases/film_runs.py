"""A film run's life after intake: wait for its shots, hand it to the stitch, announce how it ended.

Order, so that nothing is lost and nothing is said twice:
  1. every shot is an ordinary job; when one ends, ``finishing`` calls ``advance`` for each film run it
     belongs to (a shot shared by two runs of a film advances both);
  2. ``advance`` moves the run RUNNING -> STITCHING (every shot stored: the stitch is handed over) or
     RUNNING -> FAILED (a shot failed: the error names it), by a conditional write, so only one caller
     does either, and sets the run's due time (the safety net); a run being cancelled
     (``usecases.cancel``) moves RUNNING -> CANCELED instead once its started shots have ended;
  3. the poller's ``check_due`` picks up what a crash left: a RUNNING run is advanced again, an overdue
     STITCHING run handed to the stitch again, a final run not yet announced is announced;
  4. ``announce`` publishes one ``film.succeeded``, ``film.failed`` or ``film.canceled`` per run (claimed first, like a job's
     notification), with every shot's state, task id, duration and usage.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from inbetween.deps import Deps
from inbetween.domain import costs
from inbetween.domain.catalog import FIRST_CLIP, LAST
from inbetween.domain.films import FilmMode, FilmRun, FilmStatus, ShotRef
from inbetween.domain.models import DueKind, ErrorInfo, InputObject, Job, JobStatus, Notification
from inbetween.observability import count, logger
from inbetween.usecases import webhook_delivery
from inbetween.usecases.notify import iso, results_prefix, video_facts

FILM_SUCCEEDED_EVENT = "film.succeeded"
FILM_FAILED_EVENT = "film.failed"
FILM_CANCELED_EVENT = "film.canceled"
_FILM_EVENTS = {FilmStatus.STORED: FILM_SUCCEEDED_EVENT, FilmStatus.CANCELED: FILM_CANCELED_EVENT}
# a RUNNING run is looked at again this often even if no shot's end reached it (a crash in between)
FILM_RECHECK_S = 300.0
# a stitch not finished in this long is handed over again (the stitch function's timeout is 900 s)
STITCH_OVERDUE_S = 1200.0
TAIL_FILE = "tail.mp4"


class FilmProgress(StrEnum):
    WAITING = "waiting for shots"
    STITCH = "handed to the stitch"
    FAILED = "failed"
    CANCELED = "canceled"
    NOTHING = "nothing to do"


def advance(deps: Deps, run_id: str) -> FilmProgress:
    """Look at a RUNNING film run's shots and move it on if they are all final. Safe to repeat."""
    run = deps.store.get_film_run(run_id)
    if run is None or run.status is not FilmStatus.RUNNING:
        return FilmProgress.NOTHING
    jobs = [deps.store.get_job(shot.job_id) for shot in run.shots]
    if run.cancel_requested_at is not None:
        return _end_cancelled(deps, run, jobs)
    failed = [
        (shot, job)
        for shot, job in zip(run.shots, jobs, strict=True)
        if job is not None and job.status.is_final and job.status is not JobStatus.STORED
    ]
    if run.mode is FilmMode.CONTINUE:
        # one shot after another: a failed shot fails the run at once (the shots after it are never made)
        if not failed and _continue(deps, run, jobs):
            return FilmProgress.WAITING
    elif any(job is None or not job.status.is_final for job in jobs):
        return FilmProgress.WAITING
    now = deps.clock.now()
    if failed:
        shot, job = failed[0]
        error = shot_failure(shot, job, others=len(failed) - 1)
        if deps.store.move_film_run(
            run_id,
            FilmStatus.RUNNING,
            FilmStatus.FAILED,
            due_at=now + deps.timing.notify_grace_s,
            error=error,
            finished_at=now,
        ):
            count("FilmsFailed")
            logger.info("film failed", extra={"film_run": run_id, "shot": shot.number, "code": error.code})
            announce(deps, run_id)
        return FilmProgress.FAILED
    if deps.store.move_film_run(
        run_id, FilmStatus.RUNNING, FilmStatus.STITCHING, due_at=now + STITCH_OVERDUE_S
    ):
        deps.queues.stitch_film(run_id)
        logger.info("film handed to the stitch", extra={"film_run": run_id, "shots": len(run.shots)})
        return FilmProgress.STITCH
    return FilmProgress.NOTHING


def _end_cancelled(deps: Deps, run: FilmRun, jobs: list[Job | None]) -> FilmProgress:
    """A cancelled run: no shot is continued and nothing is stitched; it ends CANCELED once the shots
    it had started (running when the cancel came: paid, their clips stored) have ended."""
    if any(job is not None and not job.status.is_final for job in jobs):
        return FilmProgress.WAITING
    now = deps.clock.now()
    if deps.store.move_film_run(
        run.run_id,
        FilmStatus.RUNNING,
        FilmStatus.CANCELED,
        due_at=now + deps.timing.notify_grace_s,
        finished_at=now,
    ):
        count("FilmsCanceled")
        logger.info("film canceled", extra={"film_run": run.run_id})
        announce(deps, run.run_id)
        return FilmProgress.CANCELED
    return FilmProgress.NOTHING


def tail_key(deps: Deps, job: Job) -> str:
    """Where a stored shot's last seconds are kept for the shot that continues it (continue mode)."""
    return results_prefix(deps, job) + TAIL_FILE


def _continue(deps: Deps, run: FilmRun, jobs: list[Job | None]) -> bool:
    """Continue mode: make the next shot's job once the shot before it is stored and its tail is cut
    (the stitch function cuts it: a hand-over, as for the film). True while shots are still to come."""
    for i, (shot, job) in enumerate(zip(run.shots, jobs, strict=True)):
        if job is not None:
            if not job.status.is_final:
                return True
            continue
        previous = jobs[i - 1] if i > 0 else None
        if previous is None or previous.status is not JobStatus.STORED or shot.pending is None:
            return True  # not its turn yet (or nothing to make it from: the poller looks again)
        bucket, key = deps.settings.output_bucket, tail_key(deps, previous)
        found = deps.blobs.head(bucket, key)  # GetObject's permission: no listing of the bucket
        if found is None:
            deps.queues.stitch_film(run.run_id)
            return True
        now = deps.clock.now()
        tail = InputObject(key=key, etag=found.etag, size=found.size, bucket=bucket)
        continued = Job(
            job_id=shot.job_id,
            job_name=run.film,
            run_id=shot.job_id.rsplit("/", 1)[-1],
            status=JobStatus.WAITING,
            spec=shot.pending.spec,
            inputs={FIRST_CLIP: tail, LAST: shot.pending.last},
            created_at=now,
            updated_at=now,
            expected_size=run.size,
            film_runs=(run.run_id,),
            announce=run.shot_events,
            estimate_micros=costs.estimate(shot.pending.spec, deps.settings.provider_region),
        )
        if deps.store.add_job(continued, due=(DueKind.ADMIT, now)):
            count("ShotsContinued")
            logger.info("continued shot", extra={"film_run": run.run_id, "shot": shot.number})
            deps.queues.admit_waiting(shot.pending.spec.model)
        else:
            deps.store.link_shot(shot.job_id, run.run_id)
        return True
    return False


def shot_failure(shot: ShotRef, job: Job, *, others: int = 0) -> ErrorInfo:
    """The film's error for a failed shot: which shot, why, and what to do."""
    cause = job.error
    reason = f"{cause.code}: {cause.message}" if cause else job.status.value
    more = f" ({others} other shot{'s' if others != 1 else ''} failed too)" if others else ""
    return ErrorInfo(
        code="ShotFailed",
        message=f"shot {shot.index} (keyframe {shot.number} to {shot.last_number}) ended "
        f"{job.status.value}: {reason}{more}",
        hint=(cause.hint if cause and cause.hint else "")
        + (" " if cause and cause.hint else "")
        + "Fix that shot's keyframes or its options in film.json and upload them again: only the shots "
        "that changed are made again, the others are reused.",
        field=f"shots.{shot.number}",
    )


def check_due(deps: Deps, limit: int = 50) -> int:
    """Poller: the film runs whose safety-net time has come. Returns how many were looked at."""
    looked = 0
    for run_id in deps.store.due_film_runs(deps.clock.now(), limit):
        looked += 1
        run = deps.store.get_film_run(run_id)
        if run is None:
            continue
        now = deps.clock.now()
        if run.status is FilmStatus.RUNNING:
            if advance(deps, run_id) is FilmProgress.WAITING:
                deps.store.postpone_film_run(run_id, now + FILM_RECHECK_S)
        elif run.status is FilmStatus.STITCHING:
            logger.warning("film stitch overdue; handing it over again", extra={"film_run": run_id})
            deps.store.postpone_film_run(run_id, now + STITCH_OVERDUE_S)
            deps.queues.stitch_film(run_id)
        elif run.notified_at is None:
            announce(deps, run_id)
    return looked


def announce(deps: Deps, run_id: str) -> bool:
    """One film event per run and final state (SNS, and the webhook). True if this call announced."""
    run = deps.store.get_film_run(run_id)
    if run is None or not run.status.is_final or run.notified_at is not None:
        return False
    now = deps.clock.now()
    if not deps.store.claim_film_notification(run_id, now=now, until=now + deps.timing.notify_grace_s):
        return False
    settings = deps.settings
    if run.error is not None:
        report = {
            "film": run.film,
            "film_run": run.run_id,
            "status": run.status.value,
            "error": run.error.to_dict(),
            "what_to_do": run.error.hint,
            "at": iso(run.updated_at),
            "note": "your keyframes were kept; upload a fixed keyframe or film.json to retry what changed",
        }
        deps.blobs.put_json(settings.inbox_bucket, f"{settings.inbox_prefix}{run.film}/error.json", report)
        deps.blobs.put_json(settings.output_bucket, film_prefix(deps, run) + "error.json", report)
    payload = film_event_data(deps, run)
    event_type = _FILM_EVENTS.get(run.status, FILM_FAILED_EVENT)
    deps.notifier.publish(
        Notification(
            event_type=event_type,
            job_name=run.film,
            status=run.status,
            model=payload.get("model"),
            timestamp=iso(now) or "",
            data=payload,
        )
    )
    count("FilmNotificationsPublished")
    url = run.webhook_url or settings.default_webhook_url
    if url:
        webhook_delivery.start_for(deps, run.run_id, run.status.value, event_type, payload, url)
    deps.store.mark_film_notified(run_id, deps.clock.now())
    deps.store.forget_open_run(run.film, run.run_id)  # ended: a delete in its folder no longer concerns it
    logger.info("film notified", extra={"film_run": run_id, "status": run.status.value})
    return True


def film_prefix(deps: Deps, run: FilmRun) -> str:
    """Where a run's film, poster, contact sheet (and error report) are stored, beside its shots."""
    return f"{deps.settings.results_prefix}{run.film}/film-{run.digest}/"


def film_event_data(deps: Deps, run: FilmRun) -> dict[str, Any]:
    """The film event's data: the run, its film (when stored) and every shot's state and facts."""
    shots = []
    model = None
    shot_jobs: list[Job] = []
    region, report = deps.settings.provider_region, deps.settings.report_rate
    for shot in run.shots:
        job = deps.store.get_job(shot.job_id)
        if job is not None:
            shot_jobs.append(job)
        model = model or (job.model if job else None)
        facts = video_facts(job) if job else {}
        shots.append(
            {
                "index": shot.index,
                "keyframes": [shot.number, shot.last_number],
                "job_id": shot.job_id,
                "status": job.status.value if job else None,
                "task_id": job.task_id if job else None,
                "duration_s": facts.get("duration_s"),
                "usage": job.provider.get("usage") if job else None,
                "cost": costs.cost_data(job, region, report) if job else None,
                "error": job.error.to_dict() if job and job.error else None,
            }
        )
    data: dict[str, Any] = {
        "film": run.film,
        "film_run": run.run_id,
        "status": run.status.value,
        "model": model,
        "shots": [{k: v for k, v in s.items() if v is not None} for s in shots],
        "seam": run.seam,
        "mode": run.mode.value,
        # a film costs what its shots cost (a shot reused from an earlier run is not paid again)
        "cost": costs.film_cost_data(shot_jobs, region, report) if shot_jobs else None,
        "timings": {"dropped_at": iso(run.created_at), "finished_at": iso(run.finished_at)},
    }
    if run.status is FilmStatus.STORED and run.video_key:
        ttl = deps.settings.webhook_link_ttl_s
        bucket = deps.settings.output_bucket
        prefix = film_prefix(deps, run)
        data["film_video"] = {
            "bucket": bucket,
            "key": run.video_key,
            "size_bytes": run.video_bytes,
            "frames": run.frames,
            "duration_s": run.duration_s,
            "url": deps.blobs.presign_get(bucket, run.video_key, ttl),
            "url_expires_at": iso(deps.clock.now() + ttl),
        }
        data["poster_url"] = deps.blobs.presign_get(bucket, prefix + "poster.jpg", ttl)
        data["contact_sheet_url"] = deps.blobs.presign_get(bucket, prefix + "contact-sheet.png", ttl)
    if run.error:
        data["error"] = run.error.to_dict()
    if run.cancel_requested_at is not None:
        data["cancel"] = {"requested_at": iso(run.cancel_requested_at), "source": run.cancel_source}
    return {k: v for k, v in data.items() if v is not None}
