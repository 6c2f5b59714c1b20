"""A film run after intake (inbetween.usecases.film_runs): it waits for its shots, goes to the stitch
once every shot is stored, fails naming the shot that failed, and is announced exactly once."""

from __future__ import annotations

import pytest
from film_kit import FILM, film_run
from inbetween.domain.films import FilmStatus
from inbetween.domain.models import JobStatus, Transition
from inbetween.usecases import film_runs
from inbetween.usecases.film_runs import FILM_FAILED_EVENT, FilmProgress
from inbetween.usecases.finishing import finish
from inbetween_local.memory import memory_world

S, F, R = JobStatus.STORED, JobStatus.FAILED, JobStatus.SUBMITTED


@pytest.fixture
def world():
    return memory_world()


def _status(world, run) -> FilmStatus:
    stored = world.store.get_film_run(run.run_id)
    assert stored is not None
    return stored.status


def test_a_run_waits_while_a_shot_is_still_being_made(world):
    run = film_run(world, [S, R, S])
    assert film_runs.advance(world.deps, run.run_id) is FilmProgress.WAITING
    assert _status(world, run) is FilmStatus.RUNNING
    assert world.queues.stitches == [] and world.notifier.published == []


def test_every_shot_stored_hands_the_run_to_the_stitch_once(world):
    run = film_run(world, [S, S, S])
    assert film_runs.advance(world.deps, run.run_id) is FilmProgress.STITCH
    assert film_runs.advance(world.deps, run.run_id) is FilmProgress.NOTHING  # a duplicate call
    assert _status(world, run) is FilmStatus.STITCHING
    assert world.queues.stitches == [run.run_id]


def test_a_failed_shot_fails_the_run_naming_it_with_one_film_event_and_an_error_report(world):
    run = film_run(world, [S, F, S])
    assert film_runs.advance(world.deps, run.run_id) is FilmProgress.FAILED
    stored = world.store.get_film_run(run.run_id)
    assert stored.status is FilmStatus.FAILED and stored.error is not None
    assert stored.error.code == "ShotFailed" and stored.error.field == "shots.2"
    assert "shot 2 (keyframe 2 to 3)" in stored.error.message and "InternalError.Algo" in stored.error.message
    (note,) = world.notifier.published
    assert note.event_type == FILM_FAILED_EVENT and note.job_name == FILM
    assert [s["status"] for s in note.data["shots"]] == ["STORED", "FAILED", "STORED"]
    assert note.data["shots"][0]["usage"] == {"duration": 2} and note.data["shots"][0]["task_id"] == "task-1"
    report = world.blobs.json[(world.deps.settings.inbox_bucket, f"inbox/{FILM}/error.json")]
    assert report["error"]["field"] == "shots.2" and "reused" in report["what_to_do"]
    # and asking again announces nothing more
    assert film_runs.announce(world.deps, run.run_id) is False
    assert len(world.notifier.published) == 1


def test_the_last_shot_ending_moves_its_film_on_through_finishing(world):
    run = film_run(world, [S, R])
    job = world.store.get_job(run.shots[1].job_id)
    # the shot's job ends (as completion would end it)
    world.store.apply(Transition.of(job.job_id, JobStatus.SUBMITTED, JobStatus.COMPLETING))
    stored_job = world.store.get_job(job.job_id)
    assert finish(world.deps, stored_job, JobStatus.STORED, expected=JobStatus.COMPLETING, video_key="k")
    assert _status(world, run) is FilmStatus.STITCHING
    # the shot itself is not announced: its film will be (film.json's shot_events is off)
    assert world.notifier.published == []
    assert world.store.get_job(job.job_id).notified_at is not None


def test_the_poller_advances_a_run_a_crash_left_behind_and_rechecks_one_still_waiting(world):
    done = film_run(world, [S, S])
    world.clock.advance(301)
    assert film_runs.check_due(world.deps) == 1
    assert _status(world, done) is FilmStatus.STITCHING and world.queues.stitches == [done.run_id]


def test_an_overdue_stitch_is_handed_over_again(world):
    run = film_run(world, [S, S])
    film_runs.advance(world.deps, run.run_id)
    world.clock.advance(film_runs.STITCH_OVERDUE_S + 1)
    film_runs.check_due(world.deps)
    assert world.queues.stitches == [run.run_id, run.run_id]
    assert _status(world, run) is FilmStatus.STITCHING
