"""Checks that run before we pay: the frames and the request, against the catalogue.

Everything the provider would reject (or, worse, silently change) is refused here with a message that says
what is wrong and what to do. ``inspect_image`` raises ``errors.InvalidImage``; ``validate_request`` raises
``errors.InvalidJob``. Both carry a distinct ``code`` and a ``hint``.
"""

from __future__ import annotations

import base64
import io
import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from PIL import Image

from inbetween.domain import catalog
from inbetween.domain.catalog import IMAGE_LIMITS, ImageLimits
from inbetween.errors import InvalidImage, InvalidJob
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


def validate_request(
    request: CreateTaskRequest, *, first: ImageInfo | None = None, last: ImageInfo | None = None
) -> None:
    """Refuse a request the provider would reject or silently change. Raises ``InvalidJob`` whose message
    is "what is wrong; what to do" and whose ``hint`` is the "what to do" part.

    ``first``/``last`` are the inspected frames, when known: a data URI must then declare their type.
    """
    spec = catalog.model_spec(request.model)
    if spec is None:
        known = ", ".join(sorted(catalog.MODELS) + sorted(catalog.MODEL_ALIASES))
        raise _job_error(
            "UnknownModel", "model", f"model '{request.model}' is not known", f"use one of: {known}"
        )

    if request.resolution is not None and request.resolution not in spec.resolutions:
        raise _job_error(
            "UnsupportedResolution",
            "resolution",
            f"resolution '{request.resolution}' is not offered by {request.model}",
            f"use one of: {', '.join(spec.resolutions)}",
        )
    if isinstance(request.duration, bool) or request.duration != catalog.FIXED_DURATION_S:
        raise _job_error(
            "UnsupportedDuration",
            "duration",
            f"duration {request.duration!r} is not possible: the model always makes "
            f"{catalog.FIXED_DURATION_S}-second videos",
            f"use {catalog.FIXED_DURATION_S} or leave it out",
        )

    _check_frame_url(request.first_frame_url, "first_frame_url")
    if request.template is not None:
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
        # The provider accepts template + last frame and silently ignores the last frame. Someone who
        # sent both clearly expected the video to end on that frame, and would pay for a video that does
        # not, so we refuse instead of guessing which of the two they meant.
        if request.last_frame_url is not None:
            raise _job_error(
                "TemplateWithLastFrame",
                "last_frame_url",
                f"template '{request.template}' uses only the first frame and would ignore the last frame",
                "remove the last frame to use the effect, or remove the template to go from first to last frame",
            )
    else:
        # Our product is first-and-last-frame: without a template, a missing last frame is a mistake.
        if request.last_frame_url is None:
            raise _job_error(
                "MissingLastFrame",
                "last_frame_url",
                "a last frame is required (the video goes from the first frame to the last frame)",
                "add the last frame, or choose an effect template",
            )
        _check_frame_url(request.last_frame_url, "last_frame_url")

    # The provider silently truncates long prompts; we refuse so no part of the user's text is dropped.
    _check_text(request.prompt, "prompt", catalog.PROMPT_MAX_CHARS, "PromptTooLong")
    _check_text(
        request.negative_prompt, "negative_prompt", catalog.NEGATIVE_PROMPT_MAX_CHARS, "NegativePromptTooLong"
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
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(ch.isspace() for ch in url):
        problem = (
            f"{field} is an oss:// temporary URL, which this client does not support"
            if parts.scheme.lower() == "oss"
            else f"{field} is neither an http(s) URL nor a data:image/...;base64 URI"
        )
        raise _job_error(
            "InvalidFrameUrl", field, problem, "give an https URL, or read the file and send data_uri() of it"
        )


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
