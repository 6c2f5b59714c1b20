"""What the provider offers, as data: models, resolutions, templates, image limits, quotas, regions.

A new model is one more ``ModelSpec`` in ``MODELS``; nothing else branches on model names.
Sources: the Wan kf2v API reference (newest zh version, "S1") and the rate-limit page ("S6").
Where the reference changed over time (image sides [360, 2000] in an older version, [240, 8000] in the
newest), the newest is the default and the older one is kept as ``STRICT_IMAGE_LIMITS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Total pixel targets per resolution tier. 720P is confirmed by the guide's worked example
# (750x1000 -> 816x1104); 480P and 1080P follow the Wan convention (832x480, 1920x1080).
RESOLUTION_PIXELS: dict[str, int] = {
    "480P": 832 * 480,
    "720P": 1280 * 720,
    "1080P": 1920 * 1080,
}

FIXED_DURATION_S = 5
VIDEO_FPS = 30
SEED_MIN, SEED_MAX = 0, 2_147_483_647
PROMPT_MAX_CHARS = 800
NEGATIVE_PROMPT_MAX_CHARS = 500
QUERY_RPS_PER_ACCOUNT = 20  # task get / list / cancel share this


@dataclass(frozen=True, slots=True)
class ImageLimits:
    formats: frozenset[str] = frozenset({"JPEG", "PNG", "BMP", "WEBP"})
    min_side: int = 240
    max_side: int = 8000
    max_bytes: int = 10 * 1024 * 1024
    alpha_allowed: bool = False


IMAGE_LIMITS = ImageLimits()
STRICT_IMAGE_LIMITS = ImageLimits(min_side=360, max_side=2000)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    resolutions: tuple[str, ...]
    default_resolution: str
    templates: frozenset[str] = frozenset()
    submit_rps: float = 2.0
    max_concurrent: int = 2
    # usage reports "SR" (2.2 models) or "video_ratio" (2.1 models)
    usage_style: str = "SR"
    # generation time, seconds: the reference says "usually 1-5 minutes"; the longest is when a task's
    # finished event (provider push) counts as overdue
    min_generation_s: int = 60
    max_generation_s: int = 300
    regional_names: dict[str, str] = field(default_factory=dict)

    @property
    def supports_templates(self) -> bool:
        return bool(self.templates)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="wan2.2-kf2v-flash",
            resolutions=("480P", "720P", "1080P"),
            default_resolution="720P",
            usage_style="SR",
            min_generation_s=45,
        ),
        ModelSpec(
            name="wanx2.1-kf2v-plus",
            resolutions=("720P",),
            default_resolution="720P",
            templates=frozenset({"hanfu-1", "solaron", "magazine", "mech1", "mech2"}),
            usage_style="video_ratio",
            min_generation_s=90,
            regional_names={"ap-southeast-1": "wan2.1-kf2v-plus"},
        ),
    )
}
# the Singapore spelling of the 2.1 model is the same model
MODEL_ALIASES: dict[str, str] = {"wan2.1-kf2v-plus": "wanx2.1-kf2v-plus"}

DEFAULT_MODEL = "wan2.2-kf2v-flash"


def model_spec(name: str) -> ModelSpec | None:
    return MODELS.get(MODEL_ALIASES.get(name, name))


def provider_model_name(model: str, region: str) -> str:
    """The name ``region``'s API knows ``model`` by (Singapore spells the 2.1 model ``wan2.1-...``)."""
    spec = model_spec(model)
    return spec.regional_names.get(region, spec.name) if spec else model


REGION_BASE_URLS: dict[str, str] = {
    "cn-beijing": "https://dashscope.aliyuncs.com/api/v1",
    "ap-southeast-1": "https://dashscope-intl.aliyuncs.com/api/v1",
}


def output_size(width: int, height: int, resolution: str) -> tuple[int, int]:
    """The video size the provider produces for a first frame of ``width`` x ``height``.

    Keep the first frame's aspect ratio, scale the pixel count to the tier's target, then round each side
    down to a multiple of 16 (the guide's example: 750x1000 at 720P gives 816x1104; rounding to nearest
    would give 832x1104, which the provider does not produce).
    """
    target = RESOLUTION_PIXELS[resolution]
    scale = math.sqrt(target / (width * height))
    out_w = max(16, int(width * scale) // 16 * 16)
    out_h = max(16, int(height * scale) // 16 * 16)
    return out_w, out_h
