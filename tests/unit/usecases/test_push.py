"""Provider push against the in-memory world: the request is refused or ignored before any work when it
should be; an event of ours costs one task query and hands the job on; duplicates, stale events and
events for tasks we do not know yet change nothing (or leave a hint the poller follows up)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from inbetween.domain.models import DueKind, EarlyEvent, InputObject, Job, JobSpec, JobStatus
from inbetween.errors import ConfigError
from inbetween.provider.models import TaskState, TaskStatus
from inbetween.usecases import admission, polling, push
from inbetween.usecases.push import (
    EARLY_MAX_AGE_S,
    EARLY_RECHECK_S,
    MAX_BODY_BYTES,
    TOKEN_HEADER,
    HttpRequest,
    PushOutcome,
    follow_up_early_events,
    handle_request,
)
from inbetween.usecases.task_checks import CheckOutcome
from inbetween_local.memory import MemoryWorld, memory_world
from inbetween_local.memory import test_settings as settings_for

MODEL = "wan2.2-kf2v-flash"
SECRET = "push-secret"


# ---------------------------------------------------------------------------------------------- givens
@pytest.fixture
def world() -> MemoryWorld:
    return memory_world(settings_for(push_enabled=True, provider_concurrency=3), push_secret=SECRET)


def submitted(world: MemoryWorld, name: str = "shot", model: str = MODEL) -> Job:
    now = world.clock.now()
    inputs = {role: InputObject(f"inbox/{name}/{role}.png", "etag", 1000) for role in ("first", "last")}
    spec = JobSpec(model=model, resolution="720P", prompt="p")
    job = Job(
        f"{name}/run1", name, "run1", JobStatus.WAITING, spec, inputs, now, now, expected_size=(1280, 720)
    )
    assert world.store.add_job(job, due=(DueKind.ADMIT, now))
    assert admission.admit(world.deps, model) == 1
    found = world.store.get_job(job.job_id)
    assert found is not None and found.status is JobStatus.SUBMITTED and found.task_id
    return found


def event(task_id: str, **changes: Any) -> dict[str, Any]:
    """A task-finished event as EventBridge delivers it."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": push.EVENT_SOURCE,
        "type": push.EVENT_TYPE,
        "aliyunregionid": "cn-beijing",
        "data": {
            "task_id": task_id,
            "task_status": "SUCCEEDED",
            "user_api_unique_key": f"apikey:v1:video-generation:video-synthesis:{MODEL}",
            "region": "cn-beijing",
        },
    }
    data = changes.pop("data", {})
    body.update(changes)
    body["data"].update(data)
    return body


def request(
    body: dict[str, Any] | bytes | str,
    *,
    method: str = "POST",
    token: str | None = SECRET,
    in_query: bool = False,
) -> HttpRequest:
    raw = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    headers = {"content-type": "application/json"}
    query: dict[str, str] = {}
    if token is not None:
        (query if in_query else headers)[TOKEN_HEADER if not in_query else "token"] = token
    return HttpRequest(method=method, headers=headers, query=query, body=raw)


def succeeded(task_id: str) -> TaskState:
    return TaskState(
        task_id=task_id, status=TaskStatus.SUCCEEDED, video_url=f"https://videos.test/{task_id}.mp4"
    )


# ---------------------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("token", "method"),
    [(None, "POST"), ("wrong-secret", "POST"), ("", "POST"), (None, "GET"), ("push-secre", "POST")],
    ids=["missing", "wrong", "empty", "missing-before-method", "prefix"],
)
def test_a_request_without_the_secret_is_refused_with_401_before_any_work(world, token, method):
    job = submitted(world)
    resp = handle_request(world.deps, request(event(job.task_id), token=token, method=method))
    assert (resp.status, resp.outcome) == (401, "unauthorized")
    assert world.provider.queries == []
    assert world.store.get_job(job.job_id).push_received_at is None


def test_the_secret_in_the_query_string_is_accepted(world):
    job = submitted(world)
    world.provider.set_state(job.task_id, succeeded(job.task_id))
    resp = handle_request(world.deps, request(event(job.task_id), in_query=True))
    assert (resp.status, resp.outcome) == (200, CheckOutcome.FINISHED)


