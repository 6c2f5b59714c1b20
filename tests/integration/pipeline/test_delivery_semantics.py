"""At-least-once delivery: duplicates, races, redeliveries and crashes never cost a second task."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest
from faults import Crash, FaultyStore, FunctionCrashed, is_move, when
from inbetween.domain.models import JobStatus


def test_every_s3_event_delivered_twice_creates_one_task_and_one_notification(pipeline, pair):
    # Given S3 delivers each notification twice
    pipeline.drop("dup", pair)
    messages = pipeline.receive(pipeline.settings.intake_queue_url)
    assert len(messages) == 2
    pipeline.invoke_queue("submit", pipeline.settings.intake_queue_url, messages)
    for m in messages:  # the same bodies again, as a redelivery would bring them
        pipeline.sqs.send_message(QueueUrl=pipeline.settings.intake_queue_url, MessageBody=m["Body"])
    # When the pipeline runs
    item = pipeline.run_until_final("dup")
    # Then one task, one job, one notification
    assert item["status"] == "STORED"
    assert pipeline.emulator.stats.creates_accepted == 1
    assert len([i for i in pipeline.job_items() if i["job_name"] == "dup"]) == 1
    assert len(pipeline.notifications()) == 1


def test_two_submitters_racing_on_the_same_drop_create_one_task(pipeline, pair):
    pipeline.drop("race", pair)
    messages = pipeline.receive(pipeline.settings.intake_queue_url)
    # each delivery in its own container (its own copy of the handler module), as Lambda would run them
    threads = [
        threading.Thread(
            target=pipeline.invoke_queue,
            args=("submit", pipeline.settings.intake_queue_url, [m]),
            kwargs={"instance": i},
        )
        for i, m in enumerate(messages)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pipeline.run_until_final("race")
    assert pipeline.emulator.stats.creates_accepted == 1


def test_s3_test_event_and_foreign_keys_are_ignored_not_failed(pipeline, event_loader):
    event = event_loader("submit-s3-test-event.json")
    result = pipeline.invoke("submit", event)
    assert result == {"batchItemFailures": []}
    pipeline.s3.put_object(Bucket=pipeline.settings.inbox_bucket, Key="inbox/loose-file.png", Body=b"x")
    pipeline.s3.put_object(Bucket=pipeline.settings.inbox_bucket, Key="inbox/a/b/first.png", Body=b"x")
    pipeline.s3.put_object(Bucket=pipeline.settings.inbox_bucket, Key="inbox/notes/readme.md", Body=b"x")
    assert pipeline.submit_step() == {"batchItemFailures": []}
    assert pipeline.job_items() == []
    assert pipeline.emulator.stats.creates_accepted == 0


def test_the_sample_s3_event_of_a_real_drop_is_processed(pipeline, pair, event_loader):
    # the AWS-shaped sample event (events/submit-s3-put.json), pointed at this test's bucket
    pipeline.s3.put_object(
        Bucket=pipeline.settings.inbox_bucket, Key="inbox/my shot/first.png", Body=pair["first.png"]
    )
    pipeline.s3.put_object(
        Bucket=pipeline.settings.inbox_bucket, Key="inbox/my shot/last.png", Body=pair["last.png"]
    )
    pipeline.receive(pipeline.settings.intake_queue_url)  # discard moto's own notifications
    event = event_loader("submit-s3-put.json")
    body = json.loads(event["Records"][0]["body"])
    body["Records"][0]["s3"]["bucket"]["name"] = pipeline.settings.inbox_bucket
    event["Records"][0]["body"] = json.dumps(body)
    result = pipeline.invoke("submit", event)
    assert result == {"batchItemFailures": []}
    item = pipeline.run_until_final("my shot")
    assert item["status"] == "STORED"


def test_files_arriving_in_any_order_make_the_same_single_job(pipeline, pair):
    # Given a settle window, and a folder whose job.json lands after the frames (as `aws s3 sync` may)
    pipeline.replace(settings=dataclasses.replace(pipeline.settings, settle_seconds=2))
    pipeline.drop("sync", {"last.png": pair["last.png"]})
    pipeline.submit_step()
    pipeline.drop("sync", {"first.png": pair["first.png"]})
    pipeline.submit_step()
    pipeline.drop("sync", {"job.json": json.dumps({"prompt": "late prompt"}).encode()})
    # When the pipeline runs
    item = pipeline.run_until_final("sync", timeout=40)
    # Then exactly one job, with the late job.json applied
    assert len([i for i in pipeline.job_items() if i["job_name"] == "sync"]) == 1
    assert item["spec"]["prompt"] == "late prompt"
    assert pipeline.emulator.stats.creates_accepted == 1


def test_a_changed_reupload_is_a_new_run_of_the_job(pipeline, pair):
    pipeline.drop("again", pair)
    pipeline.run_until_final("again")
    pipeline.drop("again", {"job.json": json.dumps({"prompt": "second take"}).encode()})
    pipeline.run_until(
        lambda: (
            len([i for i in pipeline.job_items() if i["job_name"] == "again" and i.get("notified_at")]) == 2
        )
    )
    runs = [i for i in pipeline.job_items() if i["job_name"] == "again"]
    assert {r["status"] for r in runs} == {"STORED"}
    assert len({r["run_id"] for r in runs}) == 2
    assert pipeline.emulator.stats.creates_accepted == 2


def test_a_redelivered_completion_message_neither_copies_nor_notifies_again(pipeline, pair):
    pipeline.drop("redeliver", pair)
    item = pipeline.run_until_final("redeliver")
    assert len(pipeline.notifications()) == 1
    versions_before = pipeline.s3.list_object_versions(Bucket=pipeline.settings.output_bucket)["Versions"]
    pipeline.sqs.send_message(
        QueueUrl=pipeline.settings.completion_queue_url,
        MessageBody=json.dumps({"kind": "complete", "job_id": item["job_id"]}),
    )
    assert pipeline.completion_step() == {"batchItemFailures": []}
    versions_after = pipeline.s3.list_object_versions(Bucket=pipeline.settings.output_bucket)["Versions"]
    assert len(versions_after) == len(versions_before)
    assert pipeline.notifications() == []


def test_crash_after_the_provider_accepted_the_task_is_reconciled_not_resubmitted(pipeline, pair):
    # Given the function dies right after the provider accepted the task, before the table recorded it
    crash = Crash("simulated crash between 'task created' and 'task recorded'")
    pipeline.replace(store=FaultyStore(pipeline.deps.store, before_record_task=crash))
    pipeline.drop("orphan", pair)
    with pytest.raises(FunctionCrashed):
        pipeline.submit_step()
    assert crash.fired == 1
    assert pipeline.job("orphan")["status"] == "SUBMITTING"
    assert pipeline.emulator.stats.creates_accepted == 1
    # When the lease runs out and the poller reconciles with the provider's task list
    item = pipeline.run_until_final("orphan", timeout=40)
    # Then the orphan task was adopted: one task, one stored video
    assert item["status"] == "STORED"
    assert pipeline.emulator.stats.creates_accepted == 1


def test_a_create_whose_outcome_is_unknown_and_did_not_happen_is_submitted_again(pipeline, pair):
    # the provider answers 500 to the create: it may or may not have created the task; here it did not
    pipeline.emulator.faults.fail_next_creates(1, status=500)
    pipeline.drop("unsure", pair)
    item = pipeline.run_until_final("unsure", timeout=40)
    assert item["status"] == "STORED"
    assert pipeline.emulator.stats.creates_accepted == 1


def test_an_uncertain_create_then_a_crash_on_the_retry_is_still_reconciled(pipeline, pair):
    # Given a create whose answer was a 5xx (outcome unknown; here nothing was created) ...
    pipeline.emulator.faults.fail_next_creates(1, status=500)
    # ... and, on the retry, a crash between "task created" and "task recorded"
    crash = Crash("simulated crash")
    pipeline.replace(store=FaultyStore(pipeline.deps.store, before_record_task=crash))
    pipeline.drop("twice-unlucky", pair)
    pipeline.submit_step()  # the 5xx: the job is marked uncertain
    assert crash.fired == 0
    time.sleep(5)  # the retry starts well after the first attempt's window
    # When the poller reconciles (no task) and resubmits, and that retry crashes before recording
    with pytest.raises(FunctionCrashed):
        for _ in range(100):
            pipeline.poll_step()
            time.sleep(0.1)
    assert crash.fired == 1
    # Then the second reconciliation adopts the orphan: one task, one video, no error from a stale window
    item = pipeline.run_until_final("twice-unlucky", timeout=60)
    assert item["status"] == "STORED"
    assert pipeline.emulator.stats.creates_accepted == 1


def test_a_crash_between_storing_the_video_and_marking_it_stored_records_the_true_digest(pipeline, pair):
    # Given the completion dies right after the upload, before the job is marked STORED
    crash = Crash("simulated crash after the upload")
    stored = when(is_move(JobStatus.COMPLETING, JobStatus.STORED), crash)
    pipeline.replace(store=FaultyStore(pipeline.deps.store, before_apply=stored))
    pipeline.drop("digest", pair)
    with pytest.raises(FunctionCrashed):
        pipeline.run_until_final("digest")
    assert crash.fired == 1
    assert pipeline.job("digest")["status"] == "COMPLETING"
    # When the message comes back and completion runs again
    item = pipeline.run_until_final("digest", timeout=40)
    # Then the video was not copied twice, and metadata.json carries the stored bytes' real digest
    import hashlib

    body = pipeline.s3.get_object(Bucket=pipeline.settings.output_bucket, Key=item["video_key"])[
        "Body"
    ].read()
    meta = pipeline.read_json(
        pipeline.settings.output_bucket, item["video_key"].replace("video.mp4", "metadata.json")
    )
    assert meta["video"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert meta["video"]["bytes"] == len(body)
    versions = pipeline.s3.list_object_versions(
        Bucket=pipeline.settings.output_bucket, Prefix=item["video_key"]
    )
    assert len(versions["Versions"]) == 1


def test_a_crash_after_the_task_was_indexed_but_before_the_job_moved_adopts_it(pipeline, pair):
    # Given the crash falls between writing the task's index item and the job's own state change
    crash = Crash("simulated crash half way through recording the task")
    submitted = when(is_move(JobStatus.SUBMITTING, JobStatus.SUBMITTED), crash)
    pipeline.replace(store=FaultyStore(pipeline.deps.store, before_apply=submitted))
    pipeline.drop("half-way", pair)
    with pytest.raises(FunctionCrashed):
        pipeline.submit_step()
    assert crash.fired == 1
    job = pipeline.job("half-way")
    assert job["status"] == "SUBMITTING"
    [task_id] = pipeline.emulator.tasks
    assert pipeline.deps.store.job_for_task(task_id) == job["job_id"]
    # When the poller reconciles, Then the task is adopted: one task, one video
    item = pipeline.run_until_final("half-way", timeout=40)
    assert item["status"] == "STORED"
    assert pipeline.emulator.stats.creates_accepted == 1
