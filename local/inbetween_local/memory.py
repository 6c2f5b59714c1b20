"""In-memory adapters of every port (``inbetween.ports``), for unit tests and quick experiments.

``InMemoryJobStore`` keeps the same promises as the DynamoDB table (conditional transitions, a slot
change in the same transaction as its job's, the sparse due index ordered by due time, claims that
expire, due times in whole milliseconds); ``tests/integration/aws/test_job_store_contract.py`` holds
both to the same tests. The others record what they were asked to do, and can be told to fail.
``memory_world`` bundles them (and the ``Deps`` made of them).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from inbetween.config import Settings, Timing
from inbetween.deps import Deps
from inbetween.domain.costs import MonthSpend
from inbetween.domain.films import FILM_SETTABLE_FIELDS, FilmRun, FilmStatus
from inbetween.domain.models import (
    DeliveryLogEntry,
    DeliveryState,
    DueKind,
    EarlyEvent,
    Job,
    JobStatus,
    Notification,
    ObjectHead,
    ObjectInfo,
    StoredVideo,
    SubmitLease,
    Transition,
    VideoDownload,
    WebhookAttempt,
    WebhookDelivery,
    item_value,
)
from inbetween.domain.mp4_check import Mp4Inspector
from inbetween.domain.webhook_events import WebhookEndpoint, held_partition
from inbetween.errors import (
    ConfigError,
    ProviderRejected,
    ProviderUnavailable,
    StorageError,
    VideoDownloadFailed,
    VideoLinkExpired,
    VideoRejected,
)
from inbetween.provider.models import (
    CreateTaskRequest,
    ModelQuota,
    TaskPage,
    TaskRef,
    TaskState,
    TaskStatus,
    TaskSummary,
)
from inbetween.webhooks.outcome import DeliveryResult


class ManualClock:
    """Time that moves only when told to (``advance``) or when someone sleeps."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._now += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self._now += seconds


@dataclass
class _Due:
    key: str
    at: float

    def __post_init__(self) -> None:
        # as the table's due stamps (jobs_table.due_stamp): whole milliseconds, never negative
        self.at = max(0, int(self.at * 1000)) / 1000


