"""Checks that run before we pay: the inputs and the request, against the model's catalogue entry.

Everything the provider would reject (or, worse, silently change) is refused here with a message that says
what is wrong and what to do. ``inspect_image`` raises ``errors.InvalidImage``; ``inspect_audio``,
``inspect_clip`` and ``validate_request`` raise ``errors.InvalidJob``. All carry a distinct ``code``, a
``hint`` and the ``field`` concerned.

For a job: ``validate_request(request)`` first (model, parameters, which inputs; no bytes read), then each
input through ``inspect_input`` (or ``inspect_image``/``inspect_audio``/``inspect_clip`` with the model's
limits), then ``validate_request(request, first=..., last=..., audio=..., first_clip=...)`` again, which
also checks what only the inspected inputs tell (the first clip's length against the duration).
"""

from __future__ import annotations

import base64
import io
import re
import struct
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from PIL import Image

from inbetween.domain import catalog
from inbetween.domain.catalog import (
    DURATION_TOLERANCE_S,
    IMAGE_LIMITS,
    WAN27_AUDIO_LIMITS,
    WAN27_CLIP_LIMITS,
    AudioLimits,
    ClipLimits,
    ImageLimits,
    ModelSpec,
)
from inbetween.errors import InvalidImage, InvalidJob
from inbetween.provider import media
from inbetween.provider.models import CreateTaskRequest

# Refuse to decode anything larger than this many pixels, read from the header before decoding.
# 8000 x 8000 is the largest frame the provider accepts; decoded as RGB that is ~192 MB.
MAX_DECODE_PIXELS = 8000 * 8000

_MIME_BY_FORMAT = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}
# Formats Pillow may identify (header only) so an unsupported one gets a precise message. Anything else,
# including formats whose Pillow plugins call external programs (EPS), is simply "not an image".
# (MPO has no opener of its own: the JPEG opener returns it.)
_IDENTIFIABLE_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "GIF", "TIFF", "ICO", "PPM", "JPEG2000")
# Multi-picture JPEG from some cameras: the first picture is an ordinary JPEG.
_FORMAT_ALIASES = {"MPO": "JPEG"}
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# What Pillow raises on broken files varies by plugin; these are the ones seen for truncated/corrupt data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError)

_DATA_URI = re.compile(r"data:(image/[A-Za-z0-9.+-]+);base64,([A-Za-z0-9+/]+={0,2})", re.ASCII)


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str  # "JPEG", "PNG", "BMP", "WEBP"
    width: int
    height: int
    size_bytes: int
    mime: str


def inspect_image(data: bytes, *, name: str = "image", limits: ImageLimits = IMAGE_LIMITS) -> ImageInfo:
    """Check one frame against ``limits`` and describe it. Cheap checks first; decoding last.

    Order: empty, file size (before any parsing), identify from the header, pixel cap (before decoding),
    format, sides, alpha, then ``verify()`` and a full decode in a fresh ``Image.open`` to catch truncation.
    """
    size_bytes = len(data)
    if size_bytes == 0:
        raise _image_error(name, "EmptyImage", f"{name} is an empty file (0 bytes)", "upload the image again")
    if size_bytes > limits.max_bytes:
        raise _image_error(
            name,
            "ImageFileTooLarge",
            f"{name} is {_mb(size_bytes)}; the provider accepts at most {_mb(limits.max_bytes)}",
            "re-save it as JPEG at a lower quality, or scale it down",
        )

    openable = _openable_formats(limits)
    with _bomb_warnings_as_errors():
        try:
            image = Image.open(io.BytesIO(data), formats=openable)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _bomb_error(name, None) from None
        except _DECODE_ERRORS:
            raise _image_error(
                name,
                "NotAnImage",
                f"{name} is not an image we can read",
                f"save it as {_format_list(limits)}",
            ) from None
        with image:
            raw_format = image.format or "unknown"
            width, height = image.size
            mode = image.mode
            has_transparency = "transparency" in image.info

    if width * height > MAX_DECODE_PIXELS:
        raise _bomb_error(name, (width, height))

    image_format = _FORMAT_ALIASES.get(raw_format, raw_format)
    _check_image_facts(name, raw_format, image_format, width, height, limits)
    if not limits.alpha_allowed and (mode in _ALPHA_MODES or has_transparency):
        raise _image_error(
            name,
            "ImageHasAlpha",
            f"{name} has an alpha (transparency) channel, which the provider does not accept",
            "flatten it onto an opaque background and save without alpha (or save as JPEG)",
        )

    _check_decodes(data, name=name, openable=openable)
    return ImageInfo(
        format=image_format,
        width=width,
        height=height,
        size_bytes=size_bytes,
        mime=_MIME_BY_FORMAT.get(image_format) or Image.MIME.get(image_format, "application/octet-stream"),
    )


