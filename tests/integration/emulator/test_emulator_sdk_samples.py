"""The guide's three Python samples, unchanged but for base URL, key and frame URLs, against the emulator."""

from __future__ import annotations

import base64
import mimetypes
import time
import types
from collections.abc import Iterator
from http import HTTPStatus

import dashscope
import httpx
import pytest
from dashscope import VideoSynthesis
from dashscope.client import base_api
from emulator_helpers import API_KEY, BLUE, GREEN, RED, Api, centre_colour, close_to, image_bytes, probe
from inbetween.domain.catalog import output_size
from inbetween_local.emulator import EmulatorConfig, EmulatorServer, Faults


@pytest.fixture(scope="module")
def live_emulator() -> Iterator[EmulatorServer]:
    """Real clock, short lifecycle: the SDK's wait loop polls real time."""
    config = EmulatorConfig(api_keys=(API_KEY,), pending_s=0.2, running_s=0.5, faults=Faults())
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture
def sdk(live_emulator, monkeypatch) -> str:
    monkeypatch.setattr(dashscope, "base_http_api_url", live_emulator.base_url)
    # the SDK's wait loop sleeps 1, 1, 2, 2, ... seconds: scale its clock down tenfold
    monkeypatch.setattr(
        base_api, "time", types.SimpleNamespace(time=time.time, sleep=lambda s: time.sleep(s / 10))
    )
    return API_KEY


def download(url: str) -> bytes:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert int(response.headers["content-length"]) == len(response.content)
    return response.content


def test_first_and_last_frame_sample_produces_a_moving_h264_video(sdk, frames):
    # Given the guide's first sample with local frames
    api_key = sdk
    print("please wait...")
    rsp = VideoSynthesis.call(
        api_key=api_key,
        model="wan2.2-kf2v-flash",
        prompt="A cute blue monster with a slightly sad expression stands in the rain. The camera slowly zooms in and stops on the moment it looks up at the sky.",
        first_frame_url=frames.url("red.png"),
        last_frame_url=frames.url("blue.png"),
        duration=5,  # Fixed at 5 seconds. Do not change.
        resolution="720P",
        prompt_extend=True,
        watermark=True,
    )
    print(rsp)
    # Then it succeeds with a video URL
    assert rsp.status_code == HTTPStatus.OK
    assert rsp.output.task_status == "SUCCEEDED"
    assert rsp.usage.SR == 720 and rsp.usage.video_duration == 5 and rsp.usage.video_count == 1
    # And the video is 5 s of 30 fps H.264 at the provider's size, moving from the first frame to the last
    video = probe(download(rsp.output.video_url))
    assert (video.codec, video.frames, video.fps, video.duration_s) == ("h264", 150, 30.0, 5.0)
    assert (video.width, video.height) == output_size(640, 360, "720P")
    assert close_to(centre_colour(video.first), RED)
    assert close_to(centre_colour(video.last), BLUE)


def test_effect_template_sample_with_async_call_and_wait(sdk, frames):
    api_key = sdk
    rsp = VideoSynthesis.async_call(
        api_key=api_key,
        model="wanx2.1-kf2v-plus",
        first_frame_url=frames.url("red.png"),
        resolution="720P",
        template="mech1",
        watermark=True,
    )
    print(rsp)
    assert rsp.status_code == HTTPStatus.OK
    print("task_id: %s" % rsp.output.task_id)  # noqa: UP031 - the guide's sample, verbatim
    rsp = VideoSynthesis.wait(task=rsp, api_key=api_key)
    print(rsp)
    assert rsp.status_code == HTTPStatus.OK
    assert rsp.output.task_status == "SUCCEEDED"
    assert rsp.usage.video_ratio == "standard"
    video = probe(download(rsp.output.video_url))
    assert (video.codec, video.frames, video.duration_s) == ("h264", 150, 5.0)
    assert (video.width, video.height) == output_size(640, 360, "720P")
    # the effect starts on the first frame and visibly shifts it
    assert close_to(centre_colour(video.first), RED)
    assert not close_to(centre_colour(video.middle), RED, tolerance=40)


