"""Provider push, pure parts: reading the event, the function-URL request, the secret check, and when the
poller checks a task with push on or off."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest
from inbetween.config import Settings, Timing
from inbetween.usecases import push
from inbetween.usecases import task_checks as tasks
from inbetween_local.emulator import TaskStatus
from inbetween_local.emulator.push import EventSender, PushConfig, task_finished_event
from inbetween_local.emulator.tasks import TaskSnapshot


def _snapshot(status: TaskStatus = TaskStatus.SUCCEEDED) -> TaskSnapshot:
    return TaskSnapshot(
        task_id="0385dc79-5ff8-4d82-bcb6-xxxxxx",
        status=status,
        model="wan2.2-kf2v-flash",
        api_key_id="1250",
        created_at=1_760_000_000.0,
        scheduled_at=1_760_000_001.0,
        ended_at=1_760_000_090.0,
        code=None,
        message=None,
        orig_prompt="p",
        actual_prompt=None,
        resolution="720P",
        width=1280,
        height=720,
        watermark=False,
        template=None,
    )


def test_the_emulated_event_has_the_documented_shape_and_reads_back():
    event = task_finished_event(_snapshot(), region="cn-beijing", now=1_760_000_091.0)
    assert (event["specversion"], event["source"], event["type"]) == (
        "1.0",
        push.EVENT_SOURCE,
        push.EVENT_TYPE,
    )
    assert event["data"]["contain_result"] is False
    assert (
        event["data"]["end_time"] == "2025-10-09 16:54:50"
    )  # 08:54:50 UTC in China time, seconds, as documented
    parsed = push.parse_event(json.dumps(event).encode())
    assert parsed is not None
    assert (parsed.task_id, parsed.task_status, parsed.model, parsed.region) == (
        "0385dc79-5ff8-4d82-bcb6-xxxxxx",
        "SUCCEEDED",
        "wan2.2-kf2v-flash",
        "cn-beijing",
    )


@pytest.mark.parametrize("body", [b"\xff\xfe", b"null", b'{"type": 1, "source": "acs.dashscope"}'])
def test_bodies_that_are_not_events_are_malformed(body):
    with pytest.raises(push.MalformedEvent):
        push.parse_event(body)


def test_a_function_url_request_is_read_with_its_token_and_base64_body():
    body = b'{"a": 1}'
    request = push.request_from_function_url(
        {
            "headers": {"X-Inbetween-Token": "t0ken"},
            "queryStringParameters": {"token": "q"},
            "requestContext": {"http": {"method": "post"}},
            "body": base64.b64encode(body).decode(),
            "isBase64Encoded": True,
        }
    )
    assert (request.method, request.body, request.headers["x-inbetween-token"]) == ("POST", body, "t0ken")
    assert "t0ken" not in repr(request)
    assert push.authenticate(request, lambda: "t0ken") is None
    assert push.authenticate(request, lambda: "other") == "wrong"


def test_a_huge_body_is_marked_oversize_without_being_decoded():
    request = push.request_from_function_url(
        {"body": "A" * (push.MAX_BODY_BYTES * 2), "isBase64Encoded": True}
    )
    assert len(request.body) > push.MAX_BODY_BYTES


def _deps(push_enabled: bool, **timing) -> SimpleNamespace:
    settings = Settings(
        jobs_table="t",
        inbox_bucket="i",
        output_bucket="o",
        topic_arn="a",
        intake_queue_url="q",
        completion_queue_url="c",
        api_key_secret="k",
        webhook_secret_name="w",
        provider_base_url="http://127.0.0.1/api/v1",
        poll_interval_s=5.0,
        push_enabled=push_enabled,
    )
    return SimpleNamespace(settings=settings, timing=Timing(**timing))


def test_push_off_checks_early_and_often():
    deps = _deps(False)
    assert tasks.first_check_at(deps, "wan2.2-kf2v-flash", 0.0) == 45.0  # the model's shortest generation
    assert tasks.next_check_at(deps, 100.0) == 105.0


def test_push_on_checks_only_once_the_event_is_overdue():
    deps = _deps(True)
    # the model's longest usual generation time (300 s) plus the grace (60 s), then every minute, on a
    # one-minute grid so that overdue tasks come due together (one list call for all of them)
    assert tasks.first_check_at(deps, "wan2.2-kf2v-flash", 0.0) == 360.0
    assert tasks.next_check_at(deps, 100.0) == 120.0
    assert tasks.first_check_at(deps, "wan2.2-kf2v-flash", 10.0) == 420.0
    overdue_soon = _deps(True, expected_generation_s=10, push_grace_s=5, push_recheck_s=5)
    assert tasks.first_check_at(overdue_soon, "x", 0.0) == 15.0


def test_the_emulator_sends_only_to_loopback_unless_told():
    with pytest.raises(ValueError, match="loopback"):
        EventSender(PushConfig(url="https://example.com/events"))
    assert "secret" not in repr(PushConfig(url="http://127.0.0.1/", headers={"x-inbetween-token": "secret"}))
