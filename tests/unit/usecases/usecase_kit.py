"""Helpers shared by the use-case tests (imported as a plain module: the test folder is on sys.path).

Everything runs against ``inbetween_local.memory``: no moto, no sockets, time moves only when told to.
"""

from __future__ import annotations

import io
from typing import Any

from inbetween.domain.models import DueKind, InputObject, Job, JobSpec, JobStatus
from inbetween.provider.models import TaskState, TaskStatus
from inbetween.usecases import admission
from inbetween_local.memory import InMemoryBlobs, MemoryWorld
from PIL import Image

FLASH = "wan2.2-kf2v-flash"
PLUS = "wanx2.1-kf2v-plus"
RED, BLUE = (220, 40, 40), (40, 60, 220)
SPEC = JobSpec(model=FLASH, resolution="720P", prompt="a slow pan across the bay")


def frame_png(color: tuple[int, int, int] = RED, size: tuple[int, int] = (320, 240)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def pair() -> dict[str, bytes]:
    return {"first.png": frame_png(RED), "last.png": frame_png(BLUE)}


def drop(world: MemoryWorld, name: str, files: dict[str, bytes], *, modified: float | None = None) -> None:
    """Upload ``files`` into the inbox folder ``name`` (as a user would)."""
    settings = world.deps.settings
    for filename, data in files.items():
        world.blobs.put(
            settings.inbox_bucket, f"{settings.inbox_prefix}{name}/{filename}", data, modified=modified
        )


def jobs_named(world: MemoryWorld, name: str) -> list[Job]:
    return [job for job in world.store.recent_jobs(limit=1000) if job.job_name == name]


def job_named(world: MemoryWorld, name: str) -> Job | None:
    jobs = jobs_named(world, name)
    assert len(jobs) <= 1, f"{len(jobs)} jobs for {name!r}"
    return jobs[0] if jobs else None


def inbox_error(world: MemoryWorld, name: str) -> dict[str, Any] | None:
    settings = world.deps.settings
    return world.blobs.json.get((settings.inbox_bucket, f"{settings.inbox_prefix}{name}/error.json"))


def results_error(world: MemoryWorld, job: Job) -> dict[str, Any] | None:
    settings = world.deps.settings
    return world.blobs.json.get(
        (settings.output_bucket, f"{settings.results_prefix}{job.job_name}/{job.run_id}/error.json")
    )


def waiting_job(
    world: MemoryWorld,
    name: str,
    *,
    spec: JobSpec = SPEC,
    created_at: float | None = None,
    frames: dict[str, bytes] | None = None,
) -> Job:
    """A job that intake accepted (frames in the inbox, WAITING, due for admission since it arrived),
    without admitting it."""
    settings = world.deps.settings
    now = world.clock.now() if created_at is None else created_at
    frames = pair() if frames is None else frames
    inputs = {}
    for filename, data in frames.items():
        key = f"{settings.inbox_prefix}{name}/{filename}"
        world.blobs.put(settings.inbox_bucket, key, data)
        inputs[filename.split(".")[0]] = InputObject(key=key, etag=InMemoryBlobs.etag(data), size=len(data))
    job = Job(
        job_id=f"{name}/run1",
        job_name=name,
        run_id="run1",
        status=JobStatus.WAITING,
        spec=spec,
        inputs=inputs,
        created_at=now,
        updated_at=now,
        expected_size=(1280, 720),
    )
    assert world.store.add_job(job, due=(DueKind.ADMIT, now))
    return job


def submitted_job(world: MemoryWorld, name: str, **kw: Any) -> Job:
    """A job whose provider task was created (SUBMITTED, holding a slot)."""
    job = waiting_job(world, name, **kw)
    assert admission.admit(world.deps, job.model or "") >= 1
    stored = world.store.get_job(job.job_id)
    assert stored is not None and stored.status is JobStatus.SUBMITTED and stored.task_id
    return stored


def task_state(task_id: str, status: TaskStatus, **kw: Any) -> TaskState:
    return TaskState(task_id=task_id, status=status, request_id="req-1", **kw)


class Wrapped:
    """An adapter that passes everything on to ``inner``; subclasses override what they break."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
