"""The jobs table (DynamoDB): job records, provider slots, the submit leases, and the due index.

One table, key ``pk``. Item kinds, by key prefix (known only to this module):
    job#<job_id>      a job (one run of a drop folder)
    drop#<job_name>   an incomplete drop folder waiting to be completed or rejected
    slot#<model>      provider slots in use for a model (admission control)
    lock#submit       the submit lease of the account's lane (one API key: the only lane); one open
                      lease per lane makes orphan reconciliation exact
    lock#submit#<ref> the submit lease of one API key's lane (several keys: a lane each), and the
                      provider's api_key_id of that key once learnt (its tasks in the task list)
    task#<task_id>    which job owns a provider task (tells our tasks from foreign ones)
    hook#<event_id>   a webhook delivery, its attempts and its log
    endpoint#<id>     a webhook endpoint that has failed: its failing streak, whether it is paused
    early#<task_id>   a push event for a task not (yet) in the table
    film#<run_id>     a film run (a storyboard's shots, stitched into one video)
    folder#<name>     the runs of an inbox folder still in flight (a delete of its inputs cancels them)
    spend#<YYYY-MM>   a month's committed spend (micros) and when its budget.reached event went out
    budget#override   the monthly budget set by `inbetween budget set`, over the deployment's parameter

Everything the poller must act on later carries ``due_kind`` / ``due_at``: the sparse ``due-index``
holds only those items, so a poll cycle reads what is due and nothing else (no Scan, ever).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from inbetween.domain.costs import MonthSpend
from inbetween.domain.films import FILM_SETTABLE_FIELDS, FilmRun, FilmStatus
from inbetween.domain.models import (
    DeliveryLogEntry,
    DeliveryState,
    DueKind,
    EarlyEvent,
    Job,
    SubmitLease,
    Transition,
    WebhookAttempt,
    WebhookDelivery,
    item_value,
    plain,
)
from inbetween.domain.webhook_events import WebhookEndpoint, held_partition
from inbetween.errors import InbetweenError

DUE_INDEX = "due-index"
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_LOST_RACE = ("ConditionalCheckFailedException", "TransactionCanceledException")
_UNAVAILABLE = (
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
)


class StoreUnavailable(InbetweenError):
    retryable = True


def due_stamp(at: float) -> str:
    """Sortable string form of a due time (epoch milliseconds, zero padded)."""
    return f"{max(0, int(at * 1000)):015d}"


def _due_time(stamp: Any) -> float:
    return int(stamp) / 1000


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


def film_key(run_id: str) -> str:
    return f"film#{run_id}"


def _film_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """A film run's changes as the table stores them; a name outside ``FILM_SETTABLE_FIELDS`` is refused."""
    unknown = set(changes) - FILM_SETTABLE_FIELDS
    if unknown:
        raise ValueError(f"not a settable film run field: {', '.join(sorted(unknown))}")
    out = {}
    for name, value in changes.items():
        value = item_value(value)
        out[name] = value.value if isinstance(value, Enum) else value
    return out


_SUBMIT_LOCK = "lock#submit"


def _lease_key(lane: str) -> str:
    """The account's lane keeps the one lease item a single-key deployment always had."""
    return f"{_SUBMIT_LOCK}#{lane}" if lane else _SUBMIT_LOCK


_BUDGET_OVERRIDE = "budget#override"


