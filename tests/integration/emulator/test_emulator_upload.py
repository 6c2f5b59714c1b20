"""The temporary storage (reference §7.5-7.6), spoken by hand: getPolicy, the form upload, oss:// inputs."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from emulator_helpers import API_KEY, BLUE, RED, Api, image_bytes
from inbetween_local.emulator import EmulatorConfig, EmulatorServer, Faults
from media_helpers import tone

SDK_KEYS = {
    "oss_access_key_id",
    "signature",
    "policy",
    "upload_dir",
    "x_oss_object_acl",
    "x_oss_forbid_overwrite",
    "upload_host",
}


def get_policy(api: Api, model: str = "wan2.2-kf2v-flash", **headers: str) -> httpx.Response:
    return api.http.get(
        api.base_url + "/uploads",
        params={"action": "getPolicy", "model": model},
        headers={**api.headers, **headers},
    )


def policy(api: Api, model: str = "wan2.2-kf2v-flash") -> dict:
    response = get_policy(api, model)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def upload(
    data: dict, name: str, content: bytes, *, key: str | None = None, **changes: str
) -> httpx.Response:
    """The SDK's form (oss_utils.OssUtils.upload), in its order, file last, no Authorization header."""
    form = {
        "OSSAccessKeyId": data["oss_access_key_id"],
        "Signature": data["signature"],
        "policy": data["policy"],
        "key": key or f"{data['upload_dir']}/{name}",
        "x-oss-object-acl": data["x_oss_object_acl"],
        "x-oss-forbid-overwrite": data["x_oss_forbid_overwrite"],
        "success_action_status": "200",
        "x-oss-content-type": "image/png",
        **changes,
    }
    return httpx.post(data["upload_host"], data=form, files={"file": (name, content)}, timeout=30)


def oss_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/xml"
    assert f"<Code>{code}</Code>" in response.text
    return response.text


def test_get_policy_answers_what_the_sdk_reads(api, emulator):
    response = get_policy(api)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"request_id", "data"}
    data = body["data"]
    assert SDK_KEYS <= set(data)
    assert data["upload_host"] == emulator.upload_host and data["upload_host"].startswith("http://127.0.0.1:")
    assert data["upload_dir"].startswith("dashscope-instant/")
    assert (data["expire_in_seconds"], data["max_file_size_mb"]) == (300, 100)
    assert (data["x_oss_object_acl"], data["x_oss_forbid_overwrite"]) == ("private", "true")
    document = json.loads(base64.b64decode(data["policy"]))
    assert ["starts-with", "$key", data["upload_dir"]] in document["conditions"]
    assert policy(api)["upload_dir"] != data["upload_dir"]  # a fresh directory per call


def test_get_policy_needs_a_key_a_known_model_and_the_action(api):
    assert (
        api.http.get(api.base_url + "/uploads", params={"action": "getPolicy", "model": "x"}).status_code
        == 401
    )
    assert get_policy(api, "wan2.2-kf2v-turbo").json()["code"] == "InvalidParameter"
    wrong = api.http.get(api.base_url + "/uploads", params={"action": "list"}, headers=api.headers)
    assert wrong.status_code == 400 and wrong.json()["code"] == "InvalidParameter"


def test_get_policy_is_limited_per_model(api, emulator):
    emulator.faults.rate_limits_enabled = True
    emulator.faults.upload_policy_qps = 2  # the documented figure is 100 QPS per account and model
    assert [get_policy(api).status_code for _ in range(2)] == [200, 200]
    third = get_policy(api)
    assert third.status_code == 429 and third.json()["code"] == "Throttling.RateQuota"
    assert get_policy(api, "wan2.7-i2v").status_code == 200


def test_uploaded_frames_feed_a_kf2v_task(api, clock, emulator, flash_body):
    first, last = policy(api), policy(api)
    assert upload(first, "first.png", image_bytes(RED)).status_code == 200
    done = upload(last, "last.png", image_bytes(BLUE))
    assert done.status_code == 200 and done.content == b""
    body = flash_body()
    body["input"]["first_frame_url"] = f"oss://{first['upload_dir']}/first.png"
    body["input"]["last_frame_url"] = f"oss://{last['upload_dir']}/last.png"
    # without the resolve header the oss:// URL is not resolved
    assert api.create(body).json()["code"] == "InvalidURL"
    response = api.create(body, headers={**api.headers, "X-DashScope-Async": "enable",
                                         "X-DashScope-OssResourceResolve": "enable"})  # fmt: skip
    assert response.status_code == 200, response.text
    task_id = response.json()["output"]["task_id"]
    clock.advance(3)
    assert emulator.wait_until_idle()
    assert api.output(task_id)["task_status"] == "SUCCEEDED"
    assert emulator.uploads.files()[f"{first['upload_dir']}/first.png"].content_type == "image/png"


def test_uploads_are_checked_like_oss(api, clock):
    data = policy(api)
    oss_error(upload(data, "a.png", b"x", Signature="AAAA"), 403, "SignatureDoesNotMatch")
    oss_error(upload(data, "a.png", b"x", OSSAccessKeyId="LTAIother"), 403, "InvalidAccessKeyId")
    outside = upload(data, "a.png", b"x", key="dashscope-instant/someone-else/a.png")
    assert "starts-with" in oss_error(outside, 403, "AccessDenied")
    assert upload(data, "a.png", b"x").status_code == 200
    oss_error(upload(data, "a.png", b"y"), 409, "FileAlreadyExists")  # x-oss-forbid-overwrite: true
    clock.advance(301)
    assert "Policy expired." in oss_error(upload(data, "b.png", b"x"), 403, "AccessDenied")


def test_upload_size_is_capped(clock, frames):
    config = EmulatorConfig(api_keys=(API_KEY,), clock=clock, upload_max_file_size_mb=1, faults=Faults())
    with EmulatorServer(config) as server:
        api = Api(server.base_url)
        data = policy(api)
        assert data["max_file_size_mb"] == 1
        oss_error(upload(data, "big.bin", b"\0" * (1024 * 1024 + 1)), 400, "EntityTooLarge")
        assert upload(data, "small.bin", b"\0" * 1024).status_code == 200
        api.close()


@pytest.mark.parametrize(
    ("advance_s", "used_for", "fails"),
    [
        (48 * 3600 - 60, "wan2.7-i2v", False),
        (48 * 3600 + 1, "wan2.7-i2v", True),  # deleted after 48 h
        (0, "wan2.7-i2v-2026-04-25", True),  # bound to the model named at getPolicy
    ],
    ids=["within-48h", "after-48h", "other-model"],
)
def test_oss_files_are_bound_to_their_model_and_live_48_hours(
    api, clock, wan27_body, advance_s, used_for, fails
):
    data = policy(api, "wan2.7-i2v")
    assert upload(data, "first.png", image_bytes(RED)).status_code == 200
    assert upload(data, "voice.wav", tone(3, 800), **{"x-oss-content-type": "audio/x-wav"}).status_code == 200
    clock.advance(advance_s)
    body = wan27_body(
        ("first_frame", f"oss://{data['upload_dir']}/first.png"),
        ("driving_audio", f"oss://{data['upload_dir']}/voice.wav"),
        model=used_for,
        prompt="[fail] no render needed",
    )
    task_id = api.submit_media(body, oss=True)
    clock.advance(1)
    output = api.output(task_id)
    if fails:
        assert output["task_status"] == "FAILED"
        assert output["message"] == (
            "Don't have authorization to access the media resource during the data inspection process."
        )
    else:
        assert output["task_status"] == "RUNNING"
