"""The monthly budget guard: a job is admitted only if the month's committed spend plus its estimate stays
within the budget; one that would not fit waits, HELD, in arrival order.

- Committed spend (the ``spend#<month>`` item): the bills of the month's finished jobs plus the estimates of
  its jobs in flight. Admission adds a job's estimate in the same transaction that takes its provider slot,
  conditioned on the sum staying within the budget, so concurrent admissions can never overspend;
  ``finishing.finish`` corrects it by the bill minus the estimate in the transaction that makes the job
  final, and a job sent back to waiting gives its estimate back in the transaction that moves it.
- The budget: ``budget#override`` (``inbetween budget set``, no redeploy) over the deployment's
  ``MONTHLY_BUDGET``; 0 is none. It is in the currency the provider bills (CNY).
- Order: held jobs queue on one ``hold`` due partition by arrival time; a waiting job that arrived after a
  held one is held behind it, so a cheap late job never takes the room an older one waits for. A film is
  admitted shot by shot: each shot is a job with its own estimate, so a film can start and then wait.
- Release: each poller tick (and so after ``inbetween budget set``, or at a new month, whose committed
  spend starts at 0) moves held jobs back to WAITING, oldest first, while their estimates fit; admission
  right after decides again, in its transaction.
- ``budget.reached``: once a month (the month's ``reached_at``, set conditionally), the first time a job is
  held, on SNS and to the deployment's default webhook.
"""

from __future__ import annotations

from inbetween.deps import Deps
from inbetween.domain import costs
from inbetween.domain.catalog import BILLING_CURRENCY
from inbetween.domain.models import DueKind, Job, JobStatus, Transition
from inbetween.observability import count, logger, percent
from inbetween.usecases.notify import announce

BUDGET_REACHED_EVENT = "budget.reached"
RELEASE_BATCH = 50


def current_budget(deps: Deps) -> int | None:
    """The month's budget in micros: the override if one is set, else the deployment's; None: no budget."""
    override = deps.store.budget_override()
    amount = override if override is not None else deps.settings.monthly_budget_micros
    return amount or None


def job_estimate(deps: Deps, job: Job) -> int:
    """The job's estimate (made at intake; made now for a job accepted before costs were kept)."""
    if job.estimate_micros is not None:
        return job.estimate_micros
    return (costs.estimate(job.spec, deps.settings.provider_region) if job.spec else None) or 0


def held_ahead(deps: Deps, job: Job) -> bool:
    """Whether a job that arrived before ``job`` is held: then ``job`` waits behind it."""
    return any(
        other.job_id != job.job_id for other in deps.store.due_jobs(DueKind.HOLD, job.created_at, limit=2)
    )


def must_hold(deps: Deps, job: Job, month: str, budget: int) -> bool:
    """Admission's check before it tries: a held job ahead, or an estimate the month cannot take."""
    return held_ahead(deps, job) or not costs.fits(
        deps.store.month_spend(month), job_estimate(deps, job), budget
    )


def over_budget(deps: Deps, job: Job, month: str, budget: int | None) -> bool:
    return budget is not None and not costs.fits(
        deps.store.month_spend(month), job_estimate(deps, job), budget
    )


def hold(deps: Deps, job: Job, month: str, budget: int) -> bool:
    """A waiting job over the budget: HELD, keeping its place (its arrival time); the month's
    ``budget.reached`` goes out if it has not yet. False if the job had moved."""
    moved = deps.store.apply(
        Transition.of(job.job_id, JobStatus.WAITING, JobStatus.HELD)
        .nothing_committed()
        .schedule(DueKind.HOLD, job.created_at)
    )
    spend = deps.store.month_spend(month)
    if moved:
        count("JobsHeld")
        logger.info(
            "job held: over the month's budget",
            extra={
                "job_id": job.job_id,
                "estimate": costs.format_money(job_estimate(deps, job)),
                "committed": costs.format_money(spend.committed_micros),
                "budget": costs.format_money(budget),
            },
        )
    report_used(spend, budget)
    announce_reached(deps, month, budget, job)
    return moved


def release_held(deps: Deps, limit: int = RELEASE_BATCH) -> int:
    """Poller: held jobs back to WAITING (their place in their model's queue is their arrival time), oldest
    first, while their estimates fit the month's room; the poller's admission step follows at once."""
    held = deps.store.due_jobs(DueKind.HOLD, deps.clock.now(), limit=limit)
    if not held:
        return 0
    budget = current_budget(deps)
    committed = deps.store.month_spend(costs.month_of(deps.clock.now())).committed_micros
    released = 0
    for job in held:
        estimate = job_estimate(deps, job)
        if budget is not None and committed + estimate > budget:
            break  # arrival order: a younger, cheaper job does not pass this one
        if deps.store.apply(
            Transition.of(job.job_id, JobStatus.HELD, JobStatus.WAITING).schedule(
                DueKind.ADMIT, job.created_at, model=job.model
            )
        ):
            committed += estimate  # room the next one cannot count on (admission decides for certain)
            released += 1
            count("JobsReleased")
            logger.info("held job released", extra={"job_id": job.job_id})
    return released


def report_used(spend: costs.MonthSpend, budget: int | None) -> None:
    """The BudgetUsedPercent metric (alarms at 80 % and 100 %), when there is a budget."""
    if budget is not None:
        percent("BudgetUsedPercent", costs.used_percent(spend, budget))


def announce_reached(deps: Deps, month: str, budget: int, job: Job) -> bool:
    """``budget.reached``, once a month (True if this call sent it). The month's mark is set before the
    event goes out: a crash between the two loses the event rather than ever sending it twice."""
    if not deps.store.claim_budget_reached(month, deps.clock.now()):
        return False
    spend = deps.store.month_spend(month)
    report = deps.settings.report_rate
    payload = {
        "month": month,
        "budget": _money(budget, report),
        "committed": _money(spend.committed_micros, report),
        "held_job": job.job_name,
        "held_job_id": job.job_id,
        "held_job_estimate": _money(job_estimate(deps, job), report),
        "what_to_do": "held jobs start in arrival order when the budget allows: raise it with "
        "`inbetween budget set AMOUNT` (CNY), or wait for the next month",
    }
    announce(
        deps,
        BUDGET_REACHED_EVENT,
        subject_id=f"budget/{month}",
        status=JobStatus.HELD,
        job_name=job.job_name,
        payload=payload,
    )
    count("BudgetReached")
    logger.warning("monthly budget reached; jobs are held", extra={"month": month})
    return True


def _money(micros: int, report: costs.ReportRate | None) -> dict[str, object]:
    data: dict[str, object] = {"amount": costs.format_amount(micros), "currency": BILLING_CURRENCY}
    if report is not None:
        data["report"] = {"amount": costs.format_amount(report.convert(micros)), "currency": report.currency}
    return data
