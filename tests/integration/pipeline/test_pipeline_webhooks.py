"""Signed webhooks from the pipeline: verified by the standard library, retried until the endpoint
recovers, one stable webhook-id per event, never a blocked address."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from inbetween.domain.models import DeliveryState
from pipeline_kit import WEBHOOK_SECRET_RAW
from standardwebhooks.webhooks import Webhook


class Receiver:
    def __init__(self, fail_first: int = 0):
        self.requests: list[tuple[dict, bytes]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 503 if len(receiver.requests) <= receiver.fail_first else 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/inbetween"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _drop_with_hook(pipeline, pair, name, url, **fields):
    job = {"prompt": "pan", "webhook_url": url, **fields}
    pipeline.drop(name, dict(pair, **{"job.json": json.dumps(job).encode()}))


def test_a_stored_video_is_announced_by_a_signed_webhook_the_standard_library_verifies(
    pipeline, pair, receiver
):
    # kf2v flash: its answer has the extended prompt (actual_prompt), which wan2.7 does not document
    _drop_with_hook(pipeline, pair, "hooked", receiver.url, model="wan2.2-kf2v-flash")
    item = pipeline.run_until_final("hooked")
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    payload = Webhook("whsec_" + WEBHOOK_SECRET_RAW).verify(body, headers)
    assert payload["type"] == "video.generation.succeeded"
    assert payload["data"]["job_id"] == item["job_id"]
    assert payload["data"]["video"]["url"].startswith("http")
    assert payload["data"]["video"]["url_expires_at"]
    assert payload["data"]["actual_prompt"]


def test_a_failed_job_is_announced_too(pipeline, pair, receiver):
    pipeline.drop(
        "hook-fail",
        dict(
            pair,
            **{
                "job.json": json.dumps(
                    {"prompt": "x [fail:DataInspectionFailed]", "webhook_url": receiver.url}
                ).encode()
            },
        ),
    )
    pipeline.run_until_final("hook-fail")
    headers, body = receiver.requests[0]
    payload = Webhook("whsec_" + WEBHOOK_SECRET_RAW).verify(body, headers)
    assert payload["type"] == "video.generation.failed"
    assert payload["data"]["error"]["code"] == "DataInspectionFailed"


def test_an_endpoint_that_is_down_gets_the_event_when_it_recovers_with_the_same_webhook_id(pipeline, pair):
    receiver = Receiver(fail_first=3)
    try:
        _drop_with_hook(pipeline, pair, "flaky", receiver.url)
        pipeline.run_until_final("flaky")
        assert len(receiver.requests) == 1  # first attempt failed; the video is stored regardless
        for _ in range(4):  # each retry comes due later (5 s, 5 min, 30 min, ...): move the clock
            pipeline.advance(3 * 3600)
            pipeline.poll_step()
            pipeline.completion_step()
        assert len(receiver.requests) == 4
        ids = {h["webhook-id"] for h, _ in receiver.requests}
        assert len(ids) == 1
        stamps = [h["webhook-timestamp"] for h, _ in receiver.requests]
        assert stamps == sorted(stamps) and len(set(stamps)) == 4
        # one delivery record (read straight from the table, as an observer), delivered
        hook = [
            i
            for i in pipeline.session.resource("dynamodb").Table(pipeline.settings.jobs_table).scan()["Items"]
            if str(i["pk"]).startswith("hook#")
        ]
        assert [h["state"] for h in hook] == ["delivered"]
        delivery = pipeline.deps.store.get_webhook_delivery(next(iter(ids)))
        assert delivery is not None and delivery.state is DeliveryState.DELIVERED and delivery.attempts == 4
        # and no more attempts after delivery
        pipeline.advance(24 * 3600)
        pipeline.poll_step()
        pipeline.completion_step()
        assert len(receiver.requests) == 4
    finally:
        receiver.close()
