"""The bench code does not rot: its cheapest figures, in a tiny configuration (no timed assertion)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import boto3
import httpx
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
from inbetween.provider.models import TaskPage
from moto import mock_aws

from bench import aws_cost, poller_reads
from bench.common import REGION, create_jobs_table
from bench.cost_run import FakeProvider, LeanAws, SimClock, item_bytes, simulate
from bench.run import table


def test_poller_read_cost_figure_counts_items_read_against_a_scan():
    # Given a small table of finished and active jobs, some due
    figure, units = poller_reads.run(sizes=(200, 20, 5))

    # Then the figure reads about one item per due job, and the Scan baseline reads the whole table
    assert figure.detail["pipeline_checked"] == 5
    assert figure.value is not None and figure.value >= 1.0
    assert figure.detail["scan_items_read"] == 220
    assert "| Poller read cost" in table([figure])
    # and in read units: at least half a unit per Query the cycle made, the Scan half a unit per 4 KB
    queries = figure.detail["dynamodb_calls"]["dynamodb.Query"]
    assert units.value is not None and units.value * 5 >= 0.5 * queries
    assert units.detail["scan_read_units"] == 0.5 * -(-units.detail["table_bytes"] // 4096)


def test_an_idle_poller_tick_only_queries_the_due_index():
    requests = poller_reads.idle_tick_requests()

    assert set(requests) == {"dynamodb.Query"}


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
    store.note_open_run("shots", "r1")
    store.note_open_run("shots", "r2")
    store.forget_open_run("shots", "r1")
    out += [store.open_runs("shots")]
    store.forget_open_run("shots", "r2")  # the last one: the set goes
    store.forget_open_run("never-seen", "r1")  # no item: none is made
    out += [store.open_runs("shots"), store.open_runs("never-seen")]
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


def _china(moment: float) -> str:
    return (
        datetime.fromtimestamp(moment, UTC).astimezone(timezone(timedelta(hours=8))).strftime("%Y%m%d%H%M%S")
    )


def test_the_cost_runs_provider_answers_the_task_list_with_its_window_model_and_pages():
    # Given three tasks of one model created a minute apart and one of another model
    sim = SimClock(1_800_000_000.0)
    provider = FakeProvider(sim, seed=1, quota=10)
    client = httpx.Client(
        transport=httpx.MockTransport(provider.handle), base_url="https://dashscope.test/api/v1"
    )
    ids = []
    for model in ("wan2.2-kf2v-flash", "wan2.2-kf2v-flash", "wan2.2-kf2v-flash", "wan2.7-i2v"):
        answer = client.post("/services/aigc/image2video/video-synthesis", json={"model": model, "input": {}})
        ids.append(answer.json()["output"]["task_id"])
        sim.sleep(60)

    # When the poller's list asks for the model's tasks of the last 200 s (the first is older), two to a page
    window = {"start_time": _china(sim() - 200), "end_time": _china(sim()), "model_name": "wan2.2-kf2v-flash"}
    first = TaskPage.from_api(client.get("/tasks", params={**window, "page_size": 2}).json())
    second = TaskPage.from_api(client.get("/tasks", params={**window, "page_size": 2, "page_no": 2}).json())

    # Then only the model's tasks inside the window are listed, newest first, in pages
    assert (first.total, first.total_page) == (2, 1)
    assert [t.task_id for t in first.tasks] == [ids[2], ids[1]]
    assert second.tasks == ()
    everything = TaskPage.from_api(client.get("/tasks", params={"page_size": 3}).json())  # the last 24 h
    assert (everything.total, everything.total_page, len(everything.tasks)) == (4, 2, 3)
    assert provider.calls["list"] == 3
    # a window over 24 hours is refused, as the provider does
    too_wide = {"start_time": _china(sim() - 90_000), "end_time": _china(sim())}
    assert client.get("/tasks", params=too_wide).status_code == 400


def test_the_lean_backend_bills_write_units_by_item_size_and_the_due_index_writes():
    sim = SimClock(1_800_000_000.0)
    session = boto3.session.Session(region_name=REGION, aws_access_key_id="x", aws_secret_access_key="y")
    aws = LeanAws(sim).attach(session.events)
    table = aws.create_resources("units")["JOBS_TABLE"]
    ddb = session.client("dynamodb")
    # Given an item of 1,500 bytes (2 write units) in the due-index
    item = {
        "pk": {"S": "job#a"},
        "due_kind": {"S": "poll"},
        "due_at": {"S": "0001"},
        "pad": {"S": "x" * 1463},
    }
    assert item_bytes(item) == 2 + 5 + 8 + 4 + 6 + 4 + 3 + 1463 == 1495

    # When it is written, rescheduled (the index key changes), touched (it does not), and a condition fails
    ddb.put_item(TableName=table, Item=item)
    ddb.update_item(TableName=table, Key={"pk": {"S": "job#a"}}, UpdateExpression="SET due_at = :t",
                    ExpressionAttributeValues={":t": {"S": "0002"}})  # fmt: skip
    ddb.update_item(TableName=table, Key={"pk": {"S": "job#a"}}, UpdateExpression="SET n = :n",
                    ExpressionAttributeValues={":n": {"N": "1"}})  # fmt: skip
    try:
        ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    except ddb.exceptions.ConditionalCheckFailedException:
        pass
    ddb.get_item(TableName=table, Key={"pk": {"S": "job#a"}}, ConsistentRead=True)
    ddb.query(TableName=table, IndexName="due-index", KeyConditionExpression="due_kind = :k AND due_at <= :t",
              ExpressionAttributeValues={":k": {"S": "poll"}, ":t": {"S": "9999"}})  # fmt: skip

    # Then: the put 2 + 2 (index entry), the reschedule 2 + 2 x 2 (delete and put in the index), the touch
    # 2 + 2, the failed put 2 and no index write; the reads 1 (consistent) and 0.5 (the index)
    capacity = aws.capacity
    assert capacity["dynamodb.PutItem.write_units"] == 4
    assert capacity["dynamodb.PutItem.index_write_units"] == 2
    assert capacity["dynamodb.UpdateItem.write_units"] == 4
    assert capacity["dynamodb.UpdateItem.index_write_units"] == 6
    assert capacity["dynamodb.GetItem.read_units"] == 1.0
    assert capacity["dynamodb.Query.read_units"] == 0.5


def test_the_cost_run_observes_what_is_priced_and_prices_a_video():
    # Given three pairs through the real handlers on the lean backend
    result = simulate(3, seed=2)

    # Then each job made one task and one notification, and the poller read the task list
    assert (result["notified"], result["provider"]["calls"]["create"]) == (3, 3)
    assert result["aws_requests"]["sns.Publish"] == 3
    assert result["provider"]["calls"].get("list", 0) >= 1
    assert set(result["functions"]) == {"submit", "poller", "completion"}
    assert all(result["log_bytes"][name] > 0 for name in result["functions"])
    assert result["dynamodb_capacity"]["dynamodb.UpdateItem.index_write_units"] > 0
    assert result["stored"]["object_bytes"]["output/results/mp4"] > 0

    # And the pricing turns it into a cost per video below a cent, with every part it names
    functions = aws_cost.functions_of(aws_cost.template())
    priced = aws_cost.per_job(result, functions, "480P")
    parts = priced["usd_per_job_by_part"]
    assert {"lambda_duration", "dynamodb_writes", "data_out_frames", "log_ingestion", "xray"} <= set(parts)
    assert all(v >= 0 for v in parts.values()) and 0 < priced["usd_per_job"] < 0.01
    assert priced["lambda_gb_s_per_job"] > 0


def test_the_cost_run_gives_the_same_requests_for_a_seed_whenever_it_runs_and_on_moto(monkeypatch):
    # Given one seed run now, and again with the wall clock 20 minutes on (the start once came from it)
    first = simulate(6, seed=5)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 1234.5)
    later = simulate(6, seed=5)
    monkeypatch.undo()

    # Then both made the same requests, operation by operation, and moto's backend sees the same
    assert first["notified"] == later["notified"] == 6
    assert later["aws_requests"] == first["aws_requests"]
    assert simulate(6, seed=5, backend="moto")["aws_requests"] == first["aws_requests"]

    # And moto's clocks are the real ones again for whatever uses moto next in this process
    import moto.s3.models as s3_models
    import moto.sqs.models as sqs_models

    assert abs(s3_models.utcnow().timestamp() - datetime.now(UTC).replace(tzinfo=None).timestamp()) < 60
    assert abs(sqs_models.unix_time() - time.time()) < 60


def test_the_idle_month_prices_every_resource_of_the_template_and_names_any_it_cannot(monkeypatch):
    idle = simulate(0, idle_ticks=3)
    observed = aws_cost.idle_observed(idle)
    assert observed["ticks"] == 3 and observed["requests"] > 0

    month = aws_cost.idle_month(observed)
    named = {i["resource"] for i in month["items"]}
    resources = aws_cost.template()["Resources"]
    # everything a deployment with the default parameters creates (no push, no budget, no alarm e-mail)
    assert {
        k for k, r in resources.items() if r.get("Condition") not in ("PushOn", "HasBudget", "HasAlarmEmail")
    } <= named
    assert "BudgetUsed80Alarm" not in named
    assert month["unpriced"] == []
    by_name = {i["resource"]: i["usd_month"] for i in month["items"]}
    assert by_name["DashScopeApiKeySecret"] == 0.4 and by_name["JobsNeedingAttentionAlarm"] == 0.1
    # a key of the template's own is priced by the month (the stack has none today: see AlarmTopic)
    with_key = dict(aws_cost.template())
    with_key["Resources"] = {**resources, "Key": {"Type": "AWS::KMS::Key", "Properties": {}}}
    monkeypatch.setattr(aws_cost, "template", lambda: with_key)
    assert {i["resource"]: i["usd_month"] for i in aws_cost.idle_month(observed)["items"]}["Key"] == 1.0
    monkeypatch.undo()
    assert by_name["IntakeDeadLetterQueue"] == 0 and by_name["IntakeQueue"] > 0
    assert aws_cost.idle_month(observed, push=True)["total"] > month["total"]  # the push secret

    # a resource type no rule knows is named, never priced at zero
    with_nat = dict(aws_cost.template())
    with_nat["Resources"] = {**resources, "Nat": {"Type": "AWS::EC2::NatGateway", "Properties": {}}}
    monkeypatch.setattr(aws_cost, "template", lambda: with_nat)
    assert aws_cost.idle_month(observed)["unpriced"] == ["Nat (AWS::EC2::NatGateway)"]


def test_the_cold_start_figures_give_each_function_the_layers_the_template_lists():
    from pathlib import Path

    from bench import cold_start

    layers = cold_start.function_layers()
    assert layers["submit"] == ["InbetweenLayer"]
    assert layers["completion"] == layers["stitch"] == ["InbetweenLayer", "MediaLayer"]
    runtime, layer, media = Path("runtime"), Path("layer"), Path("media-site")
    assert media not in cold_start.function_paths("poller", runtime, layer, media)
    paths = cold_start.function_paths("completion", runtime, layer, media)
    # Lambda's order: the layers (the shared one first), the runtime's boto3, then the function's code
    assert paths.index(layer) < paths.index(media) < paths.index(runtime) < len(paths) - 1
    assert paths[-1].name == "completion"
