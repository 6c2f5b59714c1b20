"""Per-job cost stays flat as work grows: AWS requests per job by service and operation (counted with a
botocore ``before-call`` hook on the functions' own session) at two job counts, priced at us-east-1 list
prices beside the provider's price per video; and the idle cost per month."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from bench.common import OUT, Figure, at_most
from bench.provider_traffic import SCALE, launch
from bench.traffic_run import Scenario

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
    jobs = len(result["done"])
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
    # duration: the poller runs (mostly waiting) up to its 50 s budget each minute while work is active;
    # submit and completion ~1 s each at 256 MB / 512 MB (an estimate, not measured on Lambda)
    cost["lambda_duration"] = (
        invocations.get("poller", 0) * 50 * 0.25 + invocations.get("submit", 0) * 1 * 0.25
        + invocations.get("completion", 0) * 1 * 0.5
    ) * PRICE["lambda_gb_s_arm"]  # fmt: skip
    total = sum(cost.values())
    by_service: Counter[str] = Counter()
    for key, n in all_reqs.items():
        by_service[key.split(".")[0]] += n
    return {
        "jobs": jobs,
        "requests_per_job": round(sum(reqs.values()) / jobs, 2),
        "requests_per_job_by_operation": {k: round(v / jobs, 2) for k, v in sorted(reqs.items())},
        "requests_per_job_by_service_incl_lambda_polling": {
            k: round(v / jobs, 2) for k, v in by_service.items()
        },
        "usd_per_job": total / jobs,
        "usd_per_job_by_part": {k: v / jobs for k, v in cost.items()},
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


def run(quick: bool = False) -> list[Figure]:
    small, large = (4, 8) if quick else (100, 1000)
    quota = 20
    runs = launch(
        [
            Scenario("pipeline", small, quota, SCALE, seed=11, count_requests=True, label=f"{small} jobs"),
            Scenario("pipeline", large, quota, SCALE, seed=11, count_requests=True, label=f"{large} jobs"),
        ]
    )
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        return [Figure(key="cost.requests_ratio", name="AWS requests per job", value=None, unit="", goal="<= 1.1",
                       passed=None, note="failed: " + errors[0][-200:])]  # fmt: skip
    a, b = per_job(runs[0]), per_job(runs[1])
    idle = idle_month()
    (OUT / "aws_cost.json").write_text(
        json.dumps({"small": a, "large": b, "idle": idle}, indent=1, default=str)
    )
    ratio = b["requests_per_job"] / a["requests_per_job"]
    share = b["usd_per_job"] / PROVIDER_PRICE_PER_VIDEO
    settings = {"quota": quota, "scale": f"1 provider minute = {60 / SCALE:g} s", "generation": "60-300 s, seed 11",
                "prices": "us-east-1 list, on-demand; Lambda arm64"}  # fmt: skip
    top = sorted(b["requests_per_job_by_operation"].items(), key=lambda kv: -kv[1])[:5]
    return [
        Figure(
            key="cost.requests_ratio",
            name=f"AWS requests per job, {large:,} jobs vs {small:,} jobs",
            value=round(ratio, 3),
            unit="ratio",
            goal="<= 1.1",
            passed=at_most(ratio, 1.1),
            baseline=f"{a['requests_per_job']} vs {b['requests_per_job']} requests/job; most: "
            + ", ".join(f"{k} {v}" for k, v in top),
            settings=settings,
            detail={"small": a, "large": b},
            note=f"10,000 jobs not run: through moto on 2 cores it takes ~25 minutes; {large:,} is the large side",
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
