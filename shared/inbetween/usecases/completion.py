"""Completion: copy the finished video out of its expiring link into the output bucket, verified, once."""

from __future__ import annotations

import httpx

from inbetween.aws.s3_blobs import StoredVideo
from inbetween.deps import Deps
from inbetween.domain.models import ErrorInfo, Job, JobStatus
from inbetween.errors import InbetweenError
from inbetween.observability import count, logger, seconds
from inbetween.usecases.notify import finish, iso, report_and_notify, results_prefix

CHUNK = 1024 * 1024


class VideoDownloadFailed(InbetweenError):
    retryable = True


def complete(deps: Deps, job_id: str) -> str:
    job = deps.store.get_job(job_id)
    if job is None:
        return "unknown job"
    if job.status.is_final:
        if job.notified_at is None:
            report_and_notify(deps, job)
            return "notified"
        return "already done"
    if job.status is not JobStatus.COMPLETING:
        return f"not ready ({job.status.value})"
    settings = deps.settings
    key = results_prefix(deps, job) + "video.mp4"
    stored = _already_stored(deps, job, key)
    if stored is None:
        started = deps.clock()
        try:
            stored = _download(deps, job, key)
        except _LinkExpired as exc:
            error = ErrorInfo(
                code="VideoLinkExpired",
                message=f"the provider's video link no longer answers ({exc}); its links last 24 hours",
                hint="upload the job folder again to generate the video again",
            )
            finish(deps, job, JobStatus.EXPIRED, expected=JobStatus.COMPLETING, error=error)
            return "expired"
        seconds("VideoCopyTime", deps.clock() - started)
    width_height = list(job.expected_size) if job.expected_size else None
    metadata = {
        "job": job.job_name,
        "job_id": job.job_id,
        "task_id": job.task_id,
        "model": job.model,
        "resolution": job.spec.resolution if job.spec else None,
        "size": {"width": width_height[0], "height": width_height[1]} if width_height else None,
        "prompt": job.spec.prompt if job.spec else None,
        "negative_prompt": job.spec.negative_prompt if job.spec else None,
        "template": job.spec.template if job.spec else None,
        "actual_prompt": job.provider.get("actual_prompt"),
        "usage": job.provider.get("usage"),
        "video": {"bucket": stored.bucket, "key": stored.key, "bytes": stored.size, "sha256": stored.sha256},
        "timings": {
            "dropped_at": iso(job.created_at),
            "submitted_at": iso(job.submitted_at),
            "provider_submit_time": job.provider.get("submit_time"),
            "provider_scheduled_time": job.provider.get("scheduled_time"),
            "provider_end_time": job.provider.get("end_time"),
            "stored_at": iso(deps.clock()),
        },
        "inputs": {role: obj.key for role, obj in job.inputs.items()},
    }
    deps.blobs.put_json(settings.output_bucket, results_prefix(deps, job) + "metadata.json", metadata)
    finish(
        deps,
        job,
        JobStatus.STORED,
        expected=JobStatus.COMPLETING,
        extra={"video_key": stored.key, "video_bytes": stored.size, "video_url": None},
    )
    end_ts = job.provider.get("end_ts")
    if end_ts:
        seconds("PipelineOverhead", deps.clock() - float(end_ts))
    return "stored"


class _LinkExpired(Exception):
    pass


def _already_stored(deps: Deps, job: Job, key: str) -> StoredVideo | None:
    """A retry after a crash between the upload and the state change: the object is there already.
    Its digest is not known up front (the upload streams), so read it back once: a rare path, and it
    re-checks that the stored bytes are a whole MP4 before anyone is told about them."""
    head = deps.blobs.head(deps.settings.output_bucket, key)
    if head is None or head.get("Metadata", {}).get("task-id") != job.task_id:
        return None
    version = head.get("VersionId")
    digest, size, problem = deps.blobs.digest_video(deps.settings.output_bucket, key, version_id=version)
    if problem:
        return None  # not a whole video after all: download and store it again
    return StoredVideo(
        bucket=deps.settings.output_bucket, key=key, size=size, sha256=digest, version_id=version
    )


def _download(deps: Deps, job: Job, key: str) -> StoredVideo:
    if not job.video_url:
        raise _LinkExpired("no video_url was recorded")
    try:
        with deps.http.stream("GET", job.video_url) as resp:
            if resp.status_code in (403, 404, 410):
                raise _LinkExpired(f"HTTP {resp.status_code}")
            if resp.status_code != 200:
                raise VideoDownloadFailed(f"video download answered HTTP {resp.status_code}; will retry")
            length = resp.headers.get("content-length")
            stored = deps.blobs.store_video(
                deps.settings.output_bucket,
                key,
                resp.iter_bytes(CHUNK),
                expected_bytes=int(length) if length and length.isdigit() else None,
                metadata={"task-id": job.task_id or ""},
            )
    except httpx.HTTPError as exc:
        count("VideoDownloadsFailed")
        logger.warning(
            "video download failed; will retry", extra={"job_id": job.job_id, "error": type(exc).__name__}
        )
        raise VideoDownloadFailed(f"video download failed: {type(exc).__name__}") from None
    count("VideosStored")
    return stored
