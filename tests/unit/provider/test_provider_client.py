"""The HTTP client: endpoints, headers, error classification, retries on reads only, timeouts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from inbetween.domain import catalog
from inbetween.errors import (
    ConfigError,
    ProviderError,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnavailable,
)
from inbetween.provider import CreateTaskRequest, DashScopeClient, TaskStatus
from provider_fakes import BASE_URL, FAKE_KEY, Recorder, json_response, never_called

REQUEST = CreateTaskRequest(
    model="wan2.2-kf2v-flash",
    first_frame_url="https://wanx.alicdn.com/material/20250318/first_frame.png",
    last_frame_url="https://wanx.alicdn.com/material/20250318/last_frame.png",
    prompt="写实风格，一只黑色小猫好奇地看向天空，镜头从平视逐渐上升，最后俯拍它的好奇的眼神。",
    resolution="480P",
    prompt_extend=True,
)
CREATED = {"output": {"task_status": "PENDING", "task_id": "0385dc79"}, "request_id": "4909100c"}
RUNNING = {
    "request_id": "r-2",
    "output": {"task_id": "t-1", "task_status": "RUNNING", "submit_time": "2025-04-18 10:36:58.394"},
}
SUCCEEDED = {
    "request_id": "r-3",
    "output": {"task_id": "t-1", "task_status": "SUCCEEDED", "video_url": "https://result.example/v.mp4"},
    "usage": {"video_duration": 5, "video_count": 1, "SR": 480},
}


# -- requests on the wire -------------------------------------------------------------------------------


def test_create_posts_the_documented_request(make_client):
    # Given a provider that accepts the task
    provider = Recorder(json_response(200, CREATED))
    client = make_client(provider)
    # When a task is created
    ref = client.create_task(REQUEST)
    # Then one POST went to the create endpoint with the async header, the key and the documented body
    assert (ref.task_id, ref.task_status, ref.request_id) == ("0385dc79", TaskStatus.PENDING, "4909100c")
    (sent,) = provider.requests
    assert sent.method == "POST"
    assert str(sent.url) == f"{BASE_URL}/services/aigc/image2video/video-synthesis"
    assert sent.headers["X-DashScope-Async"] == "enable"
    assert sent.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["User-Agent"] == "inbetween/0.1"
    assert json.loads(sent.content) == {
        "model": "wan2.2-kf2v-flash",
        "input": {
            "first_frame_url": "https://wanx.alicdn.com/material/20250318/first_frame.png",
            "last_frame_url": "https://wanx.alicdn.com/material/20250318/last_frame.png",
            "prompt": "写实风格，一只黑色小猫好奇地看向天空，镜头从平视逐渐上升，最后俯拍它的好奇的眼神。",
        },
        "parameters": {"resolution": "480P", "prompt_extend": True},
    }


def test_get_task_reads_the_state(make_client):
    provider = Recorder(json_response(200, SUCCEEDED))
    state = make_client(provider).get_task("t-1")
    assert state.status is TaskStatus.SUCCEEDED and state.video_url == "https://result.example/v.mp4"
    assert state.usage.sr == 480
    (sent,) = provider.requests
    assert (sent.method, str(sent.url)) == ("GET", f"{BASE_URL}/tasks/t-1")
    assert "X-DashScope-Async" not in sent.headers
    assert sent.headers["Authorization"] == f"Bearer {FAKE_KEY}"


def test_task_ids_cannot_escape_their_path_segment(make_client):
    provider = Recorder(json_response(200, RUNNING))
    make_client(provider).get_task("../services/x?y=1")
    assert provider.requests[0].url.raw_path == b"/api/v1/tasks/..%2Fservices%2Fx%3Fy%3D1"


def test_api_key_may_be_a_function_read_on_every_request(sleeps):
    keys = iter(["sk-first", "sk-rotated"])
    provider = Recorder(json_response(200, RUNNING))
    http = httpx.Client(transport=httpx.MockTransport(provider))
    with DashScopeClient(lambda: next(keys), BASE_URL, http=http) as client:
        client.get_task("t-1")
        client.get_task("t-1")
    http.close()
    assert [r.headers["Authorization"] for r in provider.requests] == ["Bearer sk-first", "Bearer sk-rotated"]


def test_an_empty_api_key_is_a_configuration_error(sleeps):
    http = httpx.Client(transport=httpx.MockTransport(never_called))
    client = DashScopeClient(lambda: "  ", BASE_URL, http=http)
    with pytest.raises(ConfigError):
        client.get_task("t-1")
    http.close()


def test_cancel_posts_to_the_cancel_endpoint(make_client):
    provider = Recorder(json_response(200, {"request_id": "45ac7f13"}))
    assert make_client(provider).cancel_task("t-1") is None
    (sent,) = provider.requests
    assert (sent.method, str(sent.url), sent.content) == ("POST", f"{BASE_URL}/tasks/t-1/cancel", b"")


def test_cancelling_a_running_task_is_rejected_and_not_retried(make_client):
    provider = Recorder(
        json_response(
            400,
            {
                "request_id": "r",
                "code": "UnsupportedOperation",
                "message": "Failed to cancel the task, please confirm if the task is in PENDING status.",
            },
        )
    )
    with pytest.raises(ProviderRejected) as caught:
        make_client(provider).cancel_task("t-1")
    assert (caught.value.code, caught.value.task_id) == ("UnsupportedOperation", "t-1")
    assert len(provider.requests) == 1


LIST_PAGE = {
    "total": 3,
    "data": [
        {
            "task_id": "a",
            "status": "SUCCEEDED",
            "gmt_create": 1745568293253,
            "model_name": "wan2.2-kf2v-flash",
        },
        {"task_id": "b", "status": "RUNNING", "gmt_create": 1745568428109, "model_name": "wan2.2-kf2v-flash"},
    ],
    "total_page": 2,
    "page_no": 1,
    "page_size": 2,
    "request_id": "r-list",
}


def test_list_tasks_sends_filters_in_china_time(make_client):
    provider = Recorder(json_response(200, LIST_PAGE))
    # 2025-04-25 08:00 UTC is 16:00 in China
    start = datetime(2025, 4, 25, 8, 0, tzinfo=UTC)
    page = make_client(provider).list_tasks(
        start=start,
        end=start + timedelta(hours=24),
        model="wan2.2-kf2v-flash",
        status=TaskStatus.RUNNING,
        page_no=1,
        page_size=2,
    )
    assert [t.task_id for t in page.tasks] == ["a", "b"] and page.total_page == 2
    (sent,) = provider.requests
    assert sent.url.path == "/api/v1/tasks"
    assert dict(sent.url.params) == {
        "page_no": "1",
        "page_size": "2",
        "start_time": "20250425160000",
        "end_time": "20250426160000",
        "model_name": "wan2.2-kf2v-flash",
        "status": "RUNNING",
    }


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2025, 4, 25, 0, 0, tzinfo=UTC), datetime(2025, 4, 26, 0, 1, tzinfo=UTC)),  # over 24 h
        (datetime(2025, 4, 26, 0, 0, tzinfo=UTC), datetime(2025, 4, 25, 0, 0, tzinfo=UTC)),  # reversed
        (datetime(2025, 4, 25, 0, 0), datetime(2025, 4, 25, 1, 0)),  # naive: which zone?
        (datetime.now(UTC) - timedelta(hours=30), None),  # open end: span to now is over 24 h
    ],
)
def test_list_windows_the_provider_would_refuse_are_refused_locally(make_client, start, end):
    with pytest.raises(ValueError):
        make_client(never_called).list_tasks(start=start, end=end)


def test_iter_tasks_walks_every_page(make_client):
    second = dict(
        LIST_PAGE, page_no=2, data=[{"task_id": "c", "status": "FAILED", "gmt_create": 1745568500000}]
    )
    provider = Recorder(json_response(200, LIST_PAGE), json_response(200, second))
    ids = [t.task_id for t in make_client(provider).iter_tasks(model="wan2.2-kf2v-flash", page_size=2)]
    assert ids == ["a", "b", "c"]
    assert [r.url.params["page_no"] for r in provider.requests] == ["1", "2"]


def test_for_region_uses_the_catalogue_endpoint():
    client = DashScopeClient.for_region("ap-southeast-1", FAKE_KEY)
    assert client.base_url == catalog.REGION_BASE_URLS["ap-southeast-1"]
    client.close()
    with pytest.raises(ConfigError) as caught:
        DashScopeClient.for_region("mars-1", FAKE_KEY)
    assert "cn-beijing" in str(caught.value)


def test_a_base_url_that_is_not_http_is_refused():
    with pytest.raises(ConfigError):
        DashScopeClient(FAKE_KEY, "ftp://dashscope.aliyuncs.com/api/v1")


# -- error classification -------------------------------------------------------------------------------


def _err(status, code, message="details", headers=None):
    body = {"request_id": "req-9", "code": code, "message": message}
    return json_response(status, body, headers)


CLASSIFICATION = [
    # status, response, expected class, provider code
    (400, _err(400, "InvalidParameter"), ProviderRejected, "InvalidParameter"),
    (401, _err(401, "InvalidApiKey", "Invalid API-key provided."), ProviderRejected, "InvalidApiKey"),
    (400, _err(400, "DataInspectionFailed"), ProviderRejected, "DataInspectionFailed"),
    (400, _err(400, "IPInfringementSuspect"), ProviderRejected, "IPInfringementSuspect"),
    (400, _err(400, "Arrearage"), ProviderRejected, "Arrearage"),
    (403, _err(403, "AccessDenied"), ProviderRejected, "AccessDenied"),
    (400, _err(400, "BadRequest.EmptyInput"), ProviderRejected, "BadRequest.EmptyInput"),
    (400, _err(400, "InvalidURL"), ProviderRejected, "InvalidURL"),
    (400, _err(400, "UnsupportedOperation"), ProviderRejected, "UnsupportedOperation"),
    (404, httpx.Response(404, text="<html>not found</html>"), ProviderRejected, None),
    (422, _err(422, "SomethingNew"), ProviderRejected, "SomethingNew"),
    # an "internal error" wording in a 4xx message does not make it retryable: status and code decide
    (
        400,
        _err(400, "InvalidParameter", "An internal error has occured, please try again"),
        ProviderRejected,
        "InvalidParameter",
    ),
    (429, _err(429, "Throttling.RateQuota"), ProviderThrottled, "Throttling.RateQuota"),
    (429, _err(429, "Throttling.AllocationQuota"), ProviderThrottled, "Throttling.AllocationQuota"),
    (400, _err(400, "Throttling"), ProviderThrottled, "Throttling"),
    (500, _err(500, "InternalError"), ProviderUnavailable, "InternalError"),
    (500, _err(500, "InternalError.Algo"), ProviderUnavailable, "InternalError.Algo"),
    (502, httpx.Response(502, text="<html>Bad Gateway</html>"), ProviderUnavailable, None),
    (503, httpx.Response(503, content=b""), ProviderUnavailable, None),
    (504, _err(504, "GatewayTimeout"), ProviderUnavailable, "GatewayTimeout"),
]


@pytest.mark.parametrize(
    ("status", "response", "expected", "code"),
    CLASSIFICATION,
    ids=[f"{s}-{c}" for s, _, _, c in CLASSIFICATION],
)
def test_get_errors_are_classified_by_status_and_code(make_client, status, response, expected, code):
    with pytest.raises(ProviderError) as caught:
        make_client(Recorder(response), get_retries=0).get_task("t-7")
    error = caught.value
    assert type(error) is expected
    assert error.retryable is issubclass(expected, ProviderUnavailable)
    assert (error.status_code, error.code, error.task_id) == (status, code, "t-7")
    assert error.request_id == ("req-9" if code else None)
    assert error.maybe_created is False
    assert error.message.startswith("DashScope get task failed")


@pytest.mark.parametrize(
    ("response", "expected", "maybe_created"),
    [
        (_err(400, "InvalidParameter"), ProviderRejected, False),
        (_err(401, "InvalidApiKey"), ProviderRejected, False),
        (_err(429, "Throttling.RateQuota", headers={"Retry-After": "1"}), ProviderThrottled, False),
        (_err(500, "InternalError"), ProviderUnavailable, True),
        (httpx.Response(502, text="Bad Gateway"), ProviderUnavailable, True),
        (httpx.Response(503, content=b""), ProviderUnavailable, True),
        (httpx.Response(200, text="<html>captive portal</html>"), ProviderUnavailable, True),
        (json_response(200, {"request_id": "r", "output": {}}), ProviderUnavailable, True),
    ],
)
def test_create_is_never_retried_and_says_whether_the_task_may_exist(
    make_client, response, expected, maybe_created
):
    # Given a provider that fails the create call
    provider = Recorder(response, json_response(200, CREATED))
    # When a task is created
    with pytest.raises(ProviderError) as caught:
        make_client(provider, get_retries=5).create_task(REQUEST)
    # Then exactly one request was made, and the error says whether to reconcile before resubmitting
    assert len(provider.requests) == 1
    assert type(caught.value) is expected
    assert caught.value.maybe_created is maybe_created


@pytest.mark.parametrize(
    ("failure", "maybe_created"),
    [
        (httpx.ConnectError("connection refused"), False),
        (httpx.ConnectTimeout("connect timed out"), False),
        (httpx.PoolTimeout("no connection available"), False),
        (httpx.ReadTimeout("read timed out"), True),
        (httpx.WriteTimeout("write timed out"), True),
        (httpx.ReadError("connection reset"), True),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_create_transport_failures_tell_sent_from_not_sent(make_client, failure, maybe_created):
    provider = Recorder(failure, json_response(200, CREATED))
    with pytest.raises(ProviderUnavailable) as caught:
        make_client(provider).create_task(REQUEST)
    assert len(provider.requests) == 1
    assert caught.value.maybe_created is maybe_created
    assert caught.value.code == type(failure).__name__
    assert caught.value.__cause__ is None and caught.value.__context__ is None


# -- retries on reads -----------------------------------------------------------------------------------


def test_get_waits_as_long_as_retry_after_says(make_client, sleeps):
    # Given a provider that throttles once and asks for a one-second pause
    provider = Recorder(
        _err(429, "Throttling.RateQuota", headers={"Retry-After": "1"}), json_response(200, RUNNING)
    )
    # When the task is read
    state = make_client(provider).get_task("t-1")
    # Then the client waited exactly that long and read it on the second attempt
    assert state.status is TaskStatus.RUNNING
    assert sleeps == [1.0]
    assert len(provider.requests) == 2


def test_get_retries_a_503_with_a_short_backoff(make_client, sleeps):
    provider = Recorder(httpx.Response(503, text="busy"), json_response(200, RUNNING))
    assert make_client(provider).get_task("t-1").status is TaskStatus.RUNNING
    assert len(provider.requests) == 2
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 4.0


def test_get_retries_connection_errors_then_gives_up(make_client, sleeps):
    provider = Recorder(httpx.ConnectError("refused"))
    with pytest.raises(ProviderUnavailable):
        make_client(provider, get_retries=2).get_task("t-1")
    assert len(provider.requests) == 3
    assert len(sleeps) == 2 and all(0 < s <= 4.0 for s in sleeps)


def test_get_does_not_wait_longer_than_its_cap(make_client, sleeps):
    # Given the provider asks for a minute's pause, longer than one invocation should wait
    provider = Recorder(
        _err(429, "Throttling.RateQuota", headers={"Retry-After": "60"}), json_response(200, RUNNING)
    )
    # Then the throttle is reported at once, for the caller to retry later
    with pytest.raises(ProviderThrottled):
        make_client(provider).get_task("t-1")
    assert sleeps == [] and len(provider.requests) == 1


def test_get_does_not_retry_past_the_invocation_deadline(make_client, sleeps):
    provider = Recorder(httpx.Response(503, text="busy"), json_response(200, RUNNING))
    with pytest.raises(ProviderUnavailable):
        make_client(provider, time_left_s=lambda: 3.0).get_task("t-1")
    assert sleeps == [] and len(provider.requests) == 1


def test_rejections_are_not_retried(make_client, sleeps):
    provider = Recorder(_err(401, "InvalidApiKey"), json_response(200, RUNNING))
    with pytest.raises(ProviderRejected):
        make_client(provider).get_task("t-1")
    assert sleeps == [] and len(provider.requests) == 1


def test_list_is_retried_like_get(make_client, sleeps):
    provider = Recorder(_err(500, "InternalError"), json_response(200, LIST_PAGE))
    assert len(make_client(provider).list_tasks().tasks) == 2
    assert len(provider.requests) == 2


def test_cancel_is_not_retried(make_client):
    provider = Recorder(_err(500, "InternalError"), json_response(200, {"request_id": "r"}))
    with pytest.raises(ProviderUnavailable):
        make_client(provider).cancel_task("t-1")
    assert len(provider.requests) == 1


# -- timeouts against a real socket ---------------------------------------------------------------------


def test_a_server_that_never_answers_times_out_on_get(silent_server, sleeps):
    # Given a server on 127.0.0.1 that accepts connections and never answers
    client = DashScopeClient(
        FAKE_KEY, silent_server, timeout=httpx.Timeout(0.2), get_retries=1, sleep=sleeps.append
    )
    # When a task is read, Then it times out (once per attempt) and is reported as retryable
    with client, pytest.raises(ProviderUnavailable) as caught:
        client.get_task("t-1")
    assert caught.value.code == "ReadTimeout"
    assert len(sleeps) == 1


def test_a_create_that_times_out_may_have_created_the_task(silent_server):
    with DashScopeClient(FAKE_KEY, silent_server, timeout=httpx.Timeout(0.2)) as client:
        with pytest.raises(ProviderUnavailable) as caught:
            client.create_task(REQUEST)
    assert caught.value.code == "ReadTimeout"
    assert caught.value.maybe_created is True
    assert "may have been created" in str(caught.value)


def test_a_refused_connection_certainly_created_nothing(refusing_server):
    with DashScopeClient(FAKE_KEY, refusing_server, timeout=httpx.Timeout(1.0)) as client:
        with pytest.raises(ProviderUnavailable) as caught:
            client.create_task(REQUEST)
    assert caught.value.code == "ConnectError"
    assert caught.value.maybe_created is False


def test_default_timeouts_are_explicit_and_short():
    from inbetween.provider import DEFAULT_TIMEOUT

    assert (DEFAULT_TIMEOUT.connect, DEFAULT_TIMEOUT.read, DEFAULT_TIMEOUT.write, DEFAULT_TIMEOUT.pool) == (
        5,
        20,
        20,
        5,
    )
