"""Webhook operations through the real handlers on moto, to a receiver on 127.0.0.1 that verifies every
request with the ``standardwebhooks`` library, driven by the ``inbetween`` CLI as an operator would:
a replay arrives again with the original webhook-id (and a fresh, valid signature); a paused endpoint
gets nothing until ``inbetween webhook resume``, then its waiting deliveries in order."""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from inbetween.domain.webhook_events import ENDPOINT_PAUSED_EVENT, endpoint_id
from inbetween_local import cli
from pipeline_kit import WEBHOOK_SECRET_RAW
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_" + WEBHOOK_SECRET_RAW


class VerifyingReceiver:
    """A customer's endpoint: verifies the raw body with standardwebhooks, answers 503 while ``down``."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []  # verified requests, in arrival order
        self.rejected: list[str] = []
        self.down = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = 503
                if not owner.down:
                    try:
                        Webhook(SECRET).verify(body, headers)
                    except WebhookVerificationError as exc:
                        owner.rejected.append(str(exc))
                        status = 401
                    else:
                        owner.received.append((headers, body))
                        status = 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        # the query carries a token, as many receivers' URLs do: it never appears in what we print
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/inbetween?token=tok-123"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = VerifyingReceiver()
    yield r
    r.close()


@pytest.fixture
def operator(pipeline, monkeypatch, capsys):
    """``inbetween ...`` against the pipeline's table (the CLI finds it through INBETWEEN_* variables)."""
    monkeypatch.setenv("INBETWEEN_INBOX_BUCKET", pipeline.settings.inbox_bucket)
    monkeypatch.setenv("INBETWEEN_OUTPUT_BUCKET", pipeline.settings.output_bucket)
    monkeypatch.setenv("INBETWEEN_JOBS_TABLE", pipeline.settings.jobs_table)

    def run(*argv: str) -> str:
        capsys.readouterr()
        code = cli.main(list(argv))
        out = capsys.readouterr()
        assert code == 0, out.err
        return out.out

    return run


def drop(pipeline, pair, name: str, url: str) -> None:
    job = {"prompt": "pan", "webhook_url": url, "model": "wan2.2-kf2v-flash"}
    pipeline.drop(name, dict(pair, **{"job.json": json.dumps(job).encode()}))


def deliver_what_is_due(pipeline, rounds: int = 3) -> None:
    for _ in range(rounds):
        pipeline.poll_step()
        pipeline.completion_step()


def test_a_replay_arrives_again_with_the_original_webhook_id_and_a_fresh_valid_signature(
    pipeline, pair, receiver, operator
):
    # Given a job whose webhook was delivered and verified
    drop(pipeline, pair, "replayed", receiver.url)
    pipeline.run_until_final("replayed")
    [(first_headers, first_body)] = receiver.received
    pipeline.advance(2)  # a later second: the replay's timestamp differs

    # When the operator replays it twice in a row
    once = operator("webhook", "replay", "replayed")
    twice = operator("webhook", "replay", "replayed")
    deliver_what_is_due(pipeline)

    # Then it arrived once more, verified, with the same id and body and a new timestamp and signature
    assert "queued" in once.splitlines()[0] and "already queued" in twice.splitlines()[0]
    assert receiver.rejected == []
    [_, (headers, body)] = receiver.received
    assert headers["webhook-id"] == first_headers["webhook-id"]
    assert body == first_body
    assert int(headers["webhook-timestamp"]) > int(first_headers["webhook-timestamp"])
    assert headers["webhook-signature"] != first_headers["webhook-signature"]

    # and `inbetween status` shows the delivery log, without the URL's path or token
    status = operator("status", "replayed")
    assert "replay requested" in status and status.count("HTTP 204") == 2
    assert "tok-123" not in status and "/hooks/inbetween" not in status


def test_a_paused_endpoint_gets_nothing_until_resumed_then_its_waiting_deliveries_in_order(
    pipeline, pair, receiver, operator
):
    # Given an endpoint paused after failing every attempt for 3 s (5 days in a deployment)
    timing = dataclasses.replace(
        pipeline.deps.timing, webhook_pause_after_s=3.0, webhook_retry_delays_s=(0.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    )
    pipeline.replace(timing=timing)
    receiver.down = True
    drop(pipeline, pair, "first", receiver.url)
    pipeline.run_until_final("first")
    for _ in range(3):
        pipeline.advance(1.6)
        deliver_what_is_due(pipeline, rounds=1)
    endpoint = pipeline.deps.store.get_webhook_endpoint(endpoint_id(receiver.url))
    assert endpoint is not None and endpoint.paused
    paused_events = [n for n in pipeline.notifications() if n["message"]["type"] == ENDPOINT_PAUSED_EVENT]
    assert len(paused_events) == 1
    assert paused_events[0]["message"]["data"]["endpoint_id"] == endpoint_id(receiver.url)
    assert "PAUSED" in operator("status", "first")

    # When the receiver is fixed, and more events come while it is still paused
    receiver.down = False
    drop(pipeline, pair, "second", receiver.url)
    pipeline.run_until_final("second")
    pipeline.advance(5)
    deliver_what_is_due(pipeline)
    # Then nothing reaches it
    assert receiver.received == []

    # When the operator resumes it (any token in the query: the endpoint is its origin and path)
    out = operator("webhook", "resume", receiver.url.replace("tok-123", "other"))
    assert "resumed: 2 waiting deliveries" in out and "tok-123" not in out
    deliver_what_is_due(pipeline)

    # Then both arrive, verified, oldest first, and nothing more
    assert receiver.rejected == []
    types = [json.loads(body)["data"]["job"] for _, body in receiver.received]
    assert types == ["first", "second"]
    pipeline.advance(10)
    deliver_what_is_due(pipeline)
    assert len(receiver.received) == 2
