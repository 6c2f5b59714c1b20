"""Cancelling (inbetween.usecases.cancel) against the in-memory world: a job in each state ends where
the provider lets it (withdrawn, cancelled while PENDING, or paid and stored when RUNNING), with one
notification, never a task made after the cancel, at most one cancel call; films cancel their unstarted
shots and end CANCELED once; deleting a job's inputs from the inbox is the same cancel."""

from __future__ import annotations

import json

import pytest
from inbetween.domain.films import FilmStatus
from inbetween.domain.messages import (
    CancelRequest,
    ObjectCreated,
    ObjectRemoved,
    cancel_message,
    intake_items,
)
from inbetween.domain.models import DueKind, JobStatus, Transition
from inbetween.errors import ProviderRejected, ProviderThrottled, ProviderUnavailable
from inbetween.provider.models import TaskStatus
from inbetween.usecases import admission, cancel, polling
from inbetween.usecases.cancel import CancelAnswer, CancelSource, RemovedOutcome
from inbetween.usecases.film_runs import FILM_CANCELED_EVENT
from inbetween.usecases.finishing import finish
from inbetween.usecases.intake import IntakeOutcome, on_object_created
from inbetween.usecases.notify import CANCELED_EVENT, SUCCEEDED_EVENT
from inbetween.usecases.task_checks import CheckOutcome, observe_task
from inbetween_local.memory import MemoryWorld, memory_world
from inbetween_local.memory import test_settings as settings_with
from usecase_kit import drop, frame_png, job_named, jobs_named, pair, task_state

CLI = CancelSource.CLI
MODEL = settings_with().default_model  # what a folder without job.json asks for


@pytest.fixture
def world() -> MemoryWorld:
    # one slot: the first job dropped is submitted, the next ones wait
    return memory_world(settings_with(provider_concurrency=1, provider_backlog=0))


def dropped(world: MemoryWorld, name: str, files: dict[str, bytes] | None = None) -> str:
    """Drop a job folder and deliver its S3 event (intake admits it if a slot is free); its job id."""
    drop(world, name, files or pair())
    settings = world.deps.settings
    outcome = on_object_created(world.deps, settings.inbox_bucket, f"{settings.inbox_prefix}{name}/first.png")
    assert outcome is IntakeOutcome.ACCEPTED
    job = job_named(world, name)
    assert job is not None
    return job.job_id


def events(world: MemoryWorld) -> list[tuple[str, str]]:
    return [(n.event_type, n.job_name) for n in world.notifier.published]


def status_of(world: MemoryWorld, job_id: str) -> JobStatus:
    job = world.store.get_job(job_id)
    assert job is not None
    return job.status


# ---------------------------------------------------------------------------------------------- jobs
def test_a_waiting_job_is_withdrawn_with_no_task_and_one_canceled_notification(world):
    # Given one job holding the only slot and a second one waiting for it
    first = dropped(world, "first")
    waiting = dropped(world, "second")
    assert status_of(world, waiting) is JobStatus.WAITING
    created = len(world.provider.created)
    # When the waiting job is cancelled, twice (a repeated command, a redelivered message)
    assert cancel.cancel_job(world.deps, waiting, CLI) is CancelAnswer.WITHDRAWN
    assert cancel.cancel_job(world.deps, waiting, CLI) is CancelAnswer.FINISHED
    # Then it is CANCELED, no task was made for it, nothing was sent to the provider
    job = world.store.get_job(waiting)
    assert job is not None and job.status is JobStatus.CANCELED and job.task_id is None
    assert (job.cancel_answer, job.cancel_source) == ("withdrawn", "cli")
    assert len(world.provider.created) == created == 1 and world.provider.cancels == []
    # and one notification says so, with what the cancel did
    assert events(world) == [(CANCELED_EVENT, "second")]
    note = world.notifier.published[0]
    assert note.status is JobStatus.CANCELED and note.data["cancel"]["answer"] == "withdrawn"
    assert "error" not in note.data and note.data["cancel"]["source"] == "cli"
    # and when the slot comes free, admission finds nothing to submit: it is not in the queue any more
    world.provider.set_state(f"task-{created}", task_state(f"task-{created}", TaskStatus.FAILED))
    observe_task(world.deps, world.store.get_job(first))
    admission.admit(world.deps, MODEL)
    assert len(world.provider.created) == 1
    assert world.store.due_jobs(DueKind.ADMIT, world.clock.now() + 10**6, model=MODEL) == []


