"""What the provider offers, as data: models, their request shapes, limits, quotas, regions and hosts.

A new model is one more ``ModelSpec`` in ``MODELS``; nothing else branches on model names. A further model
that shares a request shape (a dated snapshot, a regional spelling) is a name on an existing entry
(``snapshots``, ``regional_names``), not a second entry: ``model_spec`` finds the entry by any of its names.

Sources: the Wan kf2v API reference (newest zh version, "S1") and the rate-limit page ("S6"), see
``dashscope-kf2v-api.md``; for ``wan2.7-i2v`` the official API reference ("A1", "A2"), guide ("G1"), rate
limits ("RL"), pricing ("PR") and console catalog ("CAT"), see ``wan27-i2v.md`` (prices: its section 6). Where the kf2v reference
changed over time (image sides [360, 2000] in an older version, [240, 8000] in the newest), the newest is
the default and the older one is kept as ``STRICT_IMAGE_LIMITS``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from inbetween.errors import ConfigError

# Total pixel targets per resolution tier. 720P is confirmed by the guide's worked example
# (750x1000 -> 816x1104); 480P and 1080P follow the Wan convention (832x480, 1920x1080). wan2.7's 1080P
# target is assumed to be the same (no 1080P example is published; reference §3.2).
RESOLUTION_PIXELS: dict[str, int] = {
    "480P": 832 * 480,
    "720P": 1280 * 720,
    "1080P": 1920 * 1080,
}

FIXED_DURATION_S = 5  # the kf2v models' only duration, and wan2.7's default
VIDEO_FPS = 30
SEED_MIN, SEED_MAX = 0, 2_147_483_647
PROMPT_MAX_CHARS = 800  # kf2v; each model's own limit is ModelSpec.prompt_max_chars
NEGATIVE_PROMPT_MAX_CHARS = 500
QUERY_RPS_PER_ACCOUNT = 20  # task get / list / cancel share this

MB = 1024 * 1024

KF2V_CREATE_PATH = "/services/aigc/image2video/video-synthesis"
VIDEO_GENERATION_CREATE_PATH = "/services/aigc/video-generation/video-synthesis"


class RequestShape(StrEnum):
    """How a model's create body is built (``CreateTaskRequest.to_body``)."""

    KF2V = "kf2v"  # input.first_frame_url / last_frame_url / template
    I2V_MEDIA = "i2v-media"  # input.media: [{type, url}]


# -- media roles --------------------------------------------------------------------------------------
# A job's inputs by role (the drop folder's file names: first.png, last.png, audio.mp3, first_clip.mp4).
FIRST = "first"
LAST = "last"
AUDIO = "audio"
FIRST_CLIP = "first_clip"
MEDIA_ROLES: tuple[str, ...] = (FIRST, LAST, AUDIO, FIRST_CLIP)
IMAGE_ROLES: frozenset[str] = frozenset({FIRST, LAST})

# The i2v-media shape's ``input.media[].type`` for each role, in the order the body lists them: that order
# reproduces every one of the reference's six sample arrays (§1.4); the provider does not seem to care.
MEDIA_TYPES: dict[str, str] = {
    FIRST_CLIP: "first_clip",
    FIRST: "first_frame",
    LAST: "last_frame",
    AUDIO: "driving_audio",
}

# What messages call each role, and the drop folder's file names for it.
ROLE_NOUNS: dict[str, str] = {
    FIRST: "first frame",
    LAST: "last frame",
    AUDIO: "driving audio",
    FIRST_CLIP: "first clip",
}
ROLE_FILES: dict[str, str] = {
    FIRST: "first.<ext>",
    LAST: "last.<ext>",
    AUDIO: "audio.wav or audio.mp3",
    FIRST_CLIP: "first_clip.mp4 or first_clip.mov",
}


