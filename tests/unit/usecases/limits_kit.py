"""A provider that holds us to DashScope's limits, in virtual time (imported as a plain module).

``LimitedProvider`` is the ``Provider`` port as the references describe the account's limits: more
than ``submit_per_s`` creates reaching it in a sliding second are refused with ``Throttling.RateQuota``; more tasks in flight than ``concurrency`` plus
``queue`` are refused with ``Throttling.AllocationQuota``; the task list answers a window of creation
times page by page (``page_size`` at most 100), newest first or oldest first. Each call takes a round trip drawn from
its range (seeded): a create reaches the provider at a point of its round trip that is drawn too, so
the two legs vary independently, as they do on a real network. Time is the world's ``ManualClock``:
a call's round trip is slept through.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from inbetween.errors import ProviderThrottled
from inbetween.provider.models import (
    CreateTaskRequest,
    TaskPage,
    TaskRef,
    TaskState,
    TaskStatus,
    TaskSummary,
)
from inbetween_local.memory import ManualClock

MAX_PAGE_SIZE = 100  # the task list's own cap on page_size


@dataclass
class LimitedTask:
    task_id: str
    model: str
    created: float  # when the create reached the provider (its gmt_create)
    start: float
    end: float

    def status_at(self, t: float) -> TaskStatus:
        if t < self.start:
            return TaskStatus.PENDING
        return TaskStatus.RUNNING if t < self.end else TaskStatus.SUCCEEDED


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class LimitedProvider:
    def __init__(
        self,
        clock: ManualClock,
        *,
        seed: int = 1,
        submit_per_s: float = 5.0,
        concurrency: int = 5,
        queue: int = 0,
        create_rtt_s: tuple[float, float] = (0.25, 0.55),
        query_rtt_s: tuple[float, float] = (0.10, 0.20),
        generation_s: Callable[[random.Random], float] = lambda rng: rng.uniform(60.0, 300.0),
        newest_first: bool = True,
    ) -> None:
        self.clock = clock
        self.submit_per_s = submit_per_s
        self.concurrency = concurrency
        self.queue = queue
        self.create_rtt_s = create_rtt_s
        self.query_rtt_s = query_rtt_s
        self.generation_s = generation_s
        self.newest_first = newest_first  # the list's order is not documented: tests take both
        self._jitter = random.Random(f"{seed}/jitter")
        self._durations = random.Random(f"{seed}/generation")
        self._arrivals: dict[str, deque[float]] = {}
        self._slots: dict[str, list[float]] = {}  # model -> heap of when each slot frees
        self.tasks: dict[str, LimitedTask] = {}
        self.throttled: Counter[str] = Counter()
        self.queries = 0
        self.list_calls = 0
        self.page_sizes: list[int] = []
        self.windows: list[tuple[float, float]] = []  # every list call's (start, end)

    # -- the port --------------------------------------------------------------------------------------
    def key_refs(self) -> tuple[str, ...]:
        return ("key-0",)  # one API key: the account's one submit lane

    def create_task(self, request: CreateTaskRequest) -> TaskRef:
        rtt = self._jitter.uniform(*self.create_rtt_s)
        outbound = rtt * self._jitter.uniform(0.2, 0.8)  # the legs vary on their own
        self.clock.sleep(outbound)
        try:
            task = self._accept(request.model)
        finally:
            self.clock.sleep(rtt - outbound)
        return TaskRef(task_id=task.task_id, task_status=TaskStatus.PENDING, request_id="req")

    def get_task(self, task_id: str) -> TaskState:
        self._round_trip()
        self.queries += 1
        task = self.tasks.get(task_id)
        if task is None:
            return TaskState(task_id=task_id, status=TaskStatus.UNKNOWN, request_id="req")
        status = task.status_at(self.clock.now())
        done = status is TaskStatus.SUCCEEDED
        return TaskState(
            task_id=task_id,
            status=status,
            request_id="req",
            submit_time=_dt(task.created),
            end_time=_dt(task.end) if done else None,
            video_url=f"https://videos.test/{task_id}.mp4" if done else None,
        )

    def list_tasks(
        self, *, start: datetime, end: datetime, model: str, page_no: int = 1, page_size: int = 10
    ) -> TaskPage:
        self._round_trip()
        self.list_calls += 1
        self.page_sizes.append(page_size)
        size = min(page_size, MAX_PAGE_SIZE)
        lo, hi = start.timestamp(), end.timestamp()
        if page_no == 1:
            self.windows.append((lo, hi))
        now = self.clock.now()
        rows = sorted(
            (t for t in self.tasks.values() if t.model == model and lo <= t.created <= hi),
            key=lambda t: t.created,
            reverse=self.newest_first,
        )
        page = rows[(page_no - 1) * size : page_no * size]
        return TaskPage(
            total=len(rows),
            page_no=page_no,
            page_size=size,
            total_page=max(1, -(-len(rows) // size)),
            tasks=tuple(
                TaskSummary(
                    task_id=t.task_id, status=t.status_at(now), model_name=t.model, gmt_create=_dt(t.created)
                )
                for t in page
            ),
        )

    def iter_tasks(self, *, start: datetime, end: datetime, model: str) -> Iterator[TaskSummary]:
        page_no = 1
        while True:
            page = self.list_tasks(start=start, end=end, model=model, page_no=page_no, page_size=100)
            yield from page.tasks
            if page_no >= page.total_page:
                return
            page_no += 1

    def close(self) -> None:
        pass

    # -- for the tests ---------------------------------------------------------------------------------
    def add_task(self, model: str, *, created: float, lasts_s: float) -> LimitedTask:
        """A task created at ``created`` (someone's, or ours long ago) that runs ``lasts_s``."""
        task = LimitedTask(f"task-{len(self.tasks) + 1:05d}", model, created, created, created + lasts_s)
        self.tasks[task.task_id] = task
        return task

    def create_times(self) -> list[float]:
        return sorted(t.created for t in self.tasks.values())

    # -- the model -------------------------------------------------------------------------------------
    def _accept(self, model: str) -> LimitedTask:
        now = self.clock.now()
        window = self._arrivals.setdefault(model, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) + 1 > self.submit_per_s:
            self.throttled["Throttling.RateQuota"] += 1
            raise ProviderThrottled(
                "Requests rate limit exceeded", code="Throttling.RateQuota", status_code=429
            )
        in_flight = sum(1 for t in self.tasks.values() if t.model == model and t.end > now)
        if in_flight >= self.concurrency + self.queue:
            self.throttled["Throttling.AllocationQuota"] += 1
            raise ProviderThrottled(
                "Too many tasks in flight", code="Throttling.AllocationQuota", status_code=429
            )
        window.append(now)
        # FIFO onto the slot that frees first
        slots = self._slots.setdefault(model, [-math.inf] * self.concurrency)
        free_at = heapq.heappop(slots)
        start = max(now, free_at)
        task = LimitedTask(
            f"task-{len(self.tasks) + 1:05d}", model, now, start, start + self.generation_s(self._durations)
        )
        heapq.heappush(slots, task.end)
        self.tasks[task.task_id] = task
        return task

    def _round_trip(self) -> None:
        self.clock.sleep(self._jitter.uniform(*self.query_rtt_s))


def max_in_a_second(times: list[float]) -> int:
    """The most of ``times`` that fall inside one sliding second (as the provider counts)."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
