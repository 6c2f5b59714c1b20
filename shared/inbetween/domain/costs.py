"""What a video costs, and the month's budget: pure rules over the catalog's price table.

Money is an integer count of millionths of the billing currency ("micros", CNY: the provider bills every
region in CNY), never a float: estimates, bills and the month's committed spend add up exactly, and a
budget compares with them exactly. Decimal strings ("3.00") are how amounts enter and leave (config, the
CLI, notifications).

- The estimate, at intake: the seconds asked for (or the model's default) times the price of the job's
  model and resolution in the deployment's region.
- The bill, when a job ends: the seconds the provider's ``usage`` reports times the same price; a task that
  did not succeed reports no usage and costs nothing.
- A report conversion (``REPORT_CURRENCY``, ``REPORT_RATE``: units of that currency per CNY) is for people
  reading reports; budgets and sums stay in CNY.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from inbetween.domain.catalog import BILLING_CURRENCY, MICROS_PER_UNIT, Price, model_spec
from inbetween.domain.models import Job, JobSpec, JobStatus

_MICRO = Decimal(MICROS_PER_UNIT)


def parse_amount(text: str, *, what: str = "amount") -> int:
    """A non-negative decimal string ("12", "12.50", "0.000001") as micros; ``ValueError`` saying what
    is wrong otherwise (more than six decimals, a sign, a currency symbol, a float's exponent)."""
    raw = text.strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(
            f"{what} must be a decimal number of {BILLING_CURRENCY}, e.g. 150 or 12.50; got {text!r}"
        ) from None
    if not value.is_finite() or "e" in raw.lower():
        raise ValueError(f"{what} must be a plain decimal number, e.g. 150 or 12.50; got {text!r}")
    if value < 0:
        raise ValueError(f"{what} must be 0 or more, got {text!r}")
    micros = value * _MICRO
    if micros != micros.to_integral_value():
        raise ValueError(f"{what} has more than 6 decimal places: {text!r}")
    return int(micros)


def format_amount(micros: int) -> str:
    """Micros as a decimal string with at least two decimals and no trailing zeros beyond them:
    3_000_000 -> "3.00", 3_669_620 -> "3.66962"."""
    sign = "-" if micros < 0 else ""
    units, rest = divmod(abs(micros), MICROS_PER_UNIT)
    decimals = f"{rest:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}{units}.{decimals}"


def format_money(micros: int, currency: str = BILLING_CURRENCY) -> str:
    """E.g. "3.00 CNY", for logs and the CLI."""
    return f"{format_amount(micros)} {currency}"


def month_of(ts: float) -> str:
    """The budget month (UTC) of a time: "2026-12"."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m")


def price_for(model: str, region: str, resolution: str) -> Price | None:
    """The price of one second of ``model`` at ``resolution`` in ``region``. A region the table has no row
    for (kf2v flash outside Beijing) takes the highest price of that resolution elsewhere: an estimate that
    errs high keeps the budget guard on the safe side."""
    spec = model_spec(model)
    if spec is None:
        return None
    exact = spec.price(region, resolution)
    if exact is not None:
        return exact
    others = [p for p in spec.prices if p.resolution == resolution]
    return max(others, key=lambda p: p.per_second_micros) if others else None


def seconds_cost(seconds: float | int, price: Price) -> int:
    """``seconds`` (the provider may report a fraction) at ``price``, in micros, rounded half to even."""
    exact = Decimal(str(seconds)) * price.per_second_micros
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def requested_seconds(spec: JobSpec) -> int | None:
    """The seconds a job asks for: its duration, or its model's default (with a first clip, the total,
    which is what the provider bills)."""
    model = model_spec(spec.model)
    if model is None:
        return None
    return spec.duration or model.default_duration


def estimate(spec: JobSpec, region: str) -> int | None:
    """The job's estimated cost in micros before it is paid for; None for a model without a price."""
    seconds = requested_seconds(spec)
    price = price_for(spec.model, region, spec.resolution)
    if seconds is None or price is None:
        return None
    return seconds_cost(seconds, price)


