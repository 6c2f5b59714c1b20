"""Typed shapes: request bodies as the guide documents them, and every response shape of the reference."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from inbetween.provider import CreateTaskRequest, TaskPage, TaskRef, TaskState, TaskStatus, Usage

BLUE_FIRST = (
    "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20260126/ixdxvt/wan-kf2v-blue-1.png"
)
BLUE_LAST = (
    "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20260126/nhtdrc/wan-kf2v-blue-2.png"
)
BLUE_PROMPT = (
    "A cute blue monster with a slightly sad expression stands in the rain. The camera slowly zooms in and "
    "stops on the moment it looks up at the sky."
)


def test_first_and_last_frame_body_matches_the_guides_curl_example():
    # Given the guide's "getting started" request
    request = CreateTaskRequest(
        model="wan2.2-kf2v-flash",
        first_frame_url=BLUE_FIRST,
        last_frame_url=BLUE_LAST,
        prompt=BLUE_PROMPT,
        resolution="720P",
        prompt_extend=True,
        watermark=True,
    )
    # Then the body is exactly the curl body of the guide
    assert request.to_body() == {
        "model": "wan2.2-kf2v-flash",
        "input": {"first_frame_url": BLUE_FIRST, "last_frame_url": BLUE_LAST, "prompt": BLUE_PROMPT},
        "parameters": {"resolution": "720P", "prompt_extend": True, "watermark": True},
    }


def test_template_body_matches_the_guides_effect_example():
    first = "https://ty-yuanfang.oss-cn-hangzhou.aliyuncs.com/lizhengjia.lzj/tmp/11.png"
    request = CreateTaskRequest(
        model="wanx2.1-kf2v-plus", first_frame_url=first, template="mech1", resolution="720P", watermark=True
    )
    assert request.to_body() == {
        "model": "wanx2.1-kf2v-plus",
        "input": {"first_frame_url": first, "template": "mech1"},
        "parameters": {"resolution": "720P", "watermark": True},
    }


def test_every_optional_field_is_sent_when_set_and_parameters_is_always_present():
    minimal = CreateTaskRequest(
        model="wan2.2-kf2v-flash", first_frame_url="https://a/1.png", last_frame_url="https://a/2.png"
    )
    assert minimal.to_body() == {
        "model": "wan2.2-kf2v-flash",
        "input": {"first_frame_url": "https://a/1.png", "last_frame_url": "https://a/2.png"},
        "parameters": {},
    }
    full = CreateTaskRequest(
        model="wan2.2-kf2v-flash",
        first_frame_url="https://a/1.png",
        last_frame_url="https://a/2.png",
        prompt="p",
        negative_prompt="n",
        resolution="480P",
        prompt_extend=False,
        watermark=False,
        seed=0,
    )
    assert full.to_body()["input"]["negative_prompt"] == "n"
    assert full.to_body()["parameters"] == {
        "resolution": "480P",
        "prompt_extend": False,
        "watermark": False,
        "seed": 0,
    }
    # a duration other than the fixed 5 is sent as is (validation refuses it before that)
    assert CreateTaskRequest(model="m", first_frame_url="u", duration=10).to_body()["parameters"] == {
        "duration": 10
    }


def test_request_repr_does_not_dump_a_data_uri():
    huge = "data:image/png;base64," + "A" * 3_000_000
    text = repr(CreateTaskRequest(model="wan2.2-kf2v-flash", first_frame_url=huge, last_frame_url=huge))
    assert len(text) < 600
    assert "(3000022 chars)" in text


def test_create_response_becomes_a_task_ref():
    ref = TaskRef.from_api(
        {
            "output": {"task_status": "PENDING", "task_id": "0385dc79-5ff8-4d82-bcb6-xxxxxx"},
            "request_id": "4909100c",
        }
    )
    assert ref == TaskRef("0385dc79-5ff8-4d82-bcb6-xxxxxx", TaskStatus.PENDING, "4909100c")


def test_succeeded_wan22_task_with_sr_usage_and_china_times():
    body = {
        "request_id": "ec016349-6b14-9ad6-8009-xxxxxx",
        "output": {
            "task_id": "3f21a745-9f4b-4588-b643-xxxxxx",
            "task_status": "SUCCEEDED",
            "submit_time": "2025-04-18 10:36:58.394",
            "scheduled_time": "2025-04-18 10:37:13.802",
            "end_time": "2025-04-18 10:45:23.004",
            "video_url": "https://dashscope-result-wlcb.oss-cn-wulanchabu.aliyuncs.com/xxx.mp4?xxxxx",
            "orig_prompt": "写实风格，一只黑色小猫好奇地看向天空",
            "actual_prompt": "写实风格，一只黑色小猫好奇地看向天空。小猫的黄色眼睛明亮有神",
        },
        "usage": {"video_duration": 5, "video_count": 1, "SR": 480},
    }
    state = TaskState.from_api(body)
    assert state.status is TaskStatus.SUCCEEDED and state.status.is_terminal and state.succeeded
    assert state.task_id == "3f21a745-9f4b-4588-b643-xxxxxx"
    assert state.request_id == "ec016349-6b14-9ad6-8009-xxxxxx"
    # 10:36:58 in China (UTC+8) is 02:36:58 UTC
    assert state.submit_time == datetime(2025, 4, 18, 2, 36, 58, 394000, tzinfo=UTC)
    assert state.scheduled_time == datetime(2025, 4, 18, 2, 37, 13, 802000, tzinfo=UTC)
    assert state.end_time == datetime(2025, 4, 18, 2, 45, 23, 4000, tzinfo=UTC)
    assert state.video_url.startswith("https://dashscope-result-wlcb")
    assert state.orig_prompt.startswith("写实风格") and state.actual_prompt.endswith("明亮有神")
    assert state.code is None and state.message is None
    assert state.usage == Usage(video_duration=5, video_count=1, sr=480, video_ratio=None)


def test_succeeded_wan21_task_with_video_ratio_usage_and_unknown_keys():
    body = {
        "status_code": 200,
        "request_id": "efa545b3-f95c-9e3a-a3b6-xxxxxx",
        "code": None,
        "message": "",
        "output": {
            "task_id": "721164c6-8619-4a35-a6d9-xxxxxx",
            "task_status": "SUCCEEDED",
            "video_url": "https://dashscope-result-sh.oss-cn-shanghai.aliyuncs.com/xxx.mp4?xxxxx",
            "submit_time": "2025-02-12 11:03:30.701",
            "scheduled_time": "2025-02-12 11:06:05.378",
            "end_time": "2025-02-12 11:12:18.853",
            "orig_prompt": "写实风格",
            "actual_prompt": "写实风格，...(long)...",
            "some_future_field": {"nested": True},
        },
        "usage": {"video_count": 1, "video_duration": 5, "video_ratio": "standard"},
    }
    state = TaskState.from_api(body)
    assert state.succeeded
    assert state.usage == Usage(video_duration=5, video_count=1, sr=None, video_ratio="standard")
    assert state.end_time == datetime(2025, 2, 12, 3, 12, 18, 853000, tzinfo=UTC)


def test_failed_task_with_a_code():
    state = TaskState.from_api(
        {
            "request_id": "e5d70b02-ebd3-98ce-9fe8-759d7d7b107d",
            "output": {
                "task_id": "86ecf553-d340-4e21-af6e-a0c6a421c010",
                "task_status": "FAILED",
                "code": "InvalidParameter",
                "message": "The size is not match xxxxxx",
            },
        }
    )
    assert state.status is TaskStatus.FAILED and state.status.is_terminal and not state.succeeded
    assert (state.code, state.message) == ("InvalidParameter", "The size is not match xxxxxx")
    assert state.usage is None and state.video_url is None


def test_failed_task_without_a_code_is_normal():
    state = TaskState.from_api(
        {
            "output": {
                "task_id": "t-1",
                "task_status": "FAILED",
                "submit_time": "2025-04-18 10:36:58.394",
                "end_time": "2025-04-18 10:37:01.000",
                "video_url": "",
            }
        }
    )
    assert state.status is TaskStatus.FAILED
    assert state.code is None and state.message is None and state.video_url is None
    assert state.request_id is None


def test_unknown_task_is_terminal():
    state = TaskState.from_api(
        {
            "request_id": "a4de7c32-7057-9f82-8581-xxxxxx",
            "output": {"task_id": "502a00b1-19d9-4839-a82f-xxxxxx", "task_status": "UNKNOWN"},
        }
    )
    assert state.status is TaskStatus.UNKNOWN and state.status.is_terminal
    assert state.submit_time is None and state.usage is None


def test_pending_task_without_times():
    state = TaskState.from_api({"output": {"task_id": "t-2", "task_status": "PENDING"}})
    assert state.status is TaskStatus.PENDING and not state.status.is_terminal
    assert (state.submit_time, state.scheduled_time, state.end_time) == (None, None, None)


def test_running_task_with_unparseable_time_keeps_the_rest():
    state = TaskState.from_api(
        {"output": {"task_id": "t-3", "task_status": "RUNNING", "submit_time": "yesterday-ish"}}
    )
    assert state.status is TaskStatus.RUNNING and state.submit_time is None


@pytest.mark.parametrize(
    "body",
    [
        {"output": {"task_status": "SUCCEEDED"}},  # no task id
        {"output": {"task_id": "t", "task_status": "PAUSED"}},  # a status we do not know
        {"request_id": "r"},  # no output at all
        {"output": {"task_id": "t"}},  # no status
    ],
)
def test_structurally_wrong_bodies_are_refused(body):
    with pytest.raises(ValueError):
        TaskState.from_api(body)


def test_statuses_are_terminal_exactly_when_the_task_can_no_longer_change():
    terminal = {status for status in TaskStatus if status.is_terminal}
    assert terminal == {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED, TaskStatus.UNKNOWN}


LIST_BODY = {
    "total": 2,
    "data": [
        {
            "api_key_id": "15xxxx",
            "caller_parent_id": "xxxxxxxxx",
            "caller_uid": "xxxxxxxxx",
            "gmt_create": 1745568428109,
            "model_name": "wanx2.1-kf2v-plus",
            "region": "cn-beijing",
            "request_id": "1abfc3c8-dd25-98da-ad0b-xxxxxx",
            "start_time": 1745568428138,
            "status": "RUNNING",
            "task_id": "50e2ccea-abc4-43d7-a0dc-xxxxxx",
            "user_api_unique_key": "apikey:v1:aigc:image2video:video-synthesis:wanx2.1-kf2v-plus",
        },
        {
            "api_key_id": "15xxxx",
            "caller_parent_id": "xxxxxxxxx",
            "caller_uid": "xxxxxxxxx",
            "end_time": 1745568302481,
            "gmt_create": 1745568293253,
            "model_name": "wanx2.1-t2i-turbo",
            "region": "cn-beijing",
            "request_id": "f6bf34d9-bf87-9e8b-9ed4-xxxxxx",
            "start_time": 1745568293273,
            "status": "SUCCEEDED",
            "task_id": "3c777dbc-8cc6-4d80-aa90-xxxxxx",
            "user_api_unique_key": "apikey:v1:aigc:text2image:image-synthesis:wanx2.1-t2i-turbo",
        },
    ],
    "total_page": 1,
    "page_no": 1,
    "request_id": "f6756b7e-d0bb-9b74-813a-xxxxxx",
    "page_size": 10,
}


def test_task_list_page_from_the_reference_example():
    page = TaskPage.from_api(LIST_BODY)
    assert (page.total, page.page_no, page.page_size, page.total_page) == (2, 1, 10, 1)
    assert page.request_id == "f6756b7e-d0bb-9b74-813a-xxxxxx"
    running, done = page.tasks
    assert running.task_id == "50e2ccea-abc4-43d7-a0dc-xxxxxx" and running.status is TaskStatus.RUNNING
    assert running.model_name == "wanx2.1-kf2v-plus" and running.region == "cn-beijing"
    assert running.api_key_id == "15xxxx" and running.request_id == "1abfc3c8-dd25-98da-ad0b-xxxxxx"
    assert running.gmt_create == datetime.fromtimestamp(1745568428.109, tz=UTC)
    assert running.end_time is None
    assert done.status is TaskStatus.SUCCEEDED
    assert done.end_time == datetime.fromtimestamp(1745568302.481, tz=UTC)


def test_empty_task_list():
    page = TaskPage.from_api({"total": 0, "data": [], "total_page": 0, "page_no": 1, "page_size": 10})
    assert page.tasks == () and page.total == 0