@dataclass(frozen=True, slots=True)
class ImageLimits:
    formats: frozenset[str] = frozenset({"JPEG", "PNG", "BMP", "WEBP"})  # JPG is JPEG
    min_side: int = 240
    max_side: int = 8000
    max_bytes: int = 10 * MB
    alpha_allowed: bool = False
    # long side / short side; None: no documented bound (kf2v)
    max_aspect: float | None = None


@dataclass(frozen=True, slots=True)
class AudioLimits:
    formats: frozenset[str] = frozenset({"wav", "mp3"})
    min_duration_s: float = 2.0
    max_duration_s: float = 30.0
    max_bytes: int = 15 * MB


@dataclass(frozen=True, slots=True)
class ClipLimits:
    formats: frozenset[str] = frozenset({"mp4", "mov"})
    min_side: int = 240
    max_side: int = 4096
    max_aspect: float | None = 8.0
    min_duration_s: float = 2.0
    max_duration_s: float = 10.0
    max_bytes: int = 100 * MB


# A container's length is a whole number of codec frames (MP3: 26 ms, AAC: 21 ms at 48 kHz, a video
# frame: 33 ms at 30 fps), so a file cut to exactly 30 s measures a little more. Durations within this of
# a bound count as on it. Our choice: the provider does not say how it measures.
DURATION_TOLERANCE_S = 0.05

IMAGE_LIMITS = ImageLimits()
STRICT_IMAGE_LIMITS = ImageLimits(min_side=360, max_side=2000)
# wan2.7-i2v (A1 §2): the same formats and sides, 20 MB, aspect 1:8 to 8:1. A third-party page gives
# 360-2000 px, 10 MB and 3-30 s audio (older Wan models' figures); the official reference wins.
WAN27_IMAGE_LIMITS = ImageLimits(max_bytes=20 * MB, max_aspect=8.0)
WAN27_AUDIO_LIMITS = AudioLimits()
WAN27_CLIP_LIMITS = ClipLimits()

_KF2V_MEDIA_SETS = frozenset({frozenset({FIRST, LAST})})
# the six task types of wan2.7-i2v (A1, G1 §1.4-1.5); every other combination is refused
_WAN27_MEDIA_SETS = frozenset(
    {
        frozenset({FIRST}),
        frozenset({FIRST, AUDIO}),
        frozenset({FIRST, LAST}),
        frozenset({FIRST, LAST, AUDIO}),
        frozenset({FIRST_CLIP}),
        frozenset({FIRST_CLIP, LAST}),
    }
)


# -- prices -------------------------------------------------------------------------------------------
# The provider bills every region in CNY (PR states the Singapore rows in CNY too); amounts are integer
# millionths of the currency ("micros"), never floats, so sums and budgets are exact.
BILLING_CURRENCY = "CNY"
MICROS_PER_UNIT = 1_000_000
# PR, the zh pricing page "模型调用计费" (https://help.aliyun.com/zh/model-studio/model-pricing), read from
# the modelstudioai mirror at the commit whose copy of the page last changed on this date; CAT (the
# console's model catalog) gives the same Beijing figures
_PR = "PR: help.aliyun.com/zh/model-studio/model-pricing (mirror @62167f8); CAT agrees for Beijing"
_PR_DATE = "2026-05-28"


