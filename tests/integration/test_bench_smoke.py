"""The bench code does not rot: its cheapest figures, in a tiny configuration (no timed assertion)."""

from __future__ import annotations

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from inbetween.aws.jobs_table import DynamoJobStore
from inbetween.clock import FunctionClock
from inbetween.domain.models import (
    DeliveryState,
    DueKind,
    EarlyEvent,
    InputObject,
    Job,
    JobSpec,
    JobStatus,
    Transition,
    WebhookAttempt,
    WebhookDelivery,
    plain,
)
from moto import mock_aws

from bench import poller_reads
from bench.common import REGION, create_jobs_table
from bench.cost_run import LeanAws, SimClock
from bench.provider_traffic import launch, measure
from bench.run import table
from bench.traffic_run import Scenario


def test_poller_read_cost_figure_counts_items_read_against_a_scan():
    # Given a small table of finished and active jobs, some due
    [figure] = poller_reads.run(sizes=(200, 20, 5))

    # Then the figure reads about one item per due job, and the Scan baseline reads the whole table
    assert figure.detail["pipeline_checked"] == 5
    assert figure.value is not None and figure.value >= 1.0
    assert figure.detail["scan_items_read"] == 220
    assert "| Poller read cost" in table([figure])


def test_an_idle_poller_tick_only_queries_the_due_index():
    requests = poller_reads.idle_tick_requests()

    assert set(requests) == {"dynamodb.Query"}


@pytest.mark.timeout(120)
def test_pipeline_and_sdk_scenarios_yield_latency_and_query_counts():
    # Given two pairs through the real handlers, and one through the SDK's call loop, on a scaled clock
    pipeline, sdk = launch(
        [
            Scenario("pipeline", jobs=2, quota=2, scale=120.0, count_requests=True),
            Scenario("sdk_loop", jobs=1, quota=2, scale=120.0),
        ]
    )  # each in its own interpreter, as make bench runs them
    assert "error" not in pipeline and "error" not in sdk

    # Then every job is notified, and the measures are computed from the provider's own times
    for result, jobs in ((pipeline, 2), (sdk, 1)):
        figures = measure(result)
        assert figures["completed"] == jobs
        assert figures["queries_per_job"] >= 1
        assert figures["detection_p95_s"] is not None
    assert pipeline["aws_requests"].get("sns.Publish") == 2


