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
class RecheckDrop:
    job_name: str


@dataclass(frozen=True, slots=True)
class AdmitWaiting:
    model: str


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


IntakeItem = ObjectCreated | RecheckDrop | AdmitWaiting


def intake_items(body: str) -> list[IntakeItem]:
    """An intake-queue message: an S3 notification (possibly several records), S3's test event (no
    records: nothing to do), our own delayed re-check of a settling drop folder, or our own nudge to
    admit waiting jobs after a push event freed a slot."""
    data = _json(body)
    if data.get("inbetween") == "settle":
        return [RecheckDrop(job_name=str(data["job_name"]))]
    if data.get("inbetween") == "admit":
        return [AdmitWaiting(model=str(data["model"]))]
    items: list[IntakeItem] = []
    for record in data.get("Records", []) or []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = record.get("s3", {})
        # keys arrive URL-encoded ("red+flower.png"); moto also encodes "/" as %2F
        items.append(ObjectCreated(bucket=s3["bucket"]["name"], key=unquote_plus(s3["object"]["key"])))
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
