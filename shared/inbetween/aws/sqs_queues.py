"""SQS hand-offs: delayed re-checks of a settling drop, admissions after a slot came free, and work for
the completion function."""

from __future__ import annotations

import json
from typing import Any

MAX_DELAY_S = 900  # SQS's own cap


class SqsQueues:
    """``inbetween.ports.Queues`` on the intake and completion queues."""

    def __init__(self, client: Any, *, intake_url: str, completion_url: str):
        self._sqs = client
        self._intake = intake_url
        self._completion = completion_url

    def recheck_drop_later(self, job_name: str, delay_s: int) -> None:
        body = {"inbetween": "settle", "job_name": job_name}
        self._sqs.send_message(
            QueueUrl=self._intake,
            MessageBody=json.dumps(body),
            DelaySeconds=max(0, min(MAX_DELAY_S, int(delay_s))),
        )

    def admit_waiting(self, model: str) -> None:
        """A slot of ``model`` came free outside the poller (a push event): the submit function admits
        the next waiting job now rather than at the next poller tick."""
        body = {"inbetween": "admit", "model": model}
        self._sqs.send_message(QueueUrl=self._intake, MessageBody=json.dumps(body))

    def complete_job(self, job_id: str) -> None:
        self._sqs.send_message(
            QueueUrl=self._completion, MessageBody=json.dumps({"kind": "complete", "job_id": job_id})
        )

    def deliver_webhook(self, delivery_id: str) -> None:
        self._sqs.send_message(
            QueueUrl=self._completion, MessageBody=json.dumps({"kind": "webhook", "delivery_id": delivery_id})
        )
