"""Notification against the in-memory world: a final job is announced exactly once (even when several
invocations find it at once), with the error report where the user looks, on the topic and by webhook."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from inbetween.domain.models import DueKind, ErrorInfo, InputObject, Job, JobSpec, JobStatus
from inbetween.usecases.notify import (
    FAILED_EVENT,
    MAX_S3_KEY_BYTES,
    SUCCEEDED_EVENT,
    UNSAFE_NAME_CODE,
    event_data,
    iso,
    report_and_notify,
)
from inbetween.usecases.webhook_delivery import event_id
from inbetween_local.memory import MemoryWorld, memory_world
from inbetween_local.memory import test_settings as settings_for

MODEL = "wan2.2-kf2v-flash"
ERROR = ErrorInfo(
    code="DataInspectionFailed",
    message="the input image did not pass the provider's content check",
    hint="use other frames",
    provider_request_id="req-9",
)


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world()


def final_job(
    world: MemoryWorld,
    name: str = "shot",
    status: JobStatus = JobStatus.FAILED,
    *,
    error: ErrorInfo | None = ERROR,
    webhook_url: str | None = None,
    **fields: Any,
) -> Job:
    """A job that just reached its final state (finish() wrote it with a notify due item)."""
    now = world.clock.now()
    inputs = {role: InputObject(f"inbox/{name}/{role}.png", "etag", 1000) for role in ("first", "last")}
    spec = JobSpec(model=MODEL, resolution="720P", prompt="a slow zoom", webhook_url=webhook_url)
    job = Job(
        f"{name}/run1",
        name,
        "run1",
        status,
        spec,
        inputs,
        now - 300,
        now,
        expected_size=(1280, 720),
        error=error,
        finished_at=now,
        task_id="task-7",
        submitted_at=now - 250,
        **fields,
    )
    assert world.store.add_job(job, due=(DueKind.NOTIFY, now + world.deps.timing.notify_grace_s))
    return job


def reread(world: MemoryWorld, job: Job) -> Job:
    found = world.store.get_job(job.job_id)
    assert found is not None
    return found


# ---------------------------------------------------------------------------------------------- once
def test_a_final_job_is_notified_once_and_marked(world):
    job = final_job(world)
    assert report_and_notify(world.deps, job) is True
    assert len(world.notifier.published) == 1
    after = reread(world, job)
    assert after.notified_at == world.clock.now()
    assert world.store.due.get(f"job#{job.job_id}") is None  # the safety net's item is gone
    # a second call (a redelivered message, the poller) with the old or the new record does nothing
    assert report_and_notify(world.deps, job) is False
    assert report_and_notify(world.deps, after) is False
    assert len(world.notifier.published) == 1


def test_invocations_finding_the_same_job_at_once_notify_once():
    # Given a final job, and eight invocations that all found it unnotified
    world = memory_world()
    job = final_job(world, webhook_url="https://hooks.test/in")
    start = threading.Barrier(8)
    results: list[bool] = []
    lock = threading.Lock()

    def invocation() -> None:
        start.wait()
        notified = report_and_notify(world.deps, job)
        with lock:
            results.append(notified)

    threads = [threading.Thread(target=invocation) for _ in range(8)]
    # When they all notify together
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    # Then exactly one did: one publication, one webhook delivery, one error report write
    assert sorted(results) == [False] * 7 + [True]
    assert len(world.notifier.published) == 1
    assert len(world.webhooks.sent) == 1
    assert len(world.store.deliveries) == 1


def test_a_claim_held_by_another_invocation_stops_this_one_until_it_expires(world):
    job = final_job(world)
    now = world.clock.now()
    grace = world.deps.timing.notify_grace_s
    assert world.store.claim_notification(job.job_id, now=now, until=now + grace)  # another invocation
    assert report_and_notify(world.deps, job) is False
    assert world.notifier.published == []
    # the other invocation died: once its claim has run out, the next attempt notifies
    world.clock.advance(grace + 1)
    assert report_and_notify(world.deps, reread(world, job)) is True
    assert len(world.notifier.published) == 1


@pytest.mark.parametrize("status", [JobStatus.WAITING, JobStatus.SUBMITTED, JobStatus.COMPLETING])
def test_a_job_that_is_not_final_is_not_notified(world, status):
    now = world.clock.now()
    job = Job("busy/run1", "busy", "run1", status, JobSpec(model=MODEL, resolution="720P"), {}, now, now)
    world.store.add_job(job)
    assert report_and_notify(world.deps, job) is False
    assert world.notifier.published == []
    assert reread(world, job).notify_claimed_until is None


# ---------------------------------------------------------------------------------------------- error reports
def test_a_failure_leaves_an_error_report_in_the_inbox_folder_and_under_results(world):
    job = final_job(world)
    report_and_notify(world.deps, job)
    inbox = world.blobs.json[("inbox", "inbox/shot/error.json")]
    results = world.blobs.json[("output", "results/shot/run1/error.json")]
    assert inbox == results
    assert inbox["job"] == "shot" and inbox["job_id"] == job.job_id and inbox["status"] == "FAILED"
    assert inbox["error"] == {
        "code": "DataInspectionFailed",
        "message": "the input image did not pass the provider's content check",
        "hint": "use other frames",
        "retryable": False,
        "provider_request_id": "req-9",
    }
    assert inbox["what_to_do"] == "use other frames"
    assert inbox["inputs"] == {"first": "inbox/shot/first.png", "last": "inbox/shot/last.png"}
    assert inbox["task_id"] == "task-7"
    assert inbox["at"] == iso(job.updated_at)


def test_an_error_without_a_hint_says_to_fix_the_inputs(world):
    job = final_job(world, error=ErrorInfo(code="TaskFailed", message="no reason"))
    report_and_notify(world.deps, job)
    assert world.blobs.json[("inbox", "inbox/shot/error.json")]["what_to_do"].startswith("fix the inputs")


def test_a_stored_job_writes_no_error_report(world):
    job = final_job(world, status=JobStatus.STORED, error=None, video_key="results/shot/run1/video.mp4")
    report_and_notify(world.deps, job)
    assert world.blobs.json == {}


def test_an_invalid_job_name_gets_its_report_in_the_inbox_only(world):
    name = "n" * 300  # too long for a job name, not for an S3 key
    job = final_job(
        world, name, JobStatus.REJECTED, error=ErrorInfo(code=UNSAFE_NAME_CODE, message="too long")
    )
    report_and_notify(world.deps, job)
    assert list(world.blobs.json) == [("inbox", f"inbox/{name}/error.json")]
    assert len(world.notifier.published) == 1


def test_a_name_too_long_for_an_inbox_key_gets_no_report_but_is_still_notified(world):
    name = "n" * (MAX_S3_KEY_BYTES - len("inbox/") - len("/error.json") + 1)
    job = final_job(
        world, name, JobStatus.REJECTED, error=ErrorInfo(code=UNSAFE_NAME_CODE, message="too long")
    )
    assert report_and_notify(world.deps, job) is True
    assert world.blobs.json == {}
    assert len(world.notifier.published) == 1
    # one byte shorter fits
    fits = final_job(
        world, name[:-1], JobStatus.REJECTED, error=ErrorInfo(code=UNSAFE_NAME_CODE, message="x")
    )
    report_and_notify(world.deps, fits)
    assert [len(key.encode()) for _, key in world.blobs.json] == [MAX_S3_KEY_BYTES]


# ---------------------------------------------------------------------------------------------- the topic
def test_the_notification_of_a_failure_carries_the_event_and_its_data(world):
    job = final_job(world, provider={"actual_prompt": "a zoom", "usage": {"video_count": 0}})
    report_and_notify(world.deps, job)
    (note,) = world.notifier.published
    assert (note.event_type, note.job_name, note.status, note.model) == (
        FAILED_EVENT,
        "shot",
        JobStatus.FAILED,
        MODEL,
    )
    assert note.timestamp == iso(world.clock.now())
    assert note.data["error"]["code"] == "DataInspectionFailed"
    assert (note.data["job"], note.data["job_id"], note.data["status"], note.data["task_id"]) == (
        "shot",
        job.job_id,
        "FAILED",
        "task-7",
    )
    assert (note.data["actual_prompt"], note.data["usage"]) == ("a zoom", {"video_count": 0})
    assert note.data["timings"]["submitted_at"] == iso(job.submitted_at)
    assert note.data["timings"]["finished_at"] == iso(job.finished_at)
    assert "video" not in note.data


def test_the_notification_of_a_stored_video_links_to_it(world):
    key = "results/shot/run1/video.mp4"
    job = final_job(world, status=JobStatus.STORED, error=None, video_key=key, video_bytes=1234)
    report_and_notify(world.deps, job)
    (note,) = world.notifier.published
    assert note.event_type == SUCCEEDED_EVENT
    ttl = world.deps.settings.webhook_link_ttl_s
    assert note.data["video"] == {
        "bucket": "output",
        "key": key,
        "size_bytes": 1234,
        "width": 1280,
        "height": 720,
        "url": world.blobs.presign_get("output", key, ttl),
        "url_expires_at": iso(world.clock.now() + ttl),
    }
    assert note.data["metadata_key"] == "results/shot/run1/metadata.json"
    assert "error" not in note.data


def test_event_data_leaves_out_what_is_not_known(world):
    now = world.clock.now()
    job = Job("bare/run1", "bare", "run1", JobStatus.REJECTED, None, {}, now, now, error=ERROR)
    data = event_data(world.deps, job)
    assert set(data) == {"job", "job_id", "status", "timings", "error", "cost"}
    assert data["timings"]["dropped_at"] == iso(now)
    # a drop refused before any task: it cost nothing, and says so
    assert data["cost"] == {"amount": "0.00", "currency": "CNY", "billed_seconds": None, "estimated": False}


def test_a_notifier_that_fails_leaves_the_job_unnotified_for_the_safety_net(world):
    job = final_job(world)
    world.notifier.fail = True
    with pytest.raises(ConnectionError):
        report_and_notify(world.deps, job)
    assert reread(world, job).notified_at is None
    assert world.store.due_jobs(DueKind.NOTIFY, world.clock.now() + 3600) != []


# ---------------------------------------------------------------------------------------------- webhook
def test_the_webhook_of_the_job_gets_the_same_event_at_once(world):
    job = final_job(world, webhook_url="https://hooks.test/in")
    report_and_notify(world.deps, job)
    ((url, msg_id, body),) = world.webhooks.sent
    assert (url, msg_id) == ("https://hooks.test/in", event_id(job))
    sent = json.loads(body)
    assert sent["type"] == FAILED_EVENT
    assert sent["data"] == world.notifier.published[0].data


def test_without_a_job_webhook_the_deployments_default_is_used():
    world = memory_world(settings_for(default_webhook_url="https://hooks.test/default"))
    job = final_job(world)
    report_and_notify(world.deps, job)
    assert [url for url, _, _ in world.webhooks.sent] == ["https://hooks.test/default"]


def test_without_any_webhook_none_is_sent(world):
    report_and_notify(world.deps, final_job(world))
    assert world.webhooks.sent == [] and world.store.deliveries == {}
