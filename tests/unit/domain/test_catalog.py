"""The catalogue as data: each model's shape, limits, quotas and names, the regions' hosts, the output
size rule. The figures are the references' (wan27-i2v.md, dashscope-kf2v-api.md)."""

from __future__ import annotations

import pytest
from inbetween.domain import catalog
from inbetween.domain.catalog import MB, RequestShape, model_spec
from inbetween.errors import ConfigError

WAN27 = "wan2.7-i2v"
SNAPSHOT = "wan2.7-i2v-2026-04-25"


def test_wan27_is_one_entry_found_by_its_snapshot_too():
    spec = model_spec(WAN27)
    assert spec is not None and model_spec(SNAPSHOT) is spec
    assert SNAPSHOT not in catalog.MODELS  # a name on the entry, not a second entry
    assert spec.names == (WAN27, SNAPSHOT)
    assert catalog.canonical_name(SNAPSHOT) == WAN27 and catalog.canonical_name("wan9") is None


def test_wan27_request_shape_and_parameters():
    spec = model_spec(WAN27)
    assert spec.shape is RequestShape.I2V_MEDIA
    assert spec.create_path == "/services/aigc/video-generation/video-synthesis"
    assert spec.resolutions == ("720P", "1080P") and spec.default_resolution == "1080P"
    assert spec.durations == tuple(range(2, 16)) and spec.default_duration == 5
    assert (spec.min_duration, spec.max_duration) == (2, 15)
    assert (spec.prompt_max_chars, spec.negative_prompt_max_chars) == (5000, 500)
    assert not spec.supports_templates and spec.template_media_sets == frozenset()


def test_wan27_input_limits():
    spec = model_spec(WAN27)
    image = spec.image_limits
    assert image.formats == frozenset({"JPEG", "PNG", "BMP", "WEBP"}) and not image.alpha_allowed
    assert (image.min_side, image.max_side, image.max_aspect, image.max_bytes) == (240, 8000, 8.0, 20 * MB)
    audio = spec.audio_limits
    assert audio.formats == frozenset({"wav", "mp3"})
    assert (audio.min_duration_s, audio.max_duration_s, audio.max_bytes) == (2, 30, 15 * MB)
    clip = spec.clip_limits
    assert clip.formats == frozenset({"mp4", "mov"})
    assert (clip.min_side, clip.max_side, clip.min_duration_s, clip.max_duration_s) == (240, 4096, 2, 10)
    assert clip.max_bytes == 100 * MB
    assert [spec.max_input_bytes(role) for role in catalog.MEDIA_ROLES] == [
        20 * MB,
        20 * MB,
        15 * MB,
        100 * MB,
    ]


def test_wan27_takes_exactly_the_six_combinations():
    sets = {frozenset(s) for s in model_spec(WAN27).media_sets}
    assert sets == {
        frozenset({"first"}),
        frozenset({"first", "audio"}),
        frozenset({"first", "last"}),
        frozenset({"first", "last", "audio"}),
        frozenset({"first_clip"}),
        frozenset({"first_clip", "last"}),
    }
    assert model_spec(WAN27).media_roles == frozenset(catalog.MEDIA_ROLES)
    wan27 = model_spec(WAN27)
    assert wan27.accepts(["first_clip", "last"]) and wan27.accepts({"first"})
    assert not wan27.accepts({"first", "first_clip"}) and not wan27.accepts(set())
    assert not wan27.accepts({"first"}, with_template=True)  # no templates at all


def test_kf2v_models_keep_their_shape_and_take_frames_only():
    for name in ("wan2.2-kf2v-flash", "wanx2.1-kf2v-plus"):
        spec = model_spec(name)
        assert spec.shape is RequestShape.KF2V
        assert spec.create_path == "/services/aigc/image2video/video-synthesis"
        assert spec.durations == (5,) and spec.default_duration == 5
        assert spec.prompt_max_chars == 800 and spec.image_limits.max_bytes == 10 * MB
        assert spec.image_limits.max_aspect is None
        assert spec.audio_limits is None and spec.clip_limits is None
        assert spec.media_sets == frozenset({frozenset({"first", "last"})})
        assert spec.max_input_bytes("audio") is None and spec.max_input_bytes("first_clip") is None
        assert spec.billed_usage_field == "video_duration"
    # an effect template animates the first frame alone
    plus = model_spec("wanx2.1-kf2v-plus")
    assert plus.template_media_sets == frozenset({frozenset({"first"})})
    assert plus.accepts({"first"}, with_template=True) and not plus.accepts({"first"})
    assert model_spec("wan2.2-kf2v-flash").template_media_sets == frozenset()


def test_quotas_usage_and_timing():
    wan27 = model_spec(WAN27)
    assert (wan27.submit_rps, wan27.max_concurrent, wan27.provider_queue) == (5.0, 5, 500)
    assert (wan27.usage_style, wan27.billed_usage_field) == ("SR", "duration")
    assert wan27.min_generation_s < wan27.max_generation_s
    flash = model_spec("wan2.2-kf2v-flash")
    assert (flash.submit_rps, flash.max_concurrent, flash.provider_queue) == (2.0, 2, None)


