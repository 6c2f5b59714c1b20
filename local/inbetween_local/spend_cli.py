"""``inbetween budget set AMOUNT | show`` and ``inbetween spend``: the month's budget and what was spent.

Amounts are in CNY, the currency DashScope bills in (every region, Singapore included). The budget set here
is the jobs table's override of the deployment's ``MonthlyBudget`` parameter: no redeploy, and the poller
releases held jobs it now allows within a tick. ``spend`` sums the jobs of a month (a Scan: CLI only):
finished jobs at their bill, jobs in flight at their estimate; a film's shots are jobs, so films are in the
sums shot by shot.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inbetween.domain import costs
from inbetween.domain.catalog import BILLING_CURRENCY, FIXED_DURATION_S, MODELS
from inbetween.domain.models import DueKind, Job, JobStatus

REGION_NAMES = {"cn-beijing": "Beijing", "ap-southeast-1": "Singapore"}
CURRENCY_NOTE = f"amounts are in {BILLING_CURRENCY}, the currency DashScope bills in (Singapore included)"
# jobs whose estimate is committed to their month, not yet final
_IN_FLIGHT = frozenset({JobStatus.SUBMITTING, JobStatus.SUBMITTED, JobStatus.COMPLETING})


def cost_cell(job: Any) -> str:
    """The cost column of ``inbetween jobs`` and the cost line of ``status``: the bill once final, "~" and
    the estimate before that, "-" when neither is known."""
    if job.status.is_final:
        return costs.format_amount(job.cost_micros or 0)
    if job.estimate_micros is not None:
        return "~" + costs.format_amount(job.estimate_micros)
    return "-"


def cost_line(job: Any) -> str:
    """``status``: "cost:      3.00 CNY (billed 5 s)", or the estimate, or where the job stands."""
    if job.status.is_final:
        seconds = costs.billed_seconds(job) if job.provider_status == "SUCCEEDED" else None
        billed = f" (billed {seconds:g} s)" if seconds is not None else ""
        return f"cost:      {costs.format_money(job.cost_micros or 0)}{billed}"
    if job.estimate_micros is None:
        return "cost:      -"
    state = "held: over the month's budget" if job.status is JobStatus.HELD else "not billed yet"
    return f"cost:      ~{costs.format_money(job.estimate_micros)} estimated ({state})"


def film_cost_cell(shots: Sequence[Any]) -> str:
    """A film's cost: the sum of its shots' (estimated, "~", while any shot is not final)."""
    if not shots:
        return "-"
    total = 0
    estimated = False
    for job in shots:
        if job.status.is_final:
            total += job.cost_micros or 0
        else:
            estimated = True
            total += job.estimate_micros or 0
    return ("~" if estimated else "") + costs.format_amount(total)


# ---------------------------------------------------------------------------------------------- spend
@dataclass(frozen=True, slots=True)
class SpendRow:
    key: str  # the model or the day
    jobs: int
    billed_micros: int  # finished jobs' bills
    in_flight_micros: int  # admitted jobs' estimates, not yet final


def job_month(job: Job) -> str:
    """The month a job's spend belongs to: the one its estimate was committed to, else when it ended."""
    return job.spend_month or costs.month_of(job.finished_at or job.created_at)


def _day(job: Job) -> str:
    at = job.finished_at or job.submit_started_at or job.created_at
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def spend_rows(jobs: Iterable[Job], month: str, by: str) -> list[SpendRow]:
    """The month's spend grouped ``by`` "model" or "day" (UTC): jobs that were paid for or are in flight.
    Jobs never admitted (waiting, held, rejected at intake) cost nothing and are left out."""
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for job in jobs:
        if job_month(job) != month:
            continue
        if job.status.is_final and (job.cost_micros or job.spend_month):
            amount, in_flight = job.cost_micros or 0, 0
        elif job.status in _IN_FLIGHT and job.spend_month:
            amount, in_flight = 0, job.estimate_micros or 0
        else:
            continue
        key = (job.model or "-") if by == "model" else _day(job)
        group = groups[key]
        group[0] += 1
        group[1] += amount
        group[2] += in_flight
    return [SpendRow(key, n, billed, flight) for key, (n, billed, flight) in sorted(groups.items())]


