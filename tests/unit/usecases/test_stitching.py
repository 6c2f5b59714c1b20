"""The stitch (inbetween.usecases.stitching): a STITCHING run's clips and keyframes go to the stitcher,
the film is verified before anything is stored, and the run is stored and announced once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from film_kit import FILM, film_run
from inbetween.domain.films import FilmStatus
from inbetween.domain.models import JobStatus
from inbetween.usecases import film_runs
from inbetween.usecases.film_runs import FILM_SUCCEEDED_EVENT
from inbetween.usecases.stitching import StitchOutcome, stitch
from inbetween_local.memory import memory_world

S = JobStatus.STORED


@dataclass(frozen=True)
class Stitched:
    total_frames: int = 175
    duration_s: float = 5.833
    audio_duration_s: float | None = 5.833
    width: int = 1280
    height: int = 720
    poster_jpeg: bytes = b"\xff\xd8poster"
    contact_sheet_png: bytes = b"\x89PNGsheet"


@dataclass
class FakeStitcher:
    """Writes the clips' bytes, joined, as the film; ``problems`` is what verification finds."""

    problems: list[str] = field(default_factory=list)
    refuse: str | None = None
    seen: list[tuple[list[bytes], int, list[bytes]]] = field(default_factory=list)

    def stitch(self, clips, out: Path, *, seam_blend_frames: int):
        if self.refuse:
            raise ValueError(self.refuse)
        out.write_bytes(b"|".join(Path(c).read_bytes() for c in clips))
        self.seen.append(([Path(c).read_bytes() for c in clips], seam_blend_frames, []))
        return Stitched()

    def verify(self, film: Path, stitched, keyframes):
        self.seen[-1][2].extend(keyframes)
        return list(self.problems)


@pytest.fixture
def world():
    return memory_world()


def _stitching(world, shots=3, **changes):
    run = film_run(world, [S] * shots, **changes)
    assert film_runs.advance(world.deps, run.run_id) is film_runs.FilmProgress.STITCH
    return run


def test_a_run_of_stored_shots_becomes_a_stored_film_with_its_pictures_and_one_event(world, tmp_path):
    run = _stitching(world, seam=2)
    stitcher = FakeStitcher()
    assert stitch(world.deps, run.run_id, stitcher, workdir=tmp_path) is StitchOutcome.STORED
    # the clips in order, the seam, and every keyframe for the verification
    clips, seam, keyframes = stitcher.seen[0]
    assert clips == [b"clip 1", b"clip 2", b"clip 3"] and seam == 2
    assert keyframes == [f"png inbox/{FILM}/{n:02d}.png".encode() for n in range(1, 5)]
    out = world.deps.settings.output_bucket
    prefix = f"results/{FILM}/film-{run.digest}/"
    assert world.blobs.objects[(out, prefix + "film.mp4")] == b"clip 1|clip 2|clip 3"
    assert world.blobs.objects[(out, prefix + "poster.jpg")].startswith(b"\xff\xd8")
    assert world.blobs.objects[(out, prefix + "contact-sheet.png")].startswith(b"\x89PNG")
    stored = world.store.get_film_run(run.run_id)
    assert (stored.status, stored.frames, stored.video_key) == (FilmStatus.STORED, 175, prefix + "film.mp4")
    (note,) = world.notifier.published
    assert note.event_type == FILM_SUCCEEDED_EVENT
    assert (
        note.data["film_video"]["frames"] == 175
        and "poster_url" in note.data
        and "contact_sheet_url" in note.data
    )
    # nothing is left in the function's ephemeral storage
    assert list(tmp_path.iterdir()) == []


def test_a_redelivered_stitch_message_does_nothing_more(world, tmp_path):
    run = _stitching(world)
    stitcher = FakeStitcher()
    stitch(world.deps, run.run_id, stitcher, workdir=tmp_path)
    assert stitch(world.deps, run.run_id, stitcher, workdir=tmp_path) is StitchOutcome.NOTHING_TO_DO
    assert len(stitcher.seen) == 1 and len(world.notifier.published) == 1


def test_a_film_that_fails_verification_is_never_stored_and_fails_the_run_saying_why(world, tmp_path):
    run = _stitching(world)
    stitcher = FakeStitcher(problems=["seam 2: frame 120 does not match keyframe 3"])
    assert stitch(world.deps, run.run_id, stitcher, workdir=tmp_path) is StitchOutcome.FAILED
    stored = world.store.get_film_run(run.run_id)
    assert stored.status is FilmStatus.FAILED and stored.error.code == "FilmVerificationFailed"
    assert "does not match keyframe 3" in stored.error.message
    out = world.deps.settings.output_bucket
    assert not [k for (b, k) in world.blobs.objects if b == out and k.endswith("film.mp4")]
    (note,) = world.notifier.published
    assert note.data["status"] == "FAILED"


def test_clips_the_stitcher_cannot_join_fail_the_run(world, tmp_path):
    run = _stitching(world)
    assert stitch(world.deps, run.run_id, FakeStitcher(refuse="clip 2 is at 24 fps"), workdir=tmp_path) is (
        StitchOutcome.FAILED
    )
    assert "24 fps" in world.store.get_film_run(run.run_id).error.message


def test_a_run_not_yet_stitching_is_left_alone(world, tmp_path):
    run = film_run(world, [S, JobStatus.SUBMITTED])
    assert stitch(world.deps, run.run_id, FakeStitcher(), workdir=tmp_path) is StitchOutcome.NOTHING_TO_DO
    assert world.store.get_film_run(run.run_id).status is FilmStatus.RUNNING
