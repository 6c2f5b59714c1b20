"""Admission control and submission: every provider slot busy, never a Throttling error by design,
and exactly one provider task per job.

- Slots: a counter per model, taken in the same transaction as the job's move WAITING -> SUBMITTING and
  given back in the same transaction as the job's move out of the provider (so exactly once).
- One submit lease per lane: submissions through a lane are serialized, spaced by when they can reach
  the provider (``inbetween.domain.create_spacing``: never more than the lane's share of the rate in a
  second, whatever the network's jitter), and each job records when its create call began and through
  which lane. Serialized means one create per round trip: about 2.5 a second at 0.4 s, half the 5
  wan2.7 allows, which filling the slots after a burst at a raised quota would use. So each API key of
  the account gets a lane of its own (``inbetween.domain.submit_lanes``; one key: the account's one
  lane, as it always was): creates of different lanes overlap, and a lane's reconciliation lists only
  its own key's tasks (the task list's ``api_key_id``, learnt from the key's first task), so their
  windows may overlap too. Within a lane they never do. A holder starts no create its invocation
  might not outlive (``Timing.submit_call_budget_s``): it hands over to the next invocation. A job
  stuck in SUBMITTING after its lease ran out (the function died between "task created" and "task
  recorded", or the call timed out) is reconciled with the provider's task list over exactly that
  window: one unknown task is adopted (unless it lies in another such job's window too, which only
  lanes not yet told apart can give), none means submit again, more than one means another program
  shares the key: the job fails loudly ("NeedsAttention"), we never guess.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from inbetween.config import Settings
from inbetween.deps import Deps
from inbetween.domain import costs
from inbetween.domain.catalog import (
    IMAGE_LIMITS,
    IMAGE_ROLES,
    MEDIA_ROLES,
    ModelSpec,
    model_spec,
    provider_model_name,
)
from inbetween.domain.create_spacing import CreateSpacing
from inbetween.domain.hints import provider_hint
from inbetween.domain.models import DueKind, ErrorInfo, Job, JobStatus, SubmitLease, Transition
from inbetween.domain.submit_lanes import SubmitLane, submit_lanes
from inbetween.errors import ConfigError, ProviderError, ProviderRejected, ProviderThrottled
from inbetween.observability import count, logger, seconds
from inbetween.provider.models import CreateTaskRequest, TaskSummary
from inbetween.provider.validation import data_uri, inspect_image
from inbetween.usecases import budget, cancel
from inbetween.usecases.check_schedule import FALLBACK_MIN_GENERATION_S, first_check_at
from inbetween.usecases.finishing import finish

# Clock margins around a create call's window when matching it to the provider's task list. Submits are
# serialized by the submit lease, so the next job's create starts after this window ends: keep the margin
# small so that windows of consecutive jobs do not overlap (clocks are NTP-synced on both sides).
RECONCILE_MARGIN_BEFORE_S = 1.0
RECONCILE_MARGIN_AFTER_S = 0.5
# after a create whose outcome is unknown (or a holder that died), the next create waits this long past
# the end of that create's window, so that the windows of two jobs never overlap
WINDOW_SEPARATION_S = RECONCILE_MARGIN_BEFORE_S + RECONCILE_MARGIN_AFTER_S
# a lease released while we were looking: look this many times in all
ADMIT_ROUNDS = 3
UNCERTAIN_RECHECK_S = 1.0
RECONCILE_RETRY_S = 60.0
RECONCILE_DEFERRED_S = 30.0


class SubmitOutcome(StrEnum):
    SUBMITTED = "submitted"
    THROTTLED = "throttled"  # back to waiting, its place kept
    UNAVAILABLE = "unavailable"  # provider or configuration trouble: back to waiting
    UNCERTAIN = "uncertain"  # the task may exist: reconciled once the lease runs out
    REJECTED = "rejected"  # final: the provider refused the job
    CANCELED = "canceled"  # final: cancelled while it was being admitted; no task was made

    @property
    def stops_admission(self) -> bool:
        return self in (SubmitOutcome.THROTTLED, SubmitOutcome.UNAVAILABLE, SubmitOutcome.UNCERTAIN)


class ReconcileOutcome(StrEnum):
    ADOPTED = "adopted"
    RESUBMIT = "resubmit"
    AMBIGUOUS = "ambiguous"
    DEFERRED = "deferred"


def admit(deps: Deps, model: str, *, lane: int = 0) -> int:
    """Submit waiting jobs of ``model``, oldest first, while slots are free, through submit lane
    ``lane`` (every admission uses the first; a holder filling a burst wakes the next). Returns how
    many."""
    submitted = 0
    holder = uuid.uuid4().hex
    lanes = lanes_for(deps, model)
    this_lane = lanes[lane] if 0 <= lane < len(lanes) else lanes[0]
    # the lane after this one, for a holder with more work than one create to wake (None: the last)
    next_lane = this_lane.position + 1 if this_lane.position + 1 < len(lanes) else None
    for _ in range(ADMIT_ROUNDS):
        lease = deps.store.acquire_submit_lease(holder, deps.timing.submit_lease_s, lane=this_lane.name)
        if lease is None:
            return submitted  # the holder admits after its own work; the poller admits next tick anyway
        # Released only when the work ended normally. If anything escaped (a create may have succeeded
        # without being recorded), the lease stays until it expires, as if this worker had died: no other
        # create of this lane can then fall inside that job's reconciliation window.
        n, stop = _admit_under_lease(deps, model, lease, this_lane, wake=next_lane)
        next_lane = None  # woken once
        submitted += n
        deps.store.release_submit_lease(holder, lane=this_lane.name)
        if stop and n and not _time_for_a_create(deps):
            # this invocation may end before another create would: the next one (with the lease free
            # now) admits the rest at once. Only a holder that created hands over, so that a function
            # whose whole timeout is too short for a create never bounces the message back and forth.
            deps.queues.admit_waiting(model, lane=this_lane.position)
            return submitted
        if stop or not deps.store.due_jobs(DueKind.ADMIT, deps.clock.now(), model=model, limit=1):
            return submitted
    return submitted


def lanes_for(deps: Deps, model: str) -> tuple[SubmitLane, ...]:
    """The submit lanes of ``model``: one per API key the secret holds, sharing the account's creates a
    second (``inbetween.domain.submit_lanes``). An unreadable secret gives the account's one lane: its
    create then says what is wrong, as it always did."""
    rate = admission_limits(deps, model).submit_per_s
    try:
        refs = deps.provider.key_refs()
    except ConfigError:
        refs = ()
    return submit_lanes(refs, rate)


def admit_or_hand_over(deps: Deps, model: str) -> int:
    """The poller's admission. Late in its invocation, where a create might outlive it (its tick runs
    55 s of its 75), the submit function admits instead, at once, in an invocation of its own."""
    if _time_for_a_create(deps):
        return admit(deps, model)
    deps.queues.admit_waiting(model)
    return 0


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """What admission allows itself for one model: tasks in flight (the slots) and creates per second."""

    concurrency: int
    submit_per_s: float
    source: str  # "configured" (PROVIDER_CONCURRENCY), "live" (list-quotas) or "published" (catalog)


def admission_limits(deps: Deps, model: str) -> AdmissionLimits:
    """The slots and create rate for ``model``: ``PROVIDER_CONCURRENCY`` when set, else the account's
    live quota (list-quotas, cached for minutes), else the catalog's published figures. The create rate
    is the live one when known (a raised quota raises it too), else the published one.

    A model whose provider holds tasks PENDING in its own queue gets a backlog of slots beyond its
    concurrency (``provider_backlog``): those tasks start the moment a running one ends, with no
    hand-over gap."""
    spec = model_spec(model)
    live = deps.quotas.quota_for(provider_model_name(model, deps.settings.provider_region))
    published_rate = spec.submit_rps if spec else 1.0
    submit_per_s = live.submit_per_s if live and live.submit_per_s else published_rate
    if deps.settings.provider_concurrency:
        concurrency, source = deps.settings.provider_concurrency, "configured"
    elif live and live.concurrency:
        concurrency, source = live.concurrency, "live"
    else:
        concurrency, source = deps.settings.concurrency_for(model), "published"
    queue = live.queue if live and live.queue is not None else (spec.provider_queue if spec else None)
    backlog = provider_backlog(deps.settings, concurrency, spec, queue)
    return AdmissionLimits(concurrency + backlog, submit_per_s, source)


def provider_backlog(settings: Settings, concurrency: int, spec: ModelSpec | None, queue: int | None) -> int:
    """How many tasks admission keeps waiting in the provider's queue beyond the running ones.

    ``PROVIDER_BACKLOG`` fixes it; "auto" (the default) keeps as many as the model's fastest tasks can end
    inside one detection window (the poll grid): ``ceil(concurrency x poll interval / shortest
    generation time)``, at least 1. Each end inside a window then finds its successor already queued,
    instead of leaving its slot idle until the next check: 1 at the published quota of 5 (where the
    bench found a second not worth it), 4 at 20, 20 at 100. A queued task waits about the same whatever
    the quota (the window times the mean over the shortest generation time, under a minute), well inside
    the inputs' presigned links. Never more than the provider's queue; 0 for a model without one."""
    if not queue:
        return 0
    wanted = settings.provider_backlog
    if wanted is None:
        shortest = float(spec.min_generation_s) if spec else FALLBACK_MIN_GENERATION_S
        wanted = max(1, math.ceil(concurrency * settings.poll_interval_s / shortest - 1e-9))
    return min(wanted, queue)


def _admit_under_lease(
    deps: Deps, model: str, lease: SubmitLease, lane: SubmitLane, *, wake: int | None = None
) -> tuple[int, bool]:
    """Create tasks for waiting jobs through ``lane`` while slots are free. With ``wake`` (the next
    lane's index, with several lanes), a holder about to make its second create has more work than one
    create and a slot for it: it starts that lane's holder (an invocation of its own, which does the
    same), so that a burst fills the slots through every lane at once. One freed slot (the steady
    state) wakes nobody, and costs nothing more than with one lane."""
    limits = admission_limits(deps, model)
    limit = limits.concurrency
    next_submit_at = lease.next_submit_at
    if lease.expired_until is not None:
        # the last holder never released the lease: its last create may have run until its lease ran
        # out, and that job's reconciliation window ends a margin later. Ours must start after it.
        next_submit_at = max(next_submit_at, lease.expired_until + WINDOW_SEPARATION_S)
    # spaced by when creates can reach the provider (inside their round trips), not by when they began
    # (a lane's share of the account's rate: with one key, all of it)
    spacing = CreateSpacing(lane.rate_per_s, floor=next_submit_at)
    # a key's api_key_id is learnt from its first task (and kept on its lane's lease), so that its
    # lane's reconciliation lists its tasks alone
    key_id_known = lane.key_ref is None or lease.api_key_id is not None
    submitted = 0
    while True:
        waiting = deps.store.due_jobs(DueKind.ADMIT, deps.clock.now(), model=model, limit=lane.position + 1)
        if not waiting:
            return _handed_off(deps, lease, spacing, submitted, stop=False)
        job = waiting[-1]
        if not _time_for_a_create(deps):
            # a create cut off by the invocation's end is a crash: its job waits for reconciliation
            return _handed_off(deps, lease, spacing, submitted, stop=True)
        # the month's budget: a job it cannot take now is held (in arrival order), never submitted
        budget_micros = budget.current_budget(deps)
        if budget_micros is not None and budget.must_hold(
            deps, job, costs.month_of(deps.clock.now()), budget_micros
        ):
            if not budget.hold(deps, job, costs.month_of(deps.clock.now()), budget_micros):
                if _still_waiting(deps, job):
                    # it could not be held just now: the next admission looks again
                    return _handed_off(deps, lease, spacing, submitted, stop=True)
            continue
        wait = spacing.next_start() - deps.clock.now()
        if wait > 0:
            if deps.store.slots_in_use(model) >= limit:
                # no slot: whoever frees one admits the next
                return _handed_off(deps, lease, spacing, submitted, stop=True)
            deps.clock.sleep(wait)
        # the create's window (for reconciliation) starts here, after any wait: it never reaches back
        # into the previous create's
        now = deps.clock.now()
        month = costs.month_of(now)
        tr = (
            Transition.of(job.job_id, JobStatus.WAITING, JobStatus.SUBMITTING)
            .set(submit_started_at=now, lease_holder=lease.holder, submit_lane=lane.key_ref)
            .schedule(DueKind.LEASE, now + deps.timing.submit_lease_s)
            .take_slot(model, limit)
            # its estimate joins the month's committed spend in the same transaction, within the budget
            .commit_spend(month, budget.job_estimate(deps, job), budget_micros)
        )
        if not deps.store.apply(tr):
            if deps.store.slots_in_use(model) >= limit:
                # all slots busy: whoever frees one admits the next
                return _handed_off(deps, lease, spacing, submitted, stop=True)
            if budget_micros is not None and budget.over_budget(deps, job, month, budget_micros):
                # another admission took the room first
                if not budget.hold(deps, job, month, budget_micros) and _still_waiting(deps, job):
                    return _handed_off(deps, lease, spacing, submitted, stop=True)
            continue  # the job moved under us; look again
        if wake is not None and submitted == 1:
            deps.queues.admit_waiting(model, lane=wake)
            wake = None
        if budget_micros is not None:
            budget.report_used(deps.store.month_spend(month), budget_micros)
        # the lease now covers this job's window; the spacing it records is that of the creates ended
        deps.store.extend_submit_lease(
            lease.holder, deps.timing.submit_lease_s, next_submit_at=spacing.handoff(), lane=lease.lane
        )
        outcome = submit(deps, job, key_ref=lane.key_ref)
        spacing.ended(deps.clock.now())
        if outcome is SubmitOutcome.SUBMITTED:
            submitted += 1
            if not key_id_known and lane.key_ref is not None:
                key_id_known = _learn_key_id(deps, lane.key_ref, job.job_id)
        elif outcome.stops_admission:
            if outcome is SubmitOutcome.UNCERTAIN:
                # the task may exist, created up to now: the next create (whoever sends it) waits until
                # this job's reconciliation window has closed, so no task of another job falls inside it
                deps.store.extend_submit_lease(
                    lease.holder,
                    deps.timing.submit_lease_s,
                    next_submit_at=max(spacing.handoff(), deps.clock.now() + WINDOW_SEPARATION_S),
                    lane=lease.lane,
                )
                return submitted, True
            return _handed_off(deps, lease, spacing, submitted, stop=True)


def _time_for_a_create(deps: Deps) -> bool:
    """Whether the invocation lasts for one more create call, whatever the call takes (the budget's
    margin covers the spacing wait before it)."""
    return deps.time_left_s() >= deps.timing.submit_call_budget_s


def _handed_off(
    deps: Deps, lease: SubmitLease, spacing: CreateSpacing, submitted: int, *, stop: bool
) -> tuple[int, bool]:
    """The holder is done: the lease keeps when the next create may start, for whoever holds it next
    (the last round trip ended after the lease was last written; a lease taken over from a holder that
    died keeps that holder's window closed to the next one too)."""
    if spacing.handoff() > lease.next_submit_at:
        deps.store.extend_submit_lease(
            lease.holder, deps.timing.submit_lease_s, next_submit_at=spacing.handoff(), lane=lease.lane
        )
    return submitted, stop


def _learn_key_id(deps: Deps, key_ref: str, job_id: str) -> bool:
    """Find the provider's ``api_key_id`` of the key ``key_ref`` names, from the task it just created
    (one task-list page, once per key ever). Whether it is known now; if the list fails, the key's
    next holder tries again, and until then its lane's reconciliation looks at every key's tasks."""
    job = deps.store.get_job(job_id)
    if job is None or not job.task_id or job.submit_started_at is None:
        return False
    start = datetime.fromtimestamp(job.submit_started_at - RECONCILE_MARGIN_BEFORE_S, UTC)
    end = datetime.fromtimestamp(deps.clock.now() + RECONCILE_MARGIN_AFTER_S, UTC)
    try:
        model = provider_model_name(job.model or "", deps.settings.provider_region)
        found = next(
            (
                t
                for t in deps.provider.iter_tasks(start=start, end=end, model=model)
                if t.task_id == job.task_id
            ),
            None,
        )
    except (ProviderError, ConfigError):
        return False
    if found is None or not found.api_key_id:
        return False
    deps.store.remember_api_key_id(found.api_key_id, lane=key_ref)
    logger.info("API key identified for its submit lane", extra={"api_key_id": found.api_key_id})
    return True


def _still_waiting(deps: Deps, job: Job) -> bool:
    current = deps.store.get_job(job.job_id)
    return current is not None and current.status is JobStatus.WAITING


def _input_url(deps: Deps, job: Job, role: str) -> str:
    """How the provider fetches one input: a presigned S3 link, or, for frames with FRAME_TRANSPORT
    base64, the image inline (the provider documents base64 for images only)."""
    obj = job.inputs[role]
    settings = deps.settings
    bucket = obj.bucket or settings.inbox_bucket
    if settings.frame_transport == "base64" and role in IMAGE_ROLES:
        spec = model_spec(job.model or "")
        data = deps.blobs.read(bucket, obj.key)
        return data_uri(
            data, inspect_image(data, name=role, limits=spec.image_limits if spec else IMAGE_LIMITS)
        )
    return deps.blobs.presign_get(bucket, obj.key, settings.presign_ttl_s)


def build_request(deps: Deps, job: Job) -> CreateTaskRequest:
    if job.spec is None:
        raise ValueError(f"job {job.job_id} has no spec to submit")
    return CreateTaskRequest.for_spec(
        job.spec,
        region=deps.settings.provider_region,
        media={role: _input_url(deps, job, role) for role in MEDIA_ROLES if role in job.inputs},
    )


def submit(deps: Deps, job: Job, *, key_ref: str | None = None) -> SubmitOutcome:
    """Create the provider task for a job we hold in SUBMITTING (with its slot), with the first API key
    or, for a lane of its own, the one ``key_ref`` names."""
    if cancel.withdraw_before_create(deps, job):
        return SubmitOutcome.CANCELED  # a cancel came while it was being admitted: nothing is made
    try:
        request = build_request(deps, job)
        if key_ref is None:
            ref = deps.provider.create_task(request)
        else:
            ref = deps.provider.create_task(request, key_ref=key_ref)
    except ConfigError as exc:
        # nothing was sent (e.g. the API key secret is still empty): the job waits, the operator is told
        _back_to_waiting(deps, job)
        count("JobsNeedingAttention")
        logger.error("cannot submit: configuration problem", extra={"job_id": job.job_id, "error": str(exc)})
        return SubmitOutcome.UNAVAILABLE
    except ProviderThrottled as exc:
        # the account is busy (maybe another program): back to the queue, keep its place, never fail
        _back_to_waiting(deps, job)
        count("ProviderThrottled")
        logger.warning(
            "provider throttled the create; job waits", extra={"job_id": job.job_id, "code": exc.code}
        )
        return SubmitOutcome.THROTTLED
    except ProviderRejected as exc:
        error = ErrorInfo(
            code=exc.code or "ProviderRejected",
            message=exc.message,
            hint=provider_hint(exc.code),
            provider_request_id=exc.request_id,
        )
        finish(deps, job, JobStatus.REJECTED, expected=JobStatus.SUBMITTING, error=error, release_slot=True)
        return SubmitOutcome.REJECTED
    except ProviderError as exc:
        if exc.maybe_created:
            # the task may exist: reconcile from the provider's list once the lease runs out
            deps.store.apply(
                Transition.of(job.job_id, JobStatus.SUBMITTING)
                .set(uncertain_at=deps.clock.now())
                .schedule(DueKind.LEASE, deps.clock.now() + UNCERTAIN_RECHECK_S)
            )
            count("SubmitsUncertain")
            logger.warning("create outcome unknown; will reconcile", extra={"job_id": job.job_id})
            return SubmitOutcome.UNCERTAIN
        _back_to_waiting(deps, job)
        count("ProviderUnavailable")
        return SubmitOutcome.UNAVAILABLE
    record_task(deps, job, ref.task_id)
    count("JobsSubmitted")
    seconds("QueueWait", deps.clock.now() - job.created_at)
    logger.info("task created", extra={"job_id": job.job_id, "task_id": ref.task_id, "model": job.model})
    return SubmitOutcome.SUBMITTED


def record_task(deps: Deps, job: Job, task_id: str) -> bool:
    """The task is ours: first its owner record (which reconciliation trusts), then the job's move."""
    deps.store.record_task(task_id, job.job_id)
    now = deps.clock.now()
    recorded = deps.store.apply(
        Transition.of(job.job_id, JobStatus.SUBMITTING, JobStatus.SUBMITTED)
        .set(
            task_id=task_id, submitted_at=now, provider_status="PENDING", lease_holder=None, uncertain_at=None
        )
        .schedule(DueKind.POLL, first_check_at(deps.settings, deps.timing, job.model, now))
    )
    if recorded:
        cancel.honour_request(deps, job.job_id)  # a cancel that came during the create: the task is PENDING
    return recorded


def _back_to_waiting(deps: Deps, job: Job) -> None:
    tr = (
        Transition.of(job.job_id, JobStatus.SUBMITTING, JobStatus.WAITING)
        .set(submit_started_at=None, lease_holder=None, uncertain_at=None, submit_lane=None)
        .schedule(DueKind.ADMIT, job.created_at, model=job.model)
        .release_slot(job.model or "")
    )
    # nothing was paid: its estimate leaves the month's committed spend in the same transaction (the
    # caller's copy may predate the admission that committed it, so the table's is the one to go by)
    current = deps.store.get_job(job.job_id) or job
    if current.spend_month is not None:
        tr.settle_spend(current.spend_month, -(current.estimate_micros or 0), keep_month=False)
    else:
        tr.nothing_committed()
    deps.store.apply(tr)
    cancel.honour_request(deps, job.job_id)  # a cancel that came during the create: withdrawn now


def reconcile_expired_leases(deps: Deps, limit: int = 10) -> int:
    """Poller: jobs left in SUBMITTING (crash or unknown outcome) are matched to the provider's task list."""
    due = deps.store.due_jobs(DueKind.LEASE, deps.clock.now(), limit=limit)
    by_lane: dict[str, list[Job]] = {}
    for job in due:
        by_lane.setdefault(job.submit_lane or "", []).append(job)
    handled = 0
    for lane, jobs in by_lane.items():
        handled += _reconcile_lane(deps, lane, jobs)
    return handled


def _reconcile_lane(deps: Deps, lane: str, due: list[Job]) -> int:
    # Hold the lane's submit lease while reconciling: no create of that lane is in flight, so every task
    # of its key in the window is either recorded or the orphan we are looking for.
    holder = uuid.uuid4().hex
    lease = deps.store.acquire_submit_lease(holder, deps.timing.submit_lease_s, lane=lane)
    if lease is None:
        return 0
    handled = 0
    try:
        for job in due:
            if job.status is not JobStatus.SUBMITTING:
                continue
            try:
                reconcile(deps, job, api_key_id=lease.api_key_id)
            except Exception:  # noqa: BLE001 - one job's trouble must not stall everyone's reconciliation
                logger.exception("reconciliation failed; will retry", extra={"job_id": job.job_id})
                count("ReconciliationErrors")
                deps.store.apply(
                    Transition.of(job.job_id, JobStatus.SUBMITTING).schedule(
                        DueKind.LEASE, deps.clock.now() + RECONCILE_RETRY_S
                    )
                )
            handled += 1
    finally:
        deps.store.release_submit_lease(holder, lane=lane)
    return handled


def _create_window(deps: Deps, job: Job) -> tuple[float, float]:
    """When ``job``'s create call may have reached the provider, margins included (epoch seconds)."""
    started = job.submit_started_at or job.updated_at
    # the create call ran inside [started, uncertain_at] (a known outcome) or inside the lease (a crash)
    ended = job.uncertain_at or started + deps.timing.submit_lease_s
    ended = max(started, min(ended, deps.clock.now()))
    lo = started - RECONCILE_MARGIN_BEFORE_S
    return lo, min(ended + RECONCILE_MARGIN_AFTER_S, lo + 23 * 3600)


def reconcile(deps: Deps, job: Job, *, api_key_id: str | None = None) -> ReconcileOutcome:
    """Match ``job``'s create to the provider's task list over its window. ``api_key_id``: its lane's
    key's, when learnt (from the lane's lease, which the caller holds)."""
    job = deps.store.get_job(job.job_id) or job  # the index may lag: uncertain_at from the table itself
    lo, hi = _create_window(deps, job)
    # a lane of its own key lists that key's tasks alone: another lane's creates, in flight at the same
    # moment, are not in it (until the key's id is learnt, every key's are, as with one lane)
    key_id = api_key_id if job.submit_lane else None
    try:
        model = provider_model_name(job.model or "", deps.settings.provider_region)
        start, end = datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC)
        if key_id is None:
            tasks = list(deps.provider.iter_tasks(start=start, end=end, model=model))
        else:
            tasks = [
                t
                for t in deps.provider.iter_tasks(start=start, end=end, model=model, api_key_id=key_id)
                if t.api_key_id in (None, key_id)
            ]
    except (ProviderError, ConfigError) as exc:
        logger.warning(
            "reconciliation deferred: task list unavailable",
            extra={"job_id": job.job_id, "code": getattr(exc, "code", None)},
        )
        _reconcile_later(deps, job)
        return ReconcileOutcome.DEFERRED
    owners = {
        t.task_id: deps.store.job_for_task(t.task_id) for t in tasks if lo <= t.gmt_create.timestamp() <= hi
    }
    mine = [task_id for task_id, owner in owners.items() if owner == job.job_id]
    if mine:  # the task was recorded as ours, but the job's own state change did not happen
        record_task(deps, job, mine[0])
        count("OrphansAdopted")
        logger.warning("recorded task adopted", extra={"job_id": job.job_id, "task_id": mine[0]})
        return ReconcileOutcome.ADOPTED
    unknown = [t for t in tasks if t.task_id in owners and owners[t.task_id] is None]
    if len(unknown) == 1:
        rival = _rival_window(deps, job, unknown[0], filtered=key_id is not None)
        if rival is None:
            record_task(deps, job, unknown[0].task_id)
            count("OrphansAdopted")
            logger.warning("orphan task adopted", extra={"job_id": job.job_id, "task_id": unknown[0].task_id})
            return ReconcileOutcome.ADOPTED
        if (
            rival.uncertain_at is None
            and rival.submit_started_at is not None
            and (rival.submit_started_at + deps.timing.submit_lease_s > deps.clock.now())
        ):
            # the other job's create is still in flight: once it is recorded, the task is known
            _reconcile_later(deps, job)
            return ReconcileOutcome.DEFERRED
        # either job may have made it: both fail, loudly, so that neither gets the other's video (the
        # other, left alone, would adopt it next)
        _needs_attention(deps, rival, unknown, shared=True)
        _needs_attention(deps, job, unknown, shared=True)
        return ReconcileOutcome.AMBIGUOUS
    if not unknown:
        _back_to_waiting(deps, job)
        count("OrphansNone")
        logger.info("no task was created; job waits for a new submit", extra={"job_id": job.job_id})
        return ReconcileOutcome.RESUBMIT
    _needs_attention(deps, job, unknown, shared=False)
    return ReconcileOutcome.AMBIGUOUS