class InMemoryJobStore:
    """``inbetween.ports.JobStore`` in dictionaries, under one lock."""

    def __init__(self, clock: ManualClock | Any) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self.jobs: dict[str, dict[str, Any]] = {}  # job_id -> Job.to_item()
        self.due: dict[str, _Due] = {}  # "job#id", "drop#name", "hook#id", "early#task", "film#run" -> due
        self.slots: dict[str, int] = {}
        self.tasks: dict[str, str] = {}
        self.lease: dict[str, Any] = {}  # the account's lane (the only one with a single API key)
        self.leases: dict[str, dict[str, Any]] = {"": self.lease}  # by lane (its key's api_key_ref)
        self.drops: dict[str, float] = {}
        self.deliveries: dict[str, WebhookDelivery] = {}
        self.early: dict[str, EarlyEvent] = {}
        self.films: dict[str, dict[str, Any]] = {}  # run_id -> FilmRun.to_item()
        self.endpoints: dict[str, WebhookEndpoint] = {}
        self.open: dict[str, set[str]] = {}  # inbox folder -> its runs in flight
        self.spend: dict[str, MonthSpend] = {}  # month -> its committed spend
        self.budget: int | None = None  # the override `inbetween budget set` writes
        self._order = itertools.count()

    # -- jobs ----------------------------------------------------------------------------------------
    def get_job(self, job_id: str) -> Job | None:
        with self._lock:
            item = self.jobs.get(job_id)
            # from_item copies every dict and list it reads (``plain``): the store's item stays its own
            return Job.from_item(item) if item else None

    def add_job(self, job: Job, *, due: tuple[DueKind, float] | None = None) -> bool:
        with self._lock:
            if job.job_id in self.jobs:
                return False
            self.jobs[job.job_id] = job.to_item()
            if due:
                self.due[f"job#{job.job_id}"] = _Due(due[0].key(job.model), due[1])
            return True

    def apply(self, transition: Transition) -> bool:
        tr = transition
        with self._lock:
            item = self.jobs.get(tr.job_id)
            if item is None or JobStatus(item["status"]) not in tr.expected:
                return False
            if tr.push_unclaimed_at is not None:
                claim = item.get("push_claim_until")
                if claim is not None and not claim < tr.push_unclaimed_at:
                    return False
            if tr.spend_owner is not None and item.get("spend_month") != tr.spend_owner[0]:
                return False
            spend = self.spend.get(tr.spend_month or "", MonthSpend(tr.spend_month or ""))
            if tr.spend_month is not None and tr.spend_budget is not None:
                if spend.committed_micros + tr.spend_delta > tr.spend_budget:
                    return False
            if tr.slot_model:
                in_use = self.slots.get(tr.slot_model, 0)
                if tr.slot_delta > 0 and in_use >= tr.slot_limit:
                    return False
                if tr.slot_delta < 0 and in_use <= 0:
                    return False
                self.slots[tr.slot_model] = in_use + tr.slot_delta
            if tr.spend_month is not None and (tr.spend_delta or tr.spend_budget is not None):
                self.spend[tr.spend_month] = replace(
                    spend, committed_micros=spend.committed_micros + tr.spend_delta
                )
            item["updated_at"] = self._clock.now()
            if tr.new_status is not None:
                item["status"] = tr.new_status.value
            for name, value in tr.sets.items():
                if value is None:
                    item.pop(name, None)
                else:
                    item[name] = copy.deepcopy(value)
            for name, delta in tr.adds.items():
                item[name] = int(item.get(name, 0)) + delta
            if tr.due:
                self.due[f"job#{tr.job_id}"] = _Due(tr.due[0], tr.due[1])
            return True

    def _due_keys(self, kind_key: str, now: float | None, prefix: str) -> list[str]:
        hits = [
            (d.at, key)
            for key, d in self.due.items()
            if d.key == kind_key and key.startswith(prefix) and (now is None or d.at <= now)
        ]
        return [key for _, key in sorted(hits)]

    def due_jobs(self, kind: DueKind, now: float, *, model: str | None = None, limit: int = 100) -> list[Job]:
        with self._lock:
            keys = self._due_keys(kind.key(model), now, "job#")[:limit]
            return [Job.from_item(self.jobs[k.removeprefix("job#")]) for k in keys]

    def next_due_at(self, kind: DueKind) -> float | None:
        with self._lock:
            times = [d.at for d in self.due.values() if d.key == kind.key()]
            return min(times) if times else None

    def postpone(self, job_id: str, kind: DueKind, at: float) -> bool:
        if kind is DueKind.ADMIT:
            raise ValueError("a waiting job keeps its place: ADMIT is never postponed")
        with self._lock:
            due = self.due.get(f"job#{job_id}")
            if due is None or due.key != kind.value:
                return False
            self.due[f"job#{job_id}"] = _Due(due.key, at)
            return True

    def clear_due(self, job_id: str) -> None:
        with self._lock:
            self.due.pop(f"job#{job_id}", None)

    def slots_in_use(self, model: str) -> int:
        with self._lock:
            return self.slots.get(model, 0)

    def claim_notification(self, job_id: str, *, now: float, until: float) -> bool:
        return self._claim_notification(self.jobs, job_id, now=now, until=until)

    def mark_notified(self, job_id: str, at: float) -> None:
        self._mark_notified(self.jobs, job_id, f"job#{job_id}", at)

    def _claim_notification(self, items: dict[str, Any], key: str, *, now: float, until: float) -> bool:
        """A job's or a film run's claim on announcing its end (``items``: the jobs or the film runs)."""
        with self._lock:
            item = items.get(key)
            if item is None or item.get("notified_at") is not None:
                return False
            claimed = item.get("notify_claimed_until")
            if claimed is not None and not claimed < now:
                return False
            item["notify_claimed_until"] = until
            return True

    def _mark_notified(self, items: dict[str, Any], key: str, due_key: str, at: float) -> None:
        with self._lock:
            item = items.get(key)
            if item is None or item.get("notified_at") is not None:
                return
            item["notified_at"] = at
            self.due.pop(due_key, None)

    def recent_jobs(self, limit: int = 50) -> list[Job]:
        with self._lock:
            jobs = [Job.from_item(i) for i in self.jobs.values()]
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        return jobs[:limit]

    # -- the month's spend and the budget ------------------------------------------------------------
    def month_spend(self, month: str) -> MonthSpend:
        with self._lock:
            return self.spend.get(month, MonthSpend(month))

    def claim_budget_reached(self, month: str, at: float) -> bool:
        with self._lock:
            spend = self.spend.get(month, MonthSpend(month))
            if spend.reached_at is not None:
                return False
            self.spend[month] = replace(spend, reached_at=at)
            return True

    def budget_override(self) -> int | None:
        return self.budget

    def set_budget_override(self, amount_micros: int | None) -> None:
        self.budget = amount_micros

    # -- provider tasks ------------------------------------------------------------------------------
    def record_task(self, task_id: str, job_id: str) -> None:
        with self._lock:
            self.tasks[task_id] = job_id

    def job_for_task(self, task_id: str) -> str | None:
        with self._lock:
            return self.tasks.get(task_id)

    # -- the submit leases (one per lane) -------------------------------------------------------------
    def acquire_submit_lease(self, holder: str, lease_s: float, *, lane: str = "") -> SubmitLease | None:
        with self._lock:
            lease = self.leases.setdefault(lane, {})
            now = self._clock.now()
            if lease.get("holder") is not None and not lease["lease_until"] < now:
                return None
            expired_until = lease["lease_until"] if lease.get("holder") is not None else None
            lease.update(holder=holder, lease_until=now + lease_s)
            return SubmitLease(
                holder,
                lease["lease_until"],
                float(lease.get("next_submit_at", 0.0)),
                expired_until,
                lane=lane,
                api_key_id=lease.get("api_key_id"),
            )

    def extend_submit_lease(
        self, holder: str, lease_s: float, *, next_submit_at: float | None = None, lane: str = ""
    ) -> bool:
        with self._lock:
            lease = self.leases.setdefault(lane, {})
            if lease.get("holder") != holder:
                return False
            lease["lease_until"] = self._clock.now() + lease_s
            if next_submit_at is not None:
                lease["next_submit_at"] = next_submit_at
            return True

    def release_submit_lease(self, holder: str, *, lane: str = "") -> None:
        with self._lock:
            lease = self.leases.setdefault(lane, {})
            if lease.get("holder") == holder:
                lease.pop("holder", None)
                lease.pop("lease_until", None)

    def remember_api_key_id(self, api_key_id: str, *, lane: str) -> None:
        with self._lock:
            self.leases.setdefault(lane, {})["api_key_id"] = api_key_id

    # -- incomplete drops ----------------------------------------------------------------------------
    def note_incomplete_drop(self, job_name: str, *, first_seen: float, settle_by: float) -> bool:
        with self._lock:
            if job_name in self.drops:
                return False
            self.drops[job_name] = first_seen
            self.due[f"drop#{job_name}"] = _Due(DueKind.SETTLE.key(), settle_by)
            return True

    def forget_drop(self, job_name: str) -> None:
        with self._lock:
            self.drops.pop(job_name, None)
            self.due.pop(f"drop#{job_name}", None)

    def overdue_drops(self, now: float, limit: int = 50) -> list[str]:
        with self._lock:
            return [
                k.removeprefix("drop#") for k in self._due_keys(DueKind.SETTLE.key(), now, "drop#")[:limit]
            ]

    # -- the runs of an inbox folder still in flight -------------------------------------------------
    def note_open_run(self, folder: str, run_id: str) -> None:
        with self._lock:
            self.open.setdefault(folder, set()).add(run_id)

    def open_runs(self, folder: str) -> list[str]:
        with self._lock:
            return sorted(self.open.get(folder, ()))

    def forget_open_run(self, folder: str, run_id: str) -> None:
        with self._lock:
            runs = self.open.get(folder)
            if runs is not None:
                runs.discard(run_id)  # as DynamoDB's DELETE leaves an empty set: the item stays

    # -- webhook deliveries --------------------------------------------------------------------------
    def add_webhook_delivery(self, delivery: WebhookDelivery) -> bool:
        with self._lock:
            if delivery.delivery_id in self.deliveries:
                return False
            self.deliveries[delivery.delivery_id] = replace(delivery, next_attempt_at=None)
            if delivery.next_attempt_at is not None:
                self.due[f"hook#{delivery.delivery_id}"] = _Due(
                    DueKind.WEBHOOK.key(), delivery.next_attempt_at
                )
            return True

    def get_webhook_delivery(self, delivery_id: str) -> WebhookDelivery | None:
        with self._lock:
            delivery = self.deliveries.get(delivery_id)
            if delivery is None:
                return None
            due = self.due.get(f"hook#{delivery_id}")
            # a delivery held for a paused endpoint sits in its endpoint's partition: no next attempt
            scheduled = due is not None and due.key == DueKind.WEBHOOK.key()
            return replace(delivery, next_attempt_at=due.at if due is not None and scheduled else None)

    def record_webhook_attempt(self, delivery_id: str, attempt: WebhookAttempt) -> None:
        with self._lock:
            delivery = self.deliveries.get(delivery_id)
            if delivery is None:
                return  # as on the table: a delivery that does not exist stays so
            self.deliveries[delivery_id] = replace(
                delivery,
                state=attempt.state,
                attempts=delivery.attempts + (1 if attempt.counted else 0),
                last_status=attempt.status if attempt.status is not None else delivery.last_status,
                last_error=attempt.error if attempt.error is not None else delivery.last_error,
                delivered_at=attempt.at
                if attempt.state is DeliveryState.DELIVERED
                else delivery.delivered_at,
                log=(*delivery.log, attempt.log_entry()),
            )
            if attempt.next_attempt_at is None:
                self.due.pop(f"hook#{delivery_id}", None)
            else:
                self.due[f"hook#{delivery_id}"] = _Due(DueKind.WEBHOOK.key(), attempt.next_attempt_at)

    def due_webhook_deliveries(self, now: float, limit: int = 50) -> list[str]:
        with self._lock:
            return [
                k.removeprefix("hook#") for k in self._due_keys(DueKind.WEBHOOK.key(), now, "hook#")[:limit]
            ]

    def postpone_webhook_delivery(self, delivery_id: str, at: float) -> None:
        with self._lock:
            if delivery_id in self.deliveries:
                self.due[f"hook#{delivery_id}"] = _Due(DueKind.WEBHOOK.key(), at)

    def reopen_webhook_delivery(self, delivery_id: str, at: float, entry: DeliveryLogEntry) -> bool:
        with self._lock:
            delivery = self.deliveries.get(delivery_id)
            if delivery is None or delivery.state in (DeliveryState.PENDING, DeliveryState.WAITING):
                return False
            self.deliveries[delivery_id] = replace(
                delivery,
                state=DeliveryState.PENDING,
                attempts=0,
                replays=delivery.replays + 1,
                log=(*delivery.log, entry),
            )
            self.due[f"hook#{delivery_id}"] = _Due(DueKind.WEBHOOK.key(), at)
            return True

    def hold_webhook_delivery(self, delivery_id: str, endpoint_id: str, entry: DeliveryLogEntry) -> bool:
        with self._lock:
            delivery = self.deliveries.get(delivery_id)
            if delivery is None or delivery.state is not DeliveryState.PENDING:
                return False
            self.deliveries[delivery_id] = replace(
                delivery, state=DeliveryState.WAITING, log=(*delivery.log, entry)
            )
            self.due[f"hook#{delivery_id}"] = _Due(held_partition(endpoint_id), delivery.created_at)
            return True

    def held_webhook_deliveries(self, endpoint_id: str, limit: int = 50) -> list[str]:
        with self._lock:
            keys = self._due_keys(held_partition(endpoint_id), None, "hook#")
            return [k.removeprefix("hook#") for k in keys[:limit]]

    def release_webhook_delivery(self, delivery_id: str, at: float, entry: DeliveryLogEntry) -> bool:
        with self._lock:
            delivery = self.deliveries.get(delivery_id)
            if delivery is None or delivery.state is not DeliveryState.WAITING:
                return False
            self.deliveries[delivery_id] = replace(
                delivery, state=DeliveryState.PENDING, log=(*delivery.log, entry)
            )
            self.due[f"hook#{delivery_id}"] = _Due(DueKind.WEBHOOK.key(), at)
            return True

    def webhook_deliveries_since(self, since: float, limit: int = 500) -> list[WebhookDelivery]:
        with self._lock:
            found = [d for d in self.deliveries.values() if d.created_at >= since]
        found.sort(key=lambda d: d.created_at)
        return [self.get_webhook_delivery(d.delivery_id) or d for d in found[:limit]]

    # -- webhook endpoints ---------------------------------------------------------------------------
    def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        with self._lock:
            return self.endpoints.get(endpoint_id)

    def note_endpoint_failure(self, endpoint_id: str, origin: str, at: float) -> WebhookEndpoint:
        with self._lock:
            known = self.endpoints.get(endpoint_id) or WebhookEndpoint(endpoint_id, origin)
            updated = replace(
                known,
                origin=origin,
                failing_since=known.failing_since if known.failing_since is not None else at,
                last_failure_at=at,
                failures=known.failures + 1,
            )
            self.endpoints[endpoint_id] = updated
            return updated

    def note_endpoint_success(self, endpoint_id: str, at: float) -> None:
        with self._lock:
            known = self.endpoints.get(endpoint_id)
            if known is not None and known.failing_since is not None:
                self.endpoints[endpoint_id] = replace(
                    known, failing_since=None, failures=0, last_success_at=at
                )

    def pause_endpoint(self, endpoint_id: str, at: float) -> bool:
        with self._lock:
            known = self.endpoints.get(endpoint_id)
            if known is None or known.paused_at is not None:
                return False
            self.endpoints[endpoint_id] = replace(known, paused_at=at)
            return True

    def resume_endpoint(self, endpoint_id: str, at: float) -> bool:
        with self._lock:
            known = self.endpoints.get(endpoint_id)
            if known is None or known.paused_at is None:
                return False
            self.endpoints[endpoint_id] = replace(
                known, paused_at=None, failing_since=None, failures=0, resumed_at=at
            )
            return True

    # -- early push events ---------------------------------------------------------------------------
    def note_early_event(self, event: EarlyEvent) -> bool:
        with self._lock:
            if event.task_id in self.early:
                return False
            # expires_at is the table's TTL attribute: whole epoch seconds, as DynamoJobStore keeps it
            self.early[event.task_id] = replace(event, expires_at=float(int(event.expires_at)))
            self.due[f"early#{event.task_id}"] = _Due(DueKind.EARLY.key(), event.recheck_at)
            return True

    def due_early_events(self, now: float, limit: int = 20) -> list[EarlyEvent]:
        with self._lock:
            keys = self._due_keys(DueKind.EARLY.key(), now, "early#")[:limit]
            return [replace(self.early[k.removeprefix("early#")], recheck_at=self.due[k].at) for k in keys]

    def recheck_early_event(self, task_id: str, at: float) -> None:
        with self._lock:
            if task_id in self.early:
                self.due[f"early#{task_id}"] = _Due(DueKind.EARLY.key(), at)

    def forget_early_event(self, task_id: str) -> None:
        with self._lock:
            self.early.pop(task_id, None)
            self.due.pop(f"early#{task_id}", None)

    # -- film runs (storyboards) ---------------------------------------------------------------------
    def add_film_run(self, run: FilmRun, *, due_at: float | None = None) -> bool:
        with self._lock:
            if run.run_id in self.films:
                return False
            self.films[run.run_id] = run.to_item()
            if due_at is not None:
                self.due[f"film#{run.run_id}"] = _Due(DueKind.FILM.key(), due_at)
            return True

    def get_film_run(self, run_id: str) -> FilmRun | None:
        with self._lock:
            item = self.films.get(run_id)
            return FilmRun.from_item(copy.deepcopy(item)) if item else None

    def recent_film_runs(self, film: str | None = None, limit: int = 50) -> list[FilmRun]:
        with self._lock:
            runs = [FilmRun.from_item(copy.deepcopy(i)) for i in self.films.values()]
        runs = [r for r in runs if film is None or r.film == film]
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
        unknown = set(changes) - FILM_SETTABLE_FIELDS
        if unknown:
            raise ValueError(f"not a settable film run field: {', '.join(sorted(unknown))}")
        with self._lock:
            item = self.films.get(run_id)
            if item is None or item["status"] != expected.value:
                return False
            item["status"] = new.value
            item["updated_at"] = self._clock.now()
            for name, value in changes.items():
                value = item_value(value)
                if value is None:
                    item.pop(name, None)
                else:
                    item[name] = copy.deepcopy(value.value if isinstance(value, Enum) else value)
            if due_at is None:
                self.due.pop(f"film#{run_id}", None)
            else:
                self.due[f"film#{run_id}"] = _Due(DueKind.FILM.key(), due_at)
            return True

    def postpone_film_run(self, run_id: str, at: float) -> None:
        with self._lock:
            if run_id in self.films:
                self.due[f"film#{run_id}"] = _Due(DueKind.FILM.key(), at)

    def due_film_runs(self, now: float, limit: int = 50) -> list[str]:
        with self._lock:
            return [k.removeprefix("film#") for k in self._due_keys(DueKind.FILM.key(), now, "film#")[:limit]]

    def link_shot(self, job_id: str, run_id: str) -> bool:
        with self._lock:
            item = self.jobs.get(job_id)
            if item is None:
                return False
            runs = list(item.get("film_runs") or [])
            if run_id not in runs:
                item["film_runs"] = [*runs, run_id]
            return True

    def claim_film_notification(self, run_id: str, *, now: float, until: float) -> bool:
        return self._claim_notification(self.films, run_id, now=now, until=until)

    def mark_film_notified(self, run_id: str, at: float) -> None:
        self._mark_notified(self.films, run_id, f"film#{run_id}", at)


