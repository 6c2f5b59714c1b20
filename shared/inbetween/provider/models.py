"""Typed shapes of the DashScope video task APIs (kf2v and wan2.7): what we send and what we read back.

Each ``from_api`` reads only the fields we use and ignores the rest, so new provider fields never break a
poll. Missing optional fields become ``None``. A structurally wrong body (no task id, a status we do not
know) raises ``ValueError``; the client turns that into a retryable ``ProviderUnavailable``.

Times: the task query returns ``"YYYY-MM-DD HH:MM:SS.mmm"`` with no zone. The documented examples are
China local time, so we read them as UTC+8 (China has no daylight saving) and return aware datetimes in UTC.
The task list returns epoch milliseconds, also returned as aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, TypeVar

from inbetween.domain import catalog
from inbetween.domain.catalog import model_spec
from inbetween.domain.models import JobSpec

_N = TypeVar("_N", int, float)

CHINA_TZ = timezone(timedelta(hours=8), "UTC+08:00")

# Frame URLs are often data URIs of several megabytes; reprs and logs show only their head.
_REPR_URL_CHARS = 64


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    # the task does not exist, or is older than the 24 h the provider keeps it
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        return self not in (TaskStatus.PENDING, TaskStatus.RUNNING)


def shorten(value: str | None, limit: int = _REPR_URL_CHARS) -> str | None:
    """``value`` cut to ``limit`` characters, with the full length noted (for reprs and log lines)."""
    if value is None or len(value) <= limit:
        return value
    return f"{value[:limit]}...({len(value)} chars)"


# the request's URL field of each media role
_URL_FIELDS = {
    catalog.FIRST: "first_frame_url",
    catalog.LAST: "last_frame_url",
    catalog.AUDIO: "audio_url",
    catalog.FIRST_CLIP: "first_clip_url",
}


@dataclass(frozen=True, slots=True, repr=False)
class CreateTaskRequest:
    """One create call. The body's shape comes from the catalog entry of ``model`` (kf2v: frame URL
    fields; wan2.7: ``input.media``); an unknown model is built as kf2v (validation refuses it anyway).

    Media by role: ``first_frame_url``/``last_frame_url`` (images), ``audio_url`` (wan2.7's driving
    audio) and ``first_clip_url`` (wan2.7's first clip). ``None`` means the task has no such input.
    """

    model: str
    first_frame_url: str | None = None
    last_frame_url: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    template: str | None = None
    resolution: str | None = None
    duration: int = catalog.FIXED_DURATION_S
    prompt_extend: bool | None = None
    watermark: bool | None = None
    seed: int | None = None
    audio_url: str | None = None
    first_clip_url: str | None = None

    @classmethod
    def for_spec(
        cls,
        spec: JobSpec,
        *,
        region: str,
        media: Mapping[str, str | None] | None = None,
        first_frame_url: str | None = None,
        last_frame_url: str | None = None,
    ) -> CreateTaskRequest:
        """The one place a job's spec becomes the create request (intake validates with it before paying,
        admission sends it), for ``region``'s name of the model.

        ``media`` maps roles ("first", "last", "audio", "first_clip") to URLs; ``None`` values are left
        out. ``first_frame_url``/``last_frame_url`` are the same as the roles "first"/"last" (the older
        form of the call); giving a role both ways is a programming error. The duration is the spec's, or
        the model's default. An effect template's video follows the template, not a prompt, so none is
        sent (the validator refuses a template with a last frame)."""
        urls: dict[str, str | None] = dict(media or {})
        unknown = sorted(set(urls) - set(_URL_FIELDS))
        if unknown:
            raise ValueError(f"unknown media roles {unknown}; use {sorted(_URL_FIELDS)}")
        for role, url in ((catalog.FIRST, first_frame_url), (catalog.LAST, last_frame_url)):
            if url is None:
                continue
            if urls.get(role) not in (None, url):
                raise ValueError(f"the {role!r} URL was given both in media and as a keyword")
            urls[role] = url
        model = model_spec(spec.model)
        duration = spec.duration
        if duration is None:
            duration = model.default_duration if model else catalog.FIXED_DURATION_S
        return cls(
            model=catalog.provider_model_name(spec.model, region),
            first_frame_url=urls.get(catalog.FIRST),
            last_frame_url=urls.get(catalog.LAST),
            audio_url=urls.get(catalog.AUDIO),
            first_clip_url=urls.get(catalog.FIRST_CLIP),
            prompt=None if spec.template else spec.prompt,
            negative_prompt=spec.negative_prompt,
            template=spec.template,
            resolution=spec.resolution,
            duration=duration,
            prompt_extend=spec.prompt_extend,
            watermark=spec.watermark,
            seed=spec.seed,
        )

    @property
    def shape(self) -> catalog.RequestShape:
        spec = model_spec(self.model)
        return spec.shape if spec else catalog.RequestShape.KF2V

    @property
    def create_path(self) -> str:
        """The path (under ``/api/v1``) this request is posted to."""
        spec = model_spec(self.model)
        return spec.create_path if spec else catalog.KF2V_CREATE_PATH

    @property
    def media(self) -> dict[str, str]:
        """The inputs the request has, by role (an empty string counts: validation refuses it)."""
        return {role: url for role, name in _URL_FIELDS.items() if (url := getattr(self, name)) is not None}

    @staticmethod
    def url_field(role: str) -> str:
        """The request field holding ``role``'s URL (for messages: "first_frame_url", "audio_url", ...)."""
        return _URL_FIELDS[role]

    @property
    def uses_oss_urls(self) -> bool:
        """Whether an input is an ``oss://`` temporary upload (the create call must then ask the provider
        to resolve it, header ``X-DashScope-OssResourceResolve: enable``)."""
        return any(url.lower().startswith("oss://") for url in self.media.values())

    def to_body(self) -> dict[str, Any]:
        """The JSON body the API reference documents for the model's shape. ``None`` fields are left out
        (the provider's default applies). ``parameters`` is always present, possibly empty, as the
        official SDK sends it."""
        if self.shape is catalog.RequestShape.I2V_MEDIA:
            return self._media_body()
        input_fields = {
            "first_frame_url": self.first_frame_url,
            "last_frame_url": self.last_frame_url,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "template": self.template,
        }
        parameter_fields = {
            "resolution": self.resolution,
            # 5 s is the only value and the provider's default: leaving it out keeps the body identical
            # to the documented curl examples. Any other value is sent so the provider can reject it.
            "duration": None if self.duration == catalog.FIXED_DURATION_S else self.duration,
            "prompt_extend": self.prompt_extend,
            "watermark": self.watermark,
            "seed": self.seed,
        }
        return {
            "model": self.model,
            "input": {key: value for key, value in input_fields.items() if value is not None},
            "parameters": {key: value for key, value in parameter_fields.items() if value is not None},
        }

    def _media_body(self) -> dict[str, Any]:
        """wan2.7's body (A1 §1.3): the inputs as ``input.media`` items, in the order of the reference's
        samples; the duration always sent, as an integer (no template: the model has none)."""
        media = self.media
        items = [
            {"type": kind, "url": media[role]} for role, kind in catalog.MEDIA_TYPES.items() if role in media
        ]
        input_fields: dict[str, Any] = {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "media": items,
        }
        parameter_fields = {
            "resolution": self.resolution,
            "duration": self.duration,
            "prompt_extend": self.prompt_extend,
            "watermark": self.watermark,
            "seed": self.seed,
        }
        return {
            "model": self.model,
            "input": {key: value for key, value in input_fields.items() if value is not None},
            "parameters": {key: value for key, value in parameter_fields.items() if value is not None},
        }

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                value = shorten(value)
            shown.append(f"{f.name}={value!r}")
        return f"CreateTaskRequest({', '.join(shown)})"