def spend_lines(
    rows: Sequence[SpendRow], *, month: str, by: str, report: costs.ReportRate | None = None
) -> list[str]:
    header = [
        "MODEL" if by == "model" else "DAY",
        "JOBS",
        f"BILLED {BILLING_CURRENCY}",
        f"IN FLIGHT {BILLING_CURRENCY}",
    ]
    if report is not None:
        header.append(f"TOTAL {report.currency}")
    table: list[tuple[str, ...]] = [tuple(header)]
    for row in [
        *rows,
        SpendRow(
            "total",
            sum(r.jobs for r in rows),
            sum(r.billed_micros for r in rows),
            sum(r.in_flight_micros for r in rows),
        ),
    ]:
        cells = [
            row.key,
            str(row.jobs),
            costs.format_amount(row.billed_micros),
            costs.format_amount(row.in_flight_micros),
        ]
        if report is not None:
            cells.append(costs.format_amount(report.convert(row.billed_micros + row.in_flight_micros)))
        table.append(tuple(cells))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = [f"spend in {month} (UTC), by {by}:"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    lines.append(f"billed: finished jobs' bills; in flight: admitted jobs' estimates; {CURRENCY_NOTE}")
    return lines


def _month_arg(text: str) -> str:
    try:
        return datetime.strptime(text, "%Y-%m").strftime("%Y-%m")
    except ValueError:
        raise argparse.ArgumentTypeError(f"a month is YYYY-MM, e.g. 2026-12; got {text!r}") from None


def _amount_arg(text: str) -> int:
    try:
        return costs.parse_amount(text, what="AMOUNT")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---------------------------------------------------------------------------------------------- prices
def price_rows(seconds: int = FIXED_DURATION_S) -> list[tuple[str, str, str, str, str]]:
    """What ``seconds`` of video costs, per model, region and resolution, from the catalog's price table."""
    rows = []
    for spec in MODELS.values():
        for price in spec.prices:
            rows.append(
                (
                    spec.regional_names.get(price.region, spec.name),  # Singapore's wan2.1-kf2v-plus
                    REGION_NAMES.get(price.region, price.region),
                    price.resolution,
                    costs.format_amount(costs.seconds_cost(1, price)),
                    costs.format_amount(costs.seconds_cost(seconds, price)),
                )
            )
    return rows


def price_table_markdown(seconds: int = FIXED_DURATION_S) -> list[str]:
    """The README's table (``inbetween prices --markdown``)."""
    lines = [
        f"| Model | Region | Resolution | CNY per second | A {seconds} s video, CNY |",
        "|---|---|---|---:|---:|",
    ]
    lines += [
        f"| `{m}` | {r} | {res} | {per_s} | {total} |" for m, r, res, per_s, total in price_rows(seconds)
    ]
    sources = sorted({(p.source, p.as_of) for spec in MODELS.values() for p in spec.prices})
    lines += ["", "Prices: " + "; ".join(f"{source}, as of {as_of}" for source, as_of in sources) + "."]
    return lines


def cmd_prices(args: argparse.Namespace) -> int:
    if args.markdown:
        lines = price_table_markdown(args.seconds)
    else:
        rows = [
            ("MODEL", "REGION", "RESOLUTION", "CNY/S", f"{args.seconds} S, CNY"),
            *price_rows(args.seconds),
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.append(f"from the catalog's price table; {CURRENCY_NOTE}")
    for line in lines:
        print(line)
    return 0


# ---------------------------------------------------------------------------------------------- commands
def deployed_budget(args: argparse.Namespace, target: Any) -> int | None:
    """The deployment's MonthlyBudget parameter, when the CLI can read it (a deployed stack's parameters,
    or the local template's); None if it cannot."""
    raw: str | None = None
    if getattr(args, "stack", None):
        import boto3

        session = boto3.session.Session(region_name=args.region) if args.region else boto3.session.Session()
        stack = session.client("cloudformation").describe_stacks(StackName=args.stack)["Stacks"][0]
        raw = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}.get(
            "MonthlyBudget"
        )
    elif target.local:
        from inbetween_local.stack.template import LocalTemplate

        raw = LocalTemplate.load().parameter("MonthlyBudget")
    try:
        return costs.parse_amount(raw) if raw is not None else None
    except ValueError:
        return None


def budget_lines(store: Any, *, now: float, deployed: int | None) -> list[str]:
    override = store.budget_override()
    amount = override if override is not None else deployed
    month = costs.month_of(now)
    spend = store.month_spend(month)
    if override is not None:
        source = "set with `inbetween budget set`"
    elif deployed is not None:
        source = "the deployment's MonthlyBudget parameter"
    else:
        source = "the deployment's MonthlyBudget parameter (not readable from here)"
    if amount:
        budget = f"{costs.format_money(amount)} a month ({source})"
        used = f" ({costs.used_percent(spend, amount):.1f} % of the budget)"
    else:
        budget = f"none ({source}: 0 means no budget)"
        used = ""
    held = store.due_jobs(DueKind.HOLD, now, limit=1000)
    lines = [
        f"budget:     {budget}",
        f"month:      {month} (UTC)",
        f"committed:  {costs.format_money(spend.committed_micros)}{used}: bills of finished jobs, "
        "estimates of jobs in flight",
        f"held jobs:  {len(held)}" + (f" (oldest: {held[0].job_name})" if held else ""),
    ]
    if spend.reached_at is not None:
        reached = datetime.fromtimestamp(spend.reached_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(f"reached:    {reached} (budget.reached was sent)")
    lines.append(CURRENCY_NOTE)
    return lines


def cmd_budget_show(args: argparse.Namespace) -> int:
    from inbetween_local.cli import resolve_target

    target = resolve_target(args)
    store = target.store()
    for line in budget_lines(store, now=time.time(), deployed=deployed_budget(args, target)):
        print(line)
    return 0


def cmd_budget_set(args: argparse.Namespace) -> int:
    from inbetween_local.cli import resolve_target

    target = resolve_target(args)
    store = target.store()
    if args.deployed:
        store.set_budget_override(None)
        print("budget: back to the deployment's MonthlyBudget parameter")
    else:
        store.set_budget_override(args.amount)
        if args.amount:
            print(f"budget: {costs.format_money(args.amount)} a month, from now on")
        else:
            print("budget: none (0): every job is admitted whatever it costs")
    print("held jobs the budget now allows start at the poller's next tick (every minute; seconds locally)")
    return 0


def cmd_spend(args: argparse.Namespace) -> int:
    from inbetween_local.cli import resolve_target

    target = resolve_target(args)
    month = args.month or costs.month_of(time.time())
    rows = spend_rows(target.store().recent_jobs(limit=1_000_000), month, args.by)
    for line in spend_lines(rows, month=month, by=args.by):
        print(line)
    return 0


def add_parsers(sub: Any, target: argparse.ArgumentParser) -> None:
    """``budget`` and ``spend`` on the CLI's subcommands (``target``: the shared --stack/... options)."""
    budget = sub.add_parser("budget", help=f"the monthly budget ({BILLING_CURRENCY})").add_subparsers(
        dest="budget_command", required=True
    )
    show = budget.add_parser(
        "show", parents=[target], help="the budget, this month's committed spend, held jobs"
    )
    show.set_defaults(func=cmd_budget_show)
    setter = budget.add_parser(
        "set",
        parents=[target],
        help=f"change the monthly budget without a redeploy (AMOUNT in {BILLING_CURRENCY}; 0: none)",
    )
    choice = setter.add_mutually_exclusive_group(required=True)
    choice.add_argument(
        "amount",
        metavar="AMOUNT",
        nargs="?",
        type=_amount_arg,
        help=f"{BILLING_CURRENCY} a month, e.g. 150 or 12.50",
    )
    choice.add_argument(
        "--deployed", action="store_true", help="drop the override: the MonthlyBudget parameter again"
    )
    setter.set_defaults(func=cmd_budget_set)

    spend = sub.add_parser(
        "spend", parents=[target], help=f"what a month cost ({BILLING_CURRENCY}), by model or day"
    )
    spend.add_argument("--month", type=_month_arg, help="YYYY-MM (UTC); default: this month")
    spend.add_argument("--by", choices=("model", "day"), default="model")
    spend.set_defaults(func=cmd_spend)

    prices = sub.add_parser(
        "prices", help=f"what a video costs per model, region and resolution ({BILLING_CURRENCY})"
    )
    prices.add_argument(
        "--seconds", type=int, default=FIXED_DURATION_S, help="the video's length (default 5)"
    )
    prices.add_argument("--markdown", action="store_true", help="as the Markdown table of the docs")
    prices.set_defaults(func=cmd_prices)