def test_a_held_job_is_withdrawn_without_a_task(world):
    # Given a job held for the month's budget (it never had a slot nor spend committed)
    job_id = dropped(world, "first")
    held_id = dropped(world, "held")
    assert world.store.apply(Transition.of(held_id, JobStatus.WAITING, JobStatus.HELD))
    # When it is cancelled
    assert cancel.cancel_job(world.deps, held_id, CLI) is CancelAnswer.WITHDRAWN
    # Then it is CANCELED with one notification, and the running job's slot is untouched
    assert status_of(world, held_id) is JobStatus.CANCELED
    assert world.store.slots_in_use(MODEL) == 1 and status_of(world, job_id) is JobStatus.SUBMITTED
    assert events(world) == [(CANCELED_EVENT, "held")] and world.provider.cancels == []


def test_a_task_still_pending_is_cancelled_at_the_provider_once(world):
    # Given a submitted job whose task is PENDING at the provider
    job_id = dropped(world, "pending")
    job = world.store.get_job(job_id)
    assert job is not None and job.status is JobStatus.SUBMITTED and job.task_id
    # When it is cancelled, then cancelled again
    assert cancel.cancel_job(world.deps, job_id, CLI) is CancelAnswer.PROVIDER_CANCELED
    assert cancel.cancel_job(world.deps, job_id, CLI) is CancelAnswer.FINISHED
    # Then one cancel call was made, the task is CANCELED there, the job CANCELED and its slot free
    assert world.provider.cancels == [job.task_id]
    assert world.provider.states[job.task_id].status is TaskStatus.CANCELED
    final = world.store.get_job(job_id)
    assert final is not None and final.status is JobStatus.CANCELED
    assert (final.provider_status, final.cancel_answer) == ("CANCELED", "provider_canceled")
    assert world.store.slots_in_use(MODEL) == 0
    # and one notification; the poller's later look at the task changes nothing
    assert events(world) == [(CANCELED_EVENT, "pending")]
    assert observe_task(world.deps, final) is CheckOutcome.SKIPPED
    assert len(world.notifier.published) == 1


def test_a_running_task_is_paid_and_its_video_stored_and_the_answer_says_so(world):
    # Given a submitted job whose task is already RUNNING (our record still says PENDING)
    job_id = dropped(world, "running")
    task_id = world.store.get_job(job_id).task_id
    world.provider.set_state(task_id, task_state(task_id, TaskStatus.RUNNING))
    # When it is cancelled: the provider refuses (only PENDING tasks can be cancelled)
    answer = cancel.cancel_job(world.deps, job_id, CLI)
    # Then the answer says it runs on, is paid and will be stored; nothing was cancelled
    assert answer is CancelAnswer.RUNNING and "paid" in answer.explanation
    assert world.provider.cancels == []
    job = world.store.get_job(job_id)
    assert job is not None and job.status is JobStatus.SUBMITTED and job.cancel_answer == "running"
    # and asking again sends no second cancel call now that we know it runs
    assert cancel.cancel_job(world.deps, job_id, CLI) is CancelAnswer.RUNNING
    # When the task succeeds: the job is completed as usual and stored, with one success notification
    world.provider.set_state(
        task_id, task_state(task_id, TaskStatus.SUCCEEDED, video_url="https://result.test/v.mp4")
    )
    assert observe_task(world.deps, world.store.get_job(job_id)) is CheckOutcome.FINISHED
    completing = world.store.get_job(job_id)
    assert completing.status is JobStatus.COMPLETING
    assert cancel.cancel_job(world.deps, job_id, CLI) is CancelAnswer.RUNNING
    assert finish(world.deps, completing, JobStatus.STORED, expected=JobStatus.COMPLETING)
    assert events(world) == [(SUCCEEDED_EVENT, "running")]
    assert world.notifier.published[0].data["cancel"]["answer"] == "running"
    assert cancel.cancel_job(world.deps, job_id, CLI) is CancelAnswer.RUNNING