@dataclass(frozen=True, slots=True)
class Usage:
    """What a finished task used. kf2v: ``video_duration``, ``video_count``, and ``SR`` (2.2) or
    ``video_ratio`` (2.1). wan2.7 (A1 §3.3): ``duration`` (the billed seconds), ``input_video_duration``
    (the first clip's seconds, 0 without one), ``output_video_duration``, ``video_count`` and ``SR``; its
    SDK adds ``video_duration: 0``, which is not the length."""

    video_duration: int | None = None
    video_count: int | None = None
    sr: int | None = None  # 2.2 models and wan2.7: 480 / 720 / 1080
    video_ratio: str | None = None  # 2.1 models: "standard"
    duration: float | None = None  # wan2.7: billed seconds (continuation: including the first clip)
    input_video_duration: float | None = None
    output_video_duration: float | None = None

    @property
    def billed_seconds(self) -> float | None:
        """The seconds the bill counts: wan2.7's ``duration`` when given, else kf2v's ``video_duration``."""
        if self.duration is not None:
            return self.duration
        return self.video_duration

    @classmethod
    def from_api(cls, usage: Any) -> Usage | None:
        if not isinstance(usage, Mapping):
            return None
        return cls(
            video_duration=_int_or_none(usage.get("video_duration")),
            video_count=_int_or_none(usage.get("video_count")),
            sr=_int_or_none(usage.get("SR", usage.get("sr"))),
            video_ratio=_str_or_none(usage.get("video_ratio")),
            duration=_seconds_or_none(usage.get("duration")),
            input_video_duration=_seconds_or_none(usage.get("input_video_duration")),
            output_video_duration=_seconds_or_none(usage.get("output_video_duration")),
        )

    def to_api_dict(self) -> dict[str, Any]:
        """The fields that were given, under the provider's names (for metadata and notifications)."""
        named = {
            "duration": self.duration,
            "input_video_duration": self.input_video_duration,
            "output_video_duration": self.output_video_duration,
            "video_duration": self.video_duration,
            "video_count": self.video_count,
            "SR": self.sr,
            "video_ratio": self.video_ratio,
        }
        return {key: value for key, value in named.items() if value is not None}


