"""A deterministic virtual-time world for the pipeline's own use cases (issue #14's measurements).

Nothing here reads the wall clock: the same scenario and seed give the same figures on any machine.

- ``VirtualClock`` (the ``Clock`` port): events scheduled with ``at``, each run as its own process (as a
  Lambda invocation is) but one at a time; ``sleep`` lets every event due before the sleeper's wake-up run,
  in (time, sequence) order, then resumes it at its wake-up exactly. Events may sleep; none runs twice.
- ``QueuedProvider`` (the ``Provider`` port): DashScope's async task API as wan2.7-i2v's reference says:
  ``concurrency`` tasks RUNNING per model, a FIFO queue of up to ``queue`` PENDING tasks beyond them, a
  create beyond both refused with ``Throttling.AllocationQuota``, more than ``submit_per_s`` creates in a
  sliding second refused with ``Throttling.RateQuota``. A task's generation time is drawn (seeded) when
  it is created, so its start (the earliest free slot, FIFO) and end are known then; its status is
  computed from the clock.
- ``run_scenario``: the product's use cases (``inbetween.usecases``) on the in-memory adapters, driven as
  the cloud drives them: drops (a job accepted by intake, then admission), the scheduled poller every
  60 s, the SQS hand-overs (admit_waiting, complete_job) after a delivery delay, and, with push on, the
  provider's task-finished event after its delivery delay, through the ProviderEventsFunction's request
  handling.

Only the outside world takes time (``LATENCY``): the provider's round trips, its event delivery, SQS's
hand-overs and every AWS call our code makes (DynamoDB, S3, SNS, SQS: each port call sleeps its modelled
round trip, ``AwsLatency``). Our own Python runs in zero virtual time: it is not multiplied by anything, and
it is small beside the round trips it waits on (a use case's own CPU is ~1 ms per call). The video copy's
bytes are not modelled: it holds no provider slot and costs the same in every configuration.

A scenario can hold several model families at once (``Family``: kf2v at quota 2 with no provider queue
beside wan2.7 at 5 with its queue), stragglers (every n-th task stuck for hours), slow PENDING phases,
push events lost, and the account's 20 QPS query quota is enforced (``Throttling.RateQuota``).
"""

from __future__ import annotations

import _thread
import heapq
import itertools
import json
import math
import random
import threading
import traceback
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from inbetween.config import Timing
from inbetween.deps import Deps
from inbetween.domain.catalog import model_spec, provider_model_name
from inbetween.domain.models import DueKind, InputObject, Job, JobSpec, JobStatus, Notification
from inbetween.errors import ProviderThrottled
from inbetween.observability import metrics
from inbetween.provider.models import (
    CreateTaskRequest,
    TaskPage,
    TaskRef,
    TaskState,
    TaskStatus,
    TaskSummary,
    Usage,
)
from inbetween.usecases import admission, completion, polling, push
from inbetween_local.memory import (
    FixedQuotas,
    InMemoryBlobs,
    InMemoryJobStore,
    InMemoryVideos,
    RecordingNotifier,
    RecordingWebhooks,
    test_settings,
)

from bench.common import tiny_mp4

MODEL = "wan2.7-i2v"
REGION = "cn-beijing"
START = 1_800_000_000.0  # a whole minute: the scheduled poller fires on minute boundaries
PUSH_SECRET = "virtual-push-secret"  # noqa: S105 - the fake deployment's push secret


# ---- the outside world's latencies (virtual seconds; each drawn uniformly in its range, seeded) ----------
@dataclass(frozen=True, slots=True)
class Latency:
    # create call round trip (HTTPS to the provider's region, body with presigned URLs): 0.4 s +- 0.15 s.
    # The task exists from the middle of the round trip (the request's arrival).
    create_s: tuple[float, float] = (0.25, 0.55)
    # and its tail: this share of creates reaches the provider later by the extra range (a retransmitted
    # segment, a slow TLS resumption, a pause in the function): what a 10 % spacing margin must absorb
    create_tail_share: float = 0.05
    create_tail_s: tuple[float, float] = (0.2, 1.0)
    # task query round trip (GET /tasks/{id}): 0.15 s +- 0.05 s; answered as of its middle
    query_s: tuple[float, float] = (0.10, 0.20)
    # task list round trip (GET /tasks, one page): 0.25 s +- 0.1 s
    list_s: tuple[float, float] = (0.15, 0.35)
    # task end -> our ProviderEventsFunction invoked (provider -> EventBridge -> function URL): 1-3 s
    push_s: tuple[float, float] = (1.0, 3.0)
    # SQS message sent -> the consuming Lambda running (admit_waiting, complete_job): 0.1-0.5 s
    handover_s: tuple[float, float] = (0.1, 0.5)
    # the scheduled poller (EventBridge rate(1 minute)) and its tick's budget (poll_budget_s)
    poll_every_s: float = 60.0
    poll_budget_s: float = 55.0


@dataclass(frozen=True, slots=True)
class AwsLatency:
    """Round trips of our code's AWS calls from a Lambda in the same region (virtual seconds, uniform in
    each range): the published single-digit-millisecond DynamoDB latency, an S3 GET/PUT of a small object,
    an SNS publish, an SQS send. A presigned URL is computed locally: no round trip."""

    dynamodb_s: tuple[float, float] = (0.004, 0.012)
    s3_s: tuple[float, float] = (0.015, 0.040)
    sns_s: tuple[float, float] = (0.010, 0.030)
    sqs_s: tuple[float, float] = (0.005, 0.015)


LATENCY = Latency()
AWS_LATENCY = AwsLatency()
QUERY_PER_S = 20.0  # the account's task query and list quota (wan27-i2v reference §5.1)


