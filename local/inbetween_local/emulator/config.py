"""Construction-time settings (``EmulatorConfig``) and runtime-changeable faults and quotas (``Faults``)."""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from inbetween.domain.catalog import IMAGE_LIMITS, QUERY_RPS_PER_ACCOUNT, ImageLimits, model_spec

from .errors import message_for, status_for
from .media_models import media_model

# a fixed duration in provider seconds, or a (low, high) range drawn with the seeded RNG
Duration = float | tuple[float, float]


class ConcurrencyMode(StrEnum):
    REJECT = "reject"  # over the limit: create answers 429 Throttling.AllocationQuota
    QUEUE = "queue"  # over the limit: accepted, held PENDING until a slot frees


class ErrorTiming(StrEnum):
    SYNC = "sync"  # HTTP 400 at create
    ASYNC = "async"  # task accepted, then FAILED


class MediaRule(StrEnum):
    """A family of refusals of a wan2.7 create. Each answers a 400 at create (``ErrorTiming.SYNC``) or is
    accepted and ends FAILED at the end of PENDING (``ErrorTiming.ASYNC``); the reference does not say
    which for most (§1.5, §10 question 2), so ``EmulatorConfig.media_error_timing`` chooses per rule."""

    MISSING_MEDIA = "missing_media"  # no input.media: accepted then FAILED, as observed (§1.5, 3P)
    MEDIA_ITEMS = "media_items"  # not an array, an item without type/url, an unknown or repeated type
    COMBINATION = "combination"  # empty media, or a set of types outside the six (§1.5)
    RESOLUTION = "resolution"  # not 720P/1080P ("480P" included)
    DURATION = "duration"  # not an integer in [2, 15], or not longer than the first clip
    PARAMETERS = "parameters"  # seed out of range, non-boolean flags, a template, non-string prompts
    URL = "url"  # unsupported scheme, oss:// without the resolve header, base64 audio/video
    CONTENT = "content"  # format, size, side, aspect or length of a fetched medium (default: image_errors)
    DOWNLOAD = "download"  # a medium that cannot be fetched (default: download_errors)


DEFAULT_MEDIA_TIMING: dict[MediaRule, ErrorTiming] = {
    MediaRule.MISSING_MEDIA: ErrorTiming.ASYNC,
    MediaRule.MEDIA_ITEMS: ErrorTiming.SYNC,
    MediaRule.COMBINATION: ErrorTiming.SYNC,
    MediaRule.RESOLUTION: ErrorTiming.SYNC,
    MediaRule.DURATION: ErrorTiming.SYNC,
    MediaRule.PARAMETERS: ErrorTiming.SYNC,
    MediaRule.URL: ErrorTiming.SYNC,
}


class FaultOutcome(StrEnum):
    REJECT = "reject"  # the create call answers an HTTP error
    FAIL = "fail"  # the task is accepted and ends FAILED