class InMemoryBlobs:
    """``inbetween.ports.Blobs``: buckets as dictionaries of key -> bytes (and metadata)."""

    def __init__(self, clock: ManualClock | Any) -> None:
        self._clock = clock
        self.objects: dict[tuple[str, str], bytes] = {}
        self.metadata: dict[tuple[str, str], dict[str, str]] = {}
        self.modified: dict[tuple[str, str], float] = {}
        self.json: dict[tuple[str, str], dict[str, Any]] = {}
        self.fail_reads = False

    def put(self, bucket: str, key: str, data: bytes, *, modified: float | None = None) -> None:
        self.objects[(bucket, key)] = data
        self.modified[(bucket, key)] = self._clock.now() if modified is None else modified

    def delete(self, bucket: str, key: str) -> None:
        self.objects.pop((bucket, key), None)

    @staticmethod
    def etag(data: bytes) -> str:
        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    def list_folder(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        out = []
        for (b, key), data in sorted(self.objects.items()):
            if b == bucket and key.startswith(prefix) and "/" not in key[len(prefix) :]:
                out.append(ObjectInfo(key, self.etag(data), len(data), self.modified[(b, key)]))
        return out

    def read(self, bucket: str, key: str, *, etag: str | None = None, max_bytes: int | None = None) -> bytes:
        data = self.objects.get((bucket, key))
        if self.fail_reads or data is None or (etag is not None and etag != self.etag(data)):
            raise StorageError(f"could not read s3://{bucket}/{key}")
        return data if max_bytes is None else data[: max_bytes + 1]

    def presign_get(self, bucket: str, key: str, ttl_s: int) -> str:
        return f"https://{bucket}.s3.test/{key}?expires={int(self._clock.now() + ttl_s)}"

    def download_file(self, bucket: str, key: str, path: Path) -> int:
        data = self.read(bucket, key)
        path.write_bytes(data)
        return len(data)

    def upload_file(self, bucket: str, key: str, path: Path, *, content_type: str) -> int:
        data = path.read_bytes()
        self.put(bucket, key, data)
        self.metadata[(bucket, key)] = {"content-type": content_type}
        return len(data)

    def put_json(self, bucket: str, key: str, data: dict[str, Any]) -> None:
        self.json[(bucket, key)] = copy.deepcopy(data)

    def head(self, bucket: str, key: str) -> ObjectHead | None:
        if (bucket, key) not in self.objects:
            return None
        data = self.objects[(bucket, key)]
        return ObjectHead(
            metadata=dict(self.metadata.get((bucket, key), {})),
            version_id=None,
            etag=self.etag(data),
            size=len(data),
        )

    def digest_video(
        self, bucket: str, key: str, *, version_id: str | None = None
    ) -> tuple[str, int, str | None]:
        data = self.objects[(bucket, key)]
        inspector = Mp4Inspector()
        inspector.feed(data)
        return hashlib.sha256(data).hexdigest(), len(data), inspector.verdict()

    def store_video(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        expected_bytes: int | None,
        metadata: dict[str, str] | None = None,
    ) -> StoredVideo:
        data = b"".join(chunks)
        inspector = Mp4Inspector()
        inspector.feed(data)
        problem = inspector.download_verdict(expected_bytes)
        if problem:
            raise VideoRejected(problem)
        self.put(bucket, key, data)
        self.metadata[(bucket, key)] = dict(metadata or {})
        return StoredVideo(bucket, key, len(data), hashlib.sha256(data).hexdigest())


@dataclass
class RecordingQueues:
    """``inbetween.ports.Queues``: what was handed over, in order."""

    rechecks: list[tuple[str, int]] = field(default_factory=list)
    admissions: list[str] = field(default_factory=list)
    lanes_woken: list[int] = field(default_factory=list)  # each admission's submit lane
    completions: list[str] = field(default_factory=list)
    webhooks: list[str] = field(default_factory=list)
    stitches: list[str] = field(default_factory=list)

    def recheck_drop_later(self, job_name: str, delay_s: int) -> None:
        self.rechecks.append((job_name, delay_s))

    def admit_waiting(self, model: str, *, lane: int = 0) -> None:
        self.admissions.append(model)
        self.lanes_woken.append(lane)

    def complete_job(self, job_id: str) -> None:
        self.completions.append(job_id)

    def deliver_webhook(self, delivery_id: str) -> None:
        self.webhooks.append(delivery_id)

    def stitch_film(self, run_id: str) -> None:
        self.stitches.append(run_id)


@dataclass
class RecordingNotifier:
    """``inbetween.ports.Notifier``: the notifications published."""

    published: list[Notification] = field(default_factory=list)
    fail: bool = False

    def publish(self, notification: Notification) -> None:
        if self.fail:
            raise ConnectionError("SNS is unreachable (injected)")
        self.published.append(notification)


class ScriptedProvider:
    """``inbetween.ports.Provider``: tasks that move when told to (``finish``), and errors on demand.

    ``create_errors``/``get_errors``: exceptions raised by the next calls, in order."""

    def __init__(self, clock: ManualClock | Any, *, api_keys: int = 1) -> None:
        self._clock = clock
        # the refs of the account's API keys (``key_refs``); each task remembers its key's api_key_id
        self.api_keys = tuple(f"key{i}" for i in range(api_keys))
        self.key_of: dict[str, str] = {}  # task_id -> the api_key_id it was created with
        self.created_with: list[str | None] = []  # the key_ref of each create, in order
        self.created: list[CreateTaskRequest] = []
        self.states: dict[str, TaskState] = {}
        self.created_at: dict[str, float] = {}
        self.models: dict[str, str] = {}
        self.create_errors: list[Exception] = []
        self.get_errors: list[Exception] = []
        self.list_errors: list[Exception] = []
        self.cancel_errors: list[Exception] = []
        self.cancels: list[str] = []  # the tasks cancelled (each was PENDING)
        self.queries: list[str] = []
        self.list_calls = 0
        self._ids = itertools.count(1)

    def key_refs(self) -> tuple[str, ...]:
        return self.api_keys

    @staticmethod
    def api_key_id_of(key_ref: str) -> str:
        return f"id-{key_ref}"

    def create_task(self, request: CreateTaskRequest, *, key_ref: str | None = None) -> TaskRef:
        if key_ref is not None and key_ref not in self.api_keys:
            raise ConfigError("no such API key")
        self.created_with.append(key_ref)
        if self.create_errors:
            raise self.create_errors.pop(0)
        task_id = f"task-{next(self._ids)}"
        self.key_of[task_id] = self.api_key_id_of(key_ref or self.api_keys[0])
        self.created.append(request)
        self.created_at[task_id] = self._clock.now()
        self.models[task_id] = request.model
        self.states[task_id] = TaskState(task_id=task_id, status=TaskStatus.PENDING, request_id="req")
        return TaskRef(task_id=task_id, task_status=TaskStatus.PENDING, request_id="req")

    def foreign_task(self, model: str, *, key_ref: str | None = None) -> str:
        """A task created by someone else on the account (or by a create whose answer was lost), with
        one of our keys (``key_ref``; the first by default)."""
        task_id = f"task-{next(self._ids)}"
        self.key_of[task_id] = self.api_key_id_of(key_ref or self.api_keys[0])
        self.created_at[task_id] = self._clock.now()
        self.models[task_id] = model
        self.states[task_id] = TaskState(task_id=task_id, status=TaskStatus.PENDING, request_id="req")
        return task_id

    def set_state(self, task_id: str, state: TaskState) -> None:
        self.states[task_id] = state

    def get_task(self, task_id: str) -> TaskState:
        self.queries.append(task_id)
        if self.get_errors:
            raise self.get_errors.pop(0)
        return self.states.get(task_id) or TaskState(
            task_id=task_id, status=TaskStatus.UNKNOWN, request_id="req"
        )

    def list_tasks(
        self,
        *,
        start: datetime,
        end: datetime,
        model: str,
        page_no: int = 1,
        page_size: int = 10,
        api_key_id: str | None = None,
    ) -> TaskPage:
        self.list_calls += 1
        if self.list_errors:
            raise self.list_errors.pop(0)
        lo, hi = start.timestamp(), end.timestamp()
        tasks = [
            TaskSummary(
                task_id=task_id,
                status=self.states[task_id].status,
                gmt_create=datetime.fromtimestamp(at).astimezone(),
                model_name=self.models[task_id],
                api_key_id=self.key_of.get(task_id),
            )
            for task_id, at in self.created_at.items()
            if lo <= at <= hi
            and self.models[task_id] == model
            and api_key_id in (None, self.key_of.get(task_id))
        ]
        page = tasks[(page_no - 1) * page_size : page_no * page_size]
        total_pages = max(1, -(-len(tasks) // page_size))
        return TaskPage(
            tasks=tuple(page), total=len(tasks), page_no=page_no, page_size=page_size, total_page=total_pages
        )

    def cancel_task(self, task_id: str) -> None:
        """As the provider: only a PENDING task can be cancelled; it then ends CANCELED."""
        if self.cancel_errors:
            raise self.cancel_errors.pop(0)
        state = self.states.get(task_id)
        if state is None or state.status is not TaskStatus.PENDING:
            raise ProviderRejected(
                "Failed to cancel the task, please confirm if the task is in PENDING status.",
                code="UnsupportedOperation",
                request_id="req",
            )
        self.states[task_id] = replace(state, status=TaskStatus.CANCELED)
        self.cancels.append(task_id)

    def iter_tasks(
        self, *, start: datetime, end: datetime, model: str, api_key_id: str | None = None
    ) -> Iterator[TaskSummary]:
        page_no = 1
        while True:
            page = self.list_tasks(start=start, end=end, model=model, page_no=page_no, api_key_id=api_key_id)
            yield from page.tasks
            if page_no >= page.total_page:
                return
            page_no += 1

    def close(self) -> None:
        pass


class FixedQuotas:
    """``inbetween.ports.QuotaSource``: the live figures a test sets (by the model's provider name);
    none set means list-quotas knows nothing, so the published figures apply. ``asked`` counts calls."""

    def __init__(self) -> None:
        self.quotas: dict[str, ModelQuota] = {}
        self.asked: list[str] = []

    def set(
        self,
        model: str,
        *,
        concurrency: int | None = None,
        submit_per_s: float | None = None,
        queue: int | None = None,
    ) -> None:
        self.quotas[model] = ModelQuota(model, concurrency, submit_per_s, queue)

    def quota_for(self, model: str) -> ModelQuota | None:
        self.asked.append(model)
        return self.quotas.get(model)


class InMemoryVideos:
    """``inbetween.ports.VideoSource``: url -> bytes; a missing URL is an expired link."""

    def __init__(self) -> None:
        self.videos: dict[str, bytes] = {}
        self.fail_next: list[Exception] = []

    @contextmanager
    def open(self, url: str) -> Iterator[VideoDownload]:
        if self.fail_next:
            raise self.fail_next.pop(0)
        data = self.videos.get(url)
        if data is None:
            raise VideoLinkExpired("HTTP 404")
        yield VideoDownload(
            length=len(data), chunks=[data[i : i + 65536] for i in range(0, len(data), 65536)]
        )

    def close(self) -> None:
        pass


class RecordingWebhooks:
    """``inbetween.ports.WebhookSender``: answers from a script (default: delivered)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []
        self.answers: list[DeliveryResult | Exception] = []
        self.refused_urls: set[str] = set()

    def check_destination(self, url: str) -> None:
        from inbetween.webhooks.guard import UnsafeWebhookUrl

        if url in self.refused_urls or not url.startswith(("https://", "http://")):
            raise UnsafeWebhookUrl("webhook_url must use https")

    def deliver(self, url: str, msg_id: str, body: bytes, *, now: float) -> DeliveryResult:
        self.check_destination(url)
        self.sent.append((url, msg_id, body))
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return DeliveryResult(True, 200, False, None, False, "")

    def close(self) -> None:
        pass


def test_settings(**overrides: Any) -> Settings:
    """Settings of a deployment whose names are fixed strings (nothing is reached through them)."""
    values: dict[str, Any] = {
        "jobs_table": "jobs",
        "inbox_bucket": "inbox",
        "output_bucket": "output",
        "topic_arn": "arn:aws:sns:us-east-1:123456789012:notify",
        "intake_queue_url": "https://sqs.test/intake",
        "completion_queue_url": "https://sqs.test/completion",
        "api_key_secret": "dashscope",
        "webhook_secret_name": "webhook",
        "provider_base_url": "https://dashscope.test/api/v1",
        "settle_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class MemoryWorld:
    """Every in-memory adapter, and the deps made of them."""

    clock: ManualClock
    store: InMemoryJobStore
    blobs: InMemoryBlobs
    queues: RecordingQueues
    notifier: RecordingNotifier
    provider: ScriptedProvider
    quotas: FixedQuotas
    videos: InMemoryVideos
    webhooks: RecordingWebhooks
    deps: Deps


test_settings.__test__ = False  # type: ignore[attr-defined]  # a factory, not a test, when imported by one


def memory_world(
    settings: Settings | None = None,
    *,
    timing: Timing | None = None,
    push_secret: str = "push-secret",  # noqa: S107 - a fake deployment's secret
) -> MemoryWorld:
    clock = ManualClock()
    store = InMemoryJobStore(clock)
    blobs = InMemoryBlobs(clock)
    queues = RecordingQueues()
    notifier = RecordingNotifier()
    provider = ScriptedProvider(clock)
    quotas = FixedQuotas()
    videos = InMemoryVideos()
    webhooks = RecordingWebhooks()
    deps = Deps(
        settings=settings or test_settings(),
        timing=timing or Timing(),
        store=store,
        blobs=blobs,
        queues=queues,
        notifier=notifier,
        provider=provider,
        quotas=quotas,
        videos=videos,
        webhooks=webhooks,
        clock=clock,
        push_secret=lambda: push_secret,
    )
    return MemoryWorld(clock, store, blobs, queues, notifier, provider, quotas, videos, webhooks, deps)


__all__ = [
    "FixedQuotas",
    "InMemoryBlobs",
    "InMemoryJobStore",
    "InMemoryVideos",
    "ManualClock",
    "MemoryWorld",
    "ProviderUnavailable",
    "RecordingNotifier",
    "RecordingQueues",
    "RecordingWebhooks",
    "ScriptedProvider",
    "VideoDownloadFailed",
    "memory_world",
    "test_settings",
]


# ---------------------------------------------------------------------------------------------- pictures
@dataclass(frozen=True)
class FakePictures:
    poster_jpeg: bytes
    contact_sheet_png: bytes


@dataclass
class FakeClipPictures:
    """``inbetween.ports.ClipPictures`` without the media layer: pictures named after the video's digest
    (so a test can tell whose they are), the videos it was given (their bytes) in ``made``, and
    ``fail_next``: errors to raise, one per call, first in first out."""

    made: list[bytes] = field(default_factory=list)
    fail_next: list[BaseException] = field(default_factory=list)

    @staticmethod
    def pictures_of(video: bytes) -> FakePictures:
        digest = hashlib.sha256(video).hexdigest()[:12].encode()
        return FakePictures(b"\xff\xd8poster-" + digest, b"\x89PNG\r\n\x1a\nsheet-" + digest)

    def make(self, video: Path) -> FakePictures:
        if self.fail_next:
            raise self.fail_next.pop(0)
        data = video.read_bytes()
        self.made.append(data)
        return self.pictures_of(data)


__all__ += ["FakeClipPictures", "FakePictures"]
