"""The peers every traffic figure sits beside, at the same quota, on the same virtual provider and seed.

- ``sdk_loop``: the SDK's own ``VideoSynthesis.call`` (create, then its built-in wait loop: a query after
  1, 1, 2, 2, 2, 4, 4, 4, then every 5 s) run as Q parallel threads, each taking the next job when its
  call returns: the best a script can do at quota Q. The real ``dashscope`` package runs unchanged; two
  things are swapped under it, for the length of the run: its ``time`` module (``base_api.time``) for
  the virtual clock, so that its ``time.sleep(n)`` lasts n virtual seconds, and the transport
  (``requests``' ``HTTPAdapter.send``) for the virtual provider, which answers the SDK's create and task
  requests as DashScope's HTTP API does (the same JSON shapes, 429 with the Throttling codes). A refused
  create is tried again a second later; a wait ended by a refused query is resumed 5 s later with
  ``VideoSynthesis.wait`` on the same task (a script that gave up would lose the paid task).
- ``sdk_model``: the same loop with the SDK's wait schedule written out from its source
  (``dashscope/client/base_api.py``, ``BaseAsyncApi.wait``: the interval doubles every third query from
  1 s up to 5 s; a refused query ends the wait), for the 5,000-job cases, where the real package's own CPU
  (its per-call thread pool and response parsing) would take most of the bench's budget. A test holds it
  to the real SDK: the same queries, creates and times on the same scenario.
- ``fixed_poller``: a script that keeps Q tasks in flight and queries each one every 15 s from its
  create (the reference's advice), creates spaced 10 % above the published rate.
- ``list_poller``: a script that keeps Q tasks in flight and every 15 s lists the window of its tasks
  (every page, 100 a page), then queries each task the list shows finished for its video URL.

A peer's "notification" is the moment it knows the video URL (the answer that said SUCCEEDED): it does
no AWS work. Its figures are computed by the same code as the pipeline's (``bench.traffic.measure``).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from inbetween.domain.catalog import provider_model_name
from inbetween.domain.models import JobSpec
from inbetween.errors import ProviderThrottled
from inbetween.provider.models import CreateTaskRequest

from bench.virtual import REGION, START, QueuedProvider, Run, Scenario, VirtualClock, queued_provider

FIXED_INTERVAL_S = 15.0
LIST_INTERVAL_S = 15.0
RETRY_AFTER_REFUSAL_S = 1.0  # a refused create: asked again a second later
# a refused query: the script waits the SDK's longest interval before it queries again (resuming at once
# would turn the account's query quota into a storm of refusals)
RESUME_AFTER_REFUSED_QUERY_S = 5.0
API_KEY = "sk-virtual-peer"
PEERS = ("sdk_loop", "sdk_model", "fixed_poller", "list_poller")


class _Facts:
    """What a peer did, as ``bench.virtual.Run`` holds it for the pipeline."""

    def __init__(self, sc: Scenario) -> None:
        self.arrivals: dict[str, float] = {}
        self.notified: dict[str, list[float]] = {}
        self.task_of: dict[str, str | None] = {}
        self.model_of: dict[str, str] = {}
        t0 = START + sc.first_drop_s
        for n in range(sc.jobs):  # a burst: every job there at t0 (peers run the burst workloads only)
            job_id = f"shot-{n:04d}/run1"
            self.arrivals[job_id] = t0
            self.model_of[job_id] = sc.model
        self.waiting = deque(self.arrivals)

    def learned(self, job_id: str, task_id: str, at: float) -> None:
        self.task_of[job_id] = task_id
        self.notified.setdefault(job_id, []).append(at)

    def run(self, sc: Scenario, clock: VirtualClock, provider: QueuedProvider, finished: bool) -> Run:
        return Run(
            scenario=sc,
            arrivals=dict(self.arrivals),
            notified=dict(self.notified),
            statuses={j: ("STORED" if j in self.notified else "MISSING") for j in self.arrivals},
            task_of={j: self.task_of.get(j) for j in self.arrivals},
            tasks=sorted(provider.tasks.values(), key=lambda t: (t.created, t.task_id)),
            creates=provider.creates,
            throttled=dict(provider.throttled),
            queries=provider.queries,
            list_calls=provider.list_calls,
            sent={},
            errors=list(clock.errors),
            finished=finished,
            ended_at=clock.now(),
            late_max_s=clock.late_max_s,
            events_run=clock.events_run,
            model_of=dict(self.model_of),
            queries_by_model=dict(provider.queries_by_model),
            lists_by_model=dict(provider.lists_by_model),
            list_rows_max=provider.list_rows_max,
        )


def _request(model: str, first: str, last: str) -> CreateTaskRequest:
    spec = JobSpec(model=model, resolution="720P", prompt="a slow pan across the bay", duration=5)
    return CreateTaskRequest.for_spec(spec, region=REGION, media={"first": first, "last": last})


def run_peer(name: str, sc: Scenario) -> Run:
    """One peer through the scenario's burst, until it knows every video URL (or the horizon)."""
    clock = VirtualClock(START)
    provider = queued_provider(clock, sc)
    facts = _Facts(sc)
    workers = {
        "sdk_loop": _sdk_loop,
        "sdk_model": _sdk_model,
        "fixed_poller": _fixed_poller,
        "list_poller": _list_poller,
    }
    try:
        with _sdk_in_virtual_time(clock, provider) if name == "sdk_loop" else _nothing():
            workers[name](clock, provider, sc, facts)
            clock.run_until_idle(limit=START + sc.horizon_s)
        finished = len(facts.notified) == sc.jobs
        return facts.run(sc, clock, provider, finished)
    finally:
        clock.close()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# ---- the SDK loop ---------------------------------------------------------------------------------------
