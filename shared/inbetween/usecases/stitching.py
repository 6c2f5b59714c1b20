"""The stitch: a film run whose shots are all stored becomes film.mp4, its poster and its contact sheet.

Runs in the stitch function, the only one with the media tooling (``FilmStitcher``, given by its
handler). The clips and keyframes are copied to the function's ephemeral storage, joined by the
stitcher (streamed: memory bounded by a few frames), and the film is verified before anything is
stored or announced: its frame count, each seam against its keyframe, no repeated frame at a seam, audio
and video of one length. Then the three files are stored and the run moves STITCHING -> STORED by a
conditional write; only the caller that made that move announces (a redelivered message that finds the
run stored does nothing but finish an announcement a crash left undone).

Continue mode (each shot continues the last ``CONTINUE_TAIL_S`` seconds of the one before): a RUNNING
run's message asks for the next tail. The stored shot's last seconds are cut (re-encoded) to
``tail.mp4`` beside its video, and the run advanced, which makes the next shot's job from it. At the
stitch, each continued clip's head (the tail it repeats) is cut off but for its last frame, the frame the
tail ended on: after that the ordinary seam rule applies, each seam's keyframe shown once.
"""

from __future__ import annotations

import tempfile
from enum import StrEnum
from pathlib import Path

from inbetween.deps import Deps
from inbetween.domain.catalog import VIDEO_FPS
from inbetween.domain.films import CONTINUE_TAIL_S, FilmMode, FilmRun, FilmStatus
from inbetween.domain.models import ErrorInfo, JobStatus
from inbetween.observability import count, logger
from inbetween.ports import FilmStitcher
from inbetween.usecases import film_runs

# a keyframe is an image of at most 20 MB (wan2.7's limit; kf2v's is 10)
MAX_KEYFRAME_BYTES = 20 * 1024 * 1024 + 1


class StitchOutcome(StrEnum):
    TAIL_CUT = "tail cut"  # continue mode: the next shot's first clip is ready
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
    if run.status is FilmStatus.RUNNING and run.mode is FilmMode.CONTINUE:
        with tempfile.TemporaryDirectory(prefix="tail-", dir=workdir) as tmp:
            return _cut_next_tail(deps, run, stitcher, Path(tmp))
    if run.status is not FilmStatus.STITCHING:
        return StitchOutcome.NOTHING_TO_DO
    with tempfile.TemporaryDirectory(prefix="film-", dir=workdir) as tmp:
        return _stitch_in(deps, run, stitcher, Path(tmp))


def _cut_next_tail(deps: Deps, run: FilmRun, stitcher: FilmStitcher, tmp: Path) -> StitchOutcome:
    """The tail the run's next shot continues: the last stored shot's last seconds (idempotent)."""
    bucket = deps.settings.output_bucket
    previous = None
    for shot in run.shots:
        job = deps.store.get_job(shot.job_id)
        if job is None:
            break
        previous = job
    else:
        return StitchOutcome.NOTHING_TO_DO  # every shot's job exists: no tail to cut
    if previous is None or previous.status is not JobStatus.STORED or not previous.video_key:
        return StitchOutcome.NOTHING_TO_DO
    key = film_runs.tail_key(deps, previous)
    if deps.blobs.head(bucket, key) is None:
        clip, tail = tmp / "clip.mp4", tmp / "tail.mp4"
        deps.blobs.download_file(bucket, previous.video_key, clip)
        frames = stitcher.frame_count(clip)
        try:
            stitcher.cut(clip, tail, start=max(0, frames - CONTINUE_TAIL_S * VIDEO_FPS), audio=False)
        except ValueError as exc:
            return _fail(deps, run, "TailCutFailed", f"the tail of {previous.job_id} could not be cut: {exc}")
        deps.blobs.upload_file(bucket, key, tail, content_type="video/mp4")
        count("TailsCut")
    film_runs.advance(deps, run.run_id)
    return StitchOutcome.TAIL_CUT


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
        if run.mode is FilmMode.CONTINUE and shot.index > 1:
            # the continued clip starts with the tail it was given: keep only the tail's last frame
            whole, clip = clip, tmp / f"shot-{shot.index:02d}-continued.mp4"
            try:
                stitcher.cut(whole, clip, start=CONTINUE_TAIL_S * VIDEO_FPS - 1)
            except ValueError as exc:
                return _fail(deps, run, "StitchFailed", f"shot {shot.index}'s clip could not be cut: {exc}")
            whole.unlink()
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
