"""Create-task contract: success shape, auth, async header, parameter validation, images, endpoint."""

from __future__ import annotations

import base64

import pytest
from emulator_helpers import BLUE, RED, image_bytes
from inbetween.domain.catalog import STRICT_IMAGE_LIMITS
from inbetween_local.emulator import EmulatorConfig, EmulatorServer, ErrorTiming, Faults


def assert_error(response, status: int, code: str, message: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code and body["request_id"]
    if message is not None:
        assert body["message"] == message
    return body


def test_create_answers_pending_with_task_and_request_ids(api, flash_body):
    response = api.create(flash_body())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"output", "request_id"}
    assert body["output"]["task_status"] == "PENDING" and len(body["output"]["task_id"]) == 36


def test_missing_api_key_is_401(api, flash_body):
    response = api.create(
        flash_body(), headers={"X-DashScope-Async": "enable", "Content-Type": "application/json"}
    )
    assert_error(response, 401, "InvalidApiKey", "No API-key provided.")


def test_wrong_api_key_is_401(api, flash_body):
    headers = {"X-DashScope-Async": "enable", "Authorization": "Bearer sk-wrong"}
    assert_error(api.create(flash_body(), headers=headers), 401, "InvalidApiKey", "Invalid API-key provided.")


def test_queries_need_a_valid_key_too(api):
    response = api.http.get(f"{api.base_url}/tasks/some-id", headers={"Authorization": "Bearer sk-nope"})
    assert_error(response, 401, "InvalidApiKey", "Invalid API-key provided.")


def test_missing_async_header_is_refused(api, flash_body):
    response = api.create(flash_body(), headers=api.headers)
    assert_error(response, 403, "AccessDenied", "current user api does not support synchronous calls")


def test_sdk_shaped_body_with_extras_is_accepted(api, frames):
    # the SDK sends prompt null, extend_prompt, function and an empty parameters object
    body = {
        "model": "wanx2.1-kf2v-plus",
        "parameters": {},
        "input": {
            "prompt": None,
            "extend_prompt": True,
            "template": "mech1",
            "function": "video-synthesis",
            "first_frame_url": frames.url("red.png"),
        },
    }
    assert api.create(body).status_code == 200


@pytest.mark.parametrize(
    ("model", "input_changes", "parameters", "code"),
    [
        ("wan2.2-kf2v-turbo", {}, {}, "InvalidParameter"),
        ("wan2.2-kf2v-flash", {"first_frame_url": None}, {}, "InvalidParameter"),
        ("wan2.2-kf2v-flash", {"first_frame_url": ""}, {}, "InvalidParameter"),
        ("wan2.2-kf2v-flash", {}, {"resolution": "4K"}, "InvalidParameter"),
        ("wanx2.1-kf2v-plus", {}, {"resolution": "1080P"}, "InvalidParameter"),
        ("wan2.2-kf2v-flash", {}, {"duration": 10}, "InvalidParameter"),
        ("wan2.2-kf2v-flash", {}, {"seed": -1}, "InvalidParameter"),
        ("wan2.2-kf2v-flash", {}, {"seed": 2_147_483_648}, "InvalidParameter"),
        ("wan2.2-kf2v-flash", {}, {"watermark": "yes"}, "InvalidParameter"),
        ("wan2.2-kf2v-flash", {"template": "mech1"}, {}, "InvalidParameter"),
        ("wanx2.1-kf2v-plus", {"template": "flying"}, {}, "InvalidParameter"),
        ("wanx2.1-kf2v-plus", {"template": "mech1", "first_frame_url": None}, {}, "InvalidParameter"),
        ("wan2.2-kf2v-flash", {"first_frame_url": "oss://dashscope-instant/x/first.png"}, {}, "InvalidURL"),
    ],
    ids=[
        "unknown-model",
        "no-first-frame",
        "empty-first-frame",
        "unknown-resolution",
        "1080P-on-2.1",
        "duration-10",
        "seed-negative",
        "seed-too-big",
        "watermark-not-bool",
        "template-on-flash",
        "unknown-template",
        "template-last-frame-only",
        "oss-url",
    ],
)
def test_invalid_requests_are_400(api, frames, model, input_changes, parameters, code):
    payload = {
        "first_frame_url": frames.url("red.png"),
        "last_frame_url": frames.url("blue.png"),
        "prompt": "x",
    }
    payload.update(input_changes)
    payload = {key: value for key, value in payload.items() if value is not None}
    body = {"model": model, "input": payload, "parameters": parameters}
    assert_error(api.create(body), 400, code)


def test_missing_model_and_missing_input(api, frames):
    assert_error(
        api.create({"input": {"first_frame_url": frames.url("red.png")}}), 400, "BadRequest.EmptyModel"
    )
    assert_error(api.create({"model": "wan2.2-kf2v-flash"}), 400, "BadRequest.EmptyInput")


def test_template_ignores_last_frame_and_prompt(api, frames, emulator):
    body = {
        "model": "wanx2.1-kf2v-plus",
        "input": {
            "first_frame_url": frames.url("red.png"),
            "last_frame_url": frames.url("blue.png"),
            "template": "hanfu-1",
        },
    }
    task_id = api.submit(body)
    assert emulator.task(task_id).template == "hanfu-1"


