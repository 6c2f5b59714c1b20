"""Typed views of the messages our functions receive (SQS bodies: S3 notifications and our own)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


@dataclass(frozen=True, slots=True)
class ObjectCreated:
    bucket: str
    key: str


@dataclass(frozen=True, slots=True)
class ObjectRemoved:
    """A delete in the inbox (``ObjectRemoved:Delete``, or ``ObjectRemoved:DeleteMarkerCreated`` in a
    versioned bucket): a job or film whose input it was is cancelled."""

    bucket: str
    key: str


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """``inbetween cancel TARGET``: a job id, a film run id, or an inbox folder's name."""

    target: str


@dataclass(frozen=True, slots=True)
class RecheckDrop:
    job_name: str


@dataclass(frozen=True, slots=True)
class AdmitWaiting:
    model: str
    lane: int = 0  # the submit lane to admit through (a holder filling a burst wakes the next one)


@dataclass(frozen=True, slots=True)
class CompleteJob:
    job_id: str


@dataclass(frozen=True, slots=True)
class DeliverWebhook:
    delivery_id: str


@dataclass(frozen=True, slots=True)
class StitchFilm:
    run_id: str


class MalformedMessage(ValueError):
    pass


def _json(body: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"message body is not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise MalformedMessage("message body is not a JSON object")
    return data


IntakeItem = ObjectCreated | ObjectRemoved | RecheckDrop | AdmitWaiting | CancelRequest
CANCEL_MESSAGE = "cancel"


def cancel_message(target: str) -> str:
    """The intake-queue message ``inbetween cancel`` sends (the submit function, holding the provider
    key, carries it out)."""
    return json.dumps({"inbetween": CANCEL_MESSAGE, "target": target})


def intake_items(body: str) -> list[IntakeItem]:
    """An intake-queue message: an S3 notification (possibly several records: objects created or
    removed), S3's test event (no records: nothing to do), our own delayed re-check of a settling drop
    folder, our own nudge to admit waiting jobs after a push event freed a slot, or a cancel request."""
    data = _json(body)
    if data.get("inbetween") == "settle":
        return [RecheckDrop(job_name=str(data["job_name"]))]
    if data.get("inbetween") == "admit":
        return [AdmitWaiting(model=str(data["model"]), lane=int(data.get("lane", 0) or 0))]
    if data.get("inbetween") == CANCEL_MESSAGE:
        target = data.get("target")
        if not isinstance(target, str) or not target:
            raise MalformedMessage("a cancel message needs a target (a job id, a film run id or a name)")
        return [CancelRequest(target=target)]
    items: list[IntakeItem] = []
    for record in data.get("Records", []) or []:
        event = str(record.get("eventName", ""))
        if not event.startswith(("ObjectCreated", "ObjectRemoved")):
            continue
        s3 = record.get("s3", {})
        # keys arrive URL-encoded ("red+flower.png"); moto also encodes "/" as %2F
        bucket, key = s3["bucket"]["name"], unquote_plus(s3["object"]["key"])
        items.append(
            ObjectCreated(bucket, key) if event.startswith("ObjectCreated") else ObjectRemoved(bucket, key)
        )
    return items


def completion_item(body: str) -> CompleteJob | DeliverWebhook:
    data = _json(body)
    if data.get("kind") == "complete":
        return CompleteJob(job_id=str(data["job_id"]))
    if data.get("kind") == "webhook":
        return DeliverWebhook(delivery_id=str(data["delivery_id"]))
    raise MalformedMessage(f"unknown completion message kind {data.get('kind')!r}")


def stitch_item(body: str) -> StitchFilm:
    data = _json(body)
    if data.get("kind") == "stitch" and data.get("run_id"):
        return StitchFilm(run_id=str(data["run_id"]))
    raise MalformedMessage(f"unknown stitch message kind {data.get('kind')!r}")