def _sdk_loop(clock: VirtualClock, provider: QueuedProvider, sc: Scenario, facts: _Facts) -> None:
    from dashscope import VideoSynthesis
    from dashscope.common.error import InvalidTask

    created = _CREATED  # thread -> the task its current call created (the transport notes it)
    t0 = START + sc.first_drop_s

    def call(name: str) -> Any:
        """``VideoSynthesis.call``; None when its create was refused (the SDK then raises InvalidTask, as
        its wait is handed the failed create)."""
        try:
            return VideoSynthesis.call(**_sdk_args(sc.model, name))
        except InvalidTask:
            return None

    def thread() -> None:
        me = threading.get_ident()
        while facts.waiting:
            job_id = facts.waiting.popleft()
            name = job_id.split("/")[0]
            created[me] = None
            rsp = call(name)
            while (
                rsp is None or rsp.status_code != 200 or rsp.output.task_status not in ("SUCCEEDED", "FAILED")
            ):
                task_id = created.get(me)
                if task_id is None:  # the create was refused: nothing paid for, ask again
                    clock.sleep(RETRY_AFTER_REFUSAL_S)
                    rsp = call(name)
                else:  # a query was refused mid-wait: resume waiting on the same task
                    clock.sleep(RESUME_AFTER_REFUSED_QUERY_S)
                    rsp = VideoSynthesis.wait(task_id)
            facts.learned(job_id, rsp.output.task_id, clock.now())

    for _ in range(sc.concurrency):
        clock.at(t0, thread, "sdk_thread")


def _sdk_model(clock: VirtualClock, provider: QueuedProvider, sc: Scenario, facts: _Facts) -> None:
    """``_sdk_loop`` without the package: its create, then ``BaseAsyncApi.wait``'s schedule. Each of the
    Q threads is a generator process (``VirtualClock.at_steps``): the same requests at the same instants
    as threads would make them, without a thread hand-over for each of its hundreds of thousands of sleeps."""
    t0 = START + sc.first_drop_s

    def wait(task_id: str) -> Generator[float, None, bool]:
        """True once the task ended; False when a query was refused (the SDK's wait returns then)."""
        wait_s, step = 1.0, 0
        while True:
            step += 1
            if wait_s < 5 and step % 3 == 0:
                wait_s = min(wait_s * 2, 5.0)
            try:
                state = yield from provider.get_task_steps(task_id)
            except ProviderThrottled:
                return False
            if state.status.is_terminal:
                return True
            yield wait_s

    def thread() -> Generator[float, None, None]:
        while facts.waiting:
            job_id = facts.waiting.popleft()
            name = job_id.split("/")[0]
            request = _request(sc.model, f"https://frames.test/{name}/first.png", "https://frames.test/l.png")
            while True:
                try:
                    task_id = (yield from provider.create_task_steps(request)).task_id
                    break
                except ProviderThrottled:
                    yield RETRY_AFTER_REFUSAL_S
            while not (yield from wait(task_id)):
                yield RESUME_AFTER_REFUSED_QUERY_S
            facts.learned(job_id, task_id, clock.now())

    for _ in range(sc.concurrency):
        clock.at_steps(t0, thread(), "sdk_thread")


