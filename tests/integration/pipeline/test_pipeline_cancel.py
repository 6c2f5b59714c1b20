"""Cancel through the pipeline (moto server, the DashScope emulator, the template's handlers): deleting a
job's inputs from the versioned inbox (a delete marker, as S3 announces it) or the CLI's request on the
intake queue. For each state the emulator's counters prove what reached the provider: no task created
(waiting, held), exactly one cancel (PENDING), none (RUNNING: paid, stored); each job ends in its state
with exactly one notification, on SNS and as a signed webhook."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from inbetween.domain.messages import cancel_message
from inbetween.domain.models import JobStatus, Transition
from inbetween_local.emulator import EmulatorConfig
from pipeline_kit import API_KEY, WEBHOOK_SECRET_RAW, frame_png
from standardwebhooks.webhooks import Webhook

KF2V = "wan2.2-kf2v-flash"
CANCELED_EVENT = "video.generation.canceled"
# long enough that a task is still PENDING (or RUNNING) when the cancel comes
LONG_S = 60.0

pytestmark = pytest.mark.timeout(180)


class Receiver:
    """A webhook endpoint on loopback that keeps every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/inbetween"

    def events(self) -> list[dict]:
        return [
            Webhook("whsec_" + WEBHOOK_SECRET_RAW).verify(body, headers) for headers, body in self.requests
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def emulator_config(request):
    """Tasks stay PENDING a long time unless a test asks otherwise (``indirect`` parametrisation)."""
    pending_s, running_s = getattr(request, "param", (LONG_S, 0.4))
    return EmulatorConfig(
        api_keys=(API_KEY,), pending_s=pending_s, running_s=running_s, render_preset="ultrafast"
    )


@pytest.fixture
def env_overrides():
    # one task at a time: the second job dropped waits for the slot
    return {"PROVIDER_CONCURRENCY": "1", "PROVIDER_BACKLOG": "0"}


def drop_job(pipeline, name: str, hook: str) -> None:
    job = {"model": KF2V, "resolution": "480P", "prompt": "a red square turns blue", "webhook_url": hook}
    pipeline.drop(
        name,
        {
            "first.png": frame_png((220, 40, 40)),
            "last.png": frame_png((40, 60, 220)),
            "job.json": json.dumps(job).encode(),
        },
    )


def delete_inputs(pipeline, name: str, *files: str) -> None:
    """As a user would: a plain delete, which in the versioned inbox leaves a delete marker."""
    for filename in files:
        resp = pipeline.s3.delete_object(
            Bucket=pipeline.settings.inbox_bucket, Key=f"inbox/{name}/{filename}"
        )
        assert resp.get("DeleteMarker") is True


def send_cancel(pipeline, target: str) -> None:
    """What ``inbetween cancel`` sends."""
    pipeline.sqs.send_message(QueueUrl=pipeline.settings.intake_queue_url, MessageBody=cancel_message(target))


def item(pipeline, name: str) -> dict:
    found = pipeline.job(name)
    assert found is not None, f"no job {name!r}"
    return found


def settle(pipeline, name: str, status: str, timeout: float = 30.0) -> dict:
    """Run the pipeline until ``name`` is ``status`` and notified."""

    def done() -> bool:
        found = pipeline.job(name)
        return bool(found and found["status"] == status and found.get("notified_at"))

    pipeline.run_until(done, timeout)
    return item(pipeline, name)


def one_notification(pipeline, receiver, name: str, event_type: str) -> dict:
    """Exactly one SNS notification and one verified webhook for ``name``, both ``event_type``."""
    notes = [n for n in pipeline.notifications() if n["message"]["data"].get("job") == name]
    assert [n["attributes"]["event_type"] for n in notes] == [event_type]
    hooks = [e for e in receiver.events() if e["data"].get("job") == name]
    assert [e["type"] for e in hooks] == [event_type]
    return hooks[0]["data"]


def submitted(pipeline, name: str) -> dict:
    pipeline.submit_step()
    found = item(pipeline, name)
    assert found["status"] == "SUBMITTED", found["status"]
    return found


def test_a_waiting_job_whose_inputs_are_deleted_is_withdrawn_with_no_task(pipeline, receiver):
    # Given one job holding the only slot (its task PENDING for a minute) and a second waiting for it
    drop_job(pipeline, "holder", receiver.url)
    submitted(pipeline, "holder")
    drop_job(pipeline, "mistake", receiver.url)
    pipeline.submit_step()
    assert item(pipeline, "mistake")["status"] == "WAITING"
    # When the waiting job's frames are deleted from the inbox
    delete_inputs(pipeline, "mistake", "first.png", "last.png")
    canceled = settle(pipeline, "mistake", "CANCELED")
    # Then it was withdrawn: the provider saw one create (the holder's) and no cancel
    assert pipeline.emulator.stats.creates_accepted == 1 and pipeline.emulator.stats.cancels == 0
    assert "task_id" not in canceled and canceled["cancel_answer"] == "withdrawn"
    assert canceled["cancel_source"] == "inbox"
    # and it was announced once, on SNS and by a verified webhook
    data = one_notification(pipeline, receiver, "mistake", CANCELED_EVENT)
    assert data["status"] == "CANCELED" and data["cancel"]["answer"] == "withdrawn"
    # and nothing more happens on later rounds (two delete events, the poller's checks)
    for _ in range(3):
        pipeline.submit_step()
        pipeline.poll_step()
    assert pipeline.notifications() == [] and len(receiver.events()) == 1
    assert item(pipeline, "holder")["status"] == "SUBMITTED"


def test_a_held_job_cancelled_by_the_cli_is_withdrawn_with_no_task(pipeline, receiver):
    # Given a job held for the month's budget behind a running one
    drop_job(pipeline, "holder", receiver.url)
    submitted(pipeline, "holder")
    drop_job(pipeline, "held", receiver.url)
    pipeline.submit_step()
    held = item(pipeline, "held")
    assert pipeline.deps.store.apply(Transition.of(held["job_id"], JobStatus.WAITING, JobStatus.HELD))
    # When `inbetween cancel held` asks for it
    send_cancel(pipeline, held["job_id"])
    canceled = settle(pipeline, "held", "CANCELED")
    # Then no task was made for it and nothing was cancelled at the provider
    assert pipeline.emulator.stats.creates_accepted == 1 and pipeline.emulator.stats.cancels == 0
    assert canceled["cancel_answer"] == "withdrawn" and canceled["cancel_source"] == "cli"
    one_notification(pipeline, receiver, "held", CANCELED_EVENT)


def test_a_pending_task_is_cancelled_at_the_provider_with_exactly_one_cancel(pipeline, receiver):
    # Given a job whose task is PENDING at the provider
    drop_job(pipeline, "pending", receiver.url)
    task_id = submitted(pipeline, "pending")["task_id"]
    # When the CLI's cancel is delivered, twice (at-least-once delivery)
    send_cancel(pipeline, "pending")
    send_cancel(pipeline, "pending")
    canceled = settle(pipeline, "pending", "CANCELED")
    # Then exactly one cancel reached the provider, and the task is CANCELED there
    assert pipeline.emulator.stats.creates_accepted == 1 and pipeline.emulator.stats.cancels == 1
    assert pipeline.emulator.task(task_id).status.value == "CANCELED"
    assert canceled["cancel_answer"] == "provider_canceled" and canceled["provider_status"] == "CANCELED"
    assert pipeline.deps.store.slots_in_use(KF2V) == 0
    # and one notification; later checks change nothing
    data = one_notification(pipeline, receiver, "pending", CANCELED_EVENT)
    assert data["task_id"] == task_id and "error" not in data
    for _ in range(3):
        pipeline.submit_step()
        pipeline.poll_step()
    assert pipeline.emulator.stats.cancels == 1 and pipeline.notifications() == []


@pytest.mark.parametrize("emulator_config", [(0.1, 4.0)], indirect=True)
def test_a_running_task_is_paid_and_its_video_stored(pipeline, receiver):
    # Given a job whose task the provider is already running
    drop_job(pipeline, "running", receiver.url)
    task_id = submitted(pipeline, "running")["task_id"]
    deadline = time.monotonic() + 10
    while pipeline.emulator.task(task_id).status.value != "RUNNING":
        assert time.monotonic() < deadline, "the emulated task never started"
        time.sleep(0.05)
    # When its inputs are deleted from the inbox
    delete_inputs(pipeline, "running", "first.png", "last.png")
    pipeline.submit_step()
    # Then nothing could be cancelled: the job runs on, and says why
    assert pipeline.emulator.stats.cancels == 0
    running = item(pipeline, "running")
    assert running["status"] == "SUBMITTED" and running["cancel_answer"] == "running"
    # and it ends STORED as usual, the video in the output bucket, with one success notification
    stored = settle(pipeline, "running", "STORED", timeout=60)
    head = pipeline.s3.head_object(Bucket=pipeline.settings.output_bucket, Key=stored["video_key"])
    assert head["ContentLength"] > 0
    data = one_notification(pipeline, receiver, "running", "video.generation.succeeded")
    assert data["cancel"]["answer"] == "running" and data["video"]["key"] == stored["video_key"]
    assert pipeline.emulator.stats.cancels == 0


@pytest.mark.parametrize("emulator_config", [(0.1, 0.4)], indirect=True)
def test_a_finished_job_is_left_as_it_is(pipeline, receiver):
    drop_job(pipeline, "done", receiver.url)
    settle(pipeline, "done", "STORED", timeout=60)
    one_notification(pipeline, receiver, "done", "video.generation.succeeded")
    # When the CLI's cancel and a delete of its inputs come afterwards
    send_cancel(pipeline, "done")
    delete_inputs(pipeline, "done", "first.png")
    for _ in range(2):
        pipeline.submit_step()
        pipeline.poll_step()
    # Then it stays STORED, nothing reached the provider, nothing more was said
    assert item(pipeline, "done")["status"] == "STORED"
    assert pipeline.emulator.stats.cancels == 0 and pipeline.emulator.stats.creates_accepted == 1
    assert pipeline.notifications() == [] and len(receiver.events()) == 1


def test_deleting_a_films_keyframes_cancels_its_unstarted_shots_and_ends_it_canceled_once(pipeline, receiver):
    # Given a film of two shots: one PENDING at the provider (the one slot), one waiting for the slot
    film_json = {"model": KF2V, "resolution": "480P", "webhook_url": receiver.url}
    pipeline.drop(
        "walk",
        {
            "01.png": frame_png((220, 40, 40)),
            "02.png": frame_png((40, 200, 40)),
            "03.png": frame_png((40, 60, 220)),
            "film.json": json.dumps(film_json).encode(),
        },
    )
    pipeline.submit_step()
    shots = [i for i in pipeline.job_items() if i["job_name"] == "walk"]
    assert sorted(i["status"] for i in shots) == ["SUBMITTED", "WAITING"]
    # When its keyframes are deleted (an event per keyframe)
    delete_inputs(pipeline, "walk", "01.png", "02.png", "03.png")

    def film_notified() -> bool:
        runs = pipeline.deps.store.recent_film_runs("walk")
        return bool(runs and runs[0].notified_at)

    pipeline.run_until(film_notified, timeout=30)
    # Then the PENDING shot was cancelled at the provider (one cancel), the waiting one withdrawn
    assert pipeline.emulator.stats.creates_accepted == 1 and pipeline.emulator.stats.cancels == 1
    shots = [i for i in pipeline.job_items() if i["job_name"] == "walk"]
    assert sorted(i["cancel_answer"] for i in shots) == ["provider_canceled", "withdrawn"]
    assert {i["status"] for i in shots} == {"CANCELED"}
    # and the film ended CANCELED, announced once (its shots have no events of their own)
    (run,) = pipeline.deps.store.recent_film_runs("walk")
    assert run.status.value == "CANCELED" and run.cancel_source == "inbox"
    notes = pipeline.notifications()
    assert [n["attributes"]["event_type"] for n in notes] == ["film.canceled"]
    assert [e["type"] for e in receiver.events()] == ["film.canceled"]


def test_a_cancel_during_the_create_call_cancels_the_task_once_it_exists(pipeline, receiver):
    # Given a job whose create call the provider answers slowly (3 s), taken by one submit instance
    pipeline.emulator.faults.create_latency_s = 3.0
    drop_job(pipeline, "mid-create", receiver.url)
    admitting = threading.Thread(target=pipeline.submit_step)
    admitting.start()
    deadline = time.monotonic() + 10
    while (pipeline.job("mid-create") or {}).get("status") != "SUBMITTING":
        assert time.monotonic() < deadline, "the job never reached SUBMITTING"
        time.sleep(0.02)
    # When the CLI's cancel is handled by another instance while the create call is under way
    send_cancel(pipeline, "mid-create")
    pipeline.invoke_queue("submit", pipeline.settings.intake_queue_url, instance=1)
    assert item(pipeline, "mid-create")["cancel_answer"] == "awaiting_task"
    admitting.join(timeout=20)
    pipeline.emulator.faults.create_latency_s = 0.0
    # Then the task that call made was cancelled at once, while PENDING: one create, one cancel
    canceled = settle(pipeline, "mid-create", "CANCELED")
    assert pipeline.emulator.stats.creates_accepted == 1 and pipeline.emulator.stats.cancels == 1
    assert pipeline.emulator.task(canceled["task_id"]).status.value == "CANCELED"
    assert canceled["cancel_answer"] == "provider_canceled"
    assert pipeline.deps.store.slots_in_use(KF2V) == 0
    one_notification(pipeline, receiver, "mid-create", CANCELED_EVENT)
