"""Per-job cost stays flat as work grows: AWS requests per job by service and operation (counted with a
botocore ``before-call`` hook on the functions' own session) at 1,000 and 10,000 jobs, priced at us-east-1
list prices beside the provider's price per video; and the idle cost per month.

The runs (``bench.cost_run``) drive the real handlers in process on a simulated clock against a lean
in-memory AWS backend; a small run on moto's ``mock_aws`` beside one on the lean backend shows the backend
does not change the count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from typing import Any

from bench.common import OUT, ROOT, Figure, at_most

PROVIDER_PRICE_PER_VIDEO = 0.10 * 5  # assumed: wan2.2-kf2v-flash at ~$0.10 per output second, 5 s videos
# us-east-1 list prices (on-demand), USD
PRICE = {
    "dynamodb_write_unit": 1.25e-6,
    "dynamodb_read_unit": 0.25e-6,
    "sqs_request": 0.40e-6,
    "s3_put": 0.005e-3,
    "s3_get": 0.0004e-3,
    "sns_publish": 0.50e-6,
    "secrets_call": 0.05e-4,
    "lambda_request": 0.20e-6,
    "lambda_gb_s_arm": 0.0000133334,
    "secret_month": 0.40,
    "alarm_month": 0.10,
}
DDB_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
DDB_READS = {"GetItem", "Query", "Scan"}
S3_PUTS = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "ListObjectsV2",
           "AbortMultipartUpload", "CopyObject"}  # fmt: skip


def price(requests: dict[str, int]) -> dict[str, float]:
    """USD by service for a request mix. Assumptions (stated in the table): items are under 1 KB for
    writes... job items are 1-2 KB, so a write costs 2 write units, a transactional write of 2 items 2 x 2 x 2;
    a read 1 read unit (items under 4 KB)."""
    cost: Counter[str] = Counter()
    for key, n in requests.items():
        service, op = key.split(".", 1)
        if service == "dynamodb":
            if op in DDB_WRITES:
                cost["dynamodb"] += n * 2 * PRICE["dynamodb_write_unit"]
            elif op == "TransactWriteItems":
                cost["dynamodb"] += n * 8 * PRICE["dynamodb_write_unit"]
            elif op in DDB_READS:
                cost["dynamodb"] += n * PRICE["dynamodb_read_unit"]
        elif service == "s3":
            cost["s3"] += n * (PRICE["s3_put"] if op in S3_PUTS else PRICE["s3_get"])
        elif service == "sqs":
            cost["sqs"] += n * PRICE["sqs_request"]
        elif service == "sns":
            cost["sns"] += n * PRICE["sns_publish"]
        elif service == "secretsmanager":
            cost["secretsmanager"] += n * PRICE["secrets_call"]
    return dict(cost)


def per_job(result: dict[str, Any]) -> dict[str, Any]:
    jobs = result["jobs"]
    reqs = result["aws_requests"]
    # Lambda's SQS event source: each message is received and deleted by Lambda's pollers (billed to us)
    sent = reqs.get("sqs.SendMessage", 0) + 2 * jobs  # + the S3 events of the two frames
    extra = {"sqs.ReceiveMessage(lambda)": sent, "sqs.DeleteMessage(lambda)": sent}
    # the provider fetches both frames from presigned URLs: two S3 GETs per job
    extra["s3.GetObject(provider)"] = 2 * jobs
    all_reqs = {**reqs, **extra}
    cost = price(all_reqs)
    invocations = result["invocations"]
    lambda_requests = (
        invocations.get("submit", 0) + invocations.get("completion", 0) + invocations.get("poller", 0)
    )
    cost["lambda_requests"] = lambda_requests * PRICE["lambda_request"]
    # duration: the poller runs (mostly waiting) up to its 55 s budget each minute while work is active;
    # submit and completion ~1 s each at 256 MB / 1024 MB (completion makes the clip's pictures; an
    # estimate, not measured on Lambda)
    cost["lambda_duration"] = (
        invocations.get("poller", 0) * 55 * 0.25 + invocations.get("submit", 0) * 1 * 0.25
        + invocations.get("completion", 0) * 1 * 1.0
    ) * PRICE["lambda_gb_s_arm"]  # fmt: skip
    total = sum(cost.values())
    by_service: Counter[str] = Counter()
    for key, n in reqs.items():
        by_service[key.split(".")[0]] += n
    with_lambda: Counter[str] = Counter()
    for key, n in all_reqs.items():
        with_lambda[key.split(".")[0]] += n
    return {
        "jobs": jobs,
        "requests_per_job": round(sum(reqs.values()) / jobs, 3),
        "requests_per_job_by_service": {k: round(v / jobs, 3) for k, v in sorted(by_service.items())},
        "requests_per_job_by_operation": {k: round(v / jobs, 3) for k, v in sorted(reqs.items())},
        "requests_per_job_by_service_incl_lambda_polling": {
            k: round(v / jobs, 3) for k, v in sorted(with_lambda.items())
        },
        "usd_per_job": total / jobs,
        "usd_per_job_by_part": {k: v / jobs for k, v in cost.items()},
        "invocations": invocations,
        "provider": result.get("provider", {}),
        "provider_hours": result.get("provider_hours"),
        "wall_s": result.get("wall_s"),
    }


def idle_month() -> dict[str, float]:
    """Nothing to do: 43,200 poller ticks, two secrets, the alarms, Lambda's idle SQS pollers."""
    from bench.poller_reads import idle_tick_requests

    reqs = idle_tick_requests()
    ticks = 60 * 24 * 30
    per_tick = price(reqs)
    cost = {
        "poller_requests": ticks * PRICE["lambda_request"],
        "poller_duration": ticks * 0.3 * 0.25 * PRICE["lambda_gb_s_arm"],  # ~0.3 s per idle tick (estimate)
        "poller_dynamodb": ticks * sum(per_tick.values()),
        "secrets": 2 * PRICE["secret_month"],
        "alarms": 3 * PRICE["alarm_month"],
        # Lambda long-polls each SQS source (about 5 pollers, 20 s waits): ~650k requests/month per queue
        "sqs_idle_polling": 2 * 650_000 * PRICE["sqs_request"],
    }
    cost["total"] = sum(cost.values())
    cost["idle_tick_requests"] = reqs  # type: ignore[assignment]
    return cost


