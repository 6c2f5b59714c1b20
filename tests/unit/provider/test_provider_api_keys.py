"""Several API keys in one secret: each create goes out with the key its lane names, reads with the
first, the task list filters by ``api_key_id``, and no key ever shows (each is masked, not only the
one last used)."""

from __future__ import annotations

import httpx
import pytest
from inbetween.errors import ConfigError, InbetweenError
from inbetween.provider import CreateTaskRequest, DashScopeClient
from inbetween.provider.client import api_key_ref, split_api_keys
from provider_fakes import BASE_URL, Recorder, json_response

KEY_A = "sk-lane-a-0123456789abcdef"
KEY_B = "sk-lane-b-fedcba9876543210"
REQUEST = CreateTaskRequest(
    model="wan2.2-kf2v-flash",
    first_frame_url="https://example.com/1.png",
    last_frame_url="https://example.com/2.png",
)
CREATED = json_response(200, {"output": {"task_id": "t-1", "task_status": "PENDING"}, "request_id": "r"})


@pytest.mark.parametrize(
    "secret",
    [f"{KEY_A},{KEY_B}", f"{KEY_A}\n{KEY_B}\n", f"  {KEY_A}  {KEY_B}", f"{KEY_A}, {KEY_B}, {KEY_A}"],
)
def test_a_secret_holds_one_key_or_several_in_order(secret):
    assert split_api_keys(secret) == (KEY_A, KEY_B)
    assert split_api_keys(KEY_A) == (KEY_A,)


def test_a_keys_reference_names_it_without_holding_it():
    ref = api_key_ref(KEY_A)
    assert ref == api_key_ref(KEY_A) != api_key_ref(KEY_B)
    assert len(ref) == 12 and KEY_A not in ref and ref not in KEY_A


def _client(handler) -> DashScopeClient:
    return DashScopeClient(
        lambda: f"{KEY_A}\n{KEY_B}", BASE_URL, http=httpx.Client(transport=httpx.MockTransport(handler))
    )


def test_a_create_goes_out_with_the_key_its_lane_names_and_reads_with_the_first():
    recorder = Recorder(CREATED)
    client = _client(recorder)
    assert client.key_refs() == (api_key_ref(KEY_A), api_key_ref(KEY_B))
    client.create_task(REQUEST, key_ref=api_key_ref(KEY_B))
    client.create_task(REQUEST)
    recorder.script = [json_response(200, {"total": 0, "data": [], "page_no": 1, "page_size": 10})]
    list(client.iter_tasks(model="wan2.2-kf2v-flash", api_key_id="1250"))
    auth = [r.headers["Authorization"] for r in recorder.requests]
    assert auth == [f"Bearer {KEY_B}", f"Bearer {KEY_A}", f"Bearer {KEY_A}"]
    assert recorder.requests[2].url.params["api_key_id"] == "1250"
    client.close()


def test_a_lane_whose_key_left_the_secret_sends_nothing_and_says_so_without_any_key():
    recorder = Recorder(CREATED)
    client = _client(recorder)
    with pytest.raises(ConfigError) as caught:
        client.create_task(REQUEST, key_ref=api_key_ref("sk-rotated-away"))
    assert recorder.requests == []
    assert KEY_A not in str(caught.value) and KEY_B not in str(caught.value)
    client.close()


def test_every_key_is_masked_in_provider_text_not_only_the_one_used():
    echo = json_response(
        401, {"code": "InvalidApiKey", "message": f"bad keys {KEY_A} and {KEY_B}", "request_id": "r"}
    )
    client = _client(Recorder(echo))
    with pytest.raises(InbetweenError) as caught:
        client.create_task(REQUEST, key_ref=api_key_ref(KEY_B))
    text = f"{caught.value} {caught.value!r} {vars(caught.value)!r}"
    assert KEY_A not in text and KEY_B not in text
    client.close()
