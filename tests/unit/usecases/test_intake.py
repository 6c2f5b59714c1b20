"""Intake (inbetween.usecases.intake): from S3 objects to jobs, against the in-memory ports.

The promises of tests/integration/pipeline (test_bad_input, test_delivery_semantics, the incomplete-drop
cases of test_admission_and_outcomes), kept quickly: a settling folder is looked at again later, an
incomplete one is rejected after its timeout, a valid one becomes one job and one provider task however
often its events arrive, and an invalid one gets an error report and one notification, no provider call.

The deployment here defaults to wan2.2-kf2v-flash (a drop is a pair, two slots, 800-character prompts,
10 MB frames), not the product's default wan2.7-i2v: its drops are test_intake_wan27's, and the one case
where the default changes what a drop means (a first frame alone) is below, under both.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from inbetween.domain.catalog import DEFAULT_MODEL
from inbetween.domain.models import DueKind, JobStatus
from inbetween.usecases.intake import IntakeOutcome, examine, on_object_created, settle_overdue_drops
from inbetween.usecases.notify import FAILED_EVENT
from inbetween_local.memory import memory_world
from inbetween_local.memory import test_settings as settings_with
from usecase_kit import (
    BLUE,
    FLASH,
    PLUS,
    RED,
    Wrapped,
    drop,
    frame_png,
    inbox_error,
    job_named,
    jobs_named,
    pair,
    results_error,
    submitted_job,
)

WAN27 = "wan2.7-i2v"


def kf2v_settings(**overrides):
    """Settings of a deployment whose default model is wan2.2-kf2v-flash at its 720P."""
    return settings_with(default_model=FLASH, default_resolution="720P", **overrides)


@pytest.fixture
def world():
    return memory_world(kf2v_settings())


def _event(world, name: str, filename: str = "first.png") -> IntakeOutcome:
    settings = world.deps.settings
    return on_object_created(world.deps, settings.inbox_bucket, f"{settings.inbox_prefix}{name}/{filename}")


# --- events that are not drops -----------------------------------------------------------------------


def test_an_event_from_another_bucket_is_ignored(world):
    drop(world, "shot", pair())
    assert on_object_created(world.deps, "someone-elses-bucket", "inbox/shot/first.png") is (
        IntakeOutcome.IGNORED_BUCKET
    )
    assert world.store.recent_jobs() == [] and world.provider.created == []


@pytest.mark.parametrize(
    "key",
    [
        "inbox/loose-file.png",
        "inbox/a/b/first.png",
        "inbox/notes/readme.md",
        "inbox/shot/error.json",  # the report we write ourselves must not start anything
        "outbox/shot/first.png",
    ],
)
def test_keys_outside_the_drop_convention_are_ignored_not_failed(world, key):
    drop(world, "shot", pair())
    assert on_object_created(world.deps, world.deps.settings.inbox_bucket, key) is IntakeOutcome.IGNORED_KEY
    assert world.store.recent_jobs() == [] and world.provider.created == []
    assert world.notifier.published == []


def test_a_folder_that_is_empty_again_is_ignored_and_forgotten(world):
    # Given a folder noted as incomplete, whose file was then deleted
    drop(world, "gone", {"first.png": frame_png()})
    assert _event(world, "gone") is IntakeOutcome.INCOMPLETE
    world.blobs.delete(world.deps.settings.inbox_bucket, "inbox/gone/first.png")
    # When it is looked at again
    assert examine(world.deps, "gone") is IntakeOutcome.IGNORED_EMPTY
    # Then nothing is left to settle
    assert world.store.overdue_drops(world.clock.now() + 10**6) == []


# --- settling ---------------------------------------------------------------------------------------


def test_a_folder_still_being_written_is_looked_at_again_once_it_has_been_quiet():
    # Given a five-second settle window and a pair just uploaded
    world = memory_world(kf2v_settings(settle_seconds=5))
    drop(world, "shot", pair())
    # When its event arrives at once
    assert _event(world, "shot") is IntakeOutcome.SETTLING
    # Then a recheck is queued for when the folder has been quiet for 5 s, counting S3's one-second
    # LastModified resolution (5 + 1, rounded up, + 1 s margin), and no job exists yet
    assert world.queues.rechecks == [("shot", 7)]
    assert world.store.recent_jobs() == [] and world.provider.created == []
    # and a look too early settles again, while the recheck at its time accepts the job
    world.clock.advance(5)
    assert examine(world.deps, "shot") is IntakeOutcome.SETTLING
    world.clock.advance(2)
    assert examine(world.deps, "shot") is IntakeOutcome.ACCEPTED
    assert len(world.provider.created) == 1


def test_files_arriving_in_any_order_make_one_job_with_the_late_job_json_applied():
    # Given a settle window, and a folder whose job.json lands after the frames (as `aws s3 sync` may)
    world = memory_world(kf2v_settings(settle_seconds=2))
    drop(world, "sync", {"last.png": frame_png(BLUE)})
    assert _event(world, "sync", "last.png") is IntakeOutcome.SETTLING
    world.clock.advance(1)
    drop(world, "sync", {"first.png": frame_png(RED)})
    assert _event(world, "sync", "first.png") is IntakeOutcome.SETTLING
    world.clock.advance(1)
    drop(world, "sync", {"job.json": json.dumps({"prompt": "late prompt"}).encode()})
    assert _event(world, "sync", "job.json") is IntakeOutcome.SETTLING
    # When every recheck comes back once the folder is quiet
    world.clock.advance(max(delay for _, delay in world.queues.rechecks))
    outcomes = [examine(world.deps, name) for name, _ in world.queues.rechecks]
    # Then exactly one job, with the late prompt, and one task
    assert outcomes.count(IntakeOutcome.ACCEPTED) == 1
    assert set(outcomes) == {IntakeOutcome.ACCEPTED, IntakeOutcome.DUPLICATE}
    [job] = jobs_named(world, "sync")
    assert job.spec is not None and job.spec.prompt == "late prompt"
    assert [r.prompt for r in world.provider.created] == ["late prompt"]


# --- incomplete folders -----------------------------------------------------------------------------


def test_a_folder_with_only_one_frame_waits_then_is_rejected_after_the_timeout_with_inputs_kept(world):
    settings = world.deps.settings
    # Given a folder with only a first frame
    drop(world, "lonely", {"first.png": frame_png()})
    t0 = world.clock.now()
    # When its event arrives
    assert _event(world, "lonely") is IntakeOutcome.INCOMPLETE
    # Then it is noted as incomplete, due for its final answer after the timeout, with no job yet
    assert job_named(world, "lonely") is None
    assert world.store.overdue_drops(t0 + settings.incomplete_drop_timeout_s - 1) == []
    assert world.store.overdue_drops(t0 + settings.incomplete_drop_timeout_s) == ["lonely"]
    assert settle_overdue_drops(world.deps) == 0
    # When the timeout has passed and the poller settles overdue drops
    world.clock.advance(settings.incomplete_drop_timeout_s)
    assert settle_overdue_drops(world.deps) == 1
    # Then the final examination rejects it: IncompleteDrop, naming the missing frame
    job = job_named(world, "lonely")
    assert job is not None and job.status is JobStatus.REJECTED
    assert job.error is not None and job.error.code == "IncompleteDrop"
    report = inbox_error(world, "lonely")
    assert report is not None and report["error"]["code"] == "IncompleteDrop"
    assert "last" in report["error"]["message"]
    assert [n.status for n in world.notifier.published] == [JobStatus.REJECTED]
    assert (settings.inbox_bucket, "inbox/lonely/first.png") in world.blobs.objects
    assert world.provider.created == []
    assert world.store.overdue_drops(world.clock.now() + 10**6) == []


def test_a_first_frame_alone_is_a_complete_drop_under_the_default_model_and_half_a_pair_under_kf2v():
    # Given a deployment on the product's default model, and one still defaulting to kf2v flash
    assert DEFAULT_MODEL == WAN27
    default, kf2v = memory_world(), memory_world(kf2v_settings())
    for world in (default, kf2v):
        drop(world, "solo", {"first.png": frame_png(RED, (750, 1000))})
    # When only a first frame is dropped in each
    # Then under wan2.7-i2v it is a first-frame video at once: the model's own 1080P and 5 s, one task
    assert _event(default, "solo") is IntakeOutcome.ACCEPTED
    job = job_named(default, "solo")
    assert job is not None and job.status is JobStatus.SUBMITTED and job.spec is not None
    assert (job.spec.model, job.spec.resolution, job.expected_size) == (WAN27, "1080P", (1232, 1648))
    [request] = default.provider.created
    assert (request.model, request.duration, request.last_frame_url) == (WAN27, 5, None)
    assert set(job.inputs) == {"first"}
    assert default.store.overdue_drops(default.clock.now() + 10**6) == []
    # while under kf2v it waits for its last frame, with no job and no task
    assert _event(kf2v, "solo") is IntakeOutcome.INCOMPLETE
    assert job_named(kf2v, "solo") is None and kf2v.provider.created == []


def test_a_folder_without_its_first_frame_is_rejected_naming_it(world):
    drop(world, "tail-only", {"last.png": frame_png(BLUE)})
    assert _event(world, "tail-only", "last.png") is IntakeOutcome.INCOMPLETE
    world.clock.advance(world.deps.settings.incomplete_drop_timeout_s)
    assert settle_overdue_drops(world.deps) == 1
    report = inbox_error(world, "tail-only")
    assert report is not None and report["error"]["code"] == "IncompleteDrop"
    assert "first frame" in report["error"]["message"] and "last frame" not in report["error"]["message"]


def test_the_incomplete_timeout_counts_from_the_first_sight_of_the_folder(world):
    timeout = world.deps.settings.incomplete_drop_timeout_s
    drop(world, "slow", {"first.png": frame_png()})
    t0 = world.clock.now()
    assert _event(world, "slow") is IntakeOutcome.INCOMPLETE
    # a later file that still leaves the folder incomplete does not move the deadline
    world.clock.advance(100)
    drop(world, "slow", {"prompt.txt": b"a walk"})
    assert _event(world, "slow", "prompt.txt") is IntakeOutcome.INCOMPLETE
    assert world.store.overdue_drops(t0 + timeout) == ["slow"]


def test_the_missing_frame_arriving_before_the_timeout_completes_the_job(world):
    drop(world, "patient", {"first.png": frame_png(RED)})
    assert _event(world, "patient") is IntakeOutcome.INCOMPLETE
    drop(world, "patient", {"last.png": frame_png(BLUE)})
    assert _event(world, "patient", "last.png") is IntakeOutcome.ACCEPTED
    # the drop is forgotten: the timeout finds nothing to reject
    world.clock.advance(world.deps.settings.incomplete_drop_timeout_s + 1)
    assert settle_overdue_drops(world.deps) == 0
    job = job_named(world, "patient")
    assert job is not None and job.status is JobStatus.SUBMITTED
    assert world.notifier.published == []


def test_an_effect_template_job_needs_only_a_first_frame(world):
    job_json = json.dumps({"model": PLUS, "template": "mech1", "prompt": "ignored by templates"}).encode()
    drop(world, "effect", {"first.png": frame_png(), "job.json": job_json})
    assert _event(world, "effect") is IntakeOutcome.ACCEPTED
    [request] = world.provider.created
    assert (request.model, request.template, request.last_frame_url, request.prompt) == (
        PLUS,
        "mech1",
        None,
        None,
    )


# --- accepted ---------------------------------------------------------------------------------------


def test_an_accepted_drop_waits_with_its_spec_and_expected_size_while_every_slot_is_busy(world):
    # Given both of the model's slots busy
    submitted_job(world, "busy-1")
    submitted_job(world, "busy-2")
    # When a valid drop arrives (a 750x1000 first frame, the guide's worked example)
    job_json = json.dumps({"prompt": "the camera pans left", "seed": 7}).encode()
    drop(
        world,
        "shot",
        {"first.png": frame_png(RED, (750, 1000)), "last.png": frame_png(BLUE), "job.json": job_json},
    )
    assert _event(world, "shot") is IntakeOutcome.ACCEPTED
    # Then the job waits for a slot, with what the user asked for merged over the defaults
    job = job_named(world, "shot")
    assert job is not None and job.status is JobStatus.WAITING
    assert job.spec is not None
    assert (job.spec.model, job.spec.resolution, job.spec.prompt, job.spec.seed) == (
        FLASH,
        "720P",
        "the camera pans left",
        7,
    )
    assert job.expected_size == (816, 1104)  # 750x1000 at 720P
    assert set(job.inputs) == {"first", "last", "job.json"}
    assert job.job_id == f"shot/{job.run_id}"
    # in line for admission, and nothing sent to the provider for it
    assert [j.job_id for j in world.store.due_jobs(DueKind.ADMIT, world.clock.now(), model=FLASH)] == [
        job.job_id
    ]
    assert len(world.provider.created) == 2


def test_an_accepted_drop_is_admitted_at_once_when_a_slot_is_free(world):
    settings = world.deps.settings
    drop(world, "shot", pair())
    assert _event(world, "shot") is IntakeOutcome.ACCEPTED
    job = job_named(world, "shot")
    assert job is not None and job.status is JobStatus.SUBMITTED and job.task_id
    # one task, made of the frames in the inbox, owned by this job, holding one slot
    [request] = world.provider.created
    assert request.first_frame_url == world.blobs.presign_get(
        settings.inbox_bucket, "inbox/shot/first.png", settings.presign_ttl_s
    )
    assert request.last_frame_url is not None and "inbox/shot/last.png" in request.last_frame_url
    assert world.store.job_for_task(job.task_id) == job.job_id
    assert world.store.slots_in_use(FLASH) == 1
    assert world.notifier.published == []


def test_every_event_of_a_drop_delivered_twice_makes_one_job_and_one_task(world):
    drop(world, "dup", pair())
    outcomes = [_event(world, "dup", f) for f in ("first.png", "last.png", "first.png", "last.png")]
    assert outcomes == [IntakeOutcome.ACCEPTED] + [IntakeOutcome.DUPLICATE] * 3
    assert len(jobs_named(world, "dup")) == 1
    assert len(world.provider.created) == 1
    assert world.store.slots_in_use(FLASH) == 1


def test_a_changed_reupload_is_a_new_run_of_the_job(world):
    drop(world, "again", pair())
    assert _event(world, "again") is IntakeOutcome.ACCEPTED
    drop(world, "again", {"job.json": json.dumps({"prompt": "second take"}).encode()})
    assert _event(world, "again", "job.json") is IntakeOutcome.ACCEPTED
    runs = jobs_named(world, "again")
    assert len(runs) == 2 and len({r.run_id for r in runs}) == 2
    assert len(world.provider.created) == 2


def test_files_outside_the_convention_in_the_folder_are_ignored(world):
    drop(world, "tidy", {**pair(), ".DS_Store": b"\0", "notes.txt": b"x", "error.json": b"{}"})
    assert _event(world, "tidy") is IntakeOutcome.ACCEPTED
    job = job_named(world, "tidy")
    assert job is not None and set(job.inputs) == {"first", "last"}


def test_prompt_txt_gives_the_prompt_and_job_json_wins_over_it(world):
    drop(world, "txt", {**pair(), "prompt.txt": "\ufeff  a lantern-lit street  \n".encode()})
    assert _event(world, "txt") is IntakeOutcome.ACCEPTED
    drop(
        world,
        "both",
        {**pair(), "prompt.txt": b"from the text file", "job.json": b'{"prompt": "from job.json"}'},
    )
    assert _event(world, "both") is IntakeOutcome.ACCEPTED
    assert [r.prompt for r in world.provider.created] == ["a lantern-lit street", "from job.json"]


class StaleReads(Wrapped):
    """A store whose reads of jobs come from before another examiner wrote (two examiners at once)."""

    def get_job(self, job_id):
        return None


def test_two_examiners_racing_on_the_same_drop_make_one_job_and_one_task(world):
    drop(world, "race", pair())
    assert _event(world, "race") is IntakeOutcome.ACCEPTED
    # the other examiner looked before the first one's job existed
    racing = replace(world.deps, store=StaleReads(world.store))
    assert examine(racing, "race") is IntakeOutcome.DUPLICATE
    assert len(jobs_named(world, "race")) == 1 and len(world.provider.created) == 1


def test_two_examiners_racing_on_a_bad_drop_notify_once(world):
    drop(world, "bad-race", {**pair(), "job.json": b'{"model": "wan9"}'})
    assert _event(world, "bad-race") is IntakeOutcome.REJECTED
    racing = replace(world.deps, store=StaleReads(world.store))
    assert examine(racing, "bad-race") is IntakeOutcome.REJECTED
    assert len(world.notifier.published) == 1 and len(jobs_named(world, "bad-race")) == 1


# --- rejected ---------------------------------------------------------------------------------------

REFUSED_HOOK = "https://hooks.example.test/inbetween"


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ({**pair(), "job.json": b"{not json"}, "InvalidJobJson"),
        ({**pair(), "job.json": b'{"promt": "x"}'}, "InvalidJobJson"),
        ({**pair(), "job.json": b'{"model": "wan9"}'}, "UnknownModel"),
        (
            {"first.png": b"\x89PNG" + b"\x00" * (10 * 1024 * 1024 + 1), "last.png": frame_png(BLUE)},
            "ImageFileTooLarge",
        ),
        ({"first.png": b"this is not a png", "last.png": frame_png(BLUE)}, "NotAnImage"),
        ({"first.png": frame_png(RED, (100, 100)), "last.png": frame_png(BLUE)}, "ImageTooSmall"),
        ({**pair(), "first.jpg": frame_png(RED)}, "AmbiguousDrop"),
        (
            {**pair(), "job.json": json.dumps({"model": PLUS, "template": "mech1"}).encode()},
            "TemplateWithLastFrame",
        ),
        ({**pair(), "job.json": json.dumps({"prompt": "x" * 801}).encode()}, "PromptTooLong"),
        (
            {**pair(), "job.json": json.dumps({"webhook_url": "ftp://example.test/x"}).encode()},
            "UnsafeWebhookUrl",
        ),
        ({**pair(), "job.json": json.dumps({"webhook_url": REFUSED_HOOK}).encode()}, "UnsafeWebhookUrl"),
    ],
    ids=[
        "job-json-not-json",
        "job-json-unknown-field",
        "unknown-model",
        "image-file-too-large",
        "not-an-image",
        "too-small",
        "two-first-frames",
        "template-with-last-frame",
        "prompt-over-limit",
        "webhook-not-https",
        "webhook-refused-by-the-sender",
    ],
)
def test_bad_input_is_rejected_with_an_error_report_one_notification_and_no_provider_call(world, files, code):
    # Given a drop intake must refuse (the sender's guard refuses REFUSED_HOOK, however it looks)
    world.webhooks.refused_urls.add(REFUSED_HOOK)
    drop(world, "bad", files)
    # When its event arrives
    assert _event(world, "bad") is IntakeOutcome.REJECTED
    # Then the run is recorded as rejected, with the reason
    job = job_named(world, "bad")
    assert job is not None and job.status is JobStatus.REJECTED
    assert job.error is not None and job.error.code == code
    assert job.finished_at is not None and job.notified_at is not None
    # and error.json, next to the inputs and under the results, says what to do
    for report in (inbox_error(world, "bad"), results_error(world, job)):
        assert report is not None
        assert report["error"]["code"] == code and report["what_to_do"]
        assert report["inputs"] == {role: obj.key for role, obj in job.inputs.items()}
    # and one failure notification, no provider call, no slot, no webhook, the inputs kept
    [note] = world.notifier.published
    assert (note.event_type, note.status, note.job_name) == (FAILED_EVENT, JobStatus.REJECTED, "bad")
    assert note.data["error"]["code"] == code
    assert world.provider.created == [] and world.provider.list_calls == 0
    assert world.store.slots_in_use(FLASH) == 0
    assert world.webhooks.sent == []
    assert {f"inbox/bad/{name}" for name in files} <= {key for _, key in world.blobs.objects}
    # and a duplicate event changes nothing
    assert _event(world, "bad") is IntakeOutcome.DUPLICATE
    assert len(world.notifier.published) == 1 and len(jobs_named(world, "bad")) == 1


def test_an_unsafe_folder_name_gets_its_report_in_the_inbox_only(world):
    settings = world.deps.settings
    drop(world, "..", pair())
    assert _event(world, "..") is IntakeOutcome.REJECTED
    report = inbox_error(world, "..")
    assert report is not None and report["error"]["code"] == "InvalidJobName"
    assert [key for bucket, key in world.blobs.json if bucket == settings.output_bucket] == []
    assert len(world.notifier.published) == 1


def test_a_rejection_whose_notification_failed_is_notified_by_a_later_event_once_its_claim_expired(world):
    # Given a bad drop whose notification could not be published (SNS down)
    drop(world, "unlucky", {**pair(), "job.json": b'{"model": "wan9"}'})
    world.notifier.fail = True
    with pytest.raises(ConnectionError):
        _event(world, "unlucky")
    world.notifier.fail = False
    job = job_named(world, "unlucky")
    assert job is not None and job.status is JobStatus.REJECTED and job.notified_at is None
    # When the event is redelivered while the first attempt's claim still holds, nothing is said
    assert _event(world, "unlucky") is IntakeOutcome.DUPLICATE
    assert world.notifier.published == []
    # When it comes back after the claim expired, the user is told, once
    world.clock.advance(world.deps.timing.notify_grace_s + 1)
    assert _event(world, "unlucky") is IntakeOutcome.DUPLICATE
    assert _event(world, "unlucky") is IntakeOutcome.DUPLICATE
    assert [n.status for n in world.notifier.published] == [JobStatus.REJECTED]