def billed_seconds(job: Job) -> float | None:
    """The seconds the provider billed (its usage), if it reported any."""
    value = job.provider.get("billed_seconds")
    return float(value) if value is not None else None


def bill(job: Job, region: str) -> int:
    """What the provider bills for ``job`` in micros: its usage seconds at the job's price once the task
    succeeded (a job stored, or one whose video link expired after the task succeeded: the provider
    billed it all the same), 0 for a task that failed, was cancelled while PENDING, or never existed.
    A succeeded task without usage is billed at the estimate."""
    if job.provider_status != "SUCCEEDED" or job.spec is None:
        return 0
    price = price_for(job.spec.model, region, job.spec.resolution)
    seconds = billed_seconds(job)
    if price is None:
        return 0
    if seconds is None:
        return job.estimate_micros or estimate(job.spec, region) or 0
    return seconds_cost(seconds, price)


@dataclass(frozen=True, slots=True)
class ReportRate:
    """How reports convert CNY: ``currency`` units per CNY, as micros (0.137 -> 137_000)."""

    currency: str
    micros_per_unit: int

    def convert(self, micros: int) -> int:
        exact = Decimal(micros) * self.micros_per_unit / _MICRO
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def cost_data(job: Job, region: str, report: ReportRate | None = None) -> dict[str, Any] | None:
    """The ``cost`` of metadata.json and every notification: the bill once the job is final (``estimated``
    false; a stored job whose task reported no usage is billed at the estimate, ``estimated`` true), the
    estimate before that. None: a job not final whose model has no price."""
    if job.status.is_final:
        amount = job.cost_micros or 0  # a drop rejected at intake never reached the provider
        seconds = billed_seconds(job) if job.provider_status == "SUCCEEDED" else None
        estimated = job.status is JobStatus.STORED and seconds is None
    else:
        guess = (
            job.estimate_micros
            if job.estimate_micros is not None
            else (estimate(job.spec, region) if job.spec else None)
        )
        if guess is None:
            return None
        amount, seconds, estimated = guess, None, True
    data: dict[str, Any] = {
        "amount": format_amount(amount),
        "currency": BILLING_CURRENCY,
        "billed_seconds": int(seconds) if seconds is not None and seconds == int(seconds) else seconds,
        "estimated": estimated,
    }
    if report is not None:
        data["report"] = {"amount": format_amount(report.convert(amount)), "currency": report.currency}
    return data


def film_cost_data(shots: list[Job], region: str, report: ReportRate | None = None) -> dict[str, Any] | None:
    """A film's ``cost``: the sum of its shots' (bills of the finished ones, estimates of the others, then
    ``estimated`` true). None: no shot has a cost yet."""
    parts = [cost_data(job, region) for job in shots]
    known = [part for part in parts if part is not None]
    if not known:
        return None
    total = sum(parse_amount(str(part["amount"])) for part in known)
    data: dict[str, Any] = {
        "amount": format_amount(total),
        "currency": BILLING_CURRENCY,
        "billed_seconds": None,
        "estimated": len(known) < len(shots) or any(part["estimated"] for part in known),
    }
    seconds = [part["billed_seconds"] for part in known]
    if all(value is not None for value in seconds):
        data["billed_seconds"] = sum(seconds)
    if report is not None:
        data["report"] = {"amount": format_amount(report.convert(total)), "currency": report.currency}
    return data


@dataclass(frozen=True, slots=True)
class MonthSpend:
    """The month's committed spend: the bills of its finished jobs plus the estimates of those in flight
    (admitted, not yet final), in micros; and when its ``budget.reached`` event went out."""

    month: str
    committed_micros: int = 0
    reached_at: float | None = None


def fits(spend: MonthSpend, estimate_micros: int, budget_micros: int | None) -> bool:
    """Whether a job of ``estimate_micros`` may be admitted: no budget (None), or the month's committed
    spend plus the estimate stays within it."""
    return budget_micros is None or spend.committed_micros + estimate_micros <= budget_micros


def used_percent(spend: MonthSpend, budget_micros: int) -> float:
    """How much of the budget the month has committed, in percent (a metric, not money)."""
    return 100.0 * spend.committed_micros / budget_micros if budget_micros else 0.0
