"""wan2.7-i2v create contract: headers, input.media combinations, parameters, and the media limits of §2."""

from __future__ import annotations

import base64

import pytest
from emulator_helpers import API_KEY, BLUE, RED, Api, image_bytes
from inbetween.domain.catalog import output_size
from inbetween_local.emulator import EmulatorConfig, EmulatorServer, ErrorTiming, Faults, ManualClock
from inbetween_local.emulator.config import MediaRule
from media_helpers import clip, tone

MB = 1024 * 1024


def assert_error(response, status: int, code: str, message: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code and body["request_id"], body
    if message is not None:
        assert body["message"] == message
    return body


def failed_after_pending(api: Api, clock: ManualClock, task_id: str) -> dict:
    assert api.output(task_id)["task_status"] == "PENDING"
    clock.advance(1)
    output = api.output(task_id)
    assert output["task_status"] == "FAILED", output
    return output


def test_create_answers_pending_on_the_video_generation_path(api, wan27_body, emulator):
    response = api.create_media(wan27_body())
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"output", "request_id"} and body["output"]["task_status"] == "PENDING"
    task = emulator.task(body["output"]["task_id"])
    assert (task.model, task.media_types, task.duration) == ("wan2.7-i2v", ("first_frame", "last_frame"), 5)


def test_the_dated_snapshot_is_the_same_model(api, wan27_body, emulator):
    task_id = api.submit_media(wan27_body(model="wan2.7-i2v-2026-04-25"))
    assert emulator.task(task_id).model == "wan2.7-i2v-2026-04-25"


def test_headers_async_required_and_key_checked(api, wan27_body):
    no_async = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    assert_error(
        api.create_media(wan27_body(), headers=no_async),
        403,
        "AccessDenied",
        "current user api does not support synchronous calls",
    )
    no_key = {"X-DashScope-Async": "enable", "Content-Type": "application/json"}
    assert_error(api.create_media(wan27_body(), headers=no_key), 401, "InvalidApiKey", "No API-key provided.")


def test_wan27_on_the_kf2v_path_is_a_url_error(api, wan27_body):
    assert_error(api.create(wan27_body()), 400, "InvalidParameter", "url error, please check url!")


def test_sdk_shaped_body_is_accepted(api, media, emulator):
    # 1.x sends prompt null, extend_prompt, function and an empty parameters object
    body = {
        "model": "wan2.7-i2v",
        "parameters": {},
        "input": {
            "prompt": None,
            "extend_prompt": True,
            "function": "video-synthesis",
            "media": [{"type": "first_frame", "url": media.url("red.png")}],
        },
    }
    task = emulator.task(api.submit_media(body))
    # defaults: 1080P, 5 s (§1.6)
    assert (task.resolution, task.duration) == ("1080P", 5)
    assert (task.width, task.height) == output_size(640, 360, "1080P")


@pytest.mark.parametrize(
    "items",
    [
        ("first_frame",),
        ("first_frame", "driving_audio"),
        ("first_frame", "last_frame"),
        ("first_frame", "last_frame", "driving_audio"),
        ("first_clip",),
        ("first_clip", "last_frame"),
        ("last_frame", "first_frame"),  # order does not matter (§1.4)
    ],
    ids=lambda items: "+".join(items),
)
def test_the_six_combinations_are_accepted(api, wan27_body, items, emulator):
    task_id = api.submit_media(wan27_body(*items, duration=3))
    assert set(emulator.task(task_id).media_types) == set(items)


@pytest.mark.parametrize(
    "items",
    [
        ("last_frame",),
        ("driving_audio",),
        ("first_clip", "first_frame"),
        ("first_clip", "driving_audio"),
        ("last_frame", "driving_audio"),
        ("first_clip", "last_frame", "driving_audio"),
        ("first_frame", "first_clip", "last_frame"),
    ],
    ids=lambda items: "+".join(items),
)
def test_other_combinations_are_refused(api, wan27_body, items):
    body = assert_error(api.create_media(wan27_body(*items, duration=3)), 400, "InvalidParameter")
    assert "combination" in body["message"] and "first_frame+driving_audio" in body["message"]


