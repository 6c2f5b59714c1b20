"""Task query, list and cancel contract, driven by a manual clock."""

from __future__ import annotations

import re

from emulator_helpers import Api

TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")


def test_lifecycle_pending_running_succeeded(api, clock, emulator, flash_body):
    # Given a new task
    task_id = api.submit(flash_body(watermark=False))
    # Then it is PENDING with a submit time only
    pending = api.get(task_id).json()
    assert pending["output"]["task_status"] == "PENDING" and "usage" not in pending
    assert TIME.match(pending["output"]["submit_time"])
    assert not {"scheduled_time", "end_time", "video_url"} & set(pending["output"])
    # When its pending time passes, it is RUNNING with a scheduled time
    clock.advance(1)
    running = api.output(task_id)
    assert running["task_status"] == "RUNNING" and TIME.match(running["scheduled_time"])
    assert "end_time" not in running and "video_url" not in running
    # When its running time passes and the video is rendered, it SUCCEEDED
    clock.advance(2)
    assert emulator.wait_until_idle()
    done = api.get(task_id).json()
    assert done["output"]["task_status"] == "SUCCEEDED"
    assert TIME.match(done["output"]["end_time"]) and done["output"]["video_url"].startswith(
        emulator.root_url
    )
    assert done["usage"] == {"video_duration": 5, "video_count": 1, "SR": 480}
    assert done["output"]["submit_time"] <= done["output"]["scheduled_time"] <= done["output"]["end_time"]


def test_failed_task_with_code(api, clock, flash_body):
    body = flash_body()
    body["input"]["prompt"] = "a flag [fail:DataInspectionFailed]"
    task_id = api.submit(body)
    clock.advance(3)
    output = api.output(task_id)
    assert output["task_status"] == "FAILED"
    assert output["code"] == "DataInspectionFailed"
    assert output["message"] == "Input or output data may contain inappropriate content."
    assert "video_url" not in output and TIME.match(output["end_time"])


def test_failed_task_without_code(api, clock, flash_body):
    body = flash_body()
    body["input"]["prompt"] = "[fail] silently"
    task_id = api.submit(body)
    clock.advance(3)
    response = api.get(task_id).json()
    assert response["output"]["task_status"] == "FAILED"
    assert "code" not in response["output"] and "message" not in response["output"]
    assert "usage" not in response


def test_unknown_and_expired_task_ids_answer_unknown(api, clock, flash_body):
    unknown = api.get("502a00b1-19d9-4839-a82f-000000000000")
    assert unknown.status_code == 200
    assert unknown.json()["output"] == {
        "task_id": "502a00b1-19d9-4839-a82f-000000000000",
        "task_status": "UNKNOWN",
    }
    task_id = api.submit(flash_body(prompt_extend=False))
    clock.advance(24 * 3600 + 1)
    assert api.get(task_id).json()["output"] == {"task_id": task_id, "task_status": "UNKNOWN"}


def test_cancel_pending_then_running_is_refused(api, clock, flash_body):
    first = api.submit(flash_body())
    response = api.cancel(first)
    assert response.status_code == 200 and set(response.json()) == {"request_id"}
    assert api.output(first)["task_status"] == "CANCELED"
    body = flash_body()
    body["input"]["prompt"] = "[fail]"  # no render needed
    second = api.submit(body)
    clock.advance(1)
    refused = api.cancel(second)
    assert refused.status_code == 400
    assert refused.json()["code"] == "UnsupportedOperation"
    assert (
        refused.json()["message"]
        == "Failed to cancel the task, please confirm if the task is in PENDING status."
    )


