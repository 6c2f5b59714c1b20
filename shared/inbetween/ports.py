"""What the use cases need from the outside world, as ``typing.Protocol``s.

The use cases (``inbetween.usecases``) speak only to these. The AWS adapters (``inbetween.aws``), the
provider client (``inbetween.provider``) and the webhook sender (``inbetween.webhooks``) implement them
for the cloud; ``inbetween_local.memory`` implements them in memory for unit tests. Nothing here knows
DynamoDB expressions, boto3 call shapes or HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from inbetween.domain.costs import MonthSpend
from inbetween.domain.films import FilmRun, FilmStatus
from inbetween.domain.models import (
    DeliveryLogEntry,
    DueKind,
    EarlyEvent,
    Job,
    Notification,
    ObjectHead,
    ObjectInfo,
    StoredVideo,
    SubmitLease,
    Transition,
    VideoDownload,
    WebhookAttempt,
    WebhookDelivery,
)
from inbetween.domain.webhook_events import WebhookEndpoint
from inbetween.provider.models import (
    CreateTaskRequest,
    ModelQuota,
    TaskPage,
    TaskRef,
    TaskState,
    TaskSummary,
)
from inbetween.webhooks.outcome import DeliveryResult


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None: ...


class JobStore(Protocol):
    """The jobs table, one method per thing the pipeline means to do with it."""

    # -- jobs ----------------------------------------------------------------------------------------
    def get_job(self, job_id: str) -> Job | None: ...

    def add_job(self, job: Job, *, due: tuple[DueKind, float] | None = None) -> bool:
        """Insert ``job`` unless one with its id exists (a duplicate event). True if inserted."""
        ...

    def apply(self, transition: Transition) -> bool:
        """Apply a state change; False when its condition no longer holds (someone else moved the job,
        no slot is free, a claim is held). A slot change commits together with the job's or not at all."""
        ...

    def due_jobs(self, kind: DueKind, now: float, *, model: str | None = None, limit: int = 100) -> list[Job]:
        """Jobs whose ``kind`` item is due at ``now``, oldest due first; reads only what it returns."""
        ...

    def next_due_at(self, kind: DueKind) -> float | None: ...

    def postpone(self, job_id: str, kind: DueKind, at: float) -> bool:
        """Move the job's due time of ``kind`` to ``at``, only if that is still what it is due for.
        Not for ``ADMIT``: a waiting job's due time is its place in the queue."""
        ...

    def clear_due(self, job_id: str) -> None: ...

    def slots_in_use(self, model: str) -> int: ...

    def claim_notification(self, job_id: str, *, now: float, until: float) -> bool:
        """A short claim on notifying a final job: False if notified or someone else holds the claim."""
        ...

    def mark_notified(self, job_id: str, at: float) -> None: ...

    def recent_jobs(self, limit: int = 50) -> list[Job]:
        """For the CLI only (a bounded scan); the pipeline never lists jobs."""
        ...

    # -- the month's spend and the budget ------------------------------------------------------------
    def month_spend(self, month: str) -> MonthSpend:
        """The month's committed spend (0 for a month nothing was committed to)."""
        ...

    def claim_budget_reached(self, month: str, at: float) -> bool:
        """Mark the month's budget reached: True only for the first call of the month."""
        ...

    def budget_override(self) -> int | None:
        """The monthly budget set without a redeploy (micros; 0: none), or None: the deployment's."""
        ...

    def set_budget_override(self, amount_micros: int | None) -> None: ...

    # -- provider tasks ------------------------------------------------------------------------------
    def record_task(self, task_id: str, job_id: str) -> None: ...

    def job_for_task(self, task_id: str) -> str | None: ...

    # -- the submit leases: one per lane (the account's, ``lane=""``, or one per API key) -------------
    def acquire_submit_lease(self, holder: str, lease_s: float, *, lane: str = "") -> SubmitLease | None: ...

    def extend_submit_lease(
        self, holder: str, lease_s: float, *, next_submit_at: float | None = None, lane: str = ""
    ) -> bool: ...

    def release_submit_lease(self, holder: str, *, lane: str = "") -> None: ...

    def remember_api_key_id(self, api_key_id: str, *, lane: str) -> None:
        """The provider's ``api_key_id`` of ``lane``'s key, learnt from a task of it: every later
        ``acquire_submit_lease`` of the lane returns it."""
        ...

    # -- incomplete drop folders ---------------------------------------------------------------------
    def note_incomplete_drop(self, job_name: str, *, first_seen: float, settle_by: float) -> bool: ...

    def forget_drop(self, job_name: str) -> None: ...

    def overdue_drops(self, now: float, limit: int = 50) -> list[str]:
        """Names of incomplete drop folders whose time is up."""
        ...

    # -- the runs of an inbox folder still in flight (deleting the folder's inputs cancels them) -----
    def note_open_run(self, folder: str, run_id: str) -> None:
        """Remember that ``run_id`` (a job id or a film run id) was made from inbox folder ``folder``."""
        ...

    def open_runs(self, folder: str) -> list[str]:
        """The run ids noted for ``folder`` and not forgotten yet (some may have ended since)."""
        ...

    def forget_open_run(self, folder: str, run_id: str) -> None:
        """``run_id`` ended: no delete in ``folder`` concerns it any more (nothing if it was not noted)."""
        ...

    # -- webhook deliveries --------------------------------------------------------------------------
    def add_webhook_delivery(self, delivery: WebhookDelivery) -> bool: ...

    def get_webhook_delivery(self, delivery_id: str) -> WebhookDelivery | None: ...

    def record_webhook_attempt(self, delivery_id: str, attempt: WebhookAttempt) -> None: ...

    def due_webhook_deliveries(self, now: float, limit: int = 50) -> list[str]: ...

    def postpone_webhook_delivery(self, delivery_id: str, at: float) -> None: ...

    def reopen_webhook_delivery(self, delivery_id: str, at: float, entry: DeliveryLogEntry) -> bool:
        """A replay: a delivery that is not PENDING or WAITING becomes PENDING, due at ``at``, with its
        attempts counted from 0 again and ``entry`` logged. False if it is queued already (or unknown)."""
        ...

    def hold_webhook_delivery(self, delivery_id: str, endpoint_id: str, entry: DeliveryLogEntry) -> bool:
        """A PENDING delivery waits (WAITING) for its paused endpoint, in creation order. False if it
        was not PENDING."""
        ...

    def held_webhook_deliveries(self, endpoint_id: str, limit: int = 50) -> list[str]:
        """The deliveries waiting for the endpoint, oldest first."""
        ...

    def release_webhook_delivery(self, delivery_id: str, at: float, entry: DeliveryLogEntry) -> bool:
        """A WAITING delivery becomes PENDING, due at ``at``. False if it was not WAITING."""
        ...

    def webhook_deliveries_since(self, since: float, limit: int = 500) -> list[WebhookDelivery]:
        """For the CLI only (a bounded scan): deliveries created at or after ``since``, oldest first."""
        ...

    # -- webhook endpoints (only those that have failed) ---------------------------------------------
    def get_webhook_endpoint(self, endpoint_id: str) -> WebhookEndpoint | None: ...

    def note_endpoint_failure(self, endpoint_id: str, origin: str, at: float) -> WebhookEndpoint:
        """A failed attempt: the endpoint's failing streak starts at ``at`` unless it is failing already."""
        ...

    def note_endpoint_success(self, endpoint_id: str, at: float) -> None:
        """A delivered attempt ends the endpoint's failing streak (nothing is written for a healthy one)."""
        ...

    def pause_endpoint(self, endpoint_id: str, at: float) -> bool:
        """True for the one caller that paused it; False if it was paused already (or unknown)."""
        ...

    def resume_endpoint(self, endpoint_id: str, at: float) -> bool:
        """Unpause and forget the failing streak; False if it was not paused."""
        ...

    # -- push events for tasks not (yet) known -------------------------------------------------------
    def note_early_event(self, event: EarlyEvent) -> bool: ...

    def due_early_events(self, now: float, limit: int = 20) -> list[EarlyEvent]: ...

    def recheck_early_event(self, task_id: str, at: float) -> None: ...

    def forget_early_event(self, task_id: str) -> None: ...

    # --- film runs (storyboards) ---
    def add_film_run(self, run: FilmRun, *, due_at: float | None = None) -> bool:
        """Store a new film run (with a safety-net due time); False if that run id exists already."""
        ...

    def get_film_run(self, run_id: str) -> FilmRun | None: ...

    def recent_film_runs(self, film: str | None = None, limit: int = 50) -> list[FilmRun]:
        """For the CLI only (a bounded scan), newest first: one film's runs, or every film's."""
        ...

    def move_film_run(
        self,
        run_id: str,
        expected: FilmStatus,
        new: FilmStatus,
        *,
        due_at: float | None = None,
        **changes: Any,
    ) -> bool:
        """``expected`` -> ``new`` with ``changes`` (``FILM_SETTABLE_FIELDS``) in one conditional write;
        the run's due time becomes ``due_at`` (None: none). False if the run was not in ``expected``."""
        ...

    def postpone_film_run(self, run_id: str, at: float) -> None: ...

    def due_film_runs(self, now: float, limit: int = 50) -> list[str]:
        """Run ids whose safety-net check is due (the poller advances them), oldest due first."""
        ...

    def link_shot(self, job_id: str, run_id: str) -> bool:
        """Add ``run_id`` to the job's film runs (once, however often called); False if no such job."""
        ...

    def claim_film_notification(self, run_id: str, *, now: float, until: float) -> bool: ...

    def mark_film_notified(self, run_id: str, at: float) -> None: ...