def _check_image_facts(
    name: str, raw_format: str, image_format: str, width: int, height: int, limits: ImageLimits
) -> None:
    """Format, sides and aspect ratio against ``limits`` (what an ``ImageInfo`` still tells)."""
    if image_format not in limits.formats:
        raise _image_error(
            name,
            "UnsupportedImageFormat",
            f"{name} is {raw_format}; the provider accepts {_format_list(limits)}",
            f"convert it to {_format_list(limits)}",
        )
    if min(width, height) < limits.min_side:
        raise _image_error(
            name,
            "ImageTooSmall",
            f"{name} is {width}x{height} pixels; each side must be at least {limits.min_side}",
            f"use an image whose sides are between {limits.min_side} and {limits.max_side} pixels",
        )
    if max(width, height) > limits.max_side:
        raise _image_error(
            name,
            "ImageTooLarge",
            f"{name} is {width}x{height} pixels; each side must be at most {limits.max_side}",
            f"scale it down so both sides are between {limits.min_side} and {limits.max_side} pixels",
        )
    if limits.max_aspect is not None and max(width, height) > limits.max_aspect * min(width, height):
        bound = _ratio(limits.max_aspect)
        raise _image_error(
            name,
            "ImageAspectRatio",
            f"{name} is {width}x{height} pixels; its aspect ratio must lie between 1:{bound} and {bound}:1",
            f"crop it to an aspect ratio between 1:{bound} and {bound}:1",
        )