def _needs_attention(deps: Deps, job: Job, unknown: list[TaskSummary], *, shared: bool) -> None:
    message = (
        "an unrecorded provider task was created while this job and another of ours were being submitted "
        "through lanes not yet told apart; either may have made it, so neither takes it by guess"
        if shared
        else f"{len(unknown)} unrecorded provider tasks were created while this job was being submitted; "
        "another program may be using the same API key"
    )
    error = ErrorInfo(
        code="NeedsAttention",
        message=message,
        hint="check the provider console for tasks " + ", ".join(t.task_id for t in unknown[:5]),
    )
    count("JobsNeedingAttention")
    finish(deps, job, JobStatus.FAILED, expected=JobStatus.SUBMITTING, error=error, release_slot=True)


def _reconcile_later(deps: Deps, job: Job) -> None:
    deps.store.apply(
        Transition.of(job.job_id, JobStatus.SUBMITTING).schedule(
            DueKind.LEASE, deps.clock.now() + RECONCILE_DEFERRED_S
        )
    )


def _rival_window(deps: Deps, job: Job, task: TaskSummary, *, filtered: bool) -> Job | None:
    """Another job in SUBMITTING whose create may have made ``task`` too: its window holds the task's
    creation and its key may be the task's. Within one lane windows never overlap (the lease spaces
    them); across lanes they do, and until a key's id is learnt its lane cannot tell the lanes' tasks
    apart, nor a lane created under an older view of the secret (one key, for a few minutes after a
    second was added). Adopting then could give one job another's video: this says when not to."""
    created = task.gmt_create.timestamp()
    for other in deps.store.due_jobs(DueKind.LEASE, deps.clock.now() + 86_400, limit=100):
        if other.job_id == job.job_id or other.model != job.model or other.status is not JobStatus.SUBMITTING:
            continue
        if filtered and other.submit_lane not in (None, job.submit_lane):
            continue  # its key's tasks are not in this job's list
        lo, hi = _create_window(deps, other)
        if lo <= created <= hi:
            return other
    return None