@dataclass(frozen=True, slots=True)
class Price:
    """What one second of output video costs (inputs are free; a failed task costs nothing), with where
    the figure comes from and when it was read."""

    region: str
    resolution: str
    per_second_micros: int  # millionths of ``currency`` per billed second
    source: str = _PR
    as_of: str = _PR_DATE
    currency: str = BILLING_CURRENCY


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    resolutions: tuple[str, ...]
    default_resolution: str
    # the request shape and the path the create call posts to (under the region's /api/v1)
    shape: RequestShape = RequestShape.KF2V
    create_path: str = KF2V_CREATE_PATH
    # whole seconds the model can make, and the one it makes when none is asked for
    durations: tuple[int, ...] = (FIXED_DURATION_S,)
    default_duration: int = FIXED_DURATION_S
    prompt_max_chars: int = PROMPT_MAX_CHARS
    negative_prompt_max_chars: int = NEGATIVE_PROMPT_MAX_CHARS
    image_limits: ImageLimits = IMAGE_LIMITS
    audio_limits: AudioLimits | None = None  # None: the model takes no driving audio
    clip_limits: ClipLimits | None = None  # None: the model takes no first clip
    # the roles a task may have, as the exact sets allowed; with an effect template, template_media_sets
    media_sets: frozenset[frozenset[str]] = _KF2V_MEDIA_SETS
    template_media_sets: frozenset[frozenset[str]] = frozenset()
    templates: frozenset[str] = frozenset()
    submit_rps: float = 2.0
    max_concurrent: int = 2
    # tasks the provider holds PENDING beyond the concurrent ones (CAT's async_user_queue_limit); None:
    # not published
    provider_queue: int | None = None
    # the tier field usage reports: "SR" (2.2 models, wan2.7) or "video_ratio" (2.1 models)
    usage_style: str = "SR"
    # the usage field the bill counts seconds of: kf2v "video_duration", wan2.7 "duration" (its SDK's
    # video_duration is a constant 0 there)
    billed_usage_field: str = "video_duration"
    # generation time, seconds: the reference says "usually 1-5 minutes"; the longest is when a task's
    # finished event (provider push) counts as overdue
    min_generation_s: int = 60
    max_generation_s: int = 300
    # the regions that offer the model, and the name each region's API knows it by where it differs
    regions: tuple[str, ...] = ("cn-beijing",)
    regional_names: dict[str, str] = field(default_factory=dict)
    # dated snapshots: other names of the same model (same shape, limits and quotas), sent as named
    snapshots: tuple[str, ...] = ()
    # what one output second costs, per region and resolution, as the provider bills it (``Price``)
    prices: tuple[Price, ...] = ()

    def price(self, region: str, resolution: str) -> Price | None:
        """The price of one output second at ``resolution`` in ``region``; None if the table has none."""
        for price in self.prices:
            if price.region == region and price.resolution == resolution:
                return price
        return None

    @property
    def supports_templates(self) -> bool:
        return bool(self.templates)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the provider may know this model by: ours, the regional spellings, the snapshots."""
        seen = dict.fromkeys((self.name, *self.regional_names.values(), *self.snapshots))
        return tuple(seen)

    @property
    def media_roles(self) -> frozenset[str]:
        """Every role that appears in some allowed combination."""
        return frozenset().union(*self.media_sets, *self.template_media_sets)

    def accepts(self, roles: Iterable[str], *, with_template: bool = False) -> bool:
        """Whether a task of exactly these input roles is one the model takes (with an effect template:
        the template's combinations)."""
        allowed = self.template_media_sets if with_template else self.media_sets
        return frozenset(roles) in allowed

    def max_input_bytes(self, role: str) -> int | None:
        """The largest file the model accepts for ``role``; None if it takes no such input."""
        if role not in self.media_roles:
            return None
        if role in IMAGE_ROLES:
            return self.image_limits.max_bytes
        limits = self.audio_limits if role == AUDIO else self.clip_limits
        return limits.max_bytes if limits else None

    @property
    def min_duration(self) -> int:
        return min(self.durations)

    @property
    def max_duration(self) -> int:
        return max(self.durations)

    @property
    def event_key_prefix(self) -> str:
        """The start of a task-finished event's ``data.user_api_unique_key`` for this model (push): the
        create path's parts, e.g. ``apikey:v1:aigc:video-generation:video-synthesis:``. Inferred from
        kf2v's example for wan2.7 (reference §8)."""
        return "apikey:v1:" + self.create_path.strip("/").removeprefix("services/").replace("/", ":") + ":"


_WAN27_REGIONS = ("cn-beijing", "ap-southeast-1")

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="wan2.2-kf2v-flash",
            resolutions=("480P", "720P", "1080P"),
            default_resolution="720P",
            usage_style="SR",
            # the first check: the reference's "usually 1-5 minutes" (S1) gives no faster figure for flash
            # (an earlier 45 s had no source, and cost ~1 task list a job at quota 2)
            min_generation_s=60,
            # RL and PR list it for Beijing only; a 2026 EN guide calls it on dashscope-intl (kf2v note §10)
            regions=("cn-beijing", "ap-southeast-1"),
            prices=(
                Price("cn-beijing", "480P", 100_000),
                Price("cn-beijing", "720P", 200_000),
                Price("cn-beijing", "1080P", 480_000),
            ),
        ),
        ModelSpec(
            name="wanx2.1-kf2v-plus",
            resolutions=("720P",),
            default_resolution="720P",
            templates=frozenset({"hanfu-1", "solaron", "magazine", "mech1", "mech2"}),
            # an effect template animates the first frame alone
            template_media_sets=frozenset({frozenset({FIRST})}),
            usage_style="video_ratio",
            min_generation_s=90,
            regions=("cn-beijing", "ap-southeast-1"),
            regional_names={"ap-southeast-1": "wan2.1-kf2v-plus"},
            prices=(
                Price("cn-beijing", "720P", 700_000),
                # $0.10/s in the older EN kf2v reference (S3, Jun 2025), which this CNY figure converts to
                Price("ap-southeast-1", "720P", 733_924),
            ),
        ),
        ModelSpec(
            name="wan2.7-i2v",
            shape=RequestShape.I2V_MEDIA,
            create_path=VIDEO_GENERATION_CREATE_PATH,
            # no 480P (A1 lists only these two); the default is 1080P, unlike kf2v
            resolutions=("720P", "1080P"),
            default_resolution="1080P",
            durations=tuple(range(2, 16)),
            default_duration=FIXED_DURATION_S,
            prompt_max_chars=5000,
            negative_prompt_max_chars=500,
            image_limits=WAN27_IMAGE_LIMITS,
            audio_limits=WAN27_AUDIO_LIMITS,
            clip_limits=WAN27_CLIP_LIMITS,
            media_sets=_WAN27_MEDIA_SETS,
            submit_rps=5.0,
            max_concurrent=5,
            provider_queue=500,
            usage_style="SR",
            billed_usage_field="duration",
            # A1: "1-5 minutes" typical; its samples took ~1.7 min (10 s at 720P) and ~9.7 min (15 s)
            min_generation_s=60,
            max_generation_s=600,
            # the same name in both regions (A1); Virginia is unconfirmed (reference §1.1), so not listed
            regions=_WAN27_REGIONS,
            snapshots=("wan2.7-i2v-2026-04-25",),
            prices=(
                Price("cn-beijing", "720P", 600_000),
                Price("cn-beijing", "1080P", 1_000_000),
                Price("ap-southeast-1", "720P", 733_924),  # about $0.10/s
                Price("ap-southeast-1", "1080P", 1_100_886),  # about $0.15/s
            ),
        ),
    )
}
# Other names of the same models (regional spellings, snapshots) -> the entry's name.
MODEL_ALIASES: dict[str, str] = {
    alias: spec.name for spec in MODELS.values() for alias in spec.names if alias != spec.name
}