def test_a_finished_job_is_left_as_it_is(world):
    job_id = dropped(world, "done")
    job = world.store.get_job(job_id)
    world.provider.set_state(job.task_id, task_state(job.task_id, TaskStatus.FAILED))
    observe_task(world.deps, job)
    assert events(world) == [("video.generation.failed", "done")]
    assert cancel.cancel_job(world.deps, job_id, CLI) is CancelAnswer.FINISHED
    assert status_of(world, job_id) is JobStatus.FAILED
    assert len(world.notifier.published) == 1 and world.provider.cancels == []


def test_an_unknown_job_is_not_found(world):
    assert cancel.cancel_job(world.deps, "nobody/000000000000", CLI) is CancelAnswer.NOT_FOUND


# ------------------------------------------------------------------------------ while being submitted
def submitting(world: MemoryWorld, name: str) -> str:
    """A job that admission has moved to SUBMITTING (its slot taken), its create call not yet sent."""
    drop(world, name, pair())
    settings = world.deps.settings
    lease = world.store.acquire_submit_lease("blocker", 60)  # intake's admission must not submit it
    assert lease is not None
    on_object_created(world.deps, settings.inbox_bucket, f"{settings.inbox_prefix}{name}/first.png")
    world.store.release_submit_lease("blocker")
    job = job_named(world, name)
    assert job is not None and job.status is JobStatus.WAITING
    assert world.store.apply(
        Transition.of(job.job_id, JobStatus.WAITING, JobStatus.SUBMITTING)
        .set(submit_started_at=world.clock.now(), lease_holder="admission")
        .take_slot(MODEL, 1)
    )
    return job.job_id


def test_a_cancel_before_the_create_call_means_no_task_is_ever_made(world):
    # Given a job admission holds in SUBMITTING, about to send its create call
    job_id = submitting(world, "mid-admit")
    # When the cancel arrives first
    assert cancel.cancel_job(world.deps, job_id, CLI) is CancelAnswer.AWAITING_TASK
    # and admission goes on to submit it
    outcome = admission.submit(world.deps, world.store.get_job(job_id))
    # Then no task is made, the job is withdrawn, its slot given back, with one notification
    assert outcome is admission.SubmitOutcome.CANCELED
    assert world.provider.created == [] and world.provider.cancels == []
    job = world.store.get_job(job_id)
    assert job.status is JobStatus.CANCELED and job.cancel_answer == "withdrawn"
    assert world.store.slots_in_use(MODEL) == 0
    assert events(world) == [(CANCELED_EVENT, "mid-admit")]


def test_a_cancel_during_the_create_call_cancels_the_task_once_it_exists(world):
    # Given a job whose create call is in flight when the cancel arrives
    job_id = submitting(world, "mid-create")
    create = world.provider.create_task
    answers = []

    def create_while_cancelled(request):
        answers.append(cancel.cancel_job(world.deps, job_id, CLI))  # arrives while the call runs
        return create(request)

    world.provider.create_task = create_while_cancelled  # type: ignore[method-assign]
    outcome = admission.submit(world.deps, world.store.get_job(job_id))
    # Then the task was made (the call was under way), then cancelled while PENDING: one cancel
    assert answers == [CancelAnswer.AWAITING_TASK]
    assert outcome is admission.SubmitOutcome.SUBMITTED
    assert len(world.provider.created) == 1 and world.provider.cancels == ["task-1"]
    job = world.store.get_job(job_id)
    assert job.status is JobStatus.CANCELED and job.task_id == "task-1"
    assert job.cancel_answer == "provider_canceled" and world.store.slots_in_use(MODEL) == 0
    assert events(world) == [(CANCELED_EVENT, "mid-create")]


