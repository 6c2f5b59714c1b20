"""The fault suite: 200+ jobs through the local stack with faults on every boundary, and the figures that
prove nothing was lost, paid twice, stored unverified, notified twice or left in a dead-letter queue.

Faults (every one drawn from a RNG seeded by INBETWEEN_FAULT_SEED, printed; thread timing still varies):
provider 5xx and Throttling (429) on create; failed (5xx) and slow task queries; video downloads cut off
half way; tasks that end FAILED with a code and without one (prompt markers); provider rejections and
invalid drops; every S3 event delivered three times; two poller invocations at once; completion messages
redelivered while their first delivery is still working (2 s visibility, 3 concurrent invocations, slow
completions); a crash after the provider accepted a task and before the table recorded it; a crash after
the video is stored and before the notification; a webhook endpoint down for 30 s, then back.

Run alone: ``.venv/bin/pytest -q -s tests/e2e/test_fault_suite.py`` (``-s`` shows the table).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from inbetween import admission, completion, outcomes, polling
from inbetween.models import JobStatus
from inbetween.mp4 import Mp4Inspector
from inbetween_local.emulator import EmulatorConfig, FaultOutcome, FaultRule, Faults
from inbetween_local.stack import LocalStack
from inbetween_local.stack.runtime import FunctionCrashed

from tests.e2e.conftest import SAMPLES, probe_mp4
from tests.e2e.fault_kit import (
    FaultDice,
    FlakyWebhookEndpoint,
    LogCapture,
    Overlap,
    drain_queue,
    redrive,
    scan_items,
    wait_until,
)

pytestmark = [
    # Known failure, see the module docstring: jobs whose create answered 5xx can stay SUBMITTING for ever.
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.xdist_group("e2e-fault-suite"),
    pytest.mark.timeout(840),
    pytest.mark.filterwarnings("ignore:No application metrics to publish"),
]

SEED = int(os.environ.get("INBETWEEN_FAULT_SEED", "20260421"))
JOBS = int(os.environ.get("INBETWEEN_FAULT_JOBS", "200"))
CONCURRENCY = 8  # provider slots per model, for the pipeline and the emulator alike (published quota: 2)
WEBHOOK_OUTAGE_S = 30.0
WEBHOOK_RETRY_DELAYS = "0,2,4,8,15,30,60,120"
COMPLETION_VISIBILITY_S = 2

# fault rates
CREATE_5XX = 0.05
CREATE_THROTTLED = 0.05
QUERY_5XX = 0.10
QUERY_LATENCY_S = 0.2
DOWNLOAD_DROP = 0.20
RECORD_CRASH = 0.08  # dies after the provider accepted the task, before the table recorded it
NOTIFY_CRASH = 0.12  # dies after the video is stored, before the notification
SLOW_COMPLETION = 0.15  # sleeps SLOW_COMPLETION_S after storing: longer than the visibility timeout
SLOW_COMPLETION_S = 3.5
# what each job is (by a seeded draw): cumulative shares
PLAN = (
    (0.07, "fail with code"),
    (0.11, "fail without code"),
    (0.14, "provider rejects"),
    (0.17, "invalid drop"),
    (1.00, "ok"),
)
EXPECTED = {
    "ok": JobStatus.STORED,
    "fail with code": JobStatus.FAILED,
    "fail without code": JobStatus.FAILED,
    "provider rejects": JobStatus.REJECTED,
    "invalid drop": JobStatus.REJECTED,
}
MODELS = (("wan2.2-kf2v-flash", "480P"), ("wanx2.1-kf2v-plus", "720P"))


@dataclass(frozen=True)
class PlannedJob:
    name: str
    kind: str
    model: str
    files: dict[str, bytes]

    @property
    def expected(self) -> JobStatus:
        return EXPECTED[self.kind]


def plan_jobs(rng: random.Random) -> list[PlannedJob]:
    first, last = (SAMPLES / "first.png").read_bytes(), (SAMPLES / "last.png").read_bytes()
    jobs = []
    for i in range(JOBS):
        draw = rng.random()
        kind = next(k for share, k in PLAN if draw < share)
        model, resolution = MODELS[rng.randrange(2)]
        prompt = f"fault suite job {i}: the ball rolls"
        spec: dict | None = {"model": model, "resolution": resolution, "prompt": prompt}
        if kind == "fail with code":
            spec["prompt"] += " [fail:InternalError.Algo]"
        elif kind == "fail without code":
            spec["prompt"] += " [fail]"
        elif kind == "provider rejects":
            spec["prompt"] += " [reject:DataInspectionFailed]"
        elif kind == "invalid drop":
            spec["resolution"] = "4K"
        elif model == MODELS[0][0] and rng.random() < 0.5:
            spec = None  # just the two frames: the deployment's defaults
            model = MODELS[0][0]
        files = {"first.png": first, "last.png": last}
        if spec is not None:
            files["job.json"] = json.dumps(spec).encode()
        jobs.append(PlannedJob(f"fault-{i:03d}", kind, model, files))
    return jobs


def stop_shared_e2e_stack(request) -> None:
    """A process runs one local stack at a time (the environment is process-global): if this worker
    still has the other e2e tests' package stack up, stop it (they have all run: their xdist group is
    scheduled as one unit)."""
    defs = request._fixturemanager.getfixturedefs("_package_stack", request.node) or ()
    for fixturedef in defs:
        if fixturedef.cached_result is not None and fixturedef.cached_result[0] is not None:
            fixturedef.cached_result[0].stop()


def install_pipeline_faults(monkeypatch, dice: FaultDice) -> dict[str, Overlap]:
    overlaps = {
        "poller": Overlap(dice, "poller ticks overlapping"),
        "completion": Overlap(dice, "completion redelivered while running"),
    }

    real_record = admission._record_task

    def record_task_or_die(deps, job, task_id):
        if dice.chance("crash: task created, not recorded", RECORD_CRASH):
            raise FunctionCrashed("injected: died after the provider accepted the task")
        return real_record(deps, job, task_id)

    real_notify = outcomes.report_and_notify

    def notify_or_die(deps, job):
        if (
            job.status is JobStatus.STORED
            and job.notified_at is None
            and dice.chance("crash: video stored, not notified", NOTIFY_CRASH)
        ):
            raise FunctionCrashed("injected: died after storing the video")
        return real_notify(deps, job)

    real_download = completion._download

    def slow_download(deps, job, key):
        stored = real_download(deps, job, key)
        if dice.chance("slow completion (> visibility timeout)", SLOW_COMPLETION):
            time.sleep(SLOW_COMPLETION_S)
        return stored

    real_complete = completion.complete

    def counted_complete(deps, job_id):
        with overlaps["completion"].running(job_id):
            return real_complete(deps, job_id)

    real_tick = polling.tick

    def counted_tick(deps, **kwargs):
        with overlaps["poller"].running():
            return real_tick(deps, **kwargs)

    monkeypatch.setattr(admission, "_record_task", record_task_or_die)
    monkeypatch.setattr(outcomes, "report_and_notify", notify_or_die)
    monkeypatch.setattr(completion, "_download", slow_download)
    monkeypatch.setattr(completion, "complete", counted_complete)
    monkeypatch.setattr(polling, "tick", counted_tick)
    return overlaps


def emulator_faults() -> Faults:
    return Faults(
        max_concurrent={model: CONCURRENCY for model, _ in MODELS},
        create_error_probability=CREATE_5XX,
        create_error_status=500,
        query_error_probability=QUERY_5XX,
        query_error_status=500,
        query_latency_s=QUERY_LATENCY_S,
        download_drop_probability=DOWNLOAD_DROP,
        download_drop_fraction=0.5,
        rules=[
            FaultRule(
                outcome=FaultOutcome.REJECT,
                code="Throttling.RateQuota",
                http_status=429,
                probability=CREATE_THROTTLED,
            )
        ],
        seed=SEED,
    )


def upload(stack: LocalStack, jobs: list[PlannedJob]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    s3 = stack.client("s3")

    def put(job: PlannedJob) -> None:
        for name, data in job.files.items():
            s3.put_object(Bucket=stack.inbox_bucket, Key=f"inbox/{job.name}/{name}", Body=data)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, jobs))


def job_items(stack: LocalStack) -> dict[str, dict]:
    """The latest run of each job name, from the table."""
    latest: dict[str, dict] = {}
    for item in scan_items(stack.client("dynamodb"), stack.table_name):
        if str(item.get("pk", "")).startswith("job#"):
            name = item["job_name"]
            if name not in latest or item["created_at"] > latest[name]["created_at"]:
                latest[name] = item
    return latest


def settled(stack: LocalStack, jobs: list[PlannedJob], endpoint: FlakyWebhookEndpoint) -> bool:
    items = job_items(stack)
    if len(items) < len(jobs):
        return False
    if any(not JobStatus(i["status"]).is_final or i.get("notified_at") is None for i in items.values()):
        return False
    _, delivered = endpoint.snapshot()
    return {d.job_id for d in delivered} >= {i["job_id"] for i in items.values()}


def test_two_hundred_jobs_survive_faults_on_every_boundary(request, monkeypatch, tmp_path):
    stop_shared_e2e_stack(request)
    rng = random.Random(SEED)
    jobs = plan_jobs(rng)
    dice = FaultDice(SEED)
    overlaps = install_pipeline_faults(monkeypatch, dice)
    endpoint = FlakyWebhookEndpoint(WEBHOOK_OUTAGE_S).start()
    started = time.monotonic()
    stack = LocalStack(
        stack_name="inbetween-faults",
        emulator_config=EmulatorConfig(
            pending_s=0.5, running_s=(1.0, 3.0), seed=SEED, faults=emulator_faults()
        ),
        poller_period_s=1.0,
        log_level="INFO",
        sqs_concurrency=3,
        s3_event_copies=3,
        concurrent_schedules=2,
        timings={
            "SETTLE_SECONDS": "1",
            "FIRST_POLL_DELAY_SECONDS": "1",
            "POLL_INTERVAL_SECONDS": "1",
            "POLL_BUDGET_SECONDS": "3",
            "NOTIFY_GRACE_SECONDS": "15",
            "COMPLETION_GRACE_SECONDS": "30",
            "SUBMIT_LEASE_SECONDS": "3",
        },
        environment={
            "PROVIDER_CONCURRENCY": str(CONCURRENCY),
            "WEBHOOK_URL": endpoint.url,
            "WEBHOOK_RETRY_DELAYS_SECONDS": WEBHOOK_RETRY_DELAYS,
        },
    )
    capture = LogCapture()
    try:
        with capture:
            stack.start()
            for name, value in stack.environment.items():
                monkeypatch.setenv(name, value)
            endpoint.secret = stack.webhook_secret
            sqs = stack.client("sqs")
            queues = stack.queue_urls
            sqs.set_queue_attributes(
                QueueUrl=queues["CompletionQueue"],
                Attributes={"VisibilityTimeout": str(COMPLETION_VISIBILITY_S)},
            )
            sns_queue = stack.subscribe_queue("fault-suite-notifications")

            # Given 200+ job folders dropped at once
            upload(stack, jobs)
            # When the pipeline has worked through them, faults and all
            finished = wait_until(lambda: settled(stack, jobs, endpoint), timeout_s=600, poll_s=2.0)
            # Then whatever reached a dead-letter queue is brought home by the README's redrive
            redriven = {}
            for dlq, source in (
                ("IntakeDeadLetterQueue", "IntakeQueue"),
                ("CompletionDeadLetterQueue", "CompletionQueue"),
            ):
                redriven[dlq] = redrive(sqs, queues[dlq], queues[source])
            if any(n for n, _ in redriven.values()):
                finished = wait_until(lambda: settled(stack, jobs, endpoint), timeout_s=120, poll_s=2.0)
            # let the pumps finish what they hold (redelivered completions), then read everything
            time.sleep(COMPLETION_VISIBILITY_S + 3)
            elapsed = time.monotonic() - started
            dlq_left = {
                dlq: len(drain_queue(sqs, queues[dlq]))
                for dlq in ("IntakeDeadLetterQueue", "CompletionDeadLetterQueue")
            }
            notifications = []
            while batch := stack.notifications(sns_queue):
                notifications += batch
            items = job_items(stack)
            all_items = scan_items(stack.client("dynamodb"), stack.table_name)
            emulator = stack.emulator
            tasks = emulator.tasks
            stats = emulator.stats
            attempts, delivered = endpoint.snapshot()
            copies_sent = sum(p.copies_sent for p in stack.pumps)
            videos = verify_videos(stack, items, tmp_path)
            webhook_secret = stack.webhook_secret
            api_key = stack.api_key
    finally:
        stack.stop()
        endpoint.stop()

    by_name = {j.name: j for j in jobs}
    final = {name: JobStatus(i["status"]) for name, i in items.items()}
    status_counts = Counter(s.value for s in final.values())
    submitted = {i["task_id"]: name for name, i in items.items() if i.get("task_id")}
    succeeded = {t for t, info in tasks.items() if info.status.value == "SUCCEEDED"}
    sns_per_job = Counter(json.loads(m["Message"])["data"]["job_id"] for m in notifications)
    ids_per_job: dict[str, set[str]] = {}
    for d in delivered:
        ids_per_job.setdefault(d.job_id, set()).add(d.webhook_id)
    outage_ids = {a.webhook_id for a in attempts if a.outcome in ("503", "dropped")}
    delivered_ids = {d.webhook_id for d in delivered}
    hooks = [i for i in all_items if str(i.get("pk", "")).startswith("hook#")]
    log_text = capture.text
    orphans_adopted = log_text.count("orphan task adopted")
    resubmits = log_text.count("no task was created; job waits for a new submit")
    injected = dice.injected
    injected["provider create 5xx"] = stats.creates_rejected.get("InternalError", 0)
    injected["provider create 429 Throttling"] = stats.creates_rejected.get("Throttling.RateQuota", 0)
    injected["S3 event extra deliveries"] = copies_sent
    injected["webhook attempts refused during outage"] = len(
        [a for a in attempts if a.outcome != "delivered"]
    )

    rows = [
        ("seed", SEED),
        ("jobs dropped", len(jobs)),
        ("jobs in a final state", sum(1 for s in final.values() if s.is_final)),
        ("  by state", dict(sorted(status_counts.items()))),
        ("jobs submitted (task recorded)", len(submitted)),
        ("provider tasks created", len(tasks)),
        ("tasks succeeded", len(succeeded)),
        ("videos stored, verified (MP4 check + bytes + sha256)", videos["verified"]),
        ("videos decoded (h264, 150 frames)", videos["decoded"]),
        ("SNS messages", len(notifications)),
        ("jobs with exactly one SNS message", sum(1 for n in sns_per_job.values() if n == 1)),
        ("webhook events delivered (distinct ids)", len(delivered_ids)),
        ("webhook deliveries received (incl. duplicates)", len(delivered)),
        (
            "webhook ids seen during the outage, delivered later",
            f"{len(outage_ids & delivered_ids)}/{len(outage_ids)}",
        ),
        ("orphan tasks adopted / resubmitted after reconciliation", f"{orphans_adopted} / {resubmits}"),
        ("provider task queries / list calls", f"{stats.queries} / {stats.list_calls}"),
        ("dead-letter redrive", {k: f"{n} ({how})" for k, (n, how) in redriven.items()}),
        ("left in dead-letter queues", dlq_left),
        ("max poller invocations at once", overlaps["poller"].max_active),
        ("wall time (s)", round(elapsed)),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n=== inbetween fault suite ===")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print("--- faults injected ---")
    for key, value in sorted(injected.items()):
        print(f"{key:<{width}}  {value}")

    log_file = Path(tmp_path) / "fault-suite.log"
    log_file.write_text(log_text)
    print(f"complete log output: {log_file}")
    if not finished:
        print("--- not settled: unfinished jobs, slots and the submit lease ---")
        now = time.time()
        for i in all_items:
            pk = str(i.get("pk", ""))
            unfinished = pk.startswith("job#") and not JobStatus(i["status"]).is_final
            if unfinished or pk.startswith(("slot#", "lock#")):
                keep = ("pk", "status", "due_kind", "due_at", "in_flight", "holder", "until", "task_id")
                print(
                    {k: i.get(k) for k in keep if k in i},
                    f"updated {now - float(i.get('updated_at', now)):.0f} s ago",
                )
    assert finished, f"the pipeline did not settle: {Counter(i['status'] for i in items.values())}"
    # Every job dropped ends in a final state, the one its faults call for
    assert len(items) == len(jobs)
    wrong = {
        n: (s.value, by_name[n].expected.value) for n, s in final.items() if s is not by_name[n].expected
    }
    assert not wrong, wrong
    for name, item in items.items():
        if by_name[name].kind == "fail without code":
            assert item["error"]["code"] == "TaskFailed", item["error"]
        if by_name[name].kind == "invalid drop":
            assert not item.get("task_id")  # rejected by us: no provider call
    # Exactly one provider task per submitted job: no double charge, every crash window reconciled
    assert set(tasks) == set(submitted), set(tasks) ^ set(submitted)
    assert stats.creates_accepted == len(tasks) == len(submitted)
    # Every succeeded task is a stored, verified video, and nothing else is
    stored = {n for n, s in final.items() if s is JobStatus.STORED}
    assert {submitted[t] for t in succeeded} == stored
    assert videos["verified"] == len(stored) and videos["problems"] == []
    # Exactly one SNS message per final state
    assert set(sns_per_job) == {i["job_id"] for i in items.values()}
    assert set(sns_per_job.values()) == {1}
    # Every webhook event delivered after the endpoint recovered, with one stable id per event
    assert set(ids_per_job) == {i["job_id"] for i in items.values()}
    assert all(len(ids) == 1 for ids in ids_per_job.values())
    assert outage_ids and outage_ids <= delivered_ids
    assert all(h["state"] == "delivered" for h in hooks), Counter(h["state"] for h in hooks)
    # Nothing left in a dead-letter queue
    assert dlq_left == {"IntakeDeadLetterQueue": 0, "CompletionDeadLetterQueue": 0}
    # Every fault was really injected
    for fault in (
        "provider create 5xx",
        "provider create 429 Throttling",
        "S3 event extra deliveries",
        "webhook attempts refused during outage",
        "crash: task created, not recorded",
        "crash: video stored, not notified",
        "slow completion (> visibility timeout)",
        "completion redelivered while running",
        "poller ticks overlapping",
    ):
        assert injected[fault] > 0, fault
    assert stats.creates_rejected.get("DataInspectionFailed", 0) > 0
    assert orphans_adopted > 0
    # The run's complete log output holds neither the API key nor the webhook secret
    assert "task created" in log_text and "job notified" in log_text  # the capture saw the functions
    raw_secret = webhook_secret.removeprefix("whsec_")
    for secret in (api_key, raw_secret, webhook_secret):
        assert secret not in log_text


def verify_videos(stack: LocalStack, items: dict[str, dict], tmp_path: Path) -> dict:
    """Every stored video: object size = recorded bytes = metadata bytes, sha256 as recorded, an MP4 with
    a video track; a sample decoded with PyAV (h264, 150 frames)."""
    import hashlib

    s3 = stack.client("s3")
    verified, decoded, problems = 0, 0, []
    stored = sorted((n, i) for n, i in items.items() if i["status"] == "STORED")
    sample = {n for n, _ in stored[:: max(1, len(stored) // 5)]}
    for name, item in stored:
        body = s3.get_object(Bucket=stack.output_bucket, Key=item["video_key"])["Body"].read()
        meta_key = item["video_key"].rsplit("/", 1)[0] + "/metadata.json"
        meta = json.loads(s3.get_object(Bucket=stack.output_bucket, Key=meta_key)["Body"].read())
        inspector = Mp4Inspector()
        inspector.feed(body)
        checks = {
            "bytes": len(body) == int(item["video_bytes"]) == int(meta["video"]["bytes"]),
            "sha256": hashlib.sha256(body).hexdigest() == meta["video"]["sha256"],
            "mp4": inspector.verdict() is None,
        }
        if all(checks.values()):
            verified += 1
        else:
            problems.append((name, checks))
        if name in sample:
            path = tmp_path / f"{name}.mp4"
            path.write_bytes(body)
            probe = probe_mp4(path)
            import av

            with av.open(str(path)) as container:
                frames = sum(1 for _ in container.decode(video=0))
            if probe["codec"] == "h264" and frames == 150:
                decoded += 1
            else:
                problems.append((name, {"codec": probe["codec"], "frames": frames}))
    return {"verified": verified, "decoded": decoded, "problems": problems}
