"""How a job ends: the final state, the error report next to the inputs, and the notifications.

Order, so that nothing is lost and nothing is said twice:
  1. the job moves to its final state by a conditional write that also schedules a ``notify`` due item;
  2. error.json (failures) is written next to the inputs and under the results prefix;
  3. SNS is published and the webhook delivery is recorded (its first attempt made at once);
  4. the job is marked notified and its due item removed.
A crash after 1 leaves the due item: the poller finishes 2-4 later. A redelivered message that finds the
job notified does nothing.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from inbetween import webhooks
from inbetween.aws.jobs_table import Transition, job_key
from inbetween.deps import Deps
from inbetween.domain.models import DueKind, ErrorInfo, Job, JobStatus
from inbetween.errors import InvalidJob
from inbetween.observability import count, logger, seconds

SUCCEEDED_EVENT = "video.generation.succeeded"
FAILED_EVENT = "video.generation.failed"


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


def finish(
    deps: Deps,
    job: Job,
    status: JobStatus,
    *,
    expected: JobStatus | tuple[JobStatus, ...],
    error: ErrorInfo | None = None,
    release_slot: bool = False,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Move ``job`` to a final ``status`` (once), then report and notify. False if someone else did."""
    now = deps.clock()
    tr = Transition(job.job_id, expected, status).set(finished_at=now, **(extra or {}))
    if error:
        tr.set(error=error.to_dict())
    tr.schedule(DueKind.NOTIFY.key(), now + deps.timing.notify_grace_s)
    if release_slot and job.model:
        tr.release_slot(job.model)
    if not deps.store.apply(tr):
        return False
    count({JobStatus.STORED: "JobsStored", JobStatus.REJECTED: "JobsRejected"}.get(status, "JobsFailed"))
    seconds("PipelineTotalTime", now - job.created_at)
    final = deps.store.get_job(job.job_id)
    if final is not None:
        report_and_notify(deps, final)
    return True


def report_and_notify(deps: Deps, job: Job) -> None:
    """Steps 2-4 above; safe to repeat, and to run twice at once (only one notifies)."""
    if job.notified_at is not None or not job.status.is_final:
        return
    if not _claim_notification(deps, job):
        return  # another invocation is notifying now; if it dies, the poller's notify item retries
    settings = deps.settings
    if job.error is not None:
        report = error_report(job, job.error)
        inbox_key = f"{settings.inbox_prefix}{job.job_name}/error.json"
        if len(inbox_key.encode()) <= 1024:
            deps.blobs.put_json(settings.inbox_bucket, inbox_key, report)
        if job.error.code != "InvalidJobName":  # such a name has no safe results prefix
            deps.blobs.put_json(settings.output_bucket, results_prefix(deps, job) + "error.json", report)
    payload = event_data(deps, job)
    event_type = SUCCEEDED_EVENT if job.status is JobStatus.STORED else FAILED_EVENT
    publish_sns(deps, job, event_type, payload)
    url = job.spec.webhook_url if job.spec and job.spec.webhook_url else settings.default_webhook_url
    if url:
        start_webhook(deps, job, event_type, payload, url)
    deps.store.update_item(
        job_key(job.job_id),
        sets={"notified_at": deps.clock()},
        clear_due=True,
        condition="attribute_not_exists(notified_at)",
    )
    logger.info("job notified", extra={"job_id": job.job_id, "status": job.status.value})


def _claim_notification(deps: Deps, job: Job) -> bool:
    """A short claim, so that two invocations finding the same unnotified job (a duplicate S3 event, a
    redelivered completion message, the poller's safety net) do not both publish. A claimant that dies
    leaves the claim to expire after ``notify_grace_s``; the job's notify due item stays until then."""
    now = deps.clock()
    return deps.store.update_item(
        job_key(job.job_id),
        sets={"notify_claimed_until": now + deps.timing.notify_grace_s},
        condition="attribute_not_exists(notified_at) AND "
        "(attribute_not_exists(notify_claimed_until) OR notify_claimed_until < :claim_now)",
        values={":claim_now": now},
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
            "url_expires_at": iso(deps.clock() + ttl),
        }
        data["metadata_key"] = results_prefix(deps, job) + "metadata.json"
    if job.error:
        data["error"] = job.error.to_dict()
    return {k: v for k, v in data.items() if v is not None}


