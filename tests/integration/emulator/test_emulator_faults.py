"""Quotas and injected faults, switched at runtime, and what tests can observe."""

from __future__ import annotations

import pytest
from inbetween_local.emulator import ConcurrencyMode, FaultOutcome, FaultRule


def failing(body: dict, marker: str = "[fail]") -> dict:
    body["input"]["prompt"] = f"{marker} no render needed"
    return body


def test_submit_rate_limit_per_model(api, clock, emulator, flash_body):
    emulator.faults.rate_limits_enabled = True  # catalogue default: 2 creates per second per model
    assert [api.create(flash_body()).status_code for _ in range(2)] == [200, 200]
    third = api.create(flash_body())
    assert third.status_code == 429
    assert third.json()["code"] == "Throttling.RateQuota"
    assert third.json()["message"] == "Requests rate limit exceeded, please try again later."
    clock.advance(1.01)
    assert api.create(flash_body()).status_code == 200
    assert emulator.stats.creates_rejected == {"Throttling.RateQuota": 1}


def test_query_rate_limit_is_shared_by_get_list_and_cancel(api, emulator):
    emulator.faults.rate_limits_enabled = True
    emulator.faults.query_qps = 3
    answers = [api.get("a").status_code, api.list().status_code, api.cancel("a").status_code, api.get("a")]
    assert answers[:3] == [200, 200, 400]
    assert answers[3].status_code == 429 and answers[3].json()["code"] == "Throttling.RateQuota"


def test_concurrency_limit_rejects(api, emulator, flash_body):
    emulator.faults.concurrency_limits_enabled = True  # catalogue default: 2 in flight per model
    api.submit(flash_body())
    api.submit(flash_body())
    third = api.create(flash_body())
    assert third.status_code == 429 and third.json()["code"] == "Throttling.AllocationQuota"
    emulator.faults.max_concurrent["wan2.2-kf2v-flash"] = 3
    assert api.create(flash_body()).status_code == 200


def test_concurrency_limit_queues(api, clock, emulator, flash_body):
    emulator.faults.concurrency_limits_enabled = True
    emulator.faults.concurrency_mode = ConcurrencyMode.QUEUE
    first, second = api.submit(failing(flash_body())), api.submit(failing(flash_body()))
    queued = api.submit(failing(flash_body()))
    clock.advance(1)
    assert [emulator.tasks[t].status for t in (first, second, queued)] == ["RUNNING", "RUNNING", "PENDING"]
    clock.advance(2)  # the two running tasks end, the queued one takes a slot
    emulator.advance()
    assert emulator.tasks[queued].status == "RUNNING"
    assert api.output(queued)["scheduled_time"] == api.output(first)["end_time"]


def test_injected_server_errors_on_create_and_query(api, emulator, flash_body):
    emulator.faults.fail_next_creates(1, status=503)
    emulator.faults.fail_next_queries(2, status=500)
    first = api.create(flash_body())
    assert first.status_code == 503 and first.json()["code"] == "ServiceUnavailable"
    task_id = api.submit(flash_body())
    errors = [api.get(task_id) for _ in range(3)]
    assert [r.status_code for r in errors] == [500, 500, 200]
    assert errors[0].json()["code"] == "InternalError" and errors[0].json()["request_id"]


def test_probabilistic_create_errors_are_seeded(api, emulator, flash_body):
    emulator.faults.create_error_probability = 0.5
    statuses = [api.create(flash_body()).status_code for _ in range(20)]
    assert set(statuses) == {200, 500}


@pytest.mark.parametrize(
    ("marker", "status", "code"),
    [
        ("[reject:DataInspectionFailed]", 400, "DataInspectionFailed"),
        ("[reject:IPInfringementSuspect]", 400, "IPInfringementSuspect"),
        ("[reject:Arrearage]", 400, "Arrearage"),
        ("[reject:InvalidApiKey]", 401, "InvalidApiKey"),
    ],
)
def test_prompt_markers_reject_creates(api, flash_body, marker, status, code):
    body = flash_body()
    body["input"]["prompt"] = f"something {marker}"
    response = api.create(body)
    assert response.status_code == status and response.json()["code"] == code


def test_rules_select_by_predicate(api, clock, emulator, flash_body):
    rule = emulator.faults.add_rule(
        FaultRule(
            outcome=FaultOutcome.FAIL,
            code="InternalError.Algo",
            when=lambda request: "storm" in request.prompt,
        )
    )
    emulator.faults.add_rule(
        FaultRule(outcome=FaultOutcome.REJECT, code="DataInspectionFailed", prompt_contains="flag")
    )
    stormy = failing(flash_body(), "a storm")
    stormy_id = api.submit(stormy)
    assert api.create(failing(flash_body(), "a flag")).json()["code"] == "DataInspectionFailed"
    clock.advance(3)
    assert api.output(stormy_id)["code"] == "InternalError.Algo"
    emulator.faults.remove_rule(rule)
    assert len(emulator.faults.rules) == 1


def test_stats_and_task_snapshot(api, emulator, flash_body, frames):
    task_id = api.submit(flash_body())
    api.create(flash_body(resolution="9K"))
    api.get(task_id)
    api.get(task_id)
    api.list()
    stats = emulator.stats
    assert (stats.creates_accepted, stats.queries, stats.list_calls) == (1, 2, 1)
    assert stats.creates_rejected == {"InvalidParameter": 1}
    assert stats.per_task[task_id].queries == 2
    info = emulator.tasks[task_id]
    assert (info.status, info.model) == ("PENDING", "wan2.2-kf2v-flash") and info.api_key_id.isdigit()
