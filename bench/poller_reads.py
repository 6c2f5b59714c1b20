"""Poller read cost: with N finished and M active jobs in the table, what one poll cycle reads per job that
is due (the sparse due-index, read with Query), beside what a Scan-based poller reads for the same cycle.
DynamoDB bills reads by what it reads (ScannedCount), not by what it returns, in read units: 4 KB of items
read per unit (a Query or Scan adds up its items' bytes first), half a unit eventually consistent (an
index is read only so), one unit per 4 KB of a strongly consistent GetItem. The units are computed from
the items' sizes as the pipeline writes them (``bench.cost_run.item_bytes``: DynamoDB's sizing rules)."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeSerializer
from inbetween.aws.jobs_table import DynamoJobStore, due_stamp, job_key
from inbetween.clock import FunctionClock
from inbetween.config import Timing, load_settings
from inbetween.deps import Deps
from inbetween.domain.models import DueKind, InputObject, Job, JobSpec, JobStatus
from inbetween.provider.models import TaskPage, TaskState, TaskStatus, TaskSummary

from bench.common import REGION, Figure, RequestCounter, at_most, create_jobs_table

GOAL = 1.1
# at most what reading each due job's item on its own would cost (half a unit, eventually consistent):
# the index pages share their units among the due jobs they hold, the idle partitions' empty Queries
# (half a unit each) are the rest
UNITS_GOAL = 0.5
NOW = 1_760_000_000.0
MODEL = "wan2.2-kf2v-flash"
_SERIALIZER = TypeSerializer()


class RunningProvider:
    """Every task is still running: the cycle reads, asks, and reschedules, as on most real ticks."""

    def __init__(self, active_task_ids: list[str]) -> None:
        self.queries = 0
        self._active = active_task_ids

    def get_task(self, task_id: str) -> TaskState:
        self.queries += 1
        return TaskState(
            task_id=task_id, status=TaskStatus.RUNNING, submit_time=datetime.fromtimestamp(NOW, UTC)
        )

    def list_tasks(self, *, page_no: int = 1, page_size: int = 10, **_filters: Any) -> TaskPage:
        self.queries += 1
        rows = self._active[(page_no - 1) * page_size : page_no * page_size]
        created = datetime.fromtimestamp(NOW - 90, UTC)
        return TaskPage(
            total=len(self._active),
            page_no=page_no,
            page_size=page_size,
            total_page=max(1, -(-len(self._active) // page_size)),
            tasks=tuple(TaskSummary(t, TaskStatus.RUNNING, MODEL, created) for t in rows),
        )

    def close(self) -> None:
        pass


def _job(i: int, *, active: bool) -> Job:
    """A job as the pipeline writes it: SUBMITTED (its task running) or STORED and notified."""
    common: dict[str, Any] = {
        "job_id": f"shot-{i:06d}/{i:016x}",
        "job_name": f"shot-{i:06d}",
        "run_id": f"{i:016x}",
        "spec": JobSpec(model=MODEL, resolution="720P", prompt="a slow pan", prompt_extend=True),
        "inputs": {
            "first": InputObject(key=f"inbox/shot-{i:06d}/first.png", etag="e" * 32, size=123456),
            "last": InputObject(key=f"inbox/shot-{i:06d}/last.png", etag="f" * 32, size=123456),
        },
        "expected_size": (1280, 720),
        "created_at": NOW - 3600,
        "updated_at": NOW - 60,
        "task_id": f"task-{i:08d}",
        "polls": 3,
    }
    if active:
        return Job(**common, status=JobStatus.SUBMITTED, provider_status="RUNNING", submitted_at=NOW - 90)
    return Job(
        **common,
        status=JobStatus.STORED,
        finished_at=NOW - 600,
        notified_at=NOW - 599,
        video_key="results/x/video.mp4",
    )


def _dynamo(value: Any) -> Any:
    """A table value as DynamoJobStore writes it (floats as Decimal; None left out)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_dynamo(v) for v in value]
    return value


def _raw_item(job: Job, due_at: float | None) -> dict[str, Any]:
    """The item ``DynamoJobStore.add_job(job, due=(POLL, due_at))`` writes, in DynamoDB's wire form."""
    item = dict(job.to_item(), pk=job_key(job.job_id))
    if due_at is not None:
        item.update(due_kind=DueKind.POLL.key(job.model), due_at=due_stamp(due_at))
    return {k: _SERIALIZER.serialize(_dynamo(v)) for k, v in item.items()}


