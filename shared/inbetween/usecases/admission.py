"""Admission control and submission: every provider slot busy, never a Throttling error by design,
and exactly one provider task per job.

- Slots: a counter per model, taken in the same transaction as the job's move WAITING -> SUBMITTING and
  given back in the same transaction as the job's move out of the provider (so exactly once).
- One submit lease per provider account (``lock#submit``): submissions are serialized (the provider
  allows 1-2 creates per second anyway) and each job records when its create call began. A job stuck in
  SUBMITTING after its lease ran out (the function died between "task created" and "task recorded", or
  the call timed out) is reconciled with the provider's task list over exactly that window: one unknown
  task is adopted, none means submit again, more than one means another program shares the key: the
  job fails loudly ("NeedsAttention"), we never guess.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from inbetween.aws.jobs_table import Transition
from inbetween.deps import Deps
from inbetween.domain.catalog import model_spec, provider_model_name
from inbetween.domain.models import DueKind, ErrorInfo, Job, JobStatus
from inbetween.errors import ConfigError, ProviderError, ProviderRejected, ProviderThrottled
from inbetween.observability import count, logger, seconds
from inbetween.provider.models import CreateTaskRequest
from inbetween.provider.validation import data_uri, inspect_image
from inbetween.usecases.notify import finish

# Clock margins around a create call's window when matching it to the provider's task list. Submits are
# serialized by the submit lease, so the next job's create starts after this window ends: keep the margin
# small so that windows of consecutive jobs do not overlap (clocks are NTP-synced on both sides).
RECONCILE_MARGIN_BEFORE_S = 1.0
RECONCILE_MARGIN_AFTER_S = 0.5


def admit(deps: Deps, model: str) -> int:
    """Submit waiting jobs of ``model``, oldest first, while slots are free. Returns how many."""
    submitted = 0
    holder = uuid.uuid4().hex
    for _ in range(3):  # a lease released while we were looking: look once more
        lease = deps.store.acquire_submit_lease(holder, deps.timing.submit_lease_s)
        if lease is None:
            return submitted  # the holder admits after its own work; the poller admits next tick anyway
        # Released only when the work ended normally. If anything escaped (a create may have succeeded
        # without being recorded), the lease stays until it expires, as if this worker had died: no other
        # create can then fall inside that job's reconciliation window.
        n, stop = _admit_under_lease(deps, model, holder, lease)
        submitted += n
        deps.store.release_submit_lease(holder)
        if stop or not deps.store.due_items(DueKind.ADMIT.key(model), deps.clock(), limit=1):
            return submitted
    return submitted


def _admit_under_lease(deps: Deps, model: str, holder: str, lease: dict) -> tuple[int, bool]:
    spec = model_spec(model)
    limit = deps.settings.concurrency_for(model)
    # 10% above the published rate: the provider counts arrivals in a sliding second, and network jitter
    # must not turn our exact spacing into a Throttling answer
    min_gap = 1.1 / spec.submit_rps if spec else 1.1
    next_submit_at = float(lease.get("next_submit_at", 0) or 0)
    submitted = 0
    while True:
        waiting = deps.store.due_items(DueKind.ADMIT.key(model), deps.clock(), limit=1)
        if not waiting:
            return submitted, False
        job = Job.from_item(waiting[0])
        now = deps.clock()
        tr = (
            Transition(job.job_id, JobStatus.WAITING, JobStatus.SUBMITTING)
            .set(submit_started_at=now, lease_holder=holder)
            .schedule(DueKind.LEASE.key(), now + deps.timing.submit_lease_s)
            .take_slot(model, limit)
        )
        if not deps.store.apply(tr):
            if deps.store.slots_in_use(model) >= limit:
                return submitted, True  # all slots busy: whoever frees one admits the next
            continue  # the job moved under us; look again
        wait = next_submit_at - deps.clock()
        if wait > 0:
            deps.sleep(wait)
        next_submit_at = deps.clock() + min_gap
        deps.store.extend_submit_lease(holder, deps.timing.submit_lease_s, next_submit_at=next_submit_at)
        outcome = submit(deps, job)
        if outcome == "submitted":
            submitted += 1
        elif outcome in ("throttled", "unavailable", "uncertain"):
            return submitted, True


def _frame(deps: Deps, job: Job, role: str) -> str | None:
    obj = job.inputs.get(role)
    if obj is None:
        return None
    settings = deps.settings
    if settings.frame_transport == "base64":
        data = deps.blobs.read(settings.inbox_bucket, obj.key)
        return data_uri(data, inspect_image(data, name=role))
    return deps.blobs.presign_get(settings.inbox_bucket, obj.key, settings.presign_ttl_s)


def build_request(deps: Deps, job: Job) -> CreateTaskRequest:
    spec = job.spec
    assert spec is not None
    return CreateTaskRequest(
        model=provider_model_name(spec.model, deps.settings.provider_region),
        first_frame_url=_frame(deps, job, "first") or "",
        last_frame_url=None if spec.template else _frame(deps, job, "last"),
        prompt=None if spec.template else spec.prompt,
        negative_prompt=spec.negative_prompt,
        template=spec.template,
        resolution=spec.resolution,
        prompt_extend=spec.prompt_extend,
        watermark=spec.watermark,
        seed=spec.seed,
    )


def submit(deps: Deps, job: Job) -> str:
    """Create the provider task for a job we hold in SUBMITTING (with its slot)."""
    model = job.model or ""
    try:
        request = build_request(deps, job)
        ref = deps.provider.create_task(request)
    except ConfigError as exc:
        # nothing was sent (e.g. the API key secret is still empty): the job waits, the operator is told
        _back_to_waiting(deps, job)
        count("JobsNeedingAttention")
        logger.error("cannot submit: configuration problem", extra={"job_id": job.job_id, "error": str(exc)})
        return "unavailable"
    except ProviderThrottled as exc:
        # the account is busy (maybe another program): back to the queue, keep its place, never fail
        _back_to_waiting(deps, job)
        count("ProviderThrottled")
        logger.warning(
            "provider throttled the create; job waits", extra={"job_id": job.job_id, "code": exc.code}
        )
        return "throttled"
    except ProviderRejected as exc:
        error = ErrorInfo(
            code=exc.code or "ProviderRejected",
            message=exc.message,
            hint=_hint_for(exc.code),
            provider_request_id=exc.request_id,
        )
        finish(deps, job, JobStatus.REJECTED, expected=JobStatus.SUBMITTING, error=error, release_slot=True)
        return "rejected"
    except ProviderError as exc:
        if getattr(exc, "maybe_created", False):
            # the task may exist: reconcile from the provider's list once the lease runs out
            deps.store.apply(
                Transition(job.job_id, JobStatus.SUBMITTING, None)
                .set(uncertain_at=deps.clock())
                .schedule(DueKind.LEASE.key(), deps.clock() + 1.0)
            )
            count("SubmitsUncertain")
            logger.warning("create outcome unknown; will reconcile", extra={"job_id": job.job_id})
            return "uncertain"
        _back_to_waiting(deps, job)
        count("ProviderUnavailable")
        return "unavailable"
    _record_task(deps, job, ref.task_id)
    count("JobsSubmitted")
    seconds("QueueWait", deps.clock() - job.created_at)
    logger.info("task created", extra={"job_id": job.job_id, "task_id": ref.task_id, "model": model})
    return "submitted"


def _record_task(deps: Deps, job: Job, task_id: str) -> bool:
    from inbetween.usecases.task_checks import first_check_at  # tasks uses this module's error hints

    deps.store.record_task(task_id, job.job_id)
    now = deps.clock()
    return deps.store.apply(
        Transition(job.job_id, JobStatus.SUBMITTING, JobStatus.SUBMITTED)
        .set(
            task_id=task_id, submitted_at=now, provider_status="PENDING", lease_holder=None, uncertain_at=None
        )
        .schedule(DueKind.POLL.key(), first_check_at(deps, job.model, now))
    )


def _back_to_waiting(deps: Deps, job: Job) -> None:
    deps.store.apply(
        Transition(job.job_id, JobStatus.SUBMITTING, JobStatus.WAITING)
        .set(submit_started_at=None, lease_holder=None, uncertain_at=None)
        .schedule(DueKind.ADMIT.key(job.model), job.created_at)
        .release_slot(job.model or "")
    )


def _hint_for(code: str | None) -> str:
    return {
        "DataInspectionFailed": "the provider's content check refused the frames or prompt; change them and upload again",
        "IPInfringementSuspect": "the provider suspects copyrighted content; use frames you own",
        "InvalidApiKey": "the DashScope API key in Secrets Manager is wrong or for another region; fix it, "
        "then upload the folder again",
        "Arrearage": "the Alibaba Cloud account is overdue; settle the bill, then upload the folder again",
        "InvalidParameter": "the provider refused a parameter; check job.json against README.md",
    }.get(code or "", "check the inputs and upload the job folder again")


def reconcile_expired_leases(deps: Deps, limit: int = 10) -> int:
    """Poller: jobs left in SUBMITTING (crash or unknown outcome) are matched to the provider's task list."""
    due = deps.store.due_items(DueKind.LEASE.key(), deps.clock(), limit)
    if not due:
        return 0
    # Hold the submit lease while reconciling: no create of ours is in flight, so every task of ours in
    # the window is either recorded or the orphan we are looking for.
    holder = uuid.uuid4().hex
    if deps.store.acquire_submit_lease(holder, deps.timing.submit_lease_s) is None:
        return 0
    handled = 0
    try:
        for item in due:
            job = Job.from_item(item)
            if job.status is not JobStatus.SUBMITTING:
                continue
            try:
                reconcile(deps, job)
            except Exception:  # noqa: BLE001 - one job's trouble must not stall everyone's reconciliation
                logger.exception("reconciliation failed; will retry", extra={"job_id": job.job_id})
                count("ReconciliationErrors")
                deps.store.apply(
                    Transition(job.job_id, JobStatus.SUBMITTING, None).schedule(
                        DueKind.LEASE.key(), deps.clock() + 60
                    )
                )
            handled += 1
    finally:
        deps.store.release_submit_lease(holder)
    return handled


