"""Provider push: Model Studio's "task finished" events, forwarded by Alibaba Cloud EventBridge to our URL.

The event (CloudEvents 1.0, ``source`` ``acs.dashscope``, ``type`` ``dashscope:System:AsyncTaskFinish``)
carries a task id and its final status but no video link, so an event only says *look now*: the job goes
down the poller's own path (``inbetween.usecases.task_checks.observe_task``: one task query, then the completion queue
or the final state). The poller stays as the safety net: with push on it checks only tasks whose event
is overdue.

Request handling, in order (every step answers before any work of the next):
1. Authentication: the shared secret (Secrets Manager, ``PUSH_SECRET_NAME``) in the
   ``x-inbetween-token`` header or, for targets that cannot set headers, the ``token`` query parameter,
   compared in constant time. Missing or wrong: 401. The EventBridge signature headers are not checked
   (verifying them needs the signer's public key fetched from an OSS URL at run time and an RSA library
   the layer does not carry); the secret is the authentication.
2. POST only (405), body at most ``MAX_BODY_BYTES`` (413).
3. Malformed (not JSON, not an object, no ``data.task_id``): 400, so a broken sender hears about it.
   Well-formed but not ours (another source or type, another region, a model we do not use, a task id
   the table does not know): 200 with the reason, so the bus does not retry it forever.
4. Ours: a short claim on the job (one conditional write) so duplicate deliveries arriving together
   make one task query, not several; then ``observe_task``. A job that is no longer waiting on its task
   (handled by an earlier event or by the poller) is left alone: duplicates and stale, out-of-order
   events change nothing.

An event for a task the table does not know *yet* (the create's answer and our record of it race the
event; or an orphan task that reconciliation is about to adopt) leaves a short-lived hint
(``early#<task_id>``, due in the index); the poller looks the task id up again for a while and, once the
task is ours, checks it at once instead of waiting for the overdue check.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from inbetween.deps import Deps
from inbetween.domain.catalog import model_spec
from inbetween.domain.models import DueKind, EarlyEvent, Job, JobStatus, Transition
from inbetween.errors import ConfigError
from inbetween.observability import count, logger
from inbetween.ports import SecretSource
from inbetween.usecases.task_checks import CheckOutcome, observe_task

EVENT_SOURCE = "acs.dashscope"
EVENT_TYPE = "dashscope:System:AsyncTaskFinish"
TOKEN_HEADER = "x-inbetween-token"  # noqa: S105 - the name of the header, not its value
TOKEN_QUERY = "token"  # noqa: S105 - the name of the parameter, not its value
MAX_BODY_BYTES = 64 * 1024
# duplicates delivered together: the first takes the job for this long, the others answer "duplicate"
CLAIM_S = 30.0
# hints for task ids not (yet) in the table: looked up again every EARLY_RECHECK_S for EARLY_MAX_AGE_S,
# which covers the submit lease and the reconciliation of an orphan task
EARLY_RECHECK_S = 5.0
EARLY_MAX_AGE_S = 900.0


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    headers: Mapping[str, str]  # names in lower case
    query: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:  # never show the token (header or query)
        return f"HttpRequest(method={self.method!r}, body_bytes={len(self.body)})"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    outcome: str

    def to_lambda(self) -> dict[str, Any]:
        """A Lambda function URL (payload 2.0) response."""
        return {
            "statusCode": self.status,
            "headers": {"content-type": "application/json"},
            "body": json.dumps({"outcome": self.outcome}),
        }


@dataclass(frozen=True, slots=True)
class TaskFinished:
    event_id: str
    task_id: str
    task_status: str
    model: str | None  # the last part of data.user_api_unique_key
    region: str | None
    end_time: str | None


class MalformedEvent(ValueError):
    pass


# ---------------------------------------------------------------------------------------------- parsing
def request_from_function_url(event: Mapping[str, Any]) -> HttpRequest:
    """A Lambda function URL (or HTTP API, payload format 2.0) event as a request."""
    raw = event.get("body") or ""
    if len(raw) > MAX_BODY_BYTES * 4 // 3 + 4:  # oversize whatever the encoding: refuse before decoding
        body = b"\0" * (MAX_BODY_BYTES + 1)
    elif event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=True)
        except ValueError:
            body = b""
    else:
        body = raw.encode()
    http = (event.get("requestContext") or {}).get("http") or {}
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    return HttpRequest(method=str(http.get("method", "")).upper(), headers=headers, query=query, body=body)


def parse_event(body: bytes) -> TaskFinished | None:
    """The task-finished event in ``body``; None if it is a well-formed event of another kind.
    Raises ``MalformedEvent`` when ``body`` is not a CloudEvent at all."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedEvent("the body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedEvent("the body is not a JSON object")
    source, kind = data.get("source"), data.get("type")
    if not isinstance(source, str) or not isinstance(kind, str):
        raise MalformedEvent("the event has no source or type")
    if source != EVENT_SOURCE or kind != EVENT_TYPE:
        return None
    payload = data.get("data")
    if not isinstance(payload, dict):
        raise MalformedEvent("the event has no data object")
    task_id = payload.get("task_id")
    if not isinstance(task_id, str) or not task_id.strip() or len(task_id) > 128:
        raise MalformedEvent("the event has no task id")
    unique_key = payload.get("user_api_unique_key")
    model = unique_key.rsplit(":", 1)[-1] if isinstance(unique_key, str) and ":" in unique_key else None
    region = payload.get("region") or data.get("aliyunregionid")
    return TaskFinished(
        event_id=str(data.get("id", "")),
        task_id=task_id.strip(),
        task_status=str(payload.get("task_status", "")),
        model=model,
        region=str(region) if region else None,
        end_time=str(payload["end_time"]) if payload.get("end_time") else None,
    )


