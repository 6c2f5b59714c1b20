"""wan2.7 tasks: query shapes and usage, list/cancel shared with kf2v, push events, quotas and the
provider queue, and the list-quotas endpoint."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from emulator_helpers import Api
from inbetween_local.emulator import EventSender, PushConfig
from inbetween_local.emulator.push import task_finished_event
from media_helpers import probe_media

TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")
WAN27_KEY = "apikey:v1:aigc:video-generation:video-synthesis:wan2.7-i2v"


def test_lifecycle_and_usage(api, clock, emulator, wan27_body):
    task_id = api.submit_media(wan27_body(duration=3, prompt_extend=True))
    pending = api.get(task_id).json()
    assert pending["output"]["task_status"] == "PENDING" and "usage" not in pending
    assert TIME.match(pending["output"]["submit_time"])
    assert not {"scheduled_time", "end_time", "video_url"} & set(pending["output"])
    clock.advance(1)
    running = api.output(task_id)
    assert running["task_status"] == "RUNNING" and TIME.match(running["scheduled_time"])
    clock.advance(2)
    assert emulator.wait_until_idle()
    done = api.get(task_id).json()
    assert done["output"]["task_status"] == "SUCCEEDED" and TIME.match(done["output"]["end_time"])
    assert done["output"]["orig_prompt"] == "A red card turns blue."
    # actual_prompt is not among wan2.7's output fields (§3.3)
    assert "actual_prompt" not in done["output"]
    assert done["usage"] == {
        "duration": 3,
        "input_video_duration": 0,
        "output_video_duration": 3,
        "video_count": 1,
        "SR": 720,
    }
    video = probe_media(httpx.get(done["output"]["video_url"]).content)
    assert (video.codec, video.frames, video.fps, video.audio_codec) == ("h264", 90, 30.0, "aac")


def test_continuation_usage_counts_the_clip_as_input(api, clock, emulator, wan27_body):
    task_id = api.submit_media(wan27_body("first_clip", "last_frame", duration=3, resolution="1080P"))
    clock.advance(3)
    assert emulator.wait_until_idle()
    done = api.get(task_id).json()
    assert done["usage"] == {
        "duration": 3,
        "input_video_duration": 2,
        "output_video_duration": 1,
        "video_count": 1,
        "SR": 1080,
    }
    assert emulator.task(task_id).audio_source == "generated"


def test_failed_task_shape(api, clock, wan27_body):
    task_id = api.submit_media(wan27_body(prompt="[fail:DataInspectionFailed]"))
    clock.advance(3)
    response = api.get(task_id).json()
    assert response["output"]["task_status"] == "FAILED" and "usage" not in response
    assert response["output"]["code"] == "DataInspectionFailed" and "video_url" not in response["output"]


def test_list_and_cancel_are_shared_with_kf2v(api, clock, wan27_body, flash_body):
    wan = api.submit_media(wan27_body())
    snapshot = api.submit_media(wan27_body(model="wan2.7-i2v-2026-04-25"))
    flash = api.submit(flash_body())
    listed = api.list().json()
    assert listed["total"] == 3
    entry = next(item for item in listed["data"] if item["task_id"] == wan)
    assert (entry["model_name"], entry["user_api_unique_key"]) == ("wan2.7-i2v", WAN27_KEY)
    by_model = api.list(model_name="wan2.7-i2v-2026-04-25").json()
    assert [item["task_id"] for item in by_model["data"]] == [snapshot]
    flash_entry = next(item for item in listed["data"] if item["task_id"] == flash)
    assert flash_entry["user_api_unique_key"].startswith("apikey:v1:aigc:image2video:")
    assert api.cancel(wan).status_code == 200
    assert api.output(wan)["task_status"] == "CANCELED"
    clock.advance(1)
    assert api.cancel(snapshot).json()["code"] == "UnsupportedOperation"


class _Receiver:
    def __init__(self) -> None:
        self.events: list[dict] = []
        received = self.events
        self.arrived = threading.Event()
        arrived = self.arrived

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                arrived.set()

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/events"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_push_events_for_wan27_tasks(api, clock, emulator, wan27_body):
    receiver = _Receiver()
    sender = EventSender(PushConfig(url=receiver.url)).attach(emulator).start()
    try:
        task_id = api.submit_media(
            wan27_body(model="wan2.7-i2v-2026-04-25", prompt="[fail:InternalError.Algo]")
        )
        clock.advance(3)
        emulator.advance()
        assert receiver.arrived.wait(10)
    finally:
        sender.stop()
        receiver.close()
    [event] = receiver.events
    assert (event["source"], event["type"]) == ("acs.dashscope", "dashscope:System:AsyncTaskFinish")
    assert event["data"]["task_id"] == task_id and event["data"]["task_status"] == "FAILED"
    # a prefix rule on the base model's key matches its dated snapshot too (§8)
    assert event["data"]["user_api_unique_key"] == WAN27_KEY + "-2026-04-25"
    assert event["data"]["contain_result"] is False


def test_event_key_for_kf2v_is_unchanged(api, emulator, flash_body):
    task_id = api.submit(flash_body())
    event = task_finished_event(emulator.task(task_id), region="cn-beijing")
    assert (
        event["data"]["user_api_unique_key"] == "apikey:v1:aigc:image2video:video-synthesis:wan2.2-kf2v-flash"
    )


# --- quotas ------------------------------------------------------------------------------------------


def failing(body: dict) -> dict:
    body["input"]["prompt"] = "[fail] no render needed"
    return body


def test_submit_rate_is_five_per_second(api, clock, emulator, wan27_body):
    emulator.faults.rate_limits_enabled = True
    assert [api.create_media(failing(wan27_body())).status_code for _ in range(5)] == [200] * 5
    sixth = api.create_media(failing(wan27_body()))
    assert sixth.status_code == 429 and sixth.json()["code"] == "Throttling.RateQuota"
    # per model: the snapshot has its own window
    assert api.create_media(failing(wan27_body(model="wan2.7-i2v-2026-04-25"))).status_code == 200
    clock.advance(1.01)
    assert api.create_media(failing(wan27_body())).status_code == 200


def test_the_provider_queue_holds_tasks_pending_beyond_the_concurrency(api, clock, emulator, wan27_body):
    emulator.faults.concurrency_limits_enabled = True  # 5 running, then a queue of 500 (§5.1)
    ids = [api.submit_media(failing(wan27_body())) for _ in range(8)]  # no Throttling
    clock.advance(1)
    statuses = [emulator.tasks[t].status for t in ids]
    assert statuses == ["RUNNING"] * 5 + ["PENDING"] * 3
    clock.advance(2)  # the five end; three of the queue take their slots
    emulator.advance()
    assert [emulator.tasks[t].status for t in ids[5:]] == ["RUNNING"] * 3
    assert api.output(ids[5])["scheduled_time"] == api.output(ids[0])["end_time"]


def test_past_the_queue_creates_are_throttled(api, clock, emulator, wan27_body):
    emulator.faults.concurrency_limits_enabled = True
    emulator.faults.queue_limits["wan2.7-i2v"] = 2
    for _ in range(7):
        api.submit_media(failing(wan27_body()))
    refused = api.create_media(failing(wan27_body()))
    assert refused.status_code == 429 and refused.json()["code"] == "Throttling.AllocationQuota"
    emulator.faults.queue_limits["wan2.7-i2v"] = 0  # no queue: refused at the concurrency, like kf2v
    emulator.faults.max_concurrent["wan2.7-i2v"] = 7
    assert api.create_media(failing(wan27_body())).status_code == 429


def test_a_raised_figure_is_enforced_and_reported(api, clock, emulator, wan27_body):
    emulator.faults.concurrency_limits_enabled = True
    emulator.faults.max_concurrent["wan2.7-i2v"] = 8
    ids = [api.submit_media(failing(wan27_body())) for _ in range(9)]
    clock.advance(1)
    assert [emulator.tasks[t].status for t in ids].count("RUNNING") == 8
    row = quotas(api, model="wan2.7-i2v")["output"]["quotas"][0]
    assert row["model_limit"]["async_user_concurrency_limit"] == 8


def quotas(api: Api, path: str = "/quotas", **params) -> dict:
    response = api.http.get(api.base_url + path, params=params, headers=api.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


@pytest.mark.parametrize("path", ["/quotas", "/models/limits"])
def test_list_quotas_answers_on_both_documented_paths(api, path):
    body = quotas(api, path, model="wan2.7-i2v")
    assert body["success"] is True and body["request_id"]
    assert (body["output"]["total"], body["output"]["page_no"], body["output"]["page_size"]) == (1, 1, 20)
    assert body["output"]["quotas"] == [
        {
            "model": "wan2.7-i2v",
            "workspace_id": "llm-emulator",
            "model_limit": {
                "request_limit": 5,
                "request_limit_period": 1,
                "usage_limit": None,
                "usage_limit_field": None,
                "usage_limit_period": None,
                "async_user_queue_limit": 500,
                "async_user_concurrency_limit": 5,
            },
            "workspace_limit": None,
        }
    ]


def test_list_quotas_filters_and_pages(api, emulator):
    everything = quotas(api)["output"]
    names = [row["model"] for row in everything["quotas"]]
    assert {"wan2.2-kf2v-flash", "wanx2.1-kf2v-plus", "wan2.7-i2v", "wan2.7-i2v-2026-04-25"} <= set(names)
    assert len(names) == len(set(names)) == everything["total"]
    flash = next(row for row in everything["quotas"] if row["model"] == "wan2.2-kf2v-flash")["model_limit"]
    assert (
        flash["request_limit"],
        flash["async_user_concurrency_limit"],
        flash["async_user_queue_limit"],
    ) == (
        2,
        2,
        None,
    )
    fuzzy = quotas(api, name="WAN2.7")["output"]
    assert [row["model"] for row in fuzzy["quotas"]] == ["wan2.7-i2v", "wan2.7-i2v-2026-04-25"]
    page = quotas(api, page_no=2, page_size=3)["output"]
    assert (page["total"], [row["model"] for row in page["quotas"]]) == (len(names), names[3:6])
    assert quotas(api, model="wan2.7")["output"] == {"total": 0, "page_no": 1, "page_size": 20, "quotas": []}
    emulator.faults.submit_rps["wan2.7-i2v"] = 7.5
    assert quotas(api, model="wan2.7-i2v")["output"]["quotas"][0]["model_limit"]["request_limit"] == 7.5


def test_list_quotas_needs_a_key(api):
    response = api.http.get(api.base_url + "/quotas")
    assert response.status_code == 401 and response.json()["code"] == "InvalidApiKey"
    wrong = api.http.get(api.base_url + "/models/limits", headers={"Authorization": "Bearer sk-nope"})
    assert wrong.status_code == 401
