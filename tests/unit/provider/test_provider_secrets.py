"""The API key never shows: not in reprs, not in errors (str, args, tracebacks), not in any log record."""

from __future__ import annotations

import logging
import pickle
import traceback

import httpx
import pytest
from inbetween.errors import InbetweenError
from inbetween.provider import CreateTaskRequest, DashScopeClient
from provider_fakes import BASE_URL, FAKE_KEY, Recorder, json_response

REQUEST = CreateTaskRequest(
    model="wan2.2-kf2v-flash",
    first_frame_url="https://example.com/1.png",
    last_frame_url="https://example.com/2.png",
)


def _leaks(text: str) -> bool:
    return FAKE_KEY in text or FAKE_KEY[3:] in text


def _error_text(error: BaseException) -> str:
    return "\n".join(
        [str(error), repr(error), repr(error.args), *traceback.format_exception(error), repr(vars(error))]
    )


def test_client_repr_masks_the_key():
    client = DashScopeClient(FAKE_KEY, BASE_URL)
    assert "api_key=***" in repr(client)
    assert not _leaks(repr(client)) and not _leaks(repr(vars(client)))
    with pytest.raises(TypeError):
        pickle.dumps(client)
    client.close()


def _key_in_the_request(request: httpx.Request) -> Exception:
    # a transport error whose text quotes the request headers, as a careless library might
    return httpx.ReadTimeout(f"timed out sending {dict(request.headers)!r}", request=request)


FAILURES = [
    json_response(
        401, {"code": "InvalidApiKey", "message": f"Invalid API-key provided: {FAKE_KEY}", "request_id": "r"}
    ),
    json_response(429, {"code": "Throttling.RateQuota", "message": "Requests rate limit exceeded"}),
    httpx.Response(502, text=f"<html>upstream said {FAKE_KEY}</html>"),
    httpx.Response(200, text="not json"),
    lambda request: (_ for _ in ()).throw(_key_in_the_request(request)),
    lambda request: (_ for _ in ()).throw(httpx.ConnectError(f"refused {request.headers['Authorization']}")),
    lambda request: (_ for _ in ()).throw(
        httpx.RemoteProtocolError(f"bad {request.headers['Authorization']}")
    ),
]


@pytest.mark.parametrize("failure", FAILURES, ids=range(len(FAILURES)))
@pytest.mark.parametrize("operation", ["create", "get", "list", "cancel"])
def test_failing_calls_leak_the_key_nowhere(make_client, caplog, failure, operation):
    if operation == "cancel" and isinstance(failure, httpx.Response) and failure.is_success:
        pytest.skip("a 200 to a cancel is a success whatever its body")
    caplog.set_level(logging.DEBUG)
    client = make_client(Recorder(failure))
    calls = {
        "create": lambda: client.create_task(REQUEST),
        "get": lambda: client.get_task("t-1"),
        "list": lambda: client.list_tasks(),
        "cancel": lambda: client.cancel_task("t-1"),
    }
    with pytest.raises(InbetweenError) as caught:
        calls[operation]()
    assert not _leaks(_error_text(caught.value))
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    for record in caplog.records:
        assert not _leaks(record.getMessage())
        assert not _leaks(logging.Formatter().format(record))


def test_real_sockets_and_debug_logging_leak_nothing(silent_server, refusing_server, caplog):
    # Given every logger at DEBUG (httpx and httpcore included) and servers that misbehave for real
    caplog.set_level(logging.DEBUG)
    for base_url in (silent_server, refusing_server):
        with DashScopeClient(
            FAKE_KEY, base_url, timeout=httpx.Timeout(0.2), get_retries=1, sleep=lambda s: None
        ) as c:
            for call in (lambda: c.create_task(REQUEST), lambda: c.get_task("t-1")):
                with pytest.raises(InbetweenError) as caught:
                    call()
                assert not _leaks(_error_text(caught.value))
    assert caplog.records, "expected the failures to be logged"
    for record in caplog.records:
        assert not _leaks(logging.Formatter().format(record))


def test_a_key_from_a_function_is_masked_when_the_provider_echoes_it():
    echo = json_response(401, {"code": "InvalidApiKey", "message": f"Invalid API-key provided: {FAKE_KEY}"})
    http = httpx.Client(transport=httpx.MockTransport(Recorder(echo)))
    with DashScopeClient(lambda: FAKE_KEY, BASE_URL, http=http) as client:
        with pytest.raises(InbetweenError) as caught:
            client.get_task("t-1")
    http.close()
    assert "Invalid API-key provided: ***" in str(caught.value)
    assert not _leaks(_error_text(caught.value))
