"""Configuration fails fast and says what is missing."""

from __future__ import annotations

import pytest
from inbetween.config import load_settings
from inbetween.errors import ConfigError

BASE = {
    "JOBS_TABLE": "t",
    "INBOX_BUCKET": "i",
    "OUTPUT_BUCKET": "o",
    "NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
    "INTAKE_QUEUE_URL": "q1",
    "COMPLETION_QUEUE_URL": "q2",
    "DASHSCOPE_API_KEY_SECRET": "s1",
    "WEBHOOK_SECRET_NAME": "s2",
}


def test_every_missing_variable_is_named():
    with pytest.raises(ConfigError) as err:
        load_settings({"JOBS_TABLE": "t"})
    for name in ("INBOX_BUCKET", "NOTIFY_TOPIC_ARN", "DASHSCOPE_API_KEY_SECRET"):
        assert name in str(err.value)


def test_region_gives_the_base_url_and_a_custom_url_wins():
    assert load_settings(BASE).provider_base_url == "https://dashscope.aliyuncs.com/api/v1"
    intl = load_settings(dict(BASE, PROVIDER_REGION="ap-southeast-1"))
    assert intl.provider_base_url == "https://dashscope-intl.aliyuncs.com/api/v1"
    local = load_settings(dict(BASE, PROVIDER_BASE_URL="http://127.0.0.1:9/api/v1/"))
    assert local.provider_base_url == "http://127.0.0.1:9/api/v1"


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"PROVIDER_REGION": "mars-1"}, "PROVIDER_REGION"),
        ({"DEFAULT_MODEL": "wan9"}, "DEFAULT_MODEL"),
        ({"DEFAULT_MODEL": "wanx2.1-kf2v-plus", "DEFAULT_RESOLUTION": "1080P"}, "DEFAULT_RESOLUTION"),
        ({"FRAME_TRANSPORT": "carrier-pigeon"}, "FRAME_TRANSPORT"),
        ({"WATERMARK": "maybe"}, "WATERMARK"),
        ({"SETTLE_SECONDS": "soon"}, "not a number"),
        ({"DEFAULT_MODEL": "wan2.7-i2v", "DEFAULT_RESOLUTION": "480P"}, "DEFAULT_RESOLUTION"),
        ({"PROVIDER_BACKLOG": "-1"}, "PROVIDER_BACKLOG"),
        ({"PROVIDER_BACKLOG": "lots"}, "PROVIDER_BACKLOG must be auto or a whole number"),
        ({"PROVIDER_CONCURRENCY": "-2"}, "PROVIDER_CONCURRENCY"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(extra, fragment):
    with pytest.raises(ConfigError) as err:
        load_settings(dict(BASE, **extra))
    assert fragment in str(err.value)


def test_concurrency_defaults_to_the_published_quota():
    assert load_settings(BASE).concurrency_for("wan2.2-kf2v-flash") == 2
    assert load_settings(dict(BASE, PROVIDER_CONCURRENCY="5")).concurrency_for("wan2.2-kf2v-flash") == 5


def test_a_new_deployment_uses_wan27_at_its_own_default_resolution():
    settings = load_settings(BASE)
    assert (settings.default_model, settings.default_resolution) == ("wan2.7-i2v", "1080P")
    # the template's empty DefaultResolution means "the default model's own"
    for model, own in (("wan2.7-i2v", "1080P"), ("wan2.2-kf2v-flash", "720P"), ("wanx2.1-kf2v-plus", "720P")):
        chosen = load_settings(dict(BASE, DEFAULT_MODEL=model, DEFAULT_RESOLUTION=""))
        assert chosen.default_resolution == own


def test_the_provider_backlog_is_read_and_auto_by_default():
    assert load_settings(BASE).provider_backlog is None
    assert load_settings(dict(BASE, PROVIDER_BACKLOG="auto")).provider_backlog is None
    assert load_settings(dict(BASE, PROVIDER_BACKLOG="0")).provider_backlog == 0
    assert load_settings(dict(BASE, PROVIDER_BACKLOG="2")).provider_backlog == 2


def test_the_monthly_budget_is_cny_in_exact_micros_and_zero_or_empty_means_none():
    assert load_settings(BASE).monthly_budget_micros == 0
    assert load_settings(dict(BASE, MONTHLY_BUDGET="")).monthly_budget_micros == 0
    assert load_settings(dict(BASE, MONTHLY_BUDGET="150.25")).monthly_budget_micros == 150_250_000


@pytest.mark.parametrize("raw", ["-5", "a lot", "1e6", "0.0000001"])
def test_a_budget_that_is_not_a_plain_amount_is_refused_by_name(raw):
    with pytest.raises(ConfigError, match="MONTHLY_BUDGET"):
        load_settings(dict(BASE, MONTHLY_BUDGET=raw))


def test_a_report_conversion_needs_both_a_currency_and_a_rate():
    settings = load_settings(dict(BASE, REPORT_CURRENCY="usd", REPORT_RATE="0.137"))
    assert settings.report_rate is not None
    assert (settings.report_rate.currency, settings.report_rate.micros_per_unit) == ("USD", 137_000)
    assert load_settings(BASE).report_rate is None
    with pytest.raises(ConfigError, match="go together"):
        load_settings(dict(BASE, REPORT_CURRENCY="USD"))
    with pytest.raises(ConfigError, match="go together"):
        load_settings(dict(BASE, REPORT_RATE="0.137"))
    with pytest.raises(ConfigError, match="three-letter"):
        load_settings(dict(BASE, REPORT_CURRENCY="DOLLARS", REPORT_RATE="0.137"))