def _launch(args: dict[str, Any]) -> tuple[subprocess.Popen, Any]:
    # output to a file, not a pipe: a run must never block on a full pipe while we wait for another
    out = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cost_run", json.dumps(args)],
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, out


def _result(launched: tuple[subprocess.Popen, Any]) -> dict[str, Any]:
    proc, out = launched
    proc.wait()
    out.seek(0)
    text = out.read()
    out.close()
    lines = [line for line in text.splitlines() if line.startswith('{"backend"')]
    if proc.returncode != 0 or not lines:
        return {"error": text[-400:]}
    return json.loads(lines[-1])


def run(quick: bool = False) -> list[Figure]:
    small, large = (20, 200) if quick else (1000, int(os.environ.get("BENCH_COST_LARGE_JOBS", "10000")))
    check = 10 if quick else 30
    # two cores: the large run alone on one, the small run then the moto cross-check on the other
    big = _launch({"jobs": large, "seed": 11})
    first = _result(_launch({"jobs": small, "seed": 11}))
    lean_check = _result(_launch({"jobs": check, "seed": 5}))
    moto_check = _result(_launch({"jobs": check, "seed": 5, "backend": "moto"}))
    second = _result(big)
    runs = [first, second, lean_check, moto_check]
    errors = [r["error"] for r in runs if "error" in r]
    unfinished = [r for r in runs if "error" not in r and r["notified"] != r["jobs"]]
    if errors or unfinished:
        note = "failed: " + (
            errors[0][-200:] if errors else f"{unfinished[0]['notified']} of {unfinished[0]['jobs']} jobs"
        )
        return [Figure(key="cost.requests_ratio", name="AWS requests per job", value=None, unit="", goal="<= 1.1",
                       passed=None, note=note)]  # fmt: skip
    a, b = per_job(first), per_job(second)
    lean_n, moto_n = sum(lean_check["aws_requests"].values()), sum(moto_check["aws_requests"].values())
    agreement = {
        "jobs": check,
        "lean_requests": lean_n,
        "moto_requests": moto_n,
        "lean_by_operation": lean_check["aws_requests"],
        "moto_by_operation": moto_check["aws_requests"],
    }
    idle = idle_month()
    (OUT / "aws_cost.json").write_text(
        json.dumps({"small": a, "large": b, "backend_check": agreement, "idle": idle}, indent=1, default=str)
    )
    ratio = b["requests_per_job"] / a["requests_per_job"]
    share = b["usd_per_job"] / PROVIDER_PRICE_PER_VIDEO
    settings = {
        "quota": first["settings"]["quota"],
        "generation": "60-300 s, seed 11",
        "settle_s": first["settings"]["settle_s"],
        "poll_interval_s": first["settings"]["poll_interval_s"],
        "clock": "simulated (handlers in process)",
        "backend": f"lean in-memory AWS; moto cross-check {check} jobs: {moto_n} vs {lean_n} requests",
        "prices": "us-east-1 list, on-demand; Lambda arm64",
    }
    kinds = lambda r: ", ".join(f"{k} {v:g}" for k, v in r["requests_per_job_by_service"].items())  # noqa: E731
    return [
        Figure(
            key="cost.requests_ratio",
            name=f"AWS requests per job, {large:,} jobs vs {small:,} jobs",
            value=round(ratio, 3),
            unit="ratio",
            goal="<= 1.1",
            passed=at_most(ratio, 1.1),
            baseline=f"{a['requests_per_job']:g} vs {b['requests_per_job']:g} requests/job "
            f"({small:,}: {kinds(a)}; {large:,}: {kinds(b)})",
            settings=settings,
            detail={"small": a, "large": b, "backend_check": agreement},
        ),  # fmt: skip
        Figure(
            key="cost.infra_share",
            name="AWS cost per job as a share of the provider's price per video",
            value=round(share * 100, 3),
            unit="%",
            goal="< 1",
            passed=share < 0.01,
            baseline=f"${b['usd_per_job']:.5f} per job vs ${PROVIDER_PRICE_PER_VIDEO:.2f} per video (assumed "
            "$0.10/s x 5 s)",
            settings=settings,
            detail=b["usd_per_job_by_part"],
        ),  # fmt: skip
        Figure(
            key="cost.idle_month",
            name="Idle cost per month (nothing to do)",
            value=round(idle["total"], 2),
            unit="USD",
            goal="informational",
            passed=None,
            baseline="poller every minute, 2 secrets, 3 alarms, Lambda's SQS pollers; free tiers not counted",
            detail=idle,
        ),  # fmt: skip
    ]


if __name__ == "__main__":
    print(json.dumps([f.to_dict() for f in run(quick=True)], indent=2, default=str))