def test_an_unreadable_secret_answers_503_so_the_bus_retries(world):
    def unreadable() -> str:
        raise ConfigError("the push secret cannot be read")

    deps = replace(world.deps, push_secret=unreadable)
    job = submitted(world)
    resp = handle_request(deps, request(event(job.task_id)))
    assert (resp.status, resp.outcome) == (503, "unavailable")
    assert world.provider.queries == []


def test_only_post_is_accepted(world):
    resp = handle_request(world.deps, request(event("t-1"), method="GET"))
    assert resp.status == 405


def test_an_oversize_body_is_refused_with_413_before_it_is_parsed(world):
    oversize = b"{" + b" " * MAX_BODY_BYTES + b"}"
    assert handle_request(world.deps, request(oversize)).status == 413
    at_limit = json.dumps(event("t-1")).encode().ljust(MAX_BODY_BYTES)
    assert handle_request(world.deps, request(at_limit)).status == 200


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "the body is not JSON"),
        (b"\xff\xfe", "the body is not JSON"),
        (b"[1, 2]", "the body is not a JSON object"),
        (b'{"data": {"task_id": "t"}}', "the event has no source or type"),
        (json.dumps({**event("t"), "data": None}).encode(), "the event has no data object"),
        (json.dumps(event("t", data={"task_id": "  "})).encode(), "the event has no task id"),
        (json.dumps(event("t", data={"task_id": "x" * 129})).encode(), "the event has no task id"),
    ],
    ids=["not-json", "not-utf8", "array", "no-source", "no-data", "blank-task", "long-task"],
)
def test_a_malformed_event_is_refused_with_400(world, body, reason):
    resp = handle_request(world.deps, request(body))
    assert (resp.status, resp.outcome) == (400, reason)


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({"source": "acs.ecs"}, "ignored: not a task-finished event"),
        ({"type": "dashscope:System:SomethingElse"}, "ignored: not a task-finished event"),
        ({"data": {"region": "ap-southeast-1"}}, PushOutcome.OTHER_REGION),
        (
            {"data": {"user_api_unique_key": "apikey:v1:video-synthesis:wan2.5-i2v-preview"}},
            PushOutcome.OTHER_MODEL,
        ),
    ],
    ids=["other-source", "other-type", "other-region", "other-model"],
)
def test_events_that_are_not_ours_are_acknowledged_with_200_and_change_nothing(world, changes, outcome):
    job = submitted(world)
    resp = handle_request(world.deps, request(event(job.task_id, **changes)))
    assert (resp.status, resp.outcome) == (200, outcome)
    assert world.provider.queries == []
    assert world.store.get_job(job.job_id).status is JobStatus.SUBMITTED
    assert world.store.due_early_events(world.clock.now() + 3600) == []


# ---------------------------------------------------------------------------------------------- our events
def test_an_event_for_our_task_queries_it_once_and_hands_the_job_to_completion(world):
    # Given a submitted job (its slot taken) whose task has finished
    job = submitted(world)
    assert world.store.slots_in_use(MODEL) == 1
    world.provider.set_state(job.task_id, succeeded(job.task_id))
    # When its task-finished event arrives
    resp = handle_request(world.deps, request(event(job.task_id)))
    # Then one query, the job is completing, its slot is free and the next waiting job is nudged
    assert (resp.status, resp.outcome) == (200, CheckOutcome.FINISHED)
    assert world.provider.queries == [job.task_id]
    after = world.store.get_job(job.job_id)
    assert after.status is JobStatus.COMPLETING
    assert after.video_url == f"https://videos.test/{job.task_id}.mp4"
    assert (after.push_event_id, after.push_received_at) == ("evt-1", world.clock.now())
    assert world.store.slots_in_use(MODEL) == 0
    assert world.queues.completions == [job.job_id]
    assert world.queues.admissions == [MODEL]