@pytest.mark.parametrize(
    ("media_value", "words"),
    [
        ([], "combination (none)"),
        ("first_frame", "must be an array"),
        ([{"type": "first_frame"}], "must have a string type and a url"),
        ([{"type": "reference_image", "url": "http://127.0.0.1:9/x.png"}], "'reference_image'"),
        ([{"type": "video", "url": "http://127.0.0.1:9/x.mp4"}], "'video'"),
    ],
    ids=["empty", "not-a-list", "no-url", "r2v-type", "videoedit-type"],
)
def test_malformed_media_is_refused(api, wan27_body, media_value, words):
    body = wan27_body()
    body["input"]["media"] = media_value
    assert words in assert_error(api.create_media(body), 400, "InvalidParameter")["message"]


def test_each_type_at_most_once(api, wan27_body, media):
    body = wan27_body(("first_frame", media.url("red.png")), ("first_frame", media.url("blue.png")))
    assert "more than once" in assert_error(api.create_media(body), 400, "InvalidParameter")["message"]


@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"resolution": "480P"}, "resolution '480P'"),
        ({"resolution": "720p"}, "resolution '720p'"),
        ({"duration": 1}, "[2, 15]"),
        ({"duration": 16}, "[2, 15]"),
        ({"duration": "5"}, "[2, 15]"),
        ({"duration": 5.0}, "[2, 15]"),
        ({"duration": True}, "[2, 15]"),
        ({"seed": -1}, "seed"),
        ({"seed": 2_147_483_648}, "seed"),
        ({"watermark": "yes"}, "parameters.watermark"),
        ({"prompt_extend": 1}, "parameters.prompt_extend"),
    ],
    ids=[
        "480P",
        "lower-case",
        "duration-1",
        "duration-16",
        "duration-string",
        "duration-float",
        "duration-bool",
        "seed-negative",
        "seed-too-big",
        "watermark",
        "prompt-extend",
    ],
)
def test_bad_parameters_are_400(api, wan27_body, parameters, words):
    body = assert_error(api.create_media(wan27_body(**parameters)), 400, "InvalidParameter")
    assert words in body["message"]


def test_a_template_is_not_part_of_this_api(api, wan27_body):
    body = wan27_body()
    body["input"]["template"] = "mech1"
    assert "template" in assert_error(api.create_media(body), 400, "InvalidParameter")["message"]


def test_duration_bounds_and_unknown_parameters_are_accepted(api, wan27_body, emulator):
    assert emulator.task(api.submit_media(wan27_body(duration=2))).duration == 2
    # parameters.audio, size and ratio are not documented for wan2.7: accepted and ignored (§1.6)
    task_id = api.submit_media(wan27_body(duration=15, audio=False, size="1280*720", ratio="16:9"))
    assert emulator.task(task_id).duration == 15


def test_prompts_are_truncated_silently(api, wan27_body):
    body = wan27_body(prompt="p" * 6000)
    body["input"]["negative_prompt"] = "n" * 600
    assert api.output(api.submit_media(body))["orig_prompt"] == "p" * 5000


def test_missing_media_is_accepted_then_fails(api, clock, frames):
    # a legacy kf2v-shaped body sent to wan2.7, as old SDKs and gateways did (§1.5)
    body = {
        "model": "wan2.7-i2v",
        "input": {"prompt": "x", "first_frame_url": frames.url("red.png")},
        "parameters": {"resolution": "720P"},
    }
    output = failed_after_pending(api, clock, api.submit_media(body))
    assert (output["code"], output["message"]) == ("InvalidParameter", "Field required: input.media")
    assert "video_url" not in output


def test_missing_input_is_400(api):
    assert_error(api.create_media({"model": "wan2.7-i2v"}), 400, "BadRequest.EmptyInput")


def media_emulator(clock: ManualClock, **config) -> EmulatorServer:
    return EmulatorServer(
        EmulatorConfig(
            api_keys=(API_KEY,),
            clock=clock,
            pending_s=1.0,
            running_s=2.0,
            faults=Faults(rate_limits_enabled=False, concurrency_limits_enabled=False),
            **config,
        )
    )