def test_a_create_that_fails_after_a_cancel_withdraws_the_job_rather_than_queueing_it_again(world):
    job_id = submitting(world, "throttled")
    create = world.provider.create_task

    def throttled_after_cancel(request):
        cancel.cancel_job(world.deps, job_id, CLI)
        world.provider.create_errors.append(ProviderThrottled("busy", code="Throttling"))
        return create(request)

    world.provider.create_task = throttled_after_cancel  # type: ignore[method-assign]
    assert admission.submit(world.deps, world.store.get_job(job_id)) is admission.SubmitOutcome.THROTTLED
    job = world.store.get_job(job_id)
    assert job.status is JobStatus.CANCELED and job.cancel_answer == "withdrawn"
    assert world.provider.created == [] and world.store.slots_in_use(MODEL) == 0
    assert events(world) == [(CANCELED_EVENT, "throttled")]


def test_the_poller_carries_out_a_cancel_whose_task_it_finds_pending(world):
    # Given a cancel recorded on a submitted job whose cancel call failed (the provider was unreachable)
    job_id = dropped(world, "unreachable")
    world.provider.cancel_errors.append(ProviderUnavailable("timeout", code="Timeout"))
    with pytest.raises(ProviderUnavailable):
        cancel.cancel_job(world.deps, job_id, CLI)  # the message is delivered again later
    job = world.store.get_job(job_id)
    assert job.status is JobStatus.SUBMITTED and job.cancel_requested_at is not None
    # When the poller looks at the task and finds it still PENDING
    assert observe_task(world.deps, job) is CheckOutcome.FINISHED
    # Then it sends the cancel: one call, the job CANCELED, one notification
    assert world.provider.cancels == [job.task_id]
    assert status_of(world, job_id) is JobStatus.CANCELED
    assert events(world) == [(CANCELED_EVENT, "unreachable")]


def test_a_task_seen_cancelled_after_our_request_ends_the_job_canceled_not_failed(world):
    # Given a cancel whose call reached the provider but whose answer was lost
    job_id = dropped(world, "lost-answer")

    def cancelled_but_lost(task_id):
        world.provider.states[task_id] = task_state(task_id, TaskStatus.CANCELED)
        raise ProviderUnavailable("connection reset", code="ConnectionError")

    world.provider.cancel_task = cancelled_but_lost  # type: ignore[method-assign]
    with pytest.raises(ProviderUnavailable):
        cancel.cancel_job(world.deps, job_id, CLI)
    # When the poller (or a push event) sees the task CANCELED
    assert observe_task(world.deps, world.store.get_job(job_id)) is CheckOutcome.FINISHED
    # Then the job is CANCELED with no error, one notification
    final = world.store.get_job(job_id)
    assert final.status is JobStatus.CANCELED and final.error is None
    assert final.cancel_answer == "provider_canceled"
    assert events(world) == [(CANCELED_EVENT, "lost-answer")]


def test_a_task_cancelled_by_someone_else_still_fails_the_job(world):
    job_id = dropped(world, "console")
    job = world.store.get_job(job_id)
    world.provider.set_state(job.task_id, task_state(job.task_id, TaskStatus.CANCELED))
    observe_task(world.deps, job)
    final = world.store.get_job(job_id)
    assert final.status is JobStatus.FAILED and final.error.code == "TaskCanceled"


