"""Fault injection by wrapping adapters: ports that die or slow down at chosen points, by seeded dice.

Nothing of ``inbetween`` is patched: a wrapper stands in for one port (``inbetween.ports``) and passes
everything else through to the adapter it wraps. Put wrappers in place with ``dataclasses.replace``
on a ``Deps``; in the local stack through ``StackOptions(wrap_deps=...)``, which applies them once to the
deps every function uses::

    dice = FaultDice(seed)
    LocalStack(wrap_deps=lambda deps: dataclasses.replace(
        deps,
        store=CrashingStore(deps.store, dice, task_not_recorded=0.08, stored_not_notified=0.12),
        blobs=SlowBlobs(deps.blobs, dice, probability=0.15, seconds=3.5),
    ))

A crash is ``FunctionCrashed`` (a ``BaseException``): the handler's own ``except Exception`` blocks let it
through and the local runtime treats it as the Lambda process dying there (the batch comes back, the
tick is lost). Each fault is drawn from its own seeded stream and counted in ``FaultDice.injected``
under its name (the constants below).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from inbetween.domain.models import JobStatus, StoredVideo

from inbetween_local.stack.runtime import FunctionCrashed

__all__ = [
    "SLOW_COMPLETION",
    "STORED_NOT_NOTIFIED",
    "TASK_NOT_RECORDED",
    "CrashingStore",
    "Dice",
    "FaultDice",
    "FunctionCrashed",
    "SlowBlobs",
]

TASK_NOT_RECORDED = "crash: task created, not recorded"
STORED_NOT_NOTIFIED = "crash: video stored, not notified"
SLOW_COMPLETION = "slow completion (> visibility timeout)"


class Dice(Protocol):
    def chance(self, fault: str, probability: float) -> bool:
        """True (and counted as injected) with ``probability``."""
        ...


class FaultDice:
    """Seeded, thread-safe coin flips, one stream per fault, and counters of what was injected."""

    def __init__(self, seed: int):
        self._seed = seed
        self._streams: dict[str, random.Random] = {}
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def chance(self, fault: str, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._lock:
            rng = self._streams.setdefault(fault, random.Random(f"{self._seed}/{fault}"))  # noqa: S311 - not crypto
            hit = rng.random() < probability
            if hit:
                self.injected[fault] += 1
            return hit

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.injected[what] += n


class _Forwarding:
    """Passes every attribute it does not define itself through to the wrapped adapter."""

    def __init__(self, inner: Any):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CrashingStore(_Forwarding):
    """A ``JobStore`` that dies in two crash windows of the pipeline, by the dice.

    * ``task_not_recorded``: in ``record_task``, before it writes. ``admission.record_task`` runs once the
      provider has accepted the create; it writes the task's owner record (``task#``) and then moves the
      job SUBMITTING -> SUBMITTED. Dying before the owner record is the window that costs the most:
      a provider task that no record names, which reconciliation must find in the provider's task list
      and adopt ("orphan task adopted"), never create again. (Dying between the owner record and the
      job's move would leave a task reconciliation finds by its record: "recorded task adopted".)
    * ``stored_not_notified``: in ``claim_notification`` of a STORED job not yet notified, before the
      claim: the video is stored and the job final, nobody told; the notify due item (the poller) or a
      redelivered completion message must notify it, once.
    """

    def __init__(
        self, inner: Any, dice: Dice, *, task_not_recorded: float = 0.0, stored_not_notified: float = 0.0
    ):
        super().__init__(inner)
        self._dice = dice
        self._task_not_recorded = task_not_recorded
        self._stored_not_notified = stored_not_notified

    def record_task(self, task_id: str, job_id: str) -> None:
        if self._dice.chance(TASK_NOT_RECORDED, self._task_not_recorded):
            raise FunctionCrashed(
                f"injected: died after the provider accepted task {task_id} for job {job_id}, before recording it"
            )
        self.inner.record_task(task_id, job_id)

    def claim_notification(self, job_id: str, *, now: float, until: float) -> bool:
        if self._stored_not_notified > 0:
            job = self.inner.get_job(job_id)
            if (
                job is not None
                and job.status is JobStatus.STORED
                and job.notified_at is None
                and self._dice.chance(STORED_NOT_NOTIFIED, self._stored_not_notified)
            ):
                raise FunctionCrashed(f"injected: died after storing the video of job {job_id}")
        return bool(self.inner.claim_notification(job_id, now=now, until=until))


class SlowBlobs(_Forwarding):
    """A ``Blobs`` whose ``store_video`` sometimes takes ``seconds`` longer, after the video is stored
    (a completion slower than its message's visibility timeout: the message is delivered again while
    the first delivery still works)."""

    def __init__(
        self,
        inner: Any,
        dice: Dice,
        *,
        probability: float,
        seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ):
        super().__init__(inner)
        self._dice = dice
        self._probability = probability
        self._seconds = seconds
        self._sleep = sleep

    def store_video(
        self,
        bucket: str,
        key: str,
        chunks: Iterable[bytes],
        *,
        expected_bytes: int | None,
        metadata: dict[str, str] | None = None,
    ) -> StoredVideo:
        stored: StoredVideo = self.inner.store_video(
            bucket, key, chunks, expected_bytes=expected_bytes, metadata=metadata
        )
        if self._dice.chance(SLOW_COMPLETION, self._probability):
            self._sleep(self._seconds)
        return stored