# ---- generation times --------------------------------------------------------------------------------
def uniform_generation(rng: random.Random) -> float:
    """The reference's "usually 1-5 minutes": uniform 60-300 s."""
    return rng.uniform(60.0, 300.0)


# lognormal, median 140 s, sigma 0.63: mean ~171 s (the uniform's is 180 s), p99 ~ 600 s (A1's 15 s sample
# took ~9.7 min), p1 ~ 32 s; clipped to 20 s - 30 min
HEAVY_MEDIAN_S = 140.0
HEAVY_SIGMA = 0.63


def heavy_tail_generation(rng: random.Random) -> float:
    return min(1800.0, max(20.0, rng.lognormvariate(math.log(HEAVY_MEDIAN_S), HEAVY_SIGMA)))


GENERATIONS: dict[str, Callable[[random.Random], float]] = {
    "uniform": uniform_generation,
    "heavy": heavy_tail_generation,
}


# ---- the clock ---------------------------------------------------------------------------------------
class SimulationOver(BaseException):
    """Raised in a process still asleep when the world is closed, so that its thread unwinds (a
    BaseException: the use cases' ``except Exception`` must not take it for a failure of theirs)."""


@dataclass(order=True)
class _Entry:
    at: float
    seq: int
    name: str = field(compare=False)
    fn: Callable[[], Any] | None = field(compare=False, default=None)  # an event: a new process
    wake: _thread.LockType | None = field(compare=False, default=None)  # a sleeper's wake-up (held)
    steps: Steps | None = field(compare=False, default=None)  # a process run as steps on the driver


# a process written as a generator: it yields the seconds it sleeps (``yield from`` a provider's
# ``*_steps`` call for a round trip), and runs on the driver's thread with no thread hand-over at all
Steps = Generator[float, None, Any]
T = TypeVar("T")


class VirtualClock:
    """``inbetween.ports.Clock`` in virtual time, with a schedule of events.

    Each event runs as its own process (a thread), as each Lambda invocation does in the cloud, but only
    one runs at any moment: the driver hands the turn to the next entry, in (time, sequence) order, and
    waits until that process sleeps or ends. ``sleep`` in a process schedules its wake-up and gives the
    turn back, so every event due before the wake-up runs (the time set to each event's) and the sleeper
    resumes at its wake-up exactly; an event's process may itself sleep. (Running events *inside* the
    sleeper's call instead would let a long sleeper, the poller's 55 s tick, freeze a short one, a
    create's round trip, for as long as it sleeps.) Each entry is popped once, under a lock: nothing runs
    twice. A worker thread of a process (the poller's ThreadPoolExecutor, with poll_concurrency 1) sleeps
    for its process, which waits on it meanwhile. On the driver's own thread (the one that made the clock)
    ``sleep(s)`` is ``run_until(now + s)``.

    An event's exception is recorded in ``errors`` (time, name, traceback). ``close`` wakes every sleeper
    left with ``SimulationOver`` and waits for their threads to end."""

    WATCHDOG_S = 60.0  # real seconds a process may run without sleeping: beyond, it is taken for a deadlock

    def __init__(self, start: float = START) -> None:
        self._now = start
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        # the turn: held while a process runs, released when it sleeps or ends. Raw locks here and for the
        # wake-ups: a hand-over is two of them, and a 5,000-job case makes a million hand-overs
        # (threading.Event and Semaphore build a Condition each time, several times the cost)
        self._turn = _thread.allocate_lock()
        self._turn.acquire()
        self._driver = threading.get_ident()
        self._threads: list[threading.Thread] = []
        self._prune_at = 64
        self._closed = False
        self.errors: list[tuple[float, str, str]] = []
        self.events_run = 0
        self.late_max_s = 0.0  # how far past its time an entry ran (only one scheduled in the past can)

    def now(self) -> float:
        return self._now

    def in_process(self) -> bool:
        """Whether the caller is a process (or its worker), whose sleeps pass virtual time; the driver's
        own reads (the harness looking at the store) take none."""
        return threading.get_ident() != self._driver

    def at(self, when: float, fn: Callable[[], Any], name: str = "") -> None:
        """Run ``fn`` at ``when`` (an instant already past: at once, never back in time)."""
        self._push(_Entry(when, next(self._seq), name or getattr(fn, "__name__", "event"), fn=fn))

    def at_steps(self, when: float, steps: Steps, name: str = "steps") -> None:
        """Run the generator ``steps`` from ``when`` as a process of its own: each value it yields is a
        sleep, with the same order as ``sleep`` in a thread (every entry due before the wake-up first,
        one at the same instant too), at no hand-over's cost. For the peers' thousands of queries."""
        self._push(_Entry(when, next(self._seq), name, steps=steps))

    def after(self, delay: float, fn: Callable[[], Any], name: str = "") -> None:
        self.at(self._now + max(0.0, delay), fn, name)

    def sleep(self, seconds: float) -> None:
        wake = self._now + max(0.0, seconds)
        if threading.get_ident() == self._driver:
            self.run_until(wake)
            return
        if self._closed:
            raise SimulationOver
        with self._lock:
            # nothing else is due before the wake-up (an entry at the same instant would run first): the
            # driver would hand the turn straight back, so the time simply moves on (most sleeps are an
            # AWS call's few milliseconds; this saves two thread switches each, and changes no order)
            if not self._heap or self._heap[0].at > wake:
                self._now = max(self._now, wake)
                return
        woken = _thread.allocate_lock()
        woken.acquire()
        self._push(_Entry(wake, next(self._seq), "wake", wake=woken))
        self._give_turn_back()
        woken.acquire()  # until the driver releases it
        if self._closed:
            raise SimulationOver

    def next_at(self) -> float | None:
        with self._lock:
            return self._heap[0].at if self._heap else None

    def run_next(self) -> bool:
        """Hand the turn to the next entry and wait for it. False when nothing is scheduled."""
        entry = self._pop(None)
        if entry is None:
            return False
        self._dispatch(entry)
        return True

    def run_until(self, when: float) -> None:
        """Run every entry due up to ``when``, then set the time to ``when`` (if not already past)."""
        while (entry := self._pop(when)) is not None:
            self._dispatch(entry)
        self._now = max(self._now, when)

    def run_until_idle(self, *, limit: float | None = None) -> None:
        """Run entries until none is left (or the next is after ``limit``)."""
        while (nxt := self.next_at()) is not None and (limit is None or nxt <= limit):
            self.run_next()

    def close(self) -> None:
        """End the world: every sleeper left raises ``SimulationOver``; their threads are joined."""
        self._closed = True
        with self._lock:
            left, self._heap = self._heap, []
        for entry in left:
            if entry.wake is not None:
                entry.wake.release()
        for thread in self._threads:
            thread.join(timeout=self.WATCHDOG_S)
        self._threads = [t for t in self._threads if t.is_alive()]

    def _push(self, entry: _Entry) -> None:
        if self._closed:
            return
        with self._lock:
            heapq.heappush(self._heap, entry)

    def _pop(self, until: float | None) -> _Entry | None:
        with self._lock:
            if not self._heap or (until is not None and self._heap[0].at > until):
                return None
            return heapq.heappop(self._heap)

    def _dispatch(self, entry: _Entry) -> None:
        if threading.get_ident() != self._driver:
            raise RuntimeError("only the driver's thread runs the schedule")
        if entry.at > self._now:
            self._now = entry.at
        else:
            self.late_max_s = max(self.late_max_s, self._now - entry.at)
        if entry.steps is not None:
            self._step(entry.name, entry.steps)
            return
        if entry.wake is not None:
            entry.wake.release()
        else:
            self.events_run += 1
            thread = threading.Thread(target=self._process, args=(entry,), name=entry.name, daemon=True)
            if len(self._threads) > self._prune_at:  # amortized: thousands may sleep at once (a burst)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._prune_at = max(64, 2 * len(self._threads))
            self._threads.append(thread)
            thread.start()
        if not self._turn.acquire(timeout=self.WATCHDOG_S):
            raise RuntimeError(f"{entry.name} at {entry.at:.3f} neither slept nor ended: a deadlock")

    def _step(self, name: str, steps: Steps) -> None:
        """Run a generator process up to a sleep that something else is due before, then schedule it."""
        try:
            while True:
                wake = self._now + max(0.0, steps.send(None))
                if self._heap and self._heap[0].at <= wake:
                    self._push(_Entry(wake, next(self._seq), name, steps=steps))
                    return
                self._now = wake  # nothing due before it: the time simply moves on, as in ``sleep``
        except StopIteration:
            return
        except Exception:  # noqa: BLE001 - recorded, as a thread process's is
            self.errors.append((self._now, name, traceback.format_exc(limit=8)))

    def _process(self, entry: _Entry) -> None:
        try:
            if entry.fn is not None:
                entry.fn()
        except SimulationOver:
            pass
        except Exception:  # noqa: BLE001 - recorded: the scenario turns it into a FAIL figure
            self.errors.append((self._now, entry.name, traceback.format_exc(limit=8)))
        finally:
            self._give_turn_back()

    def _give_turn_back(self) -> None:
        try:
            self._turn.release()
        except RuntimeError:
            # already released: only after close, when every sleeper left unwinds at once
            if not self._closed:
                raise