@dataclass(frozen=True, slots=True)
class TaskRef:
    """What task creation returns."""

    task_id: str
    task_status: TaskStatus
    request_id: str | None = None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> TaskRef:
        output = _output_of(body)
        return cls(
            task_id=_required_str(output, "task_id"),
            # the create response always says PENDING; tolerate its absence
            task_status=_status(output.get("task_status") or TaskStatus.PENDING),
            request_id=_str_or_none(body.get("request_id")),
        )


@dataclass(frozen=True, slots=True)
class TaskState:
    """One task as ``GET /tasks/{id}`` describes it. ``code``/``message`` appear only on failure, and a
    FAILED task without a code is normal (the provider sometimes gives none)."""

    task_id: str
    status: TaskStatus
    request_id: str | None = None
    submit_time: datetime | None = None
    scheduled_time: datetime | None = None
    end_time: datetime | None = None
    video_url: str | None = None
    orig_prompt: str | None = None
    actual_prompt: str | None = None
    code: str | None = None
    message: str | None = None
    usage: Usage | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is TaskStatus.SUCCEEDED and bool(self.video_url)

    @property
    def billed_seconds(self) -> float | None:
        """The seconds the provider bills this task for (usage is counted only for successful tasks)."""
        return self.usage.billed_seconds if self.usage is not None else None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> TaskState:
        output = _output_of(body)
        return cls(
            task_id=_required_str(output, "task_id"),
            status=_status(output.get("task_status")),
            request_id=_str_or_none(body.get("request_id")),
            submit_time=parse_provider_time(output.get("submit_time")),
            scheduled_time=parse_provider_time(output.get("scheduled_time")),
            end_time=parse_provider_time(output.get("end_time")),
            # the SDK shows "" on failure; an empty URL is no URL
            video_url=_str_or_none(output.get("video_url")),
            orig_prompt=_str_or_none(output.get("orig_prompt")),
            actual_prompt=_str_or_none(output.get("actual_prompt")),
            code=_str_or_none(output.get("code")),
            message=_str_or_none(output.get("message")),
            usage=Usage.from_api(body.get("usage")),
        )


@dataclass(frozen=True, slots=True)
class TaskSummary:
    """One row of the task list (``GET /tasks``): times are epoch milliseconds there."""

    task_id: str
    status: TaskStatus
    model_name: str | None
    gmt_create: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    api_key_id: str | None = None
    request_id: str | None = None
    region: str | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> TaskSummary:
        gmt_create = _epoch_ms(item.get("gmt_create"))
        if gmt_create is None:
            raise ValueError("task list entry without a gmt_create time")
        return cls(
            task_id=_required_str(item, "task_id"),
            status=_status(item.get("status", item.get("task_status"))),
            model_name=_str_or_none(item.get("model_name")),
            gmt_create=gmt_create,
            start_time=_epoch_ms(item.get("start_time")),
            end_time=_epoch_ms(item.get("end_time")),
            api_key_id=_str_or_none(item.get("api_key_id")),
            request_id=_str_or_none(item.get("request_id")),
            region=_str_or_none(item.get("region")),
        )


