"""Typed models of the pipeline: job states, the job spec a user drops, the job record and its state
changes, webhook deliveries, and the small records the jobs table keeps beside jobs.

Every attribute the pipeline writes on a job is a field of ``Job``; ``Job.to_item``/``Job.from_item`` are
the two directions of its mapping to a table item, and ``Transition.set`` accepts only those fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    WAITING = "WAITING"  # accepted, waiting for a provider slot (arrival order)
    HELD = "HELD"  # accepted, waiting for the month's budget to allow its estimated cost (arrival order)
    SUBMITTING = "SUBMITTING"  # a worker holds the lease and is creating the provider task
    SUBMITTED = "SUBMITTED"  # the provider has the task (PENDING or RUNNING there)
    COMPLETING = "COMPLETING"  # the task succeeded; the video is being copied
    STORED = "STORED"  # final: the video is in the output bucket
    REJECTED = "REJECTED"  # final: the drop was invalid (ours or the provider's validation)
    FAILED = "FAILED"  # final: the provider task failed or was cancelled
    EXPIRED = "EXPIRED"  # final: the task or its video link outlived the provider's 24 hours
    CANCELED = "CANCELED"  # final: withdrawn by the user before it was paid for (no video)

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {JobStatus.STORED, JobStatus.REJECTED, JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.CANCELED}
)


class DueKind(StrEnum):
    """What the poller must do with an item whose due time has passed (one sparse index for all)."""

    ADMIT = "admit"  # WAITING job, ordered by arrival; one queue per model
    LEASE = "lease"  # SUBMITTING job whose lease ran out: reconcile with the provider's task list
    POLL = "poll"  # SUBMITTED job: query its task
    COMPLETE = "complete"  # COMPLETING job whose completion did not finish: hand it over again
    NOTIFY = "notify"  # final job whose notification is not confirmed
    SETTLE = "settle"  # incomplete drop folder: reject it if still incomplete
    WEBHOOK = "webhook"  # webhook delivery attempt due
    EARLY = "early"  # push event for a task not (yet) known: look the task up again
    FILM = "film"  # film run: advance it, hand it to the stitch again, or announce it (safety net)
    HOLD = "hold"  # HELD job, ordered by arrival; one queue for every model (the budget is the deployment's)

    def key(self, model: str | None = None) -> str:
        """The index partition: waiting jobs queue per model, everything else shares its kind's."""
        return f"{self.value}#{model}" if self is DueKind.ADMIT else self.value


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    code: str
    message: str
    hint: str = ""
    retryable: bool = False
    provider_request_id: str | None = None
    field: str | None = None  # the job.json field or input file at fault, when there is one

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ErrorInfo | None:
        if not data:
            return None
        return cls(
            code=str(data.get("code", "Unknown")),
            message=str(data.get("message", "")),
            hint=str(data.get("hint", "")),
            retryable=bool(data.get("retryable", False)),
            provider_request_id=data.get("provider_request_id"),
            field=data.get("field"),
        )


