"""The jobs table (DynamoDB): job records, provider slots, the submit lease, and the due index.

One table, key ``pk``. Item kinds, by key prefix:
    job#<job_id>      a job (one run of a drop folder)
    drop#<job_name>   an incomplete drop folder waiting to be completed or rejected
    slot#<model>      provider slots in use for a model (admission control)
    lock#submit       the one open submit lease per provider account (makes orphan reconciliation exact)
    task#<task_id>    which job owns a provider task (tells our tasks from foreign ones)
    hook#<event_id>   a webhook delivery and its attempts

Everything the poller must act on later carries ``due_kind`` / ``due_at``: the sparse ``due-index``
holds only those items, so a poll cycle reads what is due and nothing else (no Scan, ever).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from inbetween.domain.models import DueKind, Job, JobStatus
from inbetween.errors import InbetweenError

DUE_INDEX = "due-index"
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class StoreUnavailable(InbetweenError):
    retryable = True


def due_stamp(at: float) -> str:
    """Sortable string form of a due time (epoch milliseconds, zero padded)."""
    return f"{max(0, int(at * 1000)):015d}"


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _ser(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items() if v is not None}


def _deser(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def job_key(job_id: str) -> str:
    return f"job#{job_id}"


class Transition:
    """A conditional update of one job, optionally with a slot taken or given back in the same transaction."""

    def __init__(
        self, job_id: str, expected: JobStatus | tuple[JobStatus, ...], new_status: JobStatus | None
    ):
        self.job_id = job_id
        self.expected = expected if isinstance(expected, tuple) else (expected,)
        self.new_status = new_status
        self.sets: dict[str, Any] = {}
        self.removes: list[str] = []
        self.due: tuple[str, float] | None = None
        self.clear_due = False
        self.slot_model: str | None = None
        self.slot_delta = 0
        self.slot_limit = 0
        self.extra_condition: tuple[str, dict[str, Any]] | None = None
        self.adds: dict[str, int] = {}

    def set(self, **values: Any) -> Transition:
        self.sets.update(values)
        return self

    def remove(self, *names: str) -> Transition:
        self.removes.extend(names)
        return self

    def add(self, **values: int) -> Transition:
        self.adds.update(values)
        return self

    def schedule(self, kind: str, at: float) -> Transition:
        self.due = (kind, at)
        return self

    def unschedule(self) -> Transition:
        self.clear_due = True
        return self

    def take_slot(self, model: str, limit: int) -> Transition:
        self.slot_model, self.slot_delta, self.slot_limit = model, 1, limit
        return self

    def release_slot(self, model: str) -> Transition:
        self.slot_model, self.slot_delta = model, -1
        return self


class JobStore:
    def __init__(self, client: Any, table_name: str, *, clock=time.time):
        self._db = client
        self._table = table_name
        self._clock = clock

    # ---- reads -------------------------------------------------------------------------------------------
    def get_item(self, pk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        resp = self._call(
            self._db.get_item, TableName=self._table, Key=_ser({"pk": pk}), ConsistentRead=consistent
        )
        return _deser(resp["Item"]) if "Item" in resp else None

    def get_job(self, job_id: str) -> Job | None:
        item = self.get_item(job_key(job_id))
        return Job.from_item(item) if item else None

    def due_items(self, kind: str, now: float, limit: int = 100) -> list[dict[str, Any]]:
        """Items of one kind whose due time has passed, oldest first; reads only what it returns."""
        resp = self._call(
            self._db.query,
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_kind = :k AND due_at <= :now",
            ExpressionAttributeValues=_ser({":k": kind, ":now": due_stamp(now)}),
            Limit=limit,
        )
        return [_deser(i) for i in resp.get("Items", [])]

    def next_due_at(self, kind: str) -> float | None:
        resp = self._call(
            self._db.query,
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_kind = :k",
            ExpressionAttributeValues=_ser({":k": kind}),
            Limit=1,
        )
        items = resp.get("Items", [])
        return int(_deser(items[0])["due_at"]) / 1000 if items else None

    # ---- jobs --------------------------------------------------------------------------------------------
    def create_job(self, item: dict[str, Any], *, due: tuple[str, float] | None = None) -> bool:
        """Insert a job unless a job with this id exists (a duplicate event). True if inserted."""
        item = dict(item, pk=job_key(item["job_id"]))
        if due:
            item["due_kind"], item["due_at"] = due[0], due_stamp(due[1])
        return self._conditional(
            self._db.put_item,
            TableName=self._table,
            Item=_ser(item),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def apply(self, tr: Transition) -> bool:
        """Apply a transition; False when its condition no longer holds (someone else moved the job,
        or no slot is free). Slot changes and the job change commit together or not at all."""
        now = self._clock()
        names: dict[str, str] = {"#status": "status"}
        values: dict[str, Any] = {":now": now}
        sets = ["updated_at = :now"]
        removes = list(tr.removes)
        if tr.new_status is not None:
            sets.append("#status = :new")
            values[":new"] = tr.new_status.value
        for i, (name, value) in enumerate(tr.sets.items()):
            names[f"#s{i}"] = name
            if value is None:
                removes.append(f"#s{i}")
            else:
                values[f":s{i}"] = value
                sets.append(f"#s{i} = :s{i}")
        if tr.due:
            sets += ["due_kind = :dk", "due_at = :da"]
            values[":dk"], values[":da"] = tr.due[0], due_stamp(tr.due[1])
        elif tr.clear_due:
            removes += ["due_kind", "due_at"]
        expected = [f":e{i}" for i in range(len(tr.expected))]
        for placeholder, status in zip(expected, tr.expected, strict=True):
            values[placeholder] = status.value
        condition = f"#status IN ({', '.join(expected)})"
        if tr.extra_condition:
            condition += f" AND ({tr.extra_condition[0]})"
            values.update(tr.extra_condition[1])
        expression = "SET " + ", ".join(sets)
        if tr.adds:
            expression += " ADD " + ", ".join(f"{k} :a_{k}" for k in tr.adds)
            values.update({f":a_{k}": v for k, v in tr.adds.items()})
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        update = {
            "TableName": self._table,
            "Key": _ser({"pk": job_key(tr.job_id)}),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _ser(values),
        }
        if not tr.slot_model:
            return self._conditional(self._db.update_item, **update)
        slot_update = self._slot_update(tr.slot_model, tr.slot_delta, tr.slot_limit)
        return self._conditional(
            self._db.transact_write_items, TransactItems=[{"Update": update}, {"Update": slot_update}]
        )

    def _slot_update(self, model: str, delta: int, limit: int) -> dict[str, Any]:
        if delta > 0:
            condition = "attribute_not_exists(in_flight) OR in_flight < :limit"
            values = {":d": delta, ":limit": limit}
        else:
            condition = "in_flight > :zero"
            values = {":d": delta, ":zero": 0}
        return {
            "TableName": self._table,
            "Key": _ser({"pk": f"slot#{model}"}),
            "UpdateExpression": "ADD in_flight :d",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": _ser(values),
        }

    def slots_in_use(self, model: str) -> int:
        item = self.get_item(f"slot#{model}")
        return int(item.get("in_flight", 0)) if item else 0

    # ---- submit lease ------------------------------------------------------------------------------------
    def acquire_submit_lease(self, holder: str, lease_s: float) -> dict[str, Any] | None:
        """Take the one submit lease of the account, or None while someone else holds it."""
        now = self._clock()
        try:
            resp = self._call(
                self._db.update_item,
                TableName=self._table,
                Key=_ser({"pk": "lock#submit"}),
                UpdateExpression="SET holder = :h, lease_until = :until, acquired_at = :now",
                ConditionExpression="attribute_not_exists(holder) OR lease_until < :now",
                ExpressionAttributeValues=_ser({":h": holder, ":until": now + lease_s, ":now": now}),
                ReturnValues="ALL_NEW",
            )
            return _deser(resp["Attributes"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise

    def extend_submit_lease(
        self, holder: str, lease_s: float, *, next_submit_at: float | None = None
    ) -> bool:
        now = self._clock()
        values: dict[str, Any] = {":h": holder, ":until": now + lease_s}
        expression = "SET lease_until = :until"
        if next_submit_at is not None:
            expression += ", next_submit_at = :nsa"
            values[":nsa"] = next_submit_at
        return self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": "lock#submit"}),
            UpdateExpression=expression,
            ConditionExpression="holder = :h",
            ExpressionAttributeValues=_ser(values),
        )

    def release_submit_lease(self, holder: str) -> None:
        self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": "lock#submit"}),
            UpdateExpression="REMOVE holder, lease_until, acquired_at",
            ConditionExpression="holder = :h",
            ExpressionAttributeValues=_ser({":h": holder}),
        )

    # ---- small items -------------------------------------------------------------------------------------
    def put_item(self, item: dict[str, Any], *, only_if_absent: bool = False) -> bool:
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": _ser(item)}
        if only_if_absent:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
        return self._conditional(self._db.put_item, **kwargs)

    def update_item(
        self,
        pk: str,
        *,
        sets: dict[str, Any] | None = None,
        due: tuple[str, float] | None = None,
        clear_due: bool = False,
        condition: str | None = None,
        values: dict[str, Any] | None = None,
        adds: dict[str, int] | None = None,
    ) -> bool:
        names: dict[str, str] = {}
        vals: dict[str, Any] = dict(values or {})
        parts: list[str] = []
        for i, (name, value) in enumerate((sets or {}).items()):
            names[f"#u{i}"] = name
            vals[f":u{i}"] = value
            parts.append(f"#u{i} = :u{i}")
        if due:
            parts += ["due_kind = :dk", "due_at = :da"]
            vals[":dk"], vals[":da"] = due[0], due_stamp(due[1])
        expression = ("SET " + ", ".join(parts)) if parts else ""
        if adds:
            expression += " ADD " + ", ".join(f"{k} :add_{k}" for k in adds)
            vals.update({f":add_{k}": v for k, v in adds.items()})
        if clear_due:
            expression += " REMOVE due_kind, due_at"
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": _ser({"pk": pk}),
            "UpdateExpression": expression.strip(),
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if vals:
            kwargs["ExpressionAttributeValues"] = _ser(vals)
        if condition:
            kwargs["ConditionExpression"] = condition
        return self._conditional(self._db.update_item, **kwargs)

    def delete_item(self, pk: str) -> None:
        self._call(self._db.delete_item, TableName=self._table, Key=_ser({"pk": pk}))

    def record_task(self, task_id: str, job_id: str) -> None:
        self.put_item({"pk": f"task#{task_id}", "job_id": job_id, "created_at": self._clock()})

    def job_for_task(self, task_id: str) -> str | None:
        item = self.get_item(f"task#{task_id}", consistent=False)
        return item["job_id"] if item else None

    def recent_jobs(self, limit: int = 50) -> list[Job]:
        """For the CLI only: a bounded Scan of job items (never used by the pipeline itself)."""
        resp = self._call(
            self._db.scan,
            TableName=self._table,
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues=_ser({":p": "job#"}),
        )
        jobs = [Job.from_item(_deser(i)) for i in resp.get("Items", [])]
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        return jobs[:limit]

    # ---- plumbing ----------------------------------------------------------------------------------------
    def _conditional(self, fn, *args, **kwargs) -> bool:
        """A write that may lose to a concurrent one: False when its condition (or transaction) failed."""
        try:
            self._call(fn, *args, **kwargs)
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] in (
                "ConditionalCheckFailedException",
                "TransactionCanceledException",
            ):
                return False
            raise

    @staticmethod
    def _call(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in (
                "ProvisionedThroughputExceededException",
                "ThrottlingException",
                "RequestLimitExceeded",
                "InternalServerError",
            ):
                raise StoreUnavailable(f"DynamoDB is throttling or unavailable: {code}") from exc
            raise


__all__ = ["DUE_INDEX", "DueKind", "JobStore", "StoreUnavailable", "Transition", "due_stamp", "job_key"]