class DynamoJobStore:
    """``inbetween.ports.JobStore`` on one DynamoDB table."""

    def __init__(self, client: Any, table_name: str, *, clock: Callable[[], float] = time.time):
        self._db = client
        self._table = table_name
        self._clock = clock

    # ---- jobs --------------------------------------------------------------------------------------------
    def get_job(self, job_id: str) -> Job | None:
        item = self._get(job_key(job_id))
        return Job.from_item(item) if item else None

    def add_job(self, job: Job, *, due: tuple[DueKind, float] | None = None) -> bool:
        item = dict(job.to_item(), pk=job_key(job.job_id))
        if due:
            kind, at = due
            item["due_kind"], item["due_at"] = kind.key(job.model), due_stamp(at)
        return self._put(item, only_if_absent=True)

    def due_jobs(self, kind: DueKind, now: float, *, model: str | None = None, limit: int = 100) -> list[Job]:
        return [
            Job.from_item(item)
            for item in self._due(kind.key(model), now, limit)
            if str(item.get("pk", "")).startswith("job#")
        ]

    def next_due_at(self, kind: DueKind) -> float | None:
        resp = self._call(
            self._db.query,
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_kind = :k",
            ExpressionAttributeValues=_ser({":k": kind.key()}),
            Limit=1,
        )
        items = resp.get("Items", [])
        return _due_time(_deser(items[0])["due_at"]) if items else None

    def postpone(self, job_id: str, kind: DueKind, at: float) -> bool:
        if kind is DueKind.ADMIT:
            raise ValueError("a waiting job keeps its place: ADMIT is never postponed")
        return self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": job_key(job_id)}),
            UpdateExpression="SET due_at = :at",
            ConditionExpression="due_kind = :kind",
            ExpressionAttributeValues=_ser({":at": due_stamp(at), ":kind": kind.value}),
        )

    def clear_due(self, job_id: str) -> None:
        self._clear_due(job_key(job_id))

    def slots_in_use(self, model: str) -> int:
        item = self._get(f"slot#{model}")
        return int(item.get("in_flight", 0)) if item else 0

    def claim_notification(self, job_id: str, *, now: float, until: float) -> bool:
        return self._claim_notification(job_key(job_id), now=now, until=until)

    def mark_notified(self, job_id: str, at: float) -> None:
        self._mark_notified(job_key(job_id), at)

    def recent_jobs(self, limit: int = 50) -> list[Job]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": _ser({":p": "job#"}),
        }
        items: list[dict[str, Any]] = []
        while True:  # every page: a month's spend (`inbetween spend`) sums all of its jobs
            resp = self._call(self._db.scan, **kwargs)
            items += resp.get("Items", [])
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        jobs = [Job.from_item(_deser(i)) for i in items]
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        return jobs[:limit]

    def apply(self, transition: Transition) -> bool:
        tr = transition
        now = self._clock()
        names: dict[str, str] = {"#status": "status"}
        values: dict[str, Any] = {":now": now}
        sets = ["updated_at = :now"]
        removes: list[str] = []
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
        expected = [f":e{i}" for i in range(len(tr.expected))]
        for placeholder, status in zip(expected, tr.expected, strict=True):
            values[placeholder] = status.value
        condition = f"#status IN ({', '.join(expected)})"
        if tr.push_unclaimed_at is not None:
            condition += " AND (attribute_not_exists(push_claim_until) OR push_claim_until < :claim_now)"
            values[":claim_now"] = tr.push_unclaimed_at
        if tr.spend_owner is not None:
            (owner,) = tr.spend_owner
            if owner is None:
                condition += " AND attribute_not_exists(spend_month)"
            else:
                condition += " AND spend_month = :spend_owner"
                values[":spend_owner"] = owner
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
        items = [{"Update": update}]
        if tr.slot_model:
            items.append({"Update": self._slot_update(tr.slot_model, tr.slot_delta, tr.slot_limit)})
        if tr.spend_month is not None and (tr.spend_delta or tr.spend_budget is not None):
            spend = self._spend_update(tr.spend_month, tr.spend_delta, tr.spend_budget)
            if spend is None:
                return False  # the estimate alone is over the budget
            items.append({"Update": spend})
        if len(items) == 1:
            return self._conditional(self._db.update_item, **update)
        return self._conditional(self._db.transact_write_items, TransactItems=items)

    def _spend_update(self, month: str, delta: int, budget: int | None) -> dict[str, Any] | None:
        """The month's committed spend plus ``delta``; with a budget, only if the sum stays within it
        (DynamoDB cannot add in a condition: "committed <= budget - delta" says the same)."""
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": _ser({"pk": f"spend#{month}"}),
            "UpdateExpression": "ADD committed :d",
            "ExpressionAttributeValues": _ser({":d": delta}),
        }
        if budget is not None:
            room = budget - delta
            if room < 0:
                return None
            update["ConditionExpression"] = "attribute_not_exists(committed) OR committed <= :room"
            update["ExpressionAttributeValues"] = _ser({":d": delta, ":room": room})
        return update

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

    # ---- the month's spend and the budget -----------------------------------------------------------------
    def month_spend(self, month: str) -> MonthSpend:
        item = plain(self._get(f"spend#{month}") or {})
        reached = item.get("reached_at")
        return MonthSpend(
            month, int(item.get("committed", 0)), float(reached) if reached is not None else None
        )

    def claim_budget_reached(self, month: str, at: float) -> bool:
        return self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": f"spend#{month}"}),
            UpdateExpression="SET reached_at = :at",
            ConditionExpression="attribute_not_exists(reached_at)",
            ExpressionAttributeValues=_ser({":at": at}),
        )

    def budget_override(self) -> int | None:
        item = self._get(_BUDGET_OVERRIDE)
        return int(item["amount"]) if item and "amount" in item else None

    def set_budget_override(self, amount_micros: int | None) -> None:
        if amount_micros is None:
            self._delete(_BUDGET_OVERRIDE)
        else:
            self._put({"pk": _BUDGET_OVERRIDE, "amount": amount_micros, "set_at": self._clock()})

    # ---- provider tasks ----------------------------------------------------------------------------------
    def record_task(self, task_id: str, job_id: str) -> None:
        self._put({"pk": f"task#{task_id}", "job_id": job_id, "created_at": self._clock()})

    def job_for_task(self, task_id: str) -> str | None:
        item = self._get(f"task#{task_id}", consistent=False)
        return str(item["job_id"]) if item else None

    # ---- submit lease ------------------------------------------------------------------------------------
    def acquire_submit_lease(self, holder: str, lease_s: float, *, lane: str = "") -> SubmitLease | None:
        now = self._clock()
        try:
            resp = self._call(
                self._db.update_item,
                TableName=self._table,
                Key=_ser({"pk": _lease_key(lane)}),
                UpdateExpression="SET holder = :h, lease_until = :until, acquired_at = :now",
                ConditionExpression="attribute_not_exists(holder) OR lease_until < :now",
                ExpressionAttributeValues=_ser({":h": holder, ":until": now + lease_s, ":now": now}),
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        old = plain(_deser(resp.get("Attributes") or {}))
        return SubmitLease(
            holder=holder,
            lease_until=now + lease_s,
            next_submit_at=float(old.get("next_submit_at", 0) or 0),
            expired_until=float(old["lease_until"]) if old.get("holder") and "lease_until" in old else None,
            lane=lane,
            api_key_id=str(old["api_key_id"]) if old.get("api_key_id") else None,
        )

    def extend_submit_lease(
        self, holder: str, lease_s: float, *, next_submit_at: float | None = None, lane: str = ""
    ) -> bool:
        values: dict[str, Any] = {":h": holder, ":until": self._clock() + lease_s}
        expression = "SET lease_until = :until"
        if next_submit_at is not None:
            expression += ", next_submit_at = :nsa"
            values[":nsa"] = next_submit_at
        return self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": _lease_key(lane)}),
            UpdateExpression=expression,
            ConditionExpression="holder = :h",
            ExpressionAttributeValues=_ser(values),
        )

    def release_submit_lease(self, holder: str, *, lane: str = "") -> None:
        self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": _lease_key(lane)}),
            UpdateExpression="REMOVE holder, lease_until, acquired_at",
            ConditionExpression="holder = :h",
            ExpressionAttributeValues=_ser({":h": holder}),
        )

    def remember_api_key_id(self, api_key_id: str, *, lane: str) -> None:
        # on the lane's lease item, whoever holds it: every holder then reads it with the lease
        self._call(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": _lease_key(lane)}),
            UpdateExpression="SET api_key_id = :id",
            ExpressionAttributeValues=_ser({":id": api_key_id}),
        )

    # ---- incomplete drop folders -------------------------------------------------------------------------
    def note_incomplete_drop(self, job_name: str, *, first_seen: float, settle_by: float) -> bool:
        item = {
            "pk": f"drop#{job_name}",
            "job_name": job_name,
            "first_seen": first_seen,
            "due_kind": DueKind.SETTLE.key(),
            "due_at": due_stamp(settle_by),
        }
        return self._put(item, only_if_absent=True)

    def forget_drop(self, job_name: str) -> None:
        self._delete(f"drop#{job_name}")

    def overdue_drops(self, now: float, limit: int = 50) -> list[str]:
        return [str(item["job_name"]) for item in self._due(DueKind.SETTLE.key(), now, limit)]

    # ---- the runs of an inbox folder still in flight ------------------------------------------------------
    def note_open_run(self, folder: str, run_id: str) -> None:
        self._call(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": f"folder#{folder}"}),
            UpdateExpression="ADD open_runs :run",
            ExpressionAttributeValues={":run": {"SS": [run_id]}},
        )

    def open_runs(self, folder: str) -> list[str]:
        item = self._get(f"folder#{folder}")
        return sorted(item.get("open_runs") or ()) if item else []

    def forget_open_run(self, folder: str, run_id: str) -> None:
        # only on an existing item: an update would otherwise create an empty one
        self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": f"folder#{folder}"}),
            UpdateExpression="DELETE open_runs :run",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":run": {"SS": [run_id]}},
        )

    # ---- webhook deliveries ------------------------------------------------------------------------------
    def add_webhook_delivery(self, delivery: WebhookDelivery) -> bool:
        item = dict(delivery.to_item(), pk=f"hook#{delivery.delivery_id}")
        if delivery.next_attempt_at is not None:
            item["due_kind"], item["due_at"] = DueKind.WEBHOOK.key(), due_stamp(delivery.next_attempt_at)
        return self._put(item, only_if_absent=True)

    def get_webhook_delivery(self, delivery_id: str) -> WebhookDelivery | None:
        item = self._get(f"hook#{delivery_id}")
        if item is None:
            return None
        item.setdefault("delivery_id", delivery_id)
        due = _due_time(item["due_at"]) if item.get("due_kind") == DueKind.WEBHOOK.key() else None
        return WebhookDelivery.from_item(item, next_attempt_at=due)

    def record_webhook_attempt(self, delivery_id: str, attempt: WebhookAttempt) -> None:
        names = {"#state": "state", "#log": "log"}
        values: dict[str, Any] = {
            ":state": attempt.state.value,
            ":entry": [attempt.log_entry().to_dict()],
            ":empty": [],
        }
        sets = ["#state = :state", "#log = list_append(if_not_exists(#log, :empty), :entry)"]
        for attr, value in (
            ("last_status", attempt.status),
            ("last_error", attempt.error),
            ("delivered_at", attempt.at if attempt.state is DeliveryState.DELIVERED else None),
        ):
            if value is not None:
                sets.append(f"{attr} = :{attr}")
                values[f":{attr}"] = value
        if attempt.next_attempt_at is not None:
            sets += ["due_kind = :dk", "due_at = :da"]
            values[":dk"], values[":da"] = DueKind.WEBHOOK.key(), due_stamp(attempt.next_attempt_at)
        expression = "SET " + ", ".join(sets)
        if attempt.counted:
            expression += " ADD attempts :one"
            values[":one"] = 1
        if attempt.next_attempt_at is None:
            expression += " REMOVE due_kind, due_at"
        self._conditional(  # a delivery that does not exist stays so
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": f"hook#{delivery_id}"}),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_ser(values),
        )

    def due_webhook_deliveries(self, now: float, limit: int = 50) -> list[str]:
        return [
            str(item["pk"]).removeprefix("hook#") for item in self._due(DueKind.WEBHOOK.key(), now, limit)
        ]

    def postpone_webhook_delivery(self, delivery_id: str, at: float) -> None:
        self._set_due(f"hook#{delivery_id}", DueKind.WEBHOOK.key(), at)

    def reopen_webhook_delivery(self, delivery_id: str, at: float, entry: DeliveryLogEntry) -> bool:
        # the condition makes a replay exclusive: of two at once, one queues it and the other finds it queued
        return self._move_delivery(
            delivery_id,
            entry,
            to_state=DeliveryState.PENDING,
            due=(DueKind.WEBHOOK.key(), at),
            condition="attribute_exists(pk) AND NOT (#state IN (:pending, :waiting))",
            values={":pending": DeliveryState.PENDING.value, ":waiting": DeliveryState.WAITING.value},
            extra_set="attempts = :zero",
            extra_add="replays :one",
            extra_values={":zero": 0, ":one": 1},
        )

    def hold_webhook_delivery(self, delivery_id: str, endpoint_id: str, entry: DeliveryLogEntry) -> bool:
        item = self._get(f"hook#{delivery_id}")
        if item is None:
            return False
        # in its endpoint's partition, ordered by creation: resuming releases the oldest first
        return self._move_delivery(
            delivery_id,
            entry,
            to_state=DeliveryState.WAITING,
            due=(held_partition(endpoint_id), float(plain(item["created_at"]))),
            condition="#state = :pending",
            values={":pending": DeliveryState.PENDING.value},
        )

    def held_webhook_deliveries(self, endpoint_id: str, limit: int = 50) -> list[str]:
        resp = self._call(
            self._db.query,
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_kind = :k",
            ExpressionAttributeValues=_ser({":k": held_partition(endpoint_id)}),
            Limit=limit,
        )
        return [str(_deser(i)["pk"]).removeprefix("hook#") for i in resp.get("Items", [])]

    def release_webhook_delivery(self, delivery_id: str, at: float, entry: DeliveryLogEntry) -> bool:
        return self._move_delivery(
            delivery_id,
            entry,
            to_state=DeliveryState.PENDING,
            due=(DueKind.WEBHOOK.key(), at),
            condition="#state = :waiting",
            values={":waiting": DeliveryState.WAITING.value},
        )

    def _move_delivery(
        self,
        delivery_id: str,
        entry: DeliveryLogEntry,
        *,
        to_state: DeliveryState,
        due: tuple[str, float],
        condition: str,
        values: dict[str, Any],
        extra_set: str = "",
        extra_add: str = "",
        extra_values: dict[str, Any] | None = None,
    ) -> bool:
        """A delivery's conditional change of state, its due item moved and ``entry`` logged, at once."""
        sets = [
            "#state = :to",
            "#log = list_append(if_not_exists(#log, :empty), :entry)",
            "due_kind = :dk",
            "due_at = :da",
        ]
        if extra_set:
            sets.append(extra_set)
        expression = "SET " + ", ".join(sets) + (f" ADD {extra_add}" if extra_add else "")
        all_values = {
            ":to": to_state.value,
            ":entry": [entry.to_dict()],
            ":empty": [],
            ":dk": due[0],
            ":da": due_stamp(due[1]),
            **values,
            **(extra_values or {}),
        }
        return self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": f"hook#{delivery_id}"}),
            UpdateExpression=expression,
            ConditionExpression=condition,
            ExpressionAttributeNames={"#state": "state", "#log": "log"},
            ExpressionAttributeValues=_ser(all_values),
        )

    def webhook_deliveries_since(self, since: float, limit: int = 500) -> list[WebhookDelivery]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "begins_with(pk, :p) AND created_at >= :since",
            "ExpressionAttributeValues": _ser({":p": "hook#", ":since": since}),
            "ConsistentRead": True,
        }
        while True:
            resp = self._call(self._db.scan, **kwargs)
            items += [_deser(i) for i in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        deliveries = []
        for item in items:
            item.setdefault("delivery_id", str(item["pk"]).removeprefix("hook#"))
            due = _due_time(item["due_at"]) if item.get("due_kind") == DueKind.WEBHOOK.key() else None
            deliveries.append(WebhookDelivery.from_item(item, next_attempt_at=due))
        deliveries.sort(key=lambda d: d.created_at)
        return deliveries[:limit]

    # ---- webhook endpoints -------------------------------------------------------------------------------
    def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        item = self._get(f"endpoint#{endpoint_id}")
        return WebhookEndpoint.from_item(item) if item else None

    def note_endpoint_failure(self, endpoint_id: str, origin: str, at: float) -> WebhookEndpoint:
        resp = self._call(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": f"endpoint#{endpoint_id}"}),
            UpdateExpression="SET endpoint_id = :id, origin = :origin, last_failure_at = :at, "
            "failing_since = if_not_exists(failing_since, :at) ADD failures :one",
            ExpressionAttributeValues=_ser({":id": endpoint_id, ":origin": origin, ":at": at, ":one": 1}),
            ReturnValues="ALL_NEW",
        )
        return WebhookEndpoint.from_item(_deser(resp["Attributes"]))

    def note_endpoint_success(self, endpoint_id: str, at: float) -> None:
        self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": f"endpoint#{endpoint_id}"}),
            UpdateExpression="SET last_success_at = :at, failures = :zero REMOVE failing_since",
            ConditionExpression="attribute_exists(failing_since)",
            ExpressionAttributeValues=_ser({":at": at, ":zero": 0}),
        )

    def pause_endpoint(self, endpoint_id: str, at: float) -> bool:
        return self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": f"endpoint#{endpoint_id}"}),
            UpdateExpression="SET paused_at = :at",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(paused_at)",
            ExpressionAttributeValues=_ser({":at": at}),
        )

    def resume_endpoint(self, endpoint_id: str, at: float) -> bool:
        return self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": f"endpoint#{endpoint_id}"}),
            UpdateExpression="SET resumed_at = :at, failures = :zero REMOVE paused_at, failing_since",
            ConditionExpression="attribute_exists(paused_at)",
            ExpressionAttributeValues=_ser({":at": at, ":zero": 0}),
        )

    # ---- push events for tasks not (yet) known ------------------------------------------------------------
    def note_early_event(self, event: EarlyEvent) -> bool:
        item = {
            "pk": f"early#{event.task_id}",
            "task_id": event.task_id,
            "received_at": event.received_at,
            "due_kind": DueKind.EARLY.key(),
            "due_at": due_stamp(event.recheck_at),
            "expires_at": int(event.expires_at),  # the table's TTL attribute
        }
        return self._put(item, only_if_absent=True)

    def due_early_events(self, now: float, limit: int = 20) -> list[EarlyEvent]:
        events = []
        for item in self._due(DueKind.EARLY.key(), now, limit):
            item = plain(item)
            events.append(
                EarlyEvent(
                    task_id=str(item.get("task_id") or str(item["pk"]).removeprefix("early#")),
                    received_at=float(item.get("received_at", 0)),
                    recheck_at=_due_time(item["due_at"]),
                    expires_at=float(item.get("expires_at", 0)),
                )
            )
        return events

    def recheck_early_event(self, task_id: str, at: float) -> None:
        self._set_due(f"early#{task_id}", DueKind.EARLY.key(), at)

    def forget_early_event(self, task_id: str) -> None:
        self._delete(f"early#{task_id}")

    # ---- film runs (storyboards) -------------------------------------------------------------------------
    def add_film_run(self, run: FilmRun, *, due_at: float | None = None) -> bool:
        item = dict(run.to_item(), pk=film_key(run.run_id))
        if due_at is not None:
            item["due_kind"], item["due_at"] = DueKind.FILM.key(), due_stamp(due_at)
        return self._put(item, only_if_absent=True)

    def get_film_run(self, run_id: str) -> FilmRun | None:
        item = self._get(film_key(run_id))
        return FilmRun.from_item(item) if item else None

    def recent_film_runs(self, film: str | None = None, limit: int = 50) -> list[FilmRun]:
        prefix = film_key(f"{film}/" if film is not None else "")
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "begins_with(pk, :p)",
            "ExpressionAttributeValues": _ser({":p": prefix}),
            "ConsistentRead": True,
        }
        while True:
            resp = self._call(self._db.scan, **kwargs)
            items += resp.get("Items", [])
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        runs = [FilmRun.from_item(_deser(i)) for i in items]
        runs.sort(key=lambda r: r.created_at, reverse=True)
        return runs[:limit]

    def move_film_run(
        self,
        run_id: str,
        expected: FilmStatus,
        new: FilmStatus,
        *,
        due_at: float | None = None,
        **changes: Any,
    ) -> bool:
        stored = _film_changes(changes)
        names: dict[str, str] = {"#status": "status"}
        values: dict[str, Any] = {":now": self._clock(), ":expected": expected.value, ":new": new.value}
        sets = ["#status = :new", "updated_at = :now"]
        removes: list[str] = []
        for i, (name, value) in enumerate(stored.items()):
            names[f"#c{i}"] = name
            if value is None:
                removes.append(f"#c{i}")
            else:
                values[f":c{i}"] = value
                sets.append(f"#c{i} = :c{i}")
        if due_at is None:
            removes += ["due_kind", "due_at"]
        else:
            sets += ["due_kind = :dk", "due_at = :da"]
            values[":dk"], values[":da"] = DueKind.FILM.key(), due_stamp(due_at)
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        return self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": film_key(run_id)}),
            UpdateExpression=expression,
            ConditionExpression="#status = :expected",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_ser(values),
        )

    def postpone_film_run(self, run_id: str, at: float) -> None:
        self._set_due(film_key(run_id), DueKind.FILM.key(), at)

    def due_film_runs(self, now: float, limit: int = 50) -> list[str]:
        return [str(item["pk"]).removeprefix("film#") for item in self._due(DueKind.FILM.key(), now, limit)]

    def link_shot(self, job_id: str, run_id: str) -> bool:
        linked = self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": job_key(job_id)}),
            UpdateExpression="SET film_runs = list_append(if_not_exists(film_runs, :none), :runs)",
            ConditionExpression="attribute_exists(pk) AND NOT contains(film_runs, :run)",
            ExpressionAttributeValues=_ser({":none": [], ":runs": [run_id], ":run": run_id}),
        )
        # the condition failed: either the job is linked already (True) or there is no such job
        return linked or self._get(job_key(job_id)) is not None

    def claim_film_notification(self, run_id: str, *, now: float, until: float) -> bool:
        return self._claim_notification(film_key(run_id), now=now, until=until)

    def mark_film_notified(self, run_id: str, at: float) -> None:
        self._mark_notified(film_key(run_id), at)

    def _claim_notification(self, pk: str, *, now: float, until: float) -> bool:
        """A short claim on announcing a job's or a film run's end: only if not announced, and no live claim."""
        return self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": pk}),
            UpdateExpression="SET notify_claimed_until = :until",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(notified_at) AND "
            "(attribute_not_exists(notify_claimed_until) OR notify_claimed_until < :now)",
            ExpressionAttributeValues=_ser({":until": until, ":now": now}),
        )

    def _mark_notified(self, pk: str, at: float) -> None:
        self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": pk}),
            UpdateExpression="SET notified_at = :at REMOVE due_kind, due_at",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(notified_at)",
            ExpressionAttributeValues=_ser({":at": at}),
        )

    # ---- plumbing ----------------------------------------------------------------------------------------
    def _get(self, pk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        resp = self._call(
            self._db.get_item, TableName=self._table, Key=_ser({"pk": pk}), ConsistentRead=consistent
        )
        return _deser(resp["Item"]) if "Item" in resp else None

    def _put(self, item: dict[str, Any], *, only_if_absent: bool = False) -> bool:
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": _ser(item)}
        if only_if_absent:
            kwargs["ConditionExpression"] = "attribute_not_exists(pk)"
        return self._conditional(self._db.put_item, **kwargs)

    def _delete(self, pk: str) -> None:
        self._call(self._db.delete_item, TableName=self._table, Key=_ser({"pk": pk}))

    def _due(self, kind_key: str, now: float, limit: int) -> list[dict[str, Any]]:
        """Items of one due partition whose time has passed, oldest first; reads only what it returns."""
        resp = self._call(
            self._db.query,
            TableName=self._table,
            IndexName=DUE_INDEX,
            KeyConditionExpression="due_kind = :k AND due_at <= :now",
            ExpressionAttributeValues=_ser({":k": kind_key, ":now": due_stamp(now)}),
            Limit=limit,
        )
        return [_deser(i) for i in resp.get("Items", [])]

    def _set_due(self, pk: str, kind_key: str, at: float) -> None:
        self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": pk}),
            UpdateExpression="SET due_kind = :k, due_at = :at",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=_ser({":k": kind_key, ":at": due_stamp(at)}),
        )

    def _clear_due(self, pk: str) -> None:
        self._conditional(
            self._db.update_item,
            TableName=self._table,
            Key=_ser({"pk": pk}),
            UpdateExpression="REMOVE due_kind, due_at",
            ConditionExpression="attribute_exists(pk)",
        )

    def _conditional(self, fn: Callable[..., Any], **kwargs: Any) -> bool:
        """A write that may lose to a concurrent one: False when its condition (or transaction) failed."""
        try:
            self._call(fn, **kwargs)
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] in _LOST_RACE:
                return False
            raise

    @staticmethod
    def _call(fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in _UNAVAILABLE:
                raise StoreUnavailable(f"DynamoDB is throttling or unavailable: {code}") from exc
            raise


__all__ = ["DUE_INDEX", "DynamoJobStore", "StoreUnavailable", "due_stamp", "film_key", "job_key"]