# what a new deployment uses when a drop names no model: the provider's current model
DEFAULT_MODEL = "wan2.7-i2v"


def model_spec(name: str) -> ModelSpec | None:
    """The catalog entry of ``name``: a model's name, a regional spelling or a snapshot."""
    return MODELS.get(MODEL_ALIASES.get(name, name))


def canonical_name(name: str) -> str | None:
    """The entry name ``name`` belongs to (``wan2.7-i2v`` for its snapshot); None if unknown."""
    spec = model_spec(name)
    return spec.name if spec else None


def same_model(a: str, b: str) -> bool:
    """Whether two provider names are one catalog model (a task listed under the snapshot's name is a
    task of ``wan2.7-i2v``; Singapore's ``wan2.1-kf2v-plus`` is ``wanx2.1-kf2v-plus``)."""
    return a == b or (canonical_name(a) is not None and canonical_name(a) == canonical_name(b))


def provider_model_name(model: str, region: str) -> str:
    """The name ``region``'s API knows ``model`` by (Singapore spells the 2.1 model ``wan2.1-...``).
    A snapshot is sent as named: someone who asked for a dated snapshot wants that snapshot."""
    spec = model_spec(model)
    if spec is None:
        return model
    if model in spec.snapshots:
        return model
    return spec.regional_names.get(region, spec.name)