@dataclass(frozen=True, slots=True)
class TaskPage:
    total: int
    page_no: int
    page_size: int
    total_page: int
    tasks: tuple[TaskSummary, ...]
    request_id: str | None = None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> TaskPage:
        # the raw API puts the page at the top level; tolerate the SDK's "output" wrapping too
        output = body.get("output")
        page: Mapping[str, Any] = output if isinstance(output, Mapping) else body
        items = page.get("data") or []
        if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
            raise ValueError("task list 'data' is not a list of objects")
        tasks = tuple(TaskSummary.from_api(item) for item in items)
        page_size = _int_or_none(page.get("page_size")) or max(len(tasks), 1)
        total = _int_or_none(page.get("total"))
        return cls(
            total=total if total is not None else len(tasks),
            page_no=_int_or_none(page.get("page_no")) or 1,
            page_size=page_size,
            total_page=_int_or_none(page.get("total_page")) or 1,
            tasks=tasks,
            request_id=_str_or_none(body.get("request_id")),
        )


@dataclass(frozen=True, slots=True)
class ModelQuota:
    """The account's live limits for one model, from list-quotas (reference wan27-i2v.md §5.2).

    ``concurrency``: tasks in flight (``async_user_concurrency_limit``); ``submit_per_s``: creates per
    second (``request_limit`` over ``request_limit_period`` seconds); ``queue``: tasks the provider holds
    PENDING beyond the running ones (``async_user_queue_limit``). Each is the tightest of the account cap
    (``model_limit``) and the workspace override (``workspace_limit``); ``None`` when no row says."""

    model: str
    concurrency: int | None
    submit_per_s: float | None
    queue: int | None

    @classmethod
    def from_rows(cls, body: Mapping[str, Any], model: str) -> ModelQuota | None:
        """The quota of ``model`` (exact name) in a list-quotas answer; None when no row names it."""
        output = body.get("output")
        rows = output.get("quotas") if isinstance(output, Mapping) else None
        if not isinstance(rows, list):
            raise ValueError("list-quotas answer has no 'output.quotas' list")
        limits = [
            limit
            for row in rows
            if isinstance(row, Mapping) and row.get("model") == model
            for limit in (row.get("model_limit"), row.get("workspace_limit"))
            if isinstance(limit, Mapping)
        ]
        if not limits:
            return None
        return cls(
            model=model,
            concurrency=_tightest(
                _positive_int(limit.get("async_user_concurrency_limit")) for limit in limits
            ),
            submit_per_s=_tightest(_rate(limit) for limit in limits),
            queue=_tightest(_int_or_none(limit.get("async_user_queue_limit")) for limit in limits),
        )


def _positive_int(value: Any) -> int | None:
    number = _int_or_none(value)
    return number if number is not None and number > 0 else None


def _rate(limit: Mapping[str, Any]) -> float | None:
    """Requests per second of a limit row, None when it sets no request limit."""
    count, period = limit.get("request_limit"), limit.get("request_limit_period") or 1
    if isinstance(count, bool) or not isinstance(count, int | float) or count <= 0:
        return None
    if isinstance(period, bool) or not isinstance(period, int | float) or period <= 0:
        return None
    return float(count) / float(period)


def _tightest(values: Iterable[_N | None]) -> _N | None:
    known = [value for value in values if value is not None]
    return min(known) if known else None


def parse_provider_time(value: Any) -> datetime | None:
    """``"2025-04-18 10:36:58.394"`` (China time, no zone) -> aware UTC datetime; junk -> None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None  # a cosmetic field must never fail a poll
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=CHINA_TZ)
    return parsed.astimezone(UTC)


def _epoch_ms(value: Any) -> datetime | None:
    millis = _int_or_none(value)
    if millis is None:
        return None
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def _output_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ValueError("response body is not a JSON object")
    output = body.get("output")
    if isinstance(output, Mapping):
        return output
    # the official SDK also accepts the task fields at the top level
    if "task_id" in body:
        return body
    raise ValueError("response has no 'output' object")


def _status(value: Any) -> TaskStatus:
    try:
        return TaskStatus(value)
    except ValueError:
        # A status we do not know is not "UNKNOWN" (= the task is gone): guessing would end a live job.
        raise ValueError(f"unexpected task status {shorten(str(value), 40)!r}") from None


def _required_str(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"response has no {key!r}")
    return value


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text or None


def _seconds_or_none(value: Any) -> float | None:
    """A number of seconds: an int stays an int (the documented type), a fraction is kept."""
    if isinstance(value, float) and not value.is_integer():
        return value if value >= 0 else None
    return _int_or_none(value)


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None