def reconcile(deps: Deps, job: Job) -> str:
    started = job.submit_started_at or job.updated_at
    item = deps.store.get_item(f"job#{job.job_id}") or {}
    # the create call ran inside [started, uncertain_at] (a known outcome) or inside the lease (a crash)
    ended = float(item.get("uncertain_at") or started + deps.timing.submit_lease_s)
    ended = max(started, min(ended, deps.clock()))
    window_start = datetime.fromtimestamp(started - RECONCILE_MARGIN_BEFORE_S, UTC)
    window_end = datetime.fromtimestamp(ended + RECONCILE_MARGIN_AFTER_S, UTC)
    window_end = min(window_end, window_start + timedelta(hours=23))
    try:
        model = provider_model_name(job.model or "", deps.settings.provider_region)
        tasks = list(deps.provider.iter_tasks(start=window_start, end=window_end, model=model))
    except (ProviderError, ConfigError) as exc:
        logger.warning(
            "reconciliation deferred: task list unavailable",
            extra={"job_id": job.job_id, "code": getattr(exc, "code", None)},
        )
        deps.store.apply(
            Transition(job.job_id, JobStatus.SUBMITTING, None).schedule(
                DueKind.LEASE.key(), deps.clock() + 30
            )
        )
        return "deferred"
    lo, hi = window_start.timestamp(), window_end.timestamp()
    owners = {
        t.task_id: deps.store.job_for_task(t.task_id) for t in tasks if lo <= t.gmt_create.timestamp() <= hi
    }
    mine = [task_id for task_id, owner in owners.items() if owner == job.job_id]
    if mine:  # the task was recorded as ours, but the job's own state change did not happen
        _record_task(deps, job, mine[0])
        count("OrphansAdopted")
        logger.warning("recorded task adopted", extra={"job_id": job.job_id, "task_id": mine[0]})
        return "adopted"
    unknown = [t for t in tasks if t.task_id in owners and owners[t.task_id] is None]
    if len(unknown) == 1:
        _record_task(deps, job, unknown[0].task_id)
        count("OrphansAdopted")
        logger.warning("orphan task adopted", extra={"job_id": job.job_id, "task_id": unknown[0].task_id})
        return "adopted"
    if not unknown:
        _back_to_waiting(deps, job)
        count("OrphansNone")
        logger.info("no task was created; job waits for a new submit", extra={"job_id": job.job_id})
        return "resubmit"
    error = ErrorInfo(
        code="NeedsAttention",
        message=f"{len(unknown)} unrecorded provider tasks were created while this job was being submitted; "
        "another program may be using the same API key",
        hint="check the provider console for tasks " + ", ".join(t.task_id for t in unknown[:5]),
    )
    count("JobsNeedingAttention")
    finish(deps, job, JobStatus.FAILED, expected=JobStatus.SUBMITTING, error=error, release_slot=True)
    return "ambiguous"