def provider_model_names(model: str, region: str) -> tuple[str, ...]:
    """Every name a task of ``model`` may carry in ``region``'s task list: its regional name first, then
    its snapshots (the provider's list filters on one exact ``model_name``)."""
    spec = model_spec(model)
    if spec is None:
        return (model,)
    return tuple(dict.fromkeys((spec.regional_names.get(region, spec.name), *spec.snapshots)))


# -- regions and hosts --------------------------------------------------------------------------------

REGION_BASE_URLS: dict[str, str] = {
    "cn-beijing": "https://dashscope.aliyuncs.com/api/v1",
    "ap-southeast-1": "https://dashscope-intl.aliyuncs.com/api/v1",
}
# Regions with a workspace (MaaS) host, https://{WorkspaceId}.{region}.maas.aliyuncs.com/api/v1. A2 lists
# it for Beijing and Singapore (where it is the only host A2 still recommends). The SDK also knows
# us-east-1 and others, but no model of this catalog is confirmed there.
WORKSPACE_REGIONS: tuple[str, ...] = ("cn-beijing", "ap-southeast-1")
_WORKSPACE_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def base_url_for(region: str, workspace_id: str | None = None) -> str:
    """The ``/api/v1`` base URL of ``region``: its shared host, or with ``workspace_id`` its workspace host
    ``https://{workspace_id}.{region}.maas.aliyuncs.com/api/v1``. Raises ``ConfigError`` for a region or
    workspace id we cannot build a host from."""
    if not workspace_id:
        try:
            return REGION_BASE_URLS[region]
        except KeyError:
            known = ", ".join(sorted(REGION_BASE_URLS))
            raise ConfigError(
                f"no DashScope endpoint known for region '{region}'; use one of: {known}"
            ) from None
    if region not in WORKSPACE_REGIONS:
        known = ", ".join(WORKSPACE_REGIONS)
        raise ConfigError(f"no DashScope workspace host known for region '{region}'; use one of: {known}")
    if _WORKSPACE_ID.fullmatch(workspace_id) is None:
        raise ConfigError(
            f"workspace id {workspace_id!r} cannot be a host name; use the id the console shows (e.g. llm-...)"
        )
    return f"https://{workspace_id.lower()}.{region}.maas.aliyuncs.com/api/v1"


# -- output -------------------------------------------------------------------------------------------


def output_size(width: int, height: int, resolution: str) -> tuple[int, int]:
    """The video size the provider produces for a first frame (or wan2.7 first clip) of ``width`` x
    ``height``.

    Keep the input's aspect ratio, scale the pixel count to the tier's target, then round each side
    down to a multiple of 16 (the guide's example: 750x1000 at 720P gives 816x1104; rounding to nearest
    would give 832x1104, which the provider does not produce). wan2.7 documents the same rule (A1 FAQ).
    """
    target = RESOLUTION_PIXELS[resolution]
    scale = math.sqrt(target / (width * height))
    out_w = max(16, int(width * scale) // 16 * 16)
    out_h = max(16, int(height * scale) // 16 * 16)
    return out_w, out_h


def expected_output_size(
    resolution: str,
    *,
    first_frame: tuple[int, int] | None = None,
    first_clip: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """The output size of a task: its aspect comes from the first clip (a continuation) or else from the
    first frame (A1 §3.2). Give the (width, height) of the one the task has."""
    source = first_clip or first_frame
    if source is None:
        raise ValueError("expected_output_size needs the first frame's or the first clip's size")
    return output_size(source[0], source[1], resolution)
