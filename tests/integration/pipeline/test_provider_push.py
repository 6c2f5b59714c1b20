"""Provider push through the real handlers: DashScope task-finished events reach ProviderEventsFunction
(as a function-URL request), which authenticates them, ignores what is not ours, and sends our finished
tasks down the poller's path; with push on, the poller only checks tasks whose event is overdue."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import pytest
from faults import FaultyStore
from inbetween.usecases import push
from inbetween_local.emulator import EmulatorConfig
from inbetween_local.emulator.push import task_finished_event
from inbetween_local.stack.push import function_url_event
from pipeline_kit import API_KEY

SECRET = "push-secret-0123456789abcdefghijklmnopqrstuv"
OVERDUE_AFTER_S = 1000.0  # push-on: the first check comes this long after submission (plus grace)
KF2V = "wan2.2-kf2v-flash"


@pytest.fixture
def emulator_config():
    # tasks run long enough that an event sent right after submission finds them still running
    return EmulatorConfig(api_keys=(API_KEY,), pending_s=0.1, running_s=1.5, render_preset="ultrafast")


@pytest.fixture
def template_parameters():
    # the template with push on: ProviderEventsFunction, its PushSecret and PUSH_ENABLED/PUSH_SECRET_NAME
    return {"PushEnabled": "true"}


@pytest.fixture
def secret_values(secret_values):
    return {**secret_values, "PUSH_SECRET_NAME": SECRET}


@pytest.fixture
def pushing(pipeline):
    """The pipeline with push on, event-overdue clocks far away, and the provider events function."""
    assert pipeline.settings.push_enabled and "provider_events" in pipeline.functions
    pipeline.replace(
        timing=dataclasses.replace(
            pipeline.deps.timing,
            expected_generation_s=OVERDUE_AFTER_S,
            push_grace_s=10.0,
            push_recheck_s=30.0,
        )
    )
    return pipeline


def post(pipeline, body: bytes | str, *, headers: dict | None = None, query: str = "") -> tuple[int, dict]:
    """One request to the function URL, as Lambda would deliver it."""
    raw = body.encode() if isinstance(body, str) else body
    target = "/" + (f"?{query}" if query else "")
    all_headers = {"content-type": "application/json", **(headers or {})}
    event = function_url_event("POST", target, all_headers, raw)
    answer = pipeline.invoke("provider_events", event)
    return answer["statusCode"], json.loads(answer["body"])


def authed(pipeline, body, **kw):
    return post(pipeline, body, headers={push.TOKEN_HEADER: SECRET}, **kw)


def event_for(pipeline, task_id: str) -> str:
    snapshot = pipeline.emulator.task(task_id)
    return json.dumps(task_finished_event(snapshot, region="cn-beijing"))


def submitted_job(pipeline, name: str, pair) -> dict:
    pipeline.drop(name, pair)
    pipeline.submit_step()
    item = pipeline.job(name)
    assert item["status"] == "SUBMITTED"
    return item


def wait_task_done(pipeline, task_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pipeline.emulator.advance()
        snapshot = pipeline.emulator.task(task_id)
        if snapshot is not None and snapshot.status.value in ("SUCCEEDED", "FAILED", "CANCELED"):
            return
        time.sleep(0.05)
    raise AssertionError("the emulated task did not finish")


def queries(pipeline, task_id: str) -> int:
    return pipeline.emulator.stats.per_task[task_id].queries


FOREIGN_EVENT = json.dumps(
    {"specversion": "1.0", "id": "x", "source": "acs.ecs", "type": "ecs:Instance:Started"}
)


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    ("headers", "query"),
    [({}, ""), ({push.TOKEN_HEADER: "wrong"}, ""), ({}, "token=wrong"), ({push.TOKEN_HEADER: ""}, "")],
    ids=["missing", "wrong-header", "wrong-query", "empty"],
)
def test_requests_without_the_secret_are_refused_before_any_work(pushing, pair, headers, query):
    # Given a job whose task has finished
    item = submitted_job(pushing, "auth-refused", pair)
    wait_task_done(pushing, item["task_id"])

    # When its event arrives without the right secret
    status, body = post(pushing, event_for(pushing, item["task_id"]), headers=headers, query=query)

    # Then it is refused and nothing happens: no task query, the job still waits
    assert (status, body["outcome"]) == (401, "unauthorized")
    assert queries(pushing, item["task_id"]) == 0
    assert pushing.job("auth-refused")["status"] == "SUBMITTED"


@pytest.mark.parametrize("where", ["header", "query"])
def test_the_right_secret_in_the_header_or_the_query_hands_the_finished_task_over(pushing, pair, where):
    # Given a job whose task has finished
    item = submitted_job(pushing, f"auth-ok-{where}", pair)
    wait_task_done(pushing, item["task_id"])

    # When its event arrives with the secret
    body = event_for(pushing, item["task_id"])
    if where == "header":
        status, answer = post(pushing, body, headers={push.TOKEN_HEADER: SECRET})
    else:
        status, answer = post(pushing, body, query=f"token={SECRET}")

    # Then one task query hands it to completion, and it is stored
    assert (status, answer["outcome"]) == (200, "finished")
    assert pushing.job(f"auth-ok-{where}")["status"] == "COMPLETING"
    final = pushing.run_until_final(f"auth-ok-{where}")
    assert final["status"] == "STORED"
    assert queries(pushing, item["task_id"]) == 1


def test_the_secret_is_compared_in_constant_time(pushing, monkeypatch):
    # a spy on the standard library's comparison as the push module calls it (no port to wrap here)
    compared = []
    real = push.hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(push.hmac, "compare_digest", spy)
    status, _ = post(pushing, FOREIGN_EVENT, headers={push.TOKEN_HEADER: "nope"})
    assert status == 401
    assert compared == [(b"nope", SECRET.encode())]


# ---------------------------------------------------------------- what is not ours, or not an event


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{not json", 400),
        ("[1, 2]", 400),
        ('{"source": "acs.dashscope"}', 400),
        (json.dumps({"source": "acs.dashscope", "type": push.EVENT_TYPE, "data": {}}), 400),
        (FOREIGN_EVENT, 200),
        (json.dumps({"source": "acs.dashscope", "type": "dashscope:System:Other", "data": {}}), 200),
    ],
    ids=["not-json", "not-object", "no-type", "no-task-id", "other-source", "other-type"],
)
def test_malformed_requests_get_400_and_foreign_events_a_2xx_so_the_bus_stops_retrying(pushing, body, status):
    answer_status, _ = authed(pushing, body)
    assert answer_status == status


def test_an_oversize_body_is_refused(pushing):
    status, answer = authed(pushing, "x" * (push.MAX_BODY_BYTES + 1))
    assert (status, answer["outcome"]) == (413, "body too large")


def _event(task_id: str, *, model: str = "wan2.2-kf2v-flash", region: str = "cn-beijing") -> str:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": uuid.uuid4().hex,
            "source": push.EVENT_SOURCE,
            "type": push.EVENT_TYPE,
            "data": {
                "task_id": task_id,
                "task_status": "SUCCEEDED",
                "region": region,
                "user_api_unique_key": f"apikey:v1:aigc:image2video:video-synthesis:{model}",
            },
        }
    )


@pytest.mark.parametrize(
    ("kwargs", "outcome"),
    [
        ({"model": "qwen-max"}, "ignored: a model this pipeline does not use"),
        ({"region": "ap-southeast-1"}, "ignored: another region"),
    ],
)
def test_other_models_and_regions_are_ignored_with_a_2xx(pushing, pair, kwargs, outcome):
    item = submitted_job(pushing, "foreign-" + "-".join(kwargs), pair)
    status, answer = authed(pushing, _event(item["task_id"], **kwargs))
    assert (status, answer["outcome"]) == (200, outcome)
    assert queries(pushing, item["task_id"]) == 0


# ---------------------------------------------------------------- duplicates and order


def test_duplicate_events_make_one_hand_off_and_one_query(pushing, pair):
    # Given a finished task whose event is delivered three times
    item = submitted_job(pushing, "dup", pair)
    wait_task_done(pushing, item["task_id"])
    body = event_for(pushing, item["task_id"])

    outcomes = [authed(pushing, body)[1]["outcome"] for _ in range(3)]

    # Then the first hands it over, the others change nothing
    assert outcomes == ["finished", "already handled", "already handled"]
    final = pushing.run_until_final("dup")
    assert final["status"] == "STORED"
    assert queries(pushing, item["task_id"]) == 1
    assert len([n for n in pushing.notifications() if n["message"]["data"]["job"] == "dup"]) == 1
    # a late copy after the video is stored changes nothing either
    assert authed(pushing, body)[1]["outcome"] == "already handled"
    assert queries(pushing, item["task_id"]) == 1


def test_copies_arriving_together_query_the_task_once(pushing, pair):
    # Given an event that arrives before the task has really ended (the query says RUNNING)
    item = submitted_job(pushing, "together", pair)
    body = _event(item["task_id"])

    first = authed(pushing, body)[1]["outcome"]
    second = authed(pushing, body)[1]["outcome"]

    # Then the first copy queries and leaves the job waiting; the second is a duplicate, no query
    assert (first, second) == ("running", "duplicate")
    assert queries(pushing, item["task_id"]) == 1
    assert pushing.job("together")["status"] == "SUBMITTED"


def test_events_in_any_order_each_finish_their_own_job(pushing, pair):
    # Given two finished jobs whose events arrive in reverse order, with a stale repeat of the first
    a = submitted_job(pushing, "order-a", pair)
    b = submitted_job(pushing, "order-b", pair)
    for item in (a, b):
        wait_task_done(pushing, item["task_id"])
    events = [event_for(pushing, b["task_id"]), event_for(pushing, a["task_id"])]

    outcomes = [authed(pushing, e)[1]["outcome"] for e in (*events, events[0])]

    # Then each job is handed over once, and the stale repeat changes nothing
    assert outcomes == ["finished", "finished", "already handled"]
    for name in ("order-a", "order-b"):
        assert pushing.run_until_final(name)["status"] == "STORED"
    assert queries(pushing, a["task_id"]) == queries(pushing, b["task_id"]) == 1


# ---------------------------------------------------------------- tasks the table does not know (yet)


def test_an_unknown_task_is_acknowledged_and_leaves_only_a_hint(pushing):
    status, answer = authed(pushing, _event("not-a-task-of-ours"))
    assert (status, answer["outcome"]) == (200, "unknown task: the poller follows up")
    hint = pushing.raw_item("early#not-a-task-of-ours")
    assert hint is not None and hint["due_kind"] == "early"
    later = pushing.deps.clock.now() + push.EARLY_RECHECK_S + 1
    assert [e.task_id for e in pushing.deps.store.due_early_events(later)] == ["not-a-task-of-ours"]
    # the hint goes away once it is old (another program's task)
    pushing.advance(push.EARLY_MAX_AGE_S + 10)
    pushing.poll_step()
    assert pushing.raw_item("early#not-a-task-of-ours") is None


def test_an_event_that_beats_our_record_of_the_task_is_followed_up_by_the_poller(pushing, pair):
    # Given an event that arrives after the create call but before we recorded the task id
    early = []

    def event_first(task_id, job_id):
        early.append(authed(pushing, _event(task_id))[1]["outcome"])

    pushing.replace(store=FaultyStore(pushing.deps.store, before_record_task=event_first))
    item = submitted_job(pushing, "early", pair)
    assert early == ["unknown task: the poller follows up"]
    wait_task_done(pushing, item["task_id"])

    # When the poller runs a little later (long before the task's event would be overdue)
    pushing.advance(push.EARLY_RECHECK_S + 1)
    pushing.poll_step()

    # Then it checks that task at once, and the job completes
    assert pushing.job("early")["status"] in ("COMPLETING", "STORED")
    assert pushing.run_until_final("early")["status"] == "STORED"
    assert queries(pushing, item["task_id"]) == 1
    assert pushing.raw_item(f"early#{item['task_id']}") is None


# ---------------------------------------------------------------- the poller as the safety net


def test_with_push_on_the_poller_leaves_tasks_alone_until_their_event_is_overdue(pushing, pair):
    # Given a job whose task finished but whose event was lost
    item = submitted_job(pushing, "lost-event", pair)
    wait_task_done(pushing, item["task_id"])

    # When the poller runs repeatedly before the event is overdue
    for _ in range(3):
        pushing.poll_step()
        pushing.advance(60)

    # Then it has not queried the task
    assert queries(pushing, item["task_id"]) == 0
    assert pushing.job("lost-event")["status"] == "SUBMITTED"

    # When the event is overdue
    pushing.advance(OVERDUE_AFTER_S + 10)
    final = pushing.run_until_final("lost-event")

    # Then one query finds the task and the video is stored: the lost event cost latency, not the video
    assert final["status"] == "STORED"
    assert queries(pushing, item["task_id"]) == 1


# ---------------------------------------------------------------- a freed slot is used at once


# kf2v flash's published quota of two (wan2.7-i2v, the template's default, runs five and queues more)
@pytest.mark.parametrize("template_parameters", [{"PushEnabled": "true", "DefaultModel": KF2V}], ids=["kf2v"])
def test_an_event_that_frees_a_slot_gets_the_next_waiting_job_submitted_without_the_poller(pushing, pair):
    # Given the two slots of the published quota busy and a third job waiting
    running = [submitted_job(pushing, f"slot-{i}", pair) for i in range(2)]
    pushing.drop("slot-next", pair)
    pushing.submit_step()
    assert pushing.job("slot-next")["status"] == "WAITING"
    wait_task_done(pushing, running[0]["task_id"])

    # When the first task's event arrives, and the submit function takes its queue (no poller tick)
    assert authed(pushing, event_for(pushing, running[0]["task_id"]))[1]["outcome"] == "finished"
    pushing.submit_step()

    # Then the waiting job has taken the freed slot
    assert pushing.job("slot-next")["status"] == "SUBMITTED"
    assert pushing.emulator.stats.creates_accepted == 3