def test_a_provider_refusal_other_than_not_pending_is_not_taken_for_running(world):
    job_id = dropped(world, "bad-key")
    world.provider.cancel_errors.append(ProviderRejected("Invalid API-key provided.", code="InvalidApiKey"))
    with pytest.raises(ProviderRejected):
        cancel.cancel_job(world.deps, job_id, CLI)
    assert world.store.get_job(job_id).cancel_answer is None


# ---------------------------------------------------------------------------------------------- the inbox
def removed(world: MemoryWorld, name: str, filename: str) -> RemovedOutcome:
    settings = world.deps.settings
    key = f"{settings.inbox_prefix}{name}/{filename}"
    world.blobs.delete(settings.inbox_bucket, key)
    return cancel.on_object_removed(world.deps, settings.inbox_bucket, key)


def test_deleting_a_jobs_inputs_cancels_it_once(world):
    # Given a job waiting for a slot
    dropped(world, "first")
    job_id = dropped(world, "mistake")
    # When both its frames are deleted from the inbox (two events)
    assert removed(world, "mistake", "first.png") is RemovedOutcome.CANCELED
    assert removed(world, "mistake", "last.png") is RemovedOutcome.NOTHING_OPEN
    # Then it is withdrawn, by the inbox's way, with one notification
    job = world.store.get_job(job_id)
    assert job.status is JobStatus.CANCELED and job.cancel_source == "inbox"
    assert events(world) == [(CANCELED_EVENT, "mistake")]
    # and the folder's record of runs in flight no longer holds it
    assert job_id not in world.store.open_runs("mistake")


def test_a_delete_event_for_an_input_that_is_back_changes_nothing(world):
    # Given a job whose first frame was deleted and put back (the same bytes) before the event came
    job_id = dropped(world, "restored")
    settings = world.deps.settings
    key = f"{settings.inbox_prefix}restored/first.png"
    data = world.blobs.objects[(settings.inbox_bucket, key)]
    world.blobs.delete(settings.inbox_bucket, key)
    world.blobs.put(settings.inbox_bucket, key, data)
    # When the (stale) delete event arrives
    outcome = cancel.on_object_removed(world.deps, settings.inbox_bucket, key)
    # Then nothing is cancelled
    assert outcome is RemovedOutcome.STILL_THERE
    assert status_of(world, job_id) is JobStatus.SUBMITTED and world.notifier.published == []


def test_deletes_of_other_files_and_other_buckets_are_ignored(world):
    job_id = dropped(world, "kept", {**pair(), "job.json": b"{}"})
    assert removed(world, "kept", "job.json") is RemovedOutcome.IGNORED
    assert removed(world, "kept", "error.json") is RemovedOutcome.IGNORED
    assert (
        cancel.on_object_removed(world.deps, "other-bucket", "inbox/kept/first.png") is RemovedOutcome.IGNORED
    )
    assert cancel.on_object_removed(world.deps, world.deps.settings.inbox_bucket, "inbox/first.png") is (
        RemovedOutcome.IGNORED
    )
    assert status_of(world, job_id) is JobStatus.SUBMITTED


def test_the_same_files_uploaded_again_after_a_cancel_start_a_new_run(world):
    # Given a job cancelled by the CLI (its files still in the inbox)
    job_id = dropped(world, "again")
    assert cancel.cancel_job(world.deps, job_id, CLI) is CancelAnswer.PROVIDER_CANCELED
    settings = world.deps.settings
    key = f"{settings.inbox_prefix}again/first.png"
    # When a late duplicate of the first upload's event arrives: nothing new
    assert on_object_created(world.deps, settings.inbox_bucket, key) is IntakeOutcome.DUPLICATE
    # When the same files are uploaded again, later
    world.clock.advance(5)
    drop(world, "again", pair())
    assert on_object_created(world.deps, settings.inbox_bucket, key) is IntakeOutcome.ACCEPTED
    # Then a second run with its own id, submitted as usual
    runs = sorted(jobs_named(world, "again"), key=lambda j: j.created_at)
    assert [j.job_id for j in runs] == [job_id, job_id + "~2"]
    assert runs[1].status is JobStatus.SUBMITTED and len(world.provider.created) == 2