def _sdk_args(model: str, name: str) -> dict[str, Any]:
    first, last = f"https://frames.test/{name}/first.png", f"https://frames.test/{name}/last.png"
    args: dict[str, Any] = {"model": model, "prompt": "a slow pan across the bay", "resolution": "720P"}
    if model.startswith("wan2.7"):
        args.update(
            duration=5, media=[{"type": "first_frame", "url": first}, {"type": "last_frame", "url": last}]
        )
    else:
        args.update(first_frame_url=first, last_frame_url=last)
    return args


# thread -> the task the SDK call running on it created (None: not yet, or refused)
_CREATED: dict[int, str | None] = {}


class _VirtualTime:
    """Stands in for the ``time`` module inside ``dashscope.client.base_api``."""

    def __init__(self, clock: VirtualClock, real: Any) -> None:
        self._clock, self._real = clock, real

    def time(self) -> float:
        return self._clock.now()

    def sleep(self, seconds: float) -> None:
        self._clock.sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@contextmanager
def _sdk_in_virtual_time(clock: VirtualClock, provider: QueuedProvider) -> Iterator[None]:
    """The real SDK, its clock and transport the virtual ones, for the length of the block."""
    import dashscope
    import requests
    from dashscope.client import base_api
    from requests.adapters import HTTPAdapter
    from requests.structures import CaseInsensitiveDict

    def answer(request: Any) -> tuple[int, dict[str, Any]]:
        path = urlparse(request.url).path
        if request.method == "POST" and path.endswith("/video-synthesis"):
            body = json.loads(request.body)
            inputs = body["input"]
            media = {m["type"]: m["url"] for m in inputs.get("media", [])}
            first = inputs.get("first_frame_url") or media.get("first_frame", "")
            last = inputs.get("last_frame_url") or media.get("last_frame", "")
            try:
                ref = provider.create_task(_request(body["model"], first, last))
            except ProviderThrottled as exc:
                return 429, {"request_id": "req-refused", "code": exc.code, "message": exc.message}
            _CREATED[threading.get_ident()] = ref.task_id
            return 200, {
                "request_id": ref.request_id,
                "output": {"task_id": ref.task_id, "task_status": "PENDING"},
            }
        if request.method == "GET" and "/tasks/" in path:
            task_id = path.rsplit("/", 1)[-1]
            try:
                state = provider.get_task(task_id)
            except ProviderThrottled as exc:
                return 429, {"request_id": "req-refused", "code": exc.code, "message": exc.message}
            output: dict[str, Any] = {"task_id": task_id, "task_status": state.status.value}
            if state.video_url:
                output["video_url"] = state.video_url
            return 200, {"request_id": state.request_id, "output": output}
        return 404, {"request_id": "req-404", "code": "NotFound", "message": f"{request.method} {path}"}

    def send(self: HTTPAdapter, request: Any, **_: Any) -> requests.Response:
        status, body = answer(request)
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict({"content-type": "application/json"})
        response.url, response.request, response.encoding = request.url, request, "utf-8"
        response._content = json.dumps(body).encode()
        return response

    real_time, real_send, real_key = base_api.time, HTTPAdapter.send, dashscope.api_key
    base_api.time = _VirtualTime(clock, real_time)
    HTTPAdapter.send = send  # type: ignore[method-assign]
    dashscope.api_key = API_KEY
    _CREATED.clear()
    try:
        yield
    finally:
        base_api.time, dashscope.api_key = real_time, real_key
        HTTPAdapter.send = real_send  # type: ignore[method-assign]


