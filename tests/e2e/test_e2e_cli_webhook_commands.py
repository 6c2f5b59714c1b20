"""The ``inbetween webhook replay|resume`` commands: their own checks (before any stack is reached),
--since times, the delivery log ``inbetween status`` prints, and a replay through the local stack that a
receiver verifies with ``standardwebhooks``, carrying the original webhook-id."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from inbetween.domain.models import DeliveryLogEntry, DeliveryState, WebhookDelivery
from inbetween.domain.webhook_events import WebhookEndpoint, endpoint_id
from inbetween_local import cli
from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import SAMPLES

pytestmark = pytest.mark.e2e
NOW = 1_800_000_000.0


@pytest.fixture
def no_stack(tmp_path, monkeypatch):
    monkeypatch.setenv("INBETWEEN_STATE_FILE", str(tmp_path / "missing.json"))
    for name in cli.ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["webhook", "replay"], "give a JOB, or --since TIME"),
        (["webhook", "replay", "shot", "--since", "2h"], "give a JOB, or --since TIME"),
        (["webhook", "replay", "shot", "--failed"], "--failed goes with --since TIME"),
        (["webhook", "resume", "hooks.example.com/in"], "URL must be the endpoint's webhook URL"),
    ],
)
def test_a_wrong_command_line_says_what_to_give(no_stack, argv, fragment, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


def test_replay_and_resume_need_a_stack_like_every_command(no_stack, capsys):
    assert cli.main(["webhook", "replay", "--since", "2h"]) == 2
    assert "no local stack is running" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("90m", NOW - 5400),
        ("2h", NOW - 7200),
        ("3d", NOW - 3 * 86400),
        ("1.5h", NOW - 5400),
        ("2027-01-15T08:00:00Z", datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()),
        ("2027-01-15T09:00:00+01:00", datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()),
    ],
)
def test_since_is_an_age_or_an_iso_time(raw, expected):
    assert cli.parse_since(raw, now=NOW) == pytest.approx(expected)


def test_an_iso_time_without_a_zone_is_utc():
    assert cli.parse_since("2027-01-15T08:00", now=NOW) == cli.parse_since("2027-01-15T08:00Z", now=NOW)


def test_a_since_that_is_no_time_is_refused():
    with pytest.raises(cli.CliError) as err:
        cli.parse_since("yesterday", now=NOW)
    assert "ISO 8601" in str(err.value) and "90m" in str(err.value)


def test_the_delivery_log_shows_each_attempt_and_never_the_path_or_query():
    url = "https://hooks.example.com/services/T0/SECRETPATH?token=tok-1"
    delivery = WebhookDelivery(
        delivery_id="msg_abc",
        job_id="shot/run",
        url=url,
        body="{}",
        created_at=NOW,
        state=DeliveryState.WAITING,
        attempts=2,
        replays=1,
        log=(
            DeliveryLogEntry(NOW, DeliveryState.PENDING, 503, "answered 503", NOW + 5),
            DeliveryLogEntry(NOW + 5, DeliveryState.PENDING, None, "timed out connecting", NOW + 300),
            DeliveryLogEntry(NOW + 400, DeliveryState.WAITING, note="held: endpoint paused"),
        ),
    )
    paused = WebhookEndpoint(endpoint_id(url), "https://hooks.example.com", paused_at=NOW + 399)
    lines = cli.describe_delivery(delivery, paused)
    text = "\n".join(lines)
    assert lines[0] == f"webhook:   https://hooks.example.com/… ({endpoint_id(url)})"
    assert "waiting, 2 attempts, replayed 1x (endpoint PAUSED" in lines[1]
    assert "HTTP 503: answered 503  -> next attempt" in lines[2]
    assert "timed out connecting" in lines[3] and "held: endpoint paused" in lines[4]
    assert "SECRETPATH" not in text and "tok-1" not in text


# ---------------------------------------------------------------------------------------------- local stack
class VerifyingReceiver:
    """A receiver on 127.0.0.1 that accepts only what standardwebhooks verifies (401 otherwise)."""

    def __init__(self, secret: str) -> None:
        self.verified: list[tuple[dict[str, str], bytes]] = []
        self.rejected = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(secret).verify(body, headers)
                except Exception:  # noqa: BLE001 - any failure to verify is a rejection
                    owner.rejected += 1
                    status = 401
                else:
                    owner.verified.append((headers, body))
                    status = 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks?token=e2e-token"

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.verified) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(self.verified) >= count, f"{len(self.verified)} verified, {self.rejected} rejected"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cli_env(stack, tmp_path, monkeypatch):
    state = stack.write_state(tmp_path / "state.json")
    monkeypatch.setenv("INBETWEEN_STATE_FILE", str(state))
    for name in cli.ENV_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    return stack


# the local stack's marks (tests.e2e.conftest.STACK_MARKS), on this test only: the others need no stack
@pytest.mark.e2e
@pytest.mark.xdist_group("e2e-local-stack")
@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_replay_through_the_local_stack_arrives_verified_with_the_original_webhook_id(cli_env, capsys):
    receiver = VerifyingReceiver(cli_env.webhook_secret)
    try:
        # Given a job whose webhook arrived and verified
        first, last = str(SAMPLES / "first.png"), str(SAMPLES / "last.png")
        argv = ["drop", first, last, "--job", "e2e-replay", "--webhook-url", receiver.url]
        assert cli.main([*argv, "--model", "wan2.2-kf2v-flash", "--wait", "--timeout", "90"]) == 0
        receiver.wait_for(1)
        time.sleep(1.1)  # the replay's timestamp is a later second

        # When the operator replays it, twice
        capsys.readouterr()
        assert cli.main(["webhook", "replay", "e2e-replay"]) == 0
        first_answer = capsys.readouterr().out
        assert cli.main(["webhook", "replay", "e2e-replay"]) == 0
        second_answer = capsys.readouterr().out
        assert first_answer.startswith("queued ")
        # the second replay finds the first still queued (sent once), or, when the running stack was
        # quicker than the two commands, already delivered (then it is queued again and sent again)
        sent_again = second_answer.startswith("queued ")
        assert sent_again or second_answer.startswith("already queued")
        expected = 3 if sent_again else 2
        receiver.wait_for(expected)
        time.sleep(3)  # a few poller cycles: one more delivery would have arrived by now

        # Then it arrived again, verified, with the original webhook-id and body, a later timestamp
        assert len(receiver.verified) == expected and receiver.rejected == 0
        (h1, b1), *again = receiver.verified
        for h, b in again:
            assert h["webhook-id"] == h1["webhook-id"] and b == b1
            assert int(h["webhook-timestamp"]) > int(h1["webhook-timestamp"])

        # And `inbetween status` shows every attempt and the replay, without the URL's token
        assert cli.main(["status", "e2e-replay"]) == 0
        status = capsys.readouterr().out
        assert status.count("HTTP 204") == expected and "replay requested" in status
        assert "e2e-token" not in status
    finally:
        receiver.close()
