"""From a film folder to shots (inbetween.usecases.film_intake): every shot checked before paying, one
job per shot with a content identity, reuse of unchanged shots, and a clear refusal of bad folders."""

from __future__ import annotations

import json

import pytest
from inbetween.domain.films import FilmStatus
from inbetween.domain.models import JobStatus
from inbetween.usecases import film_intake
from inbetween.usecases.film_runs import FILM_FAILED_EVENT
from inbetween.usecases.intake import IntakeOutcome, on_object_created, settle_overdue_drops
from inbetween_local.memory import memory_world
from inbetween_local.memory import test_settings as settings_with
from usecase_kit import drop, frame_png

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (40, 200, 200), (200, 40, 200)]


@pytest.fixture
def world():
    return memory_world()


def keyframes(n: int, *, size=(320, 240)) -> dict[str, bytes]:
    return {f"{i:02d}.png": frame_png(COLOURS[i - 1], size) for i in range(1, n + 1)}


def _event(world, film: str, filename: str = "01.png") -> IntakeOutcome:
    """The S3 event for ``inbox/<film>/<filename>``: intake routes a film folder to film_intake."""
    settings = world.deps.settings
    key = f"{settings.inbox_prefix}{film}/{filename}"
    assert (settings.inbox_bucket, key) in world.blobs.objects
    return on_object_created(world.deps, settings.inbox_bucket, key)


def _runs(world, film):
    return [r for r in (world.store.get_film_run(i) for i in world.store.films) if r and r.film == film]


def _shots(world, film):
    return [j for j in world.store.recent_jobs(limit=1000) if j.job_name == film]


def test_a_folder_of_numbered_keyframes_becomes_one_job_per_shot_and_a_run_waiting_for_them(world):
    # Given four keyframes and a film.json with a default and a per-shot override
    film_json = {
        "model": "wan2.7-i2v",
        "resolution": "720P",
        "defaults": {"duration": 3},
        "shots": {"2": {"prompt": "zoom"}},
    }
    drop(
        world, "walk", {**keyframes(4), "film.json": json.dumps(film_json).encode(), "03.txt": b"a slow pan"}
    )
    # When the folder's events arrive
    assert _event(world, "walk") is IntakeOutcome.ACCEPTED
    # Then three shots, each an ordinary job from keyframe k to k+1, and one run of them
    (run,) = _runs(world, "walk")
    assert run.status is FilmStatus.RUNNING and [(s.number, s.last_number) for s in run.shots] == [
        (1, 2),
        (2, 3),
        (3, 4),
    ]
    jobs = {j.job_id: j for j in _shots(world, "walk")}
    assert set(jobs) == {s.job_id for s in run.shots}
    by_shot = [jobs[s.job_id] for s in run.shots]
    assert [j.inputs["first"].key.rsplit("/", 1)[-1] for j in by_shot] == ["01.png", "02.png", "03.png"]
    assert [j.spec.prompt for j in by_shot] == [None, "zoom", "a slow pan"]
    assert {(j.spec.model, j.spec.resolution, j.spec.duration) for j in by_shot} == {
        ("wan2.7-i2v", "720P", 3)
    }
    assert all(j.film_runs == (run.run_id,) and not j.announce for j in by_shot)
    # the shots are admitted like any job (three of the five wan2.7 slots, plus its backlog)
    assert len(world.provider.created) == 3
    assert run.keyframes == tuple(f"inbox/walk/{i:02d}.png" for i in range(1, 5))


def test_the_same_folder_again_is_a_duplicate_that_pays_nothing(world):
    drop(world, "walk", keyframes(3))
    assert _event(world, "walk") is IntakeOutcome.ACCEPTED
    assert _event(world, "walk", "02.png") is IntakeOutcome.DUPLICATE
    assert len(world.provider.created) == 2 and len(_runs(world, "walk")) == 1


def test_a_changed_keyframe_remakes_only_the_shots_that_touch_it(world):
    drop(world, "walk", keyframes(6))
    assert _event(world, "walk") is IntakeOutcome.ACCEPTED
    assert len(world.provider.created) == 5
    # When keyframe 4 is replaced and the folder synced again
    drop(world, "walk", {"04.png": frame_png((90, 90, 90))})
    assert _event(world, "walk", "04.png") is IntakeOutcome.ACCEPTED
    # Then exactly two new shots (3->4 and 4->5); the other three are shared by both runs
    assert len(_shots(world, "walk")) == 7
    old, new = sorted(_runs(world, "walk"), key=lambda r: r.created_at)
    shared = {s.job_id for s in old.shots} & {s.job_id for s in new.shots}
    assert len(shared) == 3
    for job_id in shared:
        assert set(world.store.get_job(job_id).film_runs) == {old.run_id, new.run_id}
    world.clock.advance(10)
    assert (
        len(world.provider.created) + len([j for j in _shots(world, "walk") if j.status is JobStatus.WAITING])
        == 7
    )