@dataclass(frozen=True, slots=True)
class InputObject:
    key: str
    etag: str
    size: int
    bucket: str | None = None  # None: the inbox; a continued shot's tail is in the output bucket

    def to_dict(self) -> dict[str, Any]:
        item: dict[str, Any] = {"key": self.key, "etag": self.etag, "size": self.size}
        if self.bucket is not None:
            item["bucket"] = self.bucket
        return item

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputObject:
        return cls(key=data["key"], etag=data["etag"], size=int(data["size"]), bucket=data.get("bucket"))


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What the user asked for, validated: job.json (or prompt.txt) merged over the deployment defaults."""

    model: str
    resolution: str
    prompt: str | None = None
    negative_prompt: str | None = None
    prompt_extend: bool = True
    watermark: bool = False
    seed: int | None = None
    template: str | None = None
    webhook_url: str | None = None
    duration: int | None = None  # seconds; None: the model's default
    webhook_events: tuple[str, ...] | None = None  # the job's event filter; None: the deployment's

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        if self.webhook_events is not None:
            data["webhook_events"] = list(self.webhook_events)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        seed = data.get("seed")
        return cls(
            model=data["model"],
            resolution=data["resolution"],
            prompt=data.get("prompt"),
            negative_prompt=data.get("negative_prompt"),
            prompt_extend=bool(data.get("prompt_extend", True)),
            watermark=bool(data.get("watermark", False)),
            seed=int(seed) if seed is not None else None,
            template=data.get("template"),
            webhook_url=data.get("webhook_url"),
            duration=int(data["duration"]) if data.get("duration") is not None else None,
            webhook_events=tuple(data["webhook_events"]) if data.get("webhook_events") else None,
        )


def plain(value: Any) -> Any:
    """DynamoDB returns numbers as Decimal; turn them back into int/float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class Job:
    """One run of a drop folder, as the jobs table holds it."""

    job_id: str
    job_name: str
    run_id: str
    status: JobStatus
    spec: JobSpec | None
    inputs: dict[str, InputObject]
    created_at: float
    updated_at: float
    expected_size: tuple[int, int] | None = None
    error: ErrorInfo | None = None
    finished_at: float | None = None
    # submission
    submit_started_at: float | None = None
    lease_holder: str | None = None  # the submit lease holder that moved the job to SUBMITTING
    # the submit lane its create went through: None for the account's (one API key), else the api_key_ref
    # of the lane's key, whose tasks alone reconciliation then looks at
    submit_lane: str | None = None
    uncertain_at: float | None = None  # when a create call ended with an unknown outcome
    task_id: str | None = None
    submitted_at: float | None = None
    provider_status: str | None = None
    running_since: float | None = None  # when its task was first seen RUNNING (a straggler's clock)
    polls: int = 0
    # completion
    video_url: str | None = None
    video_key: str | None = None
    video_bytes: int | None = None
    # the video's pictures beside it (poster.jpg, contact-sheet.png), set with STORED when they were made
    poster_key: str | None = None
    contact_sheet_key: str | None = None
    provider: dict[str, Any] = field(default_factory=dict)  # times, prompts, usage as the provider gave them
    # notification
    notified_at: float | None = None
    notify_claimed_until: float | None = None
    # provider push
    push_claim_until: float | None = None
    push_event_id: str | None = None
    push_received_at: float | None = None
    # storyboards: the film runs this job is a shot of (a shot shared by two runs of a film is one job)
    film_runs: tuple[str, ...] = ()
    announce: bool = True  # False: a film's shot, announced only by its film's event (film.json shot_events)
    # cancel (its inputs deleted from the inbox, or `inbetween cancel`): when it was asked, by which way,
    # and what it did (a ``usecases.cancel.CancelAnswer``), for the CLI's answer and the event's data
    cancel_requested_at: float | None = None
    cancel_source: str | None = None
    cancel_answer: str | None = None
    # cost, in micros of the billing currency (inbetween.domain.costs): the estimate made at intake, the
    # month the estimate was committed to by admission (None: nothing committed), the bill once final
    estimate_micros: int | None = None
    spend_month: str | None = None
    cost_micros: int | None = None

    @property
    def model(self) -> str | None:
        return self.spec.model if self.spec else None

    def to_item(self) -> dict[str, Any]:
        """The table item's attributes (no key, no due fields: the store adds those). None is left out."""
        item: dict[str, Any] = {
            "job_id": self.job_id,
            "job_name": self.job_name,
            "run_id": self.run_id,
            "status": self.status.value,
            "spec": self.spec.to_dict() if self.spec else None,
            "inputs": {role: obj.to_dict() for role, obj in self.inputs.items()},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "expected_size": list(self.expected_size) if self.expected_size else None,
            "error": self.error.to_dict() if self.error else None,
            "provider": self.provider or None,
            "polls": self.polls or None,
            "film_runs": list(self.film_runs) or None,
            "announce": None if self.announce else False,
        }
        for name in _SCALAR_FIELDS:
            item[name] = getattr(self, name)
        return {k: v for k, v in item.items() if v is not None}

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Job:
        item = plain(item)
        size = item.get("expected_size")
        scalars: dict[str, Any] = {}
        for name in _SCALAR_FIELDS:
            value = item.get(name)
            scalars[name] = _float_or_none(value) if name in _TIME_FIELDS else value
        for name in ("video_bytes", "estimate_micros", "cost_micros"):
            if scalars[name] is not None:
                scalars[name] = int(scalars[name])
        return cls(
            job_id=item["job_id"],
            job_name=item["job_name"],
            run_id=item["run_id"],
            status=JobStatus(item["status"]),
            spec=JobSpec.from_dict(item["spec"]) if item.get("spec") else None,
            inputs={k: InputObject.from_dict(v) for k, v in (item.get("inputs") or {}).items()},
            created_at=float(item["created_at"]),
            updated_at=float(item["updated_at"]),
            expected_size=(int(size[0]), int(size[1])) if size else None,
            error=ErrorInfo.from_dict(item.get("error")),
            provider=item.get("provider") or {},
            polls=int(item.get("polls", 0)),
            film_runs=tuple(dict.fromkeys(item.get("film_runs") or ())),
            announce=bool(item.get("announce", True)),
            **scalars,
        )