# ---- the provider ------------------------------------------------------------------------------------
@dataclass
class ProviderTask:
    task_id: str
    model: str
    request: CreateTaskRequest
    created: float  # when the create request reached the provider
    start: float
    end: float
    # the end of the task whose slot this one took (None: a slot nobody had used yet)
    slot_free_at: float | None
    # a slow PENDING phase: the task holds its slot from ``start`` but runs only from here (None: start)
    running_at: float | None = None
    api_key_id: str = "key-0"  # the account's API key it was created with

    def status_at(self, t: float) -> TaskStatus:
        if t < (self.start if self.running_at is None else self.running_at):
            return TaskStatus.PENDING
        if t < self.end:
            return TaskStatus.RUNNING
        return TaskStatus.SUCCEEDED


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """The account's limits for one model at the provider."""

    concurrency: int
    queue: int  # tasks held PENDING beyond the running ones; 0: a create beyond them is refused (kf2v)
    submit_per_s: float


@dataclass(frozen=True, slots=True)
class Faults:
    """What the provider does beside the generation-time draw: every ``straggler_every``-th task created
    (from a seeded offset) takes ``straggler_s``; a share of tasks sits PENDING on its slot for a while
    before running."""

    straggler_every: int = 0
    straggler_s: float = 3 * 3600.0
    slow_pending_share: float = 0.0
    slow_pending_s: tuple[float, float] = (30.0, 180.0)