def test_a_film_whose_shots_are_all_stored_already_goes_straight_to_the_stitch(world):
    drop(world, "walk", keyframes(3))
    _event(world, "walk")
    for job in _shots(world, "walk"):
        world.store.jobs[job.job_id]["status"] = "STORED"  # as if made before
    # a new run that only joins them differently (a seam blend): no shot to make
    drop(world, "walk", {"film.json": b'{"seam": 3}'})
    assert _event(world, "walk", "film.json") is IntakeOutcome.ACCEPTED
    newest = max(_runs(world, "walk"), key=lambda r: r.seam)
    assert newest.status is FilmStatus.STITCHING and world.queues.stitches == [newest.run_id]
    assert len(world.provider.created) == 2


@pytest.mark.parametrize(
    ("files", "code", "field"),
    [
        ({**keyframes(2), "2.jpg": frame_png()}, "RepeatedKeyframeNumber", "2.jpg"),
        ({**keyframes(3), "film.json": b'{"seam": 99}'}, "InvalidFilmJson", "seam"),
        (
            {**keyframes(3), "film.json": b'{"shots": {"2": {"duration": 20}}}'},
            "UnsupportedDuration",
            "shots.2.duration",
        ),
        (
            {**keyframes(3), "film.json": b'{"mode": "continue", "model": "wan2.2-kf2v-flash"}'},
            "InvalidFilmJson",
            "mode",
        ),
        (
            {**keyframes(3), "film.json": b'{"mode": "continue", "shots": {"2": {"duration": 14}}}'},
            "UnsupportedDuration",
            "shots.2.duration",
        ),
        ({**keyframes(2), "03.png": frame_png(size=(240, 320))}, "MixedAspectRatios", "03.png"),
        ({**keyframes(2), "03.png": b"not a picture"}, "NotAnImage", "03.png"),
        ({**keyframes(2), "07.txt": b"no such keyframe"}, "InvalidFilm", "07.txt"),
    ],
    ids=[
        "repeated-number",
        "bad-seam",
        "shot-duration",
        "continue-with-kf2v",
        "continued-shot-too-long",
        "mixed-aspect",
        "unreadable",
        "orphan-prompt",
    ],
)
def test_a_bad_film_folder_is_refused_before_paying_with_one_event_and_an_error_report(
    world, files, code, field
):
    drop(world, "bad", files)
    assert _event(world, "bad") is IntakeOutcome.REJECTED
    (run,) = _runs(world, "bad")
    assert run.status is FilmStatus.REJECTED and run.error is not None
    if code:
        assert run.error.code == code, run.error
    assert run.error.field == field, run.error
    assert world.provider.created == [] and _shots(world, "bad") == []
    (note,) = world.notifier.published
    assert note.event_type == FILM_FAILED_EVENT
    report = world.blobs.json[(world.deps.settings.inbox_bucket, "inbox/bad/error.json")]
    assert report["error"]["field"] == field
    # the inputs are kept, and the same folder again is not announced twice
    assert all(
        (world.deps.settings.inbox_bucket, f"inbox/bad/{name}") in world.blobs.objects for name in files
    )
    assert _event(world, "bad") is IntakeOutcome.REJECTED and len(world.notifier.published) == 1


def test_a_folder_still_receiving_files_settles_first():
    # test_settings: the in-memory deployment (the module's fixture has settle_seconds 0)
    world = memory_world(settings_with(settle_seconds=5))
    drop(world, "walk", keyframes(3))
    objects = world.blobs.list_folder(world.deps.settings.inbox_bucket, "inbox/walk/")
    assert film_intake.examine_film(world.deps, "walk", objects) is IntakeOutcome.SETTLING
    assert world.queues.rechecks and world.queues.rechecks[0][0] == "walk"
    assert _runs(world, "walk") == []