class Blobs(Protocol):
    """S3: the inbox (inputs, error reports) and the output bucket (videos, metadata)."""

    def list_folder(self, bucket: str, prefix: str) -> list[ObjectInfo]: ...

    def read(
        self, bucket: str, key: str, *, etag: str | None = None, max_bytes: int | None = None
    ) -> bytes: ...

    def presign_get(self, bucket: str, key: str, ttl_s: int) -> str: ...

    def put_json(self, bucket: str, key: str, data: dict[str, Any]) -> None: ...

    # files (the stitch function's ephemeral storage)
    def download_file(self, bucket: str, key: str, path: Path) -> int:
        """Write the object to ``path``; returns its size. ``StorageError`` if it cannot be read."""
        ...

    def upload_file(self, bucket: str, key: str, path: Path, *, content_type: str) -> int:
        """Store the file at ``path`` (multipart for large files); returns its size."""
        ...

    def head(self, bucket: str, key: str) -> ObjectHead | None: ...

    def digest_video(
        self, bucket: str, key: str, *, version_id: str | None = None
    ) -> tuple[str, int, str | None]:
        """sha256, size and what is wrong (None: a whole MP4 with a video track) of a stored video."""
        ...

    def store_video(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        expected_bytes: int | None,
        metadata: dict[str, str] | None = None,
    ) -> StoredVideo: ...


