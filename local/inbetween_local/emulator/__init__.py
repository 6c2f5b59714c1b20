"""Local emulator of DashScope's Wan image-to-video APIs: the first-and-last-frame models (kf2v) and
wan2.7-i2v (``input.media``: first frame, last frame, driving audio, first clip).

A real HTTP server on 127.0.0.1 that the official ``dashscope`` SDK and the guide's curl samples use
unchanged, base URL aside::

    with EmulatorServer(EmulatorConfig(api_keys=("sk-test",))) as emulator:
        dashscope.base_http_api_url = emulator.base_url   # http://127.0.0.1:PORT/api/v1

Endpoints under ``/api/v1``: ``POST /services/aigc/image2video/video-synthesis`` (kf2v create),
``POST /services/aigc/video-generation/video-synthesis`` (wan2.7-i2v and ``wan2.7-i2v-2026-04-25``),
``GET /tasks/{id}``, ``GET /tasks`` and ``/tasks/`` (list), ``POST /tasks/{id}/cancel``,
``GET /uploads?action=getPolicy&model=`` (temporary storage), ``GET /quotas`` and ``GET /models/limits``
(list-quotas); plus ``POST /oss-upload`` (the upload host getPolicy names) and
``GET|HEAD /results/{id}.mp4?Expires=&OSSAccessKeyId=&Signature=`` standing in for the OSS result host.

Choices where the provider's documentation is silent or inconsistent (see the reference notes):

* Missing ``X-DashScope-Async: enable``: the documented message "current user api does not support
  synchronous calls" with code ``AccessDenied``; the HTTP status 403 is assumed.
* Over the concurrency limit in ``ConcurrencyMode.REJECT``: 429 ``Throttling.AllocationQuota``
  ("Allocated quota exceeded, please increase your quota limit."); in-flight = PENDING + RUNNING.
  ``ConcurrencyMode.QUEUE`` accepts and holds tasks PENDING until fewer than the limit are RUNNING.
  Submit rate: 429 ``Throttling.RateQuota`` over ``submit_rps`` creates per model in any 1 s window.
  Task get/list/cancel share one 20 QPS window per account (all configured keys are one account).
* Wrong endpoint (a kf2v model posted to ``/services/aigc/video-generation/video-synthesis``, as old SDKs
  did): 400 ``InvalidParameter`` "url error, please check url!" (only the message is documented).
  Unknown model anywhere: 400 ``InvalidParameter`` "Model not exist.".
* Image problems: download failures (refused non-loopback host, HTTP error, timeout) are accepted and the
  task goes FAILED at the end of PENDING with ``InvalidParameter`` / "Unable to download the media
  resource" (``download_errors=ErrorTiming.ASYNC``); format problems (unsupported or unreadable format:
  ``InvalidParameter.DataInspection``; alpha PNG, sides, > 10 MB: ``InvalidParameter``) answer 400 at
  create (``image_errors=ErrorTiming.SYNC``). Both are configurable, since users report both behaviours.
* Image side limits: the newest reference's [240, 8000] (``IMAGE_LIMITS``) by default because it is the
  newest published version; ``image_limits=STRICT_IMAGE_LIMITS`` switches to the older [360, 2000].
* Prompt > 800 characters and negative_prompt > 500 are truncated silently, as documented.
  ``prompt_extend`` (default true) appends a deterministic descriptive sentence to form ``actual_prompt``;
  with prompt_extend false ``actual_prompt`` is omitted. ``orig_prompt`` is always returned.
  Template mode (wanx2.1-kf2v-plus only) ignores ``last_frame_url`` and the prompt, as the effect list says.
* Times: ``submit_time`` always, ``scheduled_time`` from RUNNING, ``end_time`` only in terminal states, as
  "YYYY-MM-DD HH:MM:SS.mmm" in China time (UTC+8): the docs give no zone and their examples look like
  Beijing local time. The list endpoint uses epoch milliseconds and reads ``start_time``/``end_time``
  (yyyyMMddHHmmss) in the same UTC+8 zone; its span may not exceed 24 h.
* ``usage`` only on SUCCEEDED: ``SR`` (480/720/1080) for 2.2 models, ``video_ratio: "standard"`` for 2.1.
* Task ids answer for ``task_ttl_s`` (24 h) after submission, then ``UNKNOWN`` exactly like an unknown id.
  ``video_url`` is valid ``video_url_ttl_s`` (24 h) after the task ends; after that the result host
  answers like OSS: 403 XML ``AccessDenied`` "Request has expired."; a tampered link answers 403
  ``SignatureDoesNotMatch``.
* Injected 503s use code ``ServiceUnavailable`` (no documented code); injected 500s ``InternalError``.
* ``IPInfringementSuspect`` is answered with 400 (assumed, like DataInspectionFailed).
* Temporary storage (wan27-i2v.md §7.5-7.6): getPolicy answers a signed policy whose ``upload_host`` is
  this server's ``/oss-upload``; uploads are checked like OSS PostObject (signature, key in the issued
  directory, policy expiry, size, no overwrite). ``oss://`` inputs need
  ``X-DashScope-OssResourceResolve: enable`` (else ``oss_unresolved_code``, default ``InvalidURL``: the
  temporary-storage page names two other codes for it), live 48 h and answer only the model named at
  getPolicy; otherwise the task fails like a download ("Don't have authorization ...").
* wan2.7 (wan27-i2v.md; ``wan27.py`` and ``render_media.py``): the six media combinations only, each type
  once; 720P/1080P (default 1080P), whole durations 2..15 (default 5, a continuation's clip included);
  prompt 5000 / negative 500 characters, truncated; images <= 20 MB with aspect 1:8..8:1, wav/mp3 audio
  of 2..30 s <= 15 MB, mp4/mov clips of 2..10 s, sides [240, 4096], <= 100 MB. Base64 for images only
  unless ``media_data_uris``. Which refusals answer 400 and which end FAILED is undocumented: a switch per
  ``MediaRule`` (``media_error_timing``); a missing ``input.media`` is accepted then FAILED
  "Field required: input.media", as observed; the rest answer 400 ``InvalidParameter`` by default.
  A continuation's duration must exceed its clip (our rule). Output: H.264 MP4, 30 fps, the asked
  seconds, AAC sound (the driving audio, cut or followed by silence, else a 440 Hz tone); the size rule
  with 1080P = 1920*1080 (assumed). ``usage``: duration, input/output_video_duration (the clip's whole
  seconds as input), video_count, SR; no ``actual_prompt`` (``media_actual_prompt`` returns it).
  Quotas: 5 creates/s, 5 running, then a provider queue of 500 PENDING tasks (``Faults.queue_limits``),
  past which creates get 429 ``Throttling.AllocationQuota`` (unconfirmed).
* list-quotas (§5.2, secondary sources): both paths, ``model`` exact, ``name`` fuzzy, paging; the figures
  are ``Faults.max_concurrent``/``submit_rps``/``queue_limits`` overrides or the published ones.
* Not emulated: workspaces, regions other than the configured one.

Timing: lifecycle durations (``pending_s``, ``running_s``, fixed or a seeded (low, high) draw) are
provider seconds multiplied by ``time_scale``; TTLs are not scaled. All times come from the injectable
``clock`` (``ManualClock`` for deterministic tests). A task becomes SUCCEEDED only when its video is
rendered (PyAV/libx264, 2 worker threads, cached by inputs).

Faults and quotas live in ``Faults`` (``emulator.faults``), changeable while running; a prompt containing
``[fail:CODE]``, ``[fail]`` (no code) or ``[reject:CODE]`` selects a fault without any setup.
"""

from .config import (
    ConcurrencyMode,
    CreateRequest,
    EmulatorConfig,
    ErrorTiming,
    FaultOutcome,
    FaultRule,
    Faults,
    ManualClock,
    MediaRule,
)
from .errors import KNOWN_ERRORS, ApiError
from .push import EventSender, PushConfig, PushStats
from .server import EmulatorServer, EmulatorStats, TaskCounters, TaskInfo, api_key_id_for
from .tasks import TaskSnapshot, TaskStatus

__all__ = [
    "KNOWN_ERRORS",
    "ApiError",
    "ConcurrencyMode",
    "CreateRequest",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorStats",
    "EventSender",
    "ErrorTiming",
    "FaultOutcome",
    "FaultRule",
    "Faults",
    "ManualClock",
    "MediaRule",
    "PushConfig",
    "PushStats",
    "TaskCounters",
    "TaskInfo",
    "TaskSnapshot",
    "TaskStatus",
    "api_key_id_for",
]