def _store_script(store, clock) -> list:
    """Every DynamoJobStore method, including the calls whose conditions fail; what each answered."""
    now = clock.now()
    model = "wan2.2-kf2v-flash"

    def job(name: str) -> Job:
        return Job(
            job_id=f"{name}/r1",
            job_name=name,
            run_id="r1",
            status=JobStatus.WAITING,
            spec=JobSpec(model=model, resolution="480P", prompt="a pan"),
            inputs={"first": InputObject(key=f"inbox/{name}/first.png", etag="e" * 32, size=10)},
            created_at=now,
            updated_at=now,
            expected_size=(832, 480),
        )

    a, b = job("a"), job("b")
    out: list = [
        store.add_job(a, due=(DueKind.ADMIT, now - 5)),
        store.add_job(a, due=(DueKind.ADMIT, now - 5)),  # a duplicate event
        store.add_job(b, due=(DueKind.ADMIT, now + 50)),
        [j.job_id for j in store.due_jobs(DueKind.ADMIT, now, model=model)],
        store.get_job("missing"),
    ]
    submit = Transition.of(a.job_id, JobStatus.WAITING, JobStatus.SUBMITTING).set(submit_started_at=now)
    out += [
        store.apply(submit.take_slot(model, 1).schedule(DueKind.LEASE, now + 30)),
        store.apply(Transition.of(b.job_id, JobStatus.WAITING, JobStatus.SUBMITTING).take_slot(model, 1)),
        store.slots_in_use(model),
        store.apply(Transition.of(a.job_id, JobStatus.WAITING, JobStatus.SUBMITTED)),  # not WAITING now
        [j.job_id for j in store.due_jobs(DueKind.LEASE, now + 30)],
    ]
    submitted = (
        Transition.of(a.job_id, JobStatus.SUBMITTING, JobStatus.SUBMITTED)
        .set(task_id="t1", submitted_at=now, lease_holder=None, provider_status="PENDING")
        .add(polls=1)
        .schedule(DueKind.POLL, now - 1)
    )
    out += [store.apply(submitted), store.next_due_at(DueKind.POLL), store.next_due_at(DueKind.NOTIFY)]
    out += [
        store.postpone(a.job_id, DueKind.POLL, now + 30),
        store.postpone(a.job_id, DueKind.COMPLETE, now + 30),  # not what it is due for
        store.due_jobs(DueKind.POLL, now),
        store.due_jobs(DueKind.POLL, now + 31),
        store.apply(Transition.of(a.job_id, JobStatus.SUBMITTED).set(push_claim_until=now + 10)),
        store.apply(Transition.of(a.job_id, JobStatus.SUBMITTED).add(polls=1).unless_push_claimed(now)),
        store.apply(Transition.of(a.job_id, JobStatus.SUBMITTED).add(polls=1).unless_push_claimed(now + 11)),
    ]
    stored = (
        Transition.of(a.job_id, (JobStatus.SUBMITTED, JobStatus.COMPLETING), JobStatus.STORED)
        .set(finished_at=now, video_key="results/a/video.mp4", push_claim_until=None)
        .release_slot(model)
        .schedule(DueKind.NOTIFY, now)
    )
    out += [
        store.apply(stored),
        store.apply(Transition.of(b.job_id, JobStatus.WAITING).release_slot(model)),  # no slot in use
        store.slots_in_use(model),
        store.claim_notification(a.job_id, now=now, until=now + 60),
        store.claim_notification(a.job_id, now=now + 1, until=now + 61),  # held
        store.claim_notification(a.job_id, now=now + 61, until=now + 120),  # expired: taken again
        store.claim_notification("missing", now=now, until=now + 60),
    ]
    store.mark_notified(a.job_id, now + 62)
    store.mark_notified(a.job_id, now + 63)  # already notified: no change
    out += [store.claim_notification(a.job_id, now=now + 200, until=now + 260), store.get_job(a.job_id)]
    store.clear_due(b.job_id)
    store.clear_due("missing")
    out += [[j.job_id for j in store.recent_jobs()], store.due_jobs(DueKind.ADMIT, now + 100, model=model)]
    store.record_task("t1", a.job_id)
    out += [store.job_for_task("t1"), store.job_for_task("t2")]
    lease = store.acquire_submit_lease("h1", 30)
    out += [lease, store.acquire_submit_lease("h2", 30), store.extend_submit_lease("h2", 30)]
    out += [store.extend_submit_lease("h1", 60, next_submit_at=now + 1)]
    store.release_submit_lease("h2")  # not the holder: no change
    store.release_submit_lease("h1")
    out += [store.acquire_submit_lease("h2", 30)]
    out += [
        store.note_incomplete_drop("c", first_seen=now, settle_by=now - 1),
        store.note_incomplete_drop("c", first_seen=now, settle_by=now - 1),
        store.note_incomplete_drop("d", first_seen=now, settle_by=now + 100),
        store.overdue_drops(now),
    ]
    store.forget_drop("c")
    out += [store.overdue_drops(now + 200)]
    delivery = WebhookDelivery("m1", a.job_id, "https://example.com/h", "{}", now, next_attempt_at=now)
    out += [store.add_webhook_delivery(delivery), store.add_webhook_delivery(delivery)]
    out += [store.due_webhook_deliveries(now), store.get_webhook_delivery("m1")]
    store.record_webhook_attempt(
        "m1",
        WebhookAttempt(DeliveryState.PENDING, now, status=500, error="HTTP 500", next_attempt_at=now + 5),
    )
    store.record_webhook_attempt(
        "m1", WebhookAttempt(DeliveryState.PENDING, now, counted=False, next_attempt_at=now + 9)
    )
    out += [store.get_webhook_delivery("m1"), store.due_webhook_deliveries(now + 6)]
    store.postpone_webhook_delivery("m1", now + 20)
    out += [store.get_webhook_delivery("m1")]
    store.record_webhook_attempt("m1", WebhookAttempt(DeliveryState.DELIVERED, now + 21, status=204))
    out += [
        store.get_webhook_delivery("m1"),
        store.due_webhook_deliveries(now + 100),
        store.get_webhook_delivery("x"),
    ]
    early = EarlyEvent("t9", received_at=now, recheck_at=now - 1, expires_at=now + 3600)
    out += [store.note_early_event(early), store.note_early_event(early), store.due_early_events(now)]
    store.recheck_early_event("t9", now + 30)
    out += [store.due_early_events(now), store.due_early_events(now + 30)]
    store.forget_early_event("t9")
    out += [store.due_early_events(now + 100)]
    return out


def _table_items(items) -> dict:
    des = TypeDeserializer()
    return {i["pk"]["S"]: plain({k: des.deserialize(v) for k, v in i.items()}) for i in items}


def test_the_cost_runs_lean_backend_answers_every_job_store_call_as_dynamodb_does():
    # Given the cost figure's in-memory AWS (LeanAws, which parses DynamoDB expressions itself) and
    # moto, each behind a real botocore client
    def run(backend: str) -> tuple[list, dict]:
        sim = SimClock(1_800_000_000.0)
        clock = FunctionClock(sim, sim.sleep)
        session = boto3.session.Session(region_name=REGION)
        if backend == "lean":
            aws = LeanAws(sim).attach(session.events)
            table = aws.create_resources("contract")["JOBS_TABLE"]
            store = DynamoJobStore(session.client("dynamodb"), table, clock=clock.now)
            return _store_script(store, clock), _table_items(aws.tables[table].values())
        with mock_aws():
            ddb = session.client("dynamodb")
            create_jobs_table(ddb, "jobs-contract")
            store = DynamoJobStore(ddb, "jobs-contract", clock=clock.now)
            answers = _store_script(store, clock)
            return answers, _table_items(ddb.scan(TableName="jobs-contract")["Items"])

    # When the same calls go to each
    lean, lean_items = run("lean")
    moto, moto_items = run("moto")

    # Then every call answers the same, and the table holds the same items
    for i, (x, y) in enumerate(zip(lean, moto, strict=True)):
        assert x == y, f"call {i}: lean {x!r} != moto {y!r}"
    assert lean_items == moto_items
    assert len(lean) > 50 and any(x is False for x in lean)  # the script ran, failing conditions included
