"""What every figure shares: the result record, request counting, and AWS resources on moto."""

from __future__ import annotations

import io
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CODE_ROOT = Path(os.environ.get("BENCH_CODE_ROOT") or ROOT)  # whose shared/ and functions/ are measured
OUT = ROOT / "bench" / "out"
REGION = "us-east-1"


@dataclass
class Figure:
    """One row of the table: a ratio or a count beside its baseline, with its goal and verdict."""

    key: str
    name: str
    value: float | None
    unit: str
    goal: str
    passed: bool | None  # None: informational or not measured
    baseline: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    # an invariant (or a module that ran at all): its FAIL fails even the quick run, whose goal verdicts
    # are shown but do not count (one seed, small numbers: not the figures the goals are set on)
    invariant: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values)


class RequestCounter:
    """Counts AWS API calls by service and operation through botocore's ``before-call`` event (one per
    call, as billed), and the items DynamoDB reads report (``ScannedCount``) through ``after-call``."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.items_read: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attach(self, events: Any) -> RequestCounter:
        events.register("before-call", self._before)
        events.register("after-call.dynamodb", self._after_dynamodb)
        return self

    def _before(self, model: Any, **_: Any) -> None:
        key = f"{model.service_model.service_name}.{model.name}"
        with self._lock:
            self.calls[key] += 1

    def _after_dynamodb(self, http_response: Any, parsed: dict, model: Any, **_: Any) -> None:
        with self._lock:
            if model.name in ("Query", "Scan"):
                self.items_read[model.name] += int(parsed.get("ScannedCount", 0))
            elif model.name == "GetItem":
                self.items_read[model.name] += 1 if "Item" in parsed else 0

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.items_read.clear()


# What the functions read from their environment to find the resources (the bench modules' names).
RESOURCE_VARIABLES = (
    "JOBS_TABLE",
    "INBOX_BUCKET",
    "OUTPUT_BUCKET",
    "NOTIFY_TOPIC_ARN",
    "INTAKE_QUEUE_URL",
    "COMPLETION_QUEUE_URL",
    "DASHSCOPE_API_KEY_SECRET",
    "WEBHOOK_SECRET_NAME",
)
# 32 base64 characters, as the template generates (the same as the lean AWS of cost_run.py)
BENCH_WEBHOOK_SECRET = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"  # noqa: S105 - made up, for the bench only


def create_resources(session: Any, suffix: str, *, api_key: str = "sk-bench-000") -> dict[str, str]:
    """template.yaml's resources on moto (through the one builder the local stack and the tests use),
    under the stack name ``bench-<suffix>``; returns the functions' resource variables (names, URLs,
    ARNs) by environment variable name. The inbox's ``s3:TestEvent`` is already gone from the intake
    queue."""
    from inbetween_local.stack.provision import provision

    provisioned = provision(
        session,
        stack_name=f"bench-{suffix}",
        secret_values={"DASHSCOPE_API_KEY_SECRET": api_key, "WEBHOOK_SECRET_NAME": BENCH_WEBHOOK_SECRET},
    )
    provisioned.discard_s3_test_events()
    return {name: provisioned.environment[name] for name in RESOURCE_VARIABLES}


def create_jobs_table(ddb: Any, table: str) -> None:
    """The jobs table as template.yaml declares it (key ``pk``, the sparse ``due-index``, TTL), named
    ``table``, and nothing else."""
    from inbetween_local.stack.provision import create_table_like

    create_table_like(ddb, table, "JobsTable")


class MotoServer:
    """moto in server mode on an ephemeral loopback port, in a thread of this process (the harness the
    tests and the local stack use): ``with MotoServer() as endpoint_url: ...``."""

    def __init__(self) -> None:
        from inbetween_local.stack.moto_server import MotoServer as _Server

        self._server = _Server()

    def __enter__(self) -> str:
        return self._server.start().url

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


def fake_aws_env() -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


@lru_cache(maxsize=1)
def tiny_mp4() -> bytes:
    """A real H.264 MP4 (two 64x64 frames), made once per process: for its ftyp and moov boxes, and as the
    video every simulated task serves."""
    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 100, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()
