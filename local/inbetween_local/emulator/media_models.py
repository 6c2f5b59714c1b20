"""The media-protocol models (``wan2.7-i2v`` and its dated snapshot), as the emulator knows them.

The shared catalog (``inbetween.domain.catalog``) does not list wan2.7 yet, so its facts live here, taken
from the reference notes (``wan27-i2v.md``; section numbers below). ``media_model(name)`` is the only
lookup the emulator makes: once the catalog has the entry, that function can read it instead and nothing
else changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inbetween.domain.catalog import ImageLimits

FIRST_FRAME, LAST_FRAME, DRIVING_AUDIO, FIRST_CLIP = (
    "first_frame",
    "last_frame",
    "driving_audio",
    "first_clip",
)
MEDIA_TYPES = (FIRST_FRAME, LAST_FRAME, DRIVING_AUDIO, FIRST_CLIP)
IMAGE_TYPES = frozenset({FIRST_FRAME, LAST_FRAME})

# §1.4: the six task types, and nothing else (§1.5)
COMBINATIONS: tuple[frozenset[str], ...] = (
    frozenset({FIRST_FRAME}),
    frozenset({FIRST_FRAME, DRIVING_AUDIO}),
    frozenset({FIRST_FRAME, LAST_FRAME}),
    frozenset({FIRST_FRAME, LAST_FRAME, DRIVING_AUDIO}),
    frozenset({FIRST_CLIP}),
    frozenset({FIRST_CLIP, LAST_FRAME}),
)

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class AvLimits:
    """Limits of an audio or video input (§2). ``formats`` are PyAV demuxer names."""

    formats: frozenset[str]
    max_bytes: int
    min_seconds: float
    max_seconds: float
    min_side: int | None = None
    max_side: int | None = None
    max_aspect: float | None = None  # 8.0: between 1:8 and 8:1


AUDIO_LIMITS = AvLimits(formats=frozenset({"wav", "mp3"}), max_bytes=15 * MB, min_seconds=2, max_seconds=30)
# PyAV names the one demuxer of mp4 and mov "mov,mp4,m4a,3gp,3g2,mj2"
CLIP_LIMITS = AvLimits(
    formats=frozenset({"mov,mp4,m4a,3gp,3g2,mj2"}),
    max_bytes=100 * MB,
    min_seconds=2,
    max_seconds=10,
    min_side=240,
    max_side=4096,
    max_aspect=8.0,
)
# §2: JPEG/JPG/PNG without alpha/BMP/WEBP, sides [240, 8000], aspect 1:8..8:1, <= 20 MB
WAN27_IMAGE_LIMITS = ImageLimits(max_bytes=20 * MB)


@dataclass(frozen=True, slots=True)
class MediaModelFacts:
    name: str
    resolutions: tuple[str, ...] = ("720P", "1080P")  # §1.6: no 480P
    default_resolution: str = "1080P"
    min_duration_s: int = 2
    max_duration_s: int = 15
    default_duration_s: int = 5
    prompt_max_chars: int = 5000
    negative_prompt_max_chars: int = 500
    image_limits: ImageLimits = WAN27_IMAGE_LIMITS
    image_max_aspect: float = 8.0
    audio_limits: AvLimits = AUDIO_LIMITS
    clip_limits: AvLimits = CLIP_LIMITS
    combinations: tuple[frozenset[str], ...] = COMBINATIONS
    # §5.1 (RL, CAT): 5 creates per second, 5 running, a queue of 500 behind them
    submit_rps: float = 5.0
    max_concurrent: int = 5
    queue_limit: int = 500
    regional_names: dict[str, str] = field(default_factory=dict)


MEDIA_MODELS: dict[str, MediaModelFacts] = {
    facts.name: facts for facts in (MediaModelFacts("wan2.7-i2v"), MediaModelFacts("wan2.7-i2v-2026-04-25"))
}


def media_model(name: object) -> MediaModelFacts | None:
    """The facts of a model that takes ``input.media``, or None (kf2v and unknown models)."""
    return MEDIA_MODELS.get(name) if isinstance(name, str) else None


def api_route(model: str) -> str:
    """The ``{group}`` of the create path a model answers on: kf2v on image2video, the rest on
    video-generation (the SDK routes the same way, §7.3)."""
    return "video-generation" if media_model(model) is not None else "image2video"


def user_api_unique_key(model: str) -> str:
    """``apikey:v1:aigc:<task>:video-synthesis:<model>`` as in the list API and the finished event (§8;
    the wan2.7 form is inferred from the format, not confirmed)."""
    return f"apikey:v1:aigc:{api_route(model)}:video-synthesis:{model}"
