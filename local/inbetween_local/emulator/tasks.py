"""Task store and lifecycle: PENDING -> RUNNING -> SUCCEEDED / FAILED (or CANCELED from PENDING).

State moves on ``advance()``, which the server calls on every request and from a ticker thread, so a
``ManualClock`` gives deterministic timing. A task becomes SUCCEEDED only once its video is rendered.
"""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from inbetween.domain.catalog import (
    FIXED_DURATION_S,
    NEGATIVE_PROMPT_MAX_CHARS,
    PROMPT_MAX_CHARS,
    SEED_MAX,
    SEED_MIN,
    model_spec,
    output_size,
)

from .config import CreateRequest, Duration, EmulatorConfig, ErrorTiming, FaultOutcome, Faults
from .errors import ApiError, invalid_parameter, message_for
from .frames import Frame, FrameRejected, FrameUnavailable, check_image, is_supported_url, load_frame
from .media_models import LAST_FRAME, MediaModelFacts, media_model
from .render import Renderer, RenderJob
from .render_media import MediaRenderJob
from .uploads import OSS_PREFIX, OssUnavailable, UploadStore
from .wan27 import MediaRequest, MediaRequestReader, clip_seconds

CHINA_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")

# prompt_extend stands in for the provider's LLM rewrite: one of these, chosen by a hash of the prompt
_EXTENSIONS = (
    "Soft natural light, smooth continuous motion, cinematic depth of field, rich detail.",
    "The camera moves steadily and the scene transitions fluidly, with consistent colours and lighting.",
    "High detail, gentle motion blur, coherent subject identity from the first frame to the last.",
)


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"


TERMINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED})


def china_time(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, CHINA_TIME)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def parse_list_time(text: str) -> float:
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=CHINA_TIME).timestamp()
    except ValueError as error:
        raise invalid_parameter(f"Invalid time format: {text!r}, expected yyyyMMddHHmmss.") from error


def extend_prompt(prompt: str) -> str:
    sentence = _EXTENSIONS[int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % len(_EXTENSIONS)]
    return f"{prompt} {sentence}".strip()


@dataclass(frozen=True, slots=True)
class TaskSnapshot:
    task_id: str
    status: TaskStatus
    model: str
    api_key_id: str
    created_at: float
    scheduled_at: float | None
    ended_at: float | None
    code: str | None
    message: str | None
    orig_prompt: str
    actual_prompt: str | None
    resolution: str
    width: int
    height: int
    watermark: bool
    template: str | None
    # wan2.7: the asked duration, the input.media types, the first clip's whole seconds; kf2v: 5, (), 0
    duration: int = FIXED_DURATION_S
    media_types: tuple[str, ...] = ()
    input_video_duration: int = 0

    @property
    def audio_source(self) -> str | None:
        """wan2.7: "driving_audio" when the soundtrack is the given audio, else "generated"; kf2v: None."""
        if not self.media_types:
            return None
        return "driving_audio" if "driving_audio" in self.media_types else "generated"


@dataclass(slots=True)
class _PlannedFailure:
    code: str | None
    message: str | None
    at_end_of_pending: bool


@dataclass(slots=True)
class _Task:
    task_id: str
    request_id: str
    model: str
    api_key_id: str
    orig_prompt: str
    actual_prompt: str | None
    resolution: str
    watermark: bool
    template: str | None
    seed: int
    width: int
    height: int
    first: Frame | None
    last: Frame | None
    submit_at: float
    pending_for: float
    running_for: float
    failure: _PlannedFailure | None
    status: TaskStatus = TaskStatus.PENDING
    scheduled_at: float | None = None
    end_at: float | None = None
    code: str | None = None
    message: str | None = None
    render: Future[bytes] | None = None
    rendered_at: float | None = None
    video: bytes | None = None
    queries: int = 0
    downloads: int = 0
    # wan2.7 (media protocol)
    duration: int = FIXED_DURATION_S
    media_types: tuple[str, ...] = ()
    input_video_duration: int = 0
    media_job: MediaRenderJob | None = None

    @property
    def is_media(self) -> bool:
        return bool(self.media_types)

    def snapshot(self) -> TaskSnapshot:
        return TaskSnapshot(
            task_id=self.task_id,
            status=self.status,
            model=self.model,
            api_key_id=self.api_key_id,
            created_at=self.submit_at,
            scheduled_at=self.scheduled_at,
            ended_at=self.end_at,
            code=self.code,
            message=self.message,
            orig_prompt=self.orig_prompt,
            actual_prompt=self.actual_prompt,
            resolution=self.resolution,
            width=self.width,
            height=self.height,
            watermark=self.watermark,
            template=self.template,
            duration=self.duration,
            media_types=self.media_types,
            input_video_duration=self.input_video_duration,
        )


