"""The wiring: deps built from settings on moto, the Lambda context's remaining time bounding the
provider client's retries, and ``use_deps`` handing other deps to the handlers."""

from __future__ import annotations

import dataclasses
import threading

import boto3
import httpx
import pytest
from inbetween import wiring
from inbetween.errors import ProviderUnavailable
from inbetween_local.memory import test_settings as settings_for
from moto import mock_aws


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def aws():
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        arn = session.client("secretsmanager").create_secret(Name="dashscope", SecretString="sk-test")["ARN"]
        yield session, arn


def always_busy(calls: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"code": "ServiceUnavailable", "message": "busy"})

    return httpx.MockTransport(handle)


def deps_with(aws, calls, deadline):
    session, arn = aws
    return wiring.build_deps(
        settings_for(api_key_secret=arn),
        session=session,
        provider_transport=always_busy(calls),
        time_left_s=deadline,
        clock=wiring.FunctionClock(lambda: 0.0, lambda s: None),
    )


def test_the_invocations_remaining_time_stops_the_providers_retries(aws):
    # Given deps whose provider retries a busy answer, inside an invocation with 2 s left
    calls: list[httpx.Request] = []
    deadline = wiring.InvocationDeadline()
    deadline.bind(Context(remaining_ms=2_000))
    deps = deps_with(aws, calls, deadline)
    # When a task is queried
    with pytest.raises(ProviderUnavailable):
        deps.provider.get_task("t-1")
    # Then no retry is tried that could outlive the invocation (its timeouts alone need longer)
    assert len(calls) == 1
    assert calls[0].headers["Authorization"] == "Bearer sk-test"
    deps.close()


def test_admission_sees_the_time_left_of_its_own_invocation(aws):
    # Given deps built with the invocation deadline, and two invocations at once on threads of one
    # process (the local stack): this one with 60 s left, another with 30 s
    deadline = wiring.InvocationDeadline()
    deps = deps_with(aws, [], deadline)
    deadline.bind(Context(remaining_ms=60_000))
    other: list[float] = []

    def another_invocation() -> None:
        deadline.bind(Context(remaining_ms=30_000))
        other.append(deps.time_left_s())

    thread = threading.Thread(target=another_invocation)
    thread.start()
    thread.join()
    worker: list[float] = []
    thread = threading.Thread(target=lambda: worker.append(deps.time_left_s()))
    thread.start()
    thread.join()
    # Then each invocation's thread sees its own time left, a thread that bound none the latest bound
    assert 55 < deps.time_left_s() <= 60
    assert 25 < other[0] <= 30
    assert 25 < worker[0] <= 30
    deps.close()


def test_outside_an_invocation_the_provider_retries_as_configured(aws):
    calls: list[httpx.Request] = []
    deps = deps_with(aws, calls, wiring.InvocationDeadline())
    with pytest.raises(ProviderUnavailable):
        deps.provider.get_task("t-1")
    assert len(calls) == 3  # the first attempt and two retries
    deps.close()


def test_use_deps_hands_other_deps_to_the_handlers_and_none_rebuilds(aws, monkeypatch):
    calls: list[httpx.Request] = []
    deps = deps_with(aws, calls, None)
    other = dataclasses.replace(deps, push_secret=lambda: "another")
    wiring.use_deps(other)
    try:
        assert wiring.get_deps(Context(remaining_ms=1_000)) is other
    finally:
        wiring.use_deps(None)
    built = []
    monkeypatch.setattr(wiring, "get_settings", lambda: built.append(1) or settings_for())
    first = wiring.get_deps()
    assert wiring.get_deps() is first and built == [1]  # once per container
    wiring.use_deps(None)
    deps.close()
    first.close()


def test_invocation_deps_answer_inside_one_invocation_only(aws):
    # Given process-wide deps and another set for one invocation (a local stack's function beside a
    # test's own handlers in one process)
    calls: list[httpx.Request] = []
    process_wide = deps_with(aws, calls, None)
    own = dataclasses.replace(process_wide, push_secret=lambda: "own")
    wiring.use_deps(process_wide)
    seen_elsewhere = []
    try:
        with wiring.invocation_deps(own):
            inside = wiring.get_deps(Context(remaining_ms=1_000))
            # another thread (another function's invocation) is not inside this one
            thread = threading.Thread(target=lambda: seen_elsewhere.append(wiring.get_deps()))
            thread.start()
            thread.join()
        after = wiring.get_deps()
    finally:
        wiring.use_deps(None)
    assert inside is own
    assert seen_elsewhere == [process_wide]
    assert after is process_wide
    process_wide.close()
