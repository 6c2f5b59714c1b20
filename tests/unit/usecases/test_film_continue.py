"""Continue mode (film_intake, film_runs, stitching together): each shot after the first is made from
the last seconds of the shot before, one after another; nothing is paid for before its turn, a failed
shot ends the run at once, and the stitch cuts the repeated tail off each continued clip."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from inbetween.domain.films import CONTINUE_TAIL_S, FilmStatus
from inbetween.domain.models import JobStatus
from inbetween.usecases import film_runs
from inbetween.usecases.intake import IntakeOutcome, on_object_created
from inbetween.usecases.stitching import StitchOutcome, stitch
from inbetween_local.memory import memory_world
from usecase_kit import drop, frame_png

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
FILM = "tide"
CLIP_FRAMES = 90  # 3 s shots


@dataclass(frozen=True)
class Stitched:
    total_frames: int = 120
    duration_s: float = 4.0
    audio_duration_s: float | None = 4.0
    width: int = 1280
    height: int = 720
    poster_jpeg: bytes = b"\xff\xd8poster"
    contact_sheet_png: bytes = b"\x89PNGsheet"


@dataclass
class CuttingStitcher:
    """Cuts by writing what it was asked; stitches by joining the bytes."""

    cuts: list[tuple[bytes, int, int | None, bool]] = field(default_factory=list)
    joined: list[list[bytes]] = field(default_factory=list)

    def frame_count(self, clip: Path) -> int:
        return CLIP_FRAMES

    def cut(self, clip: Path, out: Path, *, start: int, stop=None, audio: bool = True) -> int:
        self.cuts.append((Path(clip).read_bytes(), start, stop, audio))
        out.write_bytes(b"cut(" + Path(clip).read_bytes() + f",{start})".encode())
        return (stop or CLIP_FRAMES) - start

    def stitch(self, clips, out: Path, *, seam_blend_frames: int):
        self.joined.append([Path(c).read_bytes() for c in clips])
        out.write_bytes(b"|".join(self.joined[-1]))
        return Stitched()

    def verify(self, film: Path, stitched, keyframes):
        return []


@pytest.fixture
def world():
    return memory_world()


def _drop_film(world, **film_json) -> str:
    files = {f"{i:02d}.png": frame_png(c) for i, c in enumerate(COLOURS, start=1)}
    options = {"model": "wan2.7-i2v", "resolution": "720P", "mode": "continue", "defaults": {"duration": 3}}
    drop(world, FILM, {**files, "film.json": json.dumps({**options, **film_json}).encode()})
    key = f"inbox/{FILM}/film.json"
    assert on_object_created(world.deps, world.deps.settings.inbox_bucket, key) is IntakeOutcome.ACCEPTED
    (run_id,) = world.store.films
    return run_id


def _shot_job(world, run_id: str, index: int):
    run = world.store.get_film_run(run_id)
    return world.store.get_job(run.shots[index - 1].job_id)


def _store(world, job, video: bytes) -> None:
    key = f"results/{FILM}/{job.run_id}/video.mp4"
    world.store.jobs[job.job_id].update(status="STORED", video_key=key, finished_at=world.clock.now())
    world.blobs.put(world.deps.settings.output_bucket, key, video)


def test_only_the_first_shot_is_made_at_first_the_next_waits_with_its_recipe(world):
    run_id = _drop_film(world)
    # Then one job (shot 1, from its two keyframes); shot 2 is recorded, not created, not paid for
    first = _shot_job(world, run_id, 1)
    assert first is not None and set(first.inputs) == {"first", "last"}
    assert _shot_job(world, run_id, 2) is None
    pending = world.store.get_film_run(run_id).shots[1].pending
    assert pending is not None and pending.spec.duration == 3 + CONTINUE_TAIL_S
    assert pending.last.key == f"inbox/{FILM}/03.png"
    assert len(world.provider.created) == 1
    assert film_runs.advance(world.deps, run_id) is film_runs.FilmProgress.WAITING
    assert world.queues.stitches == []  # shot 1 is not stored yet: no tail to cut


def test_a_stored_shot_gets_its_tail_cut_then_the_next_shot_continues_it(world, tmp_path):
    run_id = _drop_film(world)
    first = _shot_job(world, run_id, 1)
    _store(world, first, b"clip 1")
    # When shot 1 is stored, the run asks the stitch function for its tail
    assert film_runs.advance(world.deps, run_id) is film_runs.FilmProgress.WAITING
    assert world.queues.stitches == [run_id] and _shot_job(world, run_id, 2) is None
    # which cuts the last 2 s (silent: the model writes its own sound) and makes shot 2's job from it
    stitcher = CuttingStitcher()
    assert stitch(world.deps, run_id, stitcher, workdir=tmp_path) is StitchOutcome.TAIL_CUT
    assert stitcher.cuts == [(b"clip 1", CLIP_FRAMES - CONTINUE_TAIL_S * 30, None, False)]
    second = _shot_job(world, run_id, 2)
    assert second is not None and second.status is JobStatus.WAITING
    out = world.deps.settings.output_bucket
    tail = second.inputs["first_clip"]
    assert (tail.bucket, tail.key) == (out, f"results/{FILM}/{first.run_id}/tail.mp4")
    assert world.blobs.objects[(out, tail.key)] == b"cut(clip 1,30)"
    assert second.inputs["last"].key == f"inbox/{FILM}/03.png"
    assert second.spec.duration == 3 + CONTINUE_TAIL_S and second.expected_size is not None
    assert world.queues.admissions[-1] == "wan2.7-i2v"
    # and a redelivered message neither cuts again nor makes a second job
    assert stitch(world.deps, run_id, stitcher, workdir=tmp_path) is StitchOutcome.NOTHING_TO_DO
    assert len(stitcher.cuts) == 1
    assert len([j for j in world.store.recent_jobs(1000) if j.job_name == FILM]) == 2


def test_a_failed_shot_fails_the_run_at_once_and_the_shots_after_it_are_never_made(world):
    run_id = _drop_film(world)
    first = _shot_job(world, run_id, 1)
    world.store.jobs[first.job_id].update(
        status="FAILED", finished_at=world.clock.now(), error={"code": "InternalError.Algo", "message": "x"}
    )
    assert film_runs.advance(world.deps, run_id) is film_runs.FilmProgress.FAILED
    run = world.store.get_film_run(run_id)
    assert run.status is FilmStatus.FAILED and run.error.field == "shots.1"
    assert _shot_job(world, run_id, 2) is None and len(world.provider.created) == 1


def test_the_stitch_cuts_each_continued_clip_to_the_tails_last_frame_and_what_follows(world, tmp_path):
    run_id = _drop_film(world)
    stitcher = CuttingStitcher()
    _store(world, _shot_job(world, run_id, 1), b"clip 1")
    film_runs.advance(world.deps, run_id)
    stitch(world.deps, run_id, stitcher, workdir=tmp_path)
    _store(world, _shot_job(world, run_id, 2), b"clip 2")
    # When the last shot is stored, the run goes to the stitch
    assert film_runs.advance(world.deps, run_id) is film_runs.FilmProgress.STITCH
    assert stitch(world.deps, run_id, stitcher, workdir=tmp_path) is StitchOutcome.STORED
    # Then clip 2 lost its first 59 frames (the tail but its last frame: keyframe 2, kept for the seam)
    assert stitcher.cuts[-1] == (b"clip 2", CONTINUE_TAIL_S * 30 - 1, None, True)
    assert stitcher.joined == [[b"clip 1", b"cut(clip 2,59)"]]
    assert world.store.get_film_run(run_id).status is FilmStatus.STORED


def test_a_second_run_of_the_same_chain_reuses_every_continued_shot(world, tmp_path):
    run_id = _drop_film(world)
    stitcher = CuttingStitcher()
    _store(world, _shot_job(world, run_id, 1), b"clip 1")
    film_runs.advance(world.deps, run_id)
    stitch(world.deps, run_id, stitcher, workdir=tmp_path)
    _store(world, _shot_job(world, run_id, 2), b"clip 2")
    film_runs.advance(world.deps, run_id)
    # When only the seam changes (a new run, the same shots)
    drop(
        world,
        FILM,
        {
            "film.json": json.dumps(
                {
                    "model": "wan2.7-i2v",
                    "resolution": "720P",
                    "mode": "continue",
                    "defaults": {"duration": 3},
                    "seam": 2,
                }
            ).encode()
        },
    )
    assert (
        on_object_created(world.deps, world.deps.settings.inbox_bucket, f"inbox/{FILM}/film.json")
        is IntakeOutcome.ACCEPTED
    )
    # Then both shots are linked, none made again: the new run goes straight to the stitch
    newest = max((world.store.get_film_run(r) for r in world.store.films), key=lambda r: r.seam)
    assert newest.status is FilmStatus.STITCHING
    assert len(world.provider.created) == 1  # shot 1's task only; shot 2 was "made" by _store