class _SlidingWindow:
    """Counts events in the last second per key; refuses an event past ``limit``."""

    def __init__(self) -> None:
        self._events: dict[str, deque[float]] = {}

    def admit(self, key: str, now: float, limit: float | None) -> bool:
        if limit is None:
            return True
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - 1.0:
            events.popleft()
        if len(events) >= limit:
            return False
        events.append(now)
        return True


@dataclass(slots=True)
class _Counters:
    creates_accepted: int = 0
    creates_rejected: dict[str, int] = field(default_factory=dict)
    queries: int = 0
    list_calls: int = 0
    cancels: int = 0
    downloads: int = 0
    quota_reads: int = 0


class TaskEngine:
    def __init__(
        self, config: EmulatorConfig, faults: Faults, renderer: Renderer, uploads: UploadStore
    ) -> None:
        self.config = config
        self.faults = faults
        self.renderer = renderer
        self.uploads = uploads
        self._media_reader = MediaRequestReader(config, uploads, self.now)
        self.on_task_finished: list[Callable[[TaskSnapshot], None]] = []
        self.counters = _Counters()
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.RLock()
        self._rng = random.Random(config.seed)
        self._submit_window = _SlidingWindow()
        self._query_window = _SlidingWindow()
        self._slot_freed_at: dict[str, float] = {}
        self._videos: dict[str, tuple[bytes, float]] = {}  # task id -> (mp4, link expiry)
        self._advancing = threading.local()

    def now(self) -> float:
        return self.config.clock()

    # --- create ---------------------------------------------------------------------------------
    def create(self, body: Any, api_key_id: str, *, oss_resolve: bool = False) -> _Task:
        """A create on the kf2v endpoint (``/services/aigc/image2video/video-synthesis``)."""
        if not isinstance(body, dict):
            raise invalid_parameter("The request body must be a JSON object.")
        model = body.get("model")
        if not model:
            raise ApiError("BadRequest.EmptyModel")
        if media_model(model) is not None:
            # a wan2.7 model on the kf2v path: the answer the guide gives for a model/endpoint mismatch
            raise invalid_parameter("url error, please check url!")
        spec = model_spec(model) if isinstance(model, str) else None
        if spec is None:
            raise invalid_parameter("Model not exist.")
        # the task's submit time (the list's gmt_create) is when the request arrived, not when the frames
        # were read: the provider answers a create at once and fetches the frames in the task
        received = self.now()
        with self._lock:
            if not self._submit_window.admit(model, received, self.faults.submit_rate_limit(model)):
                raise ApiError("Throttling.RateQuota")
        payload = body.get("input")
        if not isinstance(payload, dict) or not payload:
            raise ApiError("BadRequest.EmptyInput")
        parameters = body.get("parameters", {})
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, dict):
            raise invalid_parameter("parameters must be a JSON object.")

        prompt = _optional_text(payload, "prompt")
        negative_prompt = _optional_text(payload, "negative_prompt")
        template = _optional_text(payload, "template") or None
        first_url = _optional_text(payload, "first_frame_url")
        last_url = _optional_text(payload, "last_frame_url") or None
        if template is not None:
            if not spec.supports_templates:
                raise invalid_parameter(f"The template parameter is not supported by model {model}.")
            if template not in spec.templates:
                raise invalid_parameter(f"Template not supported: {template}.")
            if not first_url:
                raise invalid_parameter(
                    "Field required: input.first_frame_url (template mode needs the first frame; "
                    "last_frame_url alone is not accepted)."
                )
            last_url = None  # ignored in template mode, as the effect list says
        if not first_url:
            raise invalid_parameter("Field required: input.first_frame_url")
        for url in (first_url, last_url):
            if url is not None and url.startswith(OSS_PREFIX):
                if not oss_resolve:
                    raise ApiError(self.config.oss_unresolved_code)
            elif url is not None and not is_supported_url(url):
                raise ApiError("InvalidURL")

        resolution = parameters.get("resolution", spec.default_resolution)
        if resolution not in spec.resolutions:
            raise invalid_parameter(
                f"The resolution {resolution!r} is not supported by model {model}; "
                f"supported values: {', '.join(spec.resolutions)}."
            )
        duration = parameters.get("duration", FIXED_DURATION_S)
        if type(duration) is not int or duration != FIXED_DURATION_S:
            raise invalid_parameter(f"The duration must be {FIXED_DURATION_S}.")
        prompt_extend = _optional_bool(parameters, "prompt_extend", True)
        watermark = _optional_bool(parameters, "watermark", False)
        seed = parameters.get("seed")
        if seed is None:
            seed = self._rng.randint(SEED_MIN, SEED_MAX)
        elif type(seed) is not int or not SEED_MIN <= seed <= SEED_MAX:
            raise invalid_parameter(f"The seed must be an integer in [{SEED_MIN}, {SEED_MAX}].")

        marker_prompt = prompt
        # silently truncated, as the provider does
        prompt = prompt[:PROMPT_MAX_CHARS]
        negative_prompt = negative_prompt[:NEGATIVE_PROMPT_MAX_CHARS]
        del negative_prompt  # accepted and truncated; the rendering does not use it

        request = CreateRequest(
            model=model,
            prompt=marker_prompt,
            template=template,
            first_frame_url=first_url,
            last_frame_url=last_url,
            resolution=resolution,
            api_key_id=api_key_id,
        )
        failure: _PlannedFailure | None = None
        rule = self.faults.select_rule(request)
        if rule is not None:
            if rule.outcome is FaultOutcome.REJECT:
                raise ApiError(rule.code or "InternalError", rule.resolved_message(), rule.resolved_status())
            failure = _PlannedFailure(rule.code, rule.resolved_message(), at_end_of_pending=False)

        first = last = None
        try:
            first = self._load(first_url, model)
            last = self._load(last_url, model) if last_url else None
        except FrameRejected as rejected:
            if self.config.image_errors is ErrorTiming.SYNC:
                raise ApiError(rejected.code, rejected.message, 400) from rejected
            failure = _PlannedFailure(rejected.code, rejected.message, at_end_of_pending=True)
        except FrameUnavailable as unavailable:
            if self.config.download_errors is ErrorTiming.SYNC:
                raise ApiError(unavailable.code, unavailable.message, 400) from unavailable
            failure = _PlannedFailure(unavailable.code, unavailable.message, at_end_of_pending=True)

        width, height = output_size(first.width, first.height, resolution) if first else (0, 0)
        return self._admit(
            model,
            lambda: _Task(
                task_id=str(uuid.uuid4()),
                request_id=str(uuid.uuid4()),
                model=model,
                api_key_id=api_key_id,
                orig_prompt=prompt,
                actual_prompt=extend_prompt(prompt) if prompt_extend else None,
                resolution=resolution,
                watermark=watermark,
                template=template,
                seed=seed,
                width=width,
                height=height,
                first=first,
                last=last,
                submit_at=received,
                pending_for=self._draw(self.config.pending_s),
                running_for=self._draw(self.config.running_s),
                failure=failure,
            ),
        )

    def _admit(self, model: str, build: Callable[[], _Task]) -> _Task:
        """Register the task unless the model's concurrency (and its provider queue) is full."""
        with self._lock:
            # tasks that ended meanwhile are announced like any others (push events), after the lock
            ended = self._advance_locked(self.now())
            limit = self.faults.concurrency_limit(model)
            queue = self.faults.queue_limit(model)
            in_flight = sum(1 for t in self._tasks.values() if t.model == model and t.status not in TERMINAL)
            if limit is None:
                refused = False
            elif queue is not None:
                # a provider-side queue (wan2.7: 500): PENDING beyond the running ones, then refused
                refused = in_flight >= limit + queue
            else:
                refused = self.faults.concurrency_mode == "reject" and in_flight >= limit
            task = None if refused else build()
            if task is not None:
                self._tasks[task.task_id] = task
                self.counters.creates_accepted += 1
        self._notify(ended)
        if task is None:
            raise ApiError("Throttling.AllocationQuota")
        return task

    # --- create, media protocol (wan2.7) ----------------------------------------------------------
    def create_media(
        self, body: dict[str, Any], api_key_id: str, facts: MediaModelFacts, *, oss_resolve: bool = False
    ) -> _Task:
        """A create on ``/services/aigc/video-generation/video-synthesis`` for a media model."""
        model = facts.name
        received = self.now()
        with self._lock:
            if not self._submit_window.admit(model, received, self.faults.submit_rate_limit(model)):
                raise ApiError("Throttling.RateQuota")
        request = self._media_reader.read(body, facts, oss_resolve=oss_resolve)
        failure = (
            _PlannedFailure(request.failure.code, request.failure.message, at_end_of_pending=True)
            if request.failure is not None
            else None
        )
        fault_request = CreateRequest(
            model=model,
            prompt=request.marker_prompt,
            template=None,
            first_frame_url=request.url_of("first_frame") or request.url_of("first_clip") or "",
            last_frame_url=request.url_of(LAST_FRAME),
            resolution=request.resolution,
            api_key_id=api_key_id,
            media=request.media,
            duration=request.duration,
        )
        rule = self.faults.select_rule(fault_request)
        if rule is not None:
            if rule.outcome is FaultOutcome.REJECT:
                raise ApiError(rule.code or "InternalError", rule.resolved_message(), rule.resolved_status())
            if failure is None:
                failure = _PlannedFailure(rule.code, rule.resolved_message(), at_end_of_pending=False)
        seed = request.seed if request.seed is not None else self._rng.randint(SEED_MIN, SEED_MAX)
        return self._admit(model, lambda: self._media_task(request, api_key_id, received, seed, failure))

    def _media_task(
        self,
        request: MediaRequest,
        api_key_id: str,
        received: float,
        seed: int,
        failure: _PlannedFailure | None,
    ) -> _Task:
        source = request.first or request.clip
        width, height = output_size(source.width, source.height, request.resolution) if source else (0, 0)
        clip_frames = 0
        if request.clip is not None:
            clip_frames = min(request.duration * 30, round(request.clip.duration_s * 30))
        job = None
        if failure is None and source is not None:
            job = MediaRenderJob(
                width=width,
                height=height,
                duration_s=request.duration,
                first=request.first.data if request.first else None,
                last=request.last.data if request.last else None,
                clip=request.clip.data if request.clip else None,
                clip_frames=clip_frames,
                audio=request.audio.data if request.audio else None,
                watermark=request.watermark,
            )
        extended = request.prompt_extend and self.config.media_actual_prompt
        return _Task(
            task_id=str(uuid.uuid4()),
            request_id=str(uuid.uuid4()),
            model=request.model,
            api_key_id=api_key_id,
            orig_prompt=request.prompt,
            actual_prompt=extend_prompt(request.prompt) if extended else None,
            resolution=request.resolution,
            watermark=request.watermark,
            template=None,
            seed=seed,
            width=width,
            height=height,
            first=None,
            last=None,
            submit_at=received,
            pending_for=self._draw(self.config.pending_s),
            running_for=self._draw(self.config.running_s),
            failure=failure,
            duration=request.duration,
            media_types=request.media_types,
            input_video_duration=clip_seconds(request.clip) if request.clip else 0,
            media_job=job,
        )

    def _load(self, url: str, model: str) -> Frame:
        if url.startswith(OSS_PREFIX):
            try:
                data = self.uploads.resolve(url, model, self.now()).data
            except OssUnavailable as lapsed:
                raise FrameUnavailable(lapsed.message) from lapsed
            return check_image(data, self.config.image_limits)
        return load_frame(
            url,
            limits=self.config.image_limits,
            allow_remote=self.config.allow_remote_fetch,
            timeout_s=self.config.fetch_timeout_s,
        )

    def _draw(self, duration: Duration) -> float:
        if isinstance(duration, tuple):
            low, high = duration
            with self._lock:
                value = self._rng.uniform(low, high)
        else:
            value = float(duration)
        return value * self.config.time_scale

    # --- lifecycle ------------------------------------------------------------------------------
    def advance(self) -> None:
        finished: list[TaskSnapshot] = []
        with self._lock:
            finished = self._advance_locked(self.now())
        self._notify(finished)

    def _advance_locked(self, now: float) -> list[TaskSnapshot]:
        self._advancing.active = True
        try:
            return self._advance_inner(now)
        finally:
            self._advancing.active = False

    def _advance_inner(self, now: float) -> list[TaskSnapshot]:
        finished: list[TaskSnapshot] = []
        for task_id in [
            t.task_id for t in self._tasks.values() if now - t.submit_at > self.config.task_ttl_s
        ]:
            del self._tasks[task_id]
        for task_id in [key for key, (_, expires) in self._videos.items() if now > expires]:
            del self._videos[task_id]
        changed = True
        while changed:
            changed = False
            for task in sorted(self._tasks.values(), key=lambda t: t.submit_at):
                if task.status is TaskStatus.PENDING and now >= task.submit_at + task.pending_for:
                    changed |= self._try_start(task, now, finished)
                elif task.status is TaskStatus.RUNNING:
                    changed |= self._try_finish(task, now, finished)
        return finished

    def _try_start(self, task: _Task, now: float, finished: list[TaskSnapshot]) -> bool:
        ready_at = task.submit_at + task.pending_for
        if task.failure is not None and task.failure.at_end_of_pending:
            task.scheduled_at = ready_at
            self._end(task, TaskStatus.FAILED, ready_at, finished, task.failure.code, task.failure.message)
            return True
        limit = self.faults.concurrency_limit(task.model)
        if limit is not None:
            running = sum(
                1 for t in self._tasks.values() if t.model == task.model and t.status is TaskStatus.RUNNING
            )
            if running >= limit:
                return False
        task.status = TaskStatus.RUNNING
        task.scheduled_at = min(now, max(ready_at, self._slot_freed_at.get(task.model, ready_at)))
        if task.failure is None and task.media_job is not None:
            task.render = self.renderer.submit(task.media_job)
            task.render.add_done_callback(lambda _f, task_id=task.task_id: self._render_done(task_id))
        elif task.failure is None and task.first is not None:
            job = RenderJob(
                first=task.first.data,
                last=task.last.data if task.last else None,
                width=task.width,
                height=task.height,
                watermark=task.watermark,
                template=task.template,
            )
            task.render = self.renderer.submit(job)
            task.render.add_done_callback(lambda _f, task_id=task.task_id: self._render_done(task_id))
        return True

    def _render_done(self, task_id: str) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None and task.rendered_at is None:
                task.rendered_at = self.now()
            # a cache hit completes at once, inside advance(): its loop picks the task up again
            if getattr(self._advancing, "active", False):
                return
        self.advance()

    def _try_finish(self, task: _Task, now: float, finished: list[TaskSnapshot]) -> bool:
        assert task.scheduled_at is not None  # noqa: S101 - only scheduled tasks get here; narrows the type
        due = task.scheduled_at + task.running_for
        if now < due:
            return False
        if task.failure is not None:
            self._end(task, TaskStatus.FAILED, due, finished, task.failure.code, task.failure.message)
            return True
        if task.render is None or not task.render.done() or task.rendered_at is None:
            return False
        error = task.render.exception()
        if error is not None:
            self._end(
                task, TaskStatus.FAILED, max(due, task.rendered_at), finished, "InternalError.Algo", None
            )
            return True
        task.video = task.render.result()
        end_at = max(due, task.rendered_at)
        self._videos[task.task_id] = (task.video, self.link_expiry(end_at))
        self._end(task, TaskStatus.SUCCEEDED, end_at, finished)
        return True

    def link_expiry(self, end_at: float) -> int:
        return int(end_at + self.config.video_url_ttl_s)

    def _end(
        self,
        task: _Task,
        status: TaskStatus,
        at: float,
        finished: list[TaskSnapshot],
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        if status is TaskStatus.FAILED and code is not None and message is None:
            message = message_for(code)
        was_running = task.status is TaskStatus.RUNNING
        task.status, task.end_at, task.code, task.message = status, at, code, message
        task.first = task.last = None  # the frames are no longer needed
        task.media_job = None
        if was_running:
            self._slot_freed_at[task.model] = max(at, self._slot_freed_at.get(task.model, at))
        finished.append(task.snapshot())

    def _notify(self, finished: list[TaskSnapshot]) -> None:
        for snapshot in finished:
            for callback in list(self.on_task_finished):
                callback(snapshot)

    # --- queries ----------------------------------------------------------------------------------
    def admit_query(self) -> bool:
        with self._lock:
            return self._query_window.admit("account", self.now(), self.faults.query_rate_limit())

    def find(self, task_id: str) -> _Task | None:
        self.advance()
        with self._lock:
            return self._tasks.get(task_id)

    def cancel(self, task_id: str) -> None:
        finished: list[TaskSnapshot] = []
        with self._lock:
            finished += self._advance_locked(self.now())  # announced too, like any other end
            task = self._tasks.get(task_id)
            cancelable = task is not None and task.status is TaskStatus.PENDING
            if cancelable:
                self._end(task, TaskStatus.CANCELED, self.now(), finished)
                self.counters.cancels += 1
        self._notify(finished)
        if not cancelable:
            raise ApiError("UnsupportedOperation")

    def list_tasks(
        self,
        *,
        start: float | None,
        end: float | None,
        model_name: str | None,
        status: str | None,
        api_key_id: str | None,
        region: str | None,
    ) -> list[_Task]:
        self.advance()
        now = self.now()
        end = now if end is None else end
        start = end - 24 * 3600 if start is None else start
        if end - start > 24 * 3600:
            raise invalid_parameter("The time span between start_time and end_time must not exceed 24 hours.")
        if region is not None and region != self.config.region:
            return []
        with self._lock:
            chosen = [
                task
                for task in self._tasks.values()
                if start <= task.submit_at <= end
                and (model_name is None or task.model == model_name)
                and (status is None or task.status == status)
                and (api_key_id is None or task.api_key_id == api_key_id)
            ]
        return sorted(chosen, key=lambda t: t.submit_at, reverse=True)

    def snapshots(self) -> dict[str, TaskSnapshot]:
        self.advance()
        with self._lock:
            return {task_id: task.snapshot() for task_id, task in self._tasks.items()}

    def video(self, task_id: str) -> bytes | None:
        """The MP4 of a task, kept until its link expires (even past the task's own 24 h)."""
        with self._lock:
            stored = self._videos.get(task_id)
            task = self._tasks.get(task_id)
            if task is not None:
                task.downloads += 1
            return stored[0] if stored else None

    def idle(self) -> bool:
        """No task waiting on a render (a finished render counts once its completion was recorded)."""
        with self._lock:
            return all(t.render is None or t.rendered_at is not None for t in self._tasks.values())


def _optional_text(container: dict[str, Any], key: str) -> str:
    value = container.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid_parameter(f"input.{key} must be a string.")
    return value


def _optional_bool(container: dict[str, Any], key: str, default: bool) -> bool:
    value = container.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_parameter(f"parameters.{key} must be a boolean.")
    return value