# --- the guide's base64 helper, verbatim ---
def encode_file(file_path):
    mime_type, _ = mimetypes.guess_type(file_path)
    if not mime_type or not mime_type.startswith("image/"):
        raise ValueError("Unsupported or unrecognized image format")
    with open(file_path, "rb") as image_file:
        encoded_string = base64.b64encode(image_file.read()).decode("utf-8")
    return f"data:{mime_type};base64,{encoded_string}"


def test_base64_sample_with_call(sdk, tmp_path):
    api_key = sdk
    (tmp_path / "first_frame.png").write_bytes(image_bytes(GREEN, size=(750, 1000)))
    (tmp_path / "last_frame.png").write_bytes(image_bytes(BLUE, size=(750, 1000)))
    first_frame_url = encode_file(str(tmp_path / "first_frame.png"))
    last_frame_url = encode_file(str(tmp_path / "last_frame.png"))
    rsp = VideoSynthesis.call(
        api_key=api_key,
        model="wan2.2-kf2v-flash",
        prompt="Realistic style, a small black cat looks up at the sky curiously, the camera gradually rises from eye level, and finally captures its curious gaze from a top-down view.",
        first_frame_url=first_frame_url,
        last_frame_url=last_frame_url,
        resolution="720P",
        prompt_extend=True,
    )
    print(rsp)
    assert rsp.status_code == HTTPStatus.OK
    assert rsp.output.task_status == "SUCCEEDED"
    assert rsp.output.actual_prompt.startswith(rsp.output.orig_prompt)
    video = probe(download(rsp.output.video_url))
    # the guide's worked example: 750x1000 at 720P gives 816x1104
    assert (video.width, video.height) == (816, 1104) == output_size(750, 1000, "720P")
    assert close_to(centre_colour(video.first), GREEN)
    assert close_to(centre_colour(video.last), BLUE)


def test_curl_steps_replayed_with_httpx(live_emulator, frames):
    # Step 1: the guide's create request, same headers and body
    response = httpx.post(
        live_emulator.base_url + "/services/aigc/image2video/video-synthesis",
        headers={
            "X-DashScope-Async": "enable",
            "Authorization": f"Bearer {API_KEY}",
            "Content-Type": "application/json",
        },
        content=(
            '{"model": "wan2.2-kf2v-flash", "input": {'
            f'"first_frame_url": "{frames.url("red.png")}", "last_frame_url": "{frames.url("blue.png")}", '
            '"prompt": "A cute blue monster with a slightly sad expression stands in the rain."}, '
            '"parameters": {"resolution": "720P", "prompt_extend": true, "watermark": true}}'
        ),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    created = response.json()
    assert created["output"]["task_status"] == "PENDING" and created["request_id"]
    task_id = created["output"]["task_id"]
    # Step 2: poll the task with only the Authorization header, as the guide does
    deadline = time.monotonic() + 60
    while True:
        result = httpx.get(
            f"{live_emulator.base_url}/tasks/{task_id}", headers={"Authorization": f"Bearer {API_KEY}"}
        ).json()
        if result["output"]["task_status"] in ("SUCCEEDED", "FAILED") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert result["output"]["task_status"] == "SUCCEEDED"
    assert set(result["output"]) >= {"task_id", "submit_time", "scheduled_time", "end_time", "video_url"}
    assert result["usage"] == {"video_duration": 5, "video_count": 1, "SR": 720}


def test_curl_effect_template_step_one(live_emulator, frames):
    api = Api(live_emulator.base_url)
    response = api.create(
        {
            "model": "wanx2.1-kf2v-plus",
            "input": {"first_frame_url": frames.url("red.png"), "template": "mech1"},
            "parameters": {"resolution": "720P", "watermark": True},
        }
    )
    api.close()
    assert response.status_code == 200
    assert response.json()["output"]["task_status"] == "PENDING"