def _ratio(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _openable_formats(limits: ImageLimits) -> tuple[str, ...]:
    Image.init()  # registers Pillow's plugins so Image.OPEN is complete
    wanted = set(_IDENTIFIABLE_FORMATS) | set(limits.formats)
    return tuple(sorted(fmt for fmt in wanted if fmt in Image.OPEN))


def _check_decodes(data: bytes, *, name: str, openable: tuple[str, ...]) -> None:
    corrupt = _image_error(
        name,
        "CorruptImage",
        f"{name} is damaged or truncated and cannot be decoded",
        "export or upload the original file again",
    )
    with _bomb_warnings_as_errors():
        try:
            # verify() checks the structure (chunk CRCs, markers) without decoding pixels; the image
            # object is unusable afterwards, hence the second open for the actual decode.
            with Image.open(io.BytesIO(data), formats=openable) as image:
                image.verify()
            with Image.open(io.BytesIO(data), formats=openable) as image:
                if image.format in ("JPEG", "MPO"):
                    # Decode at 1/8 scale: libjpeg still reads every byte (so truncation shows) but
                    # needs 64 times less memory.
                    image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _bomb_error(name, None) from None
        except _DECODE_ERRORS:
            raise corrupt from None


@contextmanager
def _bomb_warnings_as_errors() -> Iterator[None]:
    # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a warning is as good as a bomb to us.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _bomb_error(name: str, size: tuple[int, int] | None) -> InvalidImage:
    described = f" ({size[0]}x{size[1]} pixels)" if size else ""
    return _image_error(
        name,
        "DecompressionBomb",
        f"{name} claims to be far larger than any frame the provider accepts{described}; refused without decoding",
        f"use an image of at most {MAX_DECODE_PIXELS:,} pixels",
    )


def _image_error(name: str, code: str, message: str, hint: str) -> InvalidImage:
    return InvalidImage(message, code=code, hint=hint, field=name)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _format_list(limits: ImageLimits) -> str:
    return ", ".join(sorted(limits.formats))


def data_uri(data: bytes, info: ImageInfo) -> str:
    """The image as ``data:{mime};base64,...``, the inline form the provider accepts for frame URLs."""
    return f"data:{info.mime};base64,{base64.b64encode(data).decode('ascii')}"


@dataclass(frozen=True, slots=True)
class AudioInfo:
    format: str  # "wav", "mp3"
    duration_s: float
    size_bytes: int
    mime: str
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class ClipInfo:
    format: str  # "mp4", "mov"
    duration_s: float
    width: int  # as shown (a quarter-turned phone video: its sides swapped)
    height: int
    size_bytes: int
    mime: str


def inspect_audio(data: bytes, *, name: str = "audio", limits: AudioLimits = WAN27_AUDIO_LIMITS) -> AudioInfo:
    """Check a driving audio against ``limits`` and describe it: file size first, then the format from
    the content (not the name), then its length read from the bytes (RIFF header, MP3 frames)."""
    size_bytes = len(data)
    formats = _names(limits.formats)
    if size_bytes == 0:
        raise _input_error(name, "EmptyAudio", f"{name} is an empty file (0 bytes)", "upload the audio again")
    if size_bytes > limits.max_bytes:
        raise _input_error(
            name,
            "AudioFileTooLarge",
            f"{name} is {_mb(size_bytes)}; the provider accepts at most {_mb(limits.max_bytes)}",
            "shorten it, or save it as MP3 at a lower bitrate",
        )
    kind = media.sniff(data)
    if kind is None or kind not in limits.formats:
        if kind in (media.MP4, media.MOV):
            what = f"an {kind.upper()} video, not audio"
        elif kind is None:
            what = "not audio we can read"
        else:
            what = kind.upper()
        raise _input_error(
            name,
            "UnsupportedAudioFormat",
            f"{name} is {what}; the provider accepts {formats}",
            f"save it as {formats}",
        )
    try:
        facts = media.read_audio(data)
    except media.MediaError as exc:
        raise _input_error(
            name, "CorruptAudio", f"{name} cannot be read: {exc}", "export or upload the original file again"
        ) from None
    _check_length(name, facts.duration_s, limits.min_duration_s, limits.max_duration_s, "Audio", "cut it to")
    return AudioInfo(
        format=facts.format,
        duration_s=facts.duration_s,
        size_bytes=size_bytes,
        mime=media.MIME_TYPES[facts.format],
        sample_rate=facts.sample_rate,
        channels=facts.channels,
    )


def inspect_clip(
    data: bytes, *, name: str = "first clip", limits: ClipLimits = WAN27_CLIP_LIMITS
) -> ClipInfo:
    """Check a first clip against ``limits`` and describe it: file size first, then the format from the
    content, then its length (``mvhd``) and the video track's size (``tkhd``), read from the boxes."""
    size_bytes = len(data)
    formats = _names(limits.formats)
    if size_bytes == 0:
        raise _input_error(name, "EmptyClip", f"{name} is an empty file (0 bytes)", "upload the clip again")
    if size_bytes > limits.max_bytes:
        raise _input_error(
            name,
            "ClipFileTooLarge",
            f"{name} is {_mb(size_bytes)}; the provider accepts at most {_mb(limits.max_bytes)}",
            "shorten it, or export it at a lower bitrate",
        )
    kind = media.sniff(data)
    if kind is None or kind not in limits.formats:
        if kind in (media.WAV, media.MP3):
            what = f"{kind.upper()} audio, not a video"
        elif kind is None:
            what = "not a video we can read"
        else:
            what = kind.upper()
        raise _input_error(
            name,
            "UnsupportedClipFormat",
            f"{name} is {what}; the provider accepts {formats}",
            f"save it as {formats}",
        )
    try:
        facts = media.read_mp4(data)
    except media.MediaError as exc:
        label = "MOV" if kind == media.MOV else "MP4"
        raise _input_error(
            name,
            "CorruptClip",
            f"{name} cannot be read: {label} {exc}",
            "export or upload the original file again",
        ) from None
    width, height = facts.width, facts.height
    if min(width, height) < limits.min_side or max(width, height) > limits.max_side:
        code = "ClipTooSmall" if min(width, height) < limits.min_side else "ClipTooLarge"
        raise _input_error(
            name,
            code,
            f"{name} is {width}x{height} pixels; each side must be between {limits.min_side} and {limits.max_side}",
            f"export it with both sides between {limits.min_side} and {limits.max_side} pixels",
        )
    if limits.max_aspect is not None and max(width, height) > limits.max_aspect * min(width, height):
        bound = _ratio(limits.max_aspect)
        raise _input_error(
            name,
            "ClipAspectRatio",
            f"{name} is {width}x{height} pixels; its aspect ratio must lie between 1:{bound} and {bound}:1",
            f"crop it to an aspect ratio between 1:{bound} and {bound}:1",
        )
    _check_length(name, facts.duration_s, limits.min_duration_s, limits.max_duration_s, "Clip", "trim it to")
    return ClipInfo(
        format=facts.format,
        duration_s=facts.duration_s,
        width=width,
        height=height,
        size_bytes=size_bytes,
        mime=media.MIME_TYPES[facts.format],
    )


InputInfo = ImageInfo | AudioInfo | ClipInfo


def inspect_input(role: str, data: bytes, *, model: str, name: str | None = None) -> InputInfo:
    """Inspect one job input by its role ("first", "last", "audio", "first_clip") with ``model``'s limits.
    Refuses a role the model takes no input for (``MediaNotSupported``)."""
    spec = _spec_or_error(model)
    label = name or catalog.ROLE_NOUNS.get(role, role)
    if role not in spec.media_roles:
        raise _unsupported_media(spec, role)
    if role in catalog.IMAGE_ROLES:
        return inspect_image(data, name=label, limits=spec.image_limits)
    if role == catalog.AUDIO and spec.audio_limits is not None:
        return inspect_audio(data, name=label, limits=spec.audio_limits)
    if role == catalog.FIRST_CLIP and spec.clip_limits is not None:
        return inspect_clip(data, name=label, limits=spec.clip_limits)
    raise _unsupported_media(spec, role)


def _check_length(name: str, seconds: float, low: float, high: float, kind: str, action: str) -> None:
    if seconds < low - DURATION_TOLERANCE_S or seconds > high + DURATION_TOLERANCE_S:
        code = f"{kind}TooShort" if seconds < low else f"{kind}TooLong"
        raise _input_error(
            name,
            code,
            f"{name} is {seconds:.1f} seconds long; the provider accepts {low:g} to {high:g} seconds",
            f"{action} between {low:g} and {high:g} seconds",
        )


def _names(formats: frozenset[str]) -> str:
    return " or ".join(sorted(formats))


def _input_error(name: str, code: str, message: str, hint: str) -> InvalidJob:
    return InvalidJob(f"{message}; {hint}", code=code, hint=hint, field=name)


def validate_request(
    request: CreateTaskRequest,
    *,
    first: ImageInfo | None = None,
    last: ImageInfo | None = None,
    audio: AudioInfo | None = None,
    first_clip: ClipInfo | None = None,
) -> None:
    """Refuse a request the provider would reject or silently change, by the model's catalogue entry.
    Raises ``InvalidJob`` whose message is "what is wrong; what to do" and whose ``hint`` is the "what
    to do" part.

    The inspected inputs, when known, are checked against the model's limits too (an input inspected
    with another model's limits is still refused), a data URI must declare its image's type, and a first
    clip must leave room for new video within the duration.
    """
    spec = _spec_or_error(request.model)

    if request.resolution is not None and request.resolution not in spec.resolutions:
        raise _job_error(
            "UnsupportedResolution",
            "resolution",
            f"resolution '{request.resolution}' is not offered by {request.model}",
            f"use one of: {', '.join(spec.resolutions)}",
        )
    _check_duration(spec, request)
    _check_template(spec, request)
    _check_media(spec, request)

    # The provider silently truncates long prompts; we refuse so no part of the user's text is dropped.
    _check_text(request.prompt, "prompt", spec.prompt_max_chars, "PromptTooLong")
    _check_text(
        request.negative_prompt, "negative_prompt", spec.negative_prompt_max_chars, "NegativePromptTooLong"
    )

    if request.seed is not None and (
        isinstance(request.seed, bool)
        or not isinstance(request.seed, int)
        or not catalog.SEED_MIN <= request.seed <= catalog.SEED_MAX
    ):
        raise _job_error(
            "InvalidSeed",
            "seed",
            f"seed {request.seed!r} is not valid",
            f"use a whole number from {catalog.SEED_MIN} to {catalog.SEED_MAX}, or leave it out for a random one",
        )
    for flag in ("prompt_extend", "watermark"):
        value = getattr(request, flag)
        if value is not None and not isinstance(value, bool):
            raise _job_error(
                "InvalidFlag", flag, f"{flag} is {value!r}", "use true or false, or leave it out"
            )

    _check_declared_type(request.first_frame_url, first, "first_frame_url")
    _check_declared_type(request.last_frame_url, last, "last_frame_url")
    _check_inspected(spec, request, first=first, last=last, audio=audio, first_clip=first_clip)


def _spec_or_error(model: str) -> ModelSpec:
    spec = catalog.model_spec(model)
    if spec is None:
        known = ", ".join(sorted(catalog.MODELS) + sorted(catalog.MODEL_ALIASES))
        raise _job_error("UnknownModel", "model", f"model '{model}' is not known", f"use one of: {known}")
    return spec


def _check_duration(spec: ModelSpec, request: CreateTaskRequest) -> None:
    duration = request.duration
    whole = isinstance(duration, int) and not isinstance(duration, bool)
    if whole and duration in spec.durations:
        return
    if len(spec.durations) == 1:
        # kf2v: one length only; a model that makes the asked one is named
        others = _models_offering(lambda m: whole and duration in m.durations, spec) if whole else ""
        raise _job_error(
            "UnsupportedDuration",
            "duration",
            f"duration {duration!r} is not possible: {request.model} always makes {spec.durations[0]}-second videos",
            f"use {spec.durations[0]} or leave it out"
            + (f", or use {others} for {duration}-second videos" if others else ""),
        )
    raise _job_error(
        "UnsupportedDuration",
        "duration",
        f"duration {duration!r} is not offered by {request.model}",
        f"use a whole number of seconds {_duration_range(spec)}, or leave it out for {spec.default_duration}",
    )


def _duration_range(spec: ModelSpec) -> str:
    low, high = spec.min_duration, spec.max_duration
    if spec.durations == tuple(range(low, high + 1)):
        return f"from {low} to {high}"
    return "among " + ", ".join(str(d) for d in spec.durations)


def _check_template(spec: ModelSpec, request: CreateTaskRequest) -> None:
    if request.template is None:
        return
    if not spec.supports_templates:
        raise _job_error(
            "TemplateNotSupported",
            "template",
            f"{request.model} has no effect templates",
            f"drop the template, or use {_template_models()} for effects",
        )
    if request.template not in spec.templates:
        raise _job_error(
            "UnknownTemplate",
            "template",
            f"template '{request.template}' is not offered by {request.model}",
            f"use one of: {', '.join(sorted(spec.templates))}",
        )


def _check_media(spec: ModelSpec, request: CreateTaskRequest) -> None:
    """Only the model's combinations of inputs (roles), then each input's URL form."""
    present = frozenset(request.media)
    if not spec.accepts(present, with_template=request.template is not None):
        allowed = spec.template_media_sets if request.template is not None else spec.media_sets
        raise _combination_error(spec, request, present, allowed)
    for role, url in request.media.items():
        field = CreateTaskRequest.url_field(role)
        if role in catalog.IMAGE_ROLES:
            _check_frame_url(url, field)
        else:
            _check_media_url(url, field, catalog.ROLE_NOUNS[role])


def _combination_error(
    spec: ModelSpec, request: CreateTaskRequest, present: frozenset[str], allowed: frozenset[frozenset[str]]
) -> InvalidJob:
    model = request.model
    for role in catalog.MEDIA_ROLES:
        if role in present and role not in spec.media_roles:
            return _unsupported_media(spec, role)
    if request.template is not None and catalog.LAST in present:
        # The provider accepts template + last frame and silently ignores the last frame. Someone who
        # sent both clearly expected the video to end on that frame, and would pay for a video that does
        # not, so we refuse instead of guessing which of the two they meant.
        return _job_error(
            "TemplateWithLastFrame",
            "last_frame_url",
            f"template '{request.template}' uses only the first frame and would ignore the last frame",
            "remove the last frame to use the effect, or remove the template to go from first to last frame",
        )
    if catalog.FIRST in present and catalog.FIRST_CLIP in present:
        return _job_error(
            "FirstFrameWithFirstClip",
            "first_clip_url",
            f"{model} takes a first frame or a first clip, not both",
            f"remove {catalog.ROLE_FILES[catalog.FIRST]} to continue the clip, or remove "
            f"{catalog.ROLE_FILES[catalog.FIRST_CLIP]} to start from the frame",
        )
    if catalog.FIRST_CLIP in present and catalog.AUDIO in present:
        return _job_error(
            "AudioWithFirstClip",
            "audio_url",
            f"{model} continues a first clip without driving audio (its sound continues the clip's)",
            f"remove {catalog.ROLE_FILES[catalog.AUDIO]}, or start from a first frame instead of the clip",
        )
    starts = [role for role in (catalog.FIRST, catalog.FIRST_CLIP) if role in spec.media_roles]
    if not any(role in present for role in starts):
        nouns = " or a ".join(catalog.ROLE_NOUNS[role] for role in starts)
        files = ", or ".join(catalog.ROLE_FILES[role] for role in starts)
        return _job_error("MissingFrame", "first_frame_url", f"{model} needs a {nouns}", f"add {files}")
    if catalog.LAST not in present and present | {catalog.LAST} in allowed:
        # kf2v is first-and-last-frame: without a template, a missing last frame is a mistake.
        others = _models_offering(lambda m: m.accepts(present), spec)
        return _job_error(
            "MissingLastFrame",
            "last_frame_url",
            "a last frame is required (the video goes from the first frame to the last frame)",
            "add the last frame"
            + (", or choose an effect template" if spec.supports_templates else "")
            + (f", or use {others}, which can start from the first frame alone" if others else ""),
        )
    valid = "; ".join(sorted(_combination_text(combo) for combo in allowed))
    return _job_error(
        "InvalidMediaCombination",
        "media",
        f"{model} does not take {_combination_text(present) or 'no input at all'}",
        f"give one of: {valid}",
    )


def _combination_text(roles: frozenset[str]) -> str:
    return " + ".join(catalog.ROLE_NOUNS[role] for role in catalog.MEDIA_ROLES if role in roles)


def _unsupported_media(spec: ModelSpec, role: str) -> InvalidJob:
    others = _models_offering(lambda m: role in m.media_roles, spec)
    noun = catalog.ROLE_NOUNS.get(role, role)
    return _job_error(
        "MediaNotSupported",
        CreateTaskRequest.url_field(role) if role in catalog.MEDIA_ROLES else "media",
        f"{spec.name} takes no {noun}",
        f"remove {catalog.ROLE_FILES.get(role, role)}" + (f", or use {others}" if others else ""),
    )


def _models_offering(test: Callable[[ModelSpec], bool], besides: ModelSpec) -> str:
    return ", ".join(name for name, m in catalog.MODELS.items() if m is not besides and test(m))


def _check_inspected(
    spec: ModelSpec,
    request: CreateTaskRequest,
    *,
    first: ImageInfo | None,
    last: ImageInfo | None,
    audio: AudioInfo | None,
    first_clip: ClipInfo | None,
) -> None:
    limits = spec.image_limits
    for info, role in ((first, catalog.FIRST), (last, catalog.LAST)):
        if info is None:
            continue
        name = catalog.ROLE_NOUNS[role]
        if info.size_bytes > limits.max_bytes:
            raise _image_error(
                name,
                "ImageFileTooLarge",
                f"{name} is {_mb(info.size_bytes)}; {spec.name} accepts at most {_mb(limits.max_bytes)}",
                "re-save it as JPEG at a lower quality, or scale it down",
            )
        _check_image_facts(name, info.format, info.format, info.width, info.height, limits)
    if audio is not None and spec.audio_limits is not None:
        audio_limits = spec.audio_limits
        name = catalog.ROLE_NOUNS[catalog.AUDIO]
        if audio.format not in audio_limits.formats or audio.size_bytes > audio_limits.max_bytes:
            raise _input_error(
                name,
                "UnsupportedAudio",
                f"{name} ({audio.format}, {_mb(audio.size_bytes)}) is not accepted by {spec.name}",
                f"use {_names(audio_limits.formats)} of at most {_mb(audio_limits.max_bytes)}",
            )
        _check_length(
            name,
            audio.duration_s,
            audio_limits.min_duration_s,
            audio_limits.max_duration_s,
            "Audio",
            "cut it to",
        )
    if first_clip is not None and spec.clip_limits is not None:
        _check_clip_info(spec, spec.clip_limits, first_clip)
        # The duration includes the clip (A1: 15 s with a 3 s clip makes 12 s of new video). What the
        # provider does with a duration not longer than the clip is not documented: we refuse it, since
        # it would pay for no new video.
        if request.first_clip_url is not None and request.duration <= first_clip.duration_s:
            least = min(spec.max_duration, int(first_clip.duration_s) + 1)
            raise _job_error(
                "DurationWithinFirstClip",
                "duration",
                f"duration {request.duration} includes the {first_clip.duration_s:.1f}-second first clip and "
                "would leave no new video",
                f"set duration to at least {least} (the clip plus the seconds to add), or use a shorter clip",
            )


def _check_clip_info(spec: ModelSpec, limits: ClipLimits, clip: ClipInfo) -> None:
    name = catalog.ROLE_NOUNS[catalog.FIRST_CLIP]
    w, h = clip.width, clip.height
    if (
        clip.format not in limits.formats
        or clip.size_bytes > limits.max_bytes
        or min(w, h) < limits.min_side
        or max(w, h) > limits.max_side
        or (limits.max_aspect is not None and max(w, h) > limits.max_aspect * min(w, h))
    ):
        raise _input_error(
            name,
            "UnsupportedClip",
            f"{name} ({clip.format}, {w}x{h}, {_mb(clip.size_bytes)}) is not accepted by {spec.name}",
            f"use {_names(limits.formats)} of at most {_mb(limits.max_bytes)} with sides between "
            f"{limits.min_side} and {limits.max_side} pixels",
        )
    _check_length(name, clip.duration_s, limits.min_duration_s, limits.max_duration_s, "Clip", "trim it to")


def _check_frame_url(url: object, field: str) -> None:
    if url is None or url == "":
        raise _job_error(
            "MissingFrame", field, f"{field} is empty", "give an https URL or a data URI of the image"
        )
    if not isinstance(url, str):
        raise _job_error(
            "InvalidFrameUrl", field, f"{field} is not a string", "give an https URL or a data URI"
        )
    if url.startswith("data:"):
        if _DATA_URI.fullmatch(url) is None:
            raise _job_error(
                "InvalidFrameUrl",
                field,
                f"{field} is a data URI but not of the form data:image/<type>;base64,<data>",
                "build it with data_uri()",
            )
        return
    if not _is_fetchable_url(url):
        raise _job_error(
            "InvalidFrameUrl",
            field,
            f"{field} is neither an http(s) URL, an oss:// temporary upload nor a data:image/...;base64 URI",
            "give an https URL, or read the file and send data_uri() of it",
        )


def _check_media_url(url: object, field: str, noun: str) -> None:
    if url is None or url == "":
        raise _job_error("MissingMedia", field, f"{field} is empty", f"give an https URL of the {noun}")
    if not isinstance(url, str):
        raise _job_error(
            "InvalidMediaUrl", field, f"{field} is not a string", f"give an https URL of the {noun}"
        )
    if url.startswith("data:"):
        # A1 documents base64 data URIs for images only
        raise _job_error(
            "InvalidMediaUrl",
            field,
            f"{field} is a data URI; the provider takes a {noun} only by URL",
            "give an https URL (a presigned link) or an oss:// temporary upload",
        )
    if not _is_fetchable_url(url):
        raise _job_error(
            "InvalidMediaUrl",
            field,
            f"{field} is neither an http(s) URL nor an oss:// temporary upload",
            f"give an https URL of the {noun}",
        )


def _is_fetchable_url(url: str) -> bool:
    """An http(s) URL with a host, or an ``oss://bucket/key`` temporary upload (sent with the resolve
    header); no whitespace."""
    if any(ch.isspace() for ch in url):
        return False
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return bool(parts.netloc)
    if scheme == "oss":
        return bool(parts.netloc) and parts.path.strip("/") != ""
    return False


def _check_text(text: str | None, field: str, limit: int, code: str) -> None:
    if text is None:
        return
    if not isinstance(text, str):
        raise _job_error("InvalidText", field, f"{field} is not text", "send it as a string")
    if len(text) > limit:
        raise _job_error(
            code,
            field,
            f"{field} is {len(text)} characters; the provider keeps only the first {limit} and would drop "
            "the rest silently",
            f"shorten it to {limit} characters or fewer",
        )


def _check_declared_type(url: str | None, info: ImageInfo | None, field: str) -> None:
    if info is None or url is None:
        return
    match = _DATA_URI.fullmatch(url) if url.startswith("data:") else None
    if match is not None and match.group(1).lower() != info.mime:
        raise _job_error(
            "FrameTypeMismatch",
            field,
            f"{field} declares {match.group(1)} but the image is {info.format}",
            "build it with data_uri()",
        )


def _template_models() -> str:
    return ", ".join(sorted(name for name, spec in catalog.MODELS.items() if spec.supports_templates))


def _job_error(code: str, field: str, problem: str, action: str) -> InvalidJob:
    return InvalidJob(f"{problem}; {action}", code=code, hint=action, field=field)