def test_a_cancel_request_by_name_cancels_every_run_of_the_folder_in_flight(world):
    job_id = dropped(world, "named")
    assert cancel.on_request(world.deps, "named") is cancel.CancelTargetKind.JOB
    assert status_of(world, job_id) is JobStatus.CANCELED
    assert cancel.on_request(world.deps, "named") is cancel.CancelTargetKind.NONE
    assert cancel.on_request(world.deps, job_id) is cancel.CancelTargetKind.JOB  # by id: finished
    assert len(world.notifier.published) == 1


# ---------------------------------------------------------------------------------------------- messages
def test_intake_messages_carry_deletes_and_cancel_requests():
    removed_record = {
        "eventName": "ObjectRemoved:DeleteMarkerCreated",
        "s3": {
            "bucket": {"name": "inbox"},
            "object": {"key": "inbox%2Fmy+shot%2Ffirst.png", "versionId": "v1", "sequencer": "0A"},
        },
    }
    created_record = dict(removed_record, eventName="ObjectCreated:Put")
    body = json.dumps({"Records": [removed_record, created_record]})
    assert intake_items(body) == [
        ObjectRemoved("inbox", "inbox/my shot/first.png"),
        ObjectCreated("inbox", "inbox/my shot/first.png"),
    ]
    assert intake_items(cancel_message("my shot/abc")) == [CancelRequest("my shot/abc")]
    with pytest.raises(ValueError, match="needs a target"):
        intake_items('{"inbetween": "cancel"}')


# ---------------------------------------------------------------------------------------------- films
def keyframes(n: int) -> dict[str, bytes]:
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]
    return {f"{i:02d}.png": frame_png(colours[i - 1]) for i in range(1, n + 1)}


def film_world() -> MemoryWorld:
    # two slots: of a film's three shots, two are submitted at once and the third waits
    return memory_world(settings_with(provider_concurrency=2, provider_backlog=0))


def dropped_film(world: MemoryWorld, film: str) -> str:
    drop(world, film, {**keyframes(4), "film.json": b'{"model": "wan2.2-kf2v-flash", "resolution": "480P"}'})
    settings = world.deps.settings
    assert (
        on_object_created(world.deps, settings.inbox_bucket, f"{settings.inbox_prefix}{film}/01.png")
        is IntakeOutcome.ACCEPTED
    )
    (run_id,) = [r for r in world.store.films if r.startswith(f"{film}/")]
    return run_id


def shot_jobs(world: MemoryWorld, run_id: str):
    run = world.store.get_film_run(run_id)
    return [world.store.get_job(s.job_id) for s in run.shots]