def test_error_timing_is_a_switch_per_rule(clock, wan27_body, frames):
    timings = {
        MediaRule.MISSING_MEDIA: ErrorTiming.SYNC,
        MediaRule.COMBINATION: ErrorTiming.ASYNC,
        MediaRule.DURATION: ErrorTiming.ASYNC,
    }
    with media_emulator(clock, media_error_timing=timings) as server:
        api = Api(server.base_url)
        legacy = {"model": "wan2.7-i2v", "input": {"first_frame_url": frames.url("red.png")}}
        assert_error(api.create_media(legacy), 400, "InvalidParameter", "Field required: input.media")
        combination = failed_after_pending(api, clock, api.submit_media(wan27_body("last_frame")))
        assert combination["code"] == "InvalidParameter" and "combination" in combination["message"]
        duration = api.submit_media(wan27_body(duration=16))
        assert "[2, 15]" in failed_after_pending(api, clock, duration)["message"]
        # a sync rule still answers at create, even when an async one also applies
        assert_error(api.create_media(wan27_body("last_frame", resolution="480P")), 400, "InvalidParameter")
        api.close()


# --- media limits (§2) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (image_bytes(RED, mode="RGBA"), "InvalidParameter", "alpha"),
        (image_bytes(RED, size=(239, 300)), "InvalidParameter", "[240, 8000]"),
        (image_bytes(RED, size=(2200, 260)), "InvalidParameter", "aspect ratio"),
        (image_bytes(RED, fmt="GIF"), "InvalidParameter.DataInspection", None),
        (b"not an image", "InvalidParameter.DataInspection", None),
    ],
    ids=["alpha-png", "side-239", "aspect-8.5", "gif", "garbage"],
)
def test_bad_images_are_refused(api, media, wan27_body, data, code, words):
    url = media.add(f"bad-image-{len(data)}.png", data)
    body = assert_error(api.create_media(wan27_body(("first_frame", url))), 400, code)
    assert body["message"].startswith("first_frame: ")
    if words:
        assert words in body["message"]


def test_images_up_to_twenty_megabytes(api, media, wan27_body, frames, flash_body):
    # ~15 MB: too big for kf2v (10 MB), fine for wan2.7
    fifteen = media.add("fifteen.bmp", image_bytes(RED, size=(2300, 2250), fmt="BMP"))
    assert api.create_media(wan27_body(("first_frame", fifteen))).status_code == 200
    body = flash_body()
    body["input"]["first_frame_url"] = fifteen
    assert_error(api.create(body), 400, "InvalidParameter")
    over = media.add("over.bmp", image_bytes(RED, size=(2700, 2600), fmt="BMP"))  # ~21 MB
    message = assert_error(
        api.create_media(wan27_body(("last_frame", over), "first_frame")), 400, "InvalidParameter"
    )["message"]
    assert "20 MB" in message


def test_base64_images_are_accepted(api, wan27_body, emulator):
    first = "data:image/png;base64," + base64.b64encode(image_bytes(RED, size=(750, 1000))).decode()
    last = "data:image/jpeg;base64," + base64.b64encode(image_bytes(BLUE, fmt="JPEG")).decode()
    task = emulator.task(api.submit_media(wan27_body(("first_frame", first), ("last_frame", last))))
    # the guide's worked example (720P); the aspect ratio follows the first frame
    assert (task.width, task.height) == (816, 1104)


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (lambda: tone(1.5, 1000), "InvalidParameter", "between 2 and 30 seconds"),
        (lambda: tone(31, 1000, rate=8000), "InvalidParameter", "between 2 and 30 seconds"),
        (lambda: b"\0" * (15 * MB + 1), "InvalidParameter", "15 MB"),
        (lambda: clip([RED, BLUE]), "InvalidParameter.DataInspection", None),  # an mp4 is no audio here
        (lambda: b"RIFF garbage", "InvalidParameter.DataInspection", None),
    ],
    ids=["1.5s", "31s", "over-15MB", "mp4-as-audio", "garbage"],
)
def test_bad_driving_audio_is_refused(api, media, wan27_body, data, code, words):
    content = data()
    name = f"bad-audio-{len(content)}.wav"
    url = media.add(name, content)
    body = assert_error(api.create_media(wan27_body("first_frame", ("driving_audio", url))), 400, code)
    del media.files[name]
    assert body["message"].startswith("driving_audio: ")
    if words:
        assert words in body["message"]