_TIME_FIELDS = frozenset(
    {
        "finished_at",
        "running_since",
        "submit_started_at",
        "uncertain_at",
        "submitted_at",
        "notified_at",
        "notify_claimed_until",
        "push_claim_until",
        "push_received_at",
        "cancel_requested_at",
    }
)
_SCALAR_FIELDS = (
    "finished_at",
    "submit_started_at",
    "lease_holder",
    "submit_lane",
    "uncertain_at",
    "task_id",
    "submitted_at",
    "provider_status",
    "running_since",
    "video_url",
    "video_key",
    "video_bytes",
    "poster_key",
    "contact_sheet_key",
    "notified_at",
    "notify_claimed_until",
    "push_claim_until",
    "push_event_id",
    "push_received_at",
    "cancel_requested_at",
    "cancel_source",
    "cancel_answer",
    "estimate_micros",
    "spend_month",
    "cost_micros",
)
# what a state change may set: every field but the identity and the bookkeeping the store does itself
SETTABLE_FIELDS = frozenset(f.name for f in fields(Job)) - {
    "job_id",
    "job_name",
    "run_id",
    "status",
    "updated_at",
    "film_runs",  # grows only, by JobStore.link_shot
}


def item_value(value: Any) -> Any:
    """A model value as the table stores it (ErrorInfo and JobSpec as maps, tuples as lists)."""
    if isinstance(value, ErrorInfo | JobSpec):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(slots=True)