def test_an_event_for_a_failed_task_ends_the_job_and_frees_its_slot(world):
    job = submitted(world)
    world.provider.set_state(
        job.task_id,
        TaskState(task_id=job.task_id, status=TaskStatus.FAILED, code="InternalError", message="boom"),
    )
    resp = handle_request(world.deps, request(event(job.task_id, data={"task_status": "FAILED"})))
    assert resp.outcome == CheckOutcome.FINISHED
    after = world.store.get_job(job.job_id)
    assert (after.status, after.error.code) == (JobStatus.FAILED, "InternalError")
    assert world.store.slots_in_use(MODEL) == 0
    assert world.queues.admissions == [MODEL]
    assert [n.status for n in world.notifier.published] == [JobStatus.FAILED]


def test_a_duplicate_arriving_while_the_first_is_being_handled_is_a_duplicate_and_makes_no_query(world):
    # Given a finished task, and a copy of its event arriving while the first copy's query is in flight
    job = submitted(world)
    world.provider.set_state(job.task_id, succeeded(job.task_id))
    nested: list[Any] = []

    class QueryWhileADuplicateArrives:
        def __getattr__(self, name: str) -> Any:
            return getattr(world.provider, name)

        def get_task(self, task_id: str) -> TaskState:
            if not nested:
                nested.append(handle_request(deps, request(event(job.task_id, id="evt-2"))))
            return world.provider.get_task(task_id)

    deps = replace(world.deps, provider=QueryWhileADuplicateArrives())
    # When the first copy is handled
    first = handle_request(deps, request(event(job.task_id)))
    # Then the copy answered "duplicate" without a query of its own
    assert first.outcome == CheckOutcome.FINISHED
    assert [(r.status, r.outcome) for r in nested] == [(200, PushOutcome.DUPLICATE)]
    assert world.provider.queries == [job.task_id]
    assert world.queues.completions == [job.job_id]


def test_the_claim_holds_duplicates_off_only_for_a_while(world):
    # Given an event whose task, queried, is still running (the claim stays on the job)
    job = submitted(world)
    world.provider.set_state(job.task_id, TaskState(task_id=job.task_id, status=TaskStatus.RUNNING))
    assert handle_request(world.deps, request(event(job.task_id))).outcome == CheckOutcome.RUNNING
    # When a copy arrives within the claim, then after it
    world.clock.advance(push.CLAIM_S - 1)
    during = handle_request(world.deps, request(event(job.task_id)))
    world.clock.advance(2)
    after = handle_request(world.deps, request(event(job.task_id)))
    # Then the first is a duplicate, the second queries again
    assert during.outcome == PushOutcome.DUPLICATE
    assert after.outcome == CheckOutcome.RUNNING
    assert world.provider.queries == [job.task_id, job.task_id]


def test_a_stale_event_for_a_job_already_handed_on_is_already_handled(world):
    job = submitted(world)
    world.provider.set_state(job.task_id, succeeded(job.task_id))
    assert handle_request(world.deps, request(event(job.task_id))).outcome == CheckOutcome.FINISHED
    world.clock.advance(3600)  # long after any claim
    stale = handle_request(world.deps, request(event(job.task_id, id="evt-old")))
    assert (stale.status, stale.outcome) == (200, PushOutcome.ALREADY_HANDLED)
    assert world.provider.queries == [job.task_id]
    assert world.queues.completions == [job.job_id]
    assert world.store.get_job(job.job_id).push_event_id == "evt-1"


def test_an_event_for_a_task_recorded_for_another_job_run_is_not_acted_on(world):
    job = submitted(world)
    world.store.record_task("t-elsewhere", job.job_id)
    resp = handle_request(world.deps, request(event("t-elsewhere")))
    assert resp.outcome == PushOutcome.NO_JOB
    assert world.provider.queries == []


def test_an_unknown_task_leaves_one_hint_for_the_poller(world):
    now = world.clock.now()
    first = handle_request(world.deps, request(event("t-unknown")))
    second = handle_request(world.deps, request(event("t-unknown", id="evt-2")))
    assert (first.status, first.outcome) == (200, PushOutcome.UNKNOWN_TASK)
    assert second.outcome == PushOutcome.UNKNOWN_TASK
    assert world.store.due_early_events(now) == []  # not due at once
    hints = world.store.due_early_events(now + EARLY_RECHECK_S)
    assert [(h.task_id, h.received_at, h.recheck_at) for h in hints] == [
        ("t-unknown", now, now + EARLY_RECHECK_S)
    ]
    assert world.provider.queries == []