class StitchedFilm(Protocol):
    """What a stitch made: the film's frame count, length, size, soundtrack and its two pictures."""

    @property
    def total_frames(self) -> int: ...

    @property
    def duration_s(self) -> float: ...

    @property
    def audio_duration_s(self) -> float | None: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def poster_jpeg(self) -> bytes: ...

    @property
    def contact_sheet_png(self) -> bytes: ...


class FilmStitcher(Protocol):
    """Joins a film's clips (the media tooling: its own layer, only in the stitch function), and cuts the
    tails continued shots start from.

    ``stitch`` and ``cut`` raise ``ValueError`` for clips that cannot be joined (say which); ``verify`` returns the
    film's problems (empty: the film is what the clips and keyframes call for)."""

    def stitch(self, clips: Sequence[Path], out: Path, *, seam_blend_frames: int) -> StitchedFilm: ...

    def verify(self, film: Path, stitched: StitchedFilm, keyframes: Sequence[bytes]) -> list[str]: ...

    def frame_count(self, clip: Path) -> int:
        """The clip's video frames (``ValueError`` if it cannot be read)."""
        ...

    def cut(self, clip: Path, out: Path, *, start: int, stop: int | None = None, audio: bool = True) -> int:
        """Frames ``[start, stop)`` of ``clip`` (re-encoded, the sound cut alike) to ``out``: how many."""
        ...