class Transition:
    """A conditional change of one job: from one of ``expected`` to ``new_status`` (None: same status),
    with attributes set (None removes), counters added, its due item moved, a provider slot taken or
    given back in the same transaction, the month's committed spend changed in it too (an admission within
    the budget, or a settlement), and optionally only while no push claim is held."""

    job_id: str
    expected: tuple[JobStatus, ...]
    new_status: JobStatus | None
    sets: dict[str, Any] = field(default_factory=dict)
    adds: dict[str, int] = field(default_factory=dict)
    due: tuple[str, float] | None = None
    slot_model: str | None = None
    slot_delta: int = 0
    slot_limit: int = 0
    push_unclaimed_at: float | None = None
    # the month's spend item: add ``spend_delta`` micros to ``spend_month``'s committed spend; with
    # ``spend_budget`` only if the sum stays within it (admission). ``spend_owner``: the job's own
    # ``spend_month`` must still be this (None: unset) for the change to apply
    spend_month: str | None = None
    spend_delta: int = 0
    spend_budget: int | None = None
    spend_owner: tuple[str | None] | None = None

    @classmethod
    def of(
        cls, job_id: str, expected: JobStatus | tuple[JobStatus, ...], new_status: JobStatus | None = None
    ) -> Transition:
        return cls(job_id, expected if isinstance(expected, tuple) else (expected,), new_status)

    def set(self, **values: Any) -> Transition:
        unknown = set(values) - SETTABLE_FIELDS
        if unknown:
            raise TypeError(f"not a settable job field: {', '.join(sorted(unknown))}")
        self.sets.update({k: item_value(v) for k, v in values.items()})
        return self

    def add(self, **values: int) -> Transition:
        unknown = set(values) - {"polls"}
        if unknown:
            raise TypeError(f"not a job counter: {', '.join(sorted(unknown))}")
        self.adds.update(values)
        return self

    def schedule(self, kind: DueKind, at: float, *, model: str | None = None) -> Transition:
        self.due = (kind.key(model), at)
        return self

    def take_slot(self, model: str, limit: int) -> Transition:
        self.slot_model, self.slot_delta, self.slot_limit = model, 1, limit
        return self

    def release_slot(self, model: str) -> Transition:
        self.slot_model, self.slot_delta = model, -1
        return self

    def commit_spend(self, month: str, estimate_micros: int, budget_micros: int | None) -> Transition:
        """Admission: commit the job's estimate to ``month``, only if it fits ``budget_micros`` (None: no
        budget), and only if the job has nothing committed yet; the job records the month."""
        self.spend_month, self.spend_delta, self.spend_budget = month, estimate_micros, budget_micros
        self.spend_owner = (None,)
        self.sets["spend_month"] = month
        self.sets["estimate_micros"] = estimate_micros
        return self

    def settle_spend(self, month: str, delta_micros: int, *, keep_month: bool) -> Transition:
        """Correct ``month``'s committed spend by ``delta_micros`` (the bill minus the estimate when a job
        ends; minus the estimate when it goes back to waiting), only while the job is still committed to
        ``month``. ``keep_month`` False: the job has nothing committed afterwards."""
        self.spend_month, self.spend_delta, self.spend_budget = month, delta_micros, None
        self.spend_owner = (month,)
        if not keep_month:
            self.sets["spend_month"] = None
        return self

    def nothing_committed(self) -> Transition:
        """Only while the job has no spend committed (a job read before an admission is stale)."""
        self.spend_owner = (None,)
        return self

    def unless_push_claimed(self, now: float) -> Transition:
        """Only while no push claim on the job is still running at ``now``."""
        self.push_unclaimed_at = now
        return self


@dataclass(frozen=True, slots=True)
class SubmitLease:
    """A submit lane's lease (the account's, or one API key's), and when its next create may be sent."""

    holder: str
    lease_until: float
    next_submit_at: float = 0.0
    # when taken over from a holder that never released it (it died, or left it on purpose because a
    # create's outcome escaped): that holder's lease_until, within which its last create may have run
    expired_until: float | None = None
    lane: str = ""  # "" for the account's lane, else the api_key_ref of the lane's key
    api_key_id: str | None = None  # the provider's id of the lane's key, once learnt


@dataclass(frozen=True, slots=True)
class EarlyEvent:
    """A push event for a task the table does not know (yet)."""

    task_id: str
    received_at: float
    recheck_at: float
    expires_at: float


class DeliveryState(StrEnum):
    PENDING = "pending"  # attempts remain
    DELIVERED = "delivered"  # a 2xx answer
    GONE = "gone"  # 410: the receiver asked us to stop
    EXHAUSTED = "exhausted"  # every attempt of the schedule failed
    REFUSED = "refused"  # the SSRF guard refused the destination; never retried
    WAITING = "waiting"  # its endpoint is paused: sent, in creation order, once it is resumed


