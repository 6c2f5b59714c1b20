"""The stitch: a film run whose shots are all stored becomes film.mp4, its poster and its contact sheet.

Runs in the stitch function, the only one with the media tooling (``FilmStitcher``, given by its
handler). The clips and keyframes are copied to the function's ephemeral storage, joined by the
stitcher (streamed: memory bounded by a few frames), and the film is verified before anything is
stored or announced: its frame count, each seam against its keyframe, no repeated frame at a seam, audio
and video of one length. Then the three files are stored and the run moves STITCHING -> STORED by a
conditional write; only the caller that made that move announces (a redelivered message that finds the
run stored does nothing but finish an announcement a crash left undone).
"""

from __future__ import annotations

import tempfile
from enum import StrEnum
from pathlib import Path

from inbetween.deps import Deps
from inbetween.domain.films import FilmRun, FilmStatus
from inbetween.domain.models import ErrorInfo, JobStatus
from inbetween.observability import count, logger
from inbetween.ports import FilmStitcher
from inbetween.usecases import film_runs

# a keyframe is an image of at most 20 MB (wan2.7's limit; kf2v's is 10)
MAX_KEYFRAME_BYTES = 20 * 1024 * 1024 + 1


class StitchOutcome(StrEnum):
    STORED = "stored"
    FAILED = "failed"
    NOTHING_TO_DO = "nothing to do"


def stitch(deps: Deps, run_id: str, stitcher: FilmStitcher, *, workdir: Path | None = None) -> StitchOutcome:
    run = deps.store.get_film_run(run_id)
    if run is None:
        return StitchOutcome.NOTHING_TO_DO
    if run.status.is_final:
        film_runs.announce(deps, run_id)  # finishes an announcement a crash left undone; else nothing
        return StitchOutcome.NOTHING_TO_DO
    if run.status is not FilmStatus.STITCHING:
        return StitchOutcome.NOTHING_TO_DO
    with tempfile.TemporaryDirectory(prefix="film-", dir=workdir) as tmp:
        return _stitch_in(deps, run, stitcher, Path(tmp))


def _stitch_in(deps: Deps, run: FilmRun, stitcher: FilmStitcher, tmp: Path) -> StitchOutcome:
    settings = deps.settings
    clips: list[Path] = []
    for shot in run.shots:
        job = deps.store.get_job(shot.job_id)
        if job is None or job.status is not JobStatus.STORED or not job.video_key:
            # a shot's job can only be stored and stay so; anything else is a bug worth a loud failure
            return _fail(deps, run, "ShotNotStored", f"shot {shot.index}'s video is not stored")
        clip = tmp / f"shot-{shot.index:02d}.mp4"
        deps.blobs.download_file(settings.output_bucket, job.video_key, clip)
        clips.append(clip)
    keyframes = [
        deps.blobs.read(settings.inbox_bucket, key, max_bytes=MAX_KEYFRAME_BYTES) for key in run.keyframes
    ]
    film = tmp / "film.mp4"
    try:
        stitched = stitcher.stitch(clips, film, seam_blend_frames=run.seam)
    except ValueError as exc:
        return _fail(deps, run, "StitchFailed", f"the clips could not be joined: {exc}")
    problems = stitcher.verify(film, stitched, keyframes)
    if problems:
        return _fail(
            deps, run, "FilmVerificationFailed", "the stitched film is wrong: " + "; ".join(problems)
        )
    prefix = film_runs.film_prefix(deps, run)
    # a storage error escapes: the message comes back and the run, still STITCHING, is stitched again
    size = deps.blobs.upload_file(settings.output_bucket, prefix + "film.mp4", film, content_type="video/mp4")
    for name, data, content_type in (
        ("poster.jpg", stitched.poster_jpeg, "image/jpeg"),
        ("contact-sheet.png", stitched.contact_sheet_png, "image/png"),
    ):
        picture = tmp / name
        picture.write_bytes(data)
        deps.blobs.upload_file(settings.output_bucket, prefix + name, picture, content_type=content_type)
    now = deps.clock.now()
    moved = deps.store.move_film_run(
        run.run_id,
        FilmStatus.STITCHING,
        FilmStatus.STORED,
        due_at=now + deps.timing.notify_grace_s,
        video_key=prefix + "film.mp4",
        video_bytes=size,
        frames=stitched.total_frames,
        duration_s=round(stitched.duration_s, 3),
        finished_at=now,
    )
    if not moved:
        return StitchOutcome.NOTHING_TO_DO  # another delivery of the message stored it first
    count("FilmsStored")
    logger.info(
        "film stored",
        extra={"film_run": run.run_id, "frames": stitched.total_frames, "bytes": size, "shots": len(clips)},
    )
    film_runs.announce(deps, run.run_id)
    return StitchOutcome.STORED


def _fail(deps: Deps, run: FilmRun, code: str, message: str) -> StitchOutcome:
    now = deps.clock.now()
    error = ErrorInfo(
        code=code,
        message=message,
        hint="the shots are stored and kept (their videos are under the film's results); the film "
        "itself could not be made from them: report it with the film run's id",
    )
    if deps.store.move_film_run(
        run.run_id,
        FilmStatus.STITCHING,
        FilmStatus.FAILED,
        due_at=now + deps.timing.notify_grace_s,
        error=error,
        finished_at=now,
    ):
        count("FilmsFailed")
        logger.warning("film stitch failed", extra={"film_run": run.run_id, "code": code})
        film_runs.announce(deps, run.run_id)
    return StitchOutcome.FAILED
