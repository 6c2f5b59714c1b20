"""The typed job model: its table mapping both ways, and the state changes a Transition may describe."""

from __future__ import annotations

from decimal import Decimal

import pytest
from inbetween.domain.models import (
    DueKind,
    ErrorInfo,
    InputObject,
    Job,
    JobSpec,
    JobStatus,
    Transition,
    WebhookDelivery,
)


def _job(**changes) -> Job:
    values = dict(
        job_id="shot/abc",
        job_name="shot",
        run_id="abc",
        status=JobStatus.SUBMITTED,
        spec=JobSpec(model="wan2.2-kf2v-flash", resolution="720P", prompt="p", seed=7),
        inputs={"first": InputObject("inbox/shot/first.png", "e1", 10)},
        created_at=1.5,
        updated_at=2.25,
        expected_size=(1280, 720),
        error=ErrorInfo("TaskFailed", "no", hint="again"),
        task_id="t-1",
        polls=3,
        video_bytes=99,
        provider={"usage": {"SR": 720}},
    )
    values.update(changes)
    return Job(**values)


def test_a_job_survives_the_round_trip_through_a_table_item_even_with_dynamodb_numbers():
    job = _job()
    item = job.to_item()
    assert "finished_at" not in item and "lease_holder" not in item  # None is left out
    # DynamoDB gives numbers back as Decimal
    as_read = {
        k: Decimal(str(v)) if isinstance(v, float | int) and not isinstance(v, bool) else v
        for k, v in item.items()
    }
    as_read["expected_size"] = [Decimal(1280), Decimal(720)]
    assert Job.from_item(as_read) == job


def test_a_minimal_job_item_reads_back_with_defaults():
    job = _job(
        spec=None, error=None, expected_size=None, task_id=None, polls=0, video_bytes=None, provider={}
    )
    assert Job.from_item(job.to_item()) == job
    assert job.model is None and _job().model == "wan2.2-kf2v-flash"


def test_only_final_states_are_final():
    assert {s for s in JobStatus if s.is_final} == {
        JobStatus.STORED,
        JobStatus.REJECTED,
        JobStatus.FAILED,
        JobStatus.EXPIRED,
        JobStatus.CANCELED,
    }
    assert not JobStatus.HELD.is_final  # held for the budget: it may still be made


def test_waiting_jobs_queue_per_model_and_everything_else_shares_its_kinds_partition():
    assert DueKind.ADMIT.key("wan2.2-kf2v-flash") == "admit#wan2.2-kf2v-flash"
    assert DueKind.POLL.key("wan2.2-kf2v-flash") == "poll"


def test_a_transition_sets_only_job_fields_and_counts_only_polls():
    with pytest.raises(TypeError, match="status"):
        Transition.of("j", JobStatus.WAITING).set(status="STORED")
    with pytest.raises(TypeError, match="not a settable job field: nope"):
        Transition.of("j", JobStatus.WAITING).set(nope=1)
    with pytest.raises(TypeError, match="not a job counter"):
        Transition.of("j", JobStatus.WAITING).add(attempts=1)


def test_a_transition_stores_model_values_as_the_table_does():
    tr = (
        Transition.of("j", (JobStatus.SUBMITTED, JobStatus.COMPLETING), JobStatus.FAILED)
        .set(error=ErrorInfo("X", "m"), expected_size=(16, 16), task_id=None)
        .schedule(DueKind.ADMIT, 5.0, model="m")
    )
    assert tr.expected == (JobStatus.SUBMITTED, JobStatus.COMPLETING)
    assert tr.sets == {
        "error": {"code": "X", "message": "m", "retryable": False},
        "expected_size": [16, 16],
        "task_id": None,
    }
    assert tr.due == ("admit#m", 5.0)


def test_a_webhook_delivery_round_trips_without_its_due_time():
    delivery = WebhookDelivery("msg_1", "j", "https://h.test/", "{}", 1.0, attempts=2, last_status=500)
    assert WebhookDelivery.from_item(delivery.to_item(), next_attempt_at=9.0) == WebhookDelivery(
        "msg_1", "j", "https://h.test/", "{}", 1.0, attempts=2, last_status=500, next_attempt_at=9.0
    )