@dataclass(frozen=True, slots=True)
class DeliveryLogEntry:
    """One line of a delivery's log: an attempt (what the receiver said, when the next one is due), or
    what an operator or the pipeline did to it (replayed, held for a paused endpoint, released)."""

    at: float
    state: DeliveryState
    status: int | None = None  # the receiver's HTTP status; None: no answer (see error), or no attempt
    error: str | None = None
    next_attempt_at: float | None = None
    note: str | None = None  # "replay", "held: endpoint paused", "released": not an attempt

    def to_dict(self) -> dict[str, Any]:
        item = {
            "at": self.at,
            "state": self.state.value,
            "status": self.status,
            "error": self.error,
            "next_attempt_at": self.next_attempt_at,
            "note": self.note,
        }
        return {k: v for k, v in item.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeliveryLogEntry:
        data = plain(data)
        return cls(
            at=float(data["at"]),
            state=DeliveryState(data["state"]),
            status=data.get("status"),
            error=data.get("error"),
            next_attempt_at=_float_or_none(data.get("next_attempt_at")),
            note=data.get("note"),
        )


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One webhook event to one URL, and its attempts so far."""

    delivery_id: str  # the Standard Webhooks message id, the same on every attempt
    job_id: str
    url: str
    body: str
    created_at: float
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    next_attempt_at: float | None = None
    replays: int = 0  # times an operator asked for it again (``inbetween webhook replay``)
    log: tuple[DeliveryLogEntry, ...] = ()  # oldest first

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "delivery_id": self.delivery_id,
            "job_id": self.job_id,
            "url": self.url,
            "body": self.body,
            "created_at": self.created_at,
            "state": self.state.value,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at,
            "replays": self.replays or None,
            "log": [entry.to_dict() for entry in self.log] or None,
        }
        return {k: v for k, v in item.items() if v is not None}

    @classmethod
    def from_item(cls, item: dict[str, Any], *, next_attempt_at: float | None = None) -> WebhookDelivery:
        item = plain(item)
        return cls(
            delivery_id=str(item["delivery_id"]),
            job_id=str(item["job_id"]),
            url=str(item["url"]),
            body=str(item["body"]),
            created_at=float(item["created_at"]),
            state=DeliveryState(item.get("state", DeliveryState.PENDING.value)),
            attempts=int(item.get("attempts", 0)),
            last_status=item.get("last_status"),
            last_error=item.get("last_error"),
            delivered_at=_float_or_none(item.get("delivered_at")),
            next_attempt_at=next_attempt_at,
            replays=int(item.get("replays", 0)),
            log=tuple(DeliveryLogEntry.from_dict(entry) for entry in item.get("log") or ()),
        )


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """What one attempt changed: the new state, what the receiver said, and when to try next
    (``next_attempt_at`` None: no further attempt). ``counted``: False when nothing was sent."""

    state: DeliveryState
    at: float
    counted: bool = True
    status: int | None = None
    error: str | None = None
    next_attempt_at: float | None = None

    def log_entry(self) -> DeliveryLogEntry:
        return DeliveryLogEntry(self.at, self.state, self.status, self.error, self.next_attempt_at)


@dataclass(frozen=True, slots=True)
class Notification:
    """One event for the deployment's topic: what happened to which job (or film), with the event's data."""

    event_type: str
    job_name: str
    status: StrEnum  # a JobStatus, or a film's FilmStatus
    model: str | None
    timestamp: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    etag: str
    size: int
    last_modified: float


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """What the output bucket says of a stored object without reading it."""

    metadata: dict[str, str]
    version_id: str | None
    etag: str = ""
    size: int = 0


@dataclass(frozen=True, slots=True)
class StoredVideo:
    bucket: str
    key: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class VideoDownload:
    """An open download of a finished video: its declared length (if any) and its bytes, read as they
    are iterated."""

    length: int | None
    chunks: Iterable[bytes]
