"""Run by test_e2e_push.py in its own process (the local stack's environment is process-global, and the
e2e folder's shared stack runs with push off): a local stack with push on and lossy event delivery, a few
drops, and a JSON report on stdout."""

from __future__ import annotations

import json
import sys
import warnings
from collections import Counter
from pathlib import Path

from inbetween_local.emulator import PushConfig
from inbetween_local.stack import LocalStack

SAMPLES = Path(__file__).resolve().parents[2] / "local" / "inbetween_local" / "samples"
JOBS = 4


def main() -> None:
    warnings.filterwarnings("ignore")
    faults = PushConfig(
        url="http://127.0.0.1/",  # the stack points it at its function URL
        drop_probability=0.5,
        duplicate_probability=0.5,
        delay_s=(0.0, 0.5),
        reorder_probability=0.3,
        seed=int(sys.argv[1]) if len(sys.argv) > 1 else 3,
    )
    with LocalStack(push=True, push_faults=faults, poller_period_s=1.0) as stack:
        notes = stack.subscribe_queue("push-notes")
        s3 = stack.client("s3")
        names = [f"push-{i}" for i in range(JOBS)]
        for name in names:
            for frame in ("first.png", "last.png"):
                s3.put_object(
                    Bucket=stack.inbox_bucket,
                    Key=f"inbox/{name}/{frame}",
                    Body=(SAMPLES / frame).read_bytes(),
                )
        jobs = {name: stack.wait_for_job(name, timeout=120) for name in names}
        notified = Counter()
        for _ in range(10):
            batch = stack.notifications(notes, wait_s=1)
            for envelope in batch:
                notified[json.loads(envelope["Message"])["data"]["job"]] += 1
            if not batch and sum(notified.values()) >= JOBS:
                break
        per_task = stack.emulator.stats.per_task
        sender = stack.push.sender.stats
        report = {
            "url": stack.outputs.get("ProviderEventsUrl"),
            "statuses": {name: job.status.value for name, job in jobs.items()},
            "queries": {name: per_task[job.task_id].queries for name, job in jobs.items()},
            "tasks_created": stack.emulator.stats.creates_accepted,
            "notifications": dict(notified),
            "events": {
                "finished": sender.finished,
                "dropped": sender.dropped,
                "duplicated": sender.duplicated,
                "reordered": sender.reordered,
                "sent": sender.sent,
                "statuses": {str(k): v for k, v in sender.statuses.items()},
            },
            "function_url_requests": stack.push.server.requests,
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
