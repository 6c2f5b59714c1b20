"""SQS hand-offs: delayed re-checks of a settling drop, admissions after a slot came free, work for the
completion function, and films for the stitch function."""

from __future__ import annotations

import json
from typing import Any

from inbetween.errors import ConfigError

MAX_DELAY_S = 900  # SQS's own cap


class SqsQueues:
    """``inbetween.ports.Queues`` on the intake and completion queues."""

    def __init__(self, client: Any, *, intake_url: str, completion_url: str, stitch_url: str = ""):
        self._sqs = client
        self._intake = intake_url
        self._completion = completion_url
        self._stitch = stitch_url

    def recheck_drop_later(self, job_name: str, delay_s: int) -> None:
        body = {"inbetween": "settle", "job_name": job_name}
        self._sqs.send_message(
            QueueUrl=self._intake,
            MessageBody=json.dumps(body),
            DelaySeconds=max(0, min(MAX_DELAY_S, int(delay_s))),
        )

    def admit_waiting(self, model: str, *, lane: int = 0) -> None:
        """A slot of ``model`` came free outside the poller (a push event): the submit function admits
        the next waiting job now rather than at the next poller tick (through submit lane ``lane``:
        the one after its own, from a holder filling a burst)."""
        body: dict[str, str | int] = {"inbetween": "admit", "model": model}
        if lane:
            body["lane"] = lane
        self._sqs.send_message(QueueUrl=self._intake, MessageBody=json.dumps(body))

    def complete_job(self, job_id: str) -> None:
        self._sqs.send_message(
            QueueUrl=self._completion, MessageBody=json.dumps({"kind": "complete", "job_id": job_id})
        )

    def deliver_webhook(self, delivery_id: str) -> None:
        self._sqs.send_message(
            QueueUrl=self._completion, MessageBody=json.dumps({"kind": "webhook", "delivery_id": delivery_id})
        )

    def stitch_film(self, run_id: str) -> None:
        """Every shot of a film run is stored: the stitch function joins them."""
        if not self._stitch:
            raise ConfigError("STITCH_QUEUE_URL is not set; films need the stitch function's queue")
        self._sqs.send_message(
            QueueUrl=self._stitch, MessageBody=json.dumps({"kind": "stitch", "run_id": run_id})
        )