# ---------------------------------------------------------------------------------------------- follow-up
def test_the_poller_follows_up_hints(world):
    # Given three hints due: one whose task has become ours since, one old foreign, one young foreign
    now = world.clock.now()
    job = submitted(world)
    poll_at = world.store.next_due_at(DueKind.POLL)
    assert poll_at is not None and poll_at > now + 60  # with push on, the first check waits for the event
    for task_id, received in (
        (job.task_id, now - 10),
        ("t-old", now - EARLY_MAX_AGE_S - 1),
        ("t-young", now - 10),
    ):
        assert world.store.note_early_event(
            EarlyEvent(task_id, received, now - 1, received + 2 * EARLY_MAX_AGE_S)
        )
    # When the poller follows them up
    moved = follow_up_early_events(world.deps)
    # Then our task is checked now, the old foreign hint is dropped and the young one looked at again later
    assert moved == 1
    assert world.store.next_due_at(DueKind.POLL) == world.clock.now()
    remaining = world.store.due_early_events(now + 3600)
    assert [(h.task_id, h.recheck_at) for h in remaining] == [
        ("t-young", world.clock.now() + EARLY_RECHECK_S)
    ]


def test_a_hint_whose_job_moved_on_is_dropped_without_a_check(world):
    job = submitted(world)
    world.provider.set_state(job.task_id, succeeded(job.task_id))
    handle_request(world.deps, request(event(job.task_id)))  # the job is completing
    now = world.clock.now()
    world.store.note_early_event(EarlyEvent(job.task_id, now, now, now + 1800))
    assert follow_up_early_events(world.deps) == 0
    assert world.store.due_early_events(now + 3600) == []
    assert world.store.next_due_at(DueKind.POLL) is None


def test_an_event_that_beats_our_record_of_the_task_gets_the_task_checked_at_the_next_tick(world):
    # Given an event that arrives before the job's task is recorded
    job = submitted(world)
    world.provider.set_state(job.task_id, succeeded(job.task_id))
    world.store.tasks.pop(job.task_id)  # as if the record had not been written yet
    assert handle_request(world.deps, request(event(job.task_id))).outcome == PushOutcome.UNKNOWN_TASK
    world.store.record_task(job.task_id, job.job_id)  # now it is
    # When the poller ticks after the hint's recheck time
    world.clock.advance(EARLY_RECHECK_S)
    report = polling.tick(world.deps, budget_s=0)
    # Then the task was checked at once, long before its overdue check
    assert report.finished == 1
    assert world.store.get_job(job.job_id).status is JobStatus.COMPLETING


def test_the_answer_is_a_function_url_response_and_a_request_never_shows_its_token(world):
    req = request(event("t-1"))
    assert SECRET not in repr(req)
    assert SECRET not in repr(request(event("t-1"), in_query=True))
    answer = handle_request(world.deps, req).to_lambda()
    assert answer == {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"outcome": PushOutcome.UNKNOWN_TASK.value}),
    }


@pytest.mark.parametrize("model", ["wan2.7-i2v", "wan2.7-i2v-2026-04-25"])
def test_a_wan27_tasks_event_is_handled_like_a_kf2v_ones(world, model):
    # Given a submitted wan2.7 job whose task has finished
    job = submitted(world, "sound", model="wan2.7-i2v")
    world.provider.set_state(job.task_id, succeeded(job.task_id))
    # When its event arrives, keyed by the wan2.7 endpoint (or the snapshot name the task was made with)
    key = f"apikey:v1:aigc:video-generation:video-synthesis:{model}"
    resp = handle_request(world.deps, request(event(job.task_id, data={"user_api_unique_key": key})))
    # Then it is ours: one query, the job completes, its slot is free
    assert (resp.status, resp.outcome) == (200, CheckOutcome.FINISHED)
    assert world.store.get_job(job.job_id).status is JobStatus.COMPLETING
    assert world.store.slots_in_use("wan2.7-i2v") == 0