def test_regions_names_and_prices():
    wan27 = model_spec(WAN27)
    assert wan27.regions == ("cn-beijing", "ap-southeast-1")
    # the same names in both regions (unlike the 2.1 kf2v model)
    for region in wan27.regions:
        assert catalog.provider_model_name(WAN27, region) == WAN27
        assert catalog.provider_model_name(SNAPSHOT, region) == SNAPSHOT
        assert catalog.provider_model_names(WAN27, region) == (WAN27, SNAPSHOT)
    assert catalog.provider_model_name("wanx2.1-kf2v-plus", "ap-southeast-1") == "wan2.1-kf2v-plus"
    assert catalog.provider_model_name("wan2.1-kf2v-plus", "cn-beijing") == "wanx2.1-kf2v-plus"
    assert catalog.provider_model_names("wanx2.1-kf2v-plus", "ap-southeast-1") == ("wan2.1-kf2v-plus",)
    assert catalog.provider_model_name("someone-elses-model", "cn-beijing") == "someone-elses-model"
    assert catalog.provider_model_names("someone-elses-model", "cn-beijing") == ("someone-elses-model",)
    assert wan27.price("cn-beijing", "720P").per_second_micros == 600_000
    assert wan27.price("cn-beijing", "1080P").per_second_micros == 1_000_000
    assert {p.resolution for p in wan27.prices if p.region == "ap-southeast-1"} == {"720P", "1080P"}


def test_same_model_matches_every_name_of_an_entry():
    assert catalog.same_model(WAN27, SNAPSHOT) and catalog.same_model(SNAPSHOT, WAN27)
    assert catalog.same_model("wan2.1-kf2v-plus", "wanx2.1-kf2v-plus")
    assert not catalog.same_model(WAN27, "wan2.2-kf2v-flash")
    assert catalog.same_model("unknown", "unknown") and not catalog.same_model("unknown", "other")


def test_aliases_point_at_their_entries():
    assert catalog.MODEL_ALIASES == {"wan2.1-kf2v-plus": "wanx2.1-kf2v-plus", SNAPSHOT: WAN27}


def test_event_keys_follow_the_create_path():
    assert model_spec(WAN27).event_key_prefix == "apikey:v1:aigc:video-generation:video-synthesis:"
    # the documented kf2v list entry's user_api_unique_key
    plus = model_spec("wanx2.1-kf2v-plus")
    assert plus.event_key_prefix + plus.name == "apikey:v1:aigc:image2video:video-synthesis:wanx2.1-kf2v-plus"


# -- hosts ---------------------------------------------------------------------------------------------


def test_shared_hosts_per_region():
    assert catalog.base_url_for("cn-beijing") == "https://dashscope.aliyuncs.com/api/v1"
    assert catalog.base_url_for("ap-southeast-1") == "https://dashscope-intl.aliyuncs.com/api/v1"
    assert catalog.base_url_for("cn-beijing", "") == catalog.REGION_BASE_URLS["cn-beijing"]


def test_workspace_hosts_per_region():
    assert (
        catalog.base_url_for("cn-beijing", "llm-abc123")
        == "https://llm-abc123.cn-beijing.maas.aliyuncs.com/api/v1"
    )
    assert (
        catalog.base_url_for("ap-southeast-1", "ws-9F2")
        == "https://ws-9f2.ap-southeast-1.maas.aliyuncs.com/api/v1"
    )


@pytest.mark.parametrize(
    ("region", "workspace", "says"),
    [
        ("mars-1", None, "cn-beijing"),
        ("us-east-1", "llm-abc", "workspace host"),
        ("cn-beijing", "evil.example.com/x", "cannot be a host name"),
        ("cn-beijing", "-leading-dash", "cannot be a host name"),
    ],
)
def test_hosts_we_cannot_build_are_a_config_error(region, workspace, says):
    with pytest.raises(ConfigError) as caught:
        catalog.base_url_for(region, workspace)
    assert says in str(caught.value)


# -- output size ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "resolution", "expected"),
    [
        ((750, 1000), "720P", (816, 1104)),  # the guides' worked example
        ((1024, 1024), "720P", (960, 960)),
        ((1920, 1080), "720P", (1280, 720)),
        ((750, 1000), "1080P", (1232, 1648)),
        ((1920, 1080), "1080P", (1920, 1072)),  # floor to 16 (the real 1080P output is unconfirmed)
        ((4000, 3000), "1080P", (1648, 1232)),
    ],
)
def test_output_size_rule(size, resolution, expected):
    assert catalog.output_size(*size, resolution) == expected


def test_the_output_aspect_follows_the_first_clip_of_a_continuation():
    assert catalog.expected_output_size("720P", first_frame=(750, 1000)) == (816, 1104)
    # a continuation ending on a last frame: the clip sets the shape
    assert catalog.expected_output_size("720P", first_clip=(1920, 1080)) == (1280, 720)
    with pytest.raises(ValueError):
        catalog.expected_output_size("720P")