def test_list_filters_and_pages(api, clock, emulator, flash_body, frames):
    plus = {
        "model": "wanx2.1-kf2v-plus",
        "input": {"first_frame_url": frames.url("red.png"), "template": "mech1"},
    }
    flash_ids = [api.submit(flash_body()) for _ in range(3)]
    plus_id = api.submit(plus)
    api.cancel(flash_ids[0])

    everything = api.list().json()
    assert set(everything) == {"total", "data", "total_page", "page_no", "request_id", "page_size"}
    assert (everything["total"], everything["page_no"], everything["page_size"]) == (4, 1, 10)
    entry = next(item for item in everything["data"] if item["task_id"] == plus_id)
    assert entry["status"] == "PENDING" and entry["model_name"] == "wanx2.1-kf2v-plus"
    assert isinstance(entry["gmt_create"], int) and entry["gmt_create"] == int(clock() * 1000)
    assert entry["user_api_unique_key"] == "apikey:v1:aigc:image2video:video-synthesis:wanx2.1-kf2v-plus"
    canceled = next(item for item in everything["data"] if item["task_id"] == flash_ids[0])
    assert isinstance(canceled["end_time"], int)

    by_model = api.list(model_name="wan2.2-kf2v-flash").json()
    assert {item["task_id"] for item in by_model["data"]} == set(flash_ids)
    by_status = api.list("/tasks/", status="CANCELED").json()
    assert [item["task_id"] for item in by_status["data"]] == [flash_ids[0]]
    page = api.list(page_no=2, page_size=3).json()
    assert (page["total"], page["total_page"], len(page["data"])) == (4, 2, 1)
    outside = api.list(start_time="20200101000000", end_time="20200101120000").json()
    assert outside["total"] == 0 and outside["data"] == []
    too_long = api.list(start_time="20200101000000", end_time="20200103000000")
    assert too_long.status_code == 400 and too_long.json()["code"] == "InvalidParameter"


def test_any_key_of_the_account_sees_the_tasks(emulator, flash_body):
    api = Api(emulator.base_url)
    task_id = api.submit(flash_body())
    listed = api.list(api_key_id=emulator.tasks[task_id].api_key_id).json()
    api.close()
    assert [item["task_id"] for item in listed["data"]] == [task_id]


def test_durations_drawn_from_a_range_repeat_with_the_same_seed(frames, flash_body):
    from inbetween_local.emulator import EmulatorConfig, EmulatorServer, Faults, ManualClock

    def scheduled_offsets() -> list[float]:
        clock = ManualClock()
        config = EmulatorConfig(
            api_keys=("sk-x",),
            clock=clock,
            seed=7,
            pending_s=(10, 100),
            time_scale=0.5,
            faults=Faults(rate_limits_enabled=False, concurrency_limits_enabled=False),
        )
        with EmulatorServer(config) as server:
            api = Api(server.base_url, "sk-x")
            ids = [api.submit(failing_body(flash_body())) for _ in range(3)]
            clock.advance(60)
            offsets = [server.task(t).scheduled_at for t in ids]
            api.close()
        return [None if at is None else at - 1_760_000_000.0 for at in offsets]

    first, second = scheduled_offsets(), scheduled_offsets()
    assert first == second
    assert all(offset is None or 5 <= offset <= 50 for offset in first)


def failing_body(body: dict) -> dict:
    body["input"]["prompt"] = "[fail]"
    return body


def test_a_task_that_ends_while_another_is_created_is_still_announced(frames, flash_body):
    # Given an emulator whose own ticker never runs, so only requests move its tasks on
    from inbetween_local.emulator import EmulatorConfig, EmulatorServer, Faults, ManualClock

    clock = ManualClock()
    config = EmulatorConfig(
        api_keys=("sk-x",),
        clock=clock,
        pending_s=1.0,
        running_s=2.0,
        tick_interval_s=3600.0,
        faults=Faults(rate_limits_enabled=False, concurrency_limits_enabled=False),
    )
    announced: list[str] = []
    with EmulatorServer(config) as server:
        server.on_task_finished.append(lambda snapshot: announced.append(snapshot.task_id))
        api = Api(server.base_url, "sk-x")
        first = api.submit(flash_body())
        clock.advance(1.5)  # running (1 s pending, then 2 s running): its video is rendered now
        server.advance()
        assert server.wait_until_idle()
        assert announced == []
        clock.advance(10)  # the first task has ended, and nobody has asked yet

        # When the next create is what notices it
        api.submit(flash_body())
        api.close()

    # Then its end is announced (what push events are sent from), once
    assert announced == [first]
