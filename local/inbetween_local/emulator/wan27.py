"""Reading a wan2.7 create body (reference §1.3-§2): ``input.media`` and the parameters, then the media.

Every refusal belongs to a ``MediaRule`` whose timing (``EmulatorConfig.media_timing``) decides between
a 400 at create and a task that is accepted and ends FAILED at the end of PENDING. Sync checks happen
first, as at a gateway: any sync refusal answers the create, otherwise the first async one is planned.
Refusals answer ``InvalidParameter`` with a message naming the field (no code is documented, §4);
unreadable formats answer ``InvalidParameter.DataInspection`` as for images.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inbetween.domain.catalog import SEED_MAX, SEED_MIN

from .config import EmulatorConfig, ErrorTiming, MediaRule
from .errors import ApiError, message_for, status_for
from .frames import Frame, FrameRejected, FrameUnavailable, check_image, decode_data_uri, download
from .media import (
    Audio,
    Clip,
    MediaRejected,
    check_aspect,
    check_audio,
    check_clip,
    check_size,
    decode_av_data_uri,
)
from .media_models import (
    DRIVING_AUDIO,
    FIRST_CLIP,
    FIRST_FRAME,
    IMAGE_TYPES,
    MEDIA_TYPES,
    AvLimits,
    MediaModelFacts,
)
from .uploads import OSS_PREFIX, OssUnavailable, UploadStore


@dataclass(frozen=True, slots=True)
class PlannedFailure:
    code: str
    message: str


@dataclass(slots=True)
class MediaRequest:
    model: str
    prompt: str  # truncated to the model's limit
    marker_prompt: str  # as sent, for fault markers and rules
    resolution: str
    duration: int
    prompt_extend: bool
    watermark: bool
    seed: int | None
    media: tuple[tuple[str, str], ...]  # (type, url) as sent
    first: Frame | None = None
    last: Frame | None = None
    audio: Audio | None = None
    clip: Clip | None = None
    failure: PlannedFailure | None = None

    @property
    def media_types(self) -> tuple[str, ...]:
        return tuple(kind for kind, _ in self.media)

    def url_of(self, kind: str) -> str | None:
        return next((url for k, url in self.media if k == kind), None)


class _Verdicts:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.failure: PlannedFailure | None = None

    def refuse(self, rule: MediaRule, message: str, code: str = "InvalidParameter") -> None:
        """Raise the refusal now (sync) or remember it for the task (async); returns when async."""
        if self.config.media_timing(rule) is ErrorTiming.SYNC:
            raise ApiError(code, message, status_for(code, 400))
        if self.failure is None:
            self.failure = PlannedFailure(code, message)


def _combination_text(kinds: frozenset[str] | set[str]) -> str:
    return "+".join(kind for kind in MEDIA_TYPES if kind in kinds) or "(none)"


class MediaRequestReader:
    """Validates one create body for a media model and fetches its media."""

    def __init__(
        self,
        config: EmulatorConfig,
        uploads: UploadStore,
        now: Callable[[], float],
    ) -> None:
        self.config = config
        self.uploads = uploads
        self.now = now

    def read(self, body: dict[str, Any], facts: MediaModelFacts, *, oss_resolve: bool) -> MediaRequest:
        verdicts = _Verdicts(self.config)
        payload = body.get("input")
        if not isinstance(payload, dict) or not payload:
            raise ApiError("BadRequest.EmptyInput")
        parameters = body.get("parameters", {})
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, dict):
            raise ApiError("InvalidParameter", "parameters must be a JSON object.", 400)
        model = facts.name

        prompt = self._text(payload, "prompt", verdicts)
        self._text(payload, "negative_prompt", verdicts)  # accepted and truncated; unused by the render
        if payload.get("template") not in (None, ""):
            verdicts.refuse(
                MediaRule.PARAMETERS, f"The template parameter is not supported by model {model}."
            )

        media = self._media(payload, facts, verdicts)
        resolution = parameters.get("resolution", facts.default_resolution)
        if resolution not in facts.resolutions:
            verdicts.refuse(
                MediaRule.RESOLUTION,
                f"The resolution {resolution!r} is not supported by model {model}; "
                f"supported values: {', '.join(facts.resolutions)}.",
            )
            resolution = facts.default_resolution
        duration = parameters.get("duration", facts.default_duration_s)
        if type(duration) is not int or not facts.min_duration_s <= duration <= facts.max_duration_s:
            verdicts.refuse(
                MediaRule.DURATION,
                f"The duration must be an integer number of seconds in "
                f"[{facts.min_duration_s}, {facts.max_duration_s}]; got {duration!r}.",
            )
            duration = facts.default_duration_s
        prompt_extend = self._bool(parameters, "prompt_extend", True, verdicts)
        watermark = self._bool(parameters, "watermark", False, verdicts)
        seed = parameters.get("seed")
        if seed is not None and (type(seed) is not int or not SEED_MIN <= seed <= SEED_MAX):
            verdicts.refuse(MediaRule.PARAMETERS, f"The seed must be an integer in [{SEED_MIN}, {SEED_MAX}].")
            seed = None
        # parameters.audio/size/ratio/shot_type are not part of this API (§1.6); accepted and ignored

        request = MediaRequest(
            model=model,
            prompt=prompt[: facts.prompt_max_chars],  # silently truncated, as documented
            marker_prompt=prompt,
            resolution=resolution,
            duration=duration,
            prompt_extend=prompt_extend,
            watermark=watermark,
            seed=seed,
            media=media,
        )
        if media:
            self._check_urls(request, oss_resolve, verdicts)
            self._load(request, facts, verdicts)
            if request.clip is not None and duration <= request.clip.duration_s:
                verdicts.refuse(
                    MediaRule.DURATION,
                    f"The duration ({duration} s) must be longer than the first clip "
                    f"({request.clip.duration_s:.1f} s): it is the total length, the clip included.",
                )
        request.failure = verdicts.failure
        return request

    # --- fields ------------------------------------------------------------------------------------
    @staticmethod
    def _text(payload: dict[str, Any], key: str, verdicts: _Verdicts) -> str:
        value = payload.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            verdicts.refuse(MediaRule.PARAMETERS, f"input.{key} must be a string.")
            return ""
        return value

    @staticmethod
    def _bool(parameters: dict[str, Any], key: str, default: bool, verdicts: _Verdicts) -> bool:
        value = parameters.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            verdicts.refuse(MediaRule.PARAMETERS, f"parameters.{key} must be a boolean.")
            return default
        return value

    @staticmethod
    def _media(
        payload: dict[str, Any], facts: MediaModelFacts, verdicts: _Verdicts
    ) -> tuple[tuple[str, str], ...]:
        items = payload.get("media")
        if items is None:
            # what the service answers to legacy first_frame_url/img_url bodies (§1.5, 3P)
            verdicts.refuse(MediaRule.MISSING_MEDIA, "Field required: input.media")
            return ()
        if not isinstance(items, list):
            verdicts.refuse(MediaRule.MEDIA_ITEMS, "input.media must be an array of {type, url} objects.")
            return ()
        media: list[tuple[str, str]] = []
        for index, item in enumerate(items):
            kind = item.get("type") if isinstance(item, dict) else None
            url = item.get("url") if isinstance(item, dict) else None
            if not isinstance(kind, str) or not isinstance(url, str) or not url:
                verdicts.refuse(
                    MediaRule.MEDIA_ITEMS, f"input.media[{index}] must have a string type and a url."
                )
                return ()
            if kind not in MEDIA_TYPES:
                verdicts.refuse(
                    MediaRule.MEDIA_ITEMS,
                    f"The media type {kind!r} of input.media[{index}] is not supported by model {facts.name}; "
                    f"supported types: {', '.join(MEDIA_TYPES)}.",
                )
                return ()
            if any(kind == seen for seen, _ in media):
                verdicts.refuse(
                    MediaRule.MEDIA_ITEMS,
                    f"The media type {kind} appears more than once in input.media; each type may appear at most once.",
                )
                return ()
            media.append((kind, url))
        kinds = frozenset(kind for kind, _ in media)
        if kinds not in facts.combinations:
            verdicts.refuse(
                MediaRule.COMBINATION,
                f"The media combination {_combination_text(kinds)} is not supported by model {facts.name}; "
                "supported combinations: "
                + ", ".join(_combination_text(c) for c in facts.combinations)
                + ".",
            )
            return ()
        return tuple(media)

    def _check_urls(self, request: MediaRequest, oss_resolve: bool, verdicts: _Verdicts) -> None:
        for kind, url in request.media:
            if url.startswith(OSS_PREFIX):
                if not oss_resolve:
                    code = self.config.oss_unresolved_code
                    verdicts.refuse(MediaRule.URL, message_for(code), code)
            elif url.startswith("data:"):
                if kind not in IMAGE_TYPES and not self.config.media_data_uris:
                    verdicts.refuse(
                        MediaRule.URL,
                        f"The {kind} must be given by URL (http, https or oss); base64 data is accepted for "
                        "images only.",
                    )
            elif not url.startswith(("http://", "https://")):
                verdicts.refuse(MediaRule.URL, message_for("InvalidURL"), "InvalidURL")

    # --- media -------------------------------------------------------------------------------------
    def _load(self, request: MediaRequest, facts: MediaModelFacts, verdicts: _Verdicts) -> None:
        if verdicts.failure is not None:
            return  # the task is doomed by an async refusal already: its media are not fetched
        for kind, url in request.media:
            try:
                if kind in IMAGE_TYPES:
                    frame = self._image(url, request.model, facts)
                    if kind == FIRST_FRAME:
                        request.first = frame
                    else:
                        request.last = frame
                elif kind == DRIVING_AUDIO:
                    request.audio = check_audio(
                        self._bytes(url, request.model, facts.audio_limits, "audio"), facts.audio_limits
                    )
                elif kind == FIRST_CLIP:
                    request.clip = check_clip(
                        self._bytes(url, request.model, facts.clip_limits, "video"), facts.clip_limits
                    )
            except (FrameRejected, MediaRejected) as rejected:
                verdicts.refuse(MediaRule.CONTENT, f"{kind}: {rejected.message}", rejected.code)
                return
            except (FrameUnavailable, OssUnavailable) as unavailable:
                verdicts.refuse(MediaRule.DOWNLOAD, unavailable.message)
                return

    def _image(self, url: str, model: str, facts: MediaModelFacts) -> Frame:
        limits = facts.image_limits
        if url.startswith("data:"):
            data = decode_data_uri(url, limits)
        elif url.startswith(OSS_PREFIX):
            data = self.uploads.resolve(url, model, self.now()).data
        else:
            data = self._download(url, limits.max_bytes, lambda size: _image_size(size, limits.max_bytes))
        frame = check_image(data, limits)
        try:
            check_aspect(frame.width, frame.height, facts.image_max_aspect, "image")
        except MediaRejected as rejected:
            raise FrameRejected(rejected.code, rejected.message) from rejected
        return frame

    def _bytes(self, url: str, model: str, limits: AvLimits, what: str) -> bytes:
        if url.startswith("data:"):
            data = decode_av_data_uri(url, "audio" if what == "audio" else "video")
        elif url.startswith(OSS_PREFIX):
            data = self.uploads.resolve(url, model, self.now()).data
        else:
            data = self._download(url, limits.max_bytes, lambda size: check_size(size, limits, what))
        check_size(len(data), limits, what)
        return data

    def _download(self, url: str, max_bytes: int, on_received: Callable[[int], None]) -> bytes:
        return download(
            url,
            on_received=on_received,
            allow_remote=self.config.allow_remote_fetch,
            timeout_s=self.config.fetch_timeout_s,
        )


def _image_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise FrameRejected(
            "InvalidParameter", f"The image file is too large: it must not exceed {max_bytes // 2**20} MB."
        )


def clip_seconds(clip: Clip) -> int:
    """The clip's length as the integer ``usage.input_video_duration`` reports (half up)."""
    return int(math.floor(clip.duration_s + 0.5))


__all__ = ["MediaRequest", "MediaRequestReader", "PlannedFailure", "clip_seconds"]
