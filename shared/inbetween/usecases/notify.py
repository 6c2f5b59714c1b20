"""Telling people how a job ended: the error report next to the inputs, SNS, and the webhook.

Order, so that nothing is lost and nothing is said twice (``finishing.finish`` did step 1):
  1. the job moved to its final state by a conditional write that also scheduled a ``notify`` due item;
  2. error.json (failures) is written next to the inputs and under the results prefix;
  3. SNS is published and the webhook delivery is recorded (its first attempt made at once);
  4. the job is marked notified and its due item removed.
A crash after 1 leaves the due item: the poller finishes 2-4 later. A redelivered message that finds the
job notified does nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from inbetween.deps import Deps
from inbetween.domain import costs
from inbetween.domain.catalog import RequestShape, model_spec
from inbetween.domain.models import ErrorInfo, Job, JobStatus, Notification
from inbetween.observability import count, logger
from inbetween.usecases import webhook_delivery

SUCCEEDED_EVENT = "video.generation.succeeded"
FAILED_EVENT = "video.generation.failed"
CANCELED_EVENT = "video.generation.canceled"
_EVENT_TYPES = {JobStatus.STORED: SUCCEEDED_EVENT, JobStatus.CANCELED: CANCELED_EVENT}
# a folder name that is not a safe results prefix gets its error report in the inbox only
UNSAFE_NAME_CODE = "InvalidJobName"
MAX_S3_KEY_BYTES = 1024


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z") if ts else None


def results_prefix(deps: Deps, job: Job) -> str:
    return f"{deps.settings.results_prefix}{job.job_name}/{job.run_id}/"


def error_report(job: Job, error: ErrorInfo) -> dict[str, Any]:
    return {
        "job": job.job_name,
        "job_id": job.job_id,
        "status": job.status.value,
        "error": error.to_dict(),
        "what_to_do": error.hint or "fix the inputs and upload the job folder again",
        "inputs": {role: obj.key for role, obj in job.inputs.items()},
        "task_id": job.task_id,
        "at": iso(job.updated_at),
        "note": "your inputs were kept; a changed upload of this folder starts a new run",
    }


def video_facts(job: Job) -> dict[str, Any]:
    """What the video is, for metadata.json and the notifications: its length in seconds (as asked, or
    the model's default) and its soundtrack ("driving_audio": the given audio; "generated": the model's
    own; None: a silent video)."""
    model = model_spec(job.model or "")
    if job.spec is None or model is None:
        return {}
    duration = job.spec.duration or model.default_duration
    if "audio" in job.inputs:
        soundtrack: str | None = "driving_audio"
    elif model.shape is RequestShape.I2V_MEDIA:
        soundtrack = "generated"
    else:
        soundtrack = None
    return {"duration_s": duration, "soundtrack": soundtrack}


def report_and_notify(deps: Deps, job: Job) -> bool:
    """Steps 2-4 above; safe to repeat, and to run twice at once (only one notifies). True if this
    call notified."""
    if job.notified_at is not None or not job.status.is_final:
        return False
    now = deps.clock.now()
    # A short claim, so that two invocations finding the same unnotified job (a duplicate S3 event, a
    # redelivered completion message, the poller's safety net) do not both publish. A claimant that dies
    # leaves the claim to expire after notify_grace_s; the job's notify due item stays until then.
    if not deps.store.claim_notification(job.job_id, now=now, until=now + deps.timing.notify_grace_s):
        return False
    settings = deps.settings
    if job.error is not None:
        report = error_report(job, job.error)
        inbox_key = f"{settings.inbox_prefix}{job.job_name}/error.json"
        if len(inbox_key.encode()) <= MAX_S3_KEY_BYTES:
            deps.blobs.put_json(settings.inbox_bucket, inbox_key, report)
        if job.error.code != UNSAFE_NAME_CODE:
            deps.blobs.put_json(settings.output_bucket, results_prefix(deps, job) + "error.json", report)
    if not job.announce:
        # a film's shot: its film's event tells of it (per-shot events only if film.json asks)
        deps.store.mark_notified(job.job_id, deps.clock.now())
        return True
    payload = event_data(deps, job)
    event_type = _EVENT_TYPES.get(job.status, FAILED_EVENT)
    deps.notifier.publish(
        Notification(
            event_type=event_type,
            job_name=job.job_name,
            status=job.status,
            model=job.model,
            timestamp=iso(deps.clock.now()) or "",
            data=payload,
        )
    )
    count("NotificationsPublished")
    url = job.spec.webhook_url if job.spec and job.spec.webhook_url else settings.default_webhook_url
    if url:
        webhook_delivery.start(deps, job, event_type, payload, url)
    deps.store.mark_notified(job.job_id, deps.clock.now())
    logger.info(
        "job notified",
        extra={
            "job_id": job.job_id,
            "status": job.status.value,
            "event_type": event_type,
            "code": job.error.code if job.error else None,
        },
    )
    return True


def announce(
    deps: Deps,
    event_type: str,
    *,
    subject_id: str,
    status: StrEnum,
    job_name: str,
    payload: dict[str, Any],
) -> None:
    """An event about the deployment rather than one job's end (``budget.reached``): SNS, and the
    deployment's default webhook (one delivery per ``subject_id`` and ``status``, so a repeat is not
    delivered twice)."""
    deps.notifier.publish(
        Notification(
            event_type=event_type,
            job_name=job_name,
            status=status,
            model=None,
            timestamp=iso(deps.clock.now()) or "",
            data=payload,
        )
    )
    count("NotificationsPublished")
    if deps.settings.default_webhook_url:
        webhook_delivery.start_for(
            deps, subject_id, status.value, event_type, payload, deps.settings.default_webhook_url
        )


def event_data(deps: Deps, job: Job) -> dict[str, Any]:
    settings = deps.settings
    data: dict[str, Any] = {
        "job": job.job_name,
        "job_id": job.job_id,
        "status": job.status.value,
        "model": job.model,
        "resolution": job.spec.resolution if job.spec else None,
        "task_id": job.task_id,
        "prompt": job.spec.prompt if job.spec else None,
        "actual_prompt": job.provider.get("actual_prompt"),
        "timings": {
            "dropped_at": iso(job.created_at),
            "submitted_at": iso(job.submitted_at),
            "provider_submit_time": job.provider.get("submit_time"),
            "provider_scheduled_time": job.provider.get("scheduled_time"),
            "provider_end_time": job.provider.get("end_time"),
            "finished_at": iso(job.finished_at),
        },
        "usage": job.provider.get("usage"),
        "billed_seconds": job.provider.get("billed_seconds"),
        **video_facts(job),
        "cost": costs.cost_data(job, settings.provider_region, settings.report_rate),
    }
    if job.status is JobStatus.STORED and job.video_key:
        ttl = settings.webhook_link_ttl_s
        data["video"] = {
            "bucket": settings.output_bucket,
            "key": job.video_key,
            "size_bytes": job.video_bytes,
            "width": job.expected_size[0] if job.expected_size else None,
            "height": job.expected_size[1] if job.expected_size else None,
            "url": deps.blobs.presign_get(settings.output_bucket, job.video_key, ttl),
            "url_expires_at": iso(deps.clock.now() + ttl),
        }
        data["metadata_key"] = results_prefix(deps, job) + "metadata.json"
        # the pictures, when the completion made them (the job records their keys with STORED)
        if job.poster_key:
            data["poster_url"] = deps.blobs.presign_get(settings.output_bucket, job.poster_key, ttl)
        if job.contact_sheet_key:
            data["contact_sheet_url"] = deps.blobs.presign_get(
                settings.output_bucket, job.contact_sheet_key, ttl
            )
    if job.error:
        data["error"] = job.error.to_dict()
    if job.cancel_requested_at is not None:
        # asked to cancel: when, which way, and what it did ("running": too late, paid and stored)
        data["cancel"] = {
            "requested_at": iso(job.cancel_requested_at),
            "source": job.cancel_source,
            "answer": job.cancel_answer,
        }
    return {k: v for k, v in data.items() if v is not None}
