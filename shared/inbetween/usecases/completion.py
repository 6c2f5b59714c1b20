"""Completion: copy the finished video out of its expiring link into the output bucket, verified, once."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from inbetween.deps import Deps
from inbetween.domain.models import ErrorInfo, Job, JobStatus, StoredVideo
from inbetween.errors import VideoDownloadFailed, VideoLinkExpired
from inbetween.observability import count, logger, seconds
from inbetween.usecases.finishing import finish
from inbetween.usecases.notify import iso, report_and_notify, results_prefix, video_facts

# the stored object's metadata names the task it came from: a retry recognises its own upload
TASK_ID_METADATA = "task-id"


class CompletionOutcome(StrEnum):
    UNKNOWN_JOB = "unknown job"
    NOTIFIED = "notified"  # already final; this call sent the missing notification
    ALREADY_DONE = "already done"
    NOT_READY = "not ready"  # the job is not (yet) COMPLETING
    EXPIRED = "expired"
    STORED = "stored"


def complete(deps: Deps, job_id: str) -> CompletionOutcome:
    job = deps.store.get_job(job_id)
    if job is None:
        return CompletionOutcome.UNKNOWN_JOB
    if job.status.is_final:
        if job.notified_at is None:
            report_and_notify(deps, job)
            return CompletionOutcome.NOTIFIED
        return CompletionOutcome.ALREADY_DONE
    if job.status is not JobStatus.COMPLETING:
        return CompletionOutcome.NOT_READY
    key = results_prefix(deps, job) + "video.mp4"
    stored = _already_stored(deps, job, key)
    if stored is None:
        started = deps.clock.now()
        try:
            stored = _download(deps, job, key)
        except VideoLinkExpired as exc:
            error = ErrorInfo(
                code="VideoLinkExpired",
                message=f"the provider's video link no longer answers ({exc}); its links last 24 hours",
                hint="upload the job folder again to generate the video again",
            )
            finish(deps, job, JobStatus.EXPIRED, expected=JobStatus.COMPLETING, error=error)
            return CompletionOutcome.EXPIRED
        seconds("VideoCopyTime", deps.clock.now() - started)
    deps.blobs.put_json(
        deps.settings.output_bucket, results_prefix(deps, job) + "metadata.json", metadata(deps, job, stored)
    )
    finish(
        deps,
        job,
        JobStatus.STORED,
        expected=JobStatus.COMPLETING,
        video_key=stored.key,
        video_bytes=stored.size,
        video_url=None,
    )
    end_ts = job.provider.get("end_ts")
    if end_ts:
        seconds("PipelineOverhead", deps.clock.now() - float(end_ts))
    return CompletionOutcome.STORED


def metadata(deps: Deps, job: Job, stored: StoredVideo) -> dict[str, Any]:
    """metadata.json beside the video: what was asked, what the provider did, where the video is."""
    spec = job.spec
    size = job.expected_size
    return {
        "job": job.job_name,
        "job_id": job.job_id,
        "task_id": job.task_id,
        "model": job.model,
        "resolution": spec.resolution if spec else None,
        "size": {"width": size[0], "height": size[1]} if size else None,
        "prompt": spec.prompt if spec else None,
        "negative_prompt": spec.negative_prompt if spec else None,
        "template": spec.template if spec else None,
        "actual_prompt": job.provider.get("actual_prompt"),
        "usage": job.provider.get("usage"),
        "billed_seconds": job.provider.get("billed_seconds"),
        **video_facts(job),
        "video": {"bucket": stored.bucket, "key": stored.key, "bytes": stored.size, "sha256": stored.sha256},
        "timings": {
            "dropped_at": iso(job.created_at),
            "submitted_at": iso(job.submitted_at),
            "provider_submit_time": job.provider.get("submit_time"),
            "provider_scheduled_time": job.provider.get("scheduled_time"),
            "provider_end_time": job.provider.get("end_time"),
            "stored_at": iso(deps.clock.now()),
        },
        "inputs": {role: obj.key for role, obj in job.inputs.items()},
    }


def _already_stored(deps: Deps, job: Job, key: str) -> StoredVideo | None:
    """A retry after a crash between the upload and the state change: the object is there already.
    Its digest is not known up front (the upload streams), so read it back once: a rare path, and it
    re-checks that the stored bytes are a whole MP4 before anyone is told about them."""
    bucket = deps.settings.output_bucket
    head = deps.blobs.head(bucket, key)
    if head is None or head.metadata.get(TASK_ID_METADATA) != job.task_id:
        return None
    digest, size, problem = deps.blobs.digest_video(bucket, key, version_id=head.version_id)
    if problem:
        return None  # not a whole video after all: download and store it again
    return StoredVideo(bucket=bucket, key=key, size=size, sha256=digest, version_id=head.version_id)


def _download(deps: Deps, job: Job, key: str) -> StoredVideo:
    if not job.video_url:
        raise VideoLinkExpired("no video_url was recorded")
    try:
        with deps.videos.open(job.video_url) as video:
            stored = deps.blobs.store_video(
                deps.settings.output_bucket,
                key,
                video.chunks,
                expected_bytes=video.length,
                metadata={TASK_ID_METADATA: job.task_id or ""},
            )
    except VideoDownloadFailed as exc:
        count("VideoDownloadsFailed")
        logger.warning("video download failed; will retry", extra={"job_id": job.job_id, "error": str(exc)})
        raise
    count("VideosStored")
    return stored
