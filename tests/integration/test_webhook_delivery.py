"""A real receiver on 127.0.0.1 gets signed events through the real HTTP stack (no mock transport)."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time

import pytest
from inbetween.webhooks import (
    AddressPolicy,
    UnsafeWebhookUrl,
    WebhookSender,
    build_event,
    new_secret,
    retry_delay_after,
    verify,
)
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

LOCAL = AddressPolicy(allow_loopback=True, allow_http=True)


class Receiver:
    """A webhook receiver as a customer would write it: verify the raw body, dedupe on webhook-id."""

    def __init__(self, secret: str, *, listen: bool = True):
        self.secret = secret
        self.attempts: list[dict[str, str]] = []
        self.accepted: dict[str, dict] = {}
        self.fail_next = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                owner.attempts.append(headers)
                status = 204
                if owner.fail_next:
                    owner.fail_next -= 1
                    status = 503
                else:
                    try:
                        payload = Webhook(owner.secret).verify(body, headers)
                        verify(owner.secret, headers, body)
                    except WebhookVerificationError:
                        status = 401
                    else:
                        owner.accepted.setdefault(headers["webhook-id"], payload)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.httpd.server_bind()  # bound now (the port is ours), listening only once started
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/inbetween"
        self.thread: threading.Thread | None = None
        if listen:
            self.start()

    def start(self) -> None:
        self.httpd.server_activate()
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        if self.thread is not None:
            self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def secret() -> str:
    return new_secret()


def completed_event() -> bytes:
    return build_event(
        "video.completed",
        {"job_id": "job_42", "status": "SUCCEEDED", "video_url": "https://cdn.example.com/job_42.mp4"},
        occurred_at=dt.datetime.now(dt.UTC),
    )


def test_a_local_receiver_gets_and_verifies_a_signed_event(secret):
    # Given a receiver on loopback and a sender allowed to reach it
    receiver = Receiver(secret)
    body = completed_event()
    try:
        with WebhookSender(secret, LOCAL) as sender:
            # When
            result = sender.deliver(receiver.url, "msg_job_42_completed", body)
    finally:
        receiver.close()
    # Then
    assert result.delivered and result.status_code == 204, result.error
    assert receiver.accepted == {"msg_job_42_completed": json.loads(body)}
    [headers] = receiver.attempts
    assert headers["content-type"] == "application/json"
    assert headers["host"] == f"127.0.0.1:{receiver.port}"


def test_a_receiver_with_another_secret_rejects_the_event_and_we_retry(secret):
    receiver = Receiver(new_secret())
    try:
        with WebhookSender(secret, LOCAL) as sender:
            result = sender.deliver(receiver.url, "msg_1", completed_event())
    finally:
        receiver.close()
    assert (result.delivered, result.status_code, result.retry) == (False, 401, True)
    assert receiver.accepted == {}


def test_a_receiver_that_is_down_then_recovers_gets_the_event_with_the_same_id(secret):
    # Given a receiver whose port is bound but not yet listening (connections refused)
    receiver = Receiver(secret, listen=False)
    body = completed_event()
    results = []
    try:
        with WebhookSender(secret, LOCAL) as sender:
            # When the first attempt fails, the receiver comes up answering 503 once, then recovers
            results.append(sender.deliver(receiver.url, "msg_job_42_completed", body, now=time.time() - 2))
            receiver.start()
            receiver.fail_next = 1
            results.append(sender.deliver(receiver.url, "msg_job_42_completed", body, now=time.time() - 1))
            results.append(sender.deliver(receiver.url, "msg_job_42_completed", body))
    finally:
        receiver.close()
    # Then
    down, busy, ok = results
    assert (down.delivered, down.retry, down.status_code) == (False, True, None)
    assert retry_delay_after(down, 1) is not None
    assert (busy.delivered, busy.retry, busy.status_code) == (False, True, 503)
    assert ok.delivered, ok.error
    assert [h["webhook-id"] for h in receiver.attempts] == ["msg_job_42_completed"] * 2
    stamps = [int(h["webhook-timestamp"]) for h in receiver.attempts]
    assert stamps[0] < stamps[1]
    assert receiver.accepted == {"msg_job_42_completed": json.loads(body)}


def test_the_cloud_policy_refuses_the_local_receiver_before_connecting(secret):
    receiver = Receiver(secret)
    try:
        with WebhookSender(secret, AddressPolicy(allow_http=True)) as sender:
            with pytest.raises(UnsafeWebhookUrl, match="loopback"):
                sender.deliver(receiver.url, "msg_1", completed_event())
    finally:
        receiver.close()
    assert receiver.attempts == []
