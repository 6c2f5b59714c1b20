"""Fault injection for the pipeline tests by wrapping ports: nothing of ``inbetween`` is patched.

A wrapper stands in for one port (``inbetween.ports``) and passes every other call through to the adapter
it wraps; a test installs it with ``pipeline.replace(store=FaultyStore(pipeline.deps.store, ...))``
(``dataclasses.replace`` on the deps, then ``use_deps``). A crash is ``FunctionCrashed``: a
``BaseException`` that the handlers' own ``except Exception`` blocks and the batch processor let through,
as if the Lambda process died at that point (the harness fails the whole batch and re-raises it).

(The e2e fault suite's seeded, probabilistic wrappers live in ``inbetween_local.faults``.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inbetween.domain.models import DueKind, JobStatus, Notification, Transition
from inbetween_local.stack.runtime import FunctionCrashed

__all__ = [
    "Crash",
    "FaultyNotifier",
    "FaultyStore",
    "FunctionCrashed",
    "Refuse",
    "is_move",
    "notes_still_running",
    "when",
]


class _Forwarding:
    """Passes every attribute it does not define itself through to the wrapped adapter."""

    def __init__(self, inner: Any):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Crash:
    """A hook that dies (``FunctionCrashed``) the first ``times`` times it is called, then does nothing;
    ``fired`` counts the crashes."""

    def __init__(self, message: str, *, times: int = 1):
        self.message = message
        self.remaining = times
        self.fired = 0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        if self.remaining > 0:
            self.remaining -= 1
            self.fired += 1
            raise FunctionCrashed(self.message)


class Refuse:
    """A ``before_apply`` hook: answers False (as a failed condition would) for the transitions ``which``
    selects, without writing them; ``refused`` counts them."""

    def __init__(self, which: Callable[[Transition], bool]):
        self.which = which
        self.refused = 0

    def __call__(self, transition: Transition) -> bool | None:
        if self.which(transition):
            self.refused += 1
            return False
        return None


def is_move(expected: JobStatus, new: JobStatus | None) -> Callable[[Transition], bool]:
    """Selects the transitions from exactly ``expected`` to ``new``."""

    def which(tr: Transition) -> bool:
        return tr.expected == (expected,) and tr.new_status is new

    return which


def notes_still_running(tr: Transition) -> bool:
    """``task_checks.note_still_running``'s write: a SUBMITTED job stays, its provider status and poll
    count recorded, its next check scheduled."""
    return (
        is_move(JobStatus.SUBMITTED, None)(tr)
        and "provider_status" in tr.sets
        and tr.adds.get("polls") == 1
        and tr.due is not None
        and tr.due[0] == DueKind.POLL.key()
    )


def when(
    which: Callable[[Transition], bool], hook: Callable[[Transition], Any]
) -> Callable[[Transition], Any]:
    """A ``before_apply`` hook that runs ``hook`` only for the transitions ``which`` selects."""

    def before_apply(tr: Transition) -> Any:
        return hook(tr) if which(tr) else None

    return before_apply


class FaultyStore(_Forwarding):
    """A ``JobStore`` with hooks where a crash, a race or a refusal matters:

    * ``before_record_task(task_id, job_id)`` runs before the task's owner record is written (raise: the
      function died after the provider accepted the task, before the table knew of it; or let a push event
      in first).
    * ``before_apply(transition)`` runs before each job transition: raise to die there, return True or
      False to answer for the table without writing (a refusal), None to apply it.
    """

    def __init__(
        self,
        inner: Any,
        *,
        before_record_task: Callable[[str, str], Any] | None = None,
        before_apply: Callable[[Transition], bool | None] | None = None,
    ):
        super().__init__(inner)
        self._before_record_task = before_record_task
        self._before_apply = before_apply

    def record_task(self, task_id: str, job_id: str) -> None:
        if self._before_record_task is not None:
            self._before_record_task(task_id, job_id)
        self.inner.record_task(task_id, job_id)

    def apply(self, transition: Transition) -> bool:
        if self._before_apply is not None:
            answer = self._before_apply(transition)
            if answer is not None:
                return bool(answer)
        return bool(self.inner.apply(transition))


class FaultyNotifier(_Forwarding):
    """A ``Notifier`` that runs ``before_publish(notification)`` before each publish (raise: the
    invocation died while notifying; or let another invocation in)."""

    def __init__(self, inner: Any, before_publish: Callable[[Notification], Any]):
        super().__init__(inner)
        self._before_publish = before_publish
        self.published = 0

    def publish(self, notification: Notification) -> None:
        self._before_publish(notification)
        self.inner.publish(notification)
        self.published += 1