def _sns_subject(job: Job) -> str:
    # SNS subjects must be printable ASCII, under 100 characters
    name = "".join(c if 32 <= ord(c) < 127 else "?" for c in job.job_name)
    return f"inbetween: {name} {job.status.value.lower()}"[:99]


def publish_sns(deps: Deps, job: Job, event_type: str, payload: dict[str, Any]) -> None:
    attributes = {
        "event_type": event_type,
        "status": job.status.value,
        "model": job.model or "unknown",
    }
    deps.sns.publish(
        TopicArn=deps.settings.topic_arn,
        # SNS subjects must be ASCII without control characters, under 100 characters
        Subject=_sns_subject(job),
        Message=json.dumps({"type": event_type, "timestamp": iso(deps.clock()), "data": payload}),
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )
    count("NotificationsPublished")


def webhook_policy(deps: Deps) -> webhooks.AddressPolicy:
    local = deps.settings.allow_local_webhooks
    return webhooks.AddressPolicy(allow_loopback=local, allow_http=local)


def check_webhook_url_syntax(deps: Deps, url: str) -> None:
    """At intake: refuse a webhook_url that can never be delivered (scheme, literal private addresses).
    Name resolution is checked again, and pinned, at each delivery."""
    try:
        webhooks.check_webhook_url(url, webhook_policy(deps))
    except webhooks.UnsafeWebhookUrl:
        raise
    except OSError:
        return  # the name does not resolve right now; delivery will retry and report


def event_id(job: Job) -> str:
    return "msg_" + hashlib.sha256(f"{job.job_id}|{job.status.value}".encode()).hexdigest()[:26]


def start_webhook(deps: Deps, job: Job, event_type: str, payload: dict[str, Any], url: str) -> None:
    msg_id = event_id(job)
    body = webhooks.build_event(event_type, payload, occurred_at=datetime.fromtimestamp(deps.clock(), UTC))
    created = deps.store.put_item(
        {
            "pk": f"hook#{msg_id}",
            "job_id": job.job_id,
            "url": url,
            "body": body.decode(),
            "attempts": 0,
            "state": "pending",
            "created_at": deps.clock(),
        },
        only_if_absent=True,
    )
    if created:
        attempt_webhook(deps, msg_id)


def attempt_webhook(deps: Deps, msg_id: str) -> str:
    item = deps.store.get_item(f"hook#{msg_id}")
    if item is None or item.get("state") != "pending":
        return "nothing to do"
    attempts = int(item.get("attempts", 0))
    try:
        result = deps.webhooks.deliver(item["url"], msg_id, item["body"].encode(), now=deps.clock())
    except InvalidJob as exc:  # UnsafeWebhookUrl: never retried
        deps.store.update_item(
            f"hook#{msg_id}", sets={"state": "refused", "last_error": exc.message}, clear_due=True
        )
        count("WebhooksRefused")
        return "refused"
    now = deps.clock()
    if result.delivered:
        deps.store.update_item(
            f"hook#{msg_id}",
            sets={"state": "delivered", "delivered_at": now, "last_status": result.status_code or 0},
            adds={"attempts": 1},
            clear_due=True,
        )
        count("WebhooksDelivered")
        return "delivered"
    if result.gone:
        deps.store.update_item(f"hook#{msg_id}", sets={"state": "gone"}, adds={"attempts": 1}, clear_due=True)
        return "gone"
    delay = webhooks.next_retry_delay(attempts + 1, delays=deps.timing.webhook_retry_delays_s)
    if delay is None:
        deps.store.update_item(
            f"hook#{msg_id}",
            sets={"state": "exhausted", "last_error": result.error},
            adds={"attempts": 1},
            clear_due=True,
        )
        count("WebhooksExhausted")
        return "exhausted"
    if result.retry_after_s:
        delay = max(delay, result.retry_after_s)
    deps.store.update_item(
        f"hook#{msg_id}",
        sets={"last_error": result.error, "last_status": result.status_code or 0},
        adds={"attempts": 1},
        due=(DueKind.WEBHOOK.key(), now + delay),
    )
    count("WebhookRetriesScheduled")
    return "retry scheduled"