class ReadUnits:
    """The read units of each DynamoDB read made on a session, from the items it read."""

    def __init__(self) -> None:
        self.units: dict[str, float] = {}

    def attach(self, events: Any) -> ReadUnits:
        events.register("before-parameter-build.dynamodb", self._stash)
        events.register("after-call.dynamodb", self._after)
        return self

    @staticmethod
    def _stash(params: dict, context: dict, **_: Any) -> None:
        context["read_units_params"] = params

    def _after(self, parsed: dict, model: Any, context: dict, **_: Any) -> None:
        from bench.cost_run import READ_UNIT_BYTES, item_bytes

        params = context.get("read_units_params", {})
        if model.name in ("Query", "Scan"):
            read = sum(item_bytes(i) for i in parsed.get("Items", []))
            factor = 1.0 if params.get("ConsistentRead") and model.name == "Scan" else 0.5
        elif model.name == "GetItem":
            read, factor = item_bytes(parsed.get("Item")), (1.0 if params.get("ConsistentRead") else 0.5)
        else:
            return
        units = max(1, -(-read // READ_UNIT_BYTES)) * factor
        self.units[model.name] = self.units.get(model.name, 0.0) + units


def _fill(store: DynamoJobStore, table: str, finished: int, active: int, due: int) -> int:
    """Fill the table; returns the bytes of all its items as the store writes them (what a Scan reads)."""
    # finished jobs carry no due_kind / due_at, so they are not in the index at all; the active ones
    # (SUBMITTED) do: the due ones are spread over the last poll interval, the rest come due over the
    # next 5 minutes
    jobs: list[tuple[Job, float | None]] = [(_job(i, active=False), None) for i in range(finished)]
    jobs += [
        (_job(finished + j, active=True), NOW + ((-5.0 * (j + 1) / due) if j < due else (300.0 * (j - due + 1) / (active - due))))
        for j in range(active)
    ]  # fmt: skip
    # the first jobs go through the store (its PutItem, the item shape it writes); the bulk goes straight
    # into moto's table (the same items, the same index maintenance), only to keep the fill fast
    from bench.cost_run import item_bytes

    through_api, rest = jobs[:500], jobs[500:]
    written = 0
    for job, due_at in through_api:
        store.add_job(job, due=(DueKind.POLL, due_at) if due_at is not None else None)
        written += item_bytes(_raw_item(job, due_at))
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    for job, due_at in rest:
        item = _raw_item(job, due_at)
        written += item_bytes(item)  # the full item: what a Scan would read of it in AWS
        if job.status is JobStatus.STORED:
            # outside the index, a finished job's nested maps change no count here; moto sizes them
            # recursively on every put (~2 ms an item), which is most of this figure's run time
            item = {k: v for k, v in item.items() if not ({"M", "L"} & v.keys())}
        backend.put_item(table, item)
    return written


def _settings(table: str):
    names = {
        "JOBS_TABLE": table,
        "INBOX_BUCKET": "inbox",
        "OUTPUT_BUCKET": "output",
        "NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:notify",
        "INTAKE_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/intake",
        "COMPLETION_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/completion",
        "DASHSCOPE_API_KEY_SECRET": "key",
        "WEBHOOK_SECRET_NAME": "hook",
        "PROVIDER_BASE_URL": "http://127.0.0.1:9/api/v1",
    }
    return load_settings(names)


def _deps(table: str, session: Any, provider: RunningProvider) -> Deps:
    """The pipeline's deps on ``session``, on a clock stopped at NOW, with ``provider`` for the tasks."""
    from inbetween.wiring import build_deps

    clock = FunctionClock(lambda: NOW, lambda _s: None)
    deps = build_deps(_settings(table), session=session, timing=Timing(), clock=clock)
    return dataclasses.replace(deps, provider=provider)


def _scan_poller_reads(ddb: Any, table: str) -> tuple[int, int]:
    """A naive poller: Scan for submitted jobs that are due (the filter runs after the read)."""
    read = found = 0
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "#s = :submitted AND due_at <= :now",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":submitted": {"S": "SUBMITTED"}, ":now": {"S": due_stamp(NOW)}},
    }
    while True:
        page = ddb.scan(**kwargs)
        read += int(page["ScannedCount"])
        found += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return read, found
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def run(quick: bool = False, sizes: tuple[int, int, int] | None = None) -> list[Figure]:
    from inbetween.usecases import polling
    from moto import mock_aws

    finished, active, due = sizes or ((10_000, 200, 50) if quick else (100_000, 1_000, 200))
    with mock_aws():
        session = boto3.session.Session(
            region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        counter = RequestCounter().attach(session.events)
        units = ReadUnits().attach(session.events)
        ddb = session.client("dynamodb")
        table = "jobs-bench"
        create_jobs_table(ddb, table)
        provider = RunningProvider([f"task-{finished + j:08d}" for j in range(active)])
        deps = _deps(table, session, provider)
        started = time.perf_counter()
        table_bytes = _fill(deps.store, table, finished, active, due)
        fill_s = time.perf_counter() - started
        counter.reset()
        scan_read, scan_found = _scan_poller_reads(ddb, table)  # the same cycle, read the naive way
        counter.reset()
        units.units.clear()
        report = polling.tick(deps, budget_s=0.0)
        pipeline_read = sum(counter.items_read.values())
        pipeline_calls = counter.snapshot()
        pipeline_units = sum(units.units.values())
    ratio = pipeline_read / max(1, report.checked)
    scan_ratio = scan_read / max(1, scan_found)
    # the Scan reads every item in 1 MB pages, half a unit per 4 KB (eventually consistent)
    scan_units = sum(
        0.5 * -(-min(1 << 20, table_bytes - at) // 4096) for at in range(0, max(1, table_bytes), 1 << 20)
    )
    units_per_job = pipeline_units / max(1, report.checked)
    return [
        Figure(
            key="poller.items_read_per_due_job",
            name=f"Poller read cost ({finished:,} finished + {active:,} active jobs, {due} due)",
            value=round(ratio, 3),
            unit="items read / job due",
            goal=f"<= {GOAL}",
            passed=at_most(ratio, GOAL),
            baseline=f"Scan-based poller: {scan_read:,} items read for {scan_found} due = {scan_ratio:,.0f} per job due",
            settings={
                "finished_jobs": finished,
                "active_jobs": active,
                "due_jobs": due,
                "store": "moto (in-process), table and due-index as template.yaml",
            },  # fmt: skip
            detail={
                "pipeline_items_read": pipeline_read,
                "pipeline_checked": report.checked,
                "provider_queries": provider.queries,
                "dynamodb_calls": {k: v for k, v in pipeline_calls.items() if k.startswith("dynamodb.")},
                "scan_items_read": scan_read,
                "scan_jobs_found": scan_found,
                "table_fill_s": round(fill_s, 1),
            },
        ),
        Figure(
            key="poller.read_units_per_due_job",
            name=f"Poller read units per due job ({finished:,} finished + {active:,} active jobs, {due} due)",
            value=round(units_per_job, 3),
            unit="read units / job due",
            goal=f"<= {UNITS_GOAL}",
            passed=at_most(units_per_job, UNITS_GOAL),
            baseline=f"Scan-based poller: {scan_units:,.0f} read units ({table_bytes / 1e6:,.1f} MB read) for "
            f"{scan_found} due = {scan_units / max(1, scan_found):,.1f} per job due",
            settings={"units": "4 KB per unit, half eventually consistent; item sizes by DynamoDB's rules"},
            detail={
                "pipeline_read_units": {k: round(v, 2) for k, v in units.units.items()},
                "scan_read_units": scan_units,
                "table_bytes": table_bytes,
                "mean_item_bytes": round(table_bytes / max(1, finished + active)),
            },
        ),
    ]


if __name__ == "__main__":
    import json

    print(json.dumps([f.to_dict() for f in run(quick=True)], indent=2))


def idle_tick_requests() -> dict[str, int]:
    """AWS requests of one poller tick with nothing to do (an empty table)."""
    from inbetween.usecases import polling
    from moto import mock_aws

    with mock_aws():
        session = boto3.session.Session(
            region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        counter = RequestCounter().attach(session.events)
        create_jobs_table(session.client("dynamodb"), "jobs-idle")
        deps = _deps("jobs-idle", session, RunningProvider([]))
        counter.reset()
        polling.tick(deps, budget_s=50.0)
        return counter.snapshot()
