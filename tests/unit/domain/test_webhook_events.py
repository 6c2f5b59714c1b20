"""webhook_events: patterns with *, checked in job.json (a clear error naming the field) and in the
deployment's WEBHOOK_EVENTS; an endpoint is a URL's origin and path, named without its path or query."""

from __future__ import annotations

import json

import pytest
from inbetween.config import Timing, load_settings
from inbetween.domain.drops import build_spec, parse_job_json
from inbetween.domain.films import SHOT_FIELDS
from inbetween.domain.models import JobSpec
from inbetween.domain.webhook_events import (
    EVENT_TYPES,
    endpoint_id,
    endpoint_label,
    endpoint_of,
    parse_event_filter,
    wants,
)
from inbetween.errors import ConfigError, InvalidJob

ENV = {
    "JOBS_TABLE": "t",
    "INBOX_BUCKET": "i",
    "OUTPUT_BUCKET": "o",
    "NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t",
    "INTAKE_QUEUE_URL": "q1",
    "COMPLETION_QUEUE_URL": "q2",
    "DASHSCOPE_API_KEY_SECRET": "s1",
    "WEBHOOK_SECRET_NAME": "s2",
}


@pytest.mark.parametrize(
    ("patterns", "event_type", "expected"),
    [
        (("*",), "video.generation.succeeded", True),
        (("video.generation.*",), "video.generation.failed", True),
        (("video.generation.*",), "film.failed", False),
        (("*.failed",), "film.failed", True),
        (("video.generation.failed",), "video.generation.failed", True),
        (("video.generation.failed",), "video.generation.failedx", False),
        (("film.*", "budget.reached"), "budget.reached", True),
        ((), "video.generation.succeeded", False),
    ],
)
def test_patterns_match_whole_event_types(patterns, event_type, expected):
    assert wants(patterns, event_type) is expected


def test_a_dot_in_a_pattern_is_a_dot():
    assert not wants(("video.generation.failed",), "videoXgeneration.failed")


def test_job_json_takes_a_list_of_event_types():
    fields = parse_job_json(json.dumps({"webhook_events": ["video.generation.*", "film.failed"]}).encode())
    spec = build_spec(
        fields,
        None,
        default_model="wan2.2-kf2v-flash",
        default_resolution="720P",
        default_prompt_extend=True,
        default_watermark=False,
    )
    assert spec.webhook_events == ("video.generation.*", "film.failed")
    assert JobSpec.from_dict(spec.to_dict()) == spec  # as the jobs table stores it


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("video.generation.*", "must be a list"),
        ([], "must be a non-empty list"),
        ([42], "is not an event type"),
        (["Video.Generation.Failed"], "is not an event type"),
        (["video.generation.succeded"], "did you mean 'video.generation.succeeded'?"),
        (["webhook.endpoint.paused"], "matches no event type"),  # operational: SNS only
        (["*"] * 21, "the limit is 20"),
    ],
)
def test_a_bad_webhook_events_value_is_refused_naming_the_field(value, fragment):
    with pytest.raises(InvalidJob) as err:
        parse_job_json(json.dumps({"webhook_events": value}).encode())
    assert err.value.field == "webhook_events"
    assert "webhook_events" in err.value.message and fragment in err.value.message
    assert err.value.hint


def test_a_film_shot_cannot_set_its_own_filter():
    assert "webhook_events" not in SHOT_FIELDS


def test_every_known_event_type_matches_itself():
    assert parse_event_filter(list(EVENT_TYPES)) == EVENT_TYPES


def test_the_deployment_filter_comes_from_webhook_events():
    assert load_settings(ENV).webhook_events == ("*",)
    settings = load_settings(dict(ENV, WEBHOOK_EVENTS=" video.generation.failed , budget.reached "))
    assert settings.webhook_events == ("video.generation.failed", "budget.reached")
    with pytest.raises(ConfigError) as err:
        load_settings(dict(ENV, WEBHOOK_EVENTS="video.generation.faild"))
    assert "WEBHOOK_EVENTS" in str(err.value) and "did you mean" in str(err.value)


def test_the_pause_delay_is_5_days_unless_configured():
    assert Timing.from_env({}).webhook_pause_after_s == 5 * 86400
    assert Timing.from_env({"WEBHOOK_PAUSE_AFTER_SECONDS": "60"}).webhook_pause_after_s == 60


# ---------------------------------------------------------------------------------------------- endpoints
def test_an_endpoint_is_its_origin_and_path_whatever_the_query():
    a = endpoint_id("https://Hooks.Example.com:443/in?token=one")
    assert a == endpoint_id("https://hooks.example.com/in?token=two#frag")
    assert a == endpoint_id("https://user:pw@hooks.example.com/in")
    assert a != endpoint_id("https://hooks.example.com/other")
    assert a != endpoint_id("http://hooks.example.com/in")
    assert endpoint_of("http://127.0.0.1:8080") == ("http://127.0.0.1:8080", "/")


def test_an_endpoints_label_shows_neither_its_path_nor_its_query():
    url = "https://hooks.example.com/services/T0/B0/XXXXSECRET?token=abc"
    label = endpoint_label(url)
    assert label == f"https://hooks.example.com/… ({endpoint_id(url)})"
    assert "SECRET" not in label and "abc" not in label