class ManualClock:
    """A clock tests move by hand: ``clock.advance(3)``. Thread-safe."""

    def __init__(self, start: float = 1_760_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """What a fault rule may look at."""

    model: str
    prompt: str
    template: str | None
    first_frame_url: str
    last_frame_url: str | None
    resolution: str
    api_key_id: str
    # wan2.7: the (type, url) items of input.media (first_frame_url/last_frame_url echo the frames) and
    # the asked duration; empty and None for kf2v
    media: tuple[tuple[str, str], ...] = ()
    duration: int | None = None


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Selects create requests (by prompt substring and/or predicate, with a probability) and decides
    their fate: ``REJECT`` answers an HTTP error at create, ``FAIL`` accepts the task and ends it FAILED
    (``code=None`` gives a FAILED task without code or message, as the real service sometimes does)."""

    outcome: FaultOutcome = FaultOutcome.FAIL
    code: str | None = "InternalError.Algo"
    message: str | None = None
    http_status: int | None = None
    prompt_contains: str | None = None
    when: Callable[[CreateRequest], bool] | None = None
    probability: float = 1.0

    def matches(self, request: CreateRequest) -> bool:
        if self.prompt_contains is not None and self.prompt_contains not in request.prompt:
            return False
        return self.when is None or self.when(request)

    def resolved_message(self) -> str | None:
        if self.code is None:
            return self.message
        return self.message if self.message is not None else message_for(self.code)

    def resolved_status(self) -> int:
        if self.http_status is not None:
            return self.http_status
        return status_for(self.code or "InternalError", 400)


# "[fail:DataInspectionFailed]" fails the task with that code, "[fail]" fails it with no code,
# "[reject:Arrearage]" rejects the create call with that code.
_MARKER = re.compile(r"\[(fail|reject)(?::([A-Za-z0-9_.]+))?\]")


def marker_rule(prompt: str) -> FaultRule | None:
    found = _MARKER.search(prompt)
    if found is None:
        return None
    outcome = FaultOutcome.REJECT if found.group(1) == "reject" else FaultOutcome.FAIL
    code = found.group(2)
    if outcome is FaultOutcome.REJECT and code is None:
        code = "InternalError"
    return FaultRule(outcome=outcome, code=code)


class Faults:
    """Quotas and injected faults. Every attribute may be changed while the server runs; counters
    ("next N calls") are taken under a lock. Probabilities draw from a RNG seeded by ``seed``."""

    def __init__(
        self,
        *,
        concurrency_mode: ConcurrencyMode = ConcurrencyMode.REJECT,
        max_concurrent: Mapping[str, int] | None = None,
        submit_rps: Mapping[str, float] | None = None,
        queue_limits: Mapping[str, int] | None = None,
        upload_policy_qps: float = 100.0,
        query_qps: float = float(QUERY_RPS_PER_ACCOUNT),
        concurrency_limits_enabled: bool = True,
        rate_limits_enabled: bool = True,
        create_error_probability: float = 0.0,
        create_error_status: int = 500,
        query_error_probability: float = 0.0,
        query_error_status: int = 500,
        create_latency_s: float = 0.0,
        query_latency_s: float = 0.0,
        download_latency_s: float = 0.0,
        download_drop_probability: float = 0.0,
        download_drop_fraction: float = 0.5,
        honor_prompt_markers: bool = True,
        rules: Iterable[FaultRule] = (),
        seed: int = 0,
    ) -> None:
        self.concurrency_mode = ConcurrencyMode(concurrency_mode)
        self.max_concurrent: dict[str, int] = dict(max_concurrent or {})
        self.submit_rps: dict[str, float] = dict(submit_rps or {})
        # the provider-side queue behind the running tasks, per model (wan2.7: 500); 0 refuses at once
        self.queue_limits: dict[str, int] = dict(queue_limits or {})
        self.upload_policy_qps = upload_policy_qps  # getPolicy, per account and model
        self.query_qps = query_qps
        self.concurrency_limits_enabled = concurrency_limits_enabled
        self.rate_limits_enabled = rate_limits_enabled
        self.create_error_probability = create_error_probability
        self.create_error_status = create_error_status
        self.query_error_probability = query_error_probability
        self.query_error_status = query_error_status
        self.create_latency_s = create_latency_s
        self.query_latency_s = query_latency_s
        self.download_latency_s = download_latency_s
        self.download_drop_probability = download_drop_probability
        self.download_drop_fraction = download_drop_fraction
        self.honor_prompt_markers = honor_prompt_markers
        self._rules: list[FaultRule] = list(rules)
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._next_create_errors: list[int] = []
        self._next_query_errors: list[int] = []
        self._next_download_drops: list[float] = []

    # --- quotas -------------------------------------------------------------------------------
    # The figures (what list-quotas answers) are the overrides in ``max_concurrent``/``submit_rps``/
    # ``queue_limits``, else the model's published ones; the limits are the figures while enforced.
    def concurrency_figure(self, model: str) -> int | None:
        if model in self.max_concurrent:
            return self.max_concurrent[model]
        facts = media_model(model)
        if facts is not None:
            return facts.max_concurrent
        spec = model_spec(model)
        return spec.max_concurrent if spec else None

    def submit_rps_figure(self, model: str) -> float | None:
        if model in self.submit_rps:
            return self.submit_rps[model]
        facts = media_model(model)
        if facts is not None:
            return facts.submit_rps
        spec = model_spec(model)
        return spec.submit_rps if spec else None

    def queue_limit(self, model: str) -> int | None:
        """Tasks a model holds PENDING beyond its running ones; None: no provider queue (kf2v), where
        ``concurrency_mode`` decides between refusing and an unbounded queue."""
        if model in self.queue_limits:
            return self.queue_limits[model]
        facts = media_model(model)
        return facts.queue_limit if facts is not None else None

    def concurrency_limit(self, model: str) -> int | None:
        if not self.concurrency_limits_enabled:
            return None
        return self.concurrency_figure(model)

    def submit_rate_limit(self, model: str) -> float | None:
        if not self.rate_limits_enabled:
            return None
        return self.submit_rps_figure(model)

    def query_rate_limit(self) -> float | None:
        return self.query_qps if self.rate_limits_enabled else None

    def upload_policy_rate_limit(self) -> float | None:
        return self.upload_policy_qps if self.rate_limits_enabled else None

    # --- one-shot and probabilistic faults ----------------------------------------------------
    def fail_next_creates(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._next_create_errors.extend([status] * count)

    def fail_next_queries(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._next_query_errors.extend([status] * count)

    def drop_next_downloads(self, count: int, fraction: float = 0.5) -> None:
        with self._lock:
            self._next_download_drops.extend([fraction] * count)

    def add_rule(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove_rule(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.remove(rule)

    def clear(self) -> None:
        """Forget rules and pending one-shot faults; probabilities and latencies back to zero."""
        with self._lock:
            self._rules.clear()
            self._next_create_errors.clear()
            self._next_query_errors.clear()
            self._next_download_drops.clear()
        self.create_error_probability = self.query_error_probability = 0.0
        self.download_drop_probability = 0.0
        self.create_latency_s = self.query_latency_s = self.download_latency_s = 0.0

    @property
    def rules(self) -> tuple[FaultRule, ...]:
        with self._lock:
            return tuple(self._rules)

    def _chance(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability

    def take_create_error(self) -> int | None:
        with self._lock:
            if self._next_create_errors:
                return self._next_create_errors.pop(0)
            return self.create_error_status if self._chance(self.create_error_probability) else None

    def take_query_error(self) -> int | None:
        with self._lock:
            if self._next_query_errors:
                return self._next_query_errors.pop(0)
            return self.query_error_status if self._chance(self.query_error_probability) else None

    def take_download_drop(self) -> float | None:
        """The fraction of the body to send before closing, or None for a whole download."""
        with self._lock:
            if self._next_download_drops:
                return self._next_download_drops.pop(0)
            return self.download_drop_fraction if self._chance(self.download_drop_probability) else None

    def select_rule(self, request: CreateRequest) -> FaultRule | None:
        if self.honor_prompt_markers:
            marked = marker_rule(request.prompt)
            if marked is not None:
                return marked
        with self._lock:
            for rule in self._rules:
                if rule.matches(request) and (rule.probability >= 1.0 or self._chance(rule.probability)):
                    return rule
        return None


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    api_keys: tuple[str, ...] = ("sk-local",)
    region: str = "cn-beijing"
    # lifecycle, provider seconds (multiplied by time_scale): fixed or a seeded draw from (low, high)
    pending_s: Duration = 0.5
    running_s: Duration = 2.0
    time_scale: float = 1.0
    seed: int = 0
    clock: Callable[[], float] = time.time
    task_ttl_s: float = 24 * 3600.0
    video_url_ttl_s: float = 24 * 3600.0
    image_limits: ImageLimits = IMAGE_LIMITS
    allow_remote_fetch: bool = False
    fetch_timeout_s: float = 10.0
    image_errors: ErrorTiming = ErrorTiming.SYNC
    download_errors: ErrorTiming = ErrorTiming.ASYNC
    render_workers: int = 2
    render_preset: str = "ultrafast"
    render_cache_entries: int = 32
    faults: Faults | None = None
    oss_access_key_id: str = "LTAI5tLocalEmulator"
    signing_secret: str | None = None  # random per server when None
    tick_interval_s: float = 0.02
    # --- wan2.7 (media protocol) ---
    # sync 400 or async FAILED per refusal family; missing rules take DEFAULT_MEDIA_TIMING, CONTENT
    # follows image_errors and DOWNLOAD follows download_errors
    media_error_timing: Mapping[MediaRule, ErrorTiming] = field(default_factory=dict)
    # base64 data URIs are documented for images only (§2); True accepts them for audio and clips too
    media_data_uris: bool = False
    # actual_prompt is not among wan2.7's documented output fields (§3.3); True returns it anyway
    media_actual_prompt: bool = False
    # --- temporary storage (getPolicy, the upload host, oss:// inputs; §7.5-7.6) ---
    # an oss:// URL without "X-DashScope-OssResourceResolve: enable": the temporary-storage page names
    # invalid_parameter_error and InvalidParameter.DataInspection; InvalidURL is what the emulator
    # answered before it knew oss:// and stays the default
    oss_unresolved_code: str = "InvalidURL"
    oss_file_ttl_s: float = 48 * 3600.0
    upload_policy_ttl_s: float = 300.0  # getPolicy's expire_in_seconds
    upload_max_file_size_mb: int = 100
    upload_capacity_limit_mb: int = 999_999_999
    # list-quotas: the workspace its rows name
    workspace_id: str = "llm-emulator"

    def media_timing(self, rule: MediaRule) -> ErrorTiming:
        if rule in self.media_error_timing:
            return ErrorTiming(self.media_error_timing[rule])
        if rule is MediaRule.CONTENT:
            return self.image_errors
        if rule is MediaRule.DOWNLOAD:
            return self.download_errors
        return DEFAULT_MEDIA_TIMING[rule]
