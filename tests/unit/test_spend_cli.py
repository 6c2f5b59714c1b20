"""``inbetween spend``, ``budget show``, ``prices`` and the cost column (inbetween_local.spend_cli), against the
in-memory job store: what the month cost by model and by day, where the budget comes from, and the
docs' price table, which must be the one the catalog generates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from inbetween.domain.models import DueKind, InputObject, Job, JobSpec, JobStatus, Transition
from inbetween_local.memory import InMemoryJobStore, ManualClock
from inbetween_local.spend_cli import (
    budget_lines,
    cost_cell,
    cost_line,
    film_cost_cell,
    price_table_markdown,
    spend_lines,
    spend_rows,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "costs-and-budget.md"
JAN_10 = datetime(2027, 1, 10, 9, 0, tzinfo=UTC).timestamp()
DAY = 86_400.0


def a_job(name: str, status: JobStatus, *, model: str = "wan2.7-i2v", at: float = JAN_10, **fields) -> Job:
    spec = JobSpec(model=model, resolution="720P")
    inputs = {"first": InputObject(f"inbox/{name}/first.png", "e", 1)}
    return Job(f"{name}/run", name, "run", status, spec, inputs, at, at, **fields)


def month_of_jobs() -> list[Job]:
    return [
        a_job("a", JobStatus.STORED, spend_month="2027-01", estimate_micros=3_000_000, cost_micros=3_000_000,
              finished_at=JAN_10, provider_status="SUCCEEDED", provider={"billed_seconds": 5}),
        a_job("b", JobStatus.STORED, spend_month="2027-01", estimate_micros=3_000_000, cost_micros=1_800_000,
              finished_at=JAN_10 + DAY, provider_status="SUCCEEDED", provider={"billed_seconds": 3}),
        a_job("c", JobStatus.FAILED, spend_month="2027-01", estimate_micros=3_000_000, cost_micros=0,
              finished_at=JAN_10 + DAY),
        a_job("d", JobStatus.SUBMITTED, model="wan2.2-kf2v-flash", spend_month="2027-01",
              estimate_micros=1_000_000, submit_started_at=JAN_10 + DAY),
        a_job("e", JobStatus.HELD, estimate_micros=3_000_000),  # never admitted: not spent
        a_job("f", JobStatus.STORED, spend_month="2026-12", cost_micros=3_000_000, finished_at=JAN_10 - 30 * DAY),
    ]  # fmt: skip


def test_spend_by_model_sums_bills_and_in_flight_estimates_of_the_month():
    rows = spend_rows(month_of_jobs(), "2027-01", "model")
    assert [(r.key, r.jobs, r.billed_micros, r.in_flight_micros) for r in rows] == [
        ("wan2.2-kf2v-flash", 1, 0, 1_000_000),
        ("wan2.7-i2v", 3, 4_800_000, 0),
    ]
    lines = spend_lines(rows, month="2027-01", by="model")
    assert lines[0] == "spend in 2027-01 (UTC), by model:"
    assert lines[-2].split() == ["total", "4", "4.80", "1.00"]
    assert "CNY" in lines[-1]


def test_spend_by_day_groups_by_the_utc_day_a_job_ended_or_started():
    rows = spend_rows(month_of_jobs(), "2027-01", "day")
    assert [(r.key, r.jobs, r.billed_micros, r.in_flight_micros) for r in rows] == [
        ("2027-01-10", 1, 3_000_000, 0),
        ("2027-01-11", 3, 1_800_000, 1_000_000),
    ]
    assert [r.key for r in spend_rows(month_of_jobs(), "2026-12", "day")] == ["2026-12-11"]


def test_the_cost_column_shows_bills_and_estimates():
    stored, _, failed, submitted, held, _ = month_of_jobs()
    assert cost_cell(stored) == "3.00"
    assert cost_cell(failed) == "0.00"
    assert cost_cell(submitted) == "~1.00"
    assert cost_line(stored) == "cost:      3.00 CNY (billed 5 s)"
    assert cost_line(held) == "cost:      ~3.00 CNY estimated (held: over the month's budget)"
    assert film_cost_cell([stored, stored]) == "6.00"
    assert film_cost_cell([stored, submitted]) == "~4.00"


def test_budget_show_says_where_the_budget_comes_from_and_what_is_committed():
    store = InMemoryJobStore(ManualClock(JAN_10))
    held = a_job("held", JobStatus.HELD, estimate_micros=3_000_000)
    store.add_job(held, due=(DueKind.HOLD, held.created_at))
    lines = budget_lines(store, now=JAN_10 + 60, deployed=0)
    assert lines[0] == "budget:     none (the deployment's MonthlyBudget parameter: 0 means no budget)"
    assert "held jobs:  1 (oldest: held)" in lines

    store.set_budget_override(10_000_000)
    store.claim_budget_reached("2027-01", JAN_10)
    job = a_job("in-flight", JobStatus.WAITING)
    store.add_job(job, due=(DueKind.ADMIT, job.created_at))
    assert store.apply(
        Transition.of(job.job_id, JobStatus.WAITING, JobStatus.SUBMITTING).commit_spend(
            "2027-01", 8_000_000, 10_000_000
        )
    )
    lines = budget_lines(store, now=JAN_10 + 60, deployed=0)
    assert lines[0] == "budget:     10.00 CNY a month (set with `inbetween budget set`)"
    assert lines[2].startswith("committed:  8.00 CNY (80.0 % of the budget)")
    assert any(line.startswith("reached:    2027-01-10") for line in lines)
    assert lines[-1].startswith("amounts are in CNY")


def test_the_docs_price_table_is_the_one_the_catalog_generates():
    docs = DOCS.read_text()
    for line in price_table_markdown():
        assert line in docs, (
            f"docs/costs-and-budget.md is out of date; regenerate with `inbetween prices --markdown`: {line}"
        )