class QueuedProvider:
    """``inbetween.ports.Provider``: the provider-side queue of wan2.7-i2v (see the module's doc).

    ``limits`` gives each model its own (a model not in it gets ``concurrency``/``queue``/``submit_per_s``).
    Queries and lists share the account's ``query_per_s`` in a sliding second; beyond it they are refused
    with ``Throttling.RateQuota`` (counted as ``query:Throttling.RateQuota``). ``on_created`` callbacks see
    each new task (its start and end already known)."""

    def __init__(
        self,
        clock: VirtualClock,
        *,
        seed: int | str = 0,
        generation: Callable[[random.Random], float] = uniform_generation,
        concurrency: int = 5,
        queue: int = 500,
        submit_per_s: float = 5.0,
        latency: Latency = LATENCY,
        limits: dict[str, ModelLimits] | None = None,
        faults: Faults = Faults(),
        query_per_s: float = QUERY_PER_S,
        api_keys: int = 1,
    ) -> None:
        self.clock = clock
        # the account's API keys (one submit lane each; the limits are the account's, shared by all)
        self.api_keys = tuple(f"key-{i}" for i in range(max(1, api_keys)))
        self.generation = generation
        self.concurrency = concurrency
        self.queue = queue
        self.submit_per_s = submit_per_s
        self.latency = latency
        self.limits = dict(limits or {})
        self.faults = faults
        self.query_per_s = query_per_s
        # separate streams: jitter never shifts the generation times (task k gets the same in every run)
        self._durations = random.Random(f"{seed}/generation")
        self._jitter = random.Random(f"{seed}/provider-latency")
        self._faults = random.Random(f"{seed}/faults")
        self._straggler_offset = self._faults.randrange(max(1, faults.straggler_every))
        self._queries_window: deque[float] = deque()
        self._ids = itertools.count(1)
        self._slots: dict[str, list[tuple[float, int]]] = {}  # model -> heap of (slot free at, slot no)
        self._ends: dict[str, list[float]] = {}  # model -> heap of in-flight tasks' ends
        self._window: dict[str, deque[float]] = {}  # model -> accepted creates in the last second
        self.tasks: dict[str, ProviderTask] = {}
        self._tasks_by_model: dict[str, list[ProviderTask]] = {}
        self._created_by_model: dict[str, list[float]] = {}
        self.on_created: list[Callable[[ProviderTask], None]] = []
        self.creates = 0
        self.throttled: Counter[str] = Counter()
        self.queries = 0
        self.list_calls = 0
        self.queries_by_model: Counter[str] = Counter()
        self.lists_by_model: Counter[str] = Counter()
        self.list_rows_max = 0  # the most tasks one list window held (all its pages)

    # -- the port --------------------------------------------------------------------------------------
    def key_refs(self) -> tuple[str, ...]:
        return self.api_keys

    def create_task(self, request: CreateTaskRequest, *, key_ref: str | None = None) -> TaskRef:
        return self._sleeping(self.create_task_steps(request, key_ref=key_ref))

    def get_task(self, task_id: str) -> TaskState:
        return self._sleeping(self.get_task_steps(task_id))

    # the same calls as steps (``VirtualClock.at_steps``): one code path, whichever way a process runs
    def create_task_steps(
        self, request: CreateTaskRequest, *, key_ref: str | None = None
    ) -> Generator[float, None, TaskRef]:
        up, down = self._halves(self.latency.create_s)
        late, extra = self._jitter.random(), self._jitter.uniform(*self.latency.create_tail_s)
        if late < self.latency.create_tail_share:
            up += extra
        yield up
        try:
            task = self._accept(request, key_ref or self.api_keys[0])
        except ProviderThrottled:
            yield down  # the refusal's answer takes its way back too
            raise
        yield down
        return TaskRef(task_id=task.task_id, task_status=TaskStatus.PENDING, request_id=f"req-{task.task_id}")

    def get_task_steps(self, task_id: str) -> Generator[float, None, TaskState]:
        up, down = self._halves(self.latency.query_s)
        yield up
        self.queries += 1  # a refused query counts too: it is a request, and the quota counts it
        task = self.tasks.get(task_id)
        self.queries_by_model[task.model if task else ""] += 1
        self._count_query()  # a refusal comes back at once (the bench has always modelled it so)
        state = self.state_of(task_id, self.clock.now())
        yield down
        return state

    def _sleeping(self, steps: Generator[float, None, T]) -> T:
        """Run a call's steps in the calling thread, each yielded value a ``clock.sleep``."""
        while True:
            try:
                delay = steps.send(None)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            self.clock.sleep(delay)

    def list_tasks(
        self,
        *,
        start: datetime,
        end: datetime,
        model: str,
        page_no: int = 1,
        page_size: int = 10,
        api_key_id: str | None = None,
    ) -> TaskPage:
        up, down = self._halves(self.latency.list_s)
        self.clock.sleep(up)
        self.list_calls += 1
        self.lists_by_model[model] += 1
        self._count_query()
        now = self.clock.now()
        lo, hi = start.timestamp(), end.timestamp()
        created = self._created_by_model.get(model, [])
        rows = self._tasks_by_model.get(model, [])[bisect_left(created, lo) : bisect_right(created, hi)]
        if api_key_id is not None:
            rows = [t for t in rows if t.api_key_id == api_key_id]
        self.list_rows_max = max(self.list_rows_max, len(rows))
        page = rows[(page_no - 1) * page_size : page_no * page_size]
        summaries = tuple(
            TaskSummary(
                task_id=t.task_id,
                status=t.status_at(now),
                model_name=t.model,
                gmt_create=_dt(t.created),
                start_time=_dt(t.start) if now >= t.start else None,
                end_time=_dt(t.end) if now >= t.end else None,
                api_key_id=t.api_key_id,
            )
            for t in page
        )
        self.clock.sleep(down)
        return TaskPage(
            tasks=summaries,
            total=len(rows),
            page_no=page_no,
            page_size=page_size,
            total_page=max(1, -(-len(rows) // page_size)),
        )

    def iter_tasks(
        self, *, start: datetime, end: datetime, model: str, api_key_id: str | None = None
    ) -> Iterator[TaskSummary]:
        page_no = 1
        while True:
            page = self.list_tasks(
                start=start, end=end, model=model, page_no=page_no, page_size=100, api_key_id=api_key_id
            )
            yield from page.tasks
            if page_no >= page.total_page:
                return
            page_no += 1

    def close(self) -> None:
        pass

    # -- the model -------------------------------------------------------------------------------------
    def state_of(self, task_id: str, now: float) -> TaskState:
        task = self.tasks.get(task_id)
        if task is None:
            return TaskState(task_id=task_id, status=TaskStatus.UNKNOWN, request_id="req-unknown")
        status = task.status_at(now)
        done = status is TaskStatus.SUCCEEDED
        return TaskState(
            task_id=task_id,
            status=status,
            request_id=f"req-{task_id}-{self.queries}",
            submit_time=_dt(task.created),
            scheduled_time=_dt(task.start) if now >= task.start else None,
            end_time=_dt(task.end) if done else None,
            video_url=self.video_url(task_id) if done else None,
            orig_prompt=task.request.prompt if done else None,
            actual_prompt=task.request.prompt if done else None,
            usage=Usage(
                duration=task.request.duration,
                input_video_duration=0,
                output_video_duration=task.request.duration,
                video_count=1,
                sr=720,
            )
            if done
            else None,
        )

    @staticmethod
    def video_url(task_id: str) -> str:
        return f"https://dashscope-result-bj.oss.test/{task_id}.mp4"

    def in_flight(self, model: str, now: float) -> int:
        ends = self._ends.setdefault(model, [])
        while ends and ends[0] <= now:
            heapq.heappop(ends)
        return len(ends)

    def limits_of(self, model: str) -> ModelLimits:
        return self.limits.get(model) or ModelLimits(self.concurrency, self.queue, self.submit_per_s)

    def _count_query(self) -> None:
        """The account's query quota, in a sliding second (a refused query counts as one, as it does)."""
        now = self.clock.now()
        window = self._queries_window
        while window and window[0] <= now - 1.0:
            window.popleft()
        window.append(now)
        if len(window) > self.query_per_s:
            self.throttled["query:Throttling.RateQuota"] += 1
            raise ProviderThrottled(
                "Requests rate limit exceeded", code="Throttling.RateQuota", status_code=429
            )

    def _accept(self, request: CreateTaskRequest, api_key_id: str = "key-0") -> ProviderTask:
        now = self.clock.now()
        model = request.model
        limits = self.limits_of(model)
        if self.in_flight(model, now) >= limits.concurrency + limits.queue:
            self.throttled["Throttling.AllocationQuota"] += 1
            raise ProviderThrottled(
                "Too many tasks in flight for your account",
                code="Throttling.AllocationQuota",
                status_code=429,
            )
        window = self._window.setdefault(model, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) + 1 > limits.submit_per_s:
            self.throttled["Throttling.RateQuota"] += 1
            raise ProviderThrottled(
                "Requests rate limit exceeded", code="Throttling.RateQuota", status_code=429
            )
        window.append(now)
        slots = self._slots.setdefault(model, [(-math.inf, n) for n in range(limits.concurrency)])
        free_at, slot_no = heapq.heappop(slots)
        start = max(now, free_at)
        # every draw made whatever the faults, so that task k gets the same times in every configuration
        generation = self.generation(self._durations)
        slow, pending = self._faults.random(), self._faults.uniform(*self.faults.slow_pending_s)
        every = self.faults.straggler_every
        if every and (self.creates + self._straggler_offset) % every == 0:
            generation = self.faults.straggler_s
        running_at = start + pending if slow < self.faults.slow_pending_share else None
        end = (running_at or start) + generation
        heapq.heappush(slots, (end, slot_no))
        heapq.heappush(self._ends.setdefault(model, []), end)
        task = ProviderTask(
            task_id=f"task-{next(self._ids):05d}",
            model=model,
            request=request,
            created=now,
            start=start,
            end=end,
            slot_free_at=free_at if math.isfinite(free_at) else None,
            running_at=running_at,
            api_key_id=api_key_id,
        )
        self.tasks[task.task_id] = task
        # in creation order (the clock never goes back): a list window is two bisections, not a scan
        self._tasks_by_model.setdefault(model, []).append(task)
        self._created_by_model.setdefault(model, []).append(now)
        self.creates += 1
        for hook in self.on_created:
            hook(task)
        return task

    def _halves(self, bounds: tuple[float, float]) -> tuple[float, float]:
        rtt = self._jitter.uniform(*bounds)
        return rtt / 2, rtt / 2


# ---- the job store, indexed ---------------------------------------------------------------------------
class _DueIndex(dict[str, Any]):
    """``InMemoryJobStore.due`` (key -> due item), with a heap per index partition beside it, so that
    the first due items of a partition are found in O(log n): a burst of thousands of waiting jobs
    otherwise costs a scan and a sort of all of them at every admission step. Entries a later write
    replaced or removed stay in the heap and are skipped when met (lazy deletion)."""

    def __init__(self) -> None:
        super().__init__()
        self.heaps: dict[str, list[tuple[float, str]]] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        heapq.heappush(self.heaps.setdefault(value.key, []), (value.at, key))

    def first(self, partition: str, now: float | None, prefix: str, limit: int | None) -> list[str]:
        """The keys of ``partition`` due by ``now`` (all, for None) with ``prefix``, soonest first (then
        by key), at most ``limit``: what the store's scan-and-sort answers."""
        heap = self.heaps.get(partition, [])
        taken: list[tuple[float, str]] = []
        keys: list[str] = []
        seen: set[str] = set()
        while heap and (limit is None or len(keys) < limit):
            at, key = heapq.heappop(heap)
            due = self.get(key)
            if due is None or due.key != partition or due.at != at or key in seen:
                continue  # replaced, removed, or a second copy of the same write
            seen.add(key)
            taken.append((at, key))
            if now is not None and at > now:
                break
            if key.startswith(prefix):
                keys.append(key)
        for entry in taken:
            heapq.heappush(heap, entry)
        return keys


class IndexedJobStore(InMemoryJobStore):
    """The in-memory job store of the tests, answering ``due_jobs`` and ``next_due_at`` from an index
    instead of a scan (the same answers: the bench's tests hold it to the scan)."""

    def __init__(self, clock: Any) -> None:
        super().__init__(clock)
        self.due = _DueIndex()

    def due_jobs(self, kind: DueKind, now: float, *, model: str | None = None, limit: int = 100) -> list[Job]:
        with self._lock:
            keys = self.due.first(kind.key(model), now, "job#", limit)
            return [Job.from_item(self.jobs[k.removeprefix("job#")]) for k in keys]  # from_item copies

    def next_due_at(self, kind: DueKind) -> float | None:
        with self._lock:
            keys = self.due.first(kind.key(), None, "", 1)
            return self.due[keys[0]].at if keys else None


# ---- the hand-overs and the notifications ------------------------------------------------------------
class VirtualQueues:
    """``inbetween.ports.Queues``: each SQS message runs its consumer's use case after a delivery delay
    (admit_waiting -> ``admission.admit``, complete_job -> ``completion.complete``). Webhook deliveries and
    drop re-checks are only counted: the scenarios have no webhook URL and no intake."""

    def __init__(
        self, clock: VirtualClock, rng: random.Random, latency: Latency = LATENCY, aws: AwsCalls | None = None
    ) -> None:
        self.clock = clock
        self.rng = rng
        self.latency = latency
        self.aws = aws
        self.deps: Deps | None = None
        self.sent: Counter[str] = Counter()

    def _later(self, name: str, fn: Callable[[Deps], Any]) -> None:
        self.sent[name] += 1
        if self.aws is not None:
            self.aws.call("sqs", "SendMessage")
        deps = self.deps
        if deps is None:
            raise RuntimeError("VirtualQueues.deps is set when the world is built")
        self.clock.after(self.rng.uniform(*self.latency.handover_s), lambda: fn(deps), name)

    def recheck_drop_later(self, job_name: str, delay_s: int) -> None:
        self.sent["recheck_drop"] += 1

    def admit_waiting(self, model: str, *, lane: int = 0) -> None:
        self._later("admit_waiting", lambda deps: admission.admit(deps, model, lane=lane))

    def complete_job(self, job_id: str) -> None:
        self._later("complete_job", lambda deps: completion.complete(deps, job_id))

    def deliver_webhook(self, delivery_id: str) -> None:
        self.sent["deliver_webhook"] += 1


class TimedNotifier(RecordingNotifier):
    """The notifications published, each with the virtual time it was published at."""

    def __init__(self, clock: VirtualClock, aws: AwsCalls | None = None) -> None:
        super().__init__()
        self.clock = clock
        self.aws = aws
        self.times: list[float] = []

    def publish(self, notification: Notification) -> None:
        if self.aws is not None:
            self.aws.call("sns", "Publish")
        super().publish(notification)
        self.times.append(self.clock.now())


class AwsCalls:
    """Our code's AWS requests: each counted by service and operation, and, in a process, taking its
    modelled round trip (``AwsLatency``) before it acts (one process runs at a time, so each call is still
    atomic, as DynamoDB's conditional writes are)."""

    def __init__(self, clock: VirtualClock, seed: int | str, latency: AwsLatency = AWS_LATENCY) -> None:
        self.clock = clock
        self.latency = latency
        self.rng = random.Random(f"{seed}/aws")
        self.counts: Counter[str] = Counter()

    def call(self, service: str, operation: str) -> None:
        self.counts[f"{service}.{operation}"] += 1
        if self.clock.in_process():
            self.clock.sleep(self.rng.uniform(*getattr(self.latency, f"{service}_s")))

    def total(self) -> int:
        return sum(self.counts.values())


class TimedPort:
    """A port (the job store on DynamoDB, the blobs on S3) whose every method is one AWS request of
    ``service``; ``local`` methods make none (a presigned URL is signed locally)."""

    def __init__(self, inner: Any, aws: AwsCalls, service: str, local: tuple[str, ...] = ()) -> None:
        self._inner = inner
        self._aws = aws
        self._service = service
        self._local = frozenset(local)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name.startswith("_") or name in self._local or not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            self._aws.call(self._service, name)
            return attr(*args, **kwargs)

        return timed


# ---- a scenario --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Family:
    """One model's jobs in a scenario, with the account's limits for it."""

    model: str
    jobs: int
    concurrency: int
    provider_queue: int = 0  # 0: none (kf2v): a create beyond the running tasks is refused
    listed_queue: int | None = None  # what list-quotas says of the queue (None: it says nothing)
    submit_per_s: float = 2.0
    resolution: str = "720P"


@dataclass(frozen=True, slots=True)
class Scenario:
    jobs: int = 30
    seed: int = 1
    backlog: int | None = 0  # PROVIDER_BACKLOG (None: "auto", the product's default)
    push: bool = False  # PUSH_ENABLED (the ProviderEventsFunction receives task-finished events)
    generation: str = "uniform"  # a key of GENERATIONS
    arrivals: str = "burst"  # "burst": every drop at t0; "poisson": a Poisson stream
    mean_gap_s: float = 40.0  # the Poisson stream's mean time between drops
    concurrency: int = 5  # the account's (live quota and provider)
    provider_queue: int = 500  # what the provider holds PENDING beyond the running tasks
    listed_queue: int | None = 500  # what list-quotas says of it (admission caps the backlog with it)
    submit_per_s: float = 5.0
    first_drop_s: float = 7.0  # t0, after START (the poller runs on minute boundaries)
    horizon_s: float = 7 * 24 * 3600.0  # a scenario not done by then is a failure
    model: str = MODEL  # the first family's (``jobs``, ``concurrency``... are its figures)
    also: tuple[Family, ...] = ()  # other model families dropped at the same time
    push_loss: float = 0.0  # the share of task-finished events the provider never delivers
    faults: Faults = Faults()
    query_per_s: float = QUERY_PER_S
    env: tuple[tuple[str, str], ...] = ()  # settings beside the defaults (e.g. POLL_INTERVAL_SECONDS)
    api_keys: int = 1  # the account's API keys in the deployment's secret (a submit lane each)

    @property
    def label(self) -> str:
        return (
            f"{self.jobs} jobs {self.arrivals}/{self.generation}/{'push' if self.push else 'poll'}"
            f"/backlog {'auto' if self.backlog is None else self.backlog}/seed {self.seed}"
        )

    @property
    def families(self) -> tuple[Family, ...]:
        first = Family(
            self.model,
            self.jobs,
            self.concurrency,
            self.provider_queue,
            self.listed_queue,
            self.submit_per_s,
        )
        return (first, *self.also)

    @property
    def total_jobs(self) -> int:
        return sum(f.jobs for f in self.families)


@dataclass
class Run:
    """What one scenario did: the raw facts the figures are computed from."""

    scenario: Scenario
    arrivals: dict[str, float]  # job id -> drop time
    notified: dict[str, list[float]]  # job id -> notification times (one expected)
    statuses: dict[str, str]  # job id -> final status
    task_of: dict[str, str | None]  # job id -> its task id
    tasks: list[ProviderTask]
    creates: int
    throttled: dict[str, int]
    queries: int
    list_calls: int
    sent: dict[str, int]
    errors: list[tuple[float, str, str]]
    finished: bool
    ended_at: float
    late_max_s: float
    events_run: int
    model_of: dict[str, str] = field(default_factory=dict)  # job id -> its model
    queries_by_model: dict[str, int] = field(default_factory=dict)
    lists_by_model: dict[str, int] = field(default_factory=dict)
    aws_calls: dict[str, int] = field(default_factory=dict)  # "service.Operation" -> requests
    events_lost: int = 0
    list_rows_max: int = 0


ProviderFactory = Callable[[VirtualClock, Scenario], QueuedProvider]


def queued_provider(clock: VirtualClock, sc: Scenario) -> QueuedProvider:
    return QueuedProvider(
        clock,
        seed=sc.seed,
        generation=GENERATIONS[sc.generation],
        concurrency=sc.concurrency,
        queue=sc.provider_queue,
        submit_per_s=sc.submit_per_s,
        limits={f.model: ModelLimits(f.concurrency, f.provider_queue, f.submit_per_s) for f in sc.families},
        faults=sc.faults,
        query_per_s=sc.query_per_s,
        api_keys=sc.api_keys,
    )


def run_scenario(sc: Scenario, provider_factory: ProviderFactory = queued_provider) -> Run:
    """The pipeline's use cases through one scenario, until every job is notified (or the horizon)."""
    with _no_metrics():
        return _run(sc, provider_factory)


@contextmanager
def _no_metrics() -> Iterator[None]:
    """Powertools prints a metric set once a metric has 100 values, even with POWERTOOLS_METRICS_DISABLED:
    the use cases' metrics are dropped during a scenario (they are not what is measured)."""
    metrics.clear_metrics()
    metrics.add_metric = lambda *args, **kwargs: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        del metrics.add_metric
        metrics.clear_metrics()


def _run(sc: Scenario, provider_factory: ProviderFactory) -> Run:
    clock = VirtualClock(START)
    env = dict(sc.env)
    settings = test_settings(
        default_model=MODEL,
        default_resolution="720P",
        provider_region=REGION,
        provider_backlog=sc.backlog,
        push_enabled=sc.push,
        push_secret_name="push" if sc.push else "",
        default_webhook_url="",
        **(
            {"poll_interval_s": float(env["POLL_INTERVAL_SECONDS"])} if "POLL_INTERVAL_SECONDS" in env else {}
        ),
    )
    timing = Timing(poll_concurrency=1)  # the poller's one worker sleeps for its tick (see VirtualClock)
    provider = provider_factory(clock, sc)
    aws = AwsCalls(clock, sc.seed)
    queues = VirtualQueues(clock, random.Random(f"{sc.seed}/handover"), aws=aws)
    notifier = TimedNotifier(clock, aws)
    quotas = FixedQuotas()
    for family in sc.families:
        quotas.set(
            provider_model_name(family.model, REGION),
            concurrency=family.concurrency,
            submit_per_s=family.submit_per_s,
            queue=family.listed_queue,
        )
    videos = InMemoryVideos()
    store = IndexedJobStore(clock)
    deps = Deps(
        settings=settings,
        timing=timing,
        store=TimedPort(store, aws, "dynamodb"),  # type: ignore[arg-type]
        blobs=TimedPort(InMemoryBlobs(clock), aws, "s3", local=("presign_get",)),  # type: ignore[arg-type]
        queues=queues,
        notifier=notifier,
        provider=provider,
        quotas=quotas,
        videos=videos,
        webhooks=RecordingWebhooks(),
        clock=clock,
        push_secret=lambda: PUSH_SECRET,
    )
    queues.deps = deps
    video = tiny_mp4()
    push_rng = random.Random(f"{sc.seed}/push")

    lost: list[str] = []

    def on_created(task: ProviderTask) -> None:
        videos.videos[provider.video_url(task.task_id)] = video
        if sc.push:
            delay, dice = push_rng.uniform(*LATENCY.push_s), push_rng.random()  # both drawn: aligned streams
            if dice < sc.push_loss:
                lost.append(task.task_id)  # never delivered: the poller's overdue check must find it
            else:
                clock.at(task.end + delay, lambda: _deliver_event(deps, task), "push_event")

    provider.on_created.append(on_created)

    # drops: as intake does once a folder is complete (a WAITING job due for admission since it arrived,
    # then admission in the same invocation); intake's own reading and validation are not what is measured
    arrivals: dict[str, float] = {}
    model_of: dict[str, str] = {}
    t0 = START + sc.first_drop_s
    for index, family in enumerate(sc.families):
        arrival_rng = random.Random(f"{sc.seed}/arrivals" + (f"/{family.model}" if index else ""))
        at = t0
        for n in range(family.jobs):
            name = f"shot-{n:04d}" if index == 0 else f"{family.model}-{n:04d}"
            model_of[f"{name}/run1"] = family.model
            clock.at(at, _dropper(deps, name, arrivals, family), "drop")
            if sc.arrivals == "poisson":
                at += arrival_rng.expovariate(1.0 / sc.mean_gap_s)

    # the scheduled poller, on minute boundaries: each tick schedules the next before it works
    def poll(when: float) -> None:
        clock.at(when + LATENCY.poll_every_s, lambda: poll(when + LATENCY.poll_every_s), "poll_tick")
        polling.tick(deps, budget_s=LATENCY.poll_budget_s)

    clock.at(START, lambda: poll(START), "poll_tick")

    horizon = START + sc.horizon_s
    finished = False
    try:
        while clock.now() < horizon:
            if len(notifier.times) >= sc.total_jobs and _all_notified(store, arrivals, sc.total_jobs):
                finished = True
                break
            if not clock.run_next():
                break
        finished = finished or _all_notified(store, arrivals, sc.total_jobs)
        notified: dict[str, list[float]] = {}
        for note, when in zip(notifier.published, notifier.times, strict=True):
            notified.setdefault(str(note.data.get("job_id", note.job_name)), []).append(when)
        statuses, task_of = {}, {}
        for job_id in arrivals:
            job = store.get_job(job_id)
            statuses[job_id] = job.status.value if job else "MISSING"
            task_of[job_id] = job.task_id if job else None
        return Run(
            scenario=sc,
            arrivals=dict(arrivals),
            notified=notified,
            statuses=statuses,
            task_of=task_of,
            tasks=sorted(provider.tasks.values(), key=lambda t: (t.created, t.task_id)),
            creates=provider.creates,
            throttled=dict(provider.throttled),
            queries=provider.queries,
            list_calls=provider.list_calls,
            sent=dict(queues.sent),
            errors=list(clock.errors),
            finished=finished,
            ended_at=clock.now(),
            late_max_s=clock.late_max_s,
            events_run=clock.events_run,
            model_of=model_of,
            queries_by_model=dict(provider.queries_by_model),
            lists_by_model=dict(provider.lists_by_model),
            aws_calls=dict(aws.counts),
            events_lost=len(lost),
            list_rows_max=provider.list_rows_max,
        )
    finally:
        clock.close()  # the sleepers left (a tick mid-budget) unwind; the facts above are already taken


def _all_notified(store: InMemoryJobStore, arrivals: dict[str, float], jobs: int) -> bool:
    if len(arrivals) < jobs:
        return False
    for job_id in arrivals:
        job = store.get_job(job_id)
        if job is None or job.notified_at is None:
            return False
    return True


def _dropper(
    deps: Deps, name: str, arrivals: dict[str, float], family: Family | None = None
) -> Callable[[], None]:
    model = family.model if family else MODEL
    resolution = family.resolution if family else "720P"

    def drop() -> None:
        now = deps.clock.now()
        job = Job(
            job_id=f"{name}/run1",
            job_name=name,
            run_id="run1",
            status=JobStatus.WAITING,
            spec=JobSpec(model=model, resolution=resolution, prompt="a slow pan across the bay", duration=5),
            inputs={
                role: InputObject(key=f"inbox/{name}/{role}.png", etag=f"etag-{name}-{role}", size=100_000)
                for role in ("first", "last")
            },
            created_at=now,
            updated_at=now,
            expected_size=(1280, 720),
        )
        arrivals[job.job_id] = now
        if deps.store.add_job(job, due=(DueKind.ADMIT, now)):
            admission.admit(deps, model)

    return drop


def _event_key_prefix(model: str) -> str:
    spec = model_spec(model)
    return spec.event_key_prefix if spec else "apikey:v1:aigc:video-generation:video-synthesis:"


def _deliver_event(deps: Deps, task: ProviderTask) -> None:
    """The provider's task-finished event, as EventBridge posts it to the ProviderEventsFunction's URL."""
    body = {
        "specversion": "1.0",
        "id": f"evt-{task.task_id}",
        "source": push.EVENT_SOURCE,
        "type": push.EVENT_TYPE,
        "aliyunregionid": REGION,
        "time": _dt(task.end).isoformat(),
        "data": {
            "task_id": task.task_id,
            "task_status": "SUCCEEDED",
            "user_api_unique_key": _event_key_prefix(task.model) + task.model,
            "region": REGION,
            "end_time": _dt(task.end).isoformat(),
        },
    }
    request = push.HttpRequest(
        method="POST",
        headers={push.TOKEN_HEADER: PUSH_SECRET, "content-type": "application/json"},
        query={},
        body=json.dumps(body).encode(),
    )
    response = push.handle_request(deps, request)
    if response.status != 200:
        raise RuntimeError(f"the push function answered {response.status}: {response.outcome}")


__all__ = [
    "AWS_LATENCY",
    "GENERATIONS",
    "IndexedJobStore",
    "LATENCY",
    "AwsCalls",
    "AwsLatency",
    "Family",
    "Faults",
    "Latency",
    "ModelLimits",
    "TimedPort",
    "ProviderTask",
    "QueuedProvider",
    "Run",
    "SimulationOver",
    "Scenario",
    "TimedNotifier",
    "VirtualClock",
    "VirtualQueues",
    "heavy_tail_generation",
    "queued_provider",
    "run_scenario",
    "tiny_mp4",
    "uniform_generation",
]