def test_one_keyframe_waits_for_the_others_then_is_refused_with_one_event(world):
    # Given a film folder with a single keyframe so far
    drop(world, "lonely", keyframes(1))
    # When its event arrives, it waits (the others may still be uploading), paying nothing
    assert _event(world, "lonely") is IntakeOutcome.INCOMPLETE
    assert world.notifier.published == [] and _runs(world, "lonely") == []
    # Then, after the incomplete-drop timeout, the poller gives it its answer: too few keyframes
    world.clock.advance(world.deps.settings.incomplete_drop_timeout_s + 1)
    assert settle_overdue_drops(world.deps) == 1
    (run,) = _runs(world, "lonely")
    assert run.status is FilmStatus.REJECTED and run.error.code == "TooFewKeyframes"
    (note,) = world.notifier.published
    assert note.event_type == FILM_FAILED_EVENT
    assert (world.deps.settings.inbox_bucket, "inbox/lonely/error.json") in world.blobs.json


def test_a_second_keyframe_in_time_makes_the_waiting_folder_a_film(world):
    drop(world, "pair", keyframes(1))
    assert _event(world, "pair") is IntakeOutcome.INCOMPLETE
    drop(world, "pair", {"02.png": frame_png(COLOURS[1])})
    assert _event(world, "pair", "02.png") is IntakeOutcome.ACCEPTED
    world.clock.advance(world.deps.settings.incomplete_drop_timeout_s + 1)
    assert settle_overdue_drops(world.deps) == 0  # accepted: no longer waiting
    assert [r.status for r in _runs(world, "pair")] == [FilmStatus.RUNNING]


@pytest.mark.parametrize("filename", ["film.json", "01.txt"])
def test_an_event_for_film_json_or_a_prompt_file_looks_at_the_film(world, filename):
    drop(world, "walk", {**keyframes(2), "film.json": b"{}", "01.txt": b"slow"})
    assert _event(world, "walk", filename) is IntakeOutcome.ACCEPTED


def test_a_job_folder_with_a_numbered_image_beside_first_and_last_stays_one_job(world):
    # first.* makes it a job folder: its numbered picture is an extra file, not a storyboard
    drop(
        world, "job", {"first.png": frame_png(), "last.png": frame_png(COLOURS[1]), "ref_2.png": frame_png()}
    )
    assert _event(world, "job", "first.png") is IntakeOutcome.ACCEPTED
    assert _runs(world, "job") == [] and len(_shots(world, "job")) == 1
    assert _event(world, "job", "ref_2.png") is IntakeOutcome.DUPLICATE


def _fail_shot(world, job_id: str) -> None:
    world.store.jobs[job_id].update(
        status="FAILED",
        finished_at=world.clock.now(),
        error={"code": "InternalError.Algo", "message": "the model failed"},
    )


def test_uploading_a_failed_films_files_again_retries_the_failed_shot_alone(world):
    # Given a film of two shots whose second shot failed, and so the run
    files = keyframes(3)
    drop(world, "walk", files)
    assert _event(world, "walk") is IntakeOutcome.ACCEPTED
    (first_run,) = _runs(world, "walk")
    stored, failed = (ref.job_id for ref in first_run.shots)
    world.clock.advance(120)  # the shot's task ran for a while
    world.store.jobs[stored].update(status="STORED", video_key="results/walk/s1/video.mp4")
    _fail_shot(world, failed)
    from inbetween.usecases import film_runs

    assert film_runs.advance(world.deps, first_run.run_id) is film_runs.FilmProgress.FAILED
    tasks = len(world.provider.created)
    # When a duplicate event of the first upload arrives: nothing (the same files, as they were)
    world.clock.advance(30)
    assert _event(world, "walk") is IntakeOutcome.DUPLICATE
    assert len(_runs(world, "walk")) == 1 and len(world.provider.created) == tasks
    # When the same files are uploaded again
    drop(world, "walk", files)
    assert _event(world, "walk", "02.png") is IntakeOutcome.ACCEPTED
    # Then a second attempt of the run: shot 1 reused, shot 2 made again (one new task), and once only
    retry = next(r for r in _runs(world, "walk") if r.run_id != first_run.run_id)
    assert retry.run_id == first_run.run_id + "~2" and retry.status is FilmStatus.RUNNING
    assert [ref.job_id for ref in retry.shots] == [stored, failed + "~2"]
    assert len(world.provider.created) == tasks + 1
    assert _event(world, "walk", "03.png") is IntakeOutcome.DUPLICATE
    assert len(world.provider.created) == tasks + 1
