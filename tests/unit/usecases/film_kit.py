"""Film runs for the use-case tests: a run of N shots whose jobs are in the states a test needs."""

from __future__ import annotations

from inbetween.domain.films import FilmRun, FilmStatus, ShotRef
from inbetween.domain.models import ErrorInfo, InputObject, Job, JobSpec, JobStatus
from inbetween_local.memory import MemoryWorld

FILM = "bay-walk"
SPEC = JobSpec(model="wan2.7-i2v", resolution="720P", duration=2)


def shot_job(
    world: MemoryWorld, index: int, status: JobStatus, run_id: str, *, error: ErrorInfo | None = None
) -> Job:
    now = world.clock.now()
    job_id = f"{FILM}/shot-{index:012d}"
    video_key = f"results/{FILM}/shot-{index:012d}/video.mp4"
    job = Job(
        job_id=job_id,
        job_name=FILM,
        run_id=f"shot-{index:012d}",
        status=status,
        spec=SPEC,
        inputs={
            "first": InputObject(key=f"inbox/{FILM}/{index:02d}.png", etag=f"e{index}", size=10),
            "last": InputObject(key=f"inbox/{FILM}/{index + 1:02d}.png", etag=f"e{index + 1}", size=10),
        },
        created_at=now,
        updated_at=now,
        task_id=f"task-{index}",
        video_key=video_key if status is JobStatus.STORED else None,
        video_bytes=100 if status is JobStatus.STORED else None,
        provider={"usage": {"duration": 2}} if status is JobStatus.STORED else {},
        error=error,
        finished_at=now if status.is_final else None,
        film_runs=(run_id,),
        announce=False,
    )
    world.store.add_job(job)
    if status is JobStatus.STORED:
        world.blobs.put(world.deps.settings.output_bucket, video_key, f"clip {index}".encode())
    return job


def film_run(world: MemoryWorld, statuses: list[JobStatus], **changes) -> FilmRun:
    run_id = f"{FILM}/0123456789ab"
    shots = []
    for index, status in enumerate(statuses, start=1):
        error = (
            ErrorInfo(code="InternalError.Algo", message="the model failed", hint="try again")
            if status is JobStatus.FAILED
            else None
        )
        job = shot_job(world, index, status, run_id, error=error)
        shots.append(ShotRef(index=index, number=index, last_number=index + 1, job_id=job.job_id))
    keyframes = tuple(f"inbox/{FILM}/{n:02d}.png" for n in range(1, len(statuses) + 2))
    for key in keyframes:
        world.blobs.put(world.deps.settings.inbox_bucket, key, b"png " + key.encode())
    now = world.clock.now()
    run = FilmRun(
        run_id=run_id,
        film=FILM,
        status=changes.pop("status", FilmStatus.RUNNING),
        shots=tuple(shots),
        created_at=now,
        updated_at=now,
        keyframes=keyframes,
        **changes,
    )
    assert world.store.add_film_run(run, due_at=now + 300)
    return run
