"""What a video costs (inbetween.domain.costs over the catalog's price table): exact integer amounts, the
prices the references give, estimates, bills from usage, and the ``cost`` notifications carry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from inbetween.domain import costs
from inbetween.domain.catalog import BILLING_CURRENCY, MODELS
from inbetween.domain.models import InputObject, Job, JobSpec, JobStatus

T0 = datetime(2027, 1, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def job(status: JobStatus, *, spec: JobSpec | None = None, **fields) -> Job:
    spec = spec or JobSpec(model="wan2.7-i2v", resolution="720P")
    inputs = {"first": InputObject("inbox/a/first.png", "e", 1)}
    return Job("a/run", "a", "run", status, spec, inputs, T0, T0, **fields)


@pytest.mark.parametrize(
    ("text", "micros"),
    [("0", 0), ("12", 12_000_000), ("12.50", 12_500_000), ("0.000001", 1), (" 3.669620 ", 3_669_620)],
)
def test_amounts_parse_exactly(text, micros):
    assert costs.parse_amount(text) == micros


@pytest.mark.parametrize("text", ["-1", "", "ten", "1e3", "1.0000001", "inf", "¥5"])
def test_amounts_that_are_not_plain_decimals_are_refused_with_the_reason(text):
    with pytest.raises(ValueError, match="amount"):
        costs.parse_amount(text)


def test_amounts_format_with_at_least_two_decimals_and_no_float_noise():
    assert costs.format_amount(3_000_000) == "3.00"
    assert costs.format_amount(3_669_620) == "3.66962"
    assert costs.format_amount(1) == "0.000001"
    assert costs.format_amount(-600_000) == "-0.60"
    assert costs.format_money(5_504_430) == "5.50443 CNY"
    # ten thousand 0.10 CNY seconds are exactly 1000 CNY (floats would drift)
    assert costs.format_amount(sum([100_000] * 10_000)) == "1000.00"


def test_the_price_table_is_the_references_in_micros_of_cny_with_source_and_date():
    expected = {
        ("wan2.2-kf2v-flash", "cn-beijing", "480P"): 100_000,
        ("wan2.2-kf2v-flash", "cn-beijing", "720P"): 200_000,
        ("wan2.2-kf2v-flash", "cn-beijing", "1080P"): 480_000,
        ("wanx2.1-kf2v-plus", "cn-beijing", "720P"): 700_000,
        ("wanx2.1-kf2v-plus", "ap-southeast-1", "720P"): 733_924,
        ("wan2.7-i2v", "cn-beijing", "720P"): 600_000,
        ("wan2.7-i2v", "cn-beijing", "1080P"): 1_000_000,
        ("wan2.7-i2v", "ap-southeast-1", "720P"): 733_924,
        ("wan2.7-i2v", "ap-southeast-1", "1080P"): 1_100_886,
    }
    table = {(spec.name, p.region, p.resolution): p for spec in MODELS.values() for p in spec.prices}
    assert {key: p.per_second_micros for key, p in table.items()} == expected
    for (model, region, resolution), price in table.items():
        assert price.currency == BILLING_CURRENCY  # Singapore too
        assert price.source and datetime.strptime(price.as_of, "%Y-%m-%d")
        assert resolution in MODELS[model].resolutions and region in MODELS[model].regions


def test_every_model_and_resolution_has_a_price_in_every_region_it_is_offered_in():
    for spec in MODELS.values():
        for region in spec.regions:
            for resolution in spec.resolutions:
                assert costs.price_for(spec.name, region, resolution) is not None, (
                    spec.name,
                    region,
                    resolution,
                )


def test_a_region_without_a_row_takes_the_highest_price_elsewhere():
    # kf2v flash is priced for Beijing only (PR); in Singapore the estimate uses that price
    price = costs.price_for("wan2.2-kf2v-flash", "ap-southeast-1", "720P")
    assert price is not None and price.region == "cn-beijing"
    assert costs.price_for("not-a-model", "cn-beijing", "720P") is None


def test_an_estimate_is_the_seconds_asked_for_at_the_jobs_price():
    assert costs.estimate(JobSpec(model="wan2.7-i2v", resolution="1080P"), "cn-beijing") == 5_000_000
    assert (
        costs.estimate(JobSpec(model="wan2.7-i2v", resolution="720P", duration=15), "cn-beijing") == 9_000_000
    )
    assert costs.estimate(JobSpec(model="wan2.2-kf2v-flash", resolution="480P"), "cn-beijing") == 500_000
    assert costs.estimate(JobSpec(model="wan2.7-i2v", resolution="1080P"), "ap-southeast-1") == 5_504_430


def test_the_bill_is_the_usage_seconds_once_the_task_succeeded_and_nothing_otherwise():
    usage = {"billed_seconds": 8}
    stored = job(JobStatus.STORED, provider_status="SUCCEEDED", provider=usage, estimate_micros=3_000_000)
    assert costs.bill(stored, "cn-beijing") == 4_800_000
    fractional = job(JobStatus.STORED, provider_status="SUCCEEDED", provider={"billed_seconds": 2.5})
    assert costs.bill(fractional, "ap-southeast-1") == 1_834_810  # 2.5 x 0.733924
    # a succeeded task without usage is billed at its estimate
    unreported = job(JobStatus.STORED, provider_status="SUCCEEDED", estimate_micros=3_000_000)
    assert costs.bill(unreported, "cn-beijing") == 3_000_000
    for status, provider_status in (
        (JobStatus.FAILED, "FAILED"),
        (JobStatus.CANCELED, None),
        (JobStatus.REJECTED, None),
    ):
        assert costs.bill(job(status, provider_status=provider_status, provider=usage), "cn-beijing") == 0


def test_cost_data_is_the_bill_once_final_and_the_estimate_before():
    waiting = job(JobStatus.WAITING, estimate_micros=3_000_000)
    assert costs.cost_data(waiting, "cn-beijing") == {
        "amount": "3.00",
        "currency": "CNY",
        "billed_seconds": None,
        "estimated": True,
    }
    stored = job(
        JobStatus.STORED, provider_status="SUCCEEDED", provider={"billed_seconds": 5}, cost_micros=3_000_000
    )
    usd = costs.ReportRate("USD", 137_000)
    assert costs.cost_data(stored, "cn-beijing", usd) == {
        "amount": "3.00",
        "currency": "CNY",
        "billed_seconds": 5,
        "estimated": False,
        "report": {"amount": "0.411", "currency": "USD"},
    }


def test_a_films_cost_is_the_sum_of_its_shots():
    done = job(
        JobStatus.STORED, provider_status="SUCCEEDED", provider={"billed_seconds": 5}, cost_micros=3_000_000
    )
    running = job(JobStatus.SUBMITTED, estimate_micros=3_000_000)
    assert costs.film_cost_data([done, done], "cn-beijing") == {
        "amount": "6.00",
        "currency": "CNY",
        "billed_seconds": 10,
        "estimated": False,
    }
    partial = costs.film_cost_data([done, running], "cn-beijing")
    assert partial["amount"] == "6.00" and partial["estimated"] is True and partial["billed_seconds"] is None


def test_the_budget_month_is_utc_and_a_budget_is_inclusive():
    assert costs.month_of(T0) == "2027-01"
    assert costs.month_of(T0 + 1) == "2027-02"
    spend = costs.MonthSpend("2027-01", committed_micros=2_000_000)
    assert costs.fits(spend, 1_000_000, 3_000_000)  # exactly the budget is within it
    assert not costs.fits(spend, 1_000_001, 3_000_000)
    assert costs.fits(spend, 10**12, None)  # no budget
    assert costs.used_percent(spend, 2_500_000) == 80.0
