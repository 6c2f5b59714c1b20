"""Completion: copy the finished video out of its expiring link into the output bucket, verified, once;
then its pictures beside it, when it can.

The pictures (``poster.jpg``, ``contact-sheet.png``) are made from the stored video (downloaded to the
function's ephemeral storage) by the ``ClipPictures`` its handler gives (the media layer's PyAV). They
are a courtesy: whatever goes wrong with them (an unreadable video, a decoder error, a storage error, too
little time left) is logged and counted, and the job is stored and notified without them, in the same
attempt. Their keys are set on the job in the write that makes it STORED, so every later notification
(a redelivered message, the poller's safety net) links them exactly when they were made.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from inbetween.deps import Deps
from inbetween.domain import costs
from inbetween.domain.models import ErrorInfo, Job, JobStatus, StoredVideo
from inbetween.errors import VideoDownloadFailed, VideoLinkExpired
from inbetween.observability import count, logger, seconds
from inbetween.ports import ClipPictures
from inbetween.usecases.finishing import finish
from inbetween.usecases.notify import iso, report_and_notify, results_prefix, video_facts

# the stored object's metadata names the task it came from: a retry recognises its own upload
TASK_ID_METADATA = "task-id"
# the pictures beside video.mp4: (the job field that records the key, file name, content type)
PICTURE_FILES = (
    ("poster_key", "poster.jpg", "image/jpeg"),
    ("contact_sheet_key", "contact-sheet.png", "image/png"),
)
# pictures are tried only with this long left of the invocation: a decode cut off by the function's
# timeout would fail the attempt, and every retry of it again
PICTURES_MIN_TIME_S = 60.0


class CompletionOutcome(StrEnum):
    UNKNOWN_JOB = "unknown job"
    NOTIFIED = "notified"  # already final; this call sent the missing notification
    ALREADY_DONE = "already done"
    NOT_READY = "not ready"  # the job is not (yet) COMPLETING
    EXPIRED = "expired"
    STORED = "stored"


def complete(
    deps: Deps,
    job_id: str,
    pictures: ClipPictures | None = None,
    *,
    time_left_s: Callable[[], float] | None = None,
) -> CompletionOutcome:
    """Store the job's video, then (with ``pictures``) its poster and contact sheet, then notify.
    ``time_left_s``: seconds left of the invocation (None: no limit), which the pictures must leave."""
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
    picture_keys = _store_pictures(deps, job, stored, pictures, time_left_s) if pictures is not None else {}
    deps.blobs.put_json(
        deps.settings.output_bucket,
        results_prefix(deps, job) + "metadata.json",
        metadata(deps, job, stored, picture_keys),
    )
    # before finish, which notifies: the log reads in the order things happened (stored, then notified)
    logger.info(
        "video stored",
        extra={
            "job_id": job.job_id,
            "task_id": job.task_id,
            "video_key": stored.key,
            "video_bytes": stored.size,
            "cost": costs.format_money(costs.bill(job, deps.settings.provider_region)),
        },
    )
    finish(
        deps,
        job,
        JobStatus.STORED,
        expected=JobStatus.COMPLETING,
        video_key=stored.key,
        video_bytes=stored.size,
        video_url=None,
        # the pictures made, recorded with STORED (None: not made; a COMPLETING job has none recorded)
        poster_key=picture_keys.get("poster_key"),
        contact_sheet_key=picture_keys.get("contact_sheet_key"),
    )
    end_ts = job.provider.get("end_ts")
    if end_ts:
        seconds("PipelineOverhead", deps.clock.now() - float(end_ts))
    return CompletionOutcome.STORED


def metadata(
    deps: Deps, job: Job, stored: StoredVideo, picture_keys: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """metadata.json beside the video: what was asked, what the provider did, where the video and its
    pictures are (``picture_keys``: ``poster_key``/``contact_sheet_key``; None or empty: not made)."""
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
        # what the job is billed once stored (the same figure its notification gives)
        "cost": costs.cost_data(
            replace(job, status=JobStatus.STORED, cost_micros=costs.bill(job, deps.settings.provider_region)),
            deps.settings.provider_region,
            deps.settings.report_rate,
        ),
        "video": {"bucket": stored.bucket, "key": stored.key, "bytes": stored.size, "sha256": stored.sha256},
        "pictures": (
            {"poster": picture_keys["poster_key"], "contact_sheet": picture_keys["contact_sheet_key"]}
            if picture_keys
            else None
        ),
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
    return StoredVideo(bucket=bucket, key=key, size=size, sha256=digest)


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


def _store_pictures(
    deps: Deps,
    job: Job,
    stored: StoredVideo,
    pictures: ClipPictures,
    time_left_s: Callable[[], float] | None,
) -> dict[str, str]:
    """The stored video's poster and contact sheet, uploaded beside it: the job fields that record their
    keys, or {} when they could not be made (never raises: the job goes on without them). A retry makes
    and uploads them again, over the same keys."""
    extra = {"job_id": job.job_id}
    if time_left_s is not None and time_left_s() < PICTURES_MIN_TIME_S:
        count("ClipPicturesSkipped")
        logger.warning("too little time left for the pictures; notifying without them", extra=extra)
        return {}
    bucket = deps.settings.output_bucket
    prefix = results_prefix(deps, job)
    started = deps.clock.now()
    keys: dict[str, str] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="clip-") as tmp:
            folder = Path(tmp)
            video = folder / "video.mp4"
            deps.blobs.download_file(bucket, stored.key, video)
            made = pictures.make(video)
            video.unlink()  # room on the ephemeral storage before the pictures are written
            for (field_name, name, content_type), data in zip(
                PICTURE_FILES, (made.poster_jpeg, made.contact_sheet_png), strict=True
            ):
                path = folder / name
                path.write_bytes(data)
                deps.blobs.upload_file(bucket, prefix + name, path, content_type=content_type)
                keys[field_name] = prefix + name
    except Exception as exc:  # noqa: BLE001 - pictures are a courtesy: the job is stored and told without them
        count("ClipPicturesFailed")
        logger.warning(
            "clip pictures failed; notifying without them",
            extra={**extra, "error": f"{type(exc).__name__}: {exc}"},
        )
        return {}
    count("ClipPicturesStored")
    seconds("ClipPicturesTime", deps.clock.now() - started)
    return keys
