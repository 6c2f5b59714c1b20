"""wan2.7-i2v behind the same client: its request shape (input.media), its rules before paying, its usage,
and the create call's path and headers. The kf2v shapes stay as they were (test_provider_models.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from inbetween.domain import catalog
from inbetween.domain.models import JobSpec
from inbetween.errors import InvalidJob, ProviderUnavailable
from inbetween.provider import CreateTaskRequest, TaskState, Usage, validate_request
from inbetween.provider.validation import AudioInfo, ClipInfo, ImageInfo
from provider_fakes import Recorder, json_response, never_called

WAN27 = "wan2.7-i2v"
SNAPSHOT = "wan2.7-i2v-2026-04-25"
FIRST = "https://example.com/f.png"
LAST = "https://example.com/l.png"
AUDIO = "https://example.com/a.mp3"
CLIP = "https://example.com/c.mp4"
URLS = {"first": FIRST, "last": LAST, "audio": AUDIO, "first_clip": CLIP}

# the reference's six task types (§1.4), each as the media array it documents
SIX = [
    ({"first"}, [{"type": "first_frame", "url": FIRST}]),
    ({"first", "audio"}, [{"type": "first_frame", "url": FIRST}, {"type": "driving_audio", "url": AUDIO}]),
    ({"first", "last"}, [{"type": "first_frame", "url": FIRST}, {"type": "last_frame", "url": LAST}]),
    (
        {"first", "last", "audio"},
        [
            {"type": "first_frame", "url": FIRST},
            {"type": "last_frame", "url": LAST},
            {"type": "driving_audio", "url": AUDIO},
        ],
    ),
    ({"first_clip"}, [{"type": "first_clip", "url": CLIP}]),
    ({"first_clip", "last"}, [{"type": "first_clip", "url": CLIP}, {"type": "last_frame", "url": LAST}]),
]


def spec(**overrides) -> JobSpec:
    fields = {"model": WAN27, "resolution": "1080P", "prompt": "a cat turns its head"} | overrides
    return JobSpec(**fields)


def request_with(roles, **spec_overrides) -> CreateTaskRequest:
    return CreateTaskRequest.for_spec(
        spec(**spec_overrides), region="cn-beijing", media={role: URLS[role] for role in roles}
    )


# -- the body ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("roles", "media"), SIX, ids=["+".join(sorted(r)) for r, _ in SIX])
def test_each_of_the_six_task_types_has_the_documented_body(roles, media):
    request = CreateTaskRequest.for_spec(
        spec(negative_prompt="blur", seed=42, watermark=False, prompt_extend=True, duration=10),
        region="cn-beijing",
        media={role: URLS[role] for role in roles},
    )
    validate_request(request)
    assert request.to_body() == {
        "model": "wan2.7-i2v",
        "input": {"prompt": "a cat turns its head", "negative_prompt": "blur", "media": media},
        "parameters": {
            "resolution": "1080P",
            "duration": 10,
            "prompt_extend": True,
            "watermark": False,
            "seed": 42,
        },
    }


def test_the_duration_is_always_sent_as_an_integer_and_defaults_to_five():
    body = request_with({"first"}, prompt=None).to_body()
    # no prompt: left out (it is optional); the default duration sent all the same
    assert body["input"] == {"media": [{"type": "first_frame", "url": FIRST}]}
    assert body["parameters"] == {
        "resolution": "1080P",
        "duration": 5,
        "prompt_extend": True,
        "watermark": False,
    }
    assert type(body["parameters"]["duration"]) is int


def test_the_snapshot_is_sent_by_its_own_name_and_the_singapore_name_is_the_same():
    assert request_with({"first"}, model=SNAPSHOT).to_body()["model"] == SNAPSHOT
    singapore = CreateTaskRequest.for_spec(spec(), region="ap-southeast-1", media={"first": FIRST})
    assert singapore.model == WAN27


def test_for_spec_keeps_the_frame_keywords_of_its_callers():
    # the call intake and admission make for kf2v models
    kf2v = JobSpec(model="wan2.2-kf2v-flash", resolution="720P", prompt="p")
    old = CreateTaskRequest.for_spec(kf2v, region="cn-beijing", first_frame_url=FIRST, last_frame_url=LAST)
    new = CreateTaskRequest.for_spec(kf2v, region="cn-beijing", media={"first": FIRST, "last": LAST})
    assert old == new
    assert old.to_body() == {
        "model": "wan2.2-kf2v-flash",
        "input": {"first_frame_url": FIRST, "last_frame_url": LAST, "prompt": "p"},
        "parameters": {"resolution": "720P", "prompt_extend": True, "watermark": False},
    }
    # both forms at once, as long as they agree; media given by role
    mixed = CreateTaskRequest.for_spec(
        spec(), region="cn-beijing", first_frame_url=FIRST, last_frame_url=None, media={"audio": AUDIO}
    )
    assert mixed.media == {"first": FIRST, "audio": AUDIO}
    with pytest.raises(ValueError):
        CreateTaskRequest.for_spec(spec(), region="cn-beijing", first_frame_url=FIRST, media={"first": LAST})
    with pytest.raises(ValueError):
        CreateTaskRequest.for_spec(spec(), region="cn-beijing", media={"sound": AUDIO})


def test_a_kf2v_spec_keeps_its_fixed_duration_out_of_the_body():
    kf2v = JobSpec(model="wan2.2-kf2v-flash", resolution="720P", duration=None)
    request = CreateTaskRequest.for_spec(
        kf2v, region="cn-beijing", first_frame_url=FIRST, last_frame_url=LAST
    )
    assert request.duration == 5 and "duration" not in request.to_body()["parameters"]
    asked = dataclasses.replace(kf2v, duration=8)
    request = CreateTaskRequest.for_spec(
        asked, region="cn-beijing", first_frame_url=FIRST, last_frame_url=LAST
    )
    assert request.duration == 8  # sent as asked, so validation can refuse it


def test_a_template_is_never_part_of_the_media_body():
    request = dataclasses.replace(request_with({"first"}), template="mech1")
    assert "template" not in request.to_body()["input"]
    with pytest.raises(InvalidJob) as caught:
        validate_request(request)
    assert caught.value.code == "TemplateNotSupported" and "wanx2.1-kf2v-plus" in caught.value.hint


def test_repr_shortens_every_url():
    huge = "https://example.com/" + "a" * 5000
    text = repr(CreateTaskRequest(model=WAN27, first_clip_url=huge, audio_url=huge))
    assert len(text) < 800 and text.count("(5020 chars)") == 2


# -- validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("roles", [r for r, _ in SIX], ids=["+".join(sorted(r)) for r, _ in SIX])
def test_the_six_combinations_pass_also_for_the_snapshot(roles):
    validate_request(request_with(roles))
    validate_request(request_with(roles, model=SNAPSHOT))


WAN27_BAD = [
    # (code, field, roles, spec overrides, what the message must say)
    (
        "FirstFrameWithFirstClip",
        "first_clip_url",
        {"first", "first_clip"},
        {},
        "a first frame or a first clip, not both",
    ),
    ("FirstFrameWithFirstClip", "first_clip_url", {"first", "first_clip", "last"}, {}, "not both"),
    ("AudioWithFirstClip", "audio_url", {"first_clip", "audio"}, {}, "without driving audio"),
    ("AudioWithFirstClip", "audio_url", {"first_clip", "last", "audio"}, {}, "without driving audio"),
    ("MissingFrame", "first_frame_url", {"last"}, {}, "needs a first frame or a first clip"),
    ("MissingFrame", "first_frame_url", {"audio"}, {}, "needs a first frame or a first clip"),
    ("MissingFrame", "first_frame_url", {"last", "audio"}, {}, "needs a first frame or a first clip"),
    ("MissingFrame", "first_frame_url", set(), {}, "needs a first frame or a first clip"),
    ("UnsupportedResolution", "resolution", {"first"}, {"resolution": "480P"}, "use one of: 720P, 1080P"),
    ("UnsupportedDuration", "duration", {"first"}, {"duration": 16}, "from 2 to 15"),
    ("UnsupportedDuration", "duration", {"first"}, {"duration": 1}, "from 2 to 15"),
    ("TemplateNotSupported", "template", {"first"}, {"template": "mech1"}, "no effect templates"),
    ("PromptTooLong", "prompt", {"first"}, {"prompt": "字" * 5001}, "5000"),
    ("NegativePromptTooLong", "negative_prompt", {"first"}, {"negative_prompt": "n" * 501}, "500"),
]


@pytest.mark.parametrize(
    ("code", "field", "roles", "overrides", "says"),
    WAN27_BAD,
    ids=[f"{c}-{i}" for i, (c, *_) in enumerate(WAN27_BAD)],
)
def test_wan27_refusals_name_the_field_and_what_to_do(code, field, roles, overrides, says):
    request = request_with(roles, **overrides)
    with pytest.raises(InvalidJob) as caught:
        validate_request(request)
    error = caught.value
    assert (error.code, error.field) == (code, field)
    assert says in str(error)
    assert error.hint and str(error).endswith(error.hint)


def test_wan27_takes_its_long_prompts_and_every_whole_duration():
    validate_request(request_with({"first"}, prompt="字" * 5000, negative_prompt="n" * 500))
    for duration in range(2, 16):
        validate_request(request_with({"first", "last"}, duration=duration, resolution="720P"))
    for bad in (5.0, "5", True):
        with pytest.raises(InvalidJob) as caught:
            validate_request(dataclasses.replace(request_with({"first"}), duration=bad))
        assert caught.value.code == "UnsupportedDuration"


KF2V = "wan2.2-kf2v-flash"


def kf2v_request(**kw) -> CreateTaskRequest:
    return CreateTaskRequest(**({"model": KF2V, "first_frame_url": FIRST, "last_frame_url": LAST} | kw))


def test_kf2v_refuses_eight_seconds_and_points_to_wan27():
    with pytest.raises(InvalidJob) as caught:
        validate_request(kf2v_request(duration=8))
    error = caught.value
    assert (error.code, error.field) == ("UnsupportedDuration", "duration")
    assert "always makes 5-second videos" in str(error)
    assert "use 5 or leave it out" in error.hint and "wan2.7-i2v" in error.hint
    # 16 s: no model makes it, none is named
    with pytest.raises(InvalidJob) as caught:
        validate_request(kf2v_request(duration=16))
    assert "wan2.7" not in caught.value.hint


@pytest.mark.parametrize(
    ("extra", "field", "noun"),
    [
        ({"audio_url": AUDIO}, "audio_url", "driving audio"),
        ({"first_clip_url": CLIP}, "first_clip_url", "first clip"),
    ],
)
def test_kf2v_takes_no_audio_and_no_first_clip(extra, field, noun):
    for model in (KF2V, "wanx2.1-kf2v-plus"):
        with pytest.raises(InvalidJob) as caught:
            validate_request(kf2v_request(model=model, resolution="720P", **extra))
        error = caught.value
        assert (error.code, error.field) == ("MediaNotSupported", field)
        assert f"{model} takes no {noun}" in str(error) and "use wan2.7-i2v" in error.hint


def test_kf2v_needs_a_first_frame():
    with pytest.raises(InvalidJob) as caught:
        validate_request(kf2v_request(first_frame_url=None))
    assert (caught.value.code, caught.value.field) == ("MissingFrame", "first_frame_url")
    assert "needs a first frame" in str(caught.value)


def test_a_template_takes_the_first_frame_alone():
    template = CreateTaskRequest(model="wanx2.1-kf2v-plus", first_frame_url=FIRST, template="mech1")
    validate_request(template)
    with pytest.raises(InvalidJob) as caught:
        validate_request(dataclasses.replace(template, first_frame_url=None))
    assert caught.value.code == "MissingFrame"


def test_audio_and_clip_urls_must_be_fetchable_urls():
    for bad in ("data:audio/mpeg;base64,SUQz", "file:///tmp/a.mp3", "/tmp/a.mp3", "oss://bucket-only"):
        with pytest.raises(InvalidJob) as caught:
            validate_request(CreateTaskRequest(model=WAN27, first_frame_url=FIRST, audio_url=bad))
        assert (caught.value.code, caught.value.field) == ("InvalidMediaUrl", "audio_url")
    with pytest.raises(InvalidJob) as caught:
        validate_request(CreateTaskRequest(model=WAN27, first_clip_url=""))
    assert (caught.value.code, caught.value.field) == ("MissingMedia", "first_clip_url")
    for good in (AUDIO, "oss://dashscope-instant/acct/2026-01-01/x/a.mp3"):
        validate_request(CreateTaskRequest(model=WAN27, first_frame_url=FIRST, audio_url=good))


def test_a_combination_outside_the_catalogue_is_refused_with_the_valid_ones(monkeypatch):
    # a model whose sets the diagnoses above do not cover: the generic refusal lists what it takes
    odd = dataclasses.replace(
        catalog.MODELS[WAN27],
        name="odd-model",
        media_sets=frozenset({frozenset({"first", "audio"})}),
        snapshots=(),
    )
    monkeypatch.setitem(catalog.MODELS, "odd-model", odd)
    with pytest.raises(InvalidJob) as caught:
        validate_request(CreateTaskRequest(model="odd-model", first_frame_url=FIRST))
    error = caught.value
    assert (error.code, error.field) == ("InvalidMediaCombination", "media")
    assert "does not take first frame" in str(error) and "first frame + driving audio" in error.hint


IMAGE = ImageInfo(format="PNG", width=1280, height=720, size_bytes=1000, mime="image/png")
SOUND = AudioInfo(
    format="mp3", duration_s=12.0, size_bytes=2000, mime="audio/mpeg", sample_rate=44100, channels=2
)
CLIP_INFO = ClipInfo(format="mp4", duration_s=4.0, width=1280, height=720, size_bytes=3000, mime="video/mp4")


def test_inspected_inputs_are_held_to_the_models_limits():
    validate_request(request_with({"first", "last", "audio"}), first=IMAGE, last=IMAGE, audio=SOUND)
    validate_request(request_with({"first_clip", "last"}, duration=5), first_clip=CLIP_INFO, last=IMAGE)
    # a 15 MB frame inspected elsewhere: fine on wan2.7, too large for kf2v
    big = dataclasses.replace(IMAGE, size_bytes=15 * 1024 * 1024)
    validate_request(request_with({"first"}), first=big)
    with pytest.raises(InvalidJob) as caught:
        validate_request(kf2v_request(), first=big)
    assert caught.value.code == "ImageFileTooLarge"
    with pytest.raises(InvalidJob) as caught:
        validate_request(request_with({"first"}), first=dataclasses.replace(IMAGE, width=240 * 9, height=240))
    assert caught.value.code == "ImageAspectRatio"
    with pytest.raises(InvalidJob) as caught:
        validate_request(
            request_with({"first", "audio"}), first=IMAGE, audio=dataclasses.replace(SOUND, duration_s=40.0)
        )
    assert caught.value.code == "AudioTooLong" and "2 to 30 seconds" in str(caught.value)
    with pytest.raises(InvalidJob) as caught:
        validate_request(
            request_with({"first_clip"}, duration=15),
            first_clip=dataclasses.replace(CLIP_INFO, duration_s=12.0),
        )
    assert caught.value.code == "ClipTooLong" and "2 to 10 seconds" in str(caught.value)
    with pytest.raises(InvalidJob) as caught:
        validate_request(request_with({"first_clip"}), first_clip=dataclasses.replace(CLIP_INFO, width=5000))
    assert caught.value.code == "UnsupportedClip"
    with pytest.raises(InvalidJob) as caught:
        validate_request(request_with({"first", "audio"}), audio=dataclasses.replace(SOUND, format="ogg"))
    assert caught.value.code == "UnsupportedAudio"


def test_a_continuation_must_leave_room_for_new_video():
    # the duration counts the clip: 5 s with a 6.5 s clip would make nothing new
    with pytest.raises(InvalidJob) as caught:
        validate_request(
            request_with({"first_clip"}, duration=5),
            first_clip=dataclasses.replace(CLIP_INFO, duration_s=6.5),
        )
    error = caught.value
    assert (error.code, error.field) == ("DurationWithinFirstClip", "duration")
    assert "at least 7" in error.hint
    validate_request(
        request_with({"first_clip"}, duration=7), first_clip=dataclasses.replace(CLIP_INFO, duration_s=6.5)
    )


# -- usage ---------------------------------------------------------------------------------------------


def test_wan27_usage_bills_on_duration():
    # A1's SUCCEEDED example
    state = TaskState.from_api(
        {
            "request_id": "2ca1c497-f9e0-449d-9a3f-xxxxxx",
            "output": {
                "task_id": "af6efbc0-4bef-4194-8246-xxxxxx",
                "task_status": "SUCCEEDED",
                "submit_time": "2025-09-25 11:07:28.590",
                "scheduled_time": "2025-09-25 11:07:35.349",
                "end_time": "2025-09-25 11:17:11.650",
                "orig_prompt": "一只小猫在月光下奔跑",
                "video_url": "https://dashscope-result-sh.oss-cn-shanghai.aliyuncs.com/xxx.mp4?Expires=xxx",
            },
            "usage": {
                "duration": 15,
                "input_video_duration": 0,
                "output_video_duration": 15,
                "video_count": 1,
                "SR": 720,
            },
        }
    )
    assert state.succeeded and state.actual_prompt is None
    assert state.usage == Usage(
        video_count=1, sr=720, duration=15, input_video_duration=0, output_video_duration=15
    )
    assert state.billed_seconds == 15 and state.usage.billed_seconds == 15
    assert state.usage.to_api_dict() == {
        "duration": 15,
        "input_video_duration": 0,
        "output_video_duration": 15,
        "video_count": 1,
        "SR": 720,
    }


def test_the_sdks_zero_video_duration_does_not_hide_the_billed_seconds():
    usage = Usage.from_api(
        {
            "duration": 10,
            "input_video_duration": 3,
            "output_video_duration": 7,
            "video_duration": 0,
            "video_ratio": "",
        }
    )
    assert usage.billed_seconds == 10 and usage.video_duration == 0 and usage.video_ratio is None


def test_kf2v_usage_bills_on_video_duration():
    usage = Usage.from_api({"video_duration": 5, "video_count": 1, "SR": 480})
    assert usage.billed_seconds == 5 and usage.duration is None
    assert usage.to_api_dict() == {"video_duration": 5, "video_count": 1, "SR": 480}
    assert TaskState.from_api({"output": {"task_id": "t", "task_status": "FAILED"}}).billed_seconds is None


def test_fractional_seconds_are_kept_and_junk_is_dropped():
    usage = Usage.from_api({"duration": 5.0, "input_video_duration": 2.5, "output_video_duration": "x"})
    assert (usage.duration, usage.input_video_duration, usage.output_video_duration) == (5, 2.5, None)
    assert type(usage.duration) is int


# -- the client ----------------------------------------------------------------------------------------

CREATED = {"output": {"task_status": "PENDING", "task_id": "wan27-task"}, "request_id": "r-1"}


def test_the_client_posts_wan27_to_the_video_generation_path(make_client):
    provider = Recorder(json_response(200, CREATED))
    client = make_client(provider)
    request = request_with({"first", "last", "audio"}, duration=10)
    ref = client.create_task(request)
    assert ref.task_id == "wan27-task"
    (sent,) = provider.requests
    assert sent.method == "POST"
    assert sent.url.path == "/api/v1/services/aigc/video-generation/video-synthesis"
    assert sent.headers["X-DashScope-Async"] == "enable"
    assert "X-DashScope-OssResourceResolve" not in sent.headers  # https URLs need no resolving
    assert json.loads(sent.content) == request.to_body()


def test_an_oss_url_makes_the_client_ask_for_resolution(make_client):
    provider = Recorder(json_response(200, CREATED))
    client = make_client(provider)
    request = CreateTaskRequest.for_spec(
        spec(), region="cn-beijing", media={"first": FIRST, "audio": "oss://dashscope-instant/acct/d/x/a.mp3"}
    )
    client.create_task(request)
    client.create_task(
        CreateTaskRequest(model=KF2V, first_frame_url="oss://dashscope-instant/a/f.png", last_frame_url=LAST)
    )
    wan, kf2v = provider.requests
    assert wan.headers["X-DashScope-OssResourceResolve"] == "enable"
    assert kf2v.headers["X-DashScope-OssResourceResolve"] == "enable"
    assert kf2v.url.path == "/api/v1/services/aigc/image2video/video-synthesis"


def test_a_refused_wan27_request_never_reaches_the_network(make_client):
    client = make_client(never_called)
    with pytest.raises(InvalidJob) as caught:
        client.create_task(request_with({"first", "first_clip"}))
    assert caught.value.code == "FirstFrameWithFirstClip"


def test_a_5xx_on_a_wan27_create_may_have_created_the_task(make_client):
    # the "maybe created" rule holds on every create path, not only kf2v's
    provider = Recorder(json_response(500, {"code": "InternalError", "message": "oops"}))
    client = make_client(provider)
    with pytest.raises(ProviderUnavailable) as caught:
        client.create_task(request_with({"first"}))
    assert caught.value.maybe_created is True
    assert len(provider.requests) == 1  # never retried