def test_long_prompts_are_truncated_silently(api, flash_body):
    body = flash_body()
    body["input"]["prompt"] = "p" * 900
    body["input"]["negative_prompt"] = "n" * 600
    task_id = api.submit(body)
    assert api.output(task_id)["orig_prompt"] == "p" * 800


def test_prompt_extend_rewrites_into_actual_prompt(api, flash_body):
    extended = api.output(api.submit(flash_body()))
    assert extended["orig_prompt"] == "A red card turns blue."
    assert extended["actual_prompt"].startswith("A red card turns blue. ")
    assert len(extended["actual_prompt"]) > len(extended["orig_prompt"]) + 20
    plain = api.output(api.submit(flash_body(prompt_extend=False)))
    assert "actual_prompt" not in plain and plain["orig_prompt"] == "A red card turns blue."


def test_kf2v_model_on_the_video_generation_endpoint_is_a_url_error(api, flash_body):
    response = api.http.post(
        api.base_url + "/services/aigc/video-generation/video-synthesis",
        json=flash_body(),
        headers={"X-DashScope-Async": "enable", **api.headers},
    )
    assert_error(response, 400, "InvalidParameter", "url error, please check url!")


# --- images ------------------------------------------------------------------------------------------


def with_first_frame(body: dict, url: str) -> dict:
    body["input"]["first_frame_url"] = url
    return body


def test_base64_data_uri_frames_are_accepted(api, flash_body, emulator):
    body = flash_body()
    body["input"]["first_frame_url"] = "data:image/png;base64," + base64.b64encode(image_bytes(RED)).decode()
    body["input"]["last_frame_url"] = (
        "data:image/jpeg;base64," + base64.b64encode(image_bytes(BLUE, fmt="JPEG")).decode()
    )
    task_id = api.submit(body)
    assert (emulator.task(task_id).width, emulator.task(task_id).height) == (832, 464)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (image_bytes(RED, mode="RGBA"), "InvalidParameter"),  # alpha channel
        (image_bytes(RED, size=(200, 300)), "InvalidParameter"),  # side below 240
        (image_bytes(RED, size=(8001, 300)), "InvalidParameter"),  # side above 8000
        (image_bytes(RED, fmt="GIF"), "InvalidParameter.DataInspection"),  # format
        (image_bytes(RED)[:200], "InvalidParameter.DataInspection"),  # truncated
        (b"not an image at all", "InvalidParameter.DataInspection"),
    ],
    ids=["alpha-png", "too-small", "too-large", "gif", "truncated", "garbage"],
)
def test_bad_images_are_rejected_at_create(api, frames, flash_body, data, code):
    url = frames.add(f"bad-{code}-{len(data)}.png", data)
    assert_error(api.create(with_first_frame(flash_body(), url)), 400, code)


def test_files_over_ten_megabytes_are_rejected(api, frames, flash_body):
    url = frames.add("huge.bmp", image_bytes(RED, size=(2000, 1800), fmt="BMP"))  # ~10.8 MB
    assert_error(api.create(with_first_frame(flash_body(), url)), 400, "InvalidParameter")


def test_strict_limits_refuse_what_the_newest_limits_allow(frames, flash_body):
    config = EmulatorConfig(
        api_keys=("sk-x",), image_limits=STRICT_IMAGE_LIMITS, faults=Faults(rate_limits_enabled=False)
    )
    url = frames.add("small-300.png", image_bytes(RED, size=(300, 300)))
    with EmulatorServer(config) as strict:
        from emulator_helpers import Api

        api = Api(strict.base_url, "sk-x")
        assert_error(api.create(with_first_frame(flash_body(), url)), 400, "InvalidParameter")
        api.close()


def test_download_failures_are_accepted_then_fail(api, clock, emulator, flash_body, frames):
    # Given a frame URL that answers 404, and one on a non-loopback host that is never contacted
    for url in (frames.url("missing.png"), "https://help-static-aliyun-doc.aliyuncs.com/first.png"):
        task_id = api.submit(with_first_frame(flash_body(), url))
        assert api.output(task_id)["task_status"] == "PENDING"
        clock.advance(1)
        failed = api.output(task_id)
        assert failed["task_status"] == "FAILED"
        assert (failed["code"], failed["message"]) == (
            "InvalidParameter",
            "Unable to download the media resource",
        )


def test_image_errors_can_be_made_asynchronous(frames, flash_body, clock):
    config = EmulatorConfig(
        api_keys=("sk-x",),
        clock=clock,
        pending_s=1,
        image_errors=ErrorTiming.ASYNC,
        faults=Faults(rate_limits_enabled=False),
    )
    url = frames.add("alpha.png", image_bytes(RED, mode="RGBA"))
    with EmulatorServer(config) as server:
        from emulator_helpers import Api

        api = Api(server.base_url, "sk-x")
        task_id = api.submit(with_first_frame(flash_body(), url))
        clock.advance(1)
        output = api.output(task_id)
        api.close()
    assert (output["task_status"], output["code"]) == ("FAILED", "InvalidParameter")