def test_mp3_and_wav_audio_are_accepted(api, wan27_body, media):
    for name in ("tone-3s.wav", "tone-12s.mp3"):
        assert (
            api.create_media(wan27_body("first_frame", ("driving_audio", media.url(name)))).status_code == 200
        )


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (lambda: clip([RED], seconds_each=1.5), "InvalidParameter", "between 2 and 10 seconds"),
        (lambda: clip([RED] * 11, size=(240, 240), fps=4), "InvalidParameter", "between 2 and 10 seconds"),
        (lambda: clip([RED, BLUE], size=(224, 240)), "InvalidParameter", "[240, 4096]"),
        (lambda: clip([RED, BLUE], size=(2048, 240), fps=4), "InvalidParameter", "aspect ratio"),
        (lambda: tone(3, 440), "InvalidParameter.DataInspection", None),  # a wav is no video
        (lambda: b"\0" * (100 * MB + 1), "InvalidParameter", "100 MB"),
    ],
    ids=["1.5s", "11s", "side-224", "aspect-8.5", "wav-as-clip", "over-100MB"],
)
def test_bad_first_clips_are_refused(api, media, wan27_body, data, code, words):
    content = data()
    name = f"bad-clip-{len(content)}.mp4"
    url = media.add(name, content)
    body = assert_error(api.create_media(wan27_body(("first_clip", url), duration=15)), 400, code)
    del media.files[name]
    assert body["message"].startswith("first_clip: ")
    if words:
        assert words in body["message"]


def test_mov_clips_are_accepted_and_set_the_size(api, wan27_body, media, emulator):
    task = emulator.task(api.submit_media(wan27_body(("first_clip", media.url("clip-2s.mov")), duration=3)))
    assert (task.width, task.height) == output_size(320, 240, "720P")
    assert task.input_video_duration == 2


def test_the_duration_includes_the_clip(api, wan27_body):
    body = assert_error(api.create_media(wan27_body("first_clip", duration=2)), 400, "InvalidParameter")
    assert "longer than the first clip" in body["message"]


def test_base64_audio_and_clips_are_refused_unless_switched_on(clock, api, wan27_body):
    audio = "data:audio/wav;base64," + base64.b64encode(tone(3, 1000)).decode()
    video = "data:video/mp4;base64," + base64.b64encode(clip([RED, BLUE])).decode()
    for items in (("first_frame", ("driving_audio", audio)), (("first_clip", video),)):
        message = assert_error(api.create_media(wan27_body(*items, duration=3)), 400, "InvalidParameter")[
            "message"
        ]
        assert "images only" in message
    with media_emulator(clock, media_data_uris=True) as server:
        lenient = Api(server.base_url)
        for items in (("first_frame", ("driving_audio", audio)), (("first_clip", video),)):
            assert lenient.create_media(wan27_body(*items, duration=3)).status_code == 200
        lenient.close()


def test_unreachable_media_are_accepted_then_fail(api, clock, media, wan27_body):
    for item in (
        ("driving_audio", media.url("missing.mp3")),
        ("driving_audio", "https://help-static-aliyun-doc.aliyuncs.com/rap.mp3"),  # never contacted
    ):
        output = failed_after_pending(api, clock, api.submit_media(wan27_body("first_frame", item)))
        assert (output["code"], output["message"]) == (
            "InvalidParameter",
            "Unable to download the media resource",
        )


def test_unsupported_url_schemes_are_invalid_urls(api, wan27_body):
    assert_error(api.create_media(wan27_body(("first_frame", "ftp://127.0.0.1/x.png"))), 400, "InvalidURL")


def test_oss_urls_need_the_resolve_header(api, wan27_body, clock):
    item = ("first_frame", "oss://dashscope-instant/x/2026-01-01/abc/first.png")
    assert_error(api.create_media(wan27_body(item)), 400, "InvalidURL")
    # with the header, an oss:// key this emulator never stored is a lapsed authorisation (async)
    output = failed_after_pending(api, clock, api.submit_media(wan27_body(item), oss=True))
    assert output["message"] == (
        "Don't have authorization to access the media resource during the data inspection process."
    )
    with media_emulator(clock, oss_unresolved_code="invalid_parameter_error") as server:
        other = Api(server.base_url)
        body = assert_error(other.create_media(wan27_body(item)), 400, "invalid_parameter_error")
        assert body["message"].startswith("InternalError.Algo.InvalidParameter: The provided URL")
        other.close()
