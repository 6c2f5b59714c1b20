"""The provider's push channel, emulated: a CloudEvents "task finished" event POSTed to a URL when a task ends.

Model Studio sends every async task's end to Alibaba Cloud EventBridge, and a rule there can forward it to
an HTTP(S) target. ``EventSender`` stands in for that chain: attached to an ``EmulatorServer`` (its
``on_task_finished`` seam), it builds the same event the docs show and sends it from its own thread, so
the emulator never waits on the receiver::

    sender = EventSender(PushConfig(url="http://127.0.0.1:9000/", headers={"x-inbetween-token": "..."}))
    sender.attach(emulator).start()

Delivery faults, drawn from a seeded RNG: drops (the event is never sent), duplicates (sent twice),
delays (a fixed or (low, high) number of seconds) and reordering (an event is held back so later ones
overtake it). A failed delivery (connection error, 429, 5xx) is retried a few times, like a best-effort
HTTP target. Only loopback URLs are allowed unless ``allow_remote`` is set.
"""

from __future__ import annotations

import heapq
import ipaddress
import json
import random
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from .media_models import user_api_unique_key
from .tasks import CHINA_TIME, TaskSnapshot

EVENT_SOURCE = "acs.dashscope"
EVENT_TYPE = "dashscope:System:AsyncTaskFinish"
ACCOUNT_ID = "1000000000000000"

Delay = float | tuple[float, float]


@dataclass(frozen=True, slots=True)
class PushConfig:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    region: str = "cn-beijing"
    drop_probability: float = 0.0
    duplicate_probability: float = 0.0
    delay_s: Delay = 0.0
    reorder_probability: float = 0.0
    reorder_hold_s: float = 1.0  # how long a reordered event is held back
    retries: int = 2
    retry_backoff_s: float = 0.5
    timeout_s: float = 5.0
    # events in flight at once: EventBridge delivers concurrently, not one after the other
    senders: int = 4
    seed: int = 0
    allow_remote: bool = False

    def __repr__(self) -> str:  # headers carry the shared secret
        return f"PushConfig(url={self.url!r}, headers=<{len(self.headers)} hidden>)"


@dataclass
class PushStats:
    finished: int = 0  # tasks that ended
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    sent: int = 0  # requests that got an answer
    failed: int = 0  # events given up after the retries
    statuses: dict[int, int] = field(default_factory=dict)


def _china_seconds(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S")


def task_finished_event(snapshot: TaskSnapshot, *, region: str, now: float | None = None) -> dict:
    """The CloudEvents 1.0 event Model Studio publishes when a task ends (shape from its docs)."""
    published = now if now is not None else time.time()
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": EVENT_SOURCE,
        "type": EVENT_TYPE,
        "subject": f"acs:dashscope:{region}:{ACCOUNT_ID}:task/{snapshot.task_id}",
        "time": datetime.fromtimestamp(published, UTC).isoformat(timespec="milliseconds"),
        "datacontenttype": "application/json;charset=utf-8",
        "aliyunaccountid": ACCOUNT_ID,
        "aliyunoriginalaccountid": ACCOUNT_ID,
        "aliyunpublishtime": datetime.fromtimestamp(published, UTC).isoformat(timespec="milliseconds"),
        "aliyuneventbusname": "default",
        "aliyunregionid": region,
        "data": {
            "task_id": snapshot.task_id,
            "task_status": snapshot.status.value,
            "start_time": _china_seconds(snapshot.scheduled_at or snapshot.created_at),
            "end_time": _china_seconds(snapshot.ended_at),
            "region": region,
            "request_id": str(uuid.uuid4()),
            "api_key_id": snapshot.api_key_id,
            "user_api_unique_key": user_api_unique_key(snapshot.model),
            "contain_result": False,
        },
    }


def _check_loopback(url: str) -> None:
    host = httpx.URL(url).host
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"push URL {url!r} is not a loopback address; set allow_remote to send elsewhere")


class EventSender:
    def __init__(self, config: PushConfig) -> None:
        if not config.allow_remote:
            _check_loopback(config.url)
        self.config = config
        self.stats = PushStats()
        self._rng = random.Random(config.seed)
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._sending = 0
        self._threads: list[threading.Thread] = []
        self._http = httpx.Client(timeout=config.timeout_s, follow_redirects=False)

    def __repr__(self) -> str:
        return f"EventSender({self.config!r})"

    # ---- lifecycle -----------------------------------------------------------------------------------
    def attach(self, emulator) -> EventSender:
        emulator.on_task_finished.append(self.on_task_finished)
        return self

    def start(self) -> EventSender:
        for n in range(max(1, self.config.senders)):
            thread = threading.Thread(target=self._run, name=f"emulator-push-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)
        self._http.close()

    def __enter__(self) -> EventSender:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def idle(self) -> bool:
        """True when no event waits to be sent."""
        with self._cond:
            return not self._heap and self._sending == 0

    # ---- the seam ------------------------------------------------------------------------------------
    def on_task_finished(self, snapshot: TaskSnapshot) -> None:
        body = json.dumps(task_finished_event(snapshot, region=self.config.region)).encode()
        with self._cond:
            self.stats.finished += 1
            if self._chance(self.config.drop_probability):
                self.stats.dropped += 1
                return
            copies = 1
            if self._chance(self.config.duplicate_probability):
                copies = 2
                self.stats.duplicated += 1
            now = time.monotonic()
            for _ in range(copies):
                at = now + self._delay()
                if self._chance(self.config.reorder_probability):
                    at += self.config.reorder_hold_s
                    self.stats.reordered += 1
                self._seq += 1
                heapq.heappush(self._heap, (at, self._seq, body))
            self._cond.notify_all()

    def _chance(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability

    def _delay(self) -> float:
        delay = self.config.delay_s
        if isinstance(delay, tuple):
            return self._rng.uniform(*delay)
        return float(delay)

    # ---- sending -------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                _, _, body = heapq.heappop(self._heap)
                self._sending += 1
            try:
                self._deliver(body)
            finally:
                with self._cond:
                    self._sending -= 1

    def _deliver(self, body: bytes) -> None:
        headers = {"content-type": "application/json;charset=utf-8", **self.config.headers}
        for attempt in range(self.config.retries + 1):
            try:
                response = self._http.post(self.config.url, content=body, headers=headers)
            except httpx.HTTPError:
                status = None
            else:
                status = response.status_code
                with self._cond:
                    self.stats.sent += 1
                    self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
                if status < 500 and status != 429:
                    return
            if attempt < self.config.retries:
                time.sleep(self.config.retry_backoff_s * (2**attempt))
        with self._cond:
            self.stats.failed += 1


__all__ = ["EVENT_SOURCE", "EVENT_TYPE", "EventSender", "PushConfig", "PushStats", "task_finished_event"]