class Pictures(Protocol):
    """A video's two pictures: its poster (JPEG) and its contact sheet (PNG)."""

    @property
    def poster_jpeg(self) -> bytes: ...

    @property
    def contact_sheet_png(self) -> bytes: ...


class ClipPictures(Protocol):
    """Makes a stored clip's pictures (the media tooling: its own layer, in the completion function).

    ``make`` reads the video file at ``video`` (streamed: only the frames it needs are kept) and returns
    its poster (the middle frame) and a one-row contact sheet (the first, middle and last frame, labelled
    "1"). Raises ``ValueError`` for a file that is not a readable video."""

    def make(self, video: Path) -> Pictures: ...


class Queues(Protocol):
    """Hand-offs between the functions (SQS)."""

    def recheck_drop_later(self, job_name: str, delay_s: int) -> None: ...

    def admit_waiting(self, model: str, *, lane: int = 0) -> None:
        """Admit ``model``'s waiting jobs soon, in an invocation of their own, through submit lane
        ``lane`` (0: the first, the one every other admission uses)."""
        ...

    def complete_job(self, job_id: str) -> None: ...

    def deliver_webhook(self, delivery_id: str) -> None: ...

    def stitch_film(self, run_id: str) -> None: ...


class Notifier(Protocol):
    """The deployment's notification topic (SNS)."""

    def publish(self, notification: Notification) -> None: ...


class Provider(Protocol):
    """The video provider's task API (DashScope)."""

    def key_refs(self) -> tuple[str, ...]:
        """One reference per API key configured (``inbetween.provider.client.api_key_ref``), in order:
        admission gives each its own submit lane."""
        ...

    def create_task(self, request: CreateTaskRequest, *, key_ref: str | None = None) -> TaskRef:
        """Create the task with the first API key, or the one ``key_ref`` names."""
        ...

    def get_task(self, task_id: str) -> TaskState: ...

    def list_tasks(
        self, *, start: datetime, end: datetime, model: str, page_no: int = 1, page_size: int = 10
    ) -> TaskPage: ...

    def iter_tasks(
        self, *, start: datetime, end: datetime, model: str, api_key_id: str | None = None
    ) -> Iterator[TaskSummary]: ...

    def cancel_task(self, task_id: str) -> None:
        """Cancel a task still PENDING. ``ProviderRejected`` (code ``UnsupportedOperation``) when it is
        not PENDING any more (running tasks cannot be cancelled); never retried by the client."""
        ...

    def close(self) -> None: ...


class QuotaSource(Protocol):
    """The account's live limits per model (list-quotas), cached; None when unknown (the published
    figures then apply). Never raises: an unreadable quota is not a reason to stop admitting."""

    def quota_for(self, model: str) -> ModelQuota | None: ...


class VideoSource(Protocol):
    """The provider's short-lived video links.

    ``open`` raises ``VideoLinkExpired`` when the link no longer answers (403/404/410) and
    ``VideoDownloadFailed`` (retryable) for anything else, while opening or while reading."""

    def open(self, url: str) -> AbstractContextManager[VideoDownload]: ...

    def close(self) -> None: ...


class WebhookSender(Protocol):
    """Signed webhook delivery behind the SSRF guard."""

    def check_destination(self, url: str) -> None:
        """Refuse (``UnsafeWebhookUrl``) a URL that can never be delivered to; a name that does not
        resolve now is not refused (delivery resolves, checks and pins it again)."""
        ...

    def deliver(self, url: str, msg_id: str, body: bytes, *, now: float) -> DeliveryResult:
        """One attempt. Raises ``UnsafeWebhookUrl`` when the guard refuses the destination."""
        ...

    def close(self) -> None: ...


class SecretSource(Protocol):
    def __call__(self) -> str: ...
