"""Provider push, pure parts: reading the event, the function-URL request and the secret check (when a
task is checked with push on or off: test_check_schedule.py)."""

from __future__ import annotations

import base64
import json

import pytest
from inbetween.usecases import push
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


def test_the_emulator_sends_only_to_loopback_unless_told():
    with pytest.raises(ValueError, match="loopback"):
        EventSender(PushConfig(url="https://example.com/events"))
    assert "secret" not in repr(PushConfig(url="http://127.0.0.1/", headers={"x-inbetween-token": "secret"}))