# ---- the scripts ----------------------------------------------------------------------------------------
class _Creator:
    """A script's creates: spaced 10 % above the published rate, a refused one tried again a second later."""

    def __init__(self, clock: VirtualClock, provider: QueuedProvider, sc: Scenario) -> None:
        self.clock, self.provider, self.sc = clock, provider, sc
        self.gap = 1.1 / sc.submit_per_s
        self.next_at = 0.0

    def create(self, job_id: str) -> str:
        name = job_id.split("/")[0]
        while True:
            self.clock.sleep(max(0.0, self.next_at - self.clock.now()))
            self.next_at = self.clock.now() + self.gap
            request = _request(
                self.sc.model, f"https://frames.test/{name}/first.png", "https://frames.test/l.png"
            )
            try:
                return self.provider.create_task(request).task_id
            except ProviderThrottled:
                self.clock.sleep(RETRY_AFTER_REFUSAL_S)


def _fixed_poller(clock: VirtualClock, provider: QueuedProvider, sc: Scenario, facts: _Facts) -> None:
    creator = _Creator(clock, provider, sc)

    def script() -> None:
        active: dict[str, tuple[str, float]] = {}  # task -> (job, next query at)
        while facts.waiting or active:
            while facts.waiting and len(active) < sc.concurrency:
                job_id = facts.waiting.popleft()
                active[creator.create(job_id)] = (job_id, clock.now() + FIXED_INTERVAL_S)
            task_id = min(active, key=lambda t: active[t][1])
            job_id, at = active[task_id]
            clock.sleep(max(0.0, at - clock.now()))
            try:
                state = provider.get_task(task_id)
            except ProviderThrottled:
                active[task_id] = (job_id, clock.now() + RESUME_AFTER_REFUSED_QUERY_S)
                continue
            if state.status.is_terminal:
                facts.learned(job_id, task_id, clock.now())
                del active[task_id]
            else:
                active[task_id] = (job_id, clock.now() + FIXED_INTERVAL_S)

    clock.at(START + sc.first_drop_s, script, "fixed_poller")


def _list_poller(clock: VirtualClock, provider: QueuedProvider, sc: Scenario, facts: _Facts) -> None:
    from datetime import UTC, datetime

    creator = _Creator(clock, provider, sc)
    model = provider_model_name(sc.model, REGION)

    def script() -> None:
        active: dict[str, tuple[str, float]] = {}  # task -> (job, created at)
        next_list = clock.now() + LIST_INTERVAL_S
        while facts.waiting or active:
            while facts.waiting and len(active) < sc.concurrency:
                job_id = facts.waiting.popleft()
                active[creator.create(job_id)] = (job_id, clock.now())
            clock.sleep(max(0.0, next_list - clock.now()))
            next_list = clock.now() + LIST_INTERVAL_S
            oldest = min(created for _, created in active.values())
            start = datetime.fromtimestamp(oldest - 60.0, UTC)
            end = datetime.fromtimestamp(clock.now() + 60.0, UTC)
            try:
                finished = [t.task_id for t in provider.iter_tasks(start=start, end=end, model=model)
                            if t.task_id in active and t.status.is_terminal]  # fmt: skip
            except ProviderThrottled:
                continue
            for task_id in finished:
                try:
                    state = provider.get_task(task_id)  # the list gives no video URL
                except ProviderThrottled:
                    break
                if state.status.is_terminal:
                    facts.learned(active.pop(task_id)[0], task_id, clock.now())

    clock.at(START + sc.first_drop_s, script, "list_poller")


PEER_RUNNERS: dict[str, Callable[[Scenario], Run]] = {
    name: (lambda sc, name=name: run_peer(name, sc)) for name in PEERS
}

__all__ = ["PEERS", "PEER_RUNNERS", "run_peer"]