def test_a_film_cancels_its_unstarted_shots_lets_the_running_one_finish_and_ends_canceled_once():
    world = film_world()
    # Given a film of three shots: one RUNNING at the provider, one PENDING, one waiting for a slot
    run_id = dropped_film(world, "walk")
    shots = shot_jobs(world, run_id)
    submitted = [j for j in shots if j.status is JobStatus.SUBMITTED]
    assert len(submitted) == 2 and sum(j.status is JobStatus.WAITING for j in shots) == 1
    running, pending = submitted
    world.provider.set_state(running.task_id, task_state(running.task_id, TaskStatus.RUNNING))
    # When the film is cancelled
    result = cancel.cancel_film(world.deps, run_id, CLI)
    # Then the running shot runs on (paid), the pending one is cancelled there, the waiting withdrawn
    expected = {
        j.job_id: CancelAnswer.RUNNING
        if j is running
        else CancelAnswer.PROVIDER_CANCELED
        if j is pending
        else CancelAnswer.WITHDRAWN
        for j in shots
    }
    assert result.shots == {i: expected[j.job_id] for i, j in enumerate(shots, start=1)}
    assert world.provider.cancels == [pending.task_id] and len(world.provider.created) == 2
    # and the run waits for its running shot; nothing is announced yet (shots have no events of their own)
    assert result.status is FilmStatus.RUNNING and world.notifier.published == []
    # When the running shot is stored
    world.provider.set_state(
        running.task_id, task_state(running.task_id, TaskStatus.SUCCEEDED, video_url="https://r.test/v.mp4")
    )
    observe_task(world.deps, world.store.get_job(running.job_id))
    assert finish(
        world.deps, world.store.get_job(running.job_id), JobStatus.STORED, expected=JobStatus.COMPLETING
    )
    # Then the run ends CANCELED (nothing stitched) with one film.canceled event naming each shot's end
    run = world.store.get_film_run(run_id)
    assert run.status is FilmStatus.CANCELED and world.queues.stitches == []
    assert [n.event_type for n in world.notifier.published] == [FILM_CANCELED_EVENT]
    data = world.notifier.published[0].data
    assert [s["status"] for s in data["shots"]] == ["STORED" if j is running else "CANCELED" for j in shots]
    assert data["cancel"]["source"] == "cli"
    # and a second cancel changes nothing
    assert cancel.cancel_film(world.deps, run_id, CLI).status is FilmStatus.CANCELED
    assert len(world.notifier.published) == 1 and len(world.provider.cancels) == 1


def test_deleting_a_films_keyframes_cancels_its_run():
    world = film_world()
    run_id = dropped_film(world, "oops")
    assert sum(job.status is JobStatus.SUBMITTED for job in shot_jobs(world, run_id)) == 2
    # When the folder's keyframes are deleted (one event each)
    outcomes = [removed(world, "oops", f"{i:02d}.png") for i in range(1, 5)]
    # Then the first event cancels the run: every shot was unstarted, so it ends at once
    assert outcomes[0] is RemovedOutcome.CANCELED
    assert set(outcomes[1:]) == {RemovedOutcome.NOTHING_OPEN}
    run = world.store.get_film_run(run_id)
    assert run.status is FilmStatus.CANCELED and run.cancel_source == "inbox"
    assert [j.status for j in shot_jobs(world, run_id)] == [JobStatus.CANCELED] * 3
    assert len(world.provider.cancels) == 2
    assert [n.event_type for n in world.notifier.published] == [FILM_CANCELED_EVENT]


def test_a_cancel_request_by_film_name_cancels_its_run():
    world = film_world()
    run_id = dropped_film(world, "by-name")
    assert cancel.on_request(world.deps, "by-name") is cancel.CancelTargetKind.FILM
    assert world.store.get_film_run(run_id).status is FilmStatus.CANCELED
    assert [n.event_type for n in world.notifier.published] == [FILM_CANCELED_EVENT]


def test_the_poller_sends_a_pending_cancel_even_when_the_task_list_answers_for_its_task():
    # Given two submitted jobs (their checks due together: one task-list call answers for both), and a
    # cancel recorded on one whose call failed
    world = memory_world(settings_with(provider_concurrency=2, provider_backlog=0))
    kept, cancelled = dropped(world, "kept"), dropped(world, "cancelled")
    world.provider.cancel_errors.append(ProviderUnavailable("timeout", code="Timeout"))
    with pytest.raises(ProviderUnavailable):
        cancel.cancel_job(world.deps, cancelled, CLI)
    # When the poller's tick checks them
    world.clock.advance(600)
    polling.tick(world.deps, budget_s=0)
    # Then the list was used, and the job with the cancel was queried and cancelled: one cancel call
    assert world.provider.list_calls >= 1
    assert world.provider.cancels == [world.store.get_job(cancelled).task_id]
    assert status_of(world, cancelled) is JobStatus.CANCELED
    assert status_of(world, kept) is JobStatus.SUBMITTED
    assert events(world) == [(CANCELED_EVENT, "cancelled")]