class PushOutcome(StrEnum):
    """What one event of ours led to, besides a task check's own outcome."""

    OTHER_REGION = "ignored: another region"
    OTHER_MODEL = "ignored: a model this pipeline does not use"
    UNKNOWN_TASK = "unknown task: the poller follows up"
    NO_JOB = "ignored: no job waits on this task"
    ALREADY_HANDLED = "already handled"
    DUPLICATE = "duplicate"


# ---------------------------------------------------------------------------------------------- handling
def authenticate(request: HttpRequest, secret: SecretSource) -> str | None:
    """None when the request carries the secret; otherwise why not ("missing" or "wrong")."""
    presented = request.headers.get(TOKEN_HEADER) or request.query.get(TOKEN_QUERY) or ""
    if not presented:
        return "missing"
    expected = secret()
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        return "wrong"
    return None


def handle_request(deps: Deps, request: HttpRequest) -> HttpResponse:
    try:
        refused = authenticate(request, deps.push_secret)
    except ConfigError:
        logger.error("push secret unreadable: every event is refused until it is fixed")
        count("PushRejected")
        return HttpResponse(503, "unavailable")
    if refused is not None:
        logger.warning("push request refused", extra={"reason": f"{refused} token"})
        count("PushRejected")
        return HttpResponse(401, "unauthorized")
    if request.method != "POST":
        return HttpResponse(405, "method not allowed")
    if len(request.body) > MAX_BODY_BYTES:
        count("PushRejected")
        return HttpResponse(413, "body too large")
    try:
        event = parse_event(request.body)
    except MalformedEvent as exc:
        logger.warning("malformed push event", extra={"reason": str(exc)})
        count("PushMalformed")
        return HttpResponse(400, str(exc))
    if event is None:
        count("PushIgnored")
        return HttpResponse(200, "ignored: not a task-finished event")
    count("PushEvents")
    outcome = on_task_finished(deps, event)
    logger.info(
        "push event", extra={"task_id": event.task_id, "event_id": event.event_id, "outcome": outcome}
    )
    return HttpResponse(200, outcome)


def on_task_finished(deps: Deps, event: TaskFinished) -> PushOutcome | CheckOutcome:
    """What one task-finished event leads to; safe to repeat and to receive out of order."""
    settings = deps.settings
    if event.region and event.region != settings.provider_region:
        count("PushIgnored")
        return PushOutcome.OTHER_REGION
    if event.model is not None and model_spec(event.model) is None:
        count("PushIgnored")
        return PushOutcome.OTHER_MODEL
    job_id = deps.store.job_for_task(event.task_id)
    if job_id is None:
        now = deps.clock.now()
        hint = EarlyEvent(
            task_id=event.task_id,
            received_at=now,
            recheck_at=now + EARLY_RECHECK_S,
            expires_at=now + 2 * EARLY_MAX_AGE_S,
        )
        if deps.store.note_early_event(hint):
            count("PushUnknownTasks")
        return PushOutcome.UNKNOWN_TASK
    job = deps.store.get_job(job_id)
    if job is None or job.task_id != event.task_id:
        return PushOutcome.NO_JOB
    if job.status is not JobStatus.SUBMITTED:
        count("PushStale")
        return PushOutcome.ALREADY_HANDLED
    if not _claim(deps, job, event):
        count("PushDuplicates")
        return PushOutcome.DUPLICATE
    outcome = observe_task(deps, job)
    if outcome is CheckOutcome.FINISHED and job.model:
        # the task's slot is free: the next waiting job should not wait for the poller's next tick
        deps.queues.admit_waiting(job.model)
    return outcome


def _claim(deps: Deps, job: Job, event: TaskFinished) -> bool:
    now = deps.clock.now()
    return deps.store.apply(
        Transition.of(job.job_id, JobStatus.SUBMITTED)
        .set(push_claim_until=now + CLAIM_S, push_event_id=event.event_id or None, push_received_at=now)
        .unless_push_claimed(now)
    )


def follow_up_early_events(deps: Deps, limit: int = 20) -> int:
    """Poller: hints whose task became ours get checked now; old hints (foreign tasks) are dropped."""
    moved = 0
    for hint in deps.store.due_early_events(deps.clock.now(), limit=limit):
        now = deps.clock.now()
        job_id = deps.store.job_for_task(hint.task_id)
        if job_id is not None:
            job = deps.store.get_job(job_id)
            if job is not None and job.status is JobStatus.SUBMITTED and job.task_id == hint.task_id:
                moved += deps.store.postpone(job_id, DueKind.POLL, now)
            deps.store.forget_early_event(hint.task_id)
        elif now - hint.received_at > EARLY_MAX_AGE_S:
            deps.store.forget_early_event(hint.task_id)  # not ours after all (another program on the account)
        else:
            deps.store.recheck_early_event(hint.task_id, now + EARLY_RECHECK_S)
    return moved


__all__ = [
    "EVENT_SOURCE",
    "EVENT_TYPE",
    "MAX_BODY_BYTES",
    "TOKEN_HEADER",
    "HttpRequest",
    "HttpResponse",
    "MalformedEvent",
    "PushOutcome",
    "TaskFinished",
    "follow_up_early_events",
    "handle_request",
    "on_task_finished",
    "parse_event",
    "request_from_function_url",
]
